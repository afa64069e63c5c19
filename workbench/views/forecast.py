"""Forecasts: when will a limit be reached? Disks, provider rate windows, the build queue.

Three questions a supervisor asks before the answer is "too late": which disk fills up next, which
subscription runs out of its rate window before it resets (and where to move the agents), and whether
the build queue is running away. Each answer is a time with an ~80 % interval, a confidence and the
inputs that produced it, so a person can check it and the backtest (bench/forecast_backtest.py) can
score it against what really happened.

Reading is Ibis (`filesystem_history`, `usage_history`, `queue_history`, `cost_per_day`: a backend in,
an expression out); the model is numpy on the frames those views return (`fit_trend`,
`time_to_limit` and the per-series functions), pure and cheap, so the daemon can run it every cycle
and the backtest can replay it at any cut of the history.

The model, for every kind:
- Theil–Sen line (the median of all pairwise slopes): a spike, a stale report or a nightly cleanup
  inside the window moves it far less than it moves least squares.
- The window is chosen by its own recent forecast error: each candidate window (`TrendSettings`) is
  fitted on the data before the last `holdout` and scored on how well its line predicts the holdout
  (median absolute error); the longest window within `tie_tolerance` of the best wins (longer is
  steadier). A trend that just changed (a runaway cache, agents starting a burst) picks a short
  window; a steady one keeps a long one.
- The level now is the line at the newest point plus the median of the last few residuals: usage
  and disk space are cumulative, so the recent observations say where the series is better than a
  line through the whole window.
- Interval (~80 %): where the series will be after a lead L is uncertain in three ways, each
  measured on the data: the level (residual scale at the end), the fitted slope (its standard error
  from the residuals' robust scale, 1.4826 × MAD, inflated for autocorrelated residuals by the
  effective sample size n(1 − ρ)/(1 + ρ), combined with how much the slope differs between the
  candidate windows), and the rate itself moving in the future (`velocity_variability`: the spread of
  the slope over past chunks of L, measured at doubling scales). `eta_low` / `eta_high` are when an
  optimistic / pessimistic path (± 1.28 sd, the 10th and 90th percentiles) reaches the limit.
  The backtest prints the interval's coverage.
- confidence: for a finite ETA, the probability (normal approximation, with the slope uncertainty at
  the ETA's lead) that the true time-to-limit is within ±50 % of the stated one, i.e. that the
  average rate until then is within [2/3, 2] × the fitted one; when not rising, the probability that
  it really is not rising; 1 at the limit.
- made_at is the time of the newest observation used (the forecast's "as of"), so a forecast is a
  function of the data alone and the predictions table's key dedupes re-runs.

Rate windows are reset-aware: only the points since the window's last reset count (a reset is seen
when a report's time passes the previous `resets_at`, when `resets_at` jumps forward, or when usage
drops by `drop_pts` and the next report confirms it), and a limit that would be reached after
`resets_at` is not reached: "resets first". An account reported by several machines (and by caut
and caam) is ONE quota: reports are merged on `account_key` by the tool's own fetch time, taking the
highest figure at a time; nothing is summed.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from statistics import NormalDist

import ibis
import ibis.expr.types as ir
import numpy as np
import pandas as pd

from workbench.views.snapshots import scoped

Z80 = NormalDist().inv_cdf(0.9)  # 1.2816: the two-sided 80 % interval of a normal
_NORMAL = NormalDist()
_EPOCH = pd.Timestamp("1970-01-01", tz="UTC")
MAD_TO_SIGMA = 1.4826

KIND_DISK = "disk_full"
KIND_RATE = "rate_limit"
KIND_QUEUE = "queue_growth"

# Actions for a rate window, from the EARLIEST plausible time the limit is hit (the interval's low
# end, when it falls before the window resets): cautious on purpose, since running out mid-task
# costs more than swapping a little early.
SWAP_NOW_WITHIN = timedelta(minutes=15)      # ≤ 15 min (or already at the limit): swap now
PREPARE_SWAP_WITHIN = timedelta(minutes=60)  # ≤ 1 h: prepare the swap (pick the account, warn agents)
SLOW_DOWN_WITHIN = timedelta(hours=3)        # ≤ 3 h: slow down (fewer parallel agents on it)
# Without a usable trend (too few points since the reset) the level alone decides:
LEVEL_PREPARE_SWAP = 95.0                    # ≥ 95 % used: prepare swap
LEVEL_SLOW_DOWN = 85.0                       # ≥ 85 % used: slow down
ACTIONS = ("continue", "slow down", "prepare swap", "swap now")

DISK_HORIZON = timedelta(days=7)
DEFAULT_QUEUE_LIMIT = 20.0  # builds waiting; 2 × the farm's slots when rch reports them

FORECAST_COLUMNS = [
    "kind", "subject", "made_at", "status", "level", "limit_value", "slope_per_hour", "eta", "eta_low",
    "eta_high", "horizon_s", "confidence", "action", "machine_id", "mount", "provider", "account_key",
    "window_name", "inputs_json", "details_json",
]


# --------------------------------------------------------------------------------------------------
# The model
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TrendSettings:
    """How a trend is fitted for one kind of series.

    windows: candidate fit windows ending at the newest point, shortest first.
    holdout: the most recent stretch that scores the candidates (each is fitted on the data before).
    min_points: fewer points in a window and it is not a candidate (no trend at all below this).
    level_points: residuals at the end of the window that anchor the current level.
    max_points: Theil–Sen is O(n²) in pairs; longer windows are thinned evenly to this many points.
    tie_tolerance: the longest window whose holdout error is within this factor of the best wins.
    """

    windows: tuple[timedelta, ...]
    holdout: timedelta
    min_points: int = 4
    level_points: int = 3
    max_points: int = 300
    tie_tolerance: float = 1.25

    def as_dict(self) -> dict:
        return {"windows_s": [w.total_seconds() for w in self.windows], "holdout_s": self.holdout.total_seconds(),
                "min_points": self.min_points, "level_points": self.level_points}


DISK_TREND = TrendSettings(windows=(timedelta(minutes=30), timedelta(hours=1), timedelta(hours=2), timedelta(hours=4),
                                    timedelta(hours=8)),
                           holdout=timedelta(minutes=30))
RATE_TREND = TrendSettings(windows=(timedelta(minutes=30), timedelta(hours=1), timedelta(hours=2),
                                    timedelta(hours=5), timedelta(hours=24)),
                           holdout=timedelta(minutes=20), min_points=3)
QUEUE_TREND = TrendSettings(windows=(timedelta(minutes=30), timedelta(hours=1), timedelta(hours=2)),
                            holdout=timedelta(minutes=15))


@dataclass(frozen=True)
class Trend:
    """A fitted line, in units per second, anchored at the newest point (`t_end`, epoch seconds)."""

    slope: float
    slope_se: float
    level: float
    level_se: float
    t_start: float
    t_end: float
    n: int
    window_s: float
    scale: float
    rho: float
    n_eff: float
    window_scores: dict[str, float] = field(default_factory=dict)
    slope_stat_se: float = 0.0
    slope_spread: float = 0.0
    window_slopes: dict[str, float] = field(default_factory=dict)
    velocity_scales: tuple[tuple[float, float], ...] = ()  # (scale_s, sd of the slope), doubling scales
    velocity_chunks: tuple[int, ...] = ()

    def rate_sd_at(self, lead_s: np.ndarray | float) -> np.ndarray:
        """The measured sd of the average rate over `lead_s` (log-log between the measured scales;
        below the shortest, its value; beyond the longest, falling like 1/√lead: independent chunks)."""
        lead = np.asarray(lead_s, dtype="float64")
        if not self.velocity_scales:
            return np.zeros_like(lead)
        sc = np.array([s for s, _ in self.velocity_scales])
        sd = np.maximum(np.array([v for _, v in self.velocity_scales]), 1e-300)
        x = np.log(np.clip(lead, sc[0], sc[-1]))
        out = np.exp(np.interp(x, np.log(sc), np.log(sd)))
        return out * np.sqrt(sc[-1] / np.maximum(lead, sc[-1]))

    def spread_at(self, lead_s: np.ndarray | float) -> np.ndarray:
        """Standard deviation of where the series will be after `lead_s`, beyond the level's own.

        Two parts: the fitted slope may be off (slope SE × lead), and the rate itself will move
        (`rate_sd_at(lead)` × lead).
        """
        lead = np.asarray(lead_s, dtype="float64")
        return np.sqrt((self.slope_se * lead) ** 2 + (self.rate_sd_at(lead) * lead) ** 2)

    def inputs(self) -> dict:
        return {
            "method": "theil_sen", "interval": 0.8,
            "window_s": round(self.window_s, 3), "n_points": self.n,
            "window_start": _iso(self.t_start), "window_end": _iso(self.t_end),
            "slope_per_hour": self.slope * 3600, "slope_se_per_hour": self.slope_se * 3600,
            "level": self.level, "level_se": self.level_se, "residual_scale": self.scale,
            "residual_lag1_autocorr": self.rho, "n_effective": self.n_eff,
            "slope_stat_se_per_hour": self.slope_stat_se * 3600,
            "slope_window_spread_per_hour": self.slope_spread * 3600,
            "window_holdout_errors": self.window_scores, "window_slopes_per_hour": self.window_slopes,
            "rate_sd_per_hour_by_scale_s": {f"{sc:g}": sd * 3600 for sc, sd in self.velocity_scales},
            "rate_chunks_by_scale": list(self.velocity_chunks),
        }


@dataclass(frozen=True)
class Reach:
    """When a trend reaches a limit, in seconds after the trend's newest point (None: not in reach)."""

    status: str  # rising | not rising | at limit
    eta_s: float | None
    low_s: float | None
    high_s: float | None
    confidence: float


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat()


def epoch_seconds(ts: pd.Series) -> np.ndarray:
    """Timestamps (tz-aware or naive UTC) as float epoch seconds."""
    s = pd.to_datetime(ts, utc=True)
    return ((s - _EPOCH) / pd.Timedelta(seconds=1)).to_numpy(dtype="float64")


@lru_cache(maxsize=512)
def _pairs(n: int) -> tuple[np.ndarray, np.ndarray]:
    return np.triu_indices(n, 1)


def theil_sen(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """(slope, intercept): the median pairwise slope, and the median of y − slope·x."""
    i, j = _pairs(len(x))
    dx = x[j] - x[i]
    ok = dx > 0
    slopes = (y[j] - y[i])[ok] / dx[ok]
    b = float(np.median(slopes)) if slopes.size else 0.0
    return b, float(np.median(y - b * x))


def _thin(t: np.ndarray, y: np.ndarray, max_points: int) -> tuple[np.ndarray, np.ndarray]:
    if len(t) <= max_points:
        return t, y
    idx = np.unique(np.linspace(0, len(t) - 1, max_points).round().astype(int))
    return t[idx], y[idx]


def _resolution(y: np.ndarray) -> float:
    """The smallest step between distinct values: integer percentages have 1, so noise ≥ 1/√12."""
    u = np.unique(y)
    if u.size < 2:
        return 0.0
    return float(np.min(np.diff(u)))


def _chunk_slopes(segments: Sequence[tuple[np.ndarray, np.ndarray]], chunk_s: float) -> list[float]:
    out: list[float] = []
    for t, y in segments:
        if len(t) < 2:
            continue
        ends = np.arange(t[-1], t[0] - 1e-9, -chunk_s)  # chunks aligned to the segment's end
        for hi in ends:
            lo = hi - chunk_s
            m = (t > lo) & (t <= hi)
            if lo < t[0]:
                break
            k = np.nonzero(m)[0]
            if k.size >= 2 and t[k[-1]] - t[k[0]] >= chunk_s / 2:
                out.append(theil_sen(t[k] - hi, y[k])[0])
    return out


def velocity_variability(segments: Sequence[tuple[np.ndarray, np.ndarray]], chunk_s: float,
                         max_scales: int = 6) -> list[tuple[float, float, int]]:
    """How much the rate itself moves, at doubling time scales: [(scale_s, sd of slope, chunks)].

    The sd of the slope over consecutive chunks of `chunk_s`, 2×, 4× … (each scale needs 3 chunks):
    agents start and stop and builds come in bursts, which makes a forecast hours ahead uncertain
    more than how well a line fits the last hour does. Measured, not assumed: a rate that stays put
    for hours has a small sd at long scales, one that flips every few minutes averages out quickly.
    """
    segs = [(np.asarray(t, dtype="float64"), np.asarray(y, dtype="float64")) for t, y in segments]
    out = []
    scale = chunk_s
    for _ in range(max_scales):
        slopes = _chunk_slopes(segs, scale)
        if len(slopes) < 3:
            break
        out.append((scale, float(np.std(slopes, ddof=1)), len(slopes)))
        scale *= 2
    return out


def fit_trend(t: np.ndarray, y: np.ndarray, st: TrendSettings,
              history: Sequence[tuple[np.ndarray, np.ndarray]] | None = None) -> Trend | None:
    """The robust trend at the end of one series (see the module docstring); None below min_points.

    history: the stretches the rate's variability is measured on (default: the series itself); a
    rate window passes every window since the lookback began, split at its resets.
    """
    t = np.asarray(t, dtype="float64")
    y = np.asarray(y, dtype="float64")
    ok = np.isfinite(t) & np.isfinite(y)
    t, y = t[ok], y[ok]
    order = np.argsort(t, kind="stable")
    t, y = t[order], y[order]
    if len(t) < st.min_points:
        return None
    t_end = float(t[-1])

    cands: list[float] = []
    counts: set[int] = set()
    for w in st.windows:
        ws = w.total_seconds()
        n = int(np.count_nonzero(t >= t_end - ws))
        if n >= st.min_points and n not in counts:  # a longer window over the same points adds nothing
            counts.add(n)
            cands.append(ws)
    if not cands:
        return None

    scores: dict[str, float] = {}
    chosen = cands[-1]
    slopes: dict[float, float] = {}
    for ws in cands:
        tw, yw = _thin(t[t >= t_end - ws], y[t >= t_end - ws], st.max_points)
        slopes[ws] = theil_sen(tw - t_end, yw)[0]
    if len(cands) > 1:
        h = st.holdout.total_seconds()
        hold = t > t_end - h
        if np.count_nonzero(hold) >= 2:
            for ws in cands:
                fit = (t >= t_end - h - ws) & ~hold
                if np.count_nonzero(fit) < st.min_points:
                    continue
                tf, yf = _thin(t[fit], y[fit], st.max_points)
                b, a = theil_sen(tf - t_end, yf)
                scores[f"{ws:g}"] = float(np.median(np.abs(y[hold] - (a + b * (t[hold] - t_end)))))
        if scores:
            best = min(scores.values())
            chosen = max(float(k) for k, v in scores.items() if v <= best * st.tie_tolerance + 1e-12)

    sel = t >= t_end - chosen
    ts, ys = _thin(t[sel], y[sel], st.max_points)
    x = ts - t_end
    n = len(x)
    sxx = float(np.sum((x - x.mean()) ** 2))
    if n < 2 or sxx <= 0:
        return None
    b, a = theil_sen(x, ys)
    r = ys - (a + b * x)
    scale = MAD_TO_SIGMA * float(np.median(np.abs(r - np.median(r))))
    if scale <= 0:
        scale = float(np.sqrt(np.mean(r ** 2)))
    scale = max(scale, _resolution(ys) / math.sqrt(12.0), 1e-9)
    rc = r - r.mean()
    den = float(np.sum(rc * rc))
    rho = float(np.sum(rc[1:] * rc[:-1]) / den) if n >= 4 and den > 0 else 0.0
    rho = min(max(rho, 0.0), 0.95)
    n_eff = max(2.0, n * (1 - rho) / (1 + rho))
    stat_se = scale / math.sqrt(sxx) * math.sqrt(n / n_eff)
    # How much the answer depends on the window: a slope that differs between windows will differ
    # in the future too. Zero when there is one candidate or they agree.
    spread = math.sqrt(float(np.mean([(v - b) ** 2 for v in slopes.values()])))
    slope_se = math.hypot(stat_se, spread)
    k = min(st.level_points, n)
    level = a + float(np.median(r[-k:]))
    level_se = scale / math.sqrt(max(1.0, k * (1 - rho) / (1 + rho)))
    scales = velocity_variability(history if history is not None else [(t, y)], st.holdout.total_seconds())
    return Trend(slope=b, slope_se=slope_se, level=level, level_se=level_se, t_start=float(ts[0]), t_end=t_end,
                 n=n, window_s=chosen, scale=scale, rho=rho, n_eff=n_eff, window_scores=scores,
                 slope_stat_se=stat_se, slope_spread=spread,
                 window_slopes={f"{k:g}": v * 3600 for k, v in slopes.items()},
                 velocity_scales=tuple((a_, b_) for a_, b_, _ in scales),
                 velocity_chunks=tuple(c_ for _, _, c_ in scales))


_LEADS = np.geomspace(1.0, 400 * 86400.0, 500)  # where the interval's paths are searched, in seconds


def _first_reach(path, target: float) -> float | None:
    """The first lead (s) at which `path(lead)` reaches `target`: a log grid, then bisection."""
    above = np.nonzero(path(_LEADS) >= target)[0]
    if not above.size:
        return None
    k = int(above[0])
    if k == 0:
        return float(_LEADS[0])
    lo, hi = float(_LEADS[k - 1]), float(_LEADS[k])
    for _ in range(40):
        mid = (lo + hi) / 2
        if float(path(mid)) >= target:
            hi = mid
        else:
            lo = mid
    return hi


def time_to_limit(tr: Trend, limit: float, z: float = Z80) -> Reach:
    """Seconds from the trend's newest point until it reaches `limit`, with the ~80 % interval.

    The bounds are when an optimistic and a pessimistic path reach the limit: level ± z·level_se plus
    lead × slope ± z × `Trend.spread_at(lead)`. None: not within 400 days.
    """
    remaining = limit - tr.level
    if remaining <= 0:
        return Reach("at limit", 0.0, 0.0, 0.0, 1.0)
    b = tr.slope
    lvl_hi, lvl_lo = tr.level + z * tr.level_se, tr.level - z * tr.level_se
    low = _first_reach(lambda lead: lvl_hi + b * lead + z * tr.spread_at(lead), limit)
    high = _first_reach(lambda lead: lvl_lo + b * lead - z * tr.spread_at(lead), limit)
    if b <= 0:
        lead = tr.velocity_scales[0][0] if tr.velocity_scales else 3600.0
        se = float(tr.spread_at(lead)) / lead
        conf = _NORMAL.cdf(-b / se) if se > 0 else 1.0
        return Reach("not rising", None, low, None, float(conf))
    eta = remaining / b
    se = float(tr.spread_at(eta)) / eta
    conf = (_NORMAL.cdf(b / se) - _NORMAL.cdf(-b / (3 * se))) if se > 0 else 1.0
    return Reach("rising", eta, low, high, float(conf))


def naive_eta_s(t: np.ndarray, y: np.ndarray, limit: float) -> float | None:
    """The baseline: the slope of the last two points, extrapolated (None when it does not rise)."""
    if len(t) < 2 or t[-1] <= t[-2]:
        return None
    if y[-1] >= limit:
        return 0.0
    b = (y[-1] - y[-2]) / (t[-1] - t[-2])
    return (limit - y[-1]) / b if b > 0 else None


def _ts(t_end: float, offset_s: float | None) -> pd.Timestamp | None:
    if offset_s is None or not math.isfinite(offset_s) or offset_s > 1e11:
        return None
    return pd.Timestamp(round((t_end + offset_s) * 1000), unit="ms", tz="UTC")


def _row(**kw) -> dict:
    row = dict.fromkeys(FORECAST_COLUMNS)
    row.update(kw)
    return row


def _frame(rows: list[dict]) -> pd.DataFrame:
    df = pd.DataFrame(rows, columns=FORECAST_COLUMNS)
    for c in ("made_at", "eta", "eta_low", "eta_high"):
        df[c] = pd.to_datetime(df[c], utc=True)
    return df


# --------------------------------------------------------------------------------------------------
# Disks
# --------------------------------------------------------------------------------------------------


def filesystem_history(con: ibis.BaseBackend, since: datetime, until: datetime,
                       machine_ids: Sequence[str] | None = None) -> ir.Table:
    """used_pct per machine and mount over [since, until] (from bytes when the percentage is missing)."""
    f = scoped(con.table("sys_filesystems"), machine_ids, since, until, ts="ts")
    pct = ibis.coalesce(f.used_pct, f.used_bytes.cast("float64") * 100.0 / f.total_bytes.cast("float64").nullif(0.0))
    f = f.select("machine_id", "mount", "ts", "total_bytes", "used_bytes", used_pct=pct)
    return f.filter(f.used_pct.notnull()).order_by(["machine_id", "mount", "ts"])


def disk_forecast_series(machine_id: str, mount: str, t: np.ndarray, y: np.ndarray, *, full_pct: float = 100.0,
                         total_bytes: float | None = None, settings: TrendSettings = DISK_TREND,
                         horizon: timedelta = DISK_HORIZON) -> dict | None:
    """One filesystem's disk-full forecast (a FORECAST_COLUMNS row), None without enough points."""
    tr = fit_trend(t, y, settings)
    if tr is None:
        return None
    r = time_to_limit(tr, full_pct)
    horizon_s = horizon.total_seconds()
    status = {"at limit": "at limit", "not rising": "not filling"}.get(r.status, "filling")
    if status == "filling" and r.eta_s is not None and r.eta_s > horizon_s:
        status = "beyond horizon"
    details = {"total_bytes": total_bytes, "full_pct": full_pct}
    if total_bytes:
        details["bytes_per_hour"] = tr.slope * 3600 / 100.0 * total_bytes
        details["free_bytes"] = max(0.0, (100.0 - tr.level) / 100.0 * total_bytes)
    return _row(kind=KIND_DISK, subject=f"{machine_id}:{mount}", made_at=_ts(tr.t_end, 0.0), status=status,
                level=tr.level, limit_value=full_pct, slope_per_hour=tr.slope * 3600,
                eta=_ts(tr.t_end, r.eta_s), eta_low=_ts(tr.t_end, r.low_s), eta_high=_ts(tr.t_end, r.high_s),
                horizon_s=horizon_s, confidence=r.confidence, machine_id=machine_id, mount=mount,
                inputs_json=json.dumps({**tr.inputs(), "settings": settings.as_dict()}),
                details_json=json.dumps(details))


def disk_forecasts(con: ibis.BaseBackend, now: datetime, *, full_pct: float = 100.0,
                   settings: TrendSettings = DISK_TREND, max_age: timedelta = timedelta(hours=1),
                   horizon: timedelta = DISK_HORIZON, machine_ids: Sequence[str] | None = None) -> pd.DataFrame:
    """Disk-full ETA per machine and mount, from data up to `now`.

    A filesystem with no reading in the last `max_age` gets no forecast (stale data is the freshness
    factor's business, not a forecast's). Statuses: filling | not filling (slope ≤ 0) | at limit |
    beyond horizon (full, but later than `horizon`).
    """
    span = max(settings.windows) + settings.holdout + max_age
    hist = filesystem_history(con, now - span, now, machine_ids).to_pandas()
    rows = []
    cutoff = pd.Timestamp(now - max_age)
    for (machine_id, mount), g in hist.groupby(["machine_id", "mount"], sort=True):
        if pd.Timestamp(g["ts"].max()) < cutoff:
            continue
        total = g["total_bytes"].dropna()
        row = disk_forecast_series(str(machine_id), str(mount), epoch_seconds(g["ts"]),
                                   g["used_pct"].to_numpy(dtype="float64"), full_pct=full_pct,
                                   total_bytes=float(total.iloc[-1]) if len(total) else None,
                                   settings=settings, horizon=horizon)
        if row is not None:
            rows.append(row)
    return _frame(rows)


# --------------------------------------------------------------------------------------------------
# Provider rate windows
# --------------------------------------------------------------------------------------------------


def usage_history(con: ibis.BaseBackend, since: datetime, until: datetime,
                  machine_ids: Sequence[str] | None = None) -> ir.Table:
    """Every usage report in [since, until] with a figure, timed by the tool's own fetch time.

    `ts` is caut's `updatedAt` / caam's `fetched_at` (never later than the collection): a cached
    report collected again keeps its old time, so it lines up with the report it repeats instead of
    looking like usage that went down.
    """
    u = scoped(con.table("account_usage_snapshots"), machine_ids, since, until)
    u = u.filter(u.used_pct.notnull() & (u.window_name != "none"))
    seen = ibis.least(ibis.coalesce(u.reported_at, u.collected_at), u.collected_at)
    return u.select("machine_id", "source", "provider", "account_key", "window_name", "collected_at",
                    "used_pct", "resets_at", "window_minutes", "burn_tokens_per_hour", "error",
                    ts=seen).order_by(["provider", "account_key", "window_name", "ts"])


def merge_reports(reports: pd.DataFrame) -> pd.DataFrame:
    """One series per (provider, account_key, window_name): the highest figure reported at each time.

    Several machines (and caut and caam) report the same quota; taking the max per time never counts
    it twice, and a machine that lags shows up as an earlier point, not as a second account.
    """
    keys = ["provider", "account_key", "window_name", "ts"]
    if reports.empty:
        return pd.DataFrame(columns=[*keys, "used_pct", "resets_at", "window_minutes"])
    g = reports.groupby(keys, sort=True, dropna=False)
    return g.agg(used_pct=("used_pct", "max"), resets_at=("resets_at", "max"),
                 window_minutes=("window_minutes", "max")).reset_index()


def current_window(ts: np.ndarray, used: np.ndarray, resets: np.ndarray, window_s: float | None = None,
                   drop_pts: float = 5.0) -> tuple[int, list[dict]]:
    """Index of the first point since the last reset of one merged series (epoch seconds; NaN = unknown).

    A reset is seen when a report's time reaches the window's known `resets_at`, when `resets_at`
    jumps forward by more than a quarter of the window (10 min when the length is unknown), or when
    usage drops `drop_pts` below the window's running maximum and the next report (if any) agrees.
    A `resets_at` already in the past for the report carrying it is ignored (a stale figure).
    Returns (start index, the resets found with their time and reason).
    """
    n = len(ts)
    if n == 0:
        return 0, []
    tol = max(60.0, 0.25 * window_s) if window_s else 600.0

    def future_reset(i: int) -> float:
        r = resets[i]
        return float(r) if np.isfinite(r) and r > ts[i] else math.nan

    start, seg_max, cur = 0, float(used[0]), future_reset(0)
    found: list[dict] = []
    for i in range(1, n):
        reason = None
        if math.isfinite(cur) and ts[i] >= cur:
            reason = "reset time passed"
        elif math.isfinite(cur) and np.isfinite(resets[i]) and resets[i] > cur + tol:
            reason = "resets_at moved forward"
        elif used[i] <= seg_max - drop_pts and (i == n - 1 or used[i + 1] <= seg_max - drop_pts):
            reason = "usage dropped"
        if reason:
            found.append({"at": _iso(float(ts[i])), "index": i, "reason": reason, "before_pct": seg_max,
                          "after_pct": float(used[i])})
            start, seg_max, cur = i, float(used[i]), future_reset(i)
            continue
        seg_max = max(seg_max, float(used[i]))
        nxt = future_reset(i)
        if math.isfinite(nxt) and (not math.isfinite(cur) or abs(nxt - cur) <= tol):
            cur = nxt  # follow the tool's jitter of a few seconds
    return start, found


def rate_action(status: str, level: float, eta_low_s: float | None, resets_in_s: float | None) -> str:
    """continue | slow down | prepare swap | swap now (thresholds: the module constants)."""
    if status == "at limit" or level >= 100.0:
        return "swap now"
    if status == "too few points":
        if level >= LEVEL_PREPARE_SWAP:
            return "prepare swap"
        return "slow down" if level >= LEVEL_SLOW_DOWN else "continue"
    if eta_low_s is None or (resets_in_s is not None and eta_low_s >= resets_in_s):
        return "continue"
    if eta_low_s <= SWAP_NOW_WITHIN.total_seconds():
        return "swap now"
    if eta_low_s <= PREPARE_SWAP_WITHIN.total_seconds():
        return "prepare swap"
    if eta_low_s <= SLOW_DOWN_WITHIN.total_seconds():
        return "slow down"
    return "continue"


def account_headroom(merged: pd.DataFrame, now: datetime) -> pd.DataFrame:
    """Per (provider, account_key): the headroom of its tightest window as of its latest report.

    A window whose `resets_at` has passed counts as fully free (100).
    """
    cols = ["provider", "account_key", "headroom_pct", "limiting_window"]
    if merged.empty:
        return pd.DataFrame(columns=cols)
    last = merged.sort_values("ts").groupby(["provider", "account_key", "window_name"], sort=True).tail(1)
    now_ts = pd.Timestamp(now)
    out = []
    for (provider, key), g in last.groupby(["provider", "account_key"], sort=True):
        free = []
        for r in g.itertuples(index=False):
            passed = pd.notna(r.resets_at) and pd.Timestamp(r.resets_at) <= now_ts
            free.append((100.0 if passed else max(0.0, 100.0 - float(r.used_pct)), str(r.window_name)))
        h, w = min(free)
        out.append({"provider": provider, "account_key": key, "headroom_pct": h, "limiting_window": w})
    return pd.DataFrame(out, columns=cols)


def _machine_breakdown(raw: pd.DataFrame, slope_per_hour: float | None) -> dict:
    per = []
    burn_total = 0.0
    for machine_id, g in raw.sort_values("ts").groupby("machine_id", sort=True):
        last = g.iloc[-1]
        burns = g["burn_tokens_per_hour"].dropna() if "burn_tokens_per_hour" in g else pd.Series([], dtype=float)
        burn = float(burns.iloc[-1]) if len(burns) else None
        burn_total += burn or 0.0
        per.append({"machine_id": str(machine_id), "last_used_pct": float(last["used_pct"]),
                    "last_reported_at": pd.Timestamp(last["ts"]).isoformat(),
                    "sources": sorted({str(s) for s in g["source"]}), "reports": int(len(g)),
                    "burn_tokens_per_hour": burn})
    per_machine = burn_total > 0
    for p in per:
        share = (p["burn_tokens_per_hour"] or 0.0) / burn_total if per_machine else None
        p["velocity_share"] = share
        p["velocity_pct_per_hour"] = (share * slope_per_hour if share is not None and slope_per_hour is not None
                                      else None)
    note = ("velocity split by each machine's own burn rate (caam, from that machine's session logs)"
            if per_machine else
            "the tools report account-wide usage only, not per machine: these machines report the account")
    return {"machines": [p["machine_id"] for p in per], "per_machine_usage": per_machine, "note": note,
            "breakdown": per}


@dataclass(frozen=True)
class WindowForecast:
    """One merged rate window's forecast, before it becomes a row (epoch seconds throughout)."""

    status: str
    level: float
    last_used: float
    trend: Trend | None
    reach: Reach | None
    t_start: float  # first point since the last reset
    t_end: float
    resets_at: float | None
    window_s: float | None
    horizon_s: float
    action: str
    resets_seen: list[dict]

    @property
    def resets_in(self) -> float | None:
        return self.resets_at - self.t_end if self.resets_at is not None else None


def rate_window_forecast(t: np.ndarray, used: np.ndarray, resets: np.ndarray, window_s: float | None,
                         now_s: float, *, limit_pct: float = 100.0, settings: TrendSettings = RATE_TREND,
                         drop_pts: float = 5.0) -> WindowForecast:
    """Time-to-limit of one merged series (sorted epoch seconds; resets NaN when unknown) as of `now_s`."""
    start, found = current_window(t, used, resets, window_s, drop_pts)
    t_w, u_w, r_w = t[start:], used[start:], resets[start:]
    t_end = float(t_w[-1])
    future = r_w[np.isfinite(r_w) & (r_w > t_w)]
    resets_at = float(future[-1]) if future.size else None
    resets_in = resets_at - t_end if resets_at is not None else None
    horizon_s = resets_in if resets_in is not None else (window_s or 5 * 3600.0)
    cuts = [0] + [f["index"] for f in found] + [len(t)]
    history = [(t[a:b], used[a:b]) for a, b in zip(cuts[:-1], cuts[1:], strict=True)]
    tr = fit_trend(t_w, u_w, settings, history=history)
    last = float(u_w[-1])
    level = tr.level if tr is not None else last
    r = time_to_limit(tr, limit_pct) if tr is not None else None
    if resets_at is not None and now_s >= resets_at:
        status = "reset passed"
    elif last >= limit_pct or (r is not None and r.status == "at limit"):
        status = "at limit"
    elif r is None:
        status = "too few points"
    elif r.status == "not rising":
        status = "not rising"
    elif resets_in is not None and r.eta_s is not None and r.eta_s >= resets_in:
        status = "resets first"
    else:
        status = "reaches limit"
    action = ("continue" if status == "reset passed" else
              rate_action(status, max(level, last), r.low_s if r else None, resets_in))
    return WindowForecast(status=status, level=level, last_used=last, trend=tr, reach=r, t_start=float(t_w[0]),
                          t_end=t_end, resets_at=resets_at, window_s=window_s, horizon_s=horizon_s, action=action,
                          resets_seen=found)


def rate_limit_forecast_frame(reports: pd.DataFrame, now: datetime, *, limit_pct: float = 100.0,
                              settings: TrendSettings = RATE_TREND, drop_pts: float = 5.0,
                              max_age: timedelta = timedelta(hours=6)) -> pd.DataFrame:
    """Time-to-limit per (provider, account_key, window_name) from `usage_history` rows up to `now`.

    Statuses: reaches limit | resets first | not rising | at limit | too few points | reset passed
    (the window reset after the newest report: the figure is stale, nothing to forecast).
    An account whose newest report is older than `max_age` is left out.
    """
    if reports.empty:
        return _frame([])
    reports = reports.copy()
    reports["ts"] = pd.to_datetime(reports["ts"], utc=True)
    reports = reports[reports["ts"] <= pd.Timestamp(now)]
    merged = merge_reports(reports)
    if merged.empty:
        return _frame([])
    keys = ["provider", "account_key", "window_name"]
    headroom = {(p, k): (h, w) for p, k, h, w in account_headroom(merged, now).itertuples(index=False, name=None)}
    raw_by_key = dict(tuple(reports.groupby(keys, sort=False)))
    now_s = pd.Timestamp(now).timestamp()
    rows = []
    for (provider, key, window), g in merged.groupby(keys, sort=True):
        g = g.sort_values("ts")
        t = epoch_seconds(g["ts"])
        if t[-1] < now_s - max_age.total_seconds():
            continue
        resets = epoch_seconds(g["resets_at"]) if g["resets_at"].notna().any() else np.full(len(g), np.nan)
        wm = g["window_minutes"].dropna()
        window_s = float(wm.iloc[-1]) * 60 if len(wm) else None
        f = rate_window_forecast(t, g["used_pct"].to_numpy(dtype="float64"), resets, window_s, now_s,
                                 limit_pct=limit_pct, settings=settings, drop_pts=drop_pts)
        tr, r = f.trend, f.reach
        slope_h = tr.slope * 3600 if tr is not None else None
        mine = headroom.get((provider, key))
        alts = sorted(((-h, k, w) for (p, k), (h, w) in headroom.items() if p == provider and k != key))
        alternative = None
        if alts and (mine is None or -alts[0][0] > mine[0]):
            alternative = {"account_key": alts[0][1], "headroom_pct": -alts[0][0], "limiting_window": alts[0][2]}
        raw = raw_by_key[(provider, key, window)]
        raw = raw[raw["ts"] >= pd.Timestamp(round(f.t_start * 1000), unit="ms", tz="UTC")]
        details = {"resets_at": _iso(f.resets_at) if f.resets_at is not None else None,
                   "window_minutes": f.window_s / 60 if f.window_s else None, "resets_seen": f.resets_seen[-5:],
                   "account_headroom_pct": mine[0] if mine else None, "alternative": alternative,
                   "alternative_note": None if alternative else "no other account of this provider has more headroom",
                   **_machine_breakdown(raw, slope_h)}
        inputs = ({**tr.inputs(), "settings": settings.as_dict()} if tr is not None else
                  {"method": "theil_sen", "n_points": int(np.count_nonzero(t >= f.t_start)),
                   "window_end": _iso(f.t_end), "min_points": settings.min_points})
        inputs["window_since_reset_start"] = _iso(f.t_start)
        rows.append(_row(
            kind=KIND_RATE, subject=f"{key}/{window}", made_at=_ts(f.t_end, 0.0), status=f.status, level=f.level,
            limit_value=limit_pct, slope_per_hour=slope_h,
            eta=_ts(f.t_end, r.eta_s) if r else None, eta_low=_ts(f.t_end, r.low_s) if r else None,
            eta_high=_ts(f.t_end, r.high_s) if r else None, horizon_s=f.horizon_s,
            confidence=r.confidence if r else 0.0, action=f.action, provider=provider, account_key=key,
            window_name=window, inputs_json=json.dumps(inputs), details_json=json.dumps(details)))
    return _frame(rows)


def rate_limit_forecasts(con: ibis.BaseBackend, now: datetime, *, limit_pct: float = 100.0,
                         settings: TrendSettings = RATE_TREND, max_age: timedelta = timedelta(hours=6),
                         machine_ids: Sequence[str] | None = None) -> pd.DataFrame:
    """Time-to-limit for every account's rate windows (see `rate_limit_forecast_frame`)."""
    span = max(settings.windows) + settings.holdout + max_age
    reports = usage_history(con, now - span, now, machine_ids).to_pandas()
    return rate_limit_forecast_frame(reports, now, limit_pct=limit_pct, settings=settings, max_age=max_age)


# --------------------------------------------------------------------------------------------------
# Build queue (rch)
# --------------------------------------------------------------------------------------------------


def queue_history(con: ibis.BaseBackend, since: datetime, until: datetime,
                  machine_ids: Sequence[str] | None = None) -> ir.Table:
    """Builds waiting per rch host: `rch_build_queue_depth` from /metrics and `queued_builds` from status."""
    m = scoped(con.table("rch_metrics"), machine_ids, since, until, ts="ts")
    m = m.filter(m.metric == "rch_build_queue_depth")
    m = m.group_by(["machine_id", "ts"]).agg(depth=m.value.sum()).mutate(origin=ibis.literal("metrics"))
    s = scoped(con.table("rch_status_snapshots"), machine_ids, since, until)
    s = s.filter(s.success & s.queued_builds.notnull())
    s = s.select("machine_id", ts=s.collected_at, depth=s.queued_builds.cast("float64"),
                 origin=ibis.literal("status"))
    return m.select("machine_id", "ts", "depth", "origin").union(s).order_by(["machine_id", "origin", "ts"])


def farm_slots(con: ibis.BaseBackend) -> ir.Table:
    """Each rch host's slot count from its latest successful status."""
    s = con.table("rch_status_snapshots")
    s = s.filter(s.success & s.slots_total.notnull())
    return s.group_by("machine_id").agg(slots_total=s.slots_total.argmax(s.collected_at))


def queue_forecasts(con: ibis.BaseBackend, now: datetime, *, queue_limit: float | None = None,
                    settings: TrendSettings = QUEUE_TREND, max_age: timedelta = timedelta(minutes=30),
                    horizon: timedelta = timedelta(hours=24)) -> pd.DataFrame:
    """Queue growth per rch host and when it reaches `queue_limit` (default 2 × slots, else 20).

    /metrics is preferred when a host has both (finer grained); empty when no host reports a queue.
    """
    span = max(settings.windows) + settings.holdout + max_age
    hist = queue_history(con, now - span, now).to_pandas()
    if hist.empty:
        return _frame([])
    slots = dict(farm_slots(con).to_pandas().itertuples(index=False, name=None))
    rows = []
    cutoff = pd.Timestamp(now - max_age)
    for machine_id, g in hist.groupby("machine_id", sort=True):
        g = g[g["origin"] == "metrics"] if (g["origin"] == "metrics").any() else g
        if pd.Timestamp(g["ts"].max()) < cutoff:
            continue
        tr = fit_trend(epoch_seconds(g["ts"]), g["depth"].to_numpy(dtype="float64"), settings)
        if tr is None:
            continue
        n_slots = slots.get(machine_id)
        limit = queue_limit if queue_limit is not None else (2.0 * n_slots if n_slots else DEFAULT_QUEUE_LIMIT)
        r = time_to_limit(tr, limit)
        status = {"at limit": "at limit", "not rising": "not growing"}.get(r.status, "growing")
        rows.append(_row(
            kind=KIND_QUEUE, subject=str(machine_id), made_at=_ts(tr.t_end, 0.0), status=status, level=tr.level,
            limit_value=limit, slope_per_hour=tr.slope * 3600, eta=_ts(tr.t_end, r.eta_s),
            eta_low=_ts(tr.t_end, r.low_s), eta_high=_ts(tr.t_end, r.high_s), horizon_s=horizon.total_seconds(),
            confidence=r.confidence, machine_id=str(machine_id),
            inputs_json=json.dumps({**tr.inputs(), "settings": settings.as_dict(), "origin": str(g["origin"].iloc[0])}),
            details_json=json.dumps({"slots_total": n_slots, "limit_from": "argument" if queue_limit is not None
                                     else ("2 x slots_total" if n_slots else "default")})))
    return _frame(rows)


# --------------------------------------------------------------------------------------------------
# Cost
# --------------------------------------------------------------------------------------------------

def cost_per_day(con: ibis.BaseBackend, machine_ids: Sequence[str] | None = None,
                 since: date | None = None) -> ir.Table:
    """Spend per provider and day from `caut cost` (account_cost_daily); empty when nothing reported it.

    caut adds cost up from the agent logs of the machine it runs on, so machines add up: per machine,
    provider and day the latest report (a day's figure is a running total), then the sum over
    machines. Nothing is estimated: a day without a report has no row.
    """
    c = con.table("account_cost_daily")
    if machine_ids is not None:
        c = c.filter(c.machine_id.isin(list(machine_ids)))
    if since is not None:
        c = c.filter(c.day >= since)
    c = c.filter(c.total_cost_usd.notnull())
    last = c.group_by(["machine_id", "provider", "day"]).agg(_at=c.reported_at.max())
    c = c.join(last, [c.machine_id == last.machine_id, c.provider == last.provider, c.day == last.day,
                      c.reported_at == last._at])
    return c.group_by(["provider", "day"]).agg(
        cost_usd=c.total_cost_usd.sum(), tokens=c.total_tokens.sum(), machines=c.machine_id.nunique(),
    ).order_by(["provider", "day"])


def all_forecasts(con: ibis.BaseBackend, now: datetime) -> pd.DataFrame:
    """Every kind of forecast as of `now`, one frame (FORECAST_COLUMNS)."""
    parts = [f for f in (disk_forecasts(con, now), rate_limit_forecasts(con, now), queue_forecasts(con, now))
             if not f.empty]
    return pd.concat(parts, ignore_index=True) if parts else _frame([])

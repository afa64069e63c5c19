"""Anomaly detection: deterministic rules first, then a robust, seasonal, streaming detector.

Two kinds of judgement live here, both as pure functions (data in, data out; only
`detect_for_machines` touches a backend, and it only reads through Ibis):

- Rules say exactly why they fired: a value past a limit (`threshold_rule`), a value that moved too
  fast (`rate_rule`), a series that went silent (`absence_rule`). A person can check them by hand.
- `score_series` / `score_newest` learn what is normal for one series from its own recent past, so a
  machine that always runs hot is not flagged for running hot, and a daily backup that spikes at 02:00
  stops being news after a few days. The statistics are robust (median and MAD, not mean and
  standard deviation) so the anomalies themselves do not drag the baseline towards them.

A lasting change (a level shift) is flagged when it starts and then becomes the new normal as the
rolling window absorbs it (a few buckets for the spread term, half a window for the median): the
detector reports changes, while the threshold rules track a bad state for as long as it lasts.

The detector works on a regular grid (`to_grid`): samples are averaged into `step` buckets aligned to
the Unix epoch, so the same bucket gets the same timestamp however much history a caller loads, and
"the same time yesterday" is a fixed number of buckets back. Every number it computes for a bucket
depends only on a bounded stretch of buckets before it (`required_history`), which is what makes
scoring the newest buckets of a cycle (`score_newest`) give exactly the numbers a batch run over the
whole series gives (`score_series`).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

import ibis
import ibis.expr.types as ir
import numpy as np
import pandas as pd
from numpy.lib.stride_tricks import sliding_window_view

DETECTOR_NAME = "robust_seasonal"
MAD_TO_SIGMA = 1.4826  # MAD of a normal distribution × this = its standard deviation
Direction = Literal["both", "up", "down"]


# --------------------------------------------------------------------------------------------------
# Configuration
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DetectorConfig:
    """One configuration for every series (nothing here is fitted per series or per file).

    For each bucket the detector asks two questions of the past only (the bucket itself is never part
    of its own baseline), and the bucket is anomalous only when both answers say so:

    1. Recent: how far is the value from the median of the last `window`, in units of `scale`?
    2. Seasonal (once enough days exist): how far is it outside the usual daily range for this time
       of day, in the same units? Inside the range counts as 0.

    The bucket's z is the smaller of the two (signed; 0 when they disagree in direction), so a daily
    peak that recurs is normal for its hour, and a value that is odd for the hour but in line with
    the last day (a level that moved yesterday) is not news either.

    step: grid bucket. Samples are averaged per bucket; empty buckets are gaps (NaN), never filled,
        so a gap is neither scored nor allowed to look normal (the absence rule reports gaps).
    window: span of the recent baseline: median, and the scale below.
    min_history: warm-up. A bucket is scored only when its window holds at least this much data
        (counted in non-empty buckets), so a new series (or one back from a long gap) says nothing
        until it has a past. Depends only on the window, never on where a caller's data starts.
    scale (in the direction of the deviation) = the largest of:
        - 1.4826 × MAD of the window (a standard deviation for normal noise, blind to outliers);
        - (q_hi − median) / spread_z for rises, (median − q_lo) / spread_z for drops, with q_hi, q_lo
          the window's `spread_quantile` and 1 − `spread_quantile` quantiles. A mostly idle series with
          busy spells has MAD ≈ 0 but a long upper tail: this makes a rise as high as the usual
          spells score `spread_z` (normal), and only one twice as high reach the default threshold;
        - rel_floor × |median|, abs_floor, and the series' resolution (the smallest step between two
          distinct values in the window): a flat or quantised series must not turn its first wobble
          into an "infinite" z.
    season: the seasonal period (a day: people and cron jobs are daily). `None` disables it.
    season_cycles / season_min_cycles / season_halfwidth: the usual daily high (low) at a time of day
        is the median, over up to `season_cycles` previous periods, of each period's max (min) within
        ± `season_halfwidth` of that time (jobs drift by minutes, so exact buckets are too strict).
        Used once at least `season_min_cycles` periods have data there.
    z_threshold: anomalous when |z| ≥ this (in `direction`); the score is `score_from_z`, 0.5 here.
    suppress: event suppression. An *event* is an anomalous bucket with no anomalous bucket in the
        preceding `suppress`: one alert per run of anomalous buckets (runs closer than that merge).
        It depends on a bounded past only, so it streams exactly.
    direction: "both", or only rises ("up") / only drops ("down").

    Defaults: the values used for the NAB benchmark (bench/anomaly_nab.py), same for every series.
    """

    step: timedelta = timedelta(minutes=5)
    window: timedelta = timedelta(hours=24)
    min_history: timedelta = timedelta(hours=12)
    season: timedelta | None = timedelta(days=1)
    season_cycles: int = 7
    season_min_cycles: int = 3
    season_halfwidth: timedelta = timedelta(hours=1)
    z_threshold: float = 6.0
    rel_floor: float = 0.01
    abs_floor: float = 1e-9
    spread_quantile: float = 0.99
    spread_z: float = 3.0
    suppress: timedelta = timedelta(hours=2)
    direction: Direction = "both"

    # derived sizes, in buckets
    @property
    def step_s(self) -> float:
        return self.step.total_seconds()

    def _n(self, d: timedelta) -> int:
        return max(1, int(round(d.total_seconds() / self.step_s)))

    @property
    def window_n(self) -> int:
        return self._n(self.window)

    @property
    def min_points(self) -> int:
        return min(self.window_n, self._n(self.min_history))

    @property
    def period_n(self) -> int | None:
        return self._n(self.season) if self.season else None

    @property
    def halfwidth_n(self) -> int:
        return int(round(self.season_halfwidth.total_seconds() / self.step_s))

    @property
    def suppress_n(self) -> int:
        return self._n(self.suppress)

    def history_n(self) -> int:
        """Buckets before a bucket that its score and event flag can depend on."""
        n = self.window_n
        if self.period_n:
            n = max(n, self.season_cycles * self.period_n + 2 * self.halfwidth_n)
        return n + self.suppress_n

    def as_dict(self) -> dict:
        d = asdict(self)
        for k, v in d.items():
            if isinstance(v, timedelta):
                d[k] = v.total_seconds()
        return d


DEFAULT_CONFIG = DetectorConfig()


def required_history(cfg: DetectorConfig = DEFAULT_CONFIG) -> timedelta:
    """How much history to load so that the newest buckets score exactly as in a batch run."""
    return cfg.step * cfg.history_n()


def score_from_z(z: np.ndarray | float, z_threshold: float) -> np.ndarray | float:
    """Map |z| to [0, 1]: score = 1 − 2^(−|z| / z_threshold).

    Monotonic, 0 at z = 0, exactly 0.5 at the threshold (so "anomalous" ⇔ score ≥ 0.5 whatever
    the threshold), 0.75 at twice it, 0.875 at three times: the scale people read stays the same
    when the threshold changes. It reaches 1.0 only where float64 runs out (|z| ≳ 50 × threshold);
    the raw z is kept next to the score for ranking the extreme ones.
    """
    return 1.0 - np.exp2(-np.abs(z) / z_threshold)


# --------------------------------------------------------------------------------------------------
# Grid
# --------------------------------------------------------------------------------------------------


def _as_utc_index(ts: Sequence | pd.Index | pd.Series) -> pd.DatetimeIndex:
    idx = pd.DatetimeIndex(pd.to_datetime(ts))
    return idx.tz_localize(UTC) if idx.tz is None else idx.tz_convert(UTC)


def to_grid(ts: Sequence | pd.Index | pd.Series, values: Sequence[float] | np.ndarray,
            step: timedelta = DEFAULT_CONFIG.step) -> pd.Series:
    """Average samples into epoch-aligned `step` buckets; missing buckets are NaN (gaps stay gaps).

    Naive timestamps are taken as UTC. Buckets are labelled by their start.
    """
    idx = _as_utc_index(ts)
    v = pd.Series(np.asarray(values, dtype="float64"), index=idx)
    v = v[~v.index.isna()]
    if v.empty:
        return pd.Series([], index=pd.DatetimeIndex([], tz=UTC), dtype="float64")
    step_ns = int(step.total_seconds() * 1e9)
    ns = v.index.as_unit("ns").asi8
    b = (ns // step_ns) * step_ns
    means = v.groupby(b).mean()
    full = np.arange(b.min(), b.max() + step_ns, step_ns, dtype="int64")
    out = means.reindex(full)
    out.index = pd.DatetimeIndex(pd.to_datetime(full, utc=True))
    return out.astype("float64")


# --------------------------------------------------------------------------------------------------
# Statistical detector
# --------------------------------------------------------------------------------------------------


def _windows(x: np.ndarray, width: int, start: int) -> np.ndarray:
    """Row r = the `width` values strictly before position start + r (NaN-padded at the front)."""
    pad = np.concatenate([np.full(width, np.nan), x[:-1]]) if len(x) else np.full(width, np.nan)
    return sliding_window_view(pad, width)[start:len(x)]


def _sorted_quantile(srt: np.ndarray, count: np.ndarray, q: float) -> np.ndarray:
    """Linear-interpolated quantile per row of NaN-last sorted rows holding `count` values (numpy's
    default method), NaN for empty rows. One sort serves the median, the tails and the resolution."""
    out = np.full(srt.shape[0], np.nan)
    ok = count > 0
    if not ok.any():
        return out
    pos = (count[ok] - 1) * q
    lo = np.floor(pos).astype(np.int64)
    hi = np.minimum(lo + 1, count[ok] - 1)
    rows = srt[ok]
    r = np.arange(rows.shape[0])
    vlo, vhi = rows[r, lo], rows[r, hi]
    out[ok] = vlo + (vhi - vlo) * (pos - lo)
    return out


def _rolling_stats(x: np.ndarray, cfg: DetectorConfig, start: int) -> dict[str, np.ndarray]:
    """Over the window before each position ≥ start: count, median, and the up / down scales.

    scale_up = max(1.4826 × MAD, (q_hi − median) / spread_z, floors); scale_down mirrors it with the
    low quantile. The spread term is one-sided on purpose: a mostly idle series with busy spells has
    a long upper tail and none below, and only rises as large as the usual spells should look usual.
    """
    w = _windows(x, cfg.window_n, start)
    count = np.sum(~np.isnan(w), axis=1)
    srt = np.sort(w, axis=1)  # NaN last
    med = _sorted_quantile(srt, count, 0.5)
    dev = np.sort(np.abs(srt - med[:, None]), axis=1)
    mad = _sorted_quantile(dev, count, 0.5)
    hi = _sorted_quantile(srt, count, cfg.spread_quantile)
    lo = _sorted_quantile(srt, count, 1.0 - cfg.spread_quantile)
    steps = np.diff(srt, axis=1)
    steps[~(steps > 0)] = np.inf
    res = steps.min(axis=1) if steps.shape[1] else np.full(len(med), np.inf)
    res[~np.isfinite(res)] = 0.0  # the smallest positive step between distinct values (quantisation)
    base = np.maximum.reduce([np.full_like(med, cfg.abs_floor), cfg.rel_floor * np.abs(np.nan_to_num(med)),
                              res, MAD_TO_SIGMA * np.nan_to_num(mad)])
    up = np.maximum(base, np.nan_to_num((hi - med) / cfg.spread_z))
    down = np.maximum(base, np.nan_to_num((med - lo) / cfg.spread_z))
    return {"count": count, "median": med, "scale_up": up, "scale_down": down}


def _envelope(x: np.ndarray, half: int) -> tuple[np.ndarray, np.ndarray]:
    """Centred running max and min over ±half buckets (NaN where the whole stretch is empty)."""
    s = pd.Series(x)
    win = 2 * half + 1
    return (s.rolling(win, center=True, min_periods=1).max().to_numpy(),
            s.rolling(win, center=True, min_periods=1).min().to_numpy())


def _seasonal_envelope(x: np.ndarray, cfg: DetectorConfig, start: int) -> tuple[np.ndarray, np.ndarray]:
    """The usual daily high and low at each position's time of day: the median over the previous
    `season_cycles` periods of each period's max (min) within ± season_halfwidth. NaN where fewer than
    `season_min_cycles` periods have data there. A stretch of a past period is used only when it lies
    wholly inside the data and before the position (half-width < period), so nothing peeks at the
    present and a truncated history cannot give a different number than a full one."""
    p, h = cfg.period_n, cfg.halfwidth_n
    n = len(x)
    if not p or n <= start:
        return np.full(n - start, np.nan), np.full(n - start, np.nan)
    emax, emin = _envelope(x, h)
    pos = np.arange(start, n)
    ups, downs = [], []
    for k in range(1, cfg.season_cycles + 1):
        src = pos - k * p
        ok = src - h >= 0
        u = np.full(len(pos), np.nan)
        d = np.full(len(pos), np.nan)
        u[ok], d[ok] = emax[src[ok]], emin[src[ok]]
        ups.append(u)
        downs.append(d)
    up, down = np.stack(ups, axis=1), np.stack(downs, axis=1)
    cycles = np.sum(~np.isnan(up), axis=1)
    upper = _sorted_quantile(np.sort(up, axis=1), cycles, 0.5)
    lower = _sorted_quantile(np.sort(down, axis=1), cycles, 0.5)
    few = cycles < cfg.season_min_cycles
    upper[few], lower[few] = np.nan, np.nan
    return upper, lower


def _score_positions(x: np.ndarray, cfg: DetectorConfig, start: int) -> dict[str, np.ndarray]:
    """Scores for positions start..n-1, each using only the values before it."""
    st = _rolling_stats(x, cfg, start)
    v = x[start:]
    med = st["median"]
    rising = v >= med
    scale = np.where(rising, st["scale_up"], st["scale_down"])
    z = (v - med) / scale
    upper, lower = _seasonal_envelope(x, cfg, start)
    has_season = ~np.isnan(upper)
    # against the usual daily high (low) for this time of day; inside the daily range → 0
    z_seas = np.where(rising, np.maximum(v - upper, 0.0), np.minimum(v - lower, 0.0)) / scale
    z = np.where(has_season, np.sign(z) * np.minimum(np.abs(z), np.abs(z_seas)), z)
    warm = st["count"] < cfg.min_points
    z = np.where(warm | np.isnan(v), np.nan, z)
    if cfg.direction == "up":
        dz = z
    elif cfg.direction == "down":
        dz = -z
    else:
        dz = np.abs(z)
    anomalous = np.nan_to_num(dz, nan=-np.inf) >= cfg.z_threshold
    return {"baseline": med, "scale": scale, "seasonal_high": upper, "seasonal_low": lower,
            "z": z, "anomalous": anomalous, "warm": warm}


def _events(anomalous_all: np.ndarray, start: int, suppress_n: int) -> np.ndarray:
    """Event flag for positions ≥ start: anomalous with no anomalous position in the previous suppress_n."""
    a = anomalous_all.astype(np.int64)
    csum = np.concatenate([[0], np.cumsum(a)])
    pos = np.arange(start, len(a))
    lo = np.maximum(pos - suppress_n, 0)
    before = csum[pos] - csum[lo]
    return anomalous_all[start:] & (before == 0)


def _frame(grid: pd.Series, start: int, parts: dict[str, np.ndarray], events: np.ndarray,
           cfg: DetectorConfig) -> pd.DataFrame:
    df = pd.DataFrame({
        "ts": grid.index[start:],
        "value": grid.to_numpy()[start:],
        "baseline": parts["baseline"],
        "scale": parts["scale"],
        "seasonal_high": parts["seasonal_high"],
        "seasonal_low": parts["seasonal_low"],
        "z": parts["z"],
        "score": score_from_z(parts["z"], cfg.z_threshold),
        "anomalous": parts["anomalous"],
        "event": events,
        "warm": parts["warm"],
    })
    return df.reset_index(drop=True)


def score_grid(grid: pd.Series, cfg: DetectorConfig = DEFAULT_CONFIG, start: int = 0) -> pd.DataFrame:
    """Score buckets `start`.. of an already gridded series (see `to_grid`).

    Columns: ts, value, baseline (rolling median), scale (in the direction of the deviation, see
    `DetectorConfig`), seasonal_high / seasonal_low (the usual daily range at this time of day; NaN
    until enough days exist), z (signed; NaN during warm-up and in gaps), score (`score_from_z`),
    anomalous (|z| ≥ z_threshold in `direction`), event (first anomalous bucket of a run, see
    `DetectorConfig.suppress`), warm (still warming up).
    """
    x = grid.to_numpy(dtype="float64")
    start = max(0, min(start, len(x)))
    # anomalous flags are needed `suppress_n` buckets before `start` to decide the events
    a_start = max(0, start - cfg.suppress_n)
    parts = _score_positions(x, cfg, a_start)
    anomalous_all = np.zeros(len(x), dtype=bool)
    anomalous_all[a_start:] = parts["anomalous"]
    ev = _events(anomalous_all, start, cfg.suppress_n)
    cut = start - a_start
    parts = {k: v[cut:] for k, v in parts.items()}
    return _frame(grid, start, parts, ev, cfg)


def score_series(ts: Sequence | pd.Index | pd.Series, values: Sequence[float] | np.ndarray,
                 cfg: DetectorConfig = DEFAULT_CONFIG) -> pd.DataFrame:
    """Batch: grid the whole series and score every bucket."""
    return score_grid(to_grid(ts, values, cfg.step), cfg)


def score_newest(ts: Sequence | pd.Index | pd.Series, values: Sequence[float] | np.ndarray,
                 since: datetime, cfg: DetectorConfig = DEFAULT_CONFIG) -> pd.DataFrame:
    """Streaming: score only the buckets starting at or after `since`, given the history before them.

    Only the buckets needed are computed, so a daemon can call this every cycle per metric per
    machine. With at least `required_history(cfg)` of history before `since`, the rows are
    identical to the same rows of `score_series` over the whole series.
    """
    grid = to_grid(ts, values, cfg.step)
    start = int(grid.index.searchsorted(_utc_ts(since), side="left"))
    return score_grid(grid, cfg, start)


# --------------------------------------------------------------------------------------------------
# Deterministic rules
# --------------------------------------------------------------------------------------------------


def _series(ts: Sequence | pd.Index | pd.Series, values: Sequence[float] | np.ndarray) -> pd.Series:
    s = pd.Series(np.asarray(values, dtype="float64"), index=_as_utc_index(ts)).sort_index()
    return s[~s.isna()]


def _run_starts(flags: np.ndarray) -> np.ndarray:
    prev = np.concatenate([[False], flags[:-1]])
    return flags & ~prev


def threshold_rule(ts: Sequence | pd.Index | pd.Series, values: Sequence[float] | np.ndarray, *,
                   above: float | None = None, below: float | None = None) -> pd.DataFrame:
    """Points strictly above `above` or strictly below `below`.

    Columns: ts, value, limit, direction, event (first point of a run past the limit). Missing values
    are skipped (a silent series is the absence rule's business, not a breach).
    """
    s = _series(ts, values)
    v = s.to_numpy()
    up = v > above if above is not None else np.zeros(len(v), bool)
    down = v < below if below is not None else np.zeros(len(v), bool)
    hit = up | down
    ev = _run_starts(hit)
    out = pd.DataFrame({"ts": s.index, "value": v, "limit": np.where(up, above or 0.0, below or 0.0),
                        "direction": np.where(up, "up", "down"), "event": ev})
    return out[hit].reset_index(drop=True)


def rate_rule(ts: Sequence | pd.Index | pd.Series, values: Sequence[float] | np.ndarray, *,
              max_rise: float | None = None, max_fall: float | None = None,
              per: timedelta = timedelta(minutes=1), over: timedelta = timedelta(minutes=5)) -> pd.DataFrame:
    """Points where the value moved faster than allowed, in units per `per`.

    The rate at a point is (value − value `over` ago) / elapsed, using the oldest sample within `over`
    before it, so one noisy sample pair does not decide alone and an irregular sampling rate is fine.
    Columns: ts, value, rate (per `per`), limit, direction, event.
    """
    s = _series(ts, values)
    if s.empty:
        return pd.DataFrame(columns=["ts", "value", "rate", "limit", "direction", "event"])
    t = s.index.as_unit("ns").asi8.astype("float64") / 1e9
    v = s.to_numpy()
    first = np.searchsorted(t, t - over.total_seconds(), side="left")
    dt = t - t[first]
    with np.errstate(all="ignore"):
        rate = np.where(dt > 0, (v - v[first]) / dt * per.total_seconds(), np.nan)
    up = rate > max_rise if max_rise is not None else np.zeros(len(v), bool)
    down = rate < -max_fall if max_fall is not None else np.zeros(len(v), bool)
    hit = up | down
    out = pd.DataFrame({"ts": s.index, "value": v, "rate": rate,
                        "limit": np.where(up, max_rise or 0.0, -(max_fall or 0.0)),
                        "direction": np.where(up, "up", "down"), "event": _run_starts(hit)})
    return out[hit].reset_index(drop=True)


def absence_rule(ts: Sequence | pd.Index | pd.Series, *, max_gap: timedelta,
                 now: datetime | None = None, start: datetime | None = None) -> pd.DataFrame:
    """Gaps longer than `max_gap` between consecutive samples, and a trailing one up to `now`.

    With `start`, a series with no sample at all since `start` is one gap from `start` to `now`.
    Columns: gap_start (last sample before the gap, or `start`), gap_end (next sample or `now`),
    gap_seconds, open (True for a gap still running at `now`).
    """
    idx = _as_utc_index(ts).sort_values()
    if start is not None and (len(idx) == 0 or idx[0] > _utc_ts(start)):
        idx = pd.DatetimeIndex([_utc_ts(start)]).append(idx)
    cols = ["gap_start", "gap_end", "gap_seconds", "open"]
    if len(idx) == 0:
        return pd.DataFrame(columns=cols)
    ends = idx[1:]
    if now is not None:
        ends = ends.append(pd.DatetimeIndex([_utc_ts(now)]))
    starts = idx[: len(ends)]
    gap = (ends - starts).total_seconds().to_numpy()
    is_open = np.zeros(len(ends), dtype=bool)
    if now is not None:
        is_open[-1] = True
    keep = gap > max_gap.total_seconds()
    return pd.DataFrame({"gap_start": starts[keep], "gap_end": ends[keep], "gap_seconds": gap[keep],
                         "open": is_open[keep]}, columns=cols)


def _utc_ts(t: datetime | pd.Timestamp) -> pd.Timestamp:
    ts = pd.Timestamp(t)
    return ts.tz_localize(UTC) if ts.tzinfo is None else ts.tz_convert(UTC)


# --------------------------------------------------------------------------------------------------
# Per machine, from the store
# --------------------------------------------------------------------------------------------------

METRICS = ("cpu_pct", "load_per_core", "mem_used_pct", "swap_used_pct")


@dataclass(frozen=True)
class Rule:
    """A deterministic rule on one metric, limits in the metric's unit.

    threshold: `above` / `below`. rate: `max_rise` / `max_fall` per minute, measured over `over`.
    At most one rule per (metric, kind): the anomalies table keys rows by metric, ts and detector.
    """

    name: str
    metric: str
    kind: Literal["threshold", "rate"]
    above: float | None = None
    below: float | None = None
    max_rise: float | None = None
    max_fall: float | None = None
    over: timedelta = timedelta(minutes=5)


DEFAULT_RULES: tuple[Rule, ...] = (
    Rule("cpu_saturated", "cpu_pct", "threshold", above=97.0),
    Rule("load_overloaded", "load_per_core", "threshold", above=2.5),
    Rule("memory_nearly_full", "mem_used_pct", "threshold", above=95.0),
    Rule("swap_heavy", "swap_used_pct", "threshold", above=50.0),
    Rule("memory_climbing_fast", "mem_used_pct", "rate", max_rise=5.0),  # % points per minute over 5 min
    Rule("swap_climbing_fast", "swap_used_pct", "rate", max_rise=2.0),
)

# A machine whose samples stop for longer than this gets one absence row per gap.
DEFAULT_MAX_GAP = timedelta(minutes=10)

ANOMALY_COLUMNS = ["machine_id", "metric", "ts", "value", "score", "baseline", "scale", "detector", "rule",
                   "details"]


@dataclass(frozen=True)
class JobSettings:
    """What `detect_for_machines` does each cycle.

    recent: complete buckets (and raw samples, for the rules) starting within this span before the
        current bucket are (re)examined every call, so a daemon that skipped a few cycles catches up.
        Examining the same data again gives the same rows, which the anomalies table ignores.
    """

    cfg: DetectorConfig = DEFAULT_CONFIG
    recent: timedelta = timedelta(minutes=30)
    rules: tuple[Rule, ...] = DEFAULT_RULES
    max_gap: timedelta | None = DEFAULT_MAX_GAP

    def __post_init__(self) -> None:
        seen = [(r.metric, r.kind) for r in self.rules]
        dup = {k for k in seen if seen.count(k) > 1}
        if dup:
            raise ValueError(f"more than one rule per (metric, kind): {sorted(dup)}")


def _metric_exprs(s: ir.Table) -> dict[str, ir.NumericValue]:
    """Derived metrics, with the machine charts' formulas (`machines.sample_series`)."""
    cores = ibis.greatest(ibis.coalesce(s.cpu_count, 1), 1).cast("float64")
    return {
        "cpu_pct": s.cpu_pct,
        "load_per_core": s.load1 / cores,
        "mem_used_pct": 100.0 * s.mem_used_bytes / ibis.greatest(s.mem_total_bytes, 1),
        "swap_used_pct": ibis.cases((s.swap_total_bytes > 0, 100.0 * s.swap_used_bytes / s.swap_total_bytes),
                                    else_=0.0),
        "load1": s.load1,
        "net_rx_bps": s.net_rx_bps,
        "net_tx_bps": s.net_tx_bps,
    }


def _check_metrics(metrics: Sequence[str]) -> None:
    known = {"cpu_pct", "load_per_core", "mem_used_pct", "swap_used_pct", "load1", "net_rx_bps", "net_tx_bps"}
    unknown = [m for m in metrics if m not in known]
    if unknown:
        raise ValueError(f"unknown metric(s) {unknown}; known: {sorted(known)}")


def metric_buckets(con: ibis.BaseBackend, start: datetime, end: datetime,
                   step: timedelta = DEFAULT_CONFIG.step, metrics: Sequence[str] = METRICS,
                   machine_ids: Sequence[str] | None = None) -> ir.Table:
    """Per machine and epoch-aligned `step` bucket in [start, end): each metric's mean.

    `bucket_s` is the bucket's start in Unix seconds (the detector's grid, see `to_grid`).
    """
    _check_metrics(metrics)
    s = con.table("sys_samples")
    s = s.filter((s.ts >= start) & (s.ts < end))
    if machine_ids:
        s = s.filter(s.machine_id.isin(list(machine_ids)))
    exprs = _metric_exprs(s)
    step_s = int(step.total_seconds())
    epoch_s = s.ts.epoch_seconds().cast("int64")
    s = s.mutate(bucket_s=epoch_s - epoch_s % step_s)
    return (s.group_by(["machine_id", "bucket_s"])
            .agg(samples=s.count(), **{m: exprs[m].mean() for m in metrics})
            .order_by(["machine_id", "bucket_s"]))


def metric_samples(con: ibis.BaseBackend, start: datetime, end: datetime, metrics: Sequence[str] = METRICS,
                   machine_ids: Sequence[str] | None = None) -> ir.Table:
    """Raw samples in [start, end) with the derived metrics (what the rules judge)."""
    _check_metrics(metrics)
    s = con.table("sys_samples")
    s = s.filter((s.ts >= start) & (s.ts < end))
    if machine_ids:
        s = s.filter(s.machine_id.isin(list(machine_ids)))
    exprs = _metric_exprs(s)
    return s.select("machine_id", "ts", **{m: exprs[m] for m in metrics}).order_by(["machine_id", "ts"])


def sample_times(con: ibis.BaseBackend, since: datetime, end: datetime,
                 machine_ids: Sequence[str] | None = None) -> ir.Table:
    """Per machine: its sample times in [since, end), plus its last sample before `since` (so a gap
    that began long ago is still seen, without reading all of history)."""
    s = con.table("sys_samples")
    if machine_ids:
        s = s.filter(s.machine_id.isin(list(machine_ids)))
    recent = s.filter((s.ts >= since) & (s.ts < end)).select("machine_id", "ts")
    before = s.filter(s.ts < since).group_by("machine_id").agg(ts=s.ts.max())
    return recent.union(before).order_by(["machine_id", "ts"])


def _details(**kw: object) -> str:
    def clean(v: object) -> object:
        if isinstance(v, np.generic):
            v = v.item()
        if isinstance(v, float) and not math.isfinite(v):
            return None
        if isinstance(v, pd.Timestamp | datetime):
            return v.isoformat()
        return v

    return json.dumps({k: clean(v) for k, v in kw.items()}, sort_keys=True)


def _grid_from_buckets(bucket_s: np.ndarray, values: np.ndarray, step_s: int) -> pd.Series:
    """The detector's grid straight from SQL buckets (already epoch-aligned means): fill the holes."""
    full = np.arange(bucket_s.min(), bucket_s.max() + step_s, step_s, dtype="int64")
    v = np.full(len(full), np.nan)
    v[(bucket_s - full[0]) // step_s] = values
    return pd.Series(v, index=pd.DatetimeIndex(pd.to_datetime(full, unit="s", utc=True)))


def detect_for_machines(con: ibis.BaseBackend, now: datetime, metrics: Sequence[str] = METRICS,
                        lookback: timedelta | None = None, settings: JobSettings | None = None,
                        machine_ids: Sequence[str] | None = None) -> pd.DataFrame:
    """Anomaly rows for the newest data of every machine's metrics.

    Only complete buckets count: the current `step` bucket is still filling and is left for a later
    call. For the buckets that started within `settings.recent` before it:
    - the statistical detector (detector "robust_seasonal") on `step` bucket means, with `lookback`
      of history before them (default `required_history`, so scores equal a batch run over the whole
      series; a shorter lookback only means a shorter memory: a bucket whose window is too empty is
      not scored at all, never scored against a thin past). A row per anomalous bucket;
      `details.event` is true on the first bucket of a run (what an alert should fire on);
    - the threshold and rate rules (detector "threshold" / "rate", `rule` = the rule's name) on the
      raw samples; a row per sample past the limit, `details.event` on the first of a run;
    - the absence rule (metric "sys_samples", detector "absence"): a row per gap longer than
      `max_gap` between samples, or since the last sample, ts = the last sample before the gap.
      Machines never sampled are left to the freshness health factor.
    Columns: ANOMALY_COLUMNS; `details` is a JSON string; `rule` is None for the statistical detector.
    """
    st = settings or JobSettings()
    cfg = st.cfg
    metrics = list(metrics)
    step_s = int(cfg.step.total_seconds())
    now_s = pd.Timestamp(now).timestamp()
    end = datetime.fromtimestamp(now_s - now_s % step_s, UTC)  # start of the current, incomplete bucket
    since = end - st.recent
    lookback = required_history(cfg) if lookback is None else lookback
    rows: list[dict] = []

    if metrics:
        buckets = metric_buckets(con, since - lookback, end, cfg.step, metrics, machine_ids).to_pandas()
        for machine_id, g in buckets.groupby("machine_id", sort=True):
            b = g["bucket_s"].to_numpy(dtype="int64")
            for metric in metrics:
                grid = _grid_from_buckets(b, g[metric].to_numpy(dtype="float64"), step_s)
                start = int(grid.index.searchsorted(pd.Timestamp(since), side="left"))
                res = score_grid(grid, cfg, start)
                for r in res[res["anomalous"]].itertuples(index=False):
                    rows.append({
                        "machine_id": machine_id, "metric": metric, "ts": r.ts.to_pydatetime(),
                        "value": float(r.value), "score": float(r.score), "baseline": float(r.baseline),
                        "scale": float(r.scale), "detector": DETECTOR_NAME, "rule": None,
                        "details": _details(z=r.z, event=bool(r.event), seasonal_high=r.seasonal_high,
                                            seasonal_low=r.seasonal_low, step_seconds=step_s,
                                            z_threshold=cfg.z_threshold),
                    })

    rules = [r for r in st.rules if r.metric in metrics]
    if rules:
        raw_since = since - max(r.over for r in rules)  # rates and run starts need a little before
        raw = metric_samples(con, raw_since, end, sorted({r.metric for r in rules}), machine_ids).to_pandas()
        for machine_id, g in raw.groupby("machine_id", sort=True):
            for rule in rules:
                rows.extend(_apply_rule(rule, str(machine_id), g, since))

    if st.max_gap is not None:
        seen = sample_times(con, since - st.max_gap, end, machine_ids).to_pandas()
        for machine_id, g in seen.groupby("machine_id", sort=True):
            gaps = absence_rule(g["ts"], max_gap=st.max_gap, now=end)
            for r in gaps.itertuples(index=False):
                if not r.open and r.gap_end < pd.Timestamp(since):
                    continue  # over before this span: reported back then
                rows.append({
                    "machine_id": machine_id, "metric": "sys_samples", "ts": r.gap_start.to_pydatetime(),
                    "value": float(r.gap_seconds), "score": 1.0, "baseline": None, "scale": None,
                    "detector": "absence", "rule": "samples_missing",
                    "details": _details(gap_end=r.gap_end, open=bool(r.open), gap_seconds=r.gap_seconds,
                                        max_gap_seconds=st.max_gap.total_seconds()),
                })
    return pd.DataFrame(rows, columns=ANOMALY_COLUMNS)


def _apply_rule(rule: Rule, machine_id: str, g: pd.DataFrame, since: datetime) -> list[dict]:
    if rule.kind == "threshold":
        hits = threshold_rule(g["ts"], g[rule.metric], above=rule.above, below=rule.below)
    else:
        hits = rate_rule(g["ts"], g[rule.metric], max_rise=rule.max_rise, max_fall=rule.max_fall,
                         over=rule.over)
    hits = hits[hits["ts"] >= pd.Timestamp(since)]
    out = []
    for r in hits.itertuples(index=False):
        extra = ({"rate_per_minute": r.rate, "over_seconds": rule.over.total_seconds()}
                 if rule.kind == "rate" else {})
        out.append({
            "machine_id": machine_id, "metric": rule.metric, "ts": r.ts.to_pydatetime(),
            "value": float(r.value), "score": 1.0, "baseline": None, "scale": None,
            "detector": rule.kind, "rule": rule.name,
            "details": _details(limit=r.limit, direction=r.direction, event=bool(r.event), **extra),
        })
    return out

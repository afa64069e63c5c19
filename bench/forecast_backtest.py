"""Backtest of the forecasts: replay history, forecast at many cuts, compare with what really happened.

For every cut (a point in time before the true crossing) the model (`workbench.views.forecast`) sees only
the data up to the cut, forecasts when the limit is reached, and the error is |forecast − true crossing|
in minutes. The baseline in the same run: the slope of the last two points, extrapolated. A forecast of
"never" (not rising) when the crossing did happen is an infinite error: medians are over all cuts, so
a method that often says "never" shows it.

Disk: the demo fleet (`sample_data.demo_fleet.generate` into a temporary store, several seeds), the
machine whose /data fills in its `disk_filling` episode. The demo disk rises to ~97.5 % and stays, so
the crossings scored are of 90 % and 95 % (the forecast is asked for that level instead of 100 %).
Cuts: every reading from 30 minutes into the episode to the reading before the crossing. The other
filesystems (no episode) are scored for false alarms: a forecast of reaching 95 % within 24 h.

Rate limits: a seeded simulation of agents' usage (bursty regimes per 15 minutes, gamma increments,
5 h session windows and weekly windows, usage capped at 100 % until the reset), reported by several
machines every 5 minutes as `caut usage --json` payloads shaped like upstream_formats/caut.example.json
(integer percentages for claude, caut's cache repeating an older fetch 15 % of the time, an occasional
provider error), parsed by the caut collector's `parse_usage`, written through `Store.write` and read
back with the `usage_history` view, as in production. Cuts: every 10 minutes. Windows whose limit is
hit score ETA errors at the cuts before the crossing; windows that reset first score whether each
method said so (model: status "resets first" or "not rising"; baseline: no crossing before resets_at).
Both methods see the same merged series since the same detected reset.

Recorded data: upstream_formats holds single snapshots (caut.example.json is one payload), not series,
so there is nothing to replay; the script checks and says so, and uses the payload as the template.

    .venv/bin/python bench/forecast_backtest.py            # ~1.5 min
    .venv/bin/python bench/forecast_backtest.py --seeds 7 11 --rate-seed 5 --rate-days 2
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # runnable as a plain script from anywhere
    sys.path.insert(0, str(REPO))

from collectors.caut import CautCollector, parse_usage  # noqa: E402
from sample_data import demo_fleet as demo  # noqa: E402
from workbench.store import Batch, Store  # noqa: E402
from workbench.views import forecast as fc  # noqa: E402

FORMATS = REPO.parent / "shared" / "upstream_formats"
END = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
RATE_START = datetime(2026, 1, 18, 0, 0, tzinfo=UTC)
INF = math.inf


@dataclass
class Scores:
    """ETA errors (minutes) of both methods at the same cuts, with the lead time and interval hits."""

    model: list[float] = field(default_factory=list)
    naive: list[float] = field(default_factory=list)
    lead: list[float] = field(default_factory=list)
    covered: list[bool] = field(default_factory=list)

    def add(self, truth_s: float, cut_s: float, model_eta_s: float | None, naive_eta_s: float | None,
            low_s: float | None, high_s: float | None) -> None:
        """`truth_s` and `cut_s` are epoch seconds; the forecasts are seconds after the cut (None: never)."""
        self.model.append(abs(cut_s + model_eta_s - truth_s) / 60 if model_eta_s is not None else INF)
        self.naive.append(abs(cut_s + naive_eta_s - truth_s) / 60 if naive_eta_s is not None else INF)
        self.lead.append((truth_s - cut_s) / 60)
        lo = cut_s + low_s if low_s is not None else INF
        hi = cut_s + high_s if high_s is not None else INF
        self.covered.append(lo <= truth_s <= hi)


def _median(v: list[float]) -> float:
    return float(np.median(v)) if v else math.nan


def _fmt(x: float) -> str:
    return "never" if x == INF else ("-" if math.isnan(x) else f"{x:.1f}")


def print_scores(s: Scores, buckets: list[tuple[float, float, str]]) -> None:
    m, n = np.array(s.model), np.array(s.naive)
    print(f"  cuts: {len(s.model)}")
    print(f"  median |ETA error| (min): model {_fmt(_median(s.model))}   naive last-slope {_fmt(_median(s.naive))}")
    print(f"  model better at {np.mean(m < n) * 100:.0f} % of cuts, worse at {np.mean(m > n) * 100:.0f} %; "
          f"'never' when it did happen: model {np.mean(np.isinf(m)) * 100:.0f} %, "
          f"naive {np.mean(np.isinf(n)) * 100:.0f} %")
    lead = np.array(s.lead)
    for lo, hi, label in buckets:
        sel = (lead > lo) & (lead <= hi)
        if sel.any():
            print(f"    lead {label:>9}: n={int(sel.sum()):4d}  model {_fmt(_median(list(m[sel])))}  "
                  f"naive {_fmt(_median(list(n[sel])))}")
    print(f"  80 % interval coverage (model): {np.mean(s.covered) * 100:.0f} %")


# ------------------------------------------------------------------------------------------ disk


def crossing(t: np.ndarray, y: np.ndarray, level: float) -> float | None:
    """First time the series reaches `level`, interpolated between readings (None: never)."""
    hit = np.nonzero(y >= level)[0]
    if not hit.size:
        return None
    i = int(hit[0])
    if i == 0:
        return float(t[0])
    return float(t[i - 1] + (level - y[i - 1]) / (y[i] - y[i - 1]) * (t[i] - t[i - 1]))


def perturb(y: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Readings as a busy disk gives them: ±0.2 pp noise, and temp files (+1-3 pp) in 5 % of readings."""
    spikes = np.where(rng.random(len(y)) < 0.05, rng.uniform(1.0, 3.0, len(y)), 0.0)
    return np.minimum(y + rng.normal(0.0, 0.2, len(y)) + spikes, 100.0)


def disk_backtest(seeds: list[int], thresholds: tuple[float, ...] = (90.0, 95.0), noisy: bool = False) -> None:
    rng = np.random.default_rng(2024)
    st = fc.DISK_TREND
    span = (max(st.windows) + st.holdout + timedelta(hours=1)).total_seconds()  # what disk_forecasts reads
    scores = Scores()
    false_model = false_naive = quiet_cuts = 0
    series_n = 0
    for seed in seeds:
        with tempfile.TemporaryDirectory() as tmp:
            store = Store(Path(tmp) / "vc.duckdb", writer_name="forecast-backtest")
            store.migrate()
            summary = demo.generate(store, days=2, machines=12, seed=seed, end=END)
            ep = next(e for e in summary.episodes if e.kind == "disk_filling")
            with store.reader() as con:
                hist = fc.filesystem_history(con, END - timedelta(days=2), END).to_pandas()
        for (machine_id, mount), g in hist.groupby(["machine_id", "mount"], sort=True):
            t = fc.epoch_seconds(g["ts"])
            clean = g["used_pct"].to_numpy(dtype="float64")
            y = perturb(clean, rng) if noisy else clean
            if machine_id == ep.machine_id and mount == "/data":
                series_n += 1
                ep_start = ep.start.timestamp()
                for thr in thresholds:
                    tc = crossing(t, clean, thr)  # the truth: when the disk itself got there
                    if tc is None or tc <= ep_start:
                        continue
                    for k in np.nonzero((t >= ep_start + 1800) & (t < tc))[0]:
                        keep = t[: k + 1] > t[k] - span
                        tt, yy = t[: k + 1][keep], y[: k + 1][keep]
                        row = fc.disk_forecast_series(machine_id, mount, tt, yy, full_pct=thr)
                        me, lo, hi = _offsets(row, tt[-1])
                        scores.add(tc, tt[-1], me, fc.naive_eta_s(tt, yy, thr), lo, hi)
                continue
            # Quiet filesystem: hourly cuts over the last day; a forecast of 95 % within 24 h is a false alarm.
            for cut in np.arange(END.timestamp() - 86400, END.timestamp() + 1, 3600):
                k = int(np.searchsorted(t, cut, side="right"))
                if k < 4:
                    continue
                keep = t[:k] > t[k - 1] - span
                tt, yy = t[:k][keep], y[:k][keep]
                quiet_cuts += 1
                row = fc.disk_forecast_series(str(machine_id), str(mount), tt, yy, full_pct=95.0)
                me, _, _ = _offsets(row, tt[-1])
                ne = fc.naive_eta_s(tt, yy, 95.0)
                false_model += me is not None and me <= 86400
                false_naive += ne is not None and ne <= 86400
    what = (" -- the same readings with noise (sd 0.2 pp) and temp-file spikes (+1-3 pp, 5 % of readings)"
            if noisy else "")
    print(f"disk: demo fleet seeds {seeds} (2 days x 12 machines each), {series_n} filling /data series, "
          f"crossings of {', '.join(f'{x:g} %' for x in thresholds)}{what}")
    print_scores(scores, [(0, 60, "<= 1 h"), (60, 180, "1-3 h"), (180, 1e9, "> 3 h")])
    print(f"  quiet filesystems, false alarms (95 % forecast within 24 h, hourly cuts over a day): "
          f"model {false_model}/{quiet_cuts}, naive {false_naive}/{quiet_cuts}")


def _offsets(row: dict | None, t_end: float) -> tuple[float | None, float | None, float | None]:
    if row is None:
        return None, None, None

    def off(v) -> float | None:
        return None if v is None or pd.isna(v) else pd.Timestamp(v).timestamp() - t_end

    return off(row["eta"]), off(row["eta_low"]), off(row["eta_high"])


# ------------------------------------------------------------------------------------------ rate limits

ACCOUNTS = (("claude", "alice@example.com"), ("claude", "bob@example.com"), ("claude", "carol@example.com"),
            ("codex", "dev1@example.com"), ("codex", "dev2@example.com"))
# Each machine is logged into one claude and one codex account: alice, dev1 and dev2 are shared.
LOGINS = {"m1": ("alice@example.com", "dev1@example.com"), "m2": ("alice@example.com", "dev2@example.com"),
          "m3": ("bob@example.com", "dev1@example.com"), "m4": ("carol@example.com", "dev2@example.com")}
WINDOWS = {"primary": 300, "secondary": 10080}
# Usage comes from agent sessions on the account: each is busy for ~40 min, then idle for ~30 (three times
# longer at night, 22-07 UTC), and while busy it burns 0.08-0.2 % of the 5 h window a minute, in bursts.
SESSIONS = (3, 8)            # sessions per account: integers in [3, 8)
BUSY_MIN, IDLE_MIN = 40.0, 30.0
SESSION_RATE = (0.08, 0.2)   # % of the 5 h window per busy minute
SECONDARY_SHARE = 0.03       # the weekly window: the same work, a smaller share of a bigger quota


@dataclass
class Window:
    start: float  # epoch s
    end: float
    cross: float | None  # when usage reached 100 %, None when it reset first


@dataclass
class AccountSim:
    provider: str
    email: str
    used: dict[str, np.ndarray]     # window name -> used % at each minute
    resets: dict[str, np.ndarray]   # window name -> resets_at (epoch s) at each minute
    windows: dict[str, list[Window]]


def _session_increments(rng: np.random.Generator, n: int) -> np.ndarray:
    """% of the 5 h window one agent session burns in each minute."""
    rate = rng.uniform(*SESSION_RATE)
    out = np.zeros(n)
    m, busy = 0, bool(rng.random() < 0.5)
    while m < n:
        night = (m % 1440) // 60 >= 22 or (m % 1440) // 60 < 7
        length = max(1, int(rng.exponential(BUSY_MIN if busy else IDLE_MIN * (3 if night else 1))))
        if busy:
            out[m:m + length] = rng.gamma(4.0, rate / 4.0, size=len(out[m:m + length]))
        m += length
        busy = not busy
    return out


def simulate(seed: int, days: int) -> list[AccountSim]:
    rng = np.random.default_rng(seed)
    n = days * 1440
    t0 = RATE_START.timestamp()
    out = []
    for provider, email in ACCOUNTS:
        inc = sum(_session_increments(rng, n) for _ in range(int(rng.integers(*SESSIONS))))
        used, resets, wins = {}, {}, {}
        for name, length in WINDOWS.items():
            share = 1.0 if name == "primary" else SECONDARY_SHARE
            phase = int(rng.integers(0, length))
            u = np.zeros(n)
            r = np.zeros(n)
            ws: list[Window] = []
            cur, cum, cross = None, 0.0, None
            for m in range(n):
                w = (m - phase) // length
                if w != cur:
                    if cur is not None:
                        ws.append(Window(t0 + (phase + cur * length) * 60, t0 + (phase + (cur + 1) * length) * 60,
                                         cross))
                    cur, cum, cross = w, 0.0, None
                prev = cum
                cum = min(100.0, cum + inc[m] * share)
                if cross is None and cum >= 100.0 and prev < 100.0:
                    cross = t0 + (m - 1 + (100.0 - prev) / max(cum - prev, 1e-12)) * 60
                u[m] = cum
                r[m] = t0 + (phase + (w + 1) * length) * 60
            ws.append(Window(t0 + (phase + cur * length) * 60, t0 + (phase + (cur + 1) * length) * 60, cross))
            used[name], resets[name], wins[name] = u, r, ws
        out.append(AccountSim(provider, email, used, resets, wins))
    return out


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat().replace("+00:00", "Z")


def caut_payloads(sims: list[AccountSim], seed: int, days: int, template: dict):
    """(machine_id, collected_at, text) for every poll: `caut usage --json` as each machine would print it."""
    rng = np.random.default_rng(seed + 1000)
    by_email = {s.email: s for s in sims}
    t0 = RATE_START.timestamp()
    last_fetch: dict[tuple[str, str], int] = {}
    for m in range(30, days * 1440, 1):
        for idx, (machine, emails) in enumerate(LOGINS.items()):
            if m % 5 != idx % 5:
                continue
            data, errors = [], []
            for email in emails:
                s = by_email[email]
                if rng.random() < 0.02:
                    errors.append(f"Failed to fetch {s.provider}: timeout")
                    continue
                key = (machine, email)
                fetched = last_fetch.get(key) if rng.random() < 0.15 and key in last_fetch else m
                last_fetch[key] = fetched
                p = copy.deepcopy(template)
                p["provider"], p["account"] = s.provider, email
                p["source"] = "oauth" if s.provider == "claude" else "openai-web"
                usage = p["usage"]
                for name, length in WINDOWS.items():
                    val = float(s.used[name][fetched])
                    usage[name] = {"usedPercent": round(val) if s.provider == "claude" else round(val, 1),
                                   "windowMinutes": length,
                                   "resetsAt": _iso(float(s.resets[name][fetched]) + rng.integers(-20, 21))}
                    if s.provider == "codex":
                        usage[name]["remainingPercent"] = round(100 - val, 1)
                usage["updatedAt"] = _iso(t0 + fetched * 60)
                usage["identity"] = {"accountEmail": email,
                                     "loginMethod": "google" if s.provider == "codex" else "oauth"}
                if s.provider == "claude":
                    p.pop("credits", None)
                    usage.pop("tertiary", None)
                data.append(p)
            env = {"schemaVersion": "caut.v1", "generatedAt": _iso(t0 + m * 60), "command": "usage",
                   "data": data, "errors": errors, "meta": {"format": "json", "runtime": "cli"}}
            yield machine, datetime.fromtimestamp(t0 + m * 60 + 3, UTC), json.dumps(env)


def rate_backtest(seed: int, days: int, template: dict) -> None:
    sims = simulate(seed, days)
    collector = CautCollector()
    rows: list[dict] = []
    payloads = 0
    for machine, at, text in caut_payloads(sims, seed, days, template):
        parsed, _warnings = parse_usage(text, machine, at, collector.stamp)
        rows += parsed
        payloads += 1
    batch = Batch()
    batch.add_rows("account_usage_snapshots", rows)
    end = RATE_START + timedelta(days=days)
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(Path(tmp) / "vc.duckdb", writer_name="forecast-backtest")
        store.migrate()
        written = store.write(batch).inserted.get("account_usage_snapshots", 0)
        with store.reader() as con:
            reports = fc.usage_history(con, RATE_START, end).to_pandas()
    reports["ts"] = pd.to_datetime(reports["ts"], utc=True)
    t_rep = fc.epoch_seconds(reports["ts"])
    # Merging is per report time, so merging everything once equals merging what each cut could see.
    series = {}
    for (_provider, key, name), g in fc.merge_reports(reports).groupby(["provider", "account_key", "window_name"]):
        g = g.sort_values("ts")
        wm = g["window_minutes"].dropna()
        series[(key, name)] = (fc.epoch_seconds(g["ts"]), g["used_pct"].to_numpy(dtype="float64"),
                               fc.epoch_seconds(g["resets_at"]), float(wm.iloc[-1]) * 60 if len(wm) else None)
    settings = fc.RATE_TREND
    lookback = (max(settings.windows) + settings.holdout + timedelta(hours=6)).total_seconds()

    scores = Scores()
    resets_first = {"model": 0, "naive": 0, "n": 0}
    crossed_windows: set[tuple[str, str, float]] = set()
    t0 = RATE_START.timestamp()
    cuts = np.arange(t0 + 3600, end.timestamp(), 600.0)
    checked = 0
    for ci, cut in enumerate(cuts):
        frame = None
        if ci % max(1, len(cuts) // 12) == 0:  # the view's own path, at a dozen cuts: it must agree
            frame = fc.rate_limit_forecast_frame(reports[(t_rep <= cut) & (t_rep > cut - lookback)],
                                                 datetime.fromtimestamp(cut, UTC))
        for s in sims:
            key = f"{s.provider}:{s.email}"
            for name in WINDOWS:
                win = next(w for w in s.windows[name] if w.start <= cut < w.end)
                minute = int((cut - t0) // 60)
                if s.used[name][minute] >= 100.0 or cut - win.start < 900:
                    continue  # already limited (nothing to forecast), or too early in the window
                t, used, rs, window_s = series[(key, name)]
                sel = (t <= cut) & (t > cut - lookback)
                if not sel.any():
                    continue
                f = fc.rate_window_forecast(t[sel], used[sel], rs[sel], window_s, cut)
                if frame is not None:
                    row = frame[frame["subject"] == f"{key}/{name}"].iloc[0]
                    assert row["status"] == f.status and row["level"] == f.level, (key, name, cut)
                    checked += 1
                start = int(np.searchsorted(t[sel], f.t_start))
                naive = fc.naive_eta_s(t[sel][start:], used[sel][start:], 100.0)
                shift = f.t_end - cut  # forecasts count from the newest report; scores from the cut
                naive_cut = None if naive is None else naive + shift
                r = f.reach
                if win.cross is not None and win.cross > cut:
                    crossed_windows.add((key, name, win.start))
                    eta, low, high = (r.eta_s, r.low_s, r.high_s) if r else (None, None, None)
                    scores.add(win.cross, cut, None if eta is None else eta + shift, naive_cut,
                               None if low is None else low + shift, None if high is None else high + shift)
                elif win.cross is None:
                    resets_first["n"] += 1
                    resets_first["model"] += f.status in ("resets first", "not rising", "reset passed")
                    resets_first["naive"] += naive_cut is None or cut + naive_cut >= win.end
    n_windows = sum(len(s.windows[w]) for s in sims for w in WINDOWS)
    print(f"rate limits: seed {seed}, {days} days, {len(ACCOUNTS)} accounts on {len(LOGINS)} machines, "
          f"{payloads} caut payloads -> {written} rows; {n_windows} windows, {len(crossed_windows)} hit the limit "
          f"(view path checked against the per-series path at {checked} forecasts)")
    print_scores(scores, [(0, 30, "<= 30 min"), (30, 120, "30-120 min"), (120, 1e9, "> 2 h")])
    n = max(resets_first["n"], 1)
    print(f"  cuts in windows that reset first: {resets_first['n']}; said so: model "
          f"{resets_first['model'] / n * 100:.0f} %, naive {resets_first['naive'] / n * 100:.0f} %")


def recorded_data() -> dict:
    """The caut payload template; and whether upstream_formats holds any series to replay (it does not)."""
    doc = json.loads((FORMATS / "caut.example.json").read_text())
    payloads = len(doc.get("data", []))
    print(f"recorded data: {FORMATS / 'caut.example.json'} holds {payloads} usage payload at one instant and "
          "no file there holds disk readings: no series to replay; the payload is the simulation's template")
    return doc["data"][0]


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[7, 11, 23, 42, 99], help="demo fleet seeds (disk)")
    ap.add_argument("--rate-seed", type=int, default=5)
    ap.add_argument("--rate-days", type=int, default=3)
    ap.add_argument("--only", choices=["disk", "rate"], help="run one part")
    args = ap.parse_args(argv)
    started = time.perf_counter()
    print("forecast backtest: model = workbench.views.forecast (Theil-Sen, window chosen by holdout error), "
          "baseline = slope of the last two points")
    template = recorded_data()
    if args.only in (None, "disk"):
        disk_backtest(args.seeds)
        disk_backtest(args.seeds, noisy=True)
    if args.only in (None, "rate"):
        rate_backtest(args.rate_seed, args.rate_days, template)
    print(f"({time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()

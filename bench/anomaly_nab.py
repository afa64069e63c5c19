"""The anomaly detector on real labelled data: NAB's realAWSCloudwatch series (5-minute CloudWatch metrics).

For every CSV listed in `--labels` (keys `<folder>/<file>.csv`, relative to `--data`), the detector
(`workbench.views.anomaly`, DEFAULT_CONFIG: one configuration for every file, nothing tuned per file)
and a windowed-Gaussian baseline run over the whole series in time order. Both see only the past at
each point, warm up the same way and share the same event suppression, so each reports *events*
(the first anomalous bucket of a run, see DetectorConfig.suppress). Both run on the detector's
5-minute grid; an event's time is the timestamp of the last sample in its bucket (when it could have
been raised), so window edges are judged on the data's own clock.

Label windows: labels.json's `windows` (NAB's own windows). A file that has anomaly points but no
windows gets windows built the NAB way: 10% of the series' length divided by the number of anomalies,
centred on each anomaly point (the script says so when it happens).

Definitions (per file, and overall by pooling the counts of all files):
- an event is a true positive if it falls inside a label window (start ≤ ts ≤ end), else a false one;
- precision = events inside windows / all events (each suppressed event counts once);
- a window is detected if at least one event falls inside it; recall = detected windows / windows;
- F1 = 2PR / (P + R);
- delay = minutes from a detected window's start to its first event (mean over detected windows;
  NAB centres windows on the labelled point, so a detection at the labelled point has a delay of
  half the window); `delay_from_label` is the same from the labelled point (negative = early);
- fp_per_day = events outside every window / days of data.
Unlike NAB's own scorer there is no probationary period and no weighting by position in the window:
every event after the warm-up counts, which is stricter on false positives.
Undefined ratios (no events, no windows) are null in --json and "-" in the table.

The baseline: rolling mean and standard deviation of the same 24 h window before each bucket,
anomalous when |x − mean| ≥ k·std (k = 3 unless --baseline-k), warm-up and suppression as the
detector's. `--sweep` also prints both at several thresholds (and the baseline with a 7-day window),
so the comparison does not rest on one operating point. The detector's defaults were chosen with this
data in view (one configuration for all files, but not a blind test): read the sweep as well as the
headline.

    .venv/bin/python bench/anomaly_nab.py            # table
    .venv/bin/python bench/anomaly_nab.py --json     # ... last line: {"detector": {...}, "baseline": {...}}
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # runnable as a plain script from anywhere
    sys.path.insert(0, str(REPO))

from workbench.views.anomaly import DEFAULT_CONFIG, DetectorConfig, _events, score_grid, to_grid  # noqa: E402

NAB_DIR = Path(__file__).resolve().parents[2] / "shared" / "benchmarks" / "nab"
DEFAULT_DATA = NAB_DIR / "data"
DEFAULT_LABELS = NAB_DIR / "labels.json"
DAY_S = 86400.0

Detect = Callable[[pd.Series], pd.DatetimeIndex]


# ---------------------------------------------------------------------------------------------- labels


Windows = dict[str, list[tuple[pd.Timestamp, pd.Timestamp]]]
Points = dict[str, list[pd.Timestamp]]


def load_windows(labels_path: Path, data_dir: Path) -> tuple[Windows, Points, list[str]]:
    """file key → windows (UTC), file key → labelled points, notes about windows built here."""
    raw = json.loads(labels_path.read_text())
    if "windows" in raw or "labels" in raw:
        windows_raw, points_raw = raw.get("windows", {}), raw.get("labels", {})
    else:  # plain NAB combined_windows.json shape: {file: [[start, end], ...]}
        windows_raw, points_raw = raw, {}
    keys = sorted(set(windows_raw) | set(points_raw))
    notes: list[str] = []
    windows: Windows = {}
    points = {k: [_utc(p) for p in points_raw.get(k, [])] for k in keys}
    for k in keys:
        w = windows_raw.get(k)
        if w or not points[k]:
            windows[k] = [(_utc(a), _utc(b)) for a, b in (w or [])]
            continue
        # NAB's construction: total window length = 10% of the series, split evenly, centred on each point
        stamps = pd.read_csv(data_dir / k, usecols=["timestamp"])["timestamp"]
        t = pd.DatetimeIndex(pd.to_datetime(stamps, utc=True))
        n = len(t)
        half = max(1, int(0.1 * n / len(points[k]))) // 2
        windows[k] = []
        for p in points[k]:
            i = int(t.searchsorted(p))
            windows[k].append((t[max(0, i - half)], t[min(n - 1, i + half)]))
        notes.append(f"{k}: no windows in labels, built {len(points[k])} NAB-style windows of "
                     f"{2 * half} points (10% of the series / anomalies, centred)")
    return windows, points, notes


def _utc(s: str) -> pd.Timestamp:
    t = pd.Timestamp(s)
    return t.tz_localize("UTC") if t.tzinfo is None else t.tz_convert("UTC")


# ----------------------------------------------------------------------------------------- detectors


def detector(cfg: DetectorConfig = DEFAULT_CONFIG) -> Detect:
    def run(grid: pd.Series) -> pd.DatetimeIndex:
        res = score_grid(grid, cfg)
        return pd.DatetimeIndex(res.loc[res["event"], "ts"])
    return run


def windowed_gaussian(k: float = 3.0, cfg: DetectorConfig = DEFAULT_CONFIG) -> Detect:
    """Rolling mean ± k·std over the detector's window (the bucket itself excluded), same warm-up and
    event suppression as the detector: only the statistics differ."""
    def run(grid: pd.Series) -> pd.DatetimeIndex:
        x = grid.to_numpy(dtype="float64")
        prev = pd.Series(x).shift(1).rolling(cfg.window_n, min_periods=cfg.min_points)
        mean, std = prev.mean().to_numpy(), prev.std(ddof=0).to_numpy()
        with np.errstate(all="ignore"):
            z = np.where(std > 0, (x - mean) / std, np.where(x == mean, 0.0, np.inf))
        a = np.nan_to_num(np.abs(z), nan=0.0) >= k
        a &= ~np.isnan(mean) & ~np.isnan(x)
        ev = _events(a, 0, cfg.suppress_n)
        return pd.DatetimeIndex(grid.index[ev])
    return run


# ----------------------------------------------------------------------------------------------- scoring


@dataclass
class Tally:
    events: int = 0
    tp_events: int = 0
    windows: int = 0
    detected: int = 0
    days: float = 0.0
    delays: list[float] = field(default_factory=list)
    label_delays: list[float] = field(default_factory=list)

    def add(self, o: Tally) -> None:
        self.events += o.events
        self.tp_events += o.tp_events
        self.windows += o.windows
        self.detected += o.detected
        self.days += o.days
        self.delays += o.delays
        self.label_delays += o.label_delays

    def metrics(self) -> dict[str, float | int | None]:
        p = self.tp_events / self.events if self.events else None
        r = self.detected / self.windows if self.windows else None
        f1 = 2 * p * r / (p + r) if p is not None and r is not None and (p + r) > 0 else (
            0.0 if p is not None and r is not None else None)
        return {
            "precision": p, "recall": r, "f1": f1,
            "mean_delay_minutes": float(np.mean(self.delays)) if self.delays else None,
            "mean_delay_from_label_minutes": float(np.mean(self.label_delays)) if self.label_delays else None,
            "fp_per_day": (self.events - self.tp_events) / self.days if self.days else None,
            "events": self.events, "true_events": self.tp_events, "windows": self.windows,
            "detected_windows": self.detected, "days": round(self.days, 3),
        }


def tally(events: pd.DatetimeIndex, windows: list[tuple[pd.Timestamp, pd.Timestamp]],
          points: list[pd.Timestamp], days: float) -> Tally:
    t = Tally(events=len(events), windows=len(windows), days=days)
    inside = np.zeros(len(events), dtype=bool)
    for a, b in windows:
        hit = (events >= a) & (events <= b)
        inside |= hit
        if hit.any():
            first = events[hit].min()
            t.detected += 1
            t.delays.append((first - a).total_seconds() / 60.0)
            label = next((p for p in points if a <= p <= b), None)
            if label is not None:
                t.label_delays.append((first - label).total_seconds() / 60.0)
    t.tp_events = int(inside.sum())
    return t


@dataclass
class Series:
    """One file: its samples' own timestamps and the detector's grid of them."""

    stamps: pd.DatetimeIndex
    grid: pd.Series

    @classmethod
    def read(cls, path: Path, step: pd.Timedelta) -> Series:
        df = pd.read_csv(path)
        stamps = pd.DatetimeIndex(pd.to_datetime(df["timestamp"], utc=True))
        return cls(stamps.sort_values(), to_grid(stamps, df["value"], step))

    def detection_times(self, buckets: pd.DatetimeIndex) -> pd.DatetimeIndex:
        """An event on a bucket is known once the bucket's last sample is in: score it at that
        sample's own timestamp, so window edges are judged on the data's clock, not the grid's."""
        step = self.grid.index[1] - self.grid.index[0] if len(self.grid) > 1 else pd.Timedelta(0)
        i = self.stamps.searchsorted(buckets + step, side="left") - 1
        return pd.DatetimeIndex(self.stamps[np.clip(i, 0, len(self.stamps) - 1)])


def evaluate(files: dict[str, Series], windows: Windows, points: Points, detect: Detect
             ) -> tuple[dict[str, Tally], Tally]:
    per: dict[str, Tally] = {}
    total = Tally()
    for key, f in files.items():
        days = (f.stamps[-1] - f.stamps[0]).total_seconds() / DAY_S
        events = f.detection_times(detect(f.grid))
        per[key] = tally(events, windows.get(key, []), points.get(key, []), days)
        total.add(per[key])
    return per, total


# -------------------------------------------------------------------------------------------------- output


def _f(v: float | int | None, digits: int = 3) -> str:
    if v is None:
        return "-"
    return f"{v:.{digits}f}" if isinstance(v, float) else str(v)


def _row(m: dict) -> str:
    return f"{_f(m['precision'])} {_f(m['recall'])} {_f(m['f1'])} {_f(m['fp_per_day'], 2)}"


def print_table(title: str, per: dict[str, Tally], total: Tally) -> None:
    print(f"\n{title}")
    head = f"{'file':46} {'events':>6} {'in-win':>6} {'win':>4} {'det':>4} {'prec':>6} {'recall':>6} " \
           f"{'f1':>6} {'delay_min':>9} {'fp/day':>7}"
    print(head)
    print("-" * len(head))
    for key, t in list(per.items()) + [("OVERALL", total)]:
        m = t.metrics()
        print(f"{key[-46:]:46} {t.events:6d} {t.tp_events:6d} {t.windows:4d} {t.detected:4d} "
              f"{_f(m['precision']):>6} {_f(m['recall']):>6} {_f(m['f1']):>6} "
              f"{_f(m['mean_delay_minutes'], 0):>9} {_f(m['fp_per_day'], 2):>7}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA,
                    help="NAB data directory (label keys are relative to it)")
    ap.add_argument("--labels", type=Path, default=DEFAULT_LABELS, help="labels.json (windows and/or points)")
    ap.add_argument("--only", action="append", default=[],
                    help="only label keys containing this (repeatable)")
    ap.add_argument("--baseline-k", type=float, default=3.0, help="windowed Gaussian threshold in std units")
    ap.add_argument("--sweep", action="store_true", help="also print both detectors at several thresholds")
    ap.add_argument("--json", action="store_true", help="last line: {'detector': {...}, 'baseline': {...}}")
    args = ap.parse_args(argv)

    t0 = time.perf_counter()
    windows, points, notes = load_windows(args.labels, args.data)
    keys = [k for k in sorted(windows) if not args.only or any(o in k for o in args.only)]
    if not keys:
        print("no labelled files selected", file=sys.stderr)
        return 2
    files = {k: Series.read(args.data / k, pd.Timedelta(DEFAULT_CONFIG.step)) for k in keys}
    for n in notes:
        print("note:", n)

    per_d, tot_d = evaluate(files, windows, points, detector())
    per_b, tot_b = evaluate(files, windows, points, windowed_gaussian(args.baseline_k))
    cfg = DEFAULT_CONFIG
    print(f"{len(files)} files, {sum(len(f.grid) for f in files.values())} buckets of {cfg.step_s:.0f} s, "
          f"{tot_d.windows} label windows, {tot_d.days:.1f} days")
    print_table(f"detector {cfg.as_dict()}", per_d, tot_d)
    print_table(f"baseline: windowed Gaussian, k={args.baseline_k}, window {cfg.window}, same warm-up and "
                f"suppression", per_b, tot_b)

    print("\nOVERALL          precision  recall     f1  delay_min  fp/day")
    for name, t in (("detector", tot_d), ("baseline", tot_b)):
        m = t.metrics()
        print(f"{name:16} {_f(m['precision']):>9} {_f(m['recall']):>7} {_f(m['f1']):>6} "
              f"{_f(m['mean_delay_minutes'], 0):>10} {_f(m['fp_per_day'], 2):>7}")

    if args.sweep:
        print("\nsweep (overall): threshold -> precision recall f1 fp/day")
        for z in (3.0, 4.0, 5.0, 6.0, 8.0, 10.0, 12.0):
            m = evaluate(files, windows, points, detector(replace(cfg, z_threshold=z)))[1].metrics()
            print(f"  detector z={z:<5} {_row(m)}")
        for days in (1, 7):
            bcfg = replace(cfg, window=timedelta(days=days))
            for k in (2.0, 3.0, 4.0, 5.0, 6.0, 8.0):
                m = evaluate(files, windows, points, windowed_gaussian(k, bcfg))[1].metrics()
                print(f"  baseline window={days}d k={k:<5} {_row(m)}")

    print(f"\n({time.perf_counter() - t0:.1f} s)")
    if args.json:
        print(json.dumps({"detector": tot_d.metrics(), "baseline": tot_b.metrics()}, sort_keys=True))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

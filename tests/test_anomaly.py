"""Anomaly detection: rules, the robust seasonal detector on synthetic series with known anomalies,
streaming equals batch, the DB job (idempotent), and the NAB benchmark's --json contract."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from workbench.store import Batch, Store
from workbench.views import anomaly as an
from workbench.views.anomaly_job import run_anomaly_job

REPO = Path(__file__).resolve().parents[1]
NAB = REPO.parent / "shared" / "benchmarks" / "nab"
T0 = pd.Timestamp("2026-03-02 00:00", tz="UTC")  # a Monday, on the 5-minute grid
STEP = pd.Timedelta(minutes=5)
PER_DAY = 288


def series(days: float, seed: int, level: float = 50.0,
           noise: float = 2.0) -> tuple[pd.DatetimeIndex, np.ndarray]:
    n = int(days * PER_DAY)
    rng = np.random.default_rng(seed)
    return pd.date_range(T0, periods=n, freq="5min"), level + noise * rng.standard_normal(n)


def event_times(res: pd.DataFrame) -> list[pd.Timestamp]:
    return list(res.loc[res["event"], "ts"])


# ------------------------------------------------------------------------------------------ detector


def test_finds_injected_spike_and_level_shift_and_nothing_else():
    ts, v = series(10, seed=1)
    spike, shift = 6 * PER_DAY + 100, 8 * PER_DAY + 40
    v[spike] += 40.0                       # one bucket, 20 sigma
    v[shift:] += 25.0                      # a lasting level shift, 12 sigma
    v[3 * PER_DAY + 7] -= 35.0             # a drop
    res = an.score_series(ts, v)
    assert event_times(res) == [ts[3 * PER_DAY + 7], ts[spike], ts[shift]]
    row = res.iloc[spike]
    assert row["z"] > 10 and row["score"] > 0.7 and row["anomalous"]
    assert abs(row["baseline"] - 50.0) < 1.0 and 1.5 < row["scale"] < 3.0
    assert res.iloc[3 * PER_DAY + 7]["z"] < -6  # drops are signed
    # the shift is one event, not one per bucket, and it becomes the new normal as the window absorbs it
    after = res.iloc[shift:]
    assert after["anomalous"].sum() >= 2 and after["event"].sum() == 1
    assert not after.iloc[PER_DAY:]["anomalous"].any()


def test_gaussian_noise_alone_is_quiet():
    ts, v = series(9, seed=2)
    res = an.score_series(ts, v)
    assert res["anomalous"].sum() == 0
    scored = res[~res["warm"]]
    assert scored["score"].between(0, 0.5, inclusive="left").all()


def test_no_scores_during_warm_up():
    ts, v = series(2, seed=3)
    v[10] += 1000.0  # huge, but the series has no past yet
    res = an.score_series(ts, v)
    cfg = an.DEFAULT_CONFIG
    warm = res.iloc[: cfg.min_points]
    assert warm["warm"].all() and warm["z"].isna().all() and not warm["anomalous"].any()
    assert not res.iloc[cfg.min_points]["warm"] and pd.notna(res.iloc[cfg.min_points]["z"])
    assert cfg.min_points == 144  # 12 h of 5-minute buckets


def test_warm_up_depends_on_the_window_not_on_where_the_data_starts():
    ts, v = series(3, seed=4)
    v[PER_DAY + 200 :] = np.nan  # a long silence: the window empties out
    v[2 * PER_DAY + 100 :] = 50.0 + np.arange(len(v) - 2 * PER_DAY - 100) % 3
    res = an.score_series(ts, v)
    back = res.iloc[2 * PER_DAY + 100 :]
    assert back.iloc[:100]["warm"].all()  # back from silence: warming up again
    assert res.iloc[PER_DAY + 200 : 2 * PER_DAY + 100]["z"].isna().all()  # gaps are never scored


def _daily_peak_series(days: int, seed: int) -> tuple[pd.DatetimeIndex, np.ndarray, list[int]]:
    """Quiet around 10, plus a 10-minute peak to ~80 at about 03:00 every day (± 15 min jitter)."""
    ts, v = series(days, seed=seed, level=10.0, noise=0.5)
    rng = np.random.default_rng(seed + 100)
    peaks = []
    for d in range(days):
        i = d * PER_DAY + 36 + int(rng.integers(-3, 4))
        v[i : i + 2] = 80.0 + rng.standard_normal(2)
        peaks.append(i)
    return ts, v, peaks


def test_a_daily_peak_that_recurs_is_not_flagged_once_there_are_a_few_days_of_history():
    ts, v, peaks = _daily_peak_series(9, seed=5)
    res = an.score_series(ts, v)
    flagged = [bool(res.iloc[i : i + 2]["anomalous"].any()) for i in peaks]
    assert flagged[1] and flagged[2]  # new behaviour: flagged while there is no daily history
    assert not any(flagged[4:])  # after season_min_cycles (3) days it is the usual 03:00 peak
    assert pd.notna(res.iloc[peaks[5]]["seasonal_high"]) and res.iloc[peaks[5]]["seasonal_high"] > 70
    # ... but the same peak at an unusual hour is still news
    v2 = v.copy()
    odd = 7 * PER_DAY + 180  # 15:00
    v2[odd : odd + 2] = 80.0
    res2 = an.score_series(ts, v2)
    assert res2.iloc[odd]["event"]


def test_without_the_seasonal_part_the_daily_peak_keeps_firing():
    ts, v, peaks = _daily_peak_series(9, seed=5)
    res = an.score_series(ts, v, replace(an.DEFAULT_CONFIG, season=None))
    assert sum(bool(res.iloc[i : i + 2]["anomalous"].any()) for i in peaks[4:]) >= 3


def test_a_mostly_idle_series_with_usual_busy_spells_is_quiet_until_a_spell_is_unusual():
    ts, v = series(6, seed=6, level=0.1, noise=0.002)
    rng = np.random.default_rng(6)
    for start in rng.choice(len(v) - 10, size=40, replace=False):
        v[start : start + 2] = 5.0 + rng.random()  # busy spells, at random times
    v[5 * PER_DAY + 50] = 40.0  # eight times the usual spell
    res = an.score_series(ts, v)
    late = res.iloc[2 * PER_DAY :]
    assert event_times(late) == [ts[5 * PER_DAY + 50]]


def test_direction_up_ignores_drops():
    ts, v = series(4, seed=7)
    v[3 * PER_DAY] -= 40.0
    v[3 * PER_DAY + 60] += 40.0
    res = an.score_series(ts, v, replace(an.DEFAULT_CONFIG, direction="up"))
    assert event_times(res) == [ts[3 * PER_DAY + 60]]


def test_score_squashing():
    assert an.score_from_z(0.0, 6.0) == 0.0
    assert an.score_from_z(6.0, 6.0) == pytest.approx(0.5)
    assert an.score_from_z(-12.0, 6.0) == pytest.approx(0.75)
    s = an.score_from_z(np.array([1.0, 5.0, 50.0, 200.0, 1e6]), 6.0)
    assert np.all(np.diff(s[:4]) > 0) and np.all(s[:4] < 1.0) and s[4] == 1.0


def test_to_grid_averages_buckets_and_keeps_gaps():
    ts = pd.to_datetime(["2026-03-02 00:01", "2026-03-02 00:03", "2026-03-02 00:16"])  # naive = UTC
    g = an.to_grid(ts, [1.0, 3.0, 10.0])
    assert list(g.index) == list(pd.date_range("2026-03-02", periods=4, freq="5min", tz="UTC"))
    assert g.iloc[0] == 2.0 and np.isnan(g.iloc[1]) and np.isnan(g.iloc[2]) and g.iloc[3] == 10.0


@pytest.mark.parametrize("cut_days", [3.2, 8.5, 9.9])
def test_incremental_scoring_equals_batch_on_the_newest_points(cut_days):
    ts, v = series(10, seed=8)
    v[8 * PER_DAY + 10] += 30
    v[9 * PER_DAY :] += 20
    v[5 * PER_DAY + 3 : 5 * PER_DAY + 30] = np.nan  # a gap
    for d in range(10):  # a daily peak, so the seasonal part is exercised
        v[d * PER_DAY + 40 : d * PER_DAY + 42] += 30
    batch = an.score_series(ts, v)
    cut = int(cut_days * PER_DAY)
    since = ts[cut]
    newest = 12
    lo = ts.searchsorted(since - an.required_history())
    hist = slice(max(0, lo), cut + newest)
    inc = an.score_newest(ts[hist], v[hist], since)
    assert len(inc) == newest
    expect = batch.iloc[cut : cut + newest].reset_index(drop=True)
    pd.testing.assert_frame_equal(inc, expect, check_exact=True)
    # and with more history than needed
    inc2 = an.score_newest(ts[: cut + newest], v[: cut + newest], since)
    pd.testing.assert_frame_equal(inc2, inc, check_exact=True)


def test_streaming_one_bucket_at_a_time_gives_the_batch_events():
    ts, v = series(9, seed=9)
    v[8 * PER_DAY + 5 : 8 * PER_DAY + 30] += 30
    batch = an.score_series(ts, v)
    need = an.required_history()
    rows = []
    for i in range(8 * PER_DAY, 8 * PER_DAY + 60):
        lo = ts.searchsorted(ts[i] - need)
        rows.append(an.score_newest(ts[lo : i + 1], v[lo : i + 1], ts[i]))
    streamed = pd.concat(rows, ignore_index=True)
    expect = batch.iloc[8 * PER_DAY : 8 * PER_DAY + 60].reset_index(drop=True)
    pd.testing.assert_frame_equal(streamed, expect, check_exact=True)
    assert streamed["event"].sum() == 1
    assert streamed.loc[streamed["event"], "ts"].iloc[0] == ts[8 * PER_DAY + 5]


# --------------------------------------------------------------------------------------------- rules


def test_threshold_rule():
    ts = pd.date_range(T0, periods=8, freq="1min")
    v = [10, 96, 98, 50, np.nan, 99, 1, 0.5]
    hits = an.threshold_rule(ts, v, above=95, below=1)
    assert list(hits["value"]) == [96, 98, 99, 0.5]
    assert list(hits["direction"]) == ["up", "up", "up", "down"]
    assert list(hits["event"]) == [True, False, True, True]  # the NaN is skipped, 50 ended the first run
    assert list(hits["limit"]) == [95, 95, 95, 1]
    assert an.threshold_rule(ts, v).empty


def test_rate_rule():
    ts = pd.date_range(T0, periods=12, freq="1min")
    v = np.array([40, 40, 41, 40, 41, 40, 60, 80, 80, 80, 80, 80], dtype=float)
    hits = an.rate_rule(ts, v, max_rise=5.0, over=timedelta(minutes=5))
    # the rate at a sample is against the sample `over` before it: at 6 min (60 − 40) / 5 = 4/min;
    # at 7 min (80 − 41) / 5 = 7.8/min; ...; at 11 min (80 − 60) / 5 = 4/min again
    assert list(hits["ts"]) == list(ts[[7, 8, 9, 10]])
    assert list(hits["rate"]) == pytest.approx([7.8, 8.0, 7.8, 8.0])
    assert list(hits["event"]) == [True, False, False, False]
    falls = an.rate_rule(ts, v[::-1], max_fall=5.0)
    assert len(falls) > 0 and (falls["direction"] == "down").all() and (falls["rate"] < -5).all()
    assert an.rate_rule(ts[:1], v[:1], max_rise=1.0).empty


def test_absence_rule():
    ts = pd.to_datetime(["2026-03-02 00:00", "2026-03-02 00:01", "2026-03-02 00:30", "2026-03-02 00:31"],
                        utc=True)
    gaps = an.absence_rule(ts, max_gap=timedelta(minutes=10), now=datetime(2026, 3, 2, 1, 0, tzinfo=UTC))
    assert list(gaps["gap_seconds"]) == [29 * 60, 29 * 60]
    assert list(gaps["open"]) == [False, True]
    assert gaps["gap_start"].iloc[1] == ts[3]
    none = an.absence_rule(ts, max_gap=timedelta(hours=1), now=datetime(2026, 3, 2, 1, 0, tzinfo=UTC))
    assert none.empty
    never = an.absence_rule([], max_gap=timedelta(minutes=10), now=datetime(2026, 3, 2, 1, tzinfo=UTC),
                            start=datetime(2026, 3, 2, tzinfo=UTC))
    assert list(never["gap_seconds"]) == [3600.0] and never["open"].iloc[0]


def test_rules_are_unique_per_metric_and_kind():
    with pytest.raises(ValueError, match="more than one rule"):
        an.JobSettings(rules=(an.Rule("a", "cpu_pct", "threshold", above=90),
                              an.Rule("b", "cpu_pct", "threshold", above=99)))


# ---------------------------------------------------------------------------------------------- job

NOW = datetime(2026, 3, 6, 12, 2, 30, tzinfo=UTC)  # mid-bucket: 12:00 is still filling


def _samples(machine: str, start: datetime, end: datetime, seed: int,
             spike_at: datetime | None = None) -> list[dict]:
    rng = np.random.default_rng(seed)
    out = []
    t = start
    while t < end:
        hour = t.hour + t.minute / 60
        cpu = 30 + 20 * max(0.0, np.sin(np.pi * (hour - 7) / 14)) + 2 * rng.standard_normal()
        if spike_at is not None and spike_at <= t < spike_at + timedelta(minutes=15):
            cpu = 99.0
        out.append(dict(machine_id=machine, ts=t, source="test", schema_version=1, cpu_pct=float(cpu),
                        cpu_count=4,
                        load1=4 * cpu / 100, mem_total_bytes=16 << 30,
                        mem_used_bytes=int((8 + 0.05 * rng.standard_normal()) * (1 << 30)),
                        swap_total_bytes=2 << 30, swap_used_bytes=1 << 20))
        t += timedelta(minutes=1)
    return out


def _fill(store: Store) -> datetime:
    start = NOW - timedelta(days=4)
    spike = datetime(2026, 3, 6, 11, 40, tzinfo=UTC)
    b = Batch()
    b.add_rows("machines", [{"machine_id": m} for m in ("m1", "m2", "m3")])
    b.add_rows("sys_samples", _samples("m1", start, NOW, seed=1, spike_at=spike))
    b.add_rows("sys_samples", _samples("m2", start, NOW, seed=2))
    b.add_rows("sys_samples", _samples("m3", start, NOW - timedelta(minutes=25), seed=3))  # went silent
    store.write(b)
    return spike


def _anomalies(store: Store) -> pd.DataFrame:
    with store.raw_reader() as con:
        cur = con.execute("SELECT * FROM anomalies ORDER BY machine_id, metric, ts, detector")
        return pd.DataFrame(cur.fetchall(), columns=[d[0] for d in cur.description])


def test_detect_for_machines_reads_the_store_and_finds_the_newest_anomalies(store):
    spike = _fill(store)
    with store.reader() as con:
        found = an.detect_for_machines(con, NOW)
    assert list(found.columns) == an.ANOMALY_COLUMNS
    stat = found[found["detector"] == an.DETECTOR_NAME]
    assert set(stat["machine_id"]) == {"m1"}
    cpu = stat[stat["metric"] == "cpu_pct"].sort_values("ts")
    assert cpu["ts"].iloc[0] == spike and cpu["value"].iloc[0] == pytest.approx(99.0)
    assert json.loads(cpu["details"].iloc[0])["event"] is True
    assert (cpu["score"] >= 0.5).all() and (cpu["baseline"] < 70).all() and cpu["rule"].isna().all()
    assert cpu["ts"].max() < datetime(2026, 3, 6, 12, 0, tzinfo=UTC)  # the filling bucket is not scored
    thr = found[found["detector"] == "threshold"]
    assert set(thr["rule"]) == {"cpu_saturated"} and len(thr) == 15 and set(thr["machine_id"]) == {"m1"}
    gone = found[found["detector"] == "absence"]
    assert list(gone["machine_id"]) == ["m3"] and gone["metric"].iloc[0] == "sys_samples"
    assert json.loads(gone["details"].iloc[0])["open"] is True


def test_job_writes_rows_once_and_rerunning_writes_nothing(store):
    _fill(store)
    written = run_anomaly_job(store, NOW)
    rows = _anomalies(store)
    assert written == len(rows) > 0
    assert set(rows["detector"]) == {an.DETECTOR_NAME, "threshold", "absence"}
    assert (rows["detected_at"] == pd.Timestamp(NOW)).all()
    assert run_anomaly_job(store, NOW) == 0
    assert run_anomaly_job(store, NOW + timedelta(seconds=20)) == 0  # same complete buckets
    assert len(_anomalies(store)) == written
    # a later cycle only adds what is new (m3's open gap keeps its first row)
    later = run_anomaly_job(store, NOW + timedelta(minutes=5))
    assert later >= 0 and len(_anomalies(store)) == written + later
    assert (_anomalies(store)["machine_id"] == "m3").sum() == 1


def test_job_on_an_empty_store_writes_nothing(store):
    assert run_anomaly_job(store, NOW) == 0


def test_job_finds_the_demo_fleets_load_storm(tmp_path):
    from sample_data import demo_fleet as demo

    s = Store(tmp_path / "vc.duckdb")
    s.migrate()
    end = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
    summary = demo.generate(s, days=5, machines=12, seed=7, end=end)
    storm = next(e for e in summary.episodes if e.kind == "load_storm")
    assert run_anomaly_job(s, storm.start + timedelta(minutes=30)) > 0
    rows = _anomalies(s)
    stat = rows[rows["detector"] == an.DETECTOR_NAME]
    assert set(stat["machine_id"]) == {storm.machine_id}
    assert {"cpu_pct", "load_per_core"} <= set(stat["metric"])
    assert stat["ts"].min() == pd.Timestamp(storm.start)


# ------------------------------------------------------------------------------------------- bench


def test_nab_bench_json_on_one_file(tmp_path):
    key = "realAWSCloudwatch/rds_cpu_utilization_e47b3b.csv"
    labels = json.loads((NAB / "labels.json").read_text())
    one = tmp_path / "labels.json"
    one.write_text(json.dumps({"windows": {key: labels["windows"][key]},
                               "labels": {key: labels["labels"][key]}}))
    cmd = [sys.executable, str(REPO / "bench" / "anomaly_nab.py"), "--labels", str(one), "--json"]
    out = subprocess.run(cmd,
                         capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    last = json.loads(out.stdout.strip().splitlines()[-1])
    assert set(last) == {"detector", "baseline"}
    for m in last.values():
        assert {"precision", "recall", "f1", "mean_delay_minutes", "fp_per_day"} <= set(m)
        for k in ("precision", "recall", "f1"):
            assert 0.0 <= m[k] <= 1.0
        assert m["mean_delay_minutes"] is None or m["mean_delay_minutes"] >= 0
        assert m["fp_per_day"] >= 0
        assert m["windows"] == 2 and m["days"] == pytest.approx(14.0, abs=0.1)
    assert "e47b3b" in out.stdout and "OVERALL" in out.stdout


def test_nab_windows_are_built_from_points_when_labels_have_none(tmp_path):
    sys.path.insert(0, str(REPO / "bench"))
    try:
        import anomaly_nab
    finally:
        sys.path.remove(str(REPO / "bench"))
    key = "realAWSCloudwatch/rds_cpu_utilization_e47b3b.csv"
    labels = json.loads((NAB / "labels.json").read_text())
    f = tmp_path / "points.json"
    f.write_text(json.dumps({"windows": {}, "labels": {key: labels["labels"][key]}}))
    windows, points, notes = anomaly_nab.load_windows(f, NAB / "data")
    assert len(windows[key]) == 2 and len(notes) == 1 and "NAB-style" in notes[0]
    for (a, b), p in zip(windows[key], points[key], strict=True):
        # 10% of 4032 points / 2 anomalies = 201 points ≈ 1005 minutes, centred on the point
        assert a < p < b and (b - a) == pd.Timedelta(minutes=5 * 200)
        assert abs((p - a) - (b - p)) <= pd.Timedelta(minutes=5)
    # the shipped windows agree with that construction
    shipped = [(pd.Timestamp(a, tz="UTC"), pd.Timestamp(b, tz="UTC")) for a, b in labels["windows"][key]]
    for (sa, _), (a, _) in zip(shipped, windows[key], strict=True):
        assert abs((sa - a).total_seconds()) <= 600

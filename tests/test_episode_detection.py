"""Replay the demo fleet's history through detection and check every injected episode is caught.

The demo generator writes two days of history with four episodes (a filling disk, a load storm, swap
thrash, a machine going silent). The daemon's analysis steps (the anomaly job, then the alert
service with the shipped rules) run here at a series of `now` values 5 minutes apart, as the daemon
would have run them while the history happened; each step sees only rows at or before its `now`.
An episode counts as detected at the first step where its rule fires for its machine (or, for the
load storm, the anomaly detector flags the machine's load or CPU). The bound is the episode itself:
a detection must come after the episode starts and before it is over, not within a fixed number of
seconds that depends on this machine's speed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sample_data import demo_fleet as demo
from workbench.alerts.delivery import Notifier
from workbench.alerts.rules import DEFAULT_RULES
from workbench.alerts.service import AlertService
from workbench.store import Store
from workbench.views.anomaly_job import run_anomaly_job

END = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
STEP = timedelta(minutes=5)
LEAD_IN = timedelta(minutes=15)  # evaluate a little before each episode: nothing may fire early
MAX_STEPS = 400  # bound on the whole replay (the four episodes span ~14 h of 5-minute steps at most)

DETECTING_RULES = {
    "disk_filling": {"disk_free_low", "disk_fill_forecast"},
    "load_storm": {"load_high"},
    "swap_thrash": {"swap_rising"},
    "silent": {"machine_silent"},
}
ANOMALY_METRICS = {"load_storm": {"load_per_core", "cpu_pct"}}


@dataclass
class Detection:
    episode: demo.Episode
    length: timedelta
    detected_at: datetime | None = None
    by: str = ""
    early: str = ""  # a detecting rule that fired before the episode started (a false positive)


def _anomaly_hit(store: Store, ep: demo.Episode, now: datetime) -> str | None:
    metrics = ANOMALY_METRICS.get(ep.kind)
    if not metrics:
        return None
    end = ep.end or END
    with store.raw_reader() as con:
        row = con.execute(
            "SELECT detector || ':' || metric FROM anomalies WHERE machine_id = ? AND metric IN "
            f"({', '.join('?' * len(metrics))}) AND ts >= ? AND ts < ? AND detected_at <= ? ORDER BY ts LIMIT 1",
            [ep.machine_id, *sorted(metrics), ep.start, end, now]).fetchone()
    return None if row is None else f"anomaly {row[0]}"


def replay(store: Store, episodes: list[demo.Episode], tmp_path) -> list[Detection]:
    svc = AlertService(store, [DEFAULT_RULES], Notifier(tmp_path / "alerts.jsonl", [], 100))
    found = [Detection(ep, (ep.end or END) - ep.start) for ep in sorted(episodes, key=lambda e: e.start)]
    now = min(d.episode.start for d in found) - LEAD_IN
    steps = 0
    try:
        for d in found:
            ep = d.episode
            now = max(now, ep.start - LEAD_IN)
            while d.detected_at is None and now <= min(ep.start + d.length, END) and steps < MAX_STEPS:
                steps += 1
                run_anomaly_job(store, now)
                for tr in svc.evaluate(now):
                    if (tr.to_state == "firing" and tr.machine_id == ep.machine_id
                            and tr.rule_id in DETECTING_RULES[ep.kind]):
                        if now < ep.start:
                            d.early = f"{tr.rule_id} at {now:%H:%M}"
                        elif d.detected_at is None:
                            d.detected_at, d.by = now, f"alert {tr.rule_id}"
                if d.detected_at is None and now >= ep.start:
                    hit = _anomaly_hit(store, ep, now)
                    if hit:
                        d.detected_at, d.by = now, hit
                now += STEP
    finally:
        svc.close()
    return found


def _table(found: list[Detection]) -> str:
    lines = [f"{'episode':<13} {'machine':<18} {'start':<17} {'length':>7} {'detected':<17} {'delay':>6}  by"]
    for d in found:
        ep = d.episode
        det = f"{d.detected_at:%Y-%m-%d %H:%M}" if d.detected_at else "NOT DETECTED"
        delay = f"{(d.detected_at - ep.start).total_seconds() / 60:.0f}m" if d.detected_at else "-"
        lines.append(f"{ep.kind:<13} {ep.machine_id:<18} {ep.start:%Y-%m-%d %H:%M} "
                     f"{d.length.total_seconds() / 60:>6.0f}m {det:<17} {delay:>6}  {d.by}")
    return "\n".join(lines)


def test_every_demo_episode_is_detected(store: Store, tmp_path) -> None:
    summary = demo.generate(store, days=2, machines=12, seed=42, end=END)
    kinds = sorted(e.kind for e in summary.episodes)
    assert kinds == sorted(DETECTING_RULES), kinds
    found = replay(store, summary.episodes, tmp_path)
    print("\n" + _table(found))
    for d in found:
        ep = d.episode
        assert not d.early, f"{ep.kind} on {ep.machine_id}: {d.early} fired before the episode"
        assert d.detected_at is not None, f"{ep.kind} on {ep.machine_id} was not detected:\n{_table(found)}"
        delay = d.detected_at - ep.start
        assert timedelta(0) <= delay < d.length, f"{ep.kind}: detected {delay} after start, episode {d.length}"
    # The alerts are stored as firing rows, with evidence, for the episode machines.
    with store.raw_reader() as con:
        fired = con.execute("SELECT rule_id, machine_id, evidence_json FROM alerts WHERE fired_at IS NOT NULL"
                            ).fetchall()
    by_rule = {(r, m) for r, m, _ in fired}
    assert ("machine_silent", next(e.machine_id for e in summary.episodes if e.kind == "silent")) in by_rule
    assert all(json.loads(ev) for _, _, ev in fired if ev)

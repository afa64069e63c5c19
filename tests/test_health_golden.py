"""Golden health scores: a small fixed fleet at a fixed `now`, with the scores worked out by hand.

Ramp: score = clamp(1 - (value - warn) / (crit - warn), 0, 1). Machine score = min(weighted mean,
0.3 + 0.7 * worst factor). Severity: >= 0.8 ok, >= 0.5 warning, else critical.
System weights (defaults): cpu 1, memory 1, load 1, swap 0.5, disk 1.5, freshness 2 (sum 7).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from workbench.config import HealthConfig, VcConfig
from workbench.store import Batch, Store
from workbench.views.health import fleet_health, health_factors, machine_health
from workbench.views.health_fleet import fleet_health_factors
from workbench.views.health_job import FLEET_ID, health_factor_history, health_history, run_health_job

NOW = datetime(2026, 3, 1, 12, 0, 30, tzinfo=UTC)
GiB = 1024**3


def _machine(mid: str, cores: int = 4) -> dict:
    return dict(machine_id=mid, display_name=mid, tags=["test"], is_demo=False, enabled=True, cpu_count=cores,
                added_at=NOW - timedelta(days=1), updated_at=NOW - timedelta(days=1))


def _sample(mid: str, age_s: float = 30, cpu: float = 10, mem_pct: float = 40, load5: float = 1.0,
            swap_pct: float = 0.0, cores: int = 4) -> dict:
    return dict(machine_id=mid, ts=NOW - timedelta(seconds=age_s), source="test", schema_version=1,
                cpu_pct=cpu, cpu_count=cores, load5=load5, mem_total_bytes=100 * GiB,
                mem_used_bytes=int(mem_pct * GiB), swap_total_bytes=100 * GiB, swap_used_bytes=int(swap_pct * GiB))


def _fs(mid: str, used_pct: float, age_s: float = 30) -> dict:
    return dict(machine_id=mid, ts=NOW - timedelta(seconds=age_s), mount="/", source="test", schema_version=1,
                fstype="ext4", total_bytes=1000, used_bytes=int(10 * used_pct),
                free_bytes=1000 - int(10 * used_pct), used_pct=used_pct)


def _acct(mid: str, key: str, window: str, used: float | None, age_s: float = 60) -> dict:
    return dict(machine_id=mid, collected_at=NOW - timedelta(seconds=age_s), source="caut", account_key=key,
                window_name=window, schema_version=1, provider=key.split(":")[0], used_pct=used)


def _rch(mid: str, queued: int, active: int, healthy: int, total: int, age_s: float = 60,
         success: bool = True) -> dict:
    return dict(machine_id=mid, collected_at=NOW - timedelta(seconds=age_s), source="rch", schema_version=1,
                success=success, queued_builds=queued, active_builds=active, workers_healthy=healthy,
                workers_total=total)


def _run(mid: str, collector: str, status: str, age_s: float) -> dict:
    t = NOW - timedelta(seconds=age_s)
    return dict(run_id=f"{mid}-{collector}-{age_s}", machine_id=mid, collector=collector, started_at=t,
                finished_at=t + timedelta(seconds=1), status=status)


def _mail(message_id: int, age_s: float, importance: str, ack: bool) -> dict:
    return dict(machine_id="m-friction", db_path="~/mail.db", message_id=message_id,
                created_at=NOW - timedelta(seconds=age_s), source="mail", schema_version=1, importance=importance,
                is_urgent=importance == "urgent", ack_required=ack, observed_at=NOW - timedelta(seconds=age_s))


def _rcpt(message_id: int, msg_age_s: float, agent: int, state: str, seen_age_s: float, ack: bool) -> dict:
    return dict(machine_id="m-friction", db_path="~/mail.db", message_id=message_id,
                message_created_at=NOW - timedelta(seconds=msg_age_s), agent_id=agent, state=state, source="mail",
                schema_version=1, ack_required=ack, observed_at=NOW - timedelta(seconds=seen_age_s))


def build(store: Store, with_friction: bool = True) -> None:
    ids = ["m-ok", "m-acct", "m-hot", "m-rch", "m-fresh", "m-friction", "m-never"]
    b = Batch()
    b.add_upserts("machines", [_machine(m) for m in ids])
    healthy = ["m-ok", "m-acct", "m-rch", "m-fresh", "m-friction"]
    # m-hot: every system factor exactly half way between warn and crit (score 0.5).
    b.add_rows("sys_samples", [_sample(m) for m in healthy]
               + [_sample("m-hot", age_s=540, cpu=89, mem_pct=91, load5=7.0, swap_pct=50)])
    b.add_rows("sys_filesystems", [_fs(m, 50) for m in healthy] + [_fs("m-hot", 91, age_s=540)])
    b.add_rows("account_usage_snapshots", [
        _acct("m-ok", "claude:a@x", "primary", 50.0),
        # m-acct: the latest collection counts (95 % an hour earlier is history), 'none' and NULL are not readings.
        _acct("m-acct", "claude:b@x", "primary", 95.0, age_s=3600),
        _acct("m-acct", "claude:b@x", "primary", 70.0),
        _acct("m-acct", "claude:b@x", "secondary", 89.0),
        _acct("m-acct", "openai:c@x", "none", None),
        _acct("m-acct", "openai:c@x", "primary", None),
        _acct("m-hot", "claude:d@x", "primary", 80.0),
    ])
    b.add_rows("rch_status_snapshots", [
        _rch("m-ok", queued=0, active=1, healthy=2, total=2),
        # m-rch: 17.5 queued is not possible, 17 is: queue score 1 - 12/25 = 0.52; no healthy worker → 0.
        _rch("m-rch", queued=17, active=2, healthy=0, total=3),
        _rch("m-rch", queued=0, active=0, healthy=3, total=3, age_s=30, success=False),  # failed call: ignored
        _rch("m-fresh", queued=0, active=0, healthy=0, total=0),  # no workers: local builds, no factor
    ])
    b.add_rows("collector_runs", [
        _run("m-ok", "system", "ok", 30),
        _run("m-fresh", "system", "ok", 30),
        _run("m-fresh", "caut", "ok", 361),       # 6 intervals of 60 s → 1 - 3/7
        _run("m-fresh", "caut", "error", 61),
        _run("m-fresh", "rch", "error", 100),     # never ok → 0
        _run("m-fresh", "ntm", "skipped", 10),    # skipped runs are not runs
    ])
    b.add_rows("cass_health_snapshots", [
        dict(machine_id="m-fresh", collected_at=NOW - timedelta(seconds=60), source="cass", schema_version=1,
             index_age_seconds=21600 + 75600.0),  # 27 h: 1 - 21.0/42 = 0.5
    ])
    b.add_rows("sysmoni_snapshots", [
        dict(machine_id="m-friction", ts=NOW - timedelta(seconds=60), collected_at=NOW, source="sysmoni",
             schema_version=1, variant="go", temp_max_c=86.0, temp_max_zone="cpu"),  # 1 - 6/15 = 0.6
        dict(machine_id="m-friction", ts=NOW + timedelta(seconds=60), collected_at=NOW, source="sysmoni",
             schema_version=1, variant="go", temp_max_c=99.0, temp_max_zone="cpu"),  # the future: unseen
    ])
    b.add_rows("net_events", [
        dict(machine_id="m-friction", event_hash=f"h{i}", ts=NOW - timedelta(minutes=1 + i % 50), source="rano",
             schema_version=1, event="close", duration_ms=100 if i < 110 else 60_000) for i in range(120)
    ] + [dict(machine_id="m-friction", event_hash="old", ts=NOW - timedelta(hours=2), source="rano",
              schema_version=1, event="close", duration_ms=1)])
    store.write(b)
    if with_friction:
        f = Batch()
        denies = [NOW - timedelta(minutes=i) for i in range(1, 18)]  # 17 in the hour → 1 - 12/25
        f.add_rows("dcg_events", [
            dict(machine_id="m-friction", db_path="h.db", event_id=i, ts=ts, source="dcg", schema_version=1,
                 outcome=outcome)
            for i, (ts, outcome) in enumerate([(t, "deny") for t in denies]
                                              + [(NOW - timedelta(minutes=5), "allow"),
                                                 (NOW - timedelta(hours=3), "deny"),
                                                 (NOW + timedelta(minutes=1), "deny")])])  # old, future: not counted
        f.add_rows("mail_messages", [_mail(1, 600, "urgent", False), _mail(2, 900, "urgent", False),
                                     _mail(3, 7200, "normal", True), _mail(4, 7200, "urgent", True),
                                     _mail(5, 600, "normal", True)])
        f.add_rows("mail_recipients", [
            _rcpt(1, 600, 1, "unread", 600, False), _rcpt(1, 600, 2, "unread", 600, False),  # 2 urgent unread
            _rcpt(2, 900, 1, "unread", 900, False), _rcpt(2, 900, 1, "read", 300, False),   # read since: no
            _rcpt(3, 7200, 1, "unread", 7200, True), _rcpt(3, 7200, 1, "read", 3600, True),  # 2 h, not acked
            _rcpt(4, 7200, 1, "unread", 7200, True), _rcpt(4, 7200, 1, "acked", 60, True),   # acked: no
            _rcpt(5, 600, 1, "unread", 600, True),  # ack pending 10 min: not yet overdue
        ])
        store.write(f)


def _factors(store: Store, cfg: HealthConfig) -> dict[tuple[str, str], dict]:
    with store.reader() as con:
        from workbench.views.health import all_health_factors
        rows = all_health_factors(con, cfg, NOW, interval_seconds=60).to_pyarrow().to_pylist()
    return {(r["machine_id"], r["factor"]): r for r in rows}


def _health(store: Store, cfg: HealthConfig) -> dict[str, dict]:
    with store.reader() as con:
        rows = machine_health(con, cfg, NOW, include_fleet=True, interval_seconds=60).to_pyarrow().to_pylist()
    return {r["machine_id"]: r for r in rows}


def test_fleet_factor_values_and_scores(store: Store) -> None:
    build(store)
    f = _factors(store, HealthConfig())
    system = ("cpu", "memory", "load_per_core", "swap", "disk", "freshness")
    got = {k: (r["value"], r["score"]) for k, r in f.items() if k[1] not in system}
    assert got == {
        ("m-ok", "accounts"): (50.0, 1.0),
        ("m-ok", "rch_queue"): (0.0, 1.0),
        ("m-ok", "rch_workers"): (0.5, 1.0),
        # runs finish 1 s after they start: the ok run 30 s ago finished 29 s ago.
        ("m-ok", "freshness:system"): (pytest.approx(29 / 60), 1.0),
        ("m-acct", "accounts"): (89.0, 0.5),
        ("m-hot", "accounts"): (80.0, 1.0),
        ("m-rch", "rch_queue"): (17.0, 0.52),
        ("m-rch", "rch_workers"): (None, 0.0),
        ("m-fresh", "freshness:system"): (pytest.approx(29 / 60), 1.0),
        ("m-fresh", "rch_queue"): (0.0, 1.0),  # an answered status with no workers still has a queue
        ("m-fresh", "freshness:caut"): (6.0, round(1 - 3 / 7, 4)),
        ("m-fresh", "freshness:rch"): (None, 0.0),
        ("m-fresh", "cass_index"): (97200.0, 0.5),
        ("m-friction", "dcg_denies"): (17.0, 0.52),
        ("m-friction", "mail_urgent_unread"): (2.0, round(1 - 1 / 9, 4)),
        ("m-friction", "mail_ack_overdue"): (1.0, 0.8),
        ("m-friction", "net_short_conns"): (110.0, 0.5),
        ("m-friction", "temperature"): (86.0, 0.6),
    }
    assert f[("m-acct", "accounts")]["detail"] == "most used: claude:b@x secondary at 89.0% (2 account windows)"
    assert f[("m-rch", "rch_workers")]["detail"] == "19 builds active or queued on 0/3 healthy workers"
    assert f[("m-fresh", "freshness:rch")]["detail"] == "rch: no ok run among 1 (last: error)"
    assert f[("m-fresh", "freshness:caut")]["detail"] == "caut last ok 360s ago (interval 60s)"
    # Missing source data → no factor at all (m-fresh has rch rows but no workers: builds locally).
    assert ("m-fresh", "rch_workers") not in f and ("m-never", "accounts") not in f
    assert not any(k[0] == "m-never" and k[1] != "freshness" and r["score"] is not None for k, r in f.items())


def test_machine_scores_golden(store: Store) -> None:
    build(store)
    h = _health(store, HealthConfig())
    got = {m: (r["score"], r["severity"], r["worst_factor"]) for m, r in h.items()}
    assert got == {
        "m-ok": (1.0, "ok", "cpu"),
        # accounts 0.5 (w 1): mean (7 + 0.5) / 8 = 0.9375, capped at 0.3 + 0.7 * 0.5 = 0.65.
        "m-acct": (0.65, "warning", "accounts"),
        # every system factor 0.5, accounts 1.0 (w 1): mean (3.5 + 1) / 8 = 0.5625 < cap 0.65.
        "m-hot": (0.5625, "warning", "cpu"),
        # rch_workers 0 → cap 0.3.
        "m-rch": (0.3, "critical", "rch_workers"),
        # freshness:rch never ok → 0 → cap 0.3.
        "m-fresh": (0.3, "critical", "freshness:rch"),
        # worst: net_short_conns 0.5 → cap 0.65; mean is higher.
        "m-friction": (0.65, "warning", "net_short_conns"),
        # never collected: freshness 0 is its only factor.
        "m-never": (0.0, "critical", "freshness"),
    }
    assert h["m-friction"]["worst_detail"] == "110 connections closed within 2000 ms in the last hour (of 120)"


def test_system_only_scores_unchanged(store: Store) -> None:
    """The existing functions without include_fleet score the system factors only."""
    build(store)
    with store.reader() as con:
        sys_only = {r["machine_id"]: r["score"] for r in machine_health(con, HealthConfig(), NOW)
                    .to_pyarrow().to_pylist()}
        names = {r["factor"] for r in health_factors(con, HealthConfig(), NOW).to_pyarrow().to_pylist()}
    assert sys_only["m-acct"] == 1.0 and sys_only["m-rch"] == 1.0 and sys_only["m-hot"] == 0.5
    assert names == {"cpu", "memory", "load_per_core", "swap", "disk", "freshness"}


def test_weight_change_moves_score_as_documented(store: Store) -> None:
    build(store)
    heavier = HealthConfig.model_validate({"weights": {"accounts": 2.0}})
    # m-hot: (3.5 + 2 * 1.0) / (7 + 2) = 0.6111 (still under the cap 0.65).
    assert _health(store, heavier)["m-hot"]["score"] == round(5.5 / 9, 4)
    off = HealthConfig.model_validate({"weights": {"accounts": 0.0}})
    h = _health(store, off)
    # A weight of 0 takes the factor out: m-hot is its system factors only, m-acct is healthy again.
    assert h["m-hot"]["score"] == 0.5 and h["m-acct"]["score"] == 1.0 and h["m-acct"]["severity"] == "ok"
    stricter = HealthConfig.model_validate({"thresholds": {"account_used_pct": {"warn": 60, "crit": 90}}})
    # accounts 89 on a 60..90 ramp → 1 - 29/30 = 0.0333; cap 0.3 + 0.7 * 0.0333 = 0.3233.
    assert _health(store, stricter)["m-acct"]["score"] == round(0.3 + 0.7 * round(1 - 29 / 30, 4), 4)


def test_fleet_row_and_factors_absent_without_tables(store: Store) -> None:
    build(store, with_friction=False)
    with store.reader() as con:
        ff = fleet_health_factors(con, HealthConfig(), NOW, interval_seconds=60).to_pyarrow().to_pylist()
        fleet = fleet_health(con, HealthConfig(), NOW, include_fleet=True, interval_seconds=60).to_pyarrow().to_pylist()
    names = {r["factor"] for r in ff}
    assert "dcg_denies" not in names and "mail_urgent_unread" not in names and "accounts" in names
    assert fleet[0]["worst_machine"] == "m-never" and fleet[0]["critical"] == 3 and fleet[0]["machines"] == 7


def test_health_job_is_idempotent_per_minute_and_charts(store: Store) -> None:
    build(store)
    cfg = VcConfig()
    first = run_health_job(store, cfg, NOW)
    assert first["health_summary"] == 8  # 7 machines + the fleet row
    assert first["health_factors"] > 30
    assert run_health_job(store, cfg, NOW + timedelta(seconds=20)) == {"health_factors": 0, "health_summary": 0}
    later = run_health_job(store, cfg, NOW + timedelta(minutes=1))
    assert later["health_summary"] == 8
    lo, hi = NOW - timedelta(hours=1), NOW + timedelta(hours=1)
    with store.reader() as con:
        hist = health_history(con, "m-rch", lo, hi).to_pyarrow().to_pylist()
        fleet = health_history(con, FLEET_ID, lo, hi).to_pyarrow().to_pylist()
        fh = health_factor_history(con, "m-fresh", lo, hi).to_pyarrow().to_pylist()
    assert [r["ts"] for r in hist] == [datetime(2026, 3, 1, 12, 0, tzinfo=UTC), datetime(2026, 3, 1, 12, 1, tzinfo=UTC)]
    assert hist[0]["score"] == 0.3 and hist[0]["worst_factor"] == "rch_workers" and hist[0]["factors_scored"] == 8
    assert fleet[0]["worst_detail"].startswith("m-never: ")
    caut = [r for r in fh if r["factor"] == "freshness:caut"]
    # One minute later the caut run is one interval older.
    assert [r["value"] for r in caut] == [6.0, 7.0]

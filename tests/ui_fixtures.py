"""A small populated database for the dashboard tests, built once per session.

Written through the real `Store.write(Batch)` into the migrated schema, so the dashboard is tested
against exactly what collectors and the daemon would leave behind. Three machines: `alpha`
(real, a filling /data disk, top processes), `demo-01` (a demo machine under memory pressure),
`ghost` (configured, never collected). `alpha` and `demo-01` also carry the fleet tools' rows of
`tests.fleet_fixtures` (accounts, repos, agents, beads, build farm, events, tool availability).
Three hours of one-minute samples end at `t0`, the moment the fixture was built. Freshness
thresholds are set to a day in the config so that scores do not drift while the tests run.

Test modules use it with `pytest_plugins = ["tests.ui_fixtures"]`.
"""

from __future__ import annotations

import math
import os
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pytest

from tests.fleet_fixtures import FleetFacts, write_fleet
from workbench.config import VcConfig, load_config
from workbench.store import Batch, Store

GIB = 1024**3
HOURS = 3
SOURCE = "system"

ALPHA, DEMO, GHOST = "alpha", "demo-01", "ghost"
ERROR_TEXT = "ssh: connect to host ghost port 22: Connection refused"
LOCK_BLOCKER = "jupyter-kernel"


@dataclass(frozen=True)
class UiDb:
    config_path: Path
    db_path: Path
    t0: datetime
    fleet: FleetFacts

    def config(self) -> VcConfig:
        return load_config(self.config_path)

    def store(self) -> Store:
        return Store.from_config(self.config(), writer_name="pytest")


def write_config(path: Path, data_dir: Path) -> Path:
    path.write_text(textwrap.dedent(f"""
        [storage]
        data_dir = "{data_dir}"
        lock_retry_seconds = 5

        [health.thresholds.stale_seconds]
        warn = 86400
        crit = 172800
    """))
    return path


def _stamp(machine_id: str, is_demo: bool, **row: object) -> dict:
    return {"machine_id": machine_id, "source": SOURCE, "source_version": "1", "schema_version": 1,
            "is_demo": is_demo, **row}


def _machines(t0: datetime) -> pa.Table:
    rows = [
        {"machine_id": ALPHA, "display_name": "alpha.prod", "hostname": "alpha", "ssh": "ops@alpha",
         "tags": ["prod", "gpu"], "is_demo": False, "enabled": True, "cpu_count": 8},
        {"machine_id": DEMO, "display_name": "demo-01", "hostname": "demo-01", "ssh": "local",
         "tags": ["demo"], "is_demo": True, "enabled": True, "cpu_count": 4},
        {"machine_id": GHOST, "display_name": "ghost", "hostname": "ghost", "ssh": "ops@ghost",
         "tags": ["prod"], "is_demo": False, "enabled": True, "cpu_count": None},
    ]
    for r in rows:
        r["added_at"] = r["updated_at"] = t0 - timedelta(days=1)
    schema = pa.schema([("machine_id", pa.string()), ("display_name", pa.string()), ("hostname", pa.string()),
                        ("ssh", pa.string()), ("tags", pa.list_(pa.string())), ("is_demo", pa.bool_()),
                        ("enabled", pa.bool_()), ("cpu_count", pa.int32()),
                        ("added_at", pa.timestamp("us", tz="UTC")),
                        ("updated_at", pa.timestamp("us", tz="UTC"))])
    return pa.Table.from_pylist(rows, schema=schema)


def _samples(t0: datetime) -> list[dict]:
    rows = []
    n = HOURS * 60
    for i in range(n + 1):
        ts = t0 - timedelta(minutes=n - i)
        wave = math.sin(i / 15)
        rows.append(_stamp(
            ALPHA, False, ts=ts, cpu_pct=35 + 10 * wave, cpu_count=8, load1=2.0 + wave, load5=2.4, load15=2.2,
            mem_total_bytes=64 * GIB, mem_used_bytes=int(25.6 * GIB), mem_available_bytes=int(38.4 * GIB),
            swap_total_bytes=8 * GIB, swap_used_bytes=int(0.4 * GIB), net_rx_bps=1.5e6 + 2e5 * wave,
            net_tx_bps=3e5, uptime_seconds=86400 * 12 + 60 * i,
        ))
        rows.append(_stamp(
            DEMO, True, ts=ts, cpu_pct=70 + 5 * wave, cpu_count=4, load1=3.0, load5=3.2, load15=3.1,
            mem_total_bytes=16 * GIB, mem_used_bytes=int(16 * GIB * 0.92),
            mem_available_bytes=int(16 * GIB * 0.08), swap_total_bytes=0, swap_used_bytes=0,
            net_rx_bps=2e4, net_tx_bps=1e4, uptime_seconds=3600 + 60 * i,
        ))
    return rows


def _filesystems(t0: datetime) -> list[dict]:
    rows = []
    steps = HOURS * 12
    for i in range(steps + 1):
        ts = t0 - timedelta(minutes=5 * (steps - i))
        data_pct = 80 + 11 * i / steps  # /data fills from 80% to 91% over the three hours
        for machine, demo, mount, device, total, pct in (
            (ALPHA, False, "/", "/dev/nvme0n1p2", 200 * GIB, 50.0),
            (ALPHA, False, "/data", "/dev/sdb1", 2000 * GIB, data_pct),
            (DEMO, True, "/", "/dev/vda1", 40 * GIB, 40.0),
        ):
            used = int(total * pct / 100)
            rows.append(_stamp(machine, demo, ts=ts, mount=mount, device=device, fstype="ext4",
                               total_bytes=total, used_bytes=used, free_bytes=total - used, used_pct=pct))
    return rows


def _processes(t0: datetime) -> list[dict]:
    procs = [
        ("cpu", 1, 4101, "claude", "dev", 180.5, 2 * GIB, "claude --resume"),
        ("cpu", 2, 4230, "cargo", "dev", 95.0, GIB, "cargo build --release"),
        ("cpu", 3, 911, "postgres", "postgres", 12.5, 3 * GIB, "postgres: writer"),
        ("memory", 1, 911, "postgres", "postgres", 12.5, 3 * GIB, "postgres: writer"),
        ("memory", 2, 4101, "claude", "dev", 180.5, 2 * GIB, "claude --resume"),
        ("memory", 3, 4230, "cargo", "dev", 95.0, GIB, "cargo build --release"),
    ]
    return [_stamp(ALPHA, False, ts=t0, rank_by=rb, rank=rank, pid=pid, name=name, username=user, cpu_pct=cpu,
                   mem_rss_bytes=rss, cmdline=cmd)
            for rb, rank, pid, name, user, cpu, rss, cmd in procs]


def _runs(t0: datetime) -> pa.Table:
    rows = []
    for i in range(HOURS * 12):
        started = t0 - timedelta(minutes=5 * i, seconds=59)
        for machine in (ALPHA, DEMO):
            warn = machine == DEMO and i == 2
            rows.append({
                "run_id": f"run-{machine}-{i}", "cycle_id": f"cycle-{i}", "machine_id": machine,
                "collector": "system", "started_at": started,
                "finished_at": started + timedelta(milliseconds=420),
                "duration_ms": 420.0, "rows_written": 6, "status": "warning" if warn else "ok",
                "warnings": ["load average missing from /proc/loadavg"] if warn else [],
                "error": None, "source_version": "1", "schema_version": 1,
            })
    started = t0 - timedelta(minutes=2)
    rows.append({
        "run_id": "run-ghost-0", "cycle_id": "cycle-0", "machine_id": GHOST, "collector": "system",
        "started_at": started, "finished_at": started + timedelta(seconds=5), "duration_ms": 5000.0,
        "rows_written": 0, "status": "error", "warnings": [], "error": ERROR_TEXT,
        "source_version": "1", "schema_version": 1,
    })
    schema = pa.schema([
        ("run_id", pa.string()), ("cycle_id", pa.string()), ("machine_id", pa.string()),
        ("collector", pa.string()), ("started_at", pa.timestamp("us", tz="UTC")),
        ("finished_at", pa.timestamp("us", tz="UTC")), ("duration_ms", pa.float64()),
        ("rows_written", pa.int64()), ("status", pa.string()), ("warnings", pa.list_(pa.string())),
        ("error", pa.string()), ("source_version", pa.string()), ("schema_version", pa.int32()),
    ])
    return pa.Table.from_pylist(rows, schema=schema)


def _write_lock_event(store: Store, t0: datetime) -> None:
    b = Batch()
    b.add_rows("store_lock_events", [{
        "ts": t0 - timedelta(minutes=10), "writer": "vc daemon", "writer_pid": 4242, "blocked_by_pid": 5151,
        "blocked_by": LOCK_BLOCKER, "waited_ms": 1834.0, "attempts": 7, "outcome": "written"}])
    store.write(b)


def _alerts(t0: datetime) -> list[dict]:
    base = {"rule_id": "disk_filling", "machine_id": ALPHA, "severity": "warning",
            "evidence_json": '{"mount": "/data"}'}
    return [
        {**base, "alert_id": "alert-firing", "dedupe_key": "disk_filling:alpha:/data", "state": "firing",
         "summary": "/data on alpha is 91% full", "started_at": t0 - timedelta(minutes=30), "updated_at": t0,
         "resolved_at": None},
        {**base, "alert_id": "alert-resolved", "dedupe_key": "disk_filling:alpha:/", "state": "resolved",
         "summary": "/ on alpha was 90% full", "started_at": t0 - timedelta(hours=2),
         "updated_at": t0 - timedelta(hours=1), "resolved_at": t0 - timedelta(hours=1)},
    ]


def build_ui_db(root: Path, t0: datetime) -> UiDb:
    data_dir = root / "data"
    store = Store(data_dir / "vc.duckdb", lock_budget_s=5.0, writer_name="pytest")
    store.migrate()
    b = Batch()
    b.add_upserts("machines", _machines(t0))
    b.add_rows("sys_samples", _samples(t0))
    b.add_rows("sys_filesystems", _filesystems(t0))
    b.add_rows("sys_top_processes", _processes(t0))
    b.add_rows("collector_runs", _runs(t0))
    b.add_rows("alerts", _alerts(t0))
    outcome = store.write(b)
    assert outcome.spooled is None and outcome.inserted["sys_samples"] == 2 * (HOURS * 60 + 1)
    _write_lock_event(store, t0)
    fleet = write_fleet(store, root / "fleet", t0)
    return UiDb(config_path=write_config(root / "vc.toml", data_dir), db_path=store.db_path, t0=t0, fleet=fleet)


@pytest.fixture(scope="session")
def ui_db(tmp_path_factory: pytest.TempPathFactory) -> Iterator[UiDb]:
    """The populated database, with VC_CONFIG pointing the app at it for the whole session."""
    db = build_ui_db(tmp_path_factory.mktemp("ui_db"), datetime.now(UTC).replace(microsecond=0))
    previous = os.environ.get("VC_CONFIG")
    os.environ["VC_CONFIG"] = str(db.config_path)
    try:
        yield db
    finally:
        if previous is None:
            os.environ.pop("VC_CONFIG", None)
        else:
            os.environ["VC_CONFIG"] = previous

"""DESIGN's multi-process discipline, for real: `vc daemon` writes every second while another process
reads through the views and writes acks, until both have overlapped for MIN_ROUNDS rounds. Nobody
sees a lock error, nothing is lost."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import duckdb
import pytest

READER = textwrap.dedent("""
    import json, sys, time
    from datetime import UTC, datetime
    from workbench.config import load_config
    from workbench.store import Batch, Store
    from workbench.views import health, machines, ops

    from pathlib import Path

    cfg = load_config(sys.argv[1])
    store = Store.from_config(cfg, writer_name="reader-acker")
    stop = Path(sys.argv[2])
    deadline = time.monotonic() + float(sys.argv[3])
    stats = {"reads": 0, "acks": 0, "errors": [], "spooled_acks": 0, "max_rows_seen": 0}
    i = 0
    # At least MIN_ROUNDS rounds, then until the test says the daemon has done enough cycles.
    while time.monotonic() < deadline and i < 10000 and (i < MIN_ROUNDS or not stop.exists()):
        i += 1
        now = datetime.now(UTC)
        try:
            with store.reader() as con:
                st = machines.machine_state(con, now).execute()
                fh = health.fleet_health(con, cfg.health, now).execute()
                pf = ops.poll_freshness(con, now).execute()
                n = int(st["samples"].sum()) if len(st) else 0
            stats["reads"] += 1
            stats["max_rows_seen"] = max(stats["max_rows_seen"], n)
            b = Batch()
            b.add_rows("alert_acks", [{"alert_id": f"a{i}", "acked_at": now, "acked_by": "tester", "note": "seen"}])
            out = store.write(b)
            stats["acks"] += 1
            stats["spooled_acks"] += int(out.spooled is not None)
        except Exception as exc:
            stats["errors"].append(f"{type(exc).__name__}: {exc}")
        time.sleep(0.05)
    store.drain_spool()
    print(json.dumps(stats))
""")


MIN_ROUNDS = 10  # reader rounds and daemon cycles that must overlap (counts, not a speed check)
HARD_LIMIT_S = 240  # bounds the test if the daemon stalls; reaching it fails the test with the log


def _cycles(log: Path) -> list[str]:
    return re.findall(r"^cycle (\w+): \d+ runs", log.read_text(errors="replace"), flags=re.M)


@pytest.mark.integration
def test_daemon_and_reader_share_the_file(tmp_path: Path):
    cfg = tmp_path / "vc.toml"
    cfg.write_text(textwrap.dedent("""
        [storage]
        data_dir = "data"
        lock_retry_seconds = 10
        [daemon]
        interval_seconds = 1
        top_processes = 3
        keep_demo_alive = false
        [[machines]]
        id = "local"
        ssh = "local"
    """))
    base = [sys.executable, "-m", "workbench.cli", "--config", str(cfg)]
    subprocess.run([*base, "db", "migrate"], check=True, capture_output=True, timeout=60)
    log, stop = tmp_path / "daemon.log", tmp_path / "stop-reading"
    with log.open("w") as err:
        daemon = subprocess.Popen([*base, "daemon"], stderr=err, stdout=subprocess.PIPE, text=True)
        try:
            time.sleep(1.0)
            reader = subprocess.Popen([sys.executable, "-c", READER.replace("MIN_ROUNDS", str(MIN_ROUNDS)), str(cfg),
                                       str(stop), str(HARD_LIMIT_S)], stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, text=True)
            # Both sides keep going until the daemon has written MIN_ROUNDS cycles while the reader reads.
            until = time.monotonic() + HARD_LIMIT_S
            while len(_cycles(log)) < MIN_ROUNDS + 1 and reader.poll() is None and time.monotonic() < until:
                time.sleep(0.5)
            stop.touch()
            r_out, r_err = reader.communicate(timeout=HARD_LIMIT_S)
        finally:
            daemon.send_signal(signal.SIGTERM)
            d_out, _ = daemon.communicate(timeout=60)
    d_err = log.read_text(errors="replace")
    assert reader.returncode == 0, r_err
    stats = json.loads(r_out.strip().splitlines()[-1])
    assert stats["errors"] == []
    # Enough activity on both sides to have overlapped many times (not a speed check).
    assert stats["reads"] >= MIN_ROUNDS and stats["acks"] == stats["reads"]
    assert daemon.returncode == 0, d_err
    assert "Traceback" not in d_err and "lock" not in d_err.lower()
    assert "job failed" not in d_err  # anomaly, health and forecast jobs ran after cycles without error
    assert d_out == ""  # the daemon prints nothing on stdout: it is not a data command
    cycles = _cycles(log)
    assert len(cycles) >= MIN_ROUNDS, f"the daemon did {len(cycles)} cycles in {HARD_LIMIT_S}s: {d_err[-2000:]}"
    assert "(spooled)" not in d_err or not list((tmp_path / "data" / "spool").glob("*"))
    with duckdb.connect(str(tmp_path / "data" / "vc.duckdb"), read_only=True) as con:
        stored_cycles = {r[0] for r in con.execute("SELECT DISTINCT cycle_id FROM collector_runs").fetchall()}
        samples = con.execute("SELECT count(*) FROM sys_samples").fetchone()[0]
        acks = con.execute("SELECT count(*) FROM alert_acks").fetchone()[0]
        bad = con.execute("SELECT count(*) FROM collector_runs WHERE status IN ('error', 'timeout')").fetchone()[0]
        health_rows = con.execute("SELECT count(*) FROM health_summary").fetchone()[0]
    assert set(cycles) <= stored_cycles  # every cycle the daemon reported is in the database
    assert samples == len(stored_cycles)  # one local sample per cycle: no batch lost, none doubled
    assert acks == stats["acks"]
    assert bad == 0
    assert health_rows >= 1  # the daemon materialized health history after its cycles
    assert not [p for p in (tmp_path / "data" / "spool").glob("*") if p.is_dir()]

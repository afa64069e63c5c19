"""The store: idempotent batched writes, upserts, cursors, schema drift, lock retry and spool."""

from __future__ import annotations

import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta

import pytest

from workbench.store import Batch, CursorUpdate, SchemaDriftError, Store, StoreBusyError, spool
from workbench.store.connection import open_with_retry

T0 = datetime(2026, 11, 1, tzinfo=UTC)


def samples(n: int, machine: str = "m1", start: datetime = T0) -> list[dict]:
    return [dict(machine_id=machine, ts=start + timedelta(minutes=i), source="test", schema_version=1,
                 cpu_pct=float(i % 100), load1=0.5) for i in range(n)]


def count(store: Store, sql: str) -> int:
    with store.raw_reader() as con:
        return con.execute(sql).fetchone()[0]


def test_insert_is_idempotent_per_row(store):
    b = Batch()
    b.add_rows("sys_samples", samples(100))
    assert store.write(b).inserted == {"sys_samples": 100}
    # Overlapping batch: 50 old + 50 new rows; the old ones are ignored, the new ones land.
    b2 = Batch()
    b2.add_rows("sys_samples", samples(100, start=T0 + timedelta(minutes=50)))
    assert store.write(b2).inserted == {"sys_samples": 50}
    assert count(store, "SELECT count(*) FROM sys_samples") == 150


def test_duplicates_inside_one_batch(store):
    b = Batch()
    b.add_rows("sys_samples", samples(10) + samples(10))
    assert store.write(b).inserted == {"sys_samples": 10}


def test_upsert_latest_wins_and_cursor_travels_with_rows(store):
    b = Batch()
    b.add_upserts("machines", [dict(machine_id="m1", display_name="old", tags=["a"])])
    b.cursors.append(CursorUpdate("m1", "probe", "default", {"offset": 1}))
    store.write(b)
    b = Batch()
    b.add_upserts("machines", [dict(machine_id="m1", display_name="new", tags=["b"])])
    b.cursors.append(CursorUpdate("m1", "probe", "default", {"offset": 2}))
    store.write(b)
    with store.raw_reader() as con:
        assert con.execute("SELECT display_name, tags FROM machines").fetchall() == [("new", ["b"])]
        assert con.execute("SELECT cursor_json FROM ingestion_cursors").fetchall() == [('{"offset": 2}',)]


def test_schema_drift_is_refused_before_anything_is_written(store):
    b = Batch()
    b.add_rows("sys_samples", samples(3))
    b.add_rows("sys_samples", [dict(machine_id="m1", ts=T0, source="t", schema_version=1, cpu_temp=3.0)])
    with pytest.raises(SchemaDriftError, match="cpu_temp"):
        store.write(b)
    b = Batch()
    b.add_rows("no_such_table", [dict(a=1)])
    with pytest.raises(SchemaDriftError, match="no_such_table"):
        store.write(b)
    assert count(store, "SELECT count(*) FROM sys_samples") == 0


HOLD = """
import duckdb, sys, time
con = duckdb.connect(sys.argv[1])
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
con.close()
"""


def hold_lock(path, seconds: float) -> subprocess.Popen:
    p = subprocess.Popen([sys.executable, "-c", HOLD, str(path), str(seconds)], stdout=subprocess.PIPE, text=True)
    assert p.stdout.readline().strip() == "locked"
    return p


def test_locked_database_spools_then_replays_in_order(store):
    holder = hold_lock(store.db_path, 3.0)
    try:
        b1 = Batch()
        b1.add_rows("sys_samples", samples(5))
        b1.cursors.append(CursorUpdate("m1", "x", "default", {"n": 1}))
        out1 = store.write(b1, budget_s=0.3)
        assert out1.spooled is not None and out1.rows == 0
        b2 = Batch()
        b2.add_rows("sys_samples", samples(5, start=T0 + timedelta(hours=1)))
        b2.cursors.append(CursorUpdate("m1", "x", "default", {"n": 2}))
        assert store.write(b2, budget_s=0.3).spooled is not None
        assert len(spool.pending(store.spool_dir)) == 2
    finally:
        holder.wait(timeout=30)
    b3 = Batch()
    b3.add_rows("sys_samples", samples(1, start=T0 + timedelta(hours=2)))
    out = store.write(b3)
    assert out.replayed == 2 and out.inserted == {"sys_samples": 1}
    assert spool.pending(store.spool_dir) == []
    assert count(store, "SELECT count(*) FROM sys_samples") == 11
    with store.raw_reader() as con:
        # Replayed in order: the later spooled cursor wins.
        assert con.execute("SELECT cursor_json FROM ingestion_cursors").fetchone()[0] == '{"n": 2}'
        ev = con.execute("SELECT outcome, blocked_by_pid, waited_ms FROM store_lock_events ORDER BY ts").fetchall()
    outcomes = [e[0] for e in ev]
    assert outcomes.count("spooled") == 2 and "replayed" in outcomes
    assert all(e[1] == holder.pid for e in ev if e[0] == "spooled")
    assert all(e[2] >= 300 for e in ev if e[0] == "spooled")


def test_short_lock_is_waited_out_and_recorded(store):
    holder = hold_lock(store.db_path, 0.6)
    t = time.monotonic()
    b = Batch()
    b.add_rows("sys_samples", samples(2))
    out = store.write(b, budget_s=10)
    holder.wait(timeout=30)
    assert out.spooled is None and out.rows == 2
    assert out.waited_ms >= 100 and time.monotonic() - t < 10
    assert count(store, "SELECT count(*) FROM store_lock_events WHERE outcome = 'written'") == 1


def test_reader_budget_gives_clear_error(store):
    holder = hold_lock(store.db_path, 2.0)
    try:
        with pytest.raises(StoreBusyError, match=f"PID {holder.pid}"):
            open_with_retry(store.db_path, read_only=True, budget_s=0.2)
    finally:
        holder.wait(timeout=30)


def test_spool_survives_a_new_store_instance(tmp_path):
    s1 = Store(tmp_path / "vc.duckdb")
    s1.migrate()
    holder = hold_lock(s1.db_path, 1.5)
    b = Batch()
    b.add_rows("sys_samples", samples(3))
    assert s1.write(b, budget_s=0.2).spooled is not None
    holder.wait(timeout=30)
    s2 = Store(tmp_path / "vc.duckdb")  # e.g. after a daemon restart
    assert s2.drain_spool() == 1
    assert count(s2, "SELECT count(*) FROM sys_samples") == 3


def test_rows_with_different_keys_keep_every_column(store):
    rows = [dict(machine_id="m1", ts=T0, source="t", schema_version=1, cpu_pct=1.0),
            dict(machine_id="m1", ts=T0 + timedelta(minutes=1), source="t", schema_version=1, load1=2.5)]
    b = Batch()
    b.add_rows("sys_samples", rows)
    store.write(b)
    with store.raw_reader() as con:
        got = con.execute("SELECT cpu_pct, load1 FROM sys_samples ORDER BY ts").fetchall()
    assert got == [(1.0, None), (None, 2.5)]

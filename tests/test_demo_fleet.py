"""The demo fleet: deterministic, realistic, every episode visible, and kept alive seamlessly."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from sample_data import demo_fleet as demo
from workbench.config import HealthConfig
from workbench.store import Batch, Store
from workbench.views import health, machines

END = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


def q(store: Store, sql: str, params: list | None = None):
    with store.raw_reader() as con:
        return con.execute(sql, params or []).fetchall()


@pytest.fixture(scope="module")
def fleet_store(tmp_path_factory) -> tuple[Store, demo.DemoSummary]:
    s = Store(tmp_path_factory.mktemp("demo") / "vc.duckdb")
    s.migrate()
    summary = demo.generate(s, days=7, machines=12, seed=7, end=END)
    return s, summary


def test_sizes_and_silence(fleet_store):
    store, summary = fleet_store
    silent = next(e for e in summary.episodes if e.kind == "silent")
    silent_minutes = int((END - silent.start).total_seconds() // 60) + 1  # silent through END itself
    expected = 12 * (7 * 1440 + 1) - silent_minutes
    assert summary.rows["sys_samples"] == expected
    assert q(store, "SELECT count(*) FROM sys_samples")[0][0] == expected
    last = dict(q(store, "SELECT machine_id, max(ts) FROM sys_samples GROUP BY 1"))
    assert last[silent.machine_id] < silent.start
    assert all(ts == END for mid, ts in last.items() if mid != silent.machine_id)
    assert q(store, "SELECT count(*) FROM machines WHERE is_demo")[0][0] == 12
    assert q(store, "SELECT bool_and(is_demo) FROM sys_samples")[0][0] is True


def test_deterministic(tmp_path, fleet_store):
    store, _ = fleet_store
    other = Store(tmp_path / "again.duckdb")
    other.migrate()
    demo.generate(other, days=7, machines=12, seed=7, end=END)
    agg = ("SELECT machine_id, count(*), round(sum(cpu_pct), 6), sum(mem_used_bytes), round(sum(load1), 6) "
           "FROM sys_samples GROUP BY 1 ORDER BY 1")
    assert q(store, agg) == q(other, agg)
    other2 = Store(tmp_path / "seed8.duckdb")
    other2.migrate()
    demo.generate(other2, days=1, machines=12, seed=8, end=END)
    assert q(other2, agg)[0][2] != q(store, agg)[0][2]


def test_every_episode_is_in_the_data(fleet_store):
    store, summary = fleet_store
    kinds = {e.kind: e for e in summary.episodes}
    assert set(kinds) == {"disk_filling", "load_storm", "swap_thrash", "silent"}
    disk = kinds["disk_filling"]
    peak = q(store, "SELECT max(used_pct) FROM sys_filesystems WHERE machine_id = ? AND mount = '/data'",
             [disk.machine_id])[0][0]
    before = q(store, "SELECT max(used_pct) FROM sys_filesystems WHERE machine_id = ? AND mount = '/data' "
               "AND ts < ?", [disk.machine_id, disk.start])[0][0]
    assert peak > 95 and before < 90
    storm = kinds["load_storm"]
    lpc = q(store, "SELECT min(load1 / cpu_count), count(*) FROM sys_samples WHERE machine_id = ? AND ts >= ? "
            "AND ts < ?", [storm.machine_id, storm.start, storm.end])[0]
    assert lpc[0] > 2.5 and lpc[1] == 30
    assert q(store, "SELECT max(load1 / cpu_count) FROM sys_samples WHERE machine_id = ? AND ts < ?",
             [storm.machine_id, storm.start])[0][0] < 2.5
    swap = kinds["swap_thrash"]
    s = q(store, "SELECT min(swap_used_bytes::DOUBLE / swap_total_bytes), max(swap_used_bytes::DOUBLE / "
          "swap_total_bytes) FROM sys_samples WHERE machine_id = ? AND ts >= ? AND ts < ?",
          [swap.machine_id, swap.start, swap.end])[0]
    assert s[0] < 0.15 and s[1] > 0.65
    stored = demo.load_demo(store)
    assert stored is not None and stored[1] == summary.episodes


def test_health_sees_the_episodes(fleet_store):
    store, summary = fleet_store
    kinds = {e.kind: e for e in summary.episodes}
    with store.reader() as con:
        mh = health.machine_health(con, HealthConfig(), END).execute().set_index("machine_id")
        state = machines.machine_state(con, END).execute().set_index("machine_id")
    silent = mh.loc[kinds["silent"].machine_id]
    assert silent["severity"] == "critical" and silent["worst_factor"] == "freshness"
    full = mh.loc[kinds["disk_filling"].machine_id]
    assert full["worst_factor"] == "disk" and full["severity"] == "critical"
    quiet = [m for m in mh.index if m not in {e.machine_id for e in summary.episodes}]
    assert all(mh.loc[m, "score"] > full["score"] for m in quiet)
    assert (state["samples"] > 0).all()


def test_keep_alive_fills_to_now_idempotently(tmp_path):
    s = Store(tmp_path / "vc.duckdb")
    s.migrate()
    end = END
    summary = demo.generate(s, days=1, machines=12, seed=3, end=end)
    silent = next(e.machine_id for e in summary.episodes if e.kind == "silent")
    hook = demo.keep_alive_hook(s)
    later = end + timedelta(minutes=10, seconds=30)
    b = hook(later)
    assert b is not None
    out = s.write(b)
    assert out.inserted["sys_samples"] == 11 * 10  # 11 talking machines × 10 new minutes
    assert hook(later) is None  # nothing new within the same minute
    fresh = demo.keep_alive_hook(s)  # a restarted daemon picks up where the data ends
    again = fresh(later)
    assert again is None or s.write(again).rows == 0
    last = dict(q(s, "SELECT machine_id, max(ts) FROM sys_samples GROUP BY 1"))
    assert last[silent] < end
    assert all(ts == later.replace(second=0) for m, ts in last.items() if m != silent)
    # Seamless: the kept-alive minutes are the ones a longer generation would have produced.
    ref = Store(tmp_path / "ref.duckdb")
    ref.migrate()
    demo.generate(ref, days=1, machines=12, seed=3, end=end)
    for m in demo.fleet(3, 12):
        if m.machine_id == silent:
            continue
        import numpy as np

        minutes = np.arange(demo._epoch_minutes(end) + 1, demo._epoch_minutes(later) + 1)
        expect = demo.samples(m, 3, minutes, summary.episodes).column("cpu_pct").to_pylist()
        got = [r[0] for r in q(s, "SELECT cpu_pct FROM sys_samples WHERE machine_id = ? AND ts > ? ORDER BY ts",
                               [m.machine_id, end])]
        assert got == pytest.approx(expect)


def test_small_fleets_and_no_demo(tmp_path):
    s = Store(tmp_path / "vc.duckdb")
    s.migrate()
    assert demo.demo_present(s) is False
    assert demo.keep_alive_hook(s)(END) is None
    summary = demo.generate(s, days=1, machines=3, seed=1, end=END)
    assert summary.machines == 3 and all(e.machine_id.startswith("demo-") for e in summary.episodes)
    assert demo.demo_present(s)


def test_same_seed_and_end_give_identical_rows_and_an_episodes_file(tmp_path):
    stores = []
    for name in ("one", "two"):
        s = Store(tmp_path / name / "vc.duckdb")
        s.migrate()
        summary = demo.generate(s, days=1, machines=12, seed=5, end=END)
        stores.append(s)
    for table in ("machines", "sys_samples", "sys_filesystems", "sys_top_processes"):
        rows = [q(s, f"SELECT * FROM {table} ORDER BY ALL") for s in stores]
        assert rows[0] and rows[0] == rows[1], table
    path = stores[1].db_path.parent / "demo_episodes.json"
    assert summary.episodes_path == path and path.is_file()
    assert demo.read_episodes(stores[1]) == summary.episodes
    assert demo.read_episodes(Store(tmp_path / "none" / "vc.duckdb")) == []


def test_generating_again_replaces_the_old_demo_and_keeps_real_rows(tmp_path):
    s = Store(tmp_path / "vc.duckdb")
    s.migrate()
    real = Batch()
    real.add_rows("sys_samples", [dict(machine_id="alpha", ts=END, source="system", schema_version=1, cpu_pct=5.0)])
    s.write(real)
    demo.generate(s, days=1, machines=12, seed=1, end=END)
    later = END + timedelta(days=2)
    second = demo.generate(s, days=1, machines=12, seed=2, end=later)
    first_ts, n = q(s, "SELECT min(ts), count(*) FROM sys_samples WHERE is_demo")[0]
    assert first_ts == later - timedelta(days=1) and n == second.rows["sys_samples"]
    assert q(s, "SELECT count(*) FROM sys_samples WHERE machine_id = 'alpha'")[0][0] == 1
    assert q(s, "SELECT count(*) FROM machines WHERE is_demo")[0][0] == 12
    assert demo.read_episodes(s) == second.episodes


def test_small_fleets_put_each_episode_on_its_own_machine(tmp_path):
    s = Store(tmp_path / "vc.duckdb")
    s.migrate()
    summary = demo.generate(s, days=1, machines=4, seed=9, end=END)
    assert len({e.machine_id for e in summary.episodes}) == len(summary.episodes) == 4


def test_keep_alive_follows_a_demo_generated_while_it_runs(tmp_path):
    s = Store(tmp_path / "vc.duckdb")
    s.migrate()
    hook = demo.keep_alive_hook(s)
    assert hook(END) is None  # no demo yet
    demo.generate(s, days=1, machines=12, seed=3, end=END)
    s.write(hook(END + timedelta(minutes=5)))
    later = END + timedelta(days=1)
    summary = demo.generate(s, days=1, machines=12, seed=4, end=later)
    out = s.write(hook(later + timedelta(minutes=5)))
    assert out.inserted["sys_samples"] == 11 * 5  # the new fleet's talking machines, from its own end
    silent = next(e.machine_id for e in summary.episodes if e.kind == "silent")
    assert q(s, "SELECT max(ts) FROM sys_samples WHERE machine_id = ?", [silent])[0][0] < later
    m = demo.fleet(4, 12)[0]
    import numpy as np

    minutes = np.arange(demo._epoch_minutes(later) + 1, demo._epoch_minutes(later) + 6)
    expect = demo.samples(m, 4, minutes, summary.episodes).column("cpu_pct").to_pylist()
    got = [r[0] for r in q(s, "SELECT cpu_pct FROM sys_samples WHERE machine_id = ? AND ts > ? ORDER BY ts",
                           [m.machine_id, later])]
    assert got == pytest.approx(expect)

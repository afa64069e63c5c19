"""The collection cycle: fail-soft collectors, timeouts, schema drift, cursors across restarts."""

from __future__ import annotations

import json

import pytest

from collectors import registry
from collectors.base import CollectContext, Collector, CollectResult
from collectors.runner import Runner
from workbench.config import VcConfig


class Exploding(Collector):
    name = "t_exploding"

    async def collect(self, ctx: CollectContext) -> CollectResult:
        raise RuntimeError("parser bug")


class Hanging(Collector):
    name = "t_hanging"

    async def collect(self, ctx: CollectContext) -> CollectResult:
        res = await ctx.executor.run("sleep 30", timeout_s=ctx.limits.timeout_s, max_bytes=1000)
        return CollectResult(warnings=[res.problem() or "no problem?"])


class Drifting(Collector):
    name = "t_drifting"

    async def collect(self, ctx: CollectContext) -> CollectResult:
        r = CollectResult()
        r.add("sys_samples", self.stamp(ctx.machine_id, ts=ctx.now, cpu_pct=1.0, gpu_pct=3.0))
        return r


class NullKey(Collector):
    """Rows the schema accepts by name but the database refuses (NULL in a key column)."""

    name = "t_nullkey"

    async def collect(self, ctx: CollectContext) -> CollectResult:
        r = CollectResult(cursor={"n": 1})
        r.add("sys_samples", self.stamp(ctx.machine_id, ts=None, cpu_pct=1.0))
        return r


class Counting(Collector):
    """Emits one row per call and counts calls in its cursor, like an incremental source."""

    name = "t_counting"

    async def collect(self, ctx: CollectContext) -> CollectResult:
        n = (ctx.cursor or {}).get("n", 0) + 1
        r = CollectResult(cursor={"n": n})
        r.add("sys_filesystems", self.stamp(ctx.machine_id, ts=ctx.now, mount=f"/call{n}", used_pct=1.0))
        return r


@pytest.fixture
def test_collectors():
    extra = {c.name: c for c in (Exploding, Hanging, Drifting, Counting, NullKey)}
    registry.ALL.update(extra)
    yield
    for k in extra:
        registry.ALL.pop(k, None)


def make_cfg(tmp_path, collectors: list[str], timeout: float = 1.0) -> VcConfig:
    return VcConfig.model_validate({
        "storage": {"data_dir": str(tmp_path / "data")},
        "daemon": {"collector_timeout_seconds": timeout, "top_processes": 3},
        "machines": [{"id": "local", "ssh": "local", "collectors": collectors},
                     {"id": "off", "ssh": "local", "enabled": False}],
    })


def runs(store):
    with store.raw_reader() as con:
        return {r[0]: r[1:] for r in con.execute(
            "SELECT collector, status, rows_written, error, warnings FROM collector_runs").fetchall()}


def test_one_bad_collector_never_sinks_the_cycle(tmp_path, test_collectors):
    from workbench.store import Store

    cfg = make_cfg(tmp_path, ["system", "t_exploding", "t_hanging", "t_drifting"])
    store = Store.from_config(cfg)
    store.migrate()
    runner = Runner(cfg, store)
    runner.sync_machines()
    report = runner.run_cycle()
    assert report.duration_s < 10  # the hang cost about its 1 s timeout, not 30 s
    r = runs(store)
    assert r["system"][0] == "ok" and r["system"][1] > 0
    assert r["t_exploding"][0] == "error" and "parser bug" in r["t_exploding"][2]
    assert r["t_hanging"][0] == "warning" and "timed out" in r["t_hanging"][3][0]
    assert r["t_drifting"][0] == "error" and "gpu_pct" in r["t_drifting"][2]
    rejected = list((tmp_path / "data" / "rejected").glob("*t_drifting.json"))
    assert len(rejected) == 1 and json.loads(rejected[0].read_text())["rows"]["sys_samples"][0]["gpu_pct"] == 3.0
    with store.raw_reader() as con:
        assert con.execute("SELECT count(*) FROM sys_samples WHERE source = 'system'").fetchone()[0] == 1
        assert con.execute("SELECT count(*) FROM sys_samples WHERE source = 't_drifting'").fetchone()[0] == 0
        assert {r[0] for r in con.execute("SELECT machine_id FROM machines").fetchall()} == {"local", "off"}
        # The disabled machine was not visited.
        assert con.execute("SELECT count(*) FROM collector_runs WHERE machine_id = 'off'").fetchone()[0] == 0


def test_cursor_survives_restart(tmp_path, test_collectors):
    from workbench.store import Store

    cfg = make_cfg(tmp_path, ["t_counting"])
    store = Store.from_config(cfg)
    store.migrate()
    Runner(cfg, store).run_cycle()
    Runner(cfg, store).run_cycle()  # a new daemon process: cursors come from the database
    r3 = Runner(cfg, store)
    r3.run_cycle()
    r3.run_cycle()
    with store.raw_reader() as con:
        mounts = sorted(r[0] for r in con.execute("SELECT mount FROM sys_filesystems").fetchall())
        cur = con.execute("SELECT cursor_json FROM ingestion_cursors WHERE source = 't_counting'").fetchone()[0]
    assert mounts == ["/call1", "/call2", "/call3", "/call4"]
    assert json.loads(cur) == {"n": 4}


def test_unknown_collector_in_config_is_a_run_error(tmp_path):
    from workbench.store import Store

    cfg = make_cfg(tmp_path, ["system", "no_such_collector"])
    store = Store.from_config(cfg)
    store.migrate()
    Runner(cfg, store).run_cycle()
    r = runs(store)
    assert r["config"][0] == "error" and "no_such_collector" in r["config"][2]


def test_cycle_hook_rows_are_written_and_hook_errors_recorded(tmp_path):
    from workbench.store import Batch, Store

    def good(now):
        b = Batch()
        b.add_rows("sys_samples", [dict(machine_id="sim", ts=now, source="demo", schema_version=1, is_demo=True)])
        return b

    def bad(now):
        raise ValueError("sim broke")

    cfg = make_cfg(tmp_path, ["system"])
    store = Store.from_config(cfg)
    store.migrate()
    Runner(cfg, store, hooks=[good, bad]).run_cycle()
    r = runs(store)
    assert r["good"][0] == "ok" and r["bad"][0] == "error" and "sim broke" in r["bad"][2]
    with store.raw_reader() as con:
        assert con.execute("SELECT count(*) FROM sys_samples WHERE machine_id = 'sim'").fetchone()[0] == 1


def test_rows_the_database_refuses_cost_only_their_source(tmp_path, test_collectors):
    from workbench.store import Store

    cfg = make_cfg(tmp_path, ["system", "t_nullkey", "t_counting"])
    store = Store.from_config(cfg)
    store.migrate()
    runner = Runner(cfg, store)
    runner.run_cycle()
    r = runs(store)
    assert r["system"][0] == "ok" and r["t_counting"][0] == "ok"
    assert r["t_nullkey"][0] == "error" and "NOT NULL" in r["t_nullkey"][2]
    assert list((tmp_path / "data" / "rejected").glob("*t_nullkey.json"))
    with store.raw_reader() as con:
        assert con.execute("SELECT count(*) FROM sys_samples WHERE source = 'system'").fetchone()[0] == 1
        srcs = {r[0] for r in con.execute("SELECT source FROM ingestion_cursors").fetchall()}
    assert "t_counting" in srcs and "t_nullkey" not in srcs
    assert ("local", "t_nullkey") not in runner._cursors


def test_machines_removed_from_config_are_disabled_not_deleted(tmp_path):
    from workbench.store import Store

    cfg = make_cfg(tmp_path, ["system"])
    store = Store.from_config(cfg)
    store.migrate()
    Runner(cfg, store).sync_machines()
    fewer = cfg.model_copy(update={"machines": [cfg.machines[0]]})
    Runner(fewer, store).sync_machines()
    with store.raw_reader() as con:
        state = dict(con.execute("SELECT machine_id, enabled FROM machines").fetchall())
    assert state == {"local": True, "off": False}

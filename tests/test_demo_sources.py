"""The demo fleet's upstream sources: real collectors on simulated machines, from real payload shapes.

The demo machines answer the collectors' own commands (sample_data/demo_sources.py); these tests run
the registered collectors on them and check what a person will see: every source has rows and no
warnings, accounts merge across machines, the incremental sources never re-read, tool availability
differs by machine, the keep-alive continues seamlessly and the same seed gives the same rows.
"""

from __future__ import annotations

import asyncio
import json
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest

from collectors import registry
from collectors.base import CollectContext, Limits
from collectors.beads import BeadsCollector
from collectors.rano import RanoCollector
from collectors.rch import RchCollector
from collectors.tail import read_new_lines
from sample_data import demo_fleet as demo
from sample_data import demo_sources as ds
from workbench.store import Batch, Store
from workbench.views import accounts, forecast

END = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
SEED = 7
TIMES = [END - timedelta(hours=26, minutes=-10), END - timedelta(hours=6), END - timedelta(hours=1), END]


def q(store: Store, sql: str, params: list | None = None):
    with store.raw_reader() as con:
        return con.execute(sql, params or []).fetchall()


def make_world(seed: int = SEED, days: int = 2, n: int = 12) -> ds.DemoWorld:
    fl = demo.fleet(seed, n)
    start = END - timedelta(days=days)
    return ds.DemoWorld(seed, tuple(fl), tuple(demo.episodes_for(fl, start, END)), start, END)


@pytest.fixture(scope="module")
def world() -> ds.DemoWorld:
    return make_world()


@pytest.fixture(scope="module")
def collection(world) -> ds.DemoCollection:
    return ds.run_collection(world, [m.machine_id for m in world.machines], TIMES)


def by_collector(collection: ds.DemoCollection) -> dict[str, list[ds.DemoRun]]:
    out: dict[str, list[ds.DemoRun]] = defaultdict(list)
    for r in collection.runs:
        out[r.collector].append(r)
    return out


def test_templates_are_the_real_upstream_examples(formats_dir: Path):
    """The verbatim examples the demo fills in are byte-identical to the shared upstream formats."""
    examples = sorted(ds.TEMPLATES.glob("*.example.*"))
    assert len(examples) >= 10
    for path in examples:
        assert path.read_bytes() == (formats_dir / path.name).read_bytes(), path.name


def test_every_tool_collector_has_rows_and_no_warnings(collection):
    runs = by_collector(collection)
    warned = [(r.machine_id, r.collector, r.at.isoformat(), r.warnings)
              for r in collection.runs if r.warnings]
    assert warned == [], warned[:5]
    names = registry.tool_collectors() + ["mcp_agent_mail", "cloud_benchmarker"]
    assert set(ds.tool_collectors()) == set(names)
    for name in names:
        with_rows = {r.machine_id for r in runs[name] if sum(r.rows.values())}
        assert with_rows, f"{name}: no demo machine produced rows"
    # Each source reaches its tables, with every table the collector can fill.
    for table in ("account_usage_snapshots", "caam_status_snapshots", "repo_status_snapshots",
                  "ntm_sessions_snapshot", "cass_health_snapshots", "cass_stats_snapshots",
                  "cass_timeline_sessions", "dcg_events", "dcg_stats_snapshots", "mail_messages",
                  "mail_recipients", "mail_file_reservations",
                  "net_events", "beads_issues", "beads_ready_snapshots", "beads_triage_snapshots",
                  "rch_status_snapshots", "rch_workers_snapshots", "rch_build_events", "rch_metrics",
                  "pt_plan_snapshots", "pt_findings", "afsc_status_snapshots", "afsc_installer_results",
                  "sysmoni_snapshots", "sysmoni_top_processes", "machine_tool_capabilities",
                  "benchmark_subscores", "benchmark_overall_scores", "account_cost_daily"):
        assert collection.rows.get(table), table
    assert {r.machine_id for r in runs["capabilities"]} == {m.machine_id for m in make_world().machines}


def test_rows_fit_the_migrated_schema_and_reinserting_adds_nothing(store, collection):
    first = store.write(collection.batch())
    assert set(first.inserted) >= set(collection.rows)
    assert all(n > 0 for n in first.inserted.values()), first.inserted
    again = Batch()
    for table, parts in collection.batch().inserts.items():
        for part in parts:
            again.add_rows(table, part)
    assert store.write(again).rows == 0
    cursors = dict(((m, s), json.loads(c)) for m, s, c in q(
        store, "SELECT machine_id, source, cursor_json FROM ingestion_cursors WHERE cursor_key = 'demo'"))
    assert cursors == {k: json.loads(json.dumps(v)) for k, v in collection.cursors.items()}


def test_one_account_many_machines_one_key(store, collection, world):
    usage = collection.rows["account_usage_snapshots"]
    keys: dict[str, set[str]] = defaultdict(set)
    sources: dict[str, set[str]] = defaultdict(set)
    for r in usage:
        keys[r["account_key"]].add(r["machine_id"])
        sources[r["account_key"]].add(r["source"])
    assert set(keys) == {f"{a.provider}:{a.email}" for a in ds.ACCOUNTS}
    assert all(len(machines) >= 2 for machines in keys.values()), keys
    assert all(src == {"caut", "caam"} for src in sources.values()), sources
    # Both tools, on every machine, report the same figure for an account at the same moment.
    figures: dict[tuple, set[float]] = defaultdict(set)
    for r in usage:
        figures[(r["account_key"], r["window_name"], r["collected_at"])].add(r["used_pct"])
    assert all(len(v) == 1 for v in figures.values())
    b = Batch()
    b.add_rows("account_usage_snapshots", usage)
    store.write(b)
    with store.reader() as con:
        merged = accounts.account_usage(con, END).execute()
    assert len(merged) == 2 * len(ds.ACCOUNTS)  # one row per account and window, however many report it
    assert (merged["machine_count"] >= 2).all()


def test_usage_ramps_within_windows_and_drops_at_resets(world):
    acct = ds.ACCOUNTS[0]
    minutes = range(ds._minute(END - timedelta(days=7)), ds._minute(END), 20)
    series = [ds.account_windows(world.seed, acct, world.end_minute, m) for m in minutes]
    for kind in (0, 1):
        resets = 0
        for a, b in zip(series, series[1:], strict=False):
            wa, wb = a[kind], b[kind]
            if wb.resets_at == wa.resets_at:
                assert wb.used_pct >= wa.used_pct  # within a window usage only grows
            else:
                resets += 1
                assert wb.resets_at > wa.resets_at and wb.used_pct <= wa.used_pct
        assert resets >= 1
    assert max(w[1].used_pct for w in series) > 30 and max(w[0].used_pct for w in series) > 30


@pytest.fixture(scope="module")
def demo_store(tmp_path_factory) -> tuple[Store, demo.DemoSummary]:
    s = Store(tmp_path_factory.mktemp("demo_sources") / "vc.duckdb")
    s.migrate()
    summary = demo.generate(s, days=2, machines=12, seed=SEED, end=END)
    return s, summary


def test_generate_writes_the_sources_and_the_hot_account_heads_to_its_limit(demo_store):
    store, summary = demo_store
    assert summary.rows["account_usage_snapshots"] > 0 and summary.rows["rch_build_events"] > 0
    n = q(store, "SELECT count(*) FROM account_usage_snapshots")[0][0]
    assert n == summary.rows["account_usage_snapshots"]
    with store.reader() as con:
        f = forecast.rate_limit_forecasts(con, END).set_index("subject")
    hot = next(a for a in ds.ACCOUNTS if a.hot)
    row = f.loc[f"{hot.provider}:{hot.email}/secondary"]
    assert row["level"] > 88 and row["slope_per_hour"] > 0
    assert row["status"] == "reaches limit", row.to_dict()
    assert END < row["eta"] < END + timedelta(hours=24)
    # The other accounts are far from their weekly limits: none runs out before the hot one.
    others = [f.loc[f"{a.provider}:{a.email}/secondary"] for a in ds.ACCOUNTS if not a.hot]
    assert all(o["level"] < 60 and (pd.isna(o["eta"]) or o["eta"] > row["eta"]) for o in others)


def test_the_load_storm_floods_the_build_queue(demo_store):
    store, summary = demo_store
    storm = next(e for e in summary.episodes if e.kind == "load_storm")
    before = q(store, "SELECT max(value) FROM rch_metrics WHERE metric = 'rch_build_queue_depth' AND ts < ?",
               [storm.start - timedelta(hours=1)])[0][0]
    during = q(store, "SELECT max(value) FROM rch_metrics WHERE metric = 'rch_build_queue_depth' "
               "AND ts BETWEEN ? AND ?", [storm.start, storm.end])[0][0]
    assert before <= 3 and during >= 15


def test_one_cass_index_goes_stale(demo_store):
    store, _ = demo_store
    rows = q(store, "SELECT machine_id, bool_or(index_stale), max(index_age_seconds) "
             "FROM cass_health_snapshots WHERE collected_at = ? GROUP BY 1", [END])
    stale = [(m, age) for m, s, age in rows if s]
    assert len(stale) == 1 and stale[0][1] > 6 * 3600 and len(rows) >= 5


def test_machines_without_a_tool_get_no_rows_for_it(world, collection):
    profiles = ds.profiles(world)
    produced: dict[str, set[str]] = defaultdict(set)
    for r in collection.runs:
        if sum(r.rows.values()):
            produced[r.collector].add(r.machine_id)
    for name in registry.tool_collectors():
        tool = registry.ALL[name].required_tool
        lacking = {mid for mid, p in profiles.items() if tool not in p.tools}
        assert lacking, f"every demo machine has {tool}: availability should differ"
        assert not produced[name] & lacking, name
    # ... and the probe says so, in the machine_tool_capabilities rows.
    caps = {(r["machine_id"], r["tool"]): r["present"] for r in collection.rows["machine_tool_capabilities"]}
    assert caps[("demo-build-02", "caut")] is False and caps[("demo-build-02", "rch")] is True
    # A command for a missing tool fails like a shell would.
    ex = ds.DemoExecutor(world, "demo-build-02", END)
    res = asyncio.run(ex.run("caut usage --json", timeout_s=5, max_bytes=1 << 20))
    assert res.exit_code == 127 and b"not found" in res.stderr


def test_unknown_commands_exit_127(world):
    ex = ds.DemoExecutor(world, "demo-agents-01", END)
    for cmd in ("ntm --robot-activity=x", "caut cost --days 90", "uptime", "rano export --format csv"):
        res = asyncio.run(ex.run(cmd, timeout_s=5, max_bytes=1 << 20))
        assert res.exit_code != 0 and res.stdout == b"", cmd


def test_the_silent_machine_answers_nothing_during_its_episode(world, collection):
    silent = next(e for e in world.episodes if e.kind == "silent")
    during = [r for r in collection.runs if r.machine_id == silent.machine_id and r.at >= silent.start]
    before = [r for r in collection.runs if r.machine_id == silent.machine_id and r.at < silent.start]
    assert during == [] and before


def run(collector, ex: ds.DemoExecutor, cursor=None):
    ctx = CollectContext(ex.machine_id, ex, cursor=cursor, limits=Limits(), now=ex.now,
                         options=ex.profile.options())
    return asyncio.run(collector.collect(ctx))


def test_rano_since_exports_exactly_the_new_events(world):
    first = run(RanoCollector(), ds.DemoExecutor(world, "demo-agents-01", END - timedelta(hours=2)))
    second = run(RanoCollector(), ds.DemoExecutor(world, "demo-agents-01", END), first.cursor)
    whole = run(RanoCollector(), ds.DemoExecutor(world, "demo-agents-01", END))
    assert first.rows["net_events"] and second.rows["net_events"]
    cut = datetime.fromisoformat(first.cursor["since"].replace("Z", "+00:00"))
    new = [r for r in second.rows["net_events"] if r["ts"] >= cut]
    old = {r["event_hash"] for r in first.rows["net_events"]}
    # Only the 1-second overlap the collector asks for on purpose can repeat an event.
    assert all(r["ts"] >= cut - timedelta(seconds=1) for r in second.rows["net_events"])
    assert not {r["event_hash"] for r in new if r["ts"] > cut} & old
    union = old | {r["event_hash"] for r in second.rows["net_events"]}
    later = {r["event_hash"] for r in whole.rows["net_events"] if r["ts"] >= END - timedelta(hours=2)}
    assert later <= union


def test_rch_history_is_append_only_and_read_from_the_cursor(world):
    first = run(RchCollector(), ds.DemoExecutor(world, "demo-build-02", END - timedelta(hours=3)))
    second = run(RchCollector(), ds.DemoExecutor(world, "demo-build-02", END), first.cursor)
    logged = lambda res: [r for r in res.rows["rch_build_events"] if r["log_path"] is not None]  # noqa: E731
    assert first.warnings == [] and second.warnings == []
    a, b = logged(first), logged(second)
    assert a and b and not {r["build_id"] for r in a} & {r["build_id"] for r in b}
    assert min(r["completed_at"] for r in b) >= max(r["completed_at"] for r in a)
    (path,) = first.cursor["files"]
    assert second.cursor["files"][path]["inode"] == first.cursor["files"][path]["inode"]
    assert second.cursor["files"][path]["offset"] > first.cursor["files"][path]["offset"]
    # Reading the file in two steps gives exactly the bytes of one read.
    ex = ds.DemoExecutor(world, "demo-build-02", END)
    whole = asyncio.run(read_new_lines(ex, path, None, max_bytes=1 << 24, timeout_s=5))
    half = asyncio.run(read_new_lines(ex, path, None, max_bytes=20_000, timeout_s=5))
    rest = asyncio.run(read_new_lines(ex, path, half.cursor, max_bytes=1 << 24, timeout_s=5))
    assert [x.text for x in half.lines + rest.lines] == [x.text for x in whole.lines]


def test_beads_export_is_rewritten_with_a_new_inode_when_it_changes(world):
    prof = ds.profiles(world)["demo-agents-01"]
    repo = prof.beads_repos[0]
    def lines(minute: int) -> set[bytes]:
        return set(ds.beads_export(world.seed, repo, minute).splitlines())

    # Minutes where an issue was created or moved (not just one aging out of the export).
    changes = [m for m in range(ds._minute(END) - 600, ds._minute(END)) if lines(m) - lines(m - 1)]
    assert changes  # issues move during ten hours
    def at(minute: int) -> ds.DemoExecutor:
        return ds.DemoExecutor(world, "demo-agents-01", ds._at(minute))

    first = run(BeadsCollector(), at(changes[-1] - 1))
    same = run(BeadsCollector(), at(changes[-1] - 1), first.cursor)
    changed = run(BeadsCollector(), at(changes[-1]), first.cursor)
    assert same.rows.get("beads_issues", []) == []  # unchanged file, nothing new to read
    assert changed.cursor["files"][repo]["inode"] != first.cursor["files"][repo]["inode"]
    before = {(r["issue_id"], r["updated_at"]) for r in first.rows["beads_issues"] if r["repo_path"] == repo}
    after = {(r["issue_id"], r["updated_at"]) for r in changed.rows["beads_issues"] if r["repo_path"] == repo}
    assert after - before  # the changed issue is a new (issue, updated_at) row


def test_keep_alive_adds_source_rows_without_duplicates(tmp_path):
    s = Store(tmp_path / "vc.duckdb")
    s.migrate()
    demo.generate(s, days=1, machines=12, seed=SEED, end=END)
    stored = q(s, "SELECT machine_id, cursor_json FROM ingestion_cursors "
               "WHERE cursor_key = 'demo' AND source = 'rano'")
    since = {m: datetime.fromisoformat(json.loads(c)["since"].replace("Z", "+00:00")) for m, c in stored}
    builds_before = q(s, "SELECT count(*) FROM rch_build_events")[0][0]
    hook = demo.keep_alive_hook(s)
    later = END + timedelta(minutes=25)
    b = hook(later)
    assert b is not None
    batch = {t: [r for part in parts for r in part.to_pylist()] for t, parts in b.inserts.items()}
    out = s.write(b)
    stamps = q(s, "SELECT DISTINCT collected_at FROM account_usage_snapshots WHERE collected_at > ? "
               "ORDER BY 1", [END])
    assert [x[0] for x in stamps] == [END + timedelta(minutes=10), END + timedelta(minutes=20)]
    # Event sources continue from their cursors: rano re-asks only the one second it overlaps on
    # purpose, and rch's history tail brings only builds that were not stored yet.
    assert batch["net_events"] and since and out.inserted["net_events"] > 0
    assert all(r["ts"] >= since[r["machine_id"]] - timedelta(seconds=1) for r in batch["net_events"])
    logged = [r for r in batch["rch_build_events"] if r["log_path"] is not None]
    assert logged and q(s, "SELECT count(*) FROM rch_build_events")[0][0] - builds_before >= len(logged)
    assert hook(later) is None  # nothing new until the next ten minutes
    again = demo.keep_alive_hook(s)(later)  # a restarted daemon resumes from the stored cursors
    assert again is None or s.write(again).rows == 0
    nxt = hook(END + timedelta(minutes=31))
    assert nxt is not None and s.write(nxt).inserted.get("account_usage_snapshots", 0) > 0
    dup = q(s, "SELECT count(*) - count(DISTINCT (machine_id, event_hash)) FROM net_events")[0][0]
    assert dup == 0


def test_same_seed_same_rows(world, collection):
    again = ds.run_collection(make_world(), [m.machine_id for m in world.machines], TIMES)

    def canon(c: ds.DemoCollection) -> dict[str, list[str]]:
        return {t: sorted(json.dumps(r, sort_keys=True, default=str) for r in rows)
                for t, rows in c.rows.items()}

    assert canon(again) == canon(collection)
    other = ds.run_collection(make_world(seed=SEED + 1), [m.machine_id for m in world.machines], TIMES[-1:])
    assert canon(other)["account_usage_snapshots"] != [
        x for x in canon(collection)["account_usage_snapshots"] if f'"collected_at": "{END}' in x]


def test_a_new_demo_replaces_the_old_sources_and_keeps_real_rows(tmp_path):
    s = Store(tmp_path / "vc.duckdb")
    s.migrate()
    real = Batch()
    real.add_rows("net_events", [dict(machine_id="alpha", event_hash="x", ts=END, source="rano",
                                      source_version="1", schema_version=1)])
    s.write(real)
    demo.generate(s, days=1, machines=4, seed=1, end=END - timedelta(days=3))
    second = demo.generate(s, days=1, machines=4, seed=2, end=END)
    first_ts = q(s, "SELECT min(collected_at) FROM account_usage_snapshots")[0][0]
    assert first_ts >= second.start
    assert q(s, "SELECT count(*) FROM net_events WHERE machine_id = 'alpha'")[0][0] == 1
    assert q(s, "SELECT min(updated_at) FROM ingestion_cursors WHERE cursor_key = 'demo'")[0][0] is not None
    markers = q(s, "SELECT count(*) FROM ingestion_cursors WHERE cursor_key = 'demo' "
                "AND source = 'demo_sources'")[0][0]
    assert markers == 4


def test_keep_alive_runs_inside_the_daemons_event_loop(tmp_path):
    """The runner calls its hooks from within its cycle's coroutine; the sources must still be collected."""
    s = Store(tmp_path / "vc.duckdb")
    s.migrate()
    demo.generate(s, days=1, machines=4, seed=3, end=END)
    hook = demo.keep_alive_hook(s)

    async def cycle() -> Batch | None:
        return hook(END + timedelta(minutes=15))

    b = asyncio.run(cycle())
    assert b is not None and b.inserts.get("account_usage_snapshots")
    assert s.write(b).inserted["account_usage_snapshots"] > 0


def test_benchmarks_cover_the_fleet_and_show_the_oversold_host(world, collection):
    """One control node reads the benchmarker; every machine is benchmarked every 6 h; the last agent
    machine's CPU share erodes over the last two days (only the benchmark shows it)."""
    subs = pd.DataFrame(collection.rows["benchmark_subscores"])
    assert set(subs["machine_id"]) == {ds.bench_host(world)}
    assert set(subs["host"]) == {m.machine_id for m in world.machines}
    overall = pd.DataFrame(collection.rows["benchmark_overall_scores"])
    assert overall["overall_score"].between(0, 100).all()
    per_run = overall.groupby("run_at")["overall_score"]
    assert ((per_run.max() - per_run.min()) > 30).all()  # relative to the run's hosts: a wide spread
    victim = [m for m in world.machines if m.role == "agents"][-1].machine_id
    mine = overall[overall["host"] == victim].drop_duplicates("run_at").sort_values("run_at")["overall_score"]
    assert mine.iloc[-1] < mine.iloc[0] - 10
    cpu = subs[subs["host"] == victim].drop_duplicates("run_at").sort_values("run_at")["cpu_events_per_second"]
    assert len(cpu) >= 4 and cpu.iloc[-1] < 0.7 * cpu.iloc[0]
    calm = {m.machine_id for m in world.machines} - {e.machine_id for e in world.episodes} - {victim}
    assert calm
    steady = subs[subs["host"].isin(calm)].groupby("host")["cpu_events_per_second"]
    assert ((steady.min() / steady.max()) > 0.9).all()  # only noise where nothing happens
    assert not any(r.warnings for r in collection.runs if r.collector == "cloud_benchmarker")

"""The fleet over real SSH: one Runner cycle visits several OpenSSH test hosts at once.

Hosts (tests/sshd.py, loopback): four healthy ones whose fake tools print the recorded payloads of
every registered tool collector (tests/contract_payloads.py), one whose tools hang, one whose tools
print garbage, and one whose host key is not in known_hosts. The story runs once per module, in
order, as the daemon would live it: cycle 1 collects everything; new lines and events appear; cycle 2
ingests only them; the daemon restarts (a new Runner) and continues from the stored cursors; then
`vc collect --once` runs as a separate process against the same vc.toml and database.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil
import pytest

from collectors import registry
from collectors.runner import CycleReport, Runner
from tests.contract_payloads import (
    BEADS_REPO,
    ContractCase,
    machine_cases,
    machine_files,
    machine_options,
    machine_tools,
)
from tests.sshd import Sshd, SshdFleet, write_vc_toml
from tests.toolbox import SHARED_FORMATS, Tool, make_toolbox, run_collector, toolbox_executor
from workbench.config import load_config
from workbench.store import Store

pytestmark = pytest.mark.integration

TIMEOUT_S = 3.0
PER_MACHINE = 8  # collectors in flight per machine; the SSH executor opens at most 8 channels at once
HEALTHY = ("fleet-a", "fleet-b", "fleet-c", "fleet-d")
HUNG, GARBAGE, STRANGER = "fleet-hung", "fleet-garbage", "fleet-stranger"
ALL_HOSTS = (*HEALTHY, HUNG, GARBAGE, STRANGER)
# Rows a machine gets whatever its upstream tools do: the probe, tool detection, the run log.
MACHINE_TABLES = {"sys_samples", "sys_filesystems", "machine_tool_capabilities", "collector_runs",
                  "machines", "ingestion_cursors"}

JUNK_BINARY = bytes(range(256)) * 8 + b"\x00\xff\xfe"
JUNK_ANSI = b"\x1b[31;1mFATAL\x1b[0m \x1b[2J\x1b[H\x1b[?25l loading \xe2\xa0\x8b\r\x1b[K\n" * 20


def truncated(payload: bytes) -> bytes:
    """The first half of the payload on one line: never a whole JSON document, never a whole JSONL line."""
    flat = payload.replace(b"\n", b" ")
    return flat[: max(1, len(flat) // 2)]


def garbage_for(i: int, payload: bytes) -> bytes:
    return (JUNK_BINARY, JUNK_ANSI + truncated(payload), truncated(payload))[i % 3]


def garbage_tools(tools: dict[str, Tool]) -> dict[str, Tool]:
    out = {}
    for i, (name, t) in enumerate(sorted(tools.items())):
        if t.by_subcommand:
            subs = {s: garbage_for(i + j, p if isinstance(p, bytes) else Path(p).read_bytes())
                    for j, (s, p) in enumerate(t.by_subcommand.items())}
            out[name] = Tool(by_subcommand=subs)
        else:
            out[name] = Tool(stdout=garbage_for(i, t.stdout if isinstance(t.stdout, bytes) else b""))
    return out


def toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return repr(v)
    if isinstance(v, list):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    return json.dumps(str(v))


def options_block(opts: dict[str, Any]) -> str:
    return "[machines.options]\n" + "".join(f"{k} = {toml_value(v)}\n" for k, v in sorted(opts.items()))


def rano_event(ts: str, domain: str) -> bytes:
    return json.dumps({"ts": ts, "run_id": "fleet-test", "event": "connect", "provider": "anthropic",
                       "pid": 4242, "comm": "claude", "cmdline": "/usr/bin/claude", "proto": "tcp",
                       "local_ip": "10.0.0.5", "local_port": 50000, "remote_ip": "160.79.104.10",
                       "remote_port": 443, "domain": domain}).encode() + b"\n"


def new_issue(issue_id: str, updated_at: str) -> bytes:
    return json.dumps({"id": issue_id, "title": f"fleet test {issue_id}", "status": "open", "priority": 2,
                       "issue_type": "task", "created_at": "2026-09-01T10:00:00Z",
                       "updated_at": updated_at}).encode() + b"\n"


@dataclass
class Story:
    fleet: SshdFleet
    vc_toml: Path
    store: Store
    cases: dict[str, ContractCase]
    expected: dict[tuple[str, str], int]  # (table, source) -> rows one healthy host yields per cycle
    snapshot_tables: set[str]
    event_tables: set[str]
    reports: list[CycleReport] = field(default_factory=list)
    # (table, machine, source) -> rows, after each step: 0 = empty, 1-3 = Runner cycles, 4 = the CLI's cycle
    counts: list[dict[tuple[str, str, str], int]] = field(default_factory=list)
    leftovers_after_cycle1: list[str] = field(default_factory=list)
    cli: subprocess.CompletedProcess | None = None
    cli_s: float = 0.0
    changes: dict[str, dict[str, int]] = field(default_factory=dict)


def machine_tables(store: Store) -> list[str]:
    return sorted(t for t, cols in store.catalog().items()
                  if {"machine_id", "source"} <= cols and t not in MACHINE_TABLES)


def count_rows(store: Store) -> dict[tuple[str, str, str], int]:
    out: dict[tuple[str, str, str], int] = {}
    with store.raw_reader() as con:
        for t in machine_tables(store):
            for m, s, n in con.execute(f'SELECT machine_id, source, count(*) FROM "{t}" GROUP BY 1, 2').fetchall():
                out[(t, m, s)] = n
    return out


def total(counts: dict[tuple[str, str, str], int], table: str, machine: str) -> int:
    return sum(n for (t, m, _), n in counts.items() if t == table and m == machine)


def delta(story: Story, step: int, table: str, machine: str) -> int:
    return total(story.counts[step], table, machine) - total(story.counts[step - 1], table, machine)


def leftover_sleeps(host: str) -> list[str]:
    """Fake-tool processes of `host` still running (sshd's SetEnv marks them with VC_TEST_HOST)."""
    found = []
    for p in psutil.process_iter(["cmdline"]):
        try:
            if (p.info["cmdline"] or [])[:1] == ["sleep"] and p.environ().get("VC_TEST_HOST") == host:
                found.append(f"{p.pid} {' '.join(p.info['cmdline'])}")
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            pass
    return found


def wait_no_leftovers(host: str, within_s: float = 5.0) -> list[str]:
    deadline = time.monotonic() + within_s
    left = leftover_sleeps(host)
    while left and time.monotonic() < deadline:
        time.sleep(0.1)
        left = leftover_sleeps(host)
    return left


def expected_rows(cases: dict[str, ContractCase], root: Path, pks: dict[str, list[str]]
                  ) -> tuple[dict[tuple[str, str], int], set[str], set[str]]:
    """What one healthy host yields per cycle, collected locally from the same payloads (LocalExecutor).

    Returns (rows per (table, source), snapshot tables, event tables). Snapshot tables are those whose
    primary key holds the collection time (one new snapshot per cycle), as the contract test decides.
    """
    root.mkdir(parents=True, exist_ok=True)
    machine_files(cases, root)
    ex = toolbox_executor(root, machine_tools(cases), "local-twin")
    opts = {"top_processes": 10, **machine_options(cases, root)}
    now = datetime(2026, 9, 1, 12, 0, tzinfo=UTC)
    counts: Counter[tuple[str, str]] = Counter()
    snapshots: set[str] = set()
    events: set[str] = set()
    for name in cases:
        res = run_collector(registry.ALL[name](), ex, options=dict(opts), now=now)
        for table, rows in res.rows.items():
            for r in rows:
                counts[(table, r["source"])] += 1
            by_time = any(r.get(c) == now for r in rows for c in pks.get(table, []))
            (snapshots if by_time else events).add(table)
    return dict(counts), snapshots, events


def primary_keys(store: Store) -> dict[str, list[str]]:
    with store.raw_reader() as con:
        rows = con.execute("SELECT table_name, constraint_column_names FROM duckdb_constraints() "
                           "WHERE constraint_type = 'PRIMARY KEY' AND schema_name = 'main'").fetchall()
    return {t: list(cols) for t, cols in rows}


def append(path: Path, data: bytes) -> None:
    with path.open("ab") as f:
        f.write(data)


@pytest.fixture(scope="module")
def story(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("fleet")
    cases = machine_cases()
    tools = machine_tools(cases)
    with SshdFleet(root / "sshd") as fleet:
        blocks = []
        for name in HEALTHY:
            srv = fleet.add(name, tools=tools)
            machine_files(cases, srv.home)
            blocks.append(fleet.machine_toml(srv) + options_block(machine_options(cases, srv.home)))
        hung = fleet.add(HUNG, tools={n: Tool(stdout=t.stdout, by_subcommand=t.by_subcommand, sleep_s=60)
                                      for n, t in tools.items()})
        machine_files(cases, hung.home)
        blocks.append(fleet.machine_toml(hung) + options_block(machine_options(cases, hung.home)))
        junk = fleet.add(GARBAGE, tools=garbage_tools(tools))
        for path in machine_files(cases, junk.home):
            path.write_bytes(JUNK_ANSI + JUNK_BINARY + b"\n" + truncated(path.read_bytes()))
        blocks.append(fleet.machine_toml(junk) + options_block(machine_options(cases, junk.home)))
        stranger = fleet.add(STRANGER, tools=tools, in_known_hosts=False)
        blocks.append(fleet.machine_toml(stranger))
        daemon = (f"[daemon]\ncollector_timeout_seconds = {TIMEOUT_S}\nmachines_in_flight = 8\n"
                  f"collectors_per_machine = {PER_MACHINE}\ninterval_seconds = 60\n")
        vc_toml = write_vc_toml(root / "vc.toml", blocks, data_dir=root / "data", extra=daemon)
        cfg = load_config(vc_toml)
        store = Store.from_config(cfg)
        store.migrate()
        expected, snapshots, events = expected_rows(cases, root / "local-twin", primary_keys(store))
        st = Story(fleet, vc_toml, store, cases, expected, snapshots, events)
        st.counts.append(count_rows(store))

        runner = Runner(cfg, store)
        runner.sync_machines()
        st.reports.append(runner.run_cycle())  # cycle 1: every host
        st.counts.append(count_rows(store))
        st.leftovers_after_cycle1 = wait_no_leftovers(HUNG)

        # Between cycles: new data on fleet-a (2 new issues, 1 update, 3 new network events).
        a = fleet.servers["fleet-a"]
        issues = a.home / BEADS_REPO / ".beads" / "issues.jsonl"
        append(issues, new_issue("fleet-new-1", "2026-09-01T11:00:00Z")
               + new_issue("fleet-new-2", "2026-09-01T11:01:00Z")
               + new_issue("fleet-new-1", "2026-09-01T11:05:00Z"))
        rano = (SHARED_FORMATS / "rano.export.example.jsonl").read_bytes()
        extra = b"".join(rano_event(f"2026-09-01T11:0{i}:00Z", f"new{i}.example.com") for i in range(3))
        make_toolbox(a.root / "toolbox", {"rano": Tool(stdout=rano + extra)})
        st.changes["fleet-a"] = {"beads_issues": 3, "net_events": 3}
        st.reports.append(runner.run_cycle())  # cycle 2: the same daemon
        st.counts.append(count_rows(store))

        # Restart: a new Runner (new process state) continues from the cursors stored in the database.
        b = fleet.servers["fleet-b"]
        append(b.home / BEADS_REPO / ".beads" / "issues.jsonl", new_issue("fleet-new-3", "2026-09-01T12:00:00Z"))
        st.changes["fleet-b"] = {"beads_issues": 1}
        restarted = Runner(load_config(vc_toml), store)
        st.reports.append(restarted.run_cycle())  # cycle 3
        st.counts.append(count_rows(store))

        # `vc collect --once` in its own process, same vc.toml, same database.
        vc = Path(sys.executable).parent / "vc"
        t0 = time.monotonic()
        st.cli = subprocess.run([str(vc), "--config", str(vc_toml), "collect", "--once"], capture_output=True,
                                text=True, timeout=180, cwd=str(root))
        st.cli_s = time.monotonic() - t0
        st.counts.append(count_rows(store))
        yield st


def runs(report: CycleReport, machine: str) -> dict[str, Any]:
    return {r.collector: r for r in report.runs if r.machine_id == machine}


def db_runs(store: Store, cycle_id: str) -> dict[tuple[str, str], tuple[str, int, list[str], str | None, float]]:
    with store.raw_reader() as con:
        rows = con.execute("SELECT machine_id, collector, status, rows_written, warnings, error, duration_ms "
                           "FROM collector_runs WHERE cycle_id = ?", [cycle_id]).fetchall()
    return {(m, c): (s, n, list(w or []), e, d) for m, c, s, n, w, e, d in rows}


# ---------- cycle 1: one cycle, every host ----------

def test_one_cycle_visits_every_host(story: Story):
    report = story.reports[0]
    tool_collectors = registry.tool_collectors()
    recorded = db_runs(story.store, report.cycle_id)
    for host in ALL_HOSTS:
        names = set(runs(report, host))
        assert {"capabilities", "probe", *tool_collectors} <= names, (host, names)
        assert all((host, n) in recorded for n in names), f"{host}: runs missing from collector_runs"
    assert len(recorded) == len(report.runs)


def test_healthy_hosts_get_every_collectors_rows(story: Story):
    report = story.reports[0]
    for host in HEALTHY:
        by = runs(report, host)
        bad = {c: (r.status, r.error) for c, r in by.items() if r.status not in ("ok", "warning")}
        assert not bad, f"{host}: {bad}"
        assert by["probe"].rows >= 1
        for name in registry.tool_collectors():
            assert by[name].rows > 0, f"{host}: {name} wrote no rows: {by[name].warnings}"
            assert by[name].duration_ms < TIMEOUT_S * 1000, f"{host}: {name} took {by[name].duration_ms:.0f} ms"
        after_cycle1 = story.counts[1]
        for (table, source), n in story.expected.items():
            got = after_cycle1.get((table, host, source), 0)
            assert got == n, f"{host}: {table} from {source}: {got} rows over SSH, {n} locally"


def test_one_ssh_connection_per_machine_per_cycle(story: Story):
    for host in HEALTHY:
        srv: Sshd = story.fleet.servers[host]
        # cycle 1, 2, the restarted runner's cycle 3 and the CLI's cycle: one login each.
        assert srv.accepted_logins() == 4, f"{host}: {srv.accepted_logins()} logins for 4 cycles"


def test_hung_host_costs_only_its_timeout(story: Story):
    report = story.reports[0]
    by = runs(report, HUNG)
    recorded = db_runs(story.store, report.cycle_id)
    hung_tools = registry.tool_collectors()
    for name in hung_tools:
        status, rows, warnings, error, duration_ms = recorded[(HUNG, name)]
        text = " ".join(warnings) + " " + (error or "")
        assert status in ("timeout", "warning", "error"), (name, status, rows)
        assert "timed out" in text or "did not finish" in text or "time budget" in text, (name, text)
        assert duration_ms <= (TIMEOUT_S + 2.0) * 1000, f"{name} cost {duration_ms:.0f} ms"
    cap = recorded[(HUNG, "capabilities")]
    assert "timed out" in " ".join(cap[2]) + (cap[3] or ""), cap
    assert by["probe"].status == "ok" and by["probe"].rows >= 1  # /proc does not hang: the host is seen
    # Rows from its tools: none.
    after_cycle1 = story.counts[1]
    for (table, source), n in story.expected.items():
        got = after_cycle1.get((table, HUNG, source), 0)
        # Files and databases are read without the host's tools (beads tails issues.jsonl itself, dcg
        # reads its history database with python3), so those rows arrive whole though the tools hang.
        if (table, source) in (("beads_issues", "beads"), ("dcg_events", "dcg")):
            assert got == n, f"{table} on the hung host: {got} != {n}"
        else:
            assert got == 0, f"{table} from {source}: {got} rows on the hung host"
    # The others never waited for it.
    for host in HEALTHY + (GARBAGE,):
        slow = {c: r.duration_ms for c, r in runs(report, host).items() if r.duration_ms >= TIMEOUT_S * 1000}
        assert not slow, f"{host} slowed down: {slow}"
        statuses = {r.status for r in runs(report, host).values()}
        assert "timeout" not in statuses, host
    # The whole cycle: the hung host's probe plus its collectors in waves of PER_MACHINE, each ≤ timeout+grace.
    waves = math.ceil(len(hung_tools) / PER_MACHINE)
    bound = (TIMEOUT_S + 2.0) * (1 + waves) + 5.0
    assert report.duration_s < bound, f"cycle took {report.duration_s:.1f}s, bound {bound:.1f}s"
    assert story.leftovers_after_cycle1 == [], f"hung tools still running: {story.leftovers_after_cycle1}"


def test_garbage_host_warns_and_stores_nothing_from_garbage(story: Story):
    report = story.reports[0]
    by = runs(report, GARBAGE)
    for name in registry.tool_collectors():
        r = by[name]
        assert r.status in ("warning", "error"), (name, r.status)
        assert r.rows == 0, f"{name} kept {r.rows} rows from garbage: {r.warnings}"
        assert r.warnings or r.error
    assert by["probe"].status == "ok"
    for step in range(1, len(story.counts)):
        junk = {t: n for (t, m, _), n in story.counts[step].items() if m == GARBAGE}
        assert not junk, f"rows stored from garbage after step {step}: {junk}"


def test_unknown_host_key_is_refused_with_a_clear_error(story: Story):
    report = story.reports[0]
    recorded = db_runs(story.store, report.cycle_id)
    srv = story.fleet.servers[STRANGER]
    status, rows, _, error, _ = recorded[(STRANGER, "capabilities")]
    assert status == "error" and rows == 0
    assert "unknown host key" in error and f"127.0.0.1:{srv.port}" in error
    assert str(story.fleet.known_hosts) in error and "accept_unknown_host_key" in error
    for name in ("probe", *registry.tool_collectors()):
        s, n, _, e, _ = recorded[(STRANGER, name)]
        assert s == "error" and n == 0 and "unknown host key" in e, (name, s, e)
    assert srv.accepted_logins() == 0  # refused before authenticating, every cycle
    assert not {t for (t, m, _) in story.counts[-1] if m == STRANGER}


# ---------- cycle 2: only new data ----------

def test_second_cycle_ingests_only_new_data(story: Story):
    for table in sorted(story.event_tables):
        for host in (*HEALTHY, HUNG):
            want = story.changes.get(host, {}).get(table, 0) if host == "fleet-a" else 0  # fleet-b: cycle 3
            assert delta(story, 2, table, host) == want, f"{host} {table}: {delta(story, 2, table, host)} != {want}"
    for table in sorted(story.snapshot_tables):
        per_cycle = sum(n for (t, _), n in story.expected.items() if t == table)
        for host in HEALTHY:
            assert delta(story, 2, table, host) == per_cycle, f"{host} {table}: one snapshot per cycle"
    # The cursor at work: fleet-a's beads run read exactly the 3 new lines (+ ready and triage snapshots).
    by = runs(story.reports[1], "fleet-a")
    snapshots = sum(n for (t, s), n in story.expected.items() if s == "beads" and t in story.snapshot_tables)
    assert by["beads"].rows == 3 + snapshots
    assert runs(story.reports[1], "fleet-c")["beads"].rows == snapshots
    with story.store.raw_reader() as con:
        versions = con.execute("SELECT count(*) FROM beads_issues WHERE machine_id = 'fleet-a' "
                               "AND issue_id = 'fleet-new-1'").fetchone()[0]
        domains = {r[0] for r in con.execute(
            "SELECT domain FROM net_events WHERE machine_id = 'fleet-a' AND run_id = 'fleet-test'").fetchall()}
    assert versions == 2  # an updated issue is a new (issue_id, updated_at) row
    assert domains == {"new0.example.com", "new1.example.com", "new2.example.com"}


def test_snapshots_one_per_cycle_and_events_never_duplicated(story: Story):
    cycles = len(story.counts) - 1  # three Runner cycles and the CLI's
    for table in sorted(story.snapshot_tables):
        per_cycle = sum(n for (t, _), n in story.expected.items() if t == table)
        for host in HEALTHY:
            got = total(story.counts[-1], table, host)
            assert got == per_cycle * cycles, f"{host} {table}: {got} rows after {cycles} cycles of {per_cycle}"
    with story.store.raw_reader() as con:
        n = con.execute("SELECT count(DISTINCT collected_at) FROM beads_ready_snapshots WHERE machine_id = "
                        "'fleet-a'").fetchone()[0]
    assert n == cycles
    for table in sorted(story.event_tables):
        base = sum(n for (t, _), n in story.expected.items() if t == table)
        for host in HEALTHY:
            extra = story.changes.get(host, {}).get(table, 0)
            got = total(story.counts[-1], table, host)
            assert got == base + extra, f"{host} {table}: {got} rows, expected {base} + {extra}"


# ---------- restart and the CLI ----------

def test_new_runner_continues_from_stored_cursors(story: Story):
    by = runs(story.reports[2], "fleet-b")
    snapshots = sum(n for (t, s), n in story.expected.items() if s == "beads" and t in story.snapshot_tables)
    assert by["beads"].rows == 1 + snapshots  # read only the line appended since cycle 2
    assert runs(story.reports[2], "fleet-a")["beads"].rows == snapshots
    assert delta(story, 3, "beads_issues", "fleet-b") == 1
    for table in story.event_tables:
        for host in HEALTHY:
            if host != "fleet-b":
                assert delta(story, 3, table, host) == 0, (table, host)
    with story.store.raw_reader() as con:
        cursors = {(m, s) for m, s in con.execute("SELECT machine_id, source FROM ingestion_cursors").fetchall()}
    assert {(h, "beads") for h in HEALTHY} <= cursors and {(h, "rano") for h in HEALTHY} <= cursors


def test_vc_collect_once_prints_a_per_machine_summary(story: Story):
    cli = story.cli
    assert cli is not None and cli.returncode == 0, (cli.returncode, cli.stderr[-3000:])
    err = cli.stderr
    assert "cycle " in err and "row(s) inserted" in err
    for host in ALL_HOSTS:
        assert f"  {host} " in err, f"{host} missing from the summary"
    stranger_lines = [ln for ln in err.splitlines() if ln.startswith(f"  {STRANGER} ")]
    assert stranger_lines and all("error" in ln for ln in stranger_lines)
    assert any("unknown host key" in ln for ln in stranger_lines)
    hung = [ln for ln in err.splitlines() if ln.startswith(f"  {HUNG} ")]
    assert any(" timeout " in ln or " warning " in ln for ln in hung)
    # A separate process, same database: cursors were loaded from it, so no event was read twice.
    for table in story.event_tables:
        for host in HEALTHY:
            assert delta(story, 4, table, host) == 0, (table, host)

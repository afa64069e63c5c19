"""Tool detection: the one-round-trip script, its parser, the TTL cache, and the stored history."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from collectors.capabilities import (
    TABLE,
    CapabilitiesCollector,
    CapabilityCache,
    ToolCapability,
    capability_command,
    extract_version,
    parse_capabilities,
    probe_capabilities,
    report_from_result,
    tools_to_check,
)
from collectors.executors.base import CommandResult
from collectors.executors.ssh import SshExecutor
from tests.sshd import Sshd, SshdFleet
from tests.toolbox import Tool, run_collector, toolbox_executor
from workbench.store import Batch

# Real output of capability_command(["git", "tmux", "python3", "sqlite3", "caut", "sh", "timeout"])
# on a Debian 12 machine (tabs shown as \t).
REAL_OUTPUT = (
    "__VC_CAP__\tgit\t1\t/usr/bin/git\tgit version 2.39.5\n"
    "__VC_CAP__\ttmux\t1\t/usr/bin/tmux\ttmux 3.3a\n"
    "__VC_CAP__\tpython3\t1\t/root/.pyenv/shims/python3\tPython 3.11.7\n"
    "__VC_CAP__\tsqlite3\t1\t/usr/bin/sqlite3\t3.40.1 2022-12-28 14:03:47 "
    "df5c253c0b3dd24916e4ec7cf77d3db5294cc9fd45ae7b9c5e82ad8197f3alt1\n"
    "__VC_CAP__\tcaut\t0\t\t\n"
    "__VC_CAP__\tsh\t1\t/usr/bin/sh\t\n"
    "__VC_CAP__\ttimeout\t1\t/usr/bin/timeout\t\n"
)
WANTED = ["git", "tmux", "python3", "sqlite3", "caut", "sh", "timeout"]

FAKE_TOOLS = {
    "caut": Tool(by_subcommand={"--version": "caut 0.4.2\n", "usage": '{"ok":true}\n'}),
    "ru": Tool(stdout='{"generated_at":"2026-01-05T12:30:00.123Z","repos":[]}\n'),  # ignores --version
    "slowtool": Tool(stdout="slowtool 9.9.9\n", sleep_s=30),
    "ntm": Tool(stdout="\x1b[1mntm\x1b[0m version v1.7.0 (abc123)\n"),
}
FLAGS = {"caut": "--version", "ru": "--version", "slowtool": "--version", "ntm": "--version"}


def run(coro):
    return asyncio.run(coro)


# ---------- parsing ----------

def test_parse_real_output():
    caps = parse_capabilities(REAL_OUTPUT)
    assert set(caps) == set(WANTED)
    assert caps["git"] == ToolCapability(True, "/usr/bin/git", "2.39.5")
    assert caps["tmux"] == (True, "/usr/bin/tmux", "3.3a")
    assert caps["python3"].version == "3.11.7" and caps["python3"].path == "/root/.pyenv/shims/python3"
    assert caps["sqlite3"].version == "3.40.1"
    assert caps["caut"] == (False, None, None)
    assert caps["sh"] == (True, "/usr/bin/sh", None)  # no version asked


def test_parse_truncated_output_drops_the_cut_line():
    cut = REAL_OUTPUT[: REAL_OUTPUT.index("/usr/bin/tmux") + 6]  # ends in the middle of tmux's path
    caps = parse_capabilities(cut)
    assert set(caps) == {"git"} and caps["git"].path == "/usr/bin/git"


@pytest.mark.parametrize("text", [
    "",
    "\n\n",
    "bash: warning: setlocale: LC_ALL: cannot change locale\n",
    "__VC_CAP__ git 1 /usr/bin/git\n",                # spaces, not tabs
    "__VC_CAP__\tgit\tyes\t/usr/bin/git\t\n",        # wrong type for present
    "__VC_CAP__\trm -rf /\t1\t/bin/rm\t\n",          # not a tool name
    "__VC_CAP__\tgit\n",                              # too few fields
    "\x00\xff garbage \x1b[31m\n",
    "{\"ok\": true}\n",
])
def test_parse_garbage_yields_nothing(text: str):
    assert parse_capabilities(text) == {}


def test_parse_keeps_good_lines_among_junk_and_ansi():
    text = ("Welcome to host-7!\n\x1b[32m__VC_CAP__\tgit\t1\t/usr/bin/git\tgit version 2.43.0\x1b[0m\n"
            "__VC_CAP__\tbad\tmaybe\t\t\n__VC_CAP__\tbr\t1\t/opt/bin/br\tbr 0.12.1\n")
    caps = parse_capabilities(text)
    assert caps == {"git": (True, "/usr/bin/git", "2.43.0"), "br": (True, "/opt/bin/br", "0.12.1")}


@pytest.mark.parametrize("line,expected", [
    ("git version 2.39.5", "2.39.5"),
    ("tmux 3.3a", "3.3a"),
    ("Python 3.11.7", "3.11.7"),
    ("caut 0.4.2", "0.4.2"),
    ("ntm version v1.7.0 (abc123)", "1.7.0"),
    ("rch 1.2.0-beta.1+build.5", "1.2.0-beta.1+build.5"),
    ("\x1b[1mdcg\x1b[0m 0.9.1", "0.9.1"),
    ('{"generated_at":"2026-01-05T12:30:00.123Z"}', None),
    ("started 12:30:00.123Z", None),
    ("usage: tool [options]", None),
    ("", None),
])
def test_extract_version(line: str, expected: str | None):
    assert extract_version(line) == expected


def test_script_refuses_shell_injection():
    with pytest.raises(ValueError, match="not a tool name"):
        capability_command(["caut; rm -rf /"])
    with pytest.raises(ValueError, match="not a version flag"):
        capability_command(["caut"], {"caut": "--version; reboot"})
    script = capability_command(["git", "git", "caut"], {"git": "--version"})
    assert script.count("vc_t git ") == 1 and "vc_t caut ''" in script


@pytest.mark.parametrize("res,warning", [
    (CommandResult("probe", 1, REAL_OUTPUT.encode(), b"sh: 1: oops\n", 0.1), "probe exited 1: sh: 1: oops"),
    (CommandResult("probe", None, REAL_OUTPUT[:60].encode(), b"", 5.0, timed_out=True), "timed out"),
    (CommandResult("probe", None, REAL_OUTPUT[:60].encode(), b"", 0.1, truncated=True), "byte limit"),
    (CommandResult("probe", 0, b"", b"", 0.1), "no answer for 7 tool(s)"),
])
def test_incomplete_results_are_warned_and_unknown_is_not_absent(res: CommandResult, warning: str):
    now = datetime(2026, 5, 1, tzinfo=UTC)
    report = report_from_result("m1", WANTED, res, now)
    assert any(warning in w for w in report.warnings), report.warnings
    if res.exit_code == 1:
        assert report.has("git") is True and report.has("caut") is False
    else:
        assert report.has("caut") is None  # never answered: unknown, not "not installed"
        assert [r["tool"] for r in report.rows()] == sorted(report.tools)


# ---------- through real executors ----------

def test_probe_on_local_toolbox_bounds_slow_versions(tmp_path: Path):
    ex = toolbox_executor(tmp_path, FAKE_TOOLS, machine_id="box")
    t0 = time.monotonic()
    report = run(probe_capabilities(ex, ["caut", "ru", "slowtool", "ntm", "absent_tool", "sh"],
                                    timeout_s=15, version_flags=FLAGS))
    elapsed = time.monotonic() - t0
    assert elapsed < 6, f"a hung --version must cost its 2 s bound, took {elapsed:.1f}s"
    bindir = tmp_path / "bin"
    assert report.tools["caut"] == (True, str(bindir / "caut"), "0.4.2")
    assert report.tools["ru"] == (True, str(bindir / "ru"), None)  # printed a payload, not a version
    assert report.tools["slowtool"] == (True, str(bindir / "slowtool"), None)  # killed by the bound
    assert report.tools["ntm"].version == "1.7.0"
    assert report.tools["absent_tool"] == (False, None, None)
    assert report.tools["sh"].present and report.warnings == []


def test_probe_timeout_leaves_later_tools_unknown(tmp_path: Path):
    ex = toolbox_executor(tmp_path, FAKE_TOOLS)
    report = run(probe_capabilities(ex, ["caut", "slowtool", "ru"], timeout_s=1.0,
                                    version_flags=FLAGS))
    assert report.has("caut") is True
    assert report.has("ru") is None and report.has("slowtool") is None
    assert any("timed out" in w for w in report.warnings)
    assert any("left unknown: slowtool, ru" in w for w in report.warnings)


def test_rows_insert_once_and_history_accumulates(store, tmp_path: Path):
    ex = toolbox_executor(tmp_path, FAKE_TOOLS, machine_id="box")
    coll = CapabilitiesCollector(cache=CapabilityCache(ttl_s=600))
    t1 = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
    res = run_collector(coll, ex, now=t1, options={"capability_tools": ["caut", "ru", "absent_tool"]})
    rows = res.rows[TABLE]
    assert len(rows) == 3 and res.warnings == []
    assert {r["source"] for r in rows} == {"capabilities"} and all(r["checked_at"] == t1 for r in rows)

    def write(rows):
        b = Batch()
        b.add_rows(TABLE, rows)
        return store.write(b).inserted.get(TABLE, 0)

    assert write(rows) == 3
    assert write(rows) == 0  # same check again: idempotent
    # Within the TTL the collector does not ask the machine again and has nothing new to store.
    again = run_collector(coll, ex, now=t1 + timedelta(minutes=1),
                          options={"capability_tools": ["caut", "ru", "absent_tool"]})
    assert again.rows == {} and again.warnings == []
    later = CapabilitiesCollector(cache=CapabilityCache(ttl_s=600))
    res2 = run_collector(later, ex, now=t1 + timedelta(hours=1),
                         options={"capability_tools": ["caut", "ru", "absent_tool"]})
    assert write(res2.rows[TABLE]) == 3
    with store.raw_reader() as con:
        got = con.execute(f"SELECT tool, present, path, version, schema_version FROM {TABLE} "
                          "WHERE checked_at = ? ORDER BY tool", [t1]).fetchall()
        n = con.execute(f"SELECT count(*) FROM {TABLE}").fetchone()[0]
    assert got == [("absent_tool", False, None, None, 1),
                   ("caut", True, str(tmp_path / "bin" / "caut"), "0.4.2", 1),
                   ("ru", True, str(tmp_path / "bin" / "ru"), None, 1)]
    assert n == 6


def test_default_tool_list_covers_registered_collectors():
    tools = tools_to_check()
    assert "caut" in tools and "git" in tools and len(tools) == len(set(tools))


# ---------- over real SSH ----------

@pytest.fixture(scope="session")
def cap_fleet(tmp_path_factory: pytest.TempPathFactory):
    with SshdFleet(tmp_path_factory.mktemp("sshd-caps")) as f:
        f.add("capbox", tools=FAKE_TOOLS)
        yield f


def sessions(srv: Sshd) -> int:
    """Commands sshd started (LogLevel VERBOSE logs one line per exec request)."""
    return srv.log_text().count("Starting session: command")


@pytest.mark.integration
def test_one_round_trip_over_ssh_and_ttl_cache(cap_fleet: SshdFleet):
    srv = cap_fleet.servers["capbox"]
    clock = [1000.0]
    cache = CapabilityCache(ttl_s=60, clock=lambda: clock[0])
    tools = ["caut", "ru", "ntm", "absent_tool", "sh"]

    async def go():
        ex = SshExecutor(cap_fleet.machine_config(srv, id="capbox"), connect_timeout_s=5)
        counts = []
        try:
            s0 = sessions(srv)
            first = await asyncio.gather(*[cache.get(ex, tools, version_flags=FLAGS) for _ in range(5)])
            counts.append(sessions(srv) - s0)
            cached = await cache.get(ex, ["caut", "sh"], version_flags=FLAGS)
            counts.append(sessions(srv) - s0)
            widened = await cache.get(ex, ["caut", "git"], version_flags=FLAGS)  # git never asked: probe
            counts.append(sessions(srv) - s0)
            clock[0] += 61
            expired = await cache.get(ex, ["caut"], version_flags=FLAGS)
            counts.append(sessions(srv) - s0)
            forced = await cache.get(ex, ["caut"], force=True, version_flags=FLAGS)
            counts.append(sessions(srv) - s0)
            return first, cached, widened, expired, forced, counts
        finally:
            await ex.close()

    first, cached, widened, expired, forced, counts = run(go())
    assert counts == [1, 1, 2, 3, 4]  # five concurrent askers, one round-trip
    rep = first[0]
    assert not rep.from_cache and rep.machine_id == "capbox" and rep.warnings == []
    assert rep.tools["caut"] == (True, str(srv.bindir / "caut"), "0.4.2")  # the remote toolbox, remote PATH
    assert rep.tools["ntm"].version == "1.7.0" and rep.tools["ru"].version is None
    assert rep.tools["absent_tool"] == (False, None, None)
    assert rep.tools["sh"].present
    assert sum(not r.from_cache for r in first) == 1
    assert cached.from_cache and set(cached.tools) == {"caut", "sh"} and cached.checked_at == rep.checked_at
    assert not widened.from_cache and widened.has("git") is not None
    assert not expired.from_cache and not forced.from_cache

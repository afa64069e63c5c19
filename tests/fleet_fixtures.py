"""Fleet-tool rows for the dashboard database: the recorded upstream payloads, run through the collectors.

Every row here is produced by a real collector (`collect()` through the LocalExecutor, with fake
tools that print the payloads of ../shared/upstream_formats: verbatim files where upstream has them,
else the format note's reconstructed example), so the pages and robot commands are tested on the
shapes collectors really leave behind. Only values move: timestamps are re-based on the fixture
clock `t0` (the recorded ones are months old and would fall outside every time window), and a few
usage figures differ per machine so that merging has something to decide. The rch build history
has no recorded line upstream: its lines follow the BuildRecord shape of rch.md.

What is fixed by construction (the tests assert it):
- The caut account `codex:user@example.com` is reported by `alpha` (twice: t0-70m and t0-10m) and
  by `demo-01` (t0-5m, the most recent): one merged account, two machines. Its primary window:
  latest 31% (demo-01), max 31%; secondary: latest 57% (demo-01), max 59% (alpha).
- caam on alpha reports `claude:alice@example.com` (primary 42%, secondary 18%).
- ru: alpha has the full recorded status (4 dirty repos, 3 behind, 1 remote mismatch); demo-01 has
  the first ten repos, one of them 3 commits ahead and dirty.
- rch on alpha: five status snapshots with queue depths QUEUE_DEPTHS, and BUILDS history lines.
- rano on alpha: the recorded export replayed at three moments (RANO_SHIFTS), 7 events each.
- Tool availability: alpha has ALPHA_TOOLS, demo-01 DEMO_TOOLS, of CAPABILITY_TOOLS; ghost none.
- dcg on alpha: a history.db (schema v5 DDL of dcg.md) with DCG_COMMANDS, and `dcg stats` printing
  the verbatim dcg.stats.example.json.
- cloud_benchmarker, read on alpha (its control node): BENCH_RUNS of alpha, demo-01 and an outside
  VPS; alpha's latest CPU figure is 40% under its usual (the one "slower" host), the VPS has a single
  run (no baseline yet). Served by a real HTTP server on loopback, fetched by the real curl.
- Agent mail on alpha: a Rust-server mail database (mcp_agent_mail.md's columns, integer µs times)
  with MAIL_MESSAGES to three agents and MAIL_RESERVATIONS, one of them held now.

No SQLite database is recorded upstream for dcg or agent mail, so those two are built here from the
documented schemas and read by the real collectors (through the real sqlite reader).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import sqlite3
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from collectors.base import CollectContext, Collector, Limits
from collectors.beads import BeadsCollector
from collectors.caam import CaamCollector
from collectors.capabilities import CapabilitiesCollector, CapabilityCache
from collectors.caut import CautCollector
from collectors.cloud_benchmarker import CloudBenchmarkerCollector
from collectors.dcg import DcgCollector
from collectors.executors.local import LocalExecutor
from collectors.mcp_agent_mail import McpAgentMailCollector
from collectors.ntm import NtmCollector
from collectors.pt import PtCollector
from collectors.rano import RanoCollector
from collectors.rch import RchCollector
from collectors.ru import RuCollector
from tests.http_server import serve
from tests.toolbox import SHARED_FORMATS, Tool, make_toolbox
from workbench.store import Batch, Store

ALPHA, DEMO = "alpha", "demo-01"
TEMPLATES = Path(__file__).resolve().parents[1] / "sample_data" / "upstream_templates"

CAUT_ACCOUNT = "codex:user@example.com"
CAAM_ACCOUNT = "claude:alice@example.com"
# (machine, minutes before t0, primary %, secondary %)
CAUT_RUNS = ((ALPHA, 70, 22.0, 55.0), (ALPHA, 10, 28.0, 59.0), (DEMO, 5, 31.0, 57.0))
DEMO_REPOS = 10
DEMO_AHEAD_REPO = "Dicklesworthstone/communitai"
QUEUE_DEPTHS = ((60, 0), (45, 2), (30, 5), (15, 3), (2, 1))  # (minutes before t0, queued builds)
RANO_SHIFTS = (230, 110, 20)  # minutes before t0 at which the recorded export is replayed
CAPABILITY_TOOLS = ("caut", "caam", "ntm", "ru", "br", "bv", "rch", "pt", "rano", "dcg", "cass")
ALPHA_TOOLS = ("caut", "caam", "ntm", "ru", "br", "bv", "rch", "pt", "rano", "dcg")
DEMO_TOOLS = ("caut", "ru")
BEADS_REPO = "work/beads_rust"
# Build history lines (rchd BuildRecord): (id, minutes before t0, duration s, exit code, location, worker)
BUILDS = ((101, 50, 42, 0, "remote", "worker-a"), (102, 41, 38, 0, "remote", "worker-a"),
          (103, 33, 95, 101, "remote", "worker-a"), (104, 20, 12, 0, "local", None),
          (105, 9, 40, 0, "remote", "worker-a"))


# dcg history rows: (minutes before t0, outcome, rule_id or None, agent, command)
DCG_COMMANDS = (
    (300, "deny", "core.git:reset-hard", "claude_code", "git reset --hard"),
    (170, "allow", None, "codex", "git status"),
    (120, "deny", "core.git:reset-hard", "codex", "git reset --hard HEAD~3"),
    (90, "warn", "core.git:push-force", "claude_code", "git push --force-with-lease"),
    (40, "deny", "core.filesystem:rm-rf", "claude_code", "rm -rf ./build /"),
    (35, "allow", None, "claude_code", "cargo test"),
    (30, "deny", "core.git:reset-hard", "claude_code", "git reset --hard origin/main"),
    (5, "allow", None, "codex", "ls -la"),
)
MAIL_PROJECT = "flywheel"
MAIL_AGENTS = {1: "GreenCastle", 2: "BlueLake", 3: "RedFox"}
# (id, minutes before t0, sender, recipient, importance, ack required, read min ago, acked min ago, subject)
MAIL_MESSAGES = (
    (1, 120, 1, 2, "urgent", True, None, None, "Stop: migrations are broken on main"),
    (2, 90, 1, 3, "normal", True, 80, None, "Please review the rch config change"),
    (3, 10, 3, 2, "high", True, None, None, "Need the api lock back soon"),
    (4, 180, 2, 3, "normal", False, 170, None, "FYI: bench numbers"),
    (5, 200, 2, 1, "normal", True, 190, 185, "Done with the parser"),
)
# (id, agent, pattern, created min ago, expires in min (negative: expired), released min ago)
MAIL_RESERVATIONS = (
    (1, 2, "src/api/**", 30, 50, None),
    (2, 3, "docs/**", 100, -10, None),
    (3, 1, "tests/**", 60, 30, 20),
)


# cloud_benchmarker runs: (hours before t0, {host: cpu events/s}); other metrics stay at the template's.
BENCH_VPS = "vps-fra-1"
BENCH_RUNS = ((72, {ALPHA: 4000.0, DEMO: 3000.0}), (48, {ALPHA: 4100.0, DEMO: 3050.0}),
              (24, {ALPHA: 3950.0, DEMO: 2980.0}), (6, {ALPHA: 2400.0, DEMO: 3010.0, BENCH_VPS: 3500.0}))


@dataclass(frozen=True)
class FleetFacts:
    t0: datetime
    beads_repo: str  # the repo path as the beads collector saw it (under the fake machine's HOME)
    inserted: dict[str, int]
    warnings: tuple[str, ...]  # what the collectors said about the payloads (expected: nothing)


def md_json_block(md: str, section: str, fixes: tuple[tuple[str, str], ...] = ()) -> Any:
    """The first ```json block after `section` (a regex) in a format note: the reconstructed examples.

    `fixes`: literal replacements for the note's elisions ("…") that keep its block from being JSON.
    """
    text = (SHARED_FORMATS / md).read_text(encoding="utf-8")
    m = re.search(section + r".*?```json\n(.*?)```", text, re.S)
    assert m is not None, f"no json block after {section!r} in {md}"
    block = m[1]
    for old, new in fixes:
        assert old in block, f"{md}: fix {old!r} no longer applies"
        block = block.replace(old, new)
    return json.loads(block)


def _iso(ts: datetime) -> str:
    return ts.strftime("%Y-%m-%dT%H:%M:%SZ")


def _load(name: str) -> Any:
    return json.loads((SHARED_FORMATS / name).read_text(encoding="utf-8"))


class _Collection:
    """Rows of every collector run, in one batch, and whatever the collectors warned about."""

    def __init__(self) -> None:
        self.batch = Batch()
        self.warnings: list[str] = []

    def run(self, collector: Collector, root: Path, machine_id: str, tools: dict[str, Tool], now: datetime,
            options: dict[str, Any] | None = None) -> None:
        rows, warnings = _run(collector, root, machine_id, tools, now, options)
        for table, part in rows.items():
            self.batch.add_rows(table, part)
        self.warnings += [f"{collector.name}@{machine_id}: {w}" for w in warnings]


def _run(collector: Collector, root: Path, machine_id: str, tools: dict[str, Tool], now: datetime,
         options: dict[str, Any] | None = None) -> tuple[dict[str, list[dict[str, Any]]], list[str]]:
    bindir = make_toolbox(root, tools)
    home = root / "home"
    home.mkdir(parents=True, exist_ok=True)
    # Only the fake tools and the base system on PATH: what the machine "has" is what the test says.
    ex = LocalExecutor(machine_id, env={"PATH": f"{bindir}:/usr/bin:/bin", "HOME": str(home)})
    ctx = CollectContext(machine_id=machine_id, executor=ex, limits=Limits(timeout_s=20), now=now,
                         options=options or {})
    result = asyncio.run(collector.collect(ctx))
    assert result.row_count, (collector.name, result.warnings)
    return result.rows, result.warnings


def _caut_payload(t0: datetime, minutes: int, primary: float, secondary: float) -> str:
    p = _load("caut.example.json")
    at = t0 - timedelta(minutes=minutes)
    p["generatedAt"] = _iso(at)
    d = p["data"][0]
    d["usage"]["updatedAt"] = _iso(at)
    d["usage"]["primary"].update(usedPercent=primary, remainingPercent=100 - primary,
                                 resetsAt=_iso(t0 + timedelta(hours=2, minutes=15)))
    d["usage"]["secondary"].update(usedPercent=secondary, remainingPercent=100 - secondary,
                                   resetsAt=_iso(t0 + timedelta(days=5)))
    return json.dumps(p, indent=2)


def _caut_cost(t0: datetime, minutes: int) -> str:
    """The reconstructed `caut cost` payload with its days moved to the two days before t0 and today."""
    env = json.loads((TEMPLATES / "caut.cost.reconstructed.json").read_text())
    env["generatedAt"] = _iso(t0 - timedelta(minutes=minutes))
    for p in env["data"]:
        p["updatedAt"] = env["generatedAt"]
        n = len(p["daily"])
        for i, d in enumerate(p["daily"]):
            d["date"] = (t0 - timedelta(days=n - 1 - i)).strftime("%Y-%m-%d")
    return json.dumps(env)


def _caam_payloads(t0: datetime) -> tuple[str, str]:
    status = md_json_block("caam.md", r"## 2\. `caam status")
    status["warnings"] = ["claude/alice@example.com: Warning - Token expires in 45 minutes"]
    status["recommendations"] = []
    claude = next(t for t in status["tools"] if t["tool"] == "claude")
    claude["health"]["expires_at"] = claude["identity"]["expires_at"] = _iso(t0 + timedelta(minutes=45))
    limits = md_json_block("caam.md", r"## 1\. `caam limits")
    u = limits[0]["usage"]
    u["fetched_at"] = _iso(t0 - timedelta(minutes=8))
    u["primary_window"]["resets_at"] = _iso(t0 + timedelta(hours=3))
    u["secondary_window"]["resets_at"] = _iso(t0 + timedelta(days=4))
    return json.dumps(status, indent=2), json.dumps(limits, indent=2)


def _ru_payloads(subset: int | None = None, ahead_repo: str | None = None) -> tuple[str, str]:
    lst, status = _load("ru.list.example.json"), _load("ru.status.example.json")
    if subset is not None:
        status["data"]["repos"] = status["data"]["repos"][:subset]
        status["data"]["total"] = subset
        keep = {r["path"] for r in status["data"]["repos"]}
        lst["data"]["repos"] = [r for r in lst["data"]["repos"] if r.get("path") in keep]
    for r in status["data"]["repos"]:
        if r["repo"] == ahead_repo:
            r.update(status="ahead", ahead=3, dirty=True)
    return json.dumps(lst), json.dumps(status)


def _rch_status(t0: datetime, minutes: int, queued: int) -> str:
    p = md_json_block("rch.md", r"### Reconstructed example", (('"…"', '"degraded: one worker unreachable"'),))
    at = t0 - timedelta(minutes=minutes)
    p["timestamp"] = int(at.timestamp())
    full = p["data"]["daemon"]
    full["queued_builds"] = [
        {"id": 900 + i, "project_id": "myproj", "command": "cargo test", "queued_at": _iso(at), "position": i + 1,
         "slots_needed": 8, "wait_time": f"{i + 1}m"} for i in range(queued)]
    full["daemon"]["slots_available"] = 40 - 8 * min(queued, 5)
    return json.dumps(p)


def _rch_history(t0: datetime) -> str:
    lines = []
    for build_id, minutes, dur_s, code, location, worker in BUILDS:
        started = t0 - timedelta(minutes=minutes)
        lines.append(json.dumps({
            "id": build_id, "started_at": _iso(started), "completed_at": _iso(started + timedelta(seconds=dur_s)),
            "project_id": "myproj", "worker_id": worker, "command": "cargo build --release",
            "exit_code": code, "duration_ms": dur_s * 1000, "location": location,
            "bytes_transferred": 1_048_576 if location == "remote" else None, "timing": None,
            "cancellation": None}))
    return "\n".join(lines) + "\n"


def _rano_export(t0: datetime, minutes: int) -> str:
    lines = (SHARED_FORMATS / "rano.export.example.jsonl").read_text(encoding="utf-8").splitlines()
    objs = [json.loads(line) for line in lines if line.strip()]
    first = min(datetime.fromisoformat(o["ts"].replace("Z", "+00:00")) for o in objs)
    shift = (t0 - timedelta(minutes=minutes)) - first
    for o in objs:
        o["ts"] = _iso(datetime.fromisoformat(o["ts"].replace("Z", "+00:00")) + shift)
    return "".join(json.dumps(o) + "\n" for o in objs)


def _pt_plan(t0: datetime) -> str:
    p = md_json_block("pt.md", r"## Reconstructed example")
    at = _iso(t0 - timedelta(minutes=12))
    p["timestamp"] = p["generated_at"] = at
    return json.dumps(p)


def _bv_triage(t0: datetime) -> str:
    p = md_json_block("bv.md", r"## Reconstructed example", (('"3f9a…"', '"3f9a"'), ('["…"]', "[]")))
    p["generated_at"] = p["triage"]["meta"]["generated_at"] = _iso(t0 - timedelta(minutes=20))
    return json.dumps(p)


def _usec(ts: datetime) -> int:
    return int(ts.timestamp() * 1_000_000)


def _dcg_history(path: Path, t0: datetime) -> None:
    """A dcg history.db with the `commands` / `schema_version` tables of dcg.md (schema v5)."""
    con = sqlite3.connect(path)
    con.executescript("""
        CREATE TABLE commands (id INTEGER PRIMARY KEY AUTOINCREMENT, timestamp TEXT NOT NULL,
            agent_type TEXT NOT NULL, working_dir TEXT NOT NULL, command TEXT NOT NULL,
            command_hash TEXT NOT NULL,
            outcome TEXT NOT NULL CHECK (outcome IN ('allow','deny','warn','bypass')),
            pack_id TEXT, pattern_name TEXT, rule_id TEXT, eval_duration_us INTEGER DEFAULT 0, session_id TEXT,
            exit_code INTEGER, parent_command_id INTEGER REFERENCES commands(id), hostname TEXT,
            allowlist_layer TEXT, bypass_code TEXT);
        CREATE TABLE schema_version (version INTEGER, applied_at TEXT, description TEXT, last_prune_at TEXT);
    """)
    con.execute("INSERT INTO schema_version VALUES (5, ?, 'v5', NULL)", (_iso(t0 - timedelta(days=30)),))
    for minutes, outcome, rule, agent, command in DCG_COMMANDS:
        pack, pattern = rule.split(":") if rule else (None, None)
        con.execute(
            "INSERT INTO commands (timestamp, agent_type, working_dir, command, command_hash, outcome, pack_id, "
            "pattern_name, rule_id, eval_duration_us, session_id, hostname) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
            (_iso(t0 - timedelta(minutes=minutes)), agent, "/data/projects/flywheel", command,
             "sha256:" + hashlib.sha256(command.encode()).hexdigest(), outcome, pack, pattern, rule, 140, "sess-1",
             ALPHA))
    con.commit()
    con.close()


def _mail_db(path: Path, t0: datetime) -> None:
    """A Rust-server agent mail database (tables and columns of mcp_agent_mail.md, times in µs)."""
    con = sqlite3.connect(path)
    con.executescript("""
        CREATE TABLE projects (id INTEGER PRIMARY KEY, slug TEXT UNIQUE, human_key TEXT, created_at INTEGER);
        CREATE TABLE agents (id INTEGER PRIMARY KEY, project_id INTEGER, name TEXT, program TEXT, model TEXT,
            task_description TEXT, inception_ts INTEGER, last_active_ts INTEGER);
        CREATE TABLE messages (id INTEGER PRIMARY KEY AUTOINCREMENT, project_id INTEGER, sender_id INTEGER,
            thread_id TEXT, subject TEXT NOT NULL, body_md TEXT NOT NULL, importance TEXT DEFAULT 'normal',
            ack_required INTEGER DEFAULT 0, created_ts INTEGER NOT NULL, attachments TEXT DEFAULT '[]',
            recipients_json TEXT DEFAULT '{}');
        CREATE TABLE message_recipients (message_id INTEGER, agent_id INTEGER, kind TEXT DEFAULT 'to',
            read_ts INTEGER, ack_ts INTEGER, PRIMARY KEY (message_id, agent_id));
        CREATE TABLE file_reservations (id INTEGER PRIMARY KEY AUTOINCREMENT, project_id INTEGER,
            agent_id INTEGER, path_pattern TEXT, exclusive INTEGER DEFAULT 1, reason TEXT DEFAULT '',
            created_ts INTEGER, expires_ts INTEGER NOT NULL, released_ts INTEGER);
        CREATE TABLE file_reservation_releases (reservation_id INTEGER PRIMARY KEY, released_ts INTEGER NOT NULL);
    """)
    con.execute("INSERT INTO projects VALUES (1, ?, '/data/projects/flywheel', ?)",
                (MAIL_PROJECT, _usec(t0 - timedelta(days=3))))
    for aid, name in MAIL_AGENTS.items():
        con.execute("INSERT INTO agents VALUES (?, 1, ?, 'claude-code', 'opus', '', ?, ?)",
                    (aid, name, _usec(t0 - timedelta(days=2)), _usec(t0)))

    def ago(minutes: int | None) -> int | None:
        return None if minutes is None else _usec(t0 - timedelta(minutes=minutes))

    for mid, minutes, sender, to, importance, ack, read, acked, subject in MAIL_MESSAGES:
        con.execute("INSERT INTO messages (id, project_id, sender_id, thread_id, subject, body_md, importance, "
                    "ack_required, created_ts, recipients_json) VALUES (?, 1, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (mid, sender, f"thread-{mid}", subject, f"{subject}.", importance, int(ack), ago(minutes),
                     json.dumps({"to": [MAIL_AGENTS[to]]})))
        con.execute("INSERT INTO message_recipients VALUES (?, ?, 'to', ?, ?)", (mid, to, ago(read), ago(acked)))
    for rid, agent, pattern, created, expires_in, released in MAIL_RESERVATIONS:
        con.execute("INSERT INTO file_reservations (id, project_id, agent_id, path_pattern, exclusive, reason, "
                    "created_ts, expires_ts) VALUES (?, 1, ?, ?, 1, 'editing', ?, ?)",
                    (rid, agent, pattern, ago(created), ago(-expires_in)))
        if released is not None:
            con.execute("INSERT INTO file_reservation_releases VALUES (?, ?)", (rid, ago(released)))
    con.commit()
    con.close()


def _bench_payloads(t0: datetime) -> tuple[str, str]:
    """/data/raw/ and /data/overall/ answers: the template's row shape, re-based on t0 (naive UTC)."""
    tmpl = json.loads((TEMPLATES / "cloud_benchmarker.raw.reconstructed.json").read_text())[0]
    raw, overall = [], []
    for hours, cpu in BENCH_RUNS:
        stamp = (t0 - timedelta(hours=hours)).replace(tzinfo=None).isoformat()
        lo, hi = min(cpu.values()), max(cpu.values())
        for host, value in cpu.items():
            base = {"id": len(raw) + 1, "datetime": stamp, "hostname": host, "IP_address": f"192.0.2.{len(raw) + 1}"}
            raw.append({**tmpl, **base, "cpu_speed_test__events_per_second": value})
            score = 50.0 if hi == lo else (value - lo) / (hi - lo) * 100
            overall.append({**base, "overall_score": round(score, 2)})
    return json.dumps(raw), json.dumps(overall)


def _capability_tools(present: tuple[str, ...]) -> dict[str, Tool]:
    return {t: Tool(by_subcommand={"--version": f"{t} 1.2.3\n", "-V": f"{t} 1.2.3\n"}) for t in present}


def write_fleet(store: Store, root: Path, t0: datetime) -> FleetFacts:
    """Run the fleet collectors on recorded payloads for alpha and demo-01 and write their rows."""
    c = _Collection()

    def ago(minutes: int) -> datetime:
        return t0 - timedelta(minutes=minutes)

    for i, (machine, minutes, primary, secondary) in enumerate(CAUT_RUNS):
        c.run(CautCollector(), root / f"caut{i}", machine,
              {"caut": Tool(by_subcommand={"usage": _caut_payload(t0, minutes, primary, secondary),
                                           "cost": _caut_cost(t0, minutes)})}, ago(minutes))
    status, limits = _caam_payloads(t0)
    c.run(CaamCollector(), root / "caam", ALPHA, {"caam": Tool(by_subcommand={"status": status, "limits": limits})},
          ago(8))

    lst, st = _ru_payloads()
    c.run(RuCollector(), root / "ru-alpha", ALPHA, {"ru": Tool(by_subcommand={"list": lst, "status": st})}, ago(15))
    lst, st = _ru_payloads(DEMO_REPOS, DEMO_AHEAD_REPO)
    c.run(RuCollector(), root / "ru-demo", DEMO, {"ru": Tool(by_subcommand={"list": lst, "status": st})}, ago(25))

    snapshot = (SHARED_FORMATS / "ntm.snapshot.example.json").read_text(encoding="utf-8")
    c.run(NtmCollector(), root / "ntm", ALPHA, {"ntm": Tool(by_subcommand={"--robot-snapshot": snapshot})}, ago(3))

    beads_root = root / "beads"
    repo = beads_root / "home" / BEADS_REPO
    (repo / ".beads").mkdir(parents=True, exist_ok=True)
    (repo / ".beads" / "issues.jsonl").write_bytes((SHARED_FORMATS / "br.issues.example.jsonl").read_bytes())
    c.run(BeadsCollector(), beads_root, ALPHA,
          {"br": Tool(by_subcommand={"ready": SHARED_FORMATS / "br.ready.example.json"}),
           "bv": Tool(stdout=_bv_triage(t0))},
          ago(20), {"beads_repos": [str(repo)]})

    for i, minutes in enumerate(RANO_SHIFTS):
        c.run(RanoCollector(), root / f"rano{i}", ALPHA, {"rano": Tool(stdout=_rano_export(t0, minutes))},
              ago(minutes - 1))

    history = root / "rch-history.jsonl"
    history.write_text(_rch_history(t0))
    for i, (minutes, queued) in enumerate(QUEUE_DEPTHS):
        last = i == len(QUEUE_DEPTHS) - 1
        c.run(RchCollector(), root / f"rch{i}", ALPHA, {"rch": Tool(stdout=_rch_status(t0, minutes, queued))},
              ago(minutes), {"rch_metrics_url": "", "rch_log_paths": [str(history)] if last else []})

    c.run(PtCollector(), root / "pt", ALPHA, {"pt": Tool(stdout=_pt_plan(t0), exit_code=1)}, ago(12))

    (root / "sqlite").mkdir(parents=True, exist_ok=True)
    dcg_db, mail_db = root / "sqlite" / "history.db", root / "sqlite" / "storage.sqlite3"
    _dcg_history(dcg_db, t0)
    c.run(DcgCollector(), root / "dcg", ALPHA,
          {"dcg": Tool(by_subcommand={"stats": SHARED_FORMATS / "dcg.stats.example.json"})}, ago(2),
          {"dcg_history_db": [str(dcg_db)]})
    _mail_db(mail_db, t0)
    c.run(McpAgentMailCollector(), root / "mail", ALPHA, {}, ago(1), {"mail_db_paths": [str(mail_db)]})

    raw, overall = _bench_payloads(t0)
    with serve({"/data/raw/": raw, "/data/overall/": overall}) as api:
        c.run(CloudBenchmarkerCollector(), root / "bench", ALPHA, {}, ago(4), {"cloud_benchmarker_url": api.base})

    for machine, present in ((ALPHA, ALPHA_TOOLS), (DEMO, DEMO_TOOLS)):
        c.run(CapabilitiesCollector(CapabilityCache(ttl_s=0)), root / f"cap-{machine}", machine,
              _capability_tools(present), ago(30), {"capability_tools": list(CAPABILITY_TOOLS)})

    outcome = store.write(c.batch)
    assert outcome.spooled is None, outcome
    return FleetFacts(t0=t0, beads_repo=str(repo), inserted=dict(outcome.inserted), warnings=tuple(c.warnings))

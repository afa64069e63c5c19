"""dcg: a real history.db (schema v5) read through the real LocalExecutor, and the recorded
`dcg stats --format json` payload through a fake dcg on PATH."""

from __future__ import annotations

import hashlib
import json
import shutil
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest

from collectors.base import Limits
from collectors.dcg import DEFAULT_DB, DcgCollector
from tests.toolbox import Tool, run_collector, toolbox_executor
from workbench.store import Batch

NOW = datetime(2026, 1, 19, 12, 0, tzinfo=UTC)
EV, ST = "dcg_events", "dcg_stats_snapshots"

# src/history/schema.rs, schema version 5 (tables and indexes we meet; FTS kept for realism).
DDL = """
CREATE TABLE commands (id INTEGER PRIMARY KEY AUTOINCREMENT, timestamp TEXT NOT NULL,
    agent_type TEXT NOT NULL, working_dir TEXT NOT NULL, command TEXT NOT NULL, command_hash TEXT NOT NULL,
    outcome TEXT NOT NULL {check}, pack_id TEXT, pattern_name TEXT, rule_id TEXT,
    eval_duration_us INTEGER DEFAULT 0, session_id TEXT, exit_code INTEGER,
    parent_command_id INTEGER REFERENCES commands(id), hostname TEXT, allowlist_layer TEXT, bypass_code TEXT);
CREATE INDEX idx_commands_timestamp ON commands(timestamp);
CREATE INDEX idx_commands_outcome_timestamp ON commands(outcome, timestamp);
CREATE INDEX idx_commands_pack_outcome ON commands(pack_id, outcome);
CREATE VIRTUAL TABLE commands_fts USING fts5(command, content='commands', content_rowid='id');
CREATE TABLE stats_cache (key TEXT PRIMARY KEY, value INTEGER, updated_at TEXT);
CREATE TABLE schema_version (version INTEGER NOT NULL, applied_at TEXT NOT NULL, description TEXT,
    last_prune_at TEXT);
"""
CHECK = "CHECK (outcome IN ('allow','deny','warn','bypass'))"

ROWS = [
    ("2026-01-19T10:30:00Z", "claude_code", "/home/dev/proj", "git status", "allow", None, None, None, 45,
     "sess-1", 0, None, "ws-1", None, None),
    ("2026-01-19T10:31:02.123456Z", "claude_code", "/home/dev/proj", "git reset --hard", "deny", "core.git",
     "reset-hard", "core.git:reset-hard", 120, "sess-1", None, None, "ws-1", None, None),
    ("2026-01-19T10:32:00+00:00", "codex", "/home/dev/web", "rm -rf ./build", "warn", "core.filesystem",
     "rm-rf", "core.filesystem:rm-rf", 80, "sess-2", 0, None, "ws-1", None, None),
    ("2026-01-19T10:33:00Z", "codex", "/home/dev/web", "psql -c 'DROP TABLE users'", "bypass",
     "database.postgresql", "drop-table", "database.postgresql:drop-table", 230, "sess-2", 0, 3, "ws-1",
     "project", "ABC123"),
    ("2026-01-19T10:34:00Z", "gemini", "/home/dev/web", "git push --force origin main", "deny", "core.git",
     "push-force", "core.git:push-force", 95, None, 1, None, "ws-2", None, None),
]


def make_history(path: Path, rows=ROWS, version: int = 5, check: bool = True) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    con = sqlite3.connect(path)
    con.execute("PRAGMA journal_mode=WAL")
    con.executescript(DDL.format(check=CHECK if check else ""))
    con.execute("INSERT INTO schema_version VALUES (?, '2026-01-01T00:00:00Z', 'v', NULL)", (version,))
    add(path, rows, con)
    con.close()
    return path


def add(path: Path, rows, con: sqlite3.Connection | None = None) -> None:
    own = con is None
    con = con or sqlite3.connect(path)
    for r in rows:
        con.execute("INSERT INTO commands (timestamp, agent_type, working_dir, command, command_hash, "
                    "outcome, pack_id, pattern_name, rule_id, eval_duration_us, session_id, exit_code, "
                    "parent_command_id, hostname, allowlist_layer, bypass_code) "
                    f"VALUES ({', '.join('?' * 16)})",
                    (*r[:4], "sha256:" + hashlib.sha256(r[3].encode()).hexdigest(), *r[4:]))
    con.commit()
    if own:
        con.close()


@pytest.fixture
def stats_payload(formats_dir: Path) -> bytes:
    return (formats_dir / "dcg.stats.example.json").read_bytes()


def collect(tmp_path: Path, db: Path | str | list | None, stats: bytes | str | None = None,
            exit_code: int = 0, cursor: dict | None = None, limits: Limits | None = None, **options):
    tools = {"dcg": Tool(by_subcommand={"stats": stats if stats is not None else b"{}"}, exit_code=exit_code)}
    ex = toolbox_executor(tmp_path / "box", tools)
    if db is not None:
        options["dcg_history_db"] = [str(p) for p in db] if isinstance(db, list) else str(db)
    return run_collector(DcgCollector(), ex, cursor=cursor, limits=limits, now=NOW, options=options)


def write(store, result):
    b = Batch()
    for table, rows in result.rows.items():
        assert len({frozenset(r) for r in rows}) == 1, f"{table}: rows with different columns"
        b.add_rows(table, rows)
    return store.write(b)


def test_required_tool():
    assert DcgCollector.required_tool == "dcg"


def test_history_and_stats(tmp_path: Path, stats_payload: bytes):
    db = make_history(tmp_path / "history.db")
    r = collect(tmp_path, db, stats_payload)
    assert r.warnings == []
    ev = {e["event_id"]: e for e in r.rows[EV]}
    assert sorted(ev) == [1, 2, 3, 4, 5]
    allow, deny, warn, bypass, push = (ev[i] for i in range(1, 6))
    assert allow["outcome"] == "allow" and allow["rule_id"] is None and allow["command"] == "git status"
    assert allow["ts"] == datetime(2026, 1, 19, 10, 30, tzinfo=UTC) and allow["eval_duration_us"] == 45
    assert deny["outcome"] == "deny" and deny["rule_id"] == "core.git:reset-hard"
    assert deny["pack_id"] == "core.git"
    assert deny["pattern_name"] == "reset-hard" and deny["command"] == "git reset --hard"
    assert deny["ts"] == datetime(2026, 1, 19, 10, 31, 2, 123456, tzinfo=UTC)
    assert (warn["agent_type"], warn["working_dir"], warn["outcome"]) == ("codex", "/home/dev/web", "warn")
    assert bypass["allowlist_layer"] == "project" and bypass["bypass_code"] == "ABC123"
    assert bypass["parent_command_id"] == 3 and bypass["command"] == "psql -c 'DROP TABLE users'"
    assert push["exit_code"] == 1 and push["session_id"] is None and push["hostname"] == "ws-2"
    assert deny["history_schema"] == 5 and deny["db_path"] == str(db) and deny["source"] == "dcg"
    assert deny["command_hash"].startswith("sha256:") and deny["command_truncated"] is False
    assert json.loads(deny["raw_json"])["timestamp"] == "2026-01-19T10:31:02.123456Z"
    assert r.cursor == {"v": 1, "dbs": {str(db): {"commands": 5}}}

    (s,) = r.rows[ST]
    assert s["collected_at"] == NOW and s["source"] == "dcg"
    assert s["period_start"] == datetime(2024, 1, 8, tzinfo=UTC)
    assert s["period_end"] == datetime(2024, 2, 7, tzinfo=UTC)
    totals = ("total_entries", "total_blocks", "total_allows", "total_bypasses", "total_warns")
    assert [s[k] for k in totals] == [150, 23, 120, 5, 2]
    assert s["pack_count"] == 2 and s["top_block_pack"] == "core.git"
    assert json.loads(s["by_pack_json"])[1] == {"pack_id": "core.filesystem", "blocks": 8, "allows": 40,
                                                "bypasses": 2, "warns": 1}
    assert json.loads(s["raw_json"])["total_entries"] == 150


def test_cursor_restart_and_row_cap(tmp_path: Path, stats_payload: bytes):
    db = make_history(tmp_path / "history.db")
    seen, cursor, cycles = [], None, 0
    while cycles < 10:
        cycles += 1
        r = collect(tmp_path, db, stats_payload, cursor=cursor, limits=Limits(timeout_s=10, max_rows=2))
        ids = [e["event_id"] for e in r.rows.get(EV, [])]
        assert len(ids) <= 2
        seen += ids
        assert r.cursor["dbs"][str(db)]["commands"] == (seen[-1] if seen else 0)
        cursor = json.loads(json.dumps(r.cursor))  # as stored in ingestion_cursors
        if not any("the rest comes next cycle" in w for w in r.warnings):
            break
    assert seen == [1, 2, 3, 4, 5] and cycles == 3
    again = collect(tmp_path, db, stats_payload, cursor=cursor)
    assert again.rows.get(EV, []) == [] and again.warnings == [] and again.cursor == cursor
    add(db, [("2026-01-19T11:00:00Z", "claude_code", "/p", "git clean -fdx", "deny", "core.git",
              "clean-force", "core.git:clean-force", 70, "s", None, None, "ws-1", None, None)])
    new = collect(tmp_path, db, stats_payload, cursor=again.cursor)
    assert [(e["event_id"], e["rule_id"]) for e in new.rows[EV]] == [(6, "core.git:clean-force")]


def test_store_insert_and_reinsert(tmp_path: Path, store, stats_payload: bytes):
    db = make_history(tmp_path / "history.db")
    r = collect(tmp_path, db, stats_payload)
    assert write(store, r).inserted == {EV: 5, ST: 1}
    assert sum(write(store, r).inserted.values()) == 0
    assert sum(write(store, collect(tmp_path, db, stats_payload)).inserted.values()) == 0  # lost cursor
    with store.raw_reader() as con:
        denies = con.execute("SELECT rule_id FROM dcg_events WHERE outcome = 'deny' ORDER BY ts").fetchall()
        top = con.execute("SELECT top_block_pack, total_blocks FROM dcg_stats_snapshots").fetchall()
    assert denies == [("core.git:reset-hard",), ("core.git:push-force",)] and top == [("core.git", 23)]


def test_locked_history_warns_and_keeps_cursor(tmp_path: Path, stats_payload: bytes):
    db = tmp_path / "history.db"
    con = sqlite3.connect(db)
    con.executescript(DDL.format(check=CHECK))
    con.close()
    add(db, ROWS[:2])
    first = collect(tmp_path, db, stats_payload)
    writer = sqlite3.connect(db, isolation_level=None)
    writer.execute("BEGIN EXCLUSIVE")
    try:
        r = collect(tmp_path, db, stats_payload, cursor=first.cursor, limits=Limits(timeout_s=2))
    finally:
        writer.execute("ROLLBACK")
        writer.close()
    assert EV not in r.rows and len(r.rows[ST]) == 1  # stats still come from `dcg stats`
    assert r.cursor == first.cursor
    assert len(r.warnings) == 1 and "locked by a writer" in r.warnings[0]


def test_missing_and_foreign_databases(tmp_path: Path, stats_payload: bytes):
    other = tmp_path / "other.db"
    sqlite3.connect(other).execute("CREATE TABLE messages (id INTEGER PRIMARY KEY)").connection.close()
    good = make_history(tmp_path / "good.db")
    r = collect(tmp_path, [tmp_path / "absent.db", other, good], stats_payload)
    assert len(r.rows[EV]) == 5 and {e["db_path"] for e in r.rows[EV]} == {str(good)}
    assert len(r.warnings) == 2
    assert "absent.db: database file not found (is dcg history enabled?)" in r.warnings[0]
    assert "other.db: no `commands` table" in r.warnings[1]
    assert set(r.cursor["dbs"]) == {str(tmp_path / "absent.db"), str(other), str(good)}


def test_default_path_under_home(tmp_path: Path, stats_payload: bytes):
    make_history(tmp_path / "box" / DEFAULT_DB.removeprefix("~/"))
    r = collect(tmp_path, None, stats_payload)
    assert r.warnings == [] and len(r.rows[EV]) == 5 and r.rows[EV][0]["db_path"] == DEFAULT_DB


def test_odd_rows_and_unknown_schema_version(tmp_path: Path, stats_payload: bytes):
    rows = [ROWS[0], ("yesterday-ish", *ROWS[1][1:]), ("2026-01-19T10:40:00Z", *ROWS[2][1:4], "quarantine",
                                                         *ROWS[2][5:])]
    db = make_history(tmp_path / "history.db", rows, version=6, check=False)
    con = sqlite3.connect(db)
    con.execute("UPDATE commands SET eval_duration_us = 'fast' WHERE id = 1")
    con.commit()
    con.close()
    r = collect(tmp_path, db, stats_payload)
    ev = {e["event_id"]: e for e in r.rows[EV]}
    assert sorted(ev) == [1, 3] and ev[1]["eval_duration_us"] is None and ev[3]["outcome"] == "quarantine"
    assert ev[1]["history_schema"] == 6 and json.loads(ev[1]["raw_json"])["eval_duration_us"] == "fast"
    w = " | ".join(r.warnings)
    assert "schema version 6 (expected 5)" in w and "1 row(s) without a readable id or timestamp" in w
    assert "unknown outcome value(s) ['quarantine']" in w
    assert r.cursor["dbs"][str(db)]["commands"] == 3  # the skipped row is passed, not retried forever


def test_sqlite3_cli_fallback_gives_the_same_rows(tmp_path: Path, stats_payload: bytes):
    assert shutil.which("sqlite3"), "sqlite3 CLI is installed by .ci/run"
    db = make_history(tmp_path / "history.db")
    py = collect(tmp_path, db, stats_payload, sqlite_engine="python3")
    cli = collect(tmp_path, db, stats_payload, sqlite_engine="sqlite3")
    assert cli.warnings == [] and cli.rows == py.rows and cli.cursor == py.cursor


def test_stats_can_be_turned_off(tmp_path: Path):
    db = make_history(tmp_path / "history.db")
    ex = toolbox_executor(tmp_path / "box", {})  # no dcg on PATH: calling it would warn
    r = run_collector(DcgCollector(), ex, now=NOW, options={"dcg_history_db": str(db), "dcg_stats": False})
    assert r.warnings == [] and ST not in r.rows and len(r.rows[EV]) == 5


def _wrong_types(payload: bytes) -> str:
    v = json.loads(payload)
    v["total_blocks"] = "23"
    v["period_start"] = "last month"
    v["by_pack"][0]["blocks"] = None
    v["by_pack"].append("core.docker")
    return json.dumps(v)


@pytest.mark.parametrize("case", ["truncated", "wrong_types", "ansi", "empty", "nonzero", "rules_shape",
                                  "array"])
def test_malformed_stats(tmp_path: Path, stats_payload: bytes, case: str):
    db = make_history(tmp_path / "history.db", ROWS[:1])
    text = stats_payload.decode()
    payload, code = {
        "truncated": (text[:120], 0),
        "wrong_types": (_wrong_types(stats_payload), 0),
        "ansi": ("\x1b[1;33mwarning:\x1b[0m log file rotated\n" + text + "\n\x1b[0m", 0),
        "empty": ("", 0),
        "nonzero": ('{"error": "config parse error"}', 2),
        "rules_shape": ('{"period_days": 30, "rules": [], "totals": {"total_hits": 0}}', 0),
        "array": ("[1, 2]", 0),
    }[case]
    r = collect(tmp_path, db, payload, exit_code=code)
    assert len(r.rows[EV]) == 1  # history is unaffected by a bad stats payload
    stats = r.rows.get(ST, [])
    w = " | ".join(r.warnings)
    if case == "truncated":
        assert stats == [] and "dcg stats: not valid JSON" in w
    elif case == "wrong_types":
        (s,) = stats
        assert s["total_blocks"] is None and s["period_start"] is None and s["total_allows"] == 120
        assert s["pack_count"] == 2 and s["top_block_pack"] == "core.filesystem"
        assert "total_blocks should be an integer" in w and "by_pack[2] should be an object" in w
    elif case == "ansi":
        (s,) = stats
        assert s["total_entries"] == 150 and "ignored" in w and "before the payload" in w
    elif case == "empty":
        assert stats == [] and "dcg stats: empty output" in w
    elif case == "nonzero":
        assert stats == [] and "exited 2" in w and "not `dcg stats` output" in w
    elif case == "rules_shape":
        assert stats == [] and "not `dcg stats` output" in w
    else:
        assert stats == [] and "expected a JSON object, got list" in w

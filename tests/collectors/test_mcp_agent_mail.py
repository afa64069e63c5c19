"""mcp_agent_mail: real SQLite files in both server variants (Python TEXT times, Rust integer µs),
read through the real LocalExecutor; cursors, read/ack and release changes, caps, locks, the store."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from collectors.base import Limits
from collectors.executors.local import LocalExecutor
from collectors.mcp_agent_mail import DEFAULT_DB, McpAgentMailCollector
from tests.toolbox import run_collector, toolbox_executor
from workbench.store import Batch

T0 = datetime(2026, 2, 4, 22, 13, 11, 79199, tzinfo=UTC)
NOW = datetime(2026, 2, 4, 22, 30, tzinfo=UTC)
MSG, RCP, RES = "mail_messages", "mail_recipients", "mail_file_reservations"

# DDL as the Python server's SQLModel metadata creates it (models.py, db.py), trimmed to what we read
# plus the FTS table and trigger, so the reader meets a realistic file.
PY_DDL = """
CREATE TABLE projects (id INTEGER NOT NULL PRIMARY KEY, slug VARCHAR(255) NOT NULL UNIQUE,
    human_key VARCHAR(255) NOT NULL, created_at DATETIME NOT NULL, archived_at DATETIME);
CREATE TABLE agents (id INTEGER NOT NULL PRIMARY KEY, project_id INTEGER NOT NULL REFERENCES projects (id),
    name VARCHAR(128) NOT NULL, program VARCHAR(128) NOT NULL, model VARCHAR(128) NOT NULL,
    task_description VARCHAR(2048) NOT NULL DEFAULT '', inception_ts DATETIME NOT NULL,
    last_active_ts DATETIME NOT NULL, attachments_policy VARCHAR(16) NOT NULL DEFAULT 'auto',
    contact_policy VARCHAR(16) NOT NULL DEFAULT 'auto', retired_at DATETIME, UNIQUE (project_id, name));
CREATE TABLE messages (id INTEGER NOT NULL PRIMARY KEY, project_id INTEGER NOT NULL REFERENCES projects (id),
    sender_id INTEGER NOT NULL REFERENCES agents (id), thread_id VARCHAR(128), subject VARCHAR(512) NOT NULL,
    body_md TEXT NOT NULL, importance VARCHAR(16) NOT NULL DEFAULT 'normal', ack_required BOOLEAN NOT NULL,
    created_ts DATETIME NOT NULL, attachments JSON NOT NULL DEFAULT '[]', topic VARCHAR(64));
CREATE INDEX ix_messages_created_ts ON messages (created_ts);
CREATE TABLE message_recipients (message_id INTEGER NOT NULL REFERENCES messages (id),
    agent_id INTEGER NOT NULL REFERENCES agents (id), kind VARCHAR(8) NOT NULL DEFAULT 'to',
    read_ts DATETIME, ack_ts DATETIME, PRIMARY KEY (message_id, agent_id));
CREATE TABLE file_reservations (id INTEGER NOT NULL PRIMARY KEY,
    project_id INTEGER NOT NULL REFERENCES projects (id), agent_id INTEGER NOT NULL REFERENCES agents (id),
    path_pattern VARCHAR(512) NOT NULL, exclusive BOOLEAN NOT NULL DEFAULT 1,
    reason VARCHAR(512) NOT NULL DEFAULT '', created_ts DATETIME NOT NULL, expires_ts DATETIME NOT NULL,
    released_ts DATETIME);
CREATE VIRTUAL TABLE fts_messages USING fts5(message_id UNINDEXED, subject, body);
CREATE TRIGGER fts_messages_ai AFTER INSERT ON messages BEGIN
    INSERT INTO fts_messages(rowid, message_id, subject, body)
    VALUES (new.id, new.id, new.subject, new.body_md);
END;
"""

# DDL from the Rust server's schema.rs (CREATE_TABLES_SQL + the release ledger + inbox_stats).
RUST_DDL = """
CREATE TABLE projects (id INTEGER PRIMARY KEY AUTOINCREMENT, slug TEXT NOT NULL UNIQUE,
    human_key TEXT NOT NULL, created_at INTEGER NOT NULL);
CREATE TABLE agents (id INTEGER PRIMARY KEY AUTOINCREMENT,
    project_id INTEGER NOT NULL REFERENCES projects(id), name TEXT NOT NULL, program TEXT NOT NULL,
    model TEXT NOT NULL, task_description TEXT NOT NULL DEFAULT '', inception_ts INTEGER NOT NULL,
    last_active_ts INTEGER NOT NULL, attachments_policy TEXT NOT NULL DEFAULT 'auto',
    contact_policy TEXT NOT NULL DEFAULT 'auto', reaper_exempt INTEGER NOT NULL DEFAULT 0,
    UNIQUE(project_id, name));
CREATE TABLE messages (id INTEGER PRIMARY KEY AUTOINCREMENT,
    project_id INTEGER NOT NULL REFERENCES projects(id), sender_id INTEGER NOT NULL REFERENCES agents(id),
    thread_id TEXT, subject TEXT NOT NULL, body_md TEXT NOT NULL, importance TEXT NOT NULL DEFAULT 'normal',
    ack_required INTEGER NOT NULL DEFAULT 0, created_ts INTEGER NOT NULL,
    attachments TEXT NOT NULL DEFAULT '[]', recipients_json TEXT NOT NULL DEFAULT '{}');
CREATE INDEX idx_messages_ack_required_id ON messages(ack_required, id);
CREATE TABLE message_recipients (message_id INTEGER NOT NULL REFERENCES messages(id),
    agent_id INTEGER NOT NULL REFERENCES agents(id), kind TEXT NOT NULL DEFAULT 'to', read_ts INTEGER,
    ack_ts INTEGER, PRIMARY KEY(message_id, agent_id));
CREATE INDEX idx_message_recipients_ack_ts_message ON message_recipients(ack_ts, message_id);
CREATE TABLE file_reservations (id INTEGER PRIMARY KEY AUTOINCREMENT,
    project_id INTEGER NOT NULL REFERENCES projects(id), agent_id INTEGER NOT NULL REFERENCES agents(id),
    path_pattern TEXT NOT NULL, exclusive INTEGER NOT NULL DEFAULT 1, reason TEXT NOT NULL DEFAULT '',
    created_ts INTEGER NOT NULL, expires_ts INTEGER NOT NULL, released_ts INTEGER);
CREATE TABLE file_reservation_releases (reservation_id INTEGER PRIMARY KEY REFERENCES file_reservations(id),
    released_ts INTEGER NOT NULL);
CREATE TABLE inbox_stats (agent_id INTEGER PRIMARY KEY, total_count INTEGER NOT NULL DEFAULT 0,
    unread_count INTEGER NOT NULL DEFAULT 0, ack_pending_count INTEGER NOT NULL DEFAULT 0,
    last_message_ts INTEGER);
CREATE VIRTUAL TABLE fts_messages USING fts5(message_id UNINDEXED, subject, body,
    tokenize='porter unicode61 remove_diacritics 2', prefix='2 3');
"""


def m(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


class MailDb:
    """A mail database in one variant; times are given as datetimes and stored the variant's way."""

    def __init__(self, path: Path, variant: str, wal: bool = True):
        self.path, self.variant = path, variant
        con = self.con()
        if wal:
            con.execute("PRAGMA journal_mode=WAL")
        con.executescript(PY_DDL if variant == "python" else RUST_DDL)
        con.commit()
        con.close()

    def con(self) -> sqlite3.Connection:
        return sqlite3.connect(self.path)

    def t(self, dt: datetime | None) -> str | int | None:
        if dt is None:
            return None
        if self.variant == "rust":
            return int(dt.timestamp() * 1_000_000)
        return dt.replace(tzinfo=None).isoformat(sep=" ")  # naive UTC, as the Python server writes it

    def run(self, sql: str, *params) -> None:
        con = self.con()
        con.execute(sql, params)
        con.commit()
        con.close()

    def seed(self) -> MailDb:
        t = self.t
        con = self.con()
        con.executemany("INSERT INTO projects (id, slug, human_key, created_at) VALUES (?, ?, ?, ?)",
                        [(1, "vibe-cockpit", "/data/projects/vibe_cockpit", t(m(-600))),
                         (2, "ntm", "/data/projects/ntm", t(m(-600)))])
        con.executemany("INSERT INTO agents (id, project_id, name, program, model, inception_ts, "
                        "last_active_ts) VALUES (?, ?, ?, ?, ?, ?, ?)",
                        [(1, 1, "GreenCastle", "claude-code", "opus-4.1", t(m(-60)), t(m(10))),
                         (2, 1, "BlueLake", "codex-cli", "gpt-5-codex", t(m(-50)), t(m(12))),
                         (3, 2, "RedStone", "gemini-cli", "gemini-2.5-pro", t(m(-40)), t(m(11)))])
        for mid, sender, thread, subject, importance, ack, at, attach in [
            (1, 1, "FEAT-42", "Starting auth refactor", "normal", 0, m(0), "[]"),
            (2, 2, "FEAT-42", "Re: Starting auth refactor", "high", 1, m(5), "[]"),
            (3, 1, None, "Build broken on main", "urgent", 1, m(10),
             '[{"type":"file","path":"logs/build.txt"}]'),
        ]:
            con.execute("INSERT INTO messages (id, project_id, sender_id, thread_id, subject, body_md, "
                        "importance, ack_required, created_ts, attachments) "
                        "VALUES (?, 1, ?, ?, ?, ?, ?, ?, ?, ?)",
                        (mid, sender, thread, subject, f"## {subject}\n\nDetails for message {mid}.",
                         importance, ack, t(at), attach))
        if self.variant == "python":
            con.execute("UPDATE messages SET topic = 'auth' WHERE id IN (1, 2)")
        else:
            con.execute("""UPDATE messages SET recipients_json = '{"to":["BlueLake"]}' WHERE id = 1""")
        con.executemany("INSERT INTO message_recipients (message_id, agent_id, kind, read_ts, ack_ts) "
                        "VALUES (?, ?, ?, ?, ?)",
                        [(1, 2, "to", t(m(1)), None), (1, 3, "cc", None, None),
                         (2, 1, "to", t(m(6)), t(m(7))), (3, 2, "to", None, None), (3, 3, "to", None, None)])
        con.executemany("INSERT INTO file_reservations (id, project_id, agent_id, path_pattern, exclusive, "
                        "reason, created_ts, expires_ts) VALUES (?, 1, ?, ?, ?, ?, ?, ?)",
                        [(1, 1, "src/auth/**", 1, "auth refactor", t(m(0)), t(m(60))),
                         (2, 2, "docs/*.md", 0, "", t(m(8)), t(m(38)))])
        con.commit()
        con.close()
        self.release(2, m(9))
        return self

    def release(self, rid: int, at: datetime) -> None:
        if self.variant == "rust":
            self.run("INSERT INTO file_reservation_releases (reservation_id, released_ts) VALUES (?, ?)",
                     rid, self.t(at))
        else:
            self.run("UPDATE file_reservations SET released_ts = ? WHERE id = ?", self.t(at), rid)


def collect(tmp_path: Path, paths: list[str] | str | None, cursor: dict | None = None,
            limits: Limits | None = None, executor=None, now: datetime = NOW, **options):
    ex = executor or toolbox_executor(tmp_path / "box", {})
    if paths is not None:
        options["mail_db_paths"] = paths
    return run_collector(McpAgentMailCollector(), ex, cursor=cursor, limits=limits, now=now,
                         last_run_at=now - timedelta(minutes=1), options=options)


def write(store, result):
    b = Batch()
    for table, rows in result.rows.items():
        assert len({frozenset(r) for r in rows}) == 1, f"{table}: rows with different columns"
        b.add_rows(table, rows)
    return store.write(b)


def keyed(rows: list[dict], *cols: str) -> dict:
    return {tuple(r[c] for c in cols): r for r in rows}


@pytest.fixture(params=["python", "rust"])
def mail(request, tmp_path: Path) -> MailDb:
    return MailDb(tmp_path / f"{request.param}.sqlite3", request.param).seed()


def test_reads_messages_recipients_reservations(tmp_path: Path, mail: MailDb):
    r = collect(tmp_path, [str(mail.path)])
    assert r.warnings == []
    msgs = keyed(r.rows[MSG], "message_id")
    assert sorted(msgs) == [(1,), (2,), (3,)]
    one, two, three = msgs[(1,)], msgs[(2,)], msgs[(3,)]
    assert one["created_at"] == T0 and three["created_at"] == m(10)
    assert (one["variant"], one["db_path"], one["source"]) == (mail.variant, str(mail.path), "mcp_agent_mail")
    assert one["sender_name"] == "GreenCastle" and two["sender_name"] == "BlueLake" and one["sender_id"] == 1
    assert one["project_slug"] == "vibe-cockpit" and one["project_key"] == "/data/projects/vibe_cockpit"
    assert one["thread_id"] == "FEAT-42" and three["thread_id"] is None
    assert one["subject"] == "Starting auth refactor"
    assert one["body_md"].startswith("## Starting auth refactor")
    assert one["body_chars"] == len(one["body_md"]) and one["body_truncated"] is False
    assert (one["importance"], one["is_urgent"], one["ack_required"]) == ("normal", False, False)
    assert (two["importance"], two["is_urgent"], two["ack_required"]) == ("high", False, True)
    assert (three["importance"], three["is_urgent"], three["ack_required"]) == ("urgent", True, True)
    assert json.loads(three["attachments_json"]) == [{"type": "file", "path": "logs/build.txt"}]
    assert one["observed_at"] == NOW and "body_md" not in json.loads(one["raw_json"])
    if mail.variant == "python":
        assert one["topic"] == "auth" and one["recipients_json"] is None
        assert json.loads(one["raw_json"])["created_ts"] == "2026-02-04 22:13:11.079199"
    else:
        assert one["topic"] is None and json.loads(one["recipients_json"]) == {"to": ["BlueLake"]}
        assert json.loads(one["raw_json"])["created_ts"] == 1_770_243_191_079_199

    rc = keyed(r.rows[RCP], "message_id", "agent_id")
    assert len(r.rows[RCP]) == 5
    assert rc[(1, 2)]["state"] == "read" and rc[(1, 2)]["read_at"] == m(1) and rc[(1, 2)]["ack_at"] is None
    assert (rc[(1, 3)]["state"], rc[(1, 3)]["kind"], rc[(1, 3)]["agent_name"]) == ("unread", "cc", "RedStone")
    assert (rc[(2, 1)]["state"], rc[(2, 1)]["ack_at"], rc[(2, 1)]["ack_required"]) == ("acked", m(7), True)
    assert rc[(3, 2)]["message_created_at"] == m(10) and rc[(3, 2)]["ack_required"] is True

    res = keyed(r.rows[RES], "reservation_id")
    assert res[(1,)]["state"] == "held" and res[(1,)]["path_pattern"] == "src/auth/**"
    assert (res[(1,)]["exclusive"], res[(1,)]["expires_at"], res[(1,)]["released_at"]) == (True, m(60), None)
    assert res[(1,)]["agent_name"] == "GreenCastle" and res[(1,)]["project_slug"] == "vibe-cockpit"
    assert (res[(2,)]["state"], res[(2,)]["released_at"], res[(2,)]["exclusive"]) == ("released", m(9), False)
    assert r.cursor["dbs"][str(mail.path)]["messages"] == 3


def test_both_variants_normalize_to_the_same_rows(tmp_path: Path):
    py = MailDb(tmp_path / "py.sqlite3", "python").seed()
    rs = MailDb(tmp_path / "rs.sqlite3", "rust").seed()
    r = collect(tmp_path, [str(py.path), str(rs.path)])
    assert r.warnings == []
    skip = {"db_path", "variant", "raw_json", "topic", "recipients_json"}
    for table, key in ((MSG, ("message_id",)), (RCP, ("message_id", "agent_id")), (RES, ("reservation_id",))):
        by_db = {p: {k: {c: v for c, v in row.items() if c not in skip} for k, row in
                     keyed([x for x in r.rows[table] if x["db_path"] == p], *key).items()}
                 for p in (str(py.path), str(rs.path))}
        assert by_db[str(py.path)] == by_db[str(rs.path)] and by_db[str(py.path)], table


def test_cursor_restart_reads_only_new_rows(tmp_path: Path, mail: MailDb):
    first = collect(tmp_path, [str(mail.path)])
    again = collect(tmp_path, [str(mail.path)], cursor=json.loads(json.dumps(first.cursor)))
    assert again.warnings == [] and again.rows.get(MSG, []) == [] and again.rows.get(RCP, []) == []
    # Reservations expiring after the last run (minus an hour) are re-checked each cycle; same versions,
    # so the store ignores them.
    assert [x["reservation_id"] for x in again.rows.get(RES, [])] == [1, 2]
    mail.run("INSERT INTO messages (id, project_id, sender_id, subject, body_md, importance, ack_required, "
             "created_ts) VALUES (4, 1, 2, 'Tests green', 'ok', 'low', 0, ?)", mail.t(m(20)))
    mail.run("INSERT INTO message_recipients (message_id, agent_id) VALUES (4, 1)")
    third = collect(tmp_path, [str(mail.path)], cursor=again.cursor)
    assert [x["message_id"] for x in third.rows[MSG]] == [4] and third.rows[MSG][0]["importance"] == "low"
    assert [(x["message_id"], x["agent_id"], x["state"]) for x in third.rows[RCP]] == [(4, 1, "unread")]


def test_read_ack_and_release_changes_are_captured(tmp_path: Path, store, mail: MailDb):
    first = collect(tmp_path, [str(mail.path)])
    write(store, first)
    # After the first cycle: RedStone reads message 1, BlueLake reads and acks message 3,
    # reservation 1 is renewed, then released.
    mail.run("UPDATE message_recipients SET read_ts = ? WHERE message_id = 1 AND agent_id = 3", mail.t(m(15)))
    mail.run("UPDATE message_recipients SET read_ts = ?, ack_ts = ? WHERE message_id = 3 AND agent_id = 2",
             mail.t(m(16)), mail.t(m(17)))
    mail.run("UPDATE file_reservations SET expires_ts = ? WHERE id = 1", mail.t(m(120)))
    second = collect(tmp_path, [str(mail.path)], cursor=first.cursor, now=NOW + timedelta(minutes=5))
    assert second.warnings == []
    changes = [(x["message_id"], x["agent_id"], x["state"]) for x in second.rows[RCP]]
    assert changes == [(1, 3, "read"), (3, 2, "acked")]  # in change order, nothing else re-read
    acked = second.rows[RCP][1]
    assert (acked["read_at"], acked["ack_at"]) == (m(16), m(17))
    assert acked["observed_at"] == NOW + timedelta(minutes=5)
    renewed = keyed(second.rows[RES], "reservation_id")[(1,)]
    assert renewed["state"] == "held" and renewed["expires_at"] == m(120)
    assert write(store, second).inserted == {RCP: 2, RES: 1}
    mail.release(1, m(25))
    third = collect(tmp_path, [str(mail.path)], cursor=second.cursor, now=NOW + timedelta(minutes=6))
    assert third.rows.get(RCP, []) == []
    got = {(x["reservation_id"], x["state"], x["released_at"]) for x in third.rows[RES]}
    assert got == {(1, "released", m(25)), (2, "released", m(9))}  # 2: unchanged re-check, ignored below
    assert write(store, third).inserted == {RES: 1}
    with store.raw_reader() as con:
        latest = con.execute(
            "SELECT message_id, agent_id, arg_max(state, observed_at) FROM mail_recipients "
            "GROUP BY ALL ORDER BY 1, 2").fetchall()
        held = con.execute("SELECT reservation_id, arg_max(state, observed_at) FROM mail_file_reservations "
                           "GROUP BY ALL ORDER BY 1").fetchall()
    assert latest == [(1, 2, "read"), (1, 3, "read"), (2, 1, "acked"), (3, 2, "acked"), (3, 3, "unread")]
    assert held == [(1, "released"), (2, "released")]


def test_insert_into_store_and_reinsert_adds_nothing(tmp_path: Path, store, mail: MailDb):
    r = collect(tmp_path, [str(mail.path)])
    assert write(store, r).inserted == {MSG: 3, RCP: 5, RES: 2}
    assert sum(write(store, r).inserted.values()) == 0
    fresh = collect(tmp_path, [str(mail.path)])  # a lost cursor re-reads everything: still no duplicates
    assert sum(write(store, fresh).inserted.values()) == 0
    with store.raw_reader() as con:
        got = con.execute("SELECT message_id, created_at, sender_name, is_urgent FROM mail_messages "
                          "ORDER BY 1").fetchall()
    assert [(g[0], g[2], g[3]) for g in got] == [(1, "GreenCastle", False), (2, "BlueLake", False),
                                                 (3, "GreenCastle", True)]
    assert got[0][1] == T0


def test_row_cap_spreads_the_backlog_over_cycles(tmp_path: Path, mail: MailDb):
    full = collect(tmp_path, [str(mail.path)])
    want = {(t, json.dumps({k: str(v) for k, v in sorted(row.items()) if k != "observed_at"}))
            for t, rows in full.rows.items() for row in rows}
    got: set = set()
    cursor, cycles = None, 0
    while cycles < 12:
        cycles += 1
        r = collect(tmp_path, [str(mail.path)], cursor=cursor, limits=Limits(timeout_s=10, max_rows=2))
        assert r.row_count <= 2  # re-checks and state changes share the same budget
        got |= {(t, json.dumps({k: str(v) for k, v in sorted(row.items()) if k != "observed_at"}))
                for t, rows in r.rows.items() for row in rows}
        cursor = r.cursor
        if not any("limit" in w for w in r.warnings):
            break
    assert got == want and cycles >= 5
    dbc = cursor["dbs"][str(mail.path)]
    assert (dbc["messages"], dbc["reservations"]) == (3, 2)


def test_locked_database_warns_and_keeps_the_cursor(tmp_path: Path):
    mail = MailDb(tmp_path / "locked.sqlite3", "python", wal=False).seed()
    first = collect(tmp_path, [str(mail.path)])
    writer = sqlite3.connect(mail.path, isolation_level=None)
    writer.execute("BEGIN EXCLUSIVE")
    try:
        r = collect(tmp_path, [str(mail.path)], cursor=first.cursor, limits=Limits(timeout_s=2))
    finally:
        writer.execute("ROLLBACK")
        writer.close()
    assert r.rows == {} and r.cursor == first.cursor
    assert len(r.warnings) == 1 and "locked by a writer" in r.warnings[0] and str(mail.path) in r.warnings[0]


def test_missing_corrupt_and_foreign_databases(tmp_path: Path, mail: MailDb):
    junk = tmp_path / "junk.sqlite3"
    junk.write_bytes(b"SQLite format 2\x00" + b"\xff" * 4000)
    other = tmp_path / "other.sqlite3"
    sqlite3.connect(other).execute("CREATE TABLE commands (id INTEGER PRIMARY KEY)").connection.close()
    r = collect(tmp_path, [str(tmp_path / "absent.sqlite3"), str(junk), str(other), str(mail.path)])
    assert len(r.rows[MSG]) == 3  # the good database still counts
    w = r.warnings
    assert len(w) == 3
    assert "absent.sqlite3: database file not found" in w[0]
    assert "junk.sqlite3: file is not a readable SQLite database" in w[1]
    assert "other.sqlite3: no `messages` table" in w[2]
    assert not (tmp_path / "absent.sqlite3").exists()


def test_default_path_under_home(tmp_path: Path):
    box = tmp_path / "box"
    target = box / DEFAULT_DB.removeprefix("~/")
    target.parent.mkdir(parents=True)
    MailDb(target, "rust").seed()
    r = collect(tmp_path, None, executor=toolbox_executor(box, {}))
    assert r.warnings == [] and len(r.rows[MSG]) == 3 and r.rows[MSG][0]["db_path"] == DEFAULT_DB


def test_bad_options_and_cursor(tmp_path: Path, mail: MailDb):
    r = collect(tmp_path, 42)
    assert r.rows == {} and "mail_db_paths should be a list" in r.warnings[0]
    r = collect(tmp_path, [str(mail.path)], cursor={"v": 99, "dbs": "nonsense"}, sqlite_engine="perl")
    assert len(r.rows[MSG]) == 3
    assert any("unusable cursor" in w for w in r.warnings)
    assert any("unknown sqlite_engine" in w for w in r.warnings)


def test_unreadable_values_skip_rows_not_the_batch(tmp_path: Path, store):
    mail = MailDb(tmp_path / "odd.sqlite3", "python").seed()
    mail.run("INSERT INTO messages (id, project_id, sender_id, subject, body_md, importance, ack_required, "
             "created_ts) VALUES (4, 1, 99, 'clock broke', 'x', 'URGENT', 'yes', 'not a date')")
    mail.run("INSERT INTO messages (id, project_id, sender_id, subject, body_md, importance, ack_required, "
             "created_ts) VALUES (5, 7, 1, 'iso T form', 'y', 'urgent', 1, '2026-02-04T23:00:00')")
    mail.run("INSERT INTO message_recipients (message_id, agent_id) VALUES (4, 1)")
    r = collect(tmp_path, [str(mail.path)])
    msgs = keyed(r.rows[MSG], "message_id")
    assert sorted(msgs) == [(1,), (2,), (3,), (5,)]
    five = msgs[(5,)]
    assert five["created_at"] == datetime(2026, 2, 4, 23, 0, tzinfo=UTC) and five["is_urgent"] is True
    assert five["project_slug"] is None  # project 7 does not exist: LEFT JOIN, row kept
    assert any("1 message(s) without a readable id or created_ts" in w for w in r.warnings)
    assert any("1 recipient row(s) whose message is missing" in w for w in r.warnings)
    assert write(store, r).inserted[MSG] == 4


def test_replaced_database_is_read_again(tmp_path: Path, store):
    path = tmp_path / "mail.sqlite3"
    MailDb(path, "rust").seed()
    first = collect(tmp_path, [str(path)])
    write(store, first)
    path.unlink()
    for suffix in ("-wal", "-shm"):
        Path(str(path) + suffix).unlink(missing_ok=True)
    mail = MailDb(path, "rust")
    mail.run("INSERT INTO projects (id, slug, human_key, created_at) VALUES (1, 'fresh', '/p', 0)")
    mail.run("INSERT INTO agents (id, project_id, name, program, model, inception_ts, last_active_ts) "
             "VALUES (1, 1, 'NewAgent', 'codex-cli', 'm', 0, 0)")
    mail.run("INSERT INTO messages (project_id, sender_id, subject, body_md, created_ts) "
             "VALUES (1, 1, 'again', '', ?)", mail.t(m(100)))
    r = collect(tmp_path, [str(path)], cursor=first.cursor)
    assert any("below the cursor 3" in w for w in r.warnings)
    got = [(x["message_id"], x["subject"], x["sender_name"]) for x in r.rows[MSG]]
    assert got == [(1, "again", "NewAgent")]
    assert r.cursor["dbs"][str(path)]["messages"] == 1
    assert write(store, r).inserted == {MSG: 1}  # same id 1, different created_at: a new row, not a collision


def test_sqlite3_cli_gives_the_same_rows(tmp_path: Path, mail: MailDb):
    assert shutil.which("sqlite3"), "sqlite3 CLI is installed by .ci/run"
    py = collect(tmp_path, [str(mail.path)], sqlite_engine="python3")
    cli = collect(tmp_path, [str(mail.path)], sqlite_engine="sqlite3")
    assert cli.warnings == [] and cli.rows == py.rows and cli.cursor == py.cursor
    bindir = tmp_path / "only-sqlite3"
    bindir.mkdir()
    os.symlink(shutil.which("sqlite3"), bindir / "sqlite3")
    auto = collect(tmp_path, [str(mail.path)], executor=LocalExecutor("test-host", env={"PATH": str(bindir)}))
    assert auto.warnings == [] and auto.rows == py.rows
    # State changes go through the same keyset query on the CLI path.
    mail.run("UPDATE message_recipients SET ack_ts = ? WHERE message_id = 3 AND agent_id = 3", mail.t(m(30)))
    nxt = collect(tmp_path, [str(mail.path)], cursor=cli.cursor, sqlite_engine="sqlite3")
    assert [(x["message_id"], x["agent_id"], x["state"]) for x in nxt.rows[RCP]] == [(3, 3, "acked")]

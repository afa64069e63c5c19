"""sqlite_reader against real SQLite files through the real LocalExecutor: python3 and the sqlite3 CLI."""

from __future__ import annotations

import asyncio
import os
import shutil
import sqlite3
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from collectors import sqlite_reader as sr
from collectors.executors.base import CommandResult
from collectors.executors.local import LocalExecutor

ENGINES = ["python3", "sqlite3"]
HAS_CLI = shutil.which("sqlite3") is not None


def make_db(path: Path, n: int = 5, wal: bool = False) -> Path:
    con = sqlite3.connect(path)
    if wal:
        con.execute("PRAGMA journal_mode=WAL")
    con.execute("CREATE TABLE events (id INTEGER PRIMARY KEY AUTOINCREMENT, kind TEXT NOT NULL, "
                "ts, score REAL, payload BLOB, note TEXT)")
    for i in range(1, n + 1):
        con.execute("INSERT INTO events (kind, ts, score, payload, note) VALUES (?, ?, ?, ?, ?)",
                    (f"k{i}", 1_770_243_191_079_199 + i, i / 4, bytes([i, 0, 255]),
                     None if i % 2 else f"n'{i}\n"))
    con.commit()
    con.close()
    return path


def read(path: Path | str, after: int | None, *, limit: int = 100, engine: str = "auto",
         max_bytes: int = 1 << 20, executor: LocalExecutor | None = None,
         table: str = "events") -> sr.SqliteRead:
    ex = executor or LocalExecutor("sqlite-test")
    return asyncio.run(sr.read_after(ex, str(path), table, after=after, limit=limit, timeout_s=10,
                                     max_bytes=max_bytes, engine=engine))


def only(tool: str, root: Path) -> LocalExecutor:
    """An executor whose PATH holds only `tool` (so python3 is genuinely absent, or both are)."""
    bindir = root / f"only-{tool or 'nothing'}"
    bindir.mkdir(parents=True, exist_ok=True)
    if tool:
        os.symlink(shutil.which(tool), bindir / tool)
    return LocalExecutor("sqlite-test", env={"PATH": str(bindir)})


@pytest.mark.parametrize("engine", ENGINES)
def test_reads_rows_with_types_and_cursor(tmp_path: Path, engine: str):
    db = make_db(tmp_path / "a.db")
    r = read(db, None, engine=engine)
    assert r.ok and r.engine == engine and r.warnings == [] and r.complete and not r.more
    assert [x["id"] for x in r.rows] == [1, 2, 3, 4, 5] and r.head == 5 and r.next_after == 5
    first, second = r.rows[0], r.rows[1]
    assert first["kind"] == "k1" and first["ts"] == 1_770_243_191_079_200 and first["score"] == 0.25
    assert first["note"] is None and second["note"] == "n'2\n"
    if engine == "python3":
        assert first["payload"] == "0100ff"  # blobs as hex
    # Restart from the stored cursor: nothing new, then only the new rows.
    again = read(db, r.next_after, engine=engine)
    assert again.ok and again.rows == [] and again.next_after == 5 and again.head == 5 and not again.reset
    con = sqlite3.connect(db)
    con.execute("INSERT INTO events (kind, ts) VALUES ('k6', '2026-02-04 22:13:11.5')")
    con.commit()
    con.close()
    new = read(db, again.next_after, engine=engine)
    assert [x["kind"] for x in new.rows] == ["k6"] and new.rows[0]["ts"] == "2026-02-04 22:13:11.5"
    assert new.next_after == 6


@pytest.mark.parametrize("engine", ENGINES)
def test_row_cap_advances_only_to_last_row_returned(tmp_path: Path, engine: str):
    db = make_db(tmp_path / "a.db", n=7)
    seen, cursor, calls = [], None, 0
    while calls < 10:
        calls += 1
        r = read(db, cursor, limit=3, engine=engine)
        assert r.ok and len(r.rows) <= 3
        seen += [x["id"] for x in r.rows]
        assert r.next_after == (seen[-1] if seen else 0)
        cursor = r.next_after
        if not r.more:
            break
    assert seen == [1, 2, 3, 4, 5, 6, 7] and calls == 3


def test_byte_budget_stops_on_a_complete_row(tmp_path: Path):
    db = tmp_path / "big.db"
    con = sqlite3.connect(db)
    con.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, body TEXT)")
    con.executemany("INSERT INTO t VALUES (?, ?)", [(i, "x" * 400) for i in range(1, 41)])
    con.commit()
    con.close()
    r = read(db, 0, table="t", max_bytes=4096 + 7000, engine="python3")
    # Budget 7000 bytes: the default per-value cap (budget / 16 = 437 chars) leaves the bodies whole.
    assert r.ok and r.more and r.complete and 5 <= len(r.rows) < 40
    assert r.next_after == r.rows[-1]["id"] and all(len(x["body"]) == 400 for x in r.rows)
    assert any("byte budget reached" in w for w in r.warnings)
    # A value longer than the per-value cap is cut and named, so one row can never exceed the budget.
    cut = asyncio.run(sr.select(LocalExecutor("t"), str(db), "SELECT * FROM t WHERE id = ?", (1,), limit=1,
                                timeout_s=10, max_bytes=1 << 20, max_value_chars=100, engine="python3"))
    assert cut.rows[0]["body"] == "x" * 100 and cut.rows[0][sr.CUT_COL] == ["body"]


@pytest.mark.parametrize("engine", ENGINES)
def test_locked_by_a_writer_is_a_status_not_a_crash(tmp_path: Path, engine: str):
    db = make_db(tmp_path / "a.db")  # rollback journal: EXCLUSIVE blocks readers too
    writer = sqlite3.connect(db, isolation_level=None)
    writer.execute("BEGIN EXCLUSIVE")
    writer.execute("INSERT INTO events (kind) VALUES ('uncommitted')")
    try:
        t0 = time.monotonic()
        ex = LocalExecutor("sqlite-test")
        r = asyncio.run(sr.read_after(ex, str(db), "events", after=0, limit=10, timeout_s=2,
                                      max_bytes=1 << 20, engine=engine))
        assert time.monotonic() - t0 < 5
        assert r.status == "locked" and r.rows == [] and "locked" in (r.error or "")
        assert r.next_after == 0
        msg = sr.status_warning(r, "test")
        assert msg and "locked by a writer" in msg and str(db) in msg
    finally:
        writer.execute("ROLLBACK")
        writer.close()
    assert [x["kind"] for x in read(db, 4, engine=engine).rows] == ["k5"]


@pytest.mark.parametrize("engine", ENGINES)
def test_wal_database_with_an_open_writer(tmp_path: Path, engine: str):
    db = make_db(tmp_path / "w.db", n=2, wal=True)
    writer = sqlite3.connect(db, isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")
    writer.execute("INSERT INTO events (kind) VALUES ('pending')")
    try:
        r = read(db, 0, engine=engine)
        assert r.ok and [x["kind"] for x in r.rows] == ["k1", "k2"]  # the reader sees committed rows only
    finally:
        writer.execute("COMMIT")
        writer.close()
    assert [x["kind"] for x in read(db, 2, engine=engine).rows] == ["pending"]


@pytest.mark.parametrize("engine", ENGINES)
def test_missing_corrupt_and_foreign(tmp_path: Path, engine: str):
    missing = read(tmp_path / "nope.db", 0, engine=engine)
    assert missing.status == "missing" and missing.rows == []
    assert not (tmp_path / "nope.db").exists()  # read-only: opening never creates the file
    assert sr.status_warning(missing, "x") == f"x {tmp_path / 'nope.db'}: database file not found"
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"\x1b[31mnot sqlite at all\x1b[0m\n" * 50)
    bad = read(junk, 0, engine=engine)
    assert bad.status == "corrupt" and "not a database" in (bad.error or "")
    foreign = read(make_db(tmp_path / "a.db"), 0, table="messages", engine=engine)
    assert foreign.status == "no_table" and "messages" in (foreign.error or "")
    empty = tmp_path / "empty.db"
    sqlite3.connect(empty).execute("CREATE TABLE events (id INTEGER PRIMARY KEY)").connection.close()
    e = read(empty, 0, engine=engine)
    assert e.ok and e.rows == [] and e.head is None and e.next_after == 0


def test_read_only_even_for_a_writing_statement(tmp_path: Path):
    db = make_db(tmp_path / "a.db")
    before = db.read_bytes()
    r = asyncio.run(sr.select(LocalExecutor("t"), str(db), "DELETE FROM events RETURNING id", (), limit=10,
                              timeout_s=10, max_bytes=1 << 20, engine="python3"))
    assert r.status == "error" and "readonly" in (r.error or "").replace(" ", "").lower()
    assert db.read_bytes() == before and len(read(db, 0).rows) == 5
    assert not (tmp_path / "a.db-journal").exists()


def test_reset_when_max_id_drops_below_cursor(tmp_path: Path):
    db = make_db(tmp_path / "a.db", n=5)
    db.unlink()
    make_db(db, n=2)  # replaced: ids restart
    r = read(db, 5)
    assert r.ok and r.reset and r.head == 2 and r.rows == []


@pytest.mark.skipif(not HAS_CLI, reason="sqlite3 CLI not installed")
def test_auto_falls_back_to_the_cli_when_python3_is_absent(tmp_path: Path):
    db = make_db(tmp_path / "a.db", n=3)
    r = read(db, 1, engine="auto", executor=only("sqlite3", tmp_path))
    assert r.ok and r.engine == "sqlite3" and [x["kind"] for x in r.rows] == ["k2", "k3"]
    none = read(db, 0, engine="auto", executor=only("", tmp_path))
    assert none.status == "no_reader" and "python3 nor sqlite3" in (sr.status_warning(none, "x") or "")
    assert read(db, 0, engine="auto").engine == "python3"  # python3 first when both exist


@pytest.mark.parametrize("engine", ENGINES)
def test_paths_with_spaces_quotes_and_tilde(tmp_path: Path, engine: str):
    home = tmp_path / "home"
    d = home / "my dir; $(touch pwned)'s"
    d.mkdir(parents=True)
    make_db(d / "h.db", n=2)
    ex = LocalExecutor("sqlite-test", env={"HOME": str(home)})
    r = read(f"~/{d.name}/h.db", 0, engine=engine, executor=ex)
    assert r.ok and len(r.rows) == 2
    assert not (home / "pwned").exists() and not Path("pwned").exists()


def test_inline_params_and_literals():
    assert sr.inline_params("SELECT ? , ?, ?, ?", (5, "it's", None, 1.5)) == "SELECT 5 , 'it''s', NULL, 1.5"
    with pytest.raises(ValueError):
        sr.inline_params("SELECT ?", ())
    with pytest.raises(ValueError):
        sr.ident("t; DROP TABLE x")
    assert sr.sql_literal(True) == "1"


def test_ts_key_sql_orders_both_encodings_alike(tmp_path: Path):
    con = sqlite3.connect(":memory:")
    expr = sr.ts_key_sql("?")
    n = expr.count("?")

    def key(v):
        return con.execute(f"SELECT {expr}", (v,) * n).fetchone()[0]

    us = 1_770_243_191_079_000
    assert key(us) == us
    assert key("2026-02-04 22:13:11.079199") == us == key("2026-02-04T22:13:11.079Z")
    assert key("junk") is None and key(None) is None


def test_sqlite_time():
    want = datetime(2026, 2, 4, 22, 13, 11, 79199, tzinfo=UTC)
    assert sr.sqlite_time(1_770_243_191_079_199) == want
    assert sr.sqlite_time("2026-02-04 22:13:11.079199") == want
    assert sr.sqlite_time("2026-02-04T22:13:11.079199Z") == want
    assert sr.sqlite_time(1_770_243_191) == want.replace(microsecond=0)
    assert sr.sqlite_time("garbage") is None and sr.sqlite_time(True) is None and sr.sqlite_time("") is None


def test_parse_output_on_cut_and_garbage_text():
    text = ('{"__vc_pk": 1, "a": 1}\n\x1b[31mnoise\x1b[0m\n{"__vc_pk": 2, "a": 2}\n{"__vc_pk": 3, "a"')
    res = CommandResult("python3 …", None, text.encode(), b"", 1.0, truncated=True)
    r, later = sr.parse_output(res, "/db", [10, 10])
    assert r.ok and not r.complete and r.more and [x["a"] for x in r.rows] == [1, 2]
    assert any("output incomplete" in w for w in r.warnings) and any("unparseable" in w for w in r.warnings)
    assert later.status == "error" and later.rows == []
    assert "before this query finished" in (later.error or "")
    (timeout,) = sr.parse_output(CommandResult("x", None, b"", b"", 9.0, timed_out=True), "/db", [10])
    assert timeout.status == "error" and "timed out" in (timeout.error or "")
    died = CommandResult("x", 1, b"", b"Traceback...\nSyntaxError: bad\n", 0.1)
    (crash,) = sr.parse_output(died, "/db", [1])
    assert crash.status == "error" and "SyntaxError" in (crash.error or "")
    assert "exited 1" in (crash.error or "")


@pytest.mark.parametrize("engine", ENGINES)
def test_batch_attributes_rows_and_errors_per_query(tmp_path: Path, engine: str):
    db = make_db(tmp_path / "a.db", n=4)
    qs = [sr.after_query("events", after=1, limit=2),
          sr.Query("SELECT * FROM nope LIMIT ?", (5,), 4),
          sr.Query("SELECT kind FROM events WHERE id = ? LIMIT ?", (4, 2), 1),
          sr.columns_query(["events", "absent"])]
    a, b, c, d = asyncio.run(sr.select_many(LocalExecutor("t"), str(db), qs, timeout_s=10, max_bytes=1 << 20,
                                            engine=engine))
    sr.finish_after(a, 1)
    assert a.ok and [x["id"] for x in a.rows] == [2, 3] and a.more and a.head == 4 and a.next_after == 3
    assert b.status == "no_table" and b.rows == [] and "nope" in (b.error or "")
    assert c.ok and c.rows == [{"kind": "k4"}] and not c.more
    assert d.ok and {x["tbl"] for x in d.rows} == {"events"} and len(d.rows) == 6
    assert {x.engine for x in (a, b, c, d)} == {engine}


@pytest.mark.parametrize("engine", ENGINES)
def test_locked_batch_waits_once(tmp_path: Path, engine: str):
    db = make_db(tmp_path / "a.db")
    writer = sqlite3.connect(db, isolation_level=None)
    writer.execute("BEGIN EXCLUSIVE")
    try:
        t0 = time.monotonic()
        qs = [sr.after_query("events", after=0, limit=5) for _ in range(4)]
        reads = asyncio.run(sr.select_many(LocalExecutor("t"), str(db), qs, timeout_s=4, max_bytes=1 << 20,
                                           engine=engine))
        took = time.monotonic() - t0
    finally:
        writer.execute("ROLLBACK")
        writer.close()
    assert [r.status for r in reads] == ["locked"] * 4 and all(r.rows == [] for r in reads)
    assert took < 1.0 + 2.0  # one busy timeout (1 s), not four

"""tail.py against real files through the real LocalExecutor: partial lines, rotation, truncation, cap."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

import pytest

from collectors.executors.local import LocalExecutor
from collectors.tail import (
    TailRead,
    extract_json,
    parse_ts,
    read_new_lines,
    split_complete,
)


def read(path: Path | str, cursor: dict | None, max_bytes: int = 1 << 20, warn_on_rotation: bool = True,
         executor: LocalExecutor | None = None) -> TailRead:
    ex = executor or LocalExecutor("tail-test")
    return asyncio.run(read_new_lines(ex, str(path), cursor, max_bytes=max_bytes, timeout_s=10,
                                      warn_on_rotation=warn_on_rotation))


def texts(r: TailRead) -> list[str]:
    return [ln.text for ln in r.lines]


def test_partial_last_line_is_not_consumed_until_complete(tmp_path: Path):
    f = tmp_path / "log.jsonl"
    f.write_bytes(b'{"n":1}\n{"n":2}\n{"n":3, "half')
    r1 = read(f, None)
    assert texts(r1) == ['{"n":1}', '{"n":2}']
    assert r1.cursor == {"inode": os.stat(f).st_ino, "offset": 16}
    assert r1.pending_bytes == len(b'{"n":3, "half')
    assert r1.warnings == [] and r1.status == "ok" and not r1.rotated
    assert [ln.offset for ln in r1.lines] == [0, 8]

    # Nothing new: same cursor, no lines.
    r2 = read(f, r1.cursor)
    assert texts(r2) == [] and r2.cursor == r1.cursor

    with f.open("ab") as fh:
        fh.write(b'":true}\n{"n":4}\n')
    r3 = read(f, r2.cursor)
    assert texts(r3) == ['{"n":3, "half":true}', '{"n":4}']
    assert r3.lines[0].offset == 16
    assert r3.cursor["offset"] == f.stat().st_size and r3.pending_bytes == 0


def test_restart_with_returned_cursor_reads_only_new_lines(tmp_path: Path):
    f = tmp_path / "a.log"
    f.write_text("one\ntwo\n")
    c1 = read(f, None).cursor
    with f.open("a") as fh:
        fh.write("three\n")
    # A "restarted daemon" holds only the JSON round-trip of the cursor.
    r = read(f, json.loads(json.dumps(c1)))
    assert texts(r) == ["three"]


def test_rotation_by_new_inode_restarts_at_zero_with_warning(tmp_path: Path):
    f = tmp_path / "build.jsonl"
    f.write_text("old1\nold2\nold3\n")
    c1 = read(f, None).cursor
    f.rename(tmp_path / "build.jsonl.1")
    f.write_text("new1\n")
    r = read(f, c1)
    assert texts(r) == ["new1"]
    assert r.rotated and r.cursor == {"inode": f.stat().st_ino, "offset": 5}
    assert r.cursor["inode"] != c1["inode"]
    assert any("inode changed" in w for w in r.warnings)


def test_rotation_warning_can_be_silenced_for_rewritten_exports(tmp_path: Path):
    f = tmp_path / "issues.jsonl"
    f.write_text("a\n")
    c1 = read(f, None).cursor
    tmp = tmp_path / "issues.jsonl.tmp"
    tmp.write_text("a\nb\n")
    keep = tmp_path / "hold"  # keep the old inode alive so the new file cannot reuse its number
    os.link(f, keep)
    tmp.replace(f)
    r = read(f, c1, warn_on_rotation=False)
    assert r.rotated and texts(r) == ["a", "b"] and r.warnings == []


def test_truncated_file_restarts_at_zero(tmp_path: Path):
    f = tmp_path / "t.log"
    f.write_text("aaaa\nbbbb\ncccc\n")
    c1 = read(f, None).cursor
    with f.open("r+") as fh:  # same inode, shorter file (copytruncate rotation)
        fh.truncate(0)
        fh.write("z\n")
    r = read(f, c1)
    assert texts(r) == ["z"] and r.rotated
    assert r.cursor == {"inode": c1["inode"], "offset": 2}
    assert any("shrank" in w for w in r.warnings)


def test_cap_reads_in_chunks_and_loses_nothing(tmp_path: Path):
    f = tmp_path / "big.log"
    lines = [f"line-{i:04d}-" + "x" * (i % 7) for i in range(300)]
    f.write_text("".join(s + "\n" for s in lines))
    got: list[str] = []
    cursor = None
    for _ in range(200):  # bounded
        r = read(f, cursor, max_bytes=500)
        assert r.cursor is not None and r.cursor["offset"] <= f.stat().st_size
        got += texts(r)
        if r.pending_bytes:
            assert any("read cap" in w for w in r.warnings)
        cursor = r.cursor
        if r.pending_bytes == 0:
            break
    assert got == lines  # every line exactly once, in order


def test_line_longer_than_cap_is_skipped_not_stalled(tmp_path: Path):
    f = tmp_path / "long.log"
    f.write_text("short\n" + "L" * 3000 + "\nafter\n")
    cursor = None
    got, warnings = [], []
    for _ in range(20):
        r = read(f, cursor, max_bytes=1000)
        got += texts(r)
        warnings += r.warnings
        cursor = r.cursor
        if r.pending_bytes == 0:
            break
    assert got == ["short", "after"]
    assert any("longer than" in w for w in warnings)
    assert cursor["offset"] == f.stat().st_size and "skip_to_newline" not in cursor


def test_missing_file_keeps_cursor_and_reports_missing(tmp_path: Path):
    c = {"inode": 123, "offset": 10}
    r = read(tmp_path / "nope.jsonl", c)
    assert r.status == "missing" and r.lines == [] and r.cursor == c


def test_directory_and_garbage_cursor(tmp_path: Path):
    r = read(tmp_path, None)
    assert r.status == "error" and "not a regular file" in r.warnings[0]
    f = tmp_path / "x.log"
    f.write_text("1\n2\n")
    r2 = read(f, {"inode": "abc", "offset": -5})
    assert texts(r2) == ["1", "2"] and any("unusable cursor" in w for w in r2.warnings)


def test_crlf_blank_lines_and_invalid_utf8(tmp_path: Path):
    f = tmp_path / "w.log"
    f.write_bytes(b"a\r\n\n  \nb\xff\n")
    r = read(f, None)
    assert texts(r) == ["a", "b\ufffd"]
    assert r.cursor["offset"] == f.stat().st_size


def test_home_relative_path_and_spaces(tmp_path: Path):
    d = tmp_path / "my repo"
    d.mkdir()
    (d / "f.log").write_text("hi\n")
    ex = LocalExecutor("tail-test", env={"HOME": str(tmp_path)})
    r = read("~/my repo/f.log", None, executor=ex)
    assert texts(r) == ["hi"]


@pytest.mark.parametrize("data,start,full,skip,expect", [
    (b"a\nb\nc", 100, False, False, (["a", "b"], 104, False)),
    (b"tail-of-long\nx\n", 0, False, True, (["x"], 15, False)),
    (b"no-newline-at-all", 7, True, False, ([], 24, True)),
    (b"still-long", 7, True, True, ([], 17, True)),
    (b"partial", 7, False, False, ([], 7, False)),
])
def test_split_complete(data, start, full, skip, expect):
    lines, off, nskip, _ = split_complete(data, start, full, skip)
    assert ([ln.text for ln in lines], off, nskip) == expect


def test_extract_json_tolerates_ansi_and_banners_but_not_fragments():
    assert extract_json('\x1b[32m{"a": 1}\x1b[0m\n') == ({"a": 1}, None)
    assert extract_json("Updating index...\n[1, 2]\ntrailing junk") == ([1, 2], None)
    v, why = extract_json('[{"id":"a"},{"id":"b"')  # truncated: an inner object must not pass as the answer
    assert v is None and "not JSON" in why
    assert extract_json("") == (None, "empty output")


def test_parse_ts_variants():
    assert parse_ts("2026-01-28T18:47:31.038718915Z").microsecond == 38718
    assert parse_ts("2026-01-20T10:00:00Z").tzinfo is not None
    assert parse_ts(1755880000).year == 2025
    assert parse_ts("TIMESTAMP") is None and parse_ts(True) is None and parse_ts(None) is None

"""rano collector on the verbatim `rano export --format jsonl` capture, with --since cursors."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from collectors.base import Limits
from collectors.rano import RanoCollector, parse_export, since_arg
from tests.toolbox import Tool, run_collector, toolbox_executor
from workbench.store import Batch


def write(store, result) -> dict[str, int]:
    b = Batch()
    for table, rows in result.rows.items():
        b.add_rows(table, rows)
    return store.write(b).inserted


@pytest.fixture
def export(formats_dir: Path) -> bytes:
    return (formats_dir / "rano.export.example.jsonl").read_bytes()


def fake_rano(root: Path, payload: bytes, exit_code: int = 0) -> tuple:
    """A rano that prints `payload` and records its arguments, so the --since window is checked."""
    ex = toolbox_executor(root, {"rano": Tool(stdout=payload, exit_code=exit_code)})
    script = root / "bin" / "rano"
    body = script.read_text().replace("#!/bin/sh\n", f'#!/bin/sh\necho "$@" >> {root}/args.log\n', 1)
    script.write_text(body)
    return ex, root / "args.log"


def test_real_export_parses(tmp_path, export):
    ex, args = fake_rano(tmp_path, export)
    res = run_collector(RanoCollector(), ex)
    assert res.warnings == []
    rows = res.rows["net_events"]
    assert len(rows) == 7
    first = rows[0]
    assert first["provider"] == "anthropic" and first["comm"] == "claude"
    assert first["domain"] == "api.anthropic.com" and first["remote_ip"] == "104.18.32.7"
    assert first["remote_port"] == 443 and first["local_port"] == 54321
    assert first["event"] == "connect" and first["duration_ms"] is None and first["pid"] == 1234
    assert first["ts"] == datetime(2026, 1, 20, 10, 0, tzinfo=UTC)
    close = rows[4]
    assert close["event"] == "close" and close["duration_ms"] == 9000 and close["provider"] == "openai"
    assert rows[6]["cmdline"] == '/usr/bin/claude --special="value,with,commas"'
    assert rows[6]["run_id"] == "run-test-2"
    assert len({r["event_hash"] for r in rows}) == 7
    assert res.cursor == {"since": "2026-01-21T09:00:00Z"}
    assert args.read_text().split() == ["export", "--format", "jsonl"]  # first run: no --since


def test_insert_and_reinsert(tmp_path, export, store):
    ex, _ = fake_rano(tmp_path, export)
    res = run_collector(RanoCollector(), ex)
    assert write(store, res) == {"net_events": 7}
    assert write(store, res) == {"net_events": 0}
    with store.raw_reader() as con:
        assert con.execute("SELECT count(*) FROM net_events WHERE provider = 'google' AND event = 'close' "
                           "AND duration_ms = 10000").fetchone()[0] == 1


def test_cursor_restart_passes_since_and_overlap_dedupes(tmp_path, export, store):
    ex, args = fake_rano(tmp_path / "a", export)
    first = run_collector(RanoCollector(), ex)
    write(store, first)
    cursor = json.loads(json.dumps(first.cursor))
    # Next export: rano returns the overlap (last event again) plus one new event.
    lines = export.decode().splitlines()
    new = json.loads(lines[0]) | {"ts": "2026-01-21T09:05:00Z", "local_port": 55002, "pid": 2002}
    payload = (lines[-1] + "\n" + json.dumps(new, sort_keys=True) + "\n").encode()
    ex2, args2 = fake_rano(tmp_path / "b", payload)
    second = run_collector(RanoCollector(), ex2, cursor=cursor)
    assert args2.read_text().split() == ["export", "--format", "jsonl", "--since", "2026-01-21T08:59:59Z"]
    assert len(second.rows["net_events"]) == 2
    assert write(store, second) == {"net_events": 1}  # the overlapping event was already stored
    assert second.cursor == {"since": "2026-01-21T09:05:00Z"}


def test_truncated_last_line_is_refetched_not_lost(tmp_path, export, store):
    cap = len(export) - 40  # cuts the last (7th) line
    ex, _ = fake_rano(tmp_path / "a", export)
    res = run_collector(RanoCollector(), ex, limits=Limits(timeout_s=10, max_bytes=cap))
    assert len(res.rows["net_events"]) == 6
    assert res.cursor == {"since": "2026-01-20T10:00:15Z"}  # the last complete line, not beyond
    assert any("truncated" in w for w in res.warnings)
    write(store, res)
    # Next cycle: rano (asked --since 10:00:14Z) sends the rest; the cut event arrives.
    tail = b"\n".join(export.splitlines()[5:]) + b"\n"
    ex2, args2 = fake_rano(tmp_path / "b", tail)
    again = run_collector(RanoCollector(), ex2, cursor=res.cursor)
    assert "2026-01-20T10:00:14Z" in args2.read_text()
    assert write(store, again) == {"net_events": 1}
    with store.raw_reader() as con:
        assert con.execute("SELECT count(*) FROM net_events").fetchone()[0] == 7


def test_max_rows_stops_early_and_resumes(tmp_path, export):
    ex, _ = fake_rano(tmp_path, export)
    res = run_collector(RanoCollector(), ex, limits=Limits(timeout_s=10, max_rows=3))
    assert len(res.rows["net_events"]) == 3 and res.cursor == {"since": "2026-01-20T10:00:02Z"}
    assert any("rest comes next cycle" in w for w in res.warnings)


def test_malformed_lines(tmp_path):
    payload = (
        b'{"ts":"2026-01-20T10:00:00Z","event":"connect","pid":"1234","remote_port":443.5,"provider":7}\n'
        b'{"ts":"not a time","event":"connect"}\n'
        b'{"ts":"2026-01-20T10:00:01Z","event":"conn\n'
        b'[1,2]\n'
        b'\x1b[33mwarning: db busy\x1b[0m\n'
        b'\x1b[0m{"ts":"2026-01-20T10:00:03Z","event":"close","duration_ms":5}\n'
    )
    ex, _ = fake_rano(tmp_path, payload)
    res = run_collector(RanoCollector(), ex)
    rows = res.rows["net_events"]
    assert len(rows) == 2
    assert rows[0]["pid"] is None and rows[0]["remote_port"] is None and rows[0]["provider"] is None
    assert rows[1]["duration_ms"] == 5
    assert any("4 bad line(s)" in w for w in res.warnings)
    assert res.cursor == {"since": "2026-01-20T10:00:03Z"}


def test_empty_and_failing_exports_keep_cursor(tmp_path):
    cursor = {"since": "2026-01-21T09:00:00Z"}
    ex, _ = fake_rano(tmp_path / "empty", b"")
    res = run_collector(RanoCollector(), ex, cursor=cursor)
    assert res.rows == {} and res.warnings == [] and res.cursor == cursor
    ex2, _ = fake_rano(tmp_path / "fail", b"", exit_code=1)
    res2 = run_collector(RanoCollector(), ex2, cursor=cursor)
    assert res2.cursor == cursor and any("exited 1" in w for w in res2.warnings)
    ex3, _ = fake_rano(tmp_path / "junk", b"", exit_code=0)
    res3 = run_collector(RanoCollector(), ex3, cursor={"since": 12})
    assert any("unusable cursor" in w for w in res3.warnings) is False  # unix seconds are a usable time
    res4 = run_collector(RanoCollector(), ex3, cursor={"since": "yesterday"})
    assert any("unusable cursor" in w for w in res4.warnings) and res4.cursor is None


def test_sqlite_option_and_helpers(tmp_path, export):
    ex, args = fake_rano(tmp_path, export)
    run_collector(RanoCollector(), ex, options={"rano_sqlite": "~/obs dir/observer.sqlite"})
    assert args.read_text().split("--sqlite ")[1].strip() == f"{tmp_path}/obs dir/observer.sqlite"
    assert since_arg(datetime(2026, 1, 1, 0, 0, 0, 500000, tzinfo=UTC)) == "2025-12-31T23:59:59Z"
    text = '{"ts":"2026-01-02T00:00:00Z"}\n{"ts":"2026-01-01T00:00:00Z"}'
    rows, max_ts, last_ts, cut, _ = parse_export(text, True, 100)
    assert len(rows) == 2 and max_ts.day == 2 and last_ts.day == 1 and not cut

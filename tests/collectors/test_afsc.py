"""afsc collector on the struct-derived `status --format json` example in afsc's format notes."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from collectors.afsc import AfscCollector, parse_status
from tests.toolbox import Tool, run_collector, toolbox_executor
from workbench.store import Batch

TOOL = "automated_flywheel_setup_checker"


def write(store, result) -> dict[str, int]:
    b = Batch()
    for table, rows in result.rows.items():
        b.add_rows(table, rows)
    return store.write(b).inserted


@pytest.fixture(scope="module")
def status(formats_dir: Path) -> dict:
    """Reconstructed from ResultEntry / RunSummaryEntry (no verbatim status output exists upstream)."""
    md = (formats_dir / "automated_flywheel_setup_checker.md").read_text()
    block = re.search(r"### Reconstructed example.*?```json\n(.*?)```", md, re.S)
    assert block, "afsc example not found"
    return json.loads(block[1])


def collect(tmp_path: Path, out: str | bytes, exit_code: int = 0):
    ex = toolbox_executor(tmp_path / "box", {TOOL: Tool(stdout=out, exit_code=exit_code)})
    return run_collector(AfscCollector(), ex)


def test_status_parses(tmp_path, status):
    res = collect(tmp_path, json.dumps(status, indent=2))
    assert res.warnings == []
    (snap,) = res.rows["afsc_status_snapshots"]
    assert snap["status"] == "ok" and snap["total"] == 2 and snap["passed"] == 1 and snap["failed"] == 1
    assert snap["duration_total_ms"] == 38334 and snap["timed_out"] == 0
    assert snap["failed_installers"] == ["rust"]
    assert snap["results_file"].endswith("results_20260407_060240.jsonl")
    assert snap["run_ended_at"].isoformat() == "2026-04-07T06:02:40+00:00"
    res_rows = {r["installer_name"]: r for r in res.rows["afsc_installer_results"]}
    rust = res_rows["rust"]
    assert rust["status"] == "failed" and rust["exit_code"] == 1 and rust["retry_count"] == 2
    assert rust["error_category"] == "network" and rust["error_severity"] == "Transient"
    assert rust["retryable"] is True and rust["error_confidence"] == 0.9
    assert rust["stderr_excerpt"].startswith("curl: (6) Could not resolve host")
    assert res_rows["bun"]["status"] == "passed" and res_rows["bun"]["error_category"] is None
    assert res_rows["bun"]["sha256_verified"] is True and res_rows["bun"]["duration_ms"] == 8123
    assert rust["run_id"] == snap["run_id"] == status["summary"]["run_id"]


def test_insert_reinsert_and_next_cycle(tmp_path, status, store):
    res = collect(tmp_path / "a", json.dumps(status))
    assert write(store, res) == {"afsc_status_snapshots": 1, "afsc_installer_results": 2}
    assert write(store, res) == {"afsc_status_snapshots": 0, "afsc_installer_results": 0}
    # Next cycle reads the same results file: a new snapshot, no new installer events.
    again = collect(tmp_path / "b", json.dumps(status))
    assert write(store, again) == {"afsc_status_snapshots": 1, "afsc_installer_results": 0}
    with store.raw_reader() as con:
        got = con.execute("SELECT failed_installers FROM afsc_status_snapshots LIMIT 1").fetchone()[0]
    assert got == ["rust"]


def test_no_runs(tmp_path, store):
    res = collect(tmp_path, '{"status": "no_runs", "message": "No runs recorded yet"}')
    assert res.warnings == [] and "afsc_installer_results" not in res.rows
    (snap,) = res.rows["afsc_status_snapshots"]
    assert snap["status"] == "no_runs" and snap.get("total") is None
    assert write(store, res) == {"afsc_status_snapshots": 1}


def test_malformed_outputs(tmp_path, status):
    text = json.dumps(status, indent=2)
    cases = {
        "truncated": (text[:200], 0, "not JSON"),
        "empty": ("", 0, "empty output"),
        "garbage": ("\x1b[31merror: no results dir\x1b[0m", 1, "exited 1"),
        "wrong shape": ('{"foo": 1}', 0, "neither"),
        "array": ("[1]", 0, "expected a JSON object"),
    }
    for label, (out, code, warn) in cases.items():
        res = collect(tmp_path / label.replace(" ", "_"), out, exit_code=code)
        assert res.rows == {}, label
        assert any(warn in w for w in res.warnings), (label, res.warnings)
    ansi = collect(tmp_path / "ansi", "\x1b[32mok\x1b[0m\n" + text)
    assert ansi.warnings == [] and len(ansi.rows["afsc_installer_results"]) == 2


def test_wrong_types_and_partial_summary():
    payload = {"results": [
        {"installer_name": "a", "timestamp": "2026-04-07T06:00:00Z", "status": "TimedOut", "duration_ms": "9",
         "error_classification": "network", "retry_count": None},
        {"installer_name": "b", "timestamp": "not-a-time", "status": "passed"},
        {"timestamp": "2026-04-07T06:00:00Z"},
        {"installer_name": "a", "timestamp": "2026-04-07T06:00:00Z"},
    ], "summary": None}
    snap, rows, warns = parse_status(payload)
    (a,) = rows
    assert a["status"] == "timedout" and a["duration_ms"] is None and a["error_category"] is None
    assert snap["total"] == 1 and snap["timed_out"] == 1 and snap["failed_installers"] == ["a"]
    assert snap["run_id"] is None
    assert any("3 afsc result" in w for w in warns)
    bad_results = parse_status({"results": {"a": 1}, "summary": {"run_id": "r", "total": 5}})
    assert bad_results[0]["total"] == 5 and bad_results[1] == [] and "expected a list" in bad_results[2][0]

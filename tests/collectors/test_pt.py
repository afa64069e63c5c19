"""pt collector on pt.md's code-derived plan example; exit code 1 is "plan ready", not an error."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from collectors.pt import PtCollector, parse_plan
from tests.toolbox import Tool, run_collector, toolbox_executor
from workbench.store import Batch


def write(store, result) -> dict[str, int]:
    b = Batch()
    for table, rows in result.rows.items():
        b.add_rows(table, rows)
    return store.write(b).inserted


@pytest.fixture(scope="module")
def plan(formats_dir: Path) -> dict:
    """Reconstructed from `run_agent_plan` (pt.md); no verbatim plan output exists upstream."""
    md = (formats_dir / "pt.md").read_text()
    block = re.search(r"## Reconstructed example.*?```json\n(.*?)```", md, re.S)
    assert block, "pt.md example not found"
    return json.loads(block[1])


def collect(tmp_path: Path, out: str | bytes, exit_code: int = 1):
    ex = toolbox_executor(tmp_path / "box", {"pt": Tool(stdout=out, exit_code=exit_code)})
    return run_collector(PtCollector(), ex)


def test_plan_parses_and_exit_1_is_not_an_error(tmp_path, plan):
    res = collect(tmp_path, json.dumps(plan), exit_code=1)
    assert res.warnings == []
    (p,) = res.rows["pt_plan_snapshots"]
    assert p["exit_code"] == 1 and p["session_id"] == "pt-20260821-120000-a7xq" and p["pt_version"] == "2.1.0"
    assert p["total_processes_scanned"] == 412 and p["kill_recommendations"] == 1
    assert p["review_recommendations"] == 2 and p["plan_schema"] == "1.0.0"
    assert p["expected_memory_freed_gb"] == 1.0 and p["memory_used_gb"] == 51.2
    assert "candidates" not in json.loads(p["raw_json"])
    (f,) = res.rows["pt_findings"]
    assert f["pid"] == 84721 and f["start_id"] == "84721:1755700000" and f["username"] == "ubuntu"
    assert f["classification"] == "abandoned" and f["score"] == 94 and f["confidence"] == "high"
    assert f["recommended_action"] == "kill" and f["p_abandoned"] == 0.94 and f["memory_mb"] == 1024.0
    assert f["reversibility"] == "irreversible" and f["risk_level"] == "low" and f["supervisor_type"] is None
    assert f["command"] == "node /usr/bin/jest --watch" and f["age_seconds"] == 93000
    assert f["collected_at"] == p["collected_at"] and f["session_id"] == p["session_id"]


def test_insert_and_reinsert(tmp_path, plan, store):
    res = collect(tmp_path, json.dumps(plan))
    assert write(store, res) == {"pt_plan_snapshots": 1, "pt_findings": 1}
    assert write(store, res) == {"pt_plan_snapshots": 0, "pt_findings": 0}
    with store.raw_reader() as con:
        assert con.execute("SELECT recommended_action, score FROM pt_findings").fetchone() == ("kill", 94)


def test_clean_plan_exit_0_is_a_row_without_findings(tmp_path, plan):
    clean = plan | {"candidates": [], "summary": plan["summary"] | {"candidates_returned": 0}}
    res = collect(tmp_path, json.dumps(clean), exit_code=0)
    assert res.warnings == [] and "pt_findings" not in res.rows
    assert res.rows["pt_plan_snapshots"][0]["candidates_returned"] == 0


def test_error_exit_codes_are_named(tmp_path, plan):
    res = collect(tmp_path / "a", json.dumps(plan), exit_code=4)
    assert any("exited 4" in w and "policy blocked" in w for w in res.warnings)
    assert len(res.rows["pt_findings"]) == 1  # the plan it printed is still kept
    res2 = collect(tmp_path / "b", "", exit_code=14)
    assert res2.rows == {} and any("lock held" in w for w in res2.warnings)


def test_malformed_outputs(tmp_path, plan):
    text = json.dumps(plan, indent=2)
    cases = {
        "truncated": (text[:300], "not JSON"),
        "empty": ("", "empty output"),
        "garbage": ("\x1b[31mSegmentation fault\x1b[0m", "not JSON"),
        "array": ("[]", "expected a JSON object"),
    }
    for label, (out, warn) in cases.items():
        res = collect(tmp_path / label, out)
        assert res.rows == {}, label
        assert any(warn in w for w in res.warnings), (label, res.warnings)
    ansi = collect(tmp_path / "ansi", "\x1b[1mpt 2.1.0\x1b[0m\n" + text)
    assert ansi.warnings == [] and len(ansi.rows["pt_findings"]) == 1


def test_wrong_types_and_unknown_schema():
    bad = {"schema_version": "2.0.0", "session_id": 5, "summary": {"total_processes_scanned": "many"},
           "candidates": [{"pid": 1, "score": "high", "memory_mb": "1G", "reversibility": {"kind": "none"},
                           "recommendation": "REVIEW"},
                          {"pid": "2"}, {"pid": 1}, "junk"]}
    plan, findings, warns = parse_plan(bad)
    assert plan["session_id"] is None and plan["total_processes_scanned"] is None
    (f,) = findings
    assert f["score"] is None and f["memory_mb"] is None and f["recommended_action"] == "review"
    assert json.loads(f["reversibility"]) == {"kind": "none"}
    assert any("2.0.0" in w for w in warns) and any("3 pt candidate" in w for w in warns)
    warns = parse_plan({"schema_version": "1.0.0", "candidates": {"pid": 1}})[2]
    assert warns[0].startswith("pt `candidates`")

"""Beads collector on the real br payloads (issues.jsonl, `br ready --json`) and bv.md's triage shape."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from collectors.beads import BeadsCollector, parse_issue_lines, ready_row, triage_row
from tests.toolbox import Tool, run_collector, toolbox_executor
from workbench.store import Batch


def write(store, result) -> dict[str, int]:
    b = Batch()
    for table, rows in result.rows.items():
        b.add_rows(table, rows)
    return store.write(b).inserted


def triage_example(formats_dir: Path) -> str:
    """The reconstructed `--robot-triage` example from bv.md (no verbatim payload exists)."""
    md = (formats_dir / "bv.md").read_text()
    block = re.search(r"## Reconstructed example.*?```json\n(.*?)```", md, re.S)
    assert block, "bv.md example block not found"
    json.loads(block[1])
    return block[1]


@pytest.fixture
def repo(tmp_path: Path, formats_dir: Path) -> Path:
    r = tmp_path / "work" / "beads_rust"
    (r / ".beads").mkdir(parents=True)
    shutil.copy(formats_dir / "br.issues.example.jsonl", r / ".beads" / "issues.jsonl")
    return r


@pytest.fixture
def tools(formats_dir: Path) -> dict[str, Tool]:
    return {
        "br": Tool(by_subcommand={"ready": formats_dir / "br.ready.example.json"}),
        "bv": Tool(stdout=triage_example(formats_dir)),
    }


def collect(tmp_path: Path, tools: dict[str, Tool], repos: list[str], cursor=None):
    ex = toolbox_executor(tmp_path / "box", tools)
    return run_collector(BeadsCollector(), ex, cursor=cursor, options={"beads_repos": repos})


def test_real_payloads_parse(tmp_path, repo, tools):
    res = collect(tmp_path, tools, [str(repo)])
    assert res.warnings == []
    issues = {r["issue_id"]: r for r in res.rows["beads_issues"]}
    assert len(issues) == 12
    closed = issues["beads_rust-2iba"]
    assert closed["status"] == "closed" and closed["assignee"] == "DustyBay" and closed["priority"] == 2
    assert closed["labels"] == ["hashing", "storage", "tests"]
    assert closed["blocked_by_ids"] == ["beads_rust-3ea7"] and closed["dependency_count"] == 2
    assert closed["closed_at"].isoformat() == "2026-01-28T19:10:49.841040+00:00"
    assert closed["repo_path"] == str(repo) and closed["machine_id"] == "test-host"
    assert closed["source"] == "beads"
    child = issues["beads_rust-lr74.4"]
    assert child["parent_id"] == "beads_rust-lr74" and child["blocked_by_ids"] == ["beads_rust-lr74.3"]
    assert issues["beads_rust-qy6m"]["comment_count"] == 1
    tomb = issues["beads_rust-1h4"]
    assert tomb["status"] == "tombstone" and tomb["deleted_at"] is not None
    assert issues["beads_rust-ums"]["estimated_minutes"] == 0 and issues["beads_rust-1yr0"]["labels"] == []
    assert json.loads(issues["beads_rust-eclx"]["raw_json"])["labels"] == ["safety", "sync", "tests"]

    (ready,) = res.rows["beads_ready_snapshots"]
    assert ready["ready_count"] == 3 and ready["issue_ids"] == ["bd-vgf", "bd-2l5", "bd-nqs"]
    assert ready["top_issue_id"] == "bd-vgf" and ready["top_priority"] == 0
    assert ready["p0_count"] == 1 and ready["p1_count"] == 1 and ready["in_progress_count"] == 0

    (tri,) = res.rows["beads_triage_snapshots"]
    assert tri["open_count"] == 30 and tri["actionable_count"] == 18 and tri["blocked_count"] == 4
    assert tri["not_closed_count"] == 40 and tri["issue_count"] == 120
    assert tri["top_pick_id"] == "bd-123" and tri["top_pick_score"] == pytest.approx(0.61)
    assert tri["has_cycles"] is False and tri["blockers_to_clear_count"] == 1 and tri["quick_win_count"] == 0
    assert tri["generated_at"].isoformat() == "2026-03-01T12:00:00+00:00"
    assert res.cursor["files"][str(repo)]["offset"] == (repo / ".beads" / "issues.jsonl").stat().st_size


def test_insert_and_reinsert_is_idempotent(tmp_path, repo, tools, store):
    res = collect(tmp_path, tools, [str(repo)])
    assert write(store, res) == {"beads_issues": 12, "beads_ready_snapshots": 1, "beads_triage_snapshots": 1}
    assert sum(write(store, res).values()) == 0
    with store.raw_reader() as con:
        row = con.execute("SELECT labels, priority, status FROM beads_issues "
                          "WHERE issue_id = 'beads_rust-220r'").fetchone()
        assert row == (["benchmarks", "perf"], 3, "open")
        assert con.execute("SELECT issue_ids FROM beads_ready_snapshots").fetchone()[0][0] == "bd-vgf"


def test_cursor_restart_reads_only_new_lines(tmp_path, repo, tools, store):
    first = collect(tmp_path, tools, [str(repo)])
    write(store, first)
    cursor = json.loads(json.dumps(first.cursor))  # as stored in ingestion_cursors
    again = collect(tmp_path, tools, [str(repo)], cursor=cursor)
    assert "beads_issues" not in again.rows and again.cursor == first.cursor

    # br appends an updated version of one issue: exactly that one is new.
    line = json.loads((repo / ".beads" / "issues.jsonl").read_text().splitlines()[0])
    line.update(status="in_progress", updated_at="2026-02-01T00:00:00Z")
    with (repo / ".beads" / "issues.jsonl").open("a") as fh:
        fh.write(json.dumps(line) + "\n")
    third = collect(tmp_path, tools, [str(repo)], cursor=again.cursor)
    assert [r["issue_id"] for r in third.rows["beads_issues"]] == ["beads_rust-1yr0"]
    assert write(store, third)["beads_issues"] == 1
    with store.raw_reader() as con:
        latest = con.execute("SELECT status FROM beads_issues WHERE issue_id = 'beads_rust-1yr0' "
                             "ORDER BY updated_at DESC LIMIT 1").fetchone()[0]
    assert latest == "in_progress"


def test_atomic_rewrite_rereads_quietly_and_dedupes(tmp_path, repo, tools, store):
    first = collect(tmp_path, tools, [str(repo)])
    write(store, first)
    f = repo / ".beads" / "issues.jsonl"
    keep = tmp_path / "old-inode"
    keep.hardlink_to(f)  # keep the old inode number in use
    lines = f.read_text().splitlines()
    changed = json.loads(lines[3])
    changed["updated_at"] = "2026-03-03T03:03:03Z"
    lines[3] = json.dumps(changed)
    tmp = repo / ".beads" / "issues.jsonl.tmp"
    tmp.write_text("\n".join(lines) + "\n")
    tmp.replace(f)  # what an atomic export does
    second = collect(tmp_path, tools, [str(repo)], cursor=first.cursor)
    assert second.warnings == []  # a rewrite is br's normal behaviour
    assert len(second.rows["beads_issues"]) == 12
    assert write(store, second)["beads_issues"] == 1


def test_malformed_issue_lines_cost_only_themselves(tmp_path, repo, tools):
    f = repo / ".beads" / "issues.jsonl"
    good = f.read_text()
    f.write_text(
        '{"id":"bd-1","title":"ok","status":"open","priority":"high","updated_at":"2026-01-01T00:00:00Z",'
        '"labels":"not-a-list","dependencies":{"x":1}}\n'
        '{"id":"bd-2","title":"trunc\n'
        '{"id":42,"updated_at":"2026-01-01T00:00:00Z"}\n'
        '{"id":"bd-3","updated_at":"TIMESTAMP"}\n'
        '["not","an","object"]\n'
        '\x1b[31mgarbage\x1b[0m\n' + good
    )
    res = collect(tmp_path, tools, [str(repo)])
    rows = {r["issue_id"]: r for r in res.rows["beads_issues"]}
    assert len(rows) == 13
    bd1 = rows["bd-1"]
    assert bd1["priority"] is None and bd1["labels"] == [] and bd1["dependency_count"] == 0
    (w,) = [w for w in res.warnings if "bad issue line" in w]
    assert w.split(":")[1].strip().startswith("5 bad issue line(s)")


def test_parse_issue_lines_keeps_partial_rows_free_of_type_mixing():
    rows, warns = parse_issue_lines([
        '{"id":"a","updated_at":"2026-01-01T00:00:00Z","priority":true,"estimated_minutes":1.5}',
        '{"id":"b","updated_at":"2026-01-01T00:00:00Z","priority":1,"estimated_minutes":30}',
    ])
    assert [r["priority"] for r in rows] == [None, 1] and [r["estimated_minutes"] for r in rows] == [None, 30]
    assert warns == []


def test_bad_command_outputs(tmp_path, repo, formats_dir):
    ready_json = (formats_dir / "br.ready.example.json").read_text()
    cases = {
        "ansi": (Tool(by_subcommand={"ready": "\x1b[1mbr 0.9\x1b[0m\n" + ready_json}), None, 3),
        "truncated": (Tool(by_subcommand={"ready": ready_json[:120]}), "not JSON", None),
        "empty": (Tool(by_subcommand={"ready": ""}), "empty output", None),
        "wrong type": (Tool(by_subcommand={"ready": '{"issues": []}'}), "expected a JSON array", None),
        "nonzero": (Tool(by_subcommand={"ready": "error: no .beads here"}, exit_code=2), "exited 2", None),
    }
    for label, (br, warn, count) in cases.items():
        res = collect(tmp_path / label, {"br": br}, [str(repo)])
        if warn is None:
            assert res.warnings == [], label
        else:
            assert any(warn in w for w in res.warnings), (label, res.warnings)
        ready = res.rows.get("beads_ready_snapshots", [])
        assert (ready[0]["ready_count"] if ready else None) == count, label
        assert len(res.rows["beads_issues"]) == 12, label  # the tail does not depend on br
        assert "beads_triage_snapshots" not in res.rows  # no bv in this toolbox: quietly skipped


def test_empty_ready_list_is_a_row(tmp_path, repo):
    res = collect(tmp_path, {"br": Tool(by_subcommand={"ready": "[]\n"})}, [str(repo)])
    (ready,) = res.rows["beads_ready_snapshots"]
    assert ready["ready_count"] == 0 and ready["issue_ids"] == [] and ready["top_issue_id"] is None


def test_triage_variants():
    assert triage_row({"generated_at": "x"})[0] is None
    row, _ = triage_row({"triage": {"quick_ref": {"open_count": "7", "top_picks": "nope"},
                                    "alerts": [{}, {}]}})
    assert row["open_count"] is None and row["top_pick_ids"] == [] and row["alert_count"] == 2
    assert ready_row({"a": 1})[0] is None


def test_missing_repo_and_no_repos(tmp_path, tools):
    res = collect(tmp_path, tools, [str(tmp_path / "nope")])
    assert any("no .beads/issues.jsonl" in w for w in res.warnings)
    assert any("exited" in w for w in res.warnings)  # `cd` fails for br ready
    none = collect(tmp_path, tools, [])
    assert none.rows == {} and none.warnings == [] and none.cursor == {"files": {}}

"""ru: the real 115-repo `list` / `status` fixtures, merged per path; bad output of either command."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from collectors.ru import RuCollector
from tests.toolbox import Tool, run_collector, toolbox_executor
from workbench.store import Batch

NOW = datetime(2026, 2, 9, 18, 10, tzinfo=UTC)
TABLE = "repo_status_snapshots"


@pytest.fixture(scope="module")
def real(formats_dir: Path) -> dict[str, str]:
    return {"list": (formats_dir / "ru.list.example.json").read_text(),
            "status": (formats_dir / "ru.status.example.json").read_text()}


def collect(tmp_path: Path, list_out: str | bytes, status_out: str | bytes, exit_code: int = 0,
            sub: str = "a"):
    tool = Tool(by_subcommand={"list": list_out, "status": status_out}, exit_code=exit_code)
    return run_collector(RuCollector(), toolbox_executor(tmp_path / sub, {"ru": tool}), now=NOW)


def by_path(result) -> dict[str, dict]:
    return {r["path"]: r for r in result.rows.get(TABLE, [])}


def write(store, result):
    b = Batch()
    for table, rows in result.rows.items():
        # pyarrow takes a batch's columns from its first row: every row must carry the same keys.
        assert len({frozenset(r) for r in rows}) == 1, f"{table}: rows with different columns"
        b.add_rows(table, rows)
    return store.write(b)


def test_required_tool():
    assert RuCollector.required_tool == "ru"


def test_real_payloads(tmp_path, real):
    r = collect(tmp_path, real["list"], real["status"])
    assert r.warnings == []
    rows = by_path(r)
    assert len(rows) == 115
    assert sum(1 for x in rows.values() if x["status"] == "behind") == 3
    wez = rows["/data/projects/wezterm_automata"]
    assert (wez["status"], wez["behind"], wez["ahead"], wez["branch"]) == ("behind", 6, 0, "main")
    assert rows["/data/projects/beads_viewer"]["dirty"] is True
    assert rows["/data/projects/frankentui-website"]["mismatch"] is True
    assert rows["/data/projects/fix_my_documents_nextjs_frontend"]["branch"] == "master"
    # `url` comes from `ru list`: both the bare and the full spec forms appear in the real fixture.
    assert rows["/data/projects/midas_edge"]["url"] == "Dicklesworthstone/midas_edge"
    assert rows["/data/projects/beads_rust"]["url"] == "https://github.com/Dicklesworthstone/beads_rust.git"
    m = rows["/data/projects/midas_edge"]
    assert m["repo"] == "Dicklesworthstone/midas_edge" and m["in_status"] is True
    assert m["ru_version"] == "1.2.1" and m["generated_at"] == datetime(2026, 2, 9, 18, 9, 42, tzinfo=UTC)
    assert m["collected_at"] == NOW and m["source"] == "ru" and m["machine_id"] == "test-host"
    assert json.loads(m["raw_json"])["status"] == "current"


def test_unknown_ahead_is_null_not_minus_one(tmp_path):
    status = {"generated_at": "2026-02-09T18:09:42Z", "version": "1.2.1", "output_format": "json",
              "command": "status", "data": {"total": 1, "repos": [
                  {"repo": "o/r", "path": "/p/r", "status": "diverged", "branch": "", "ahead": -1,
                   "behind": -1, "dirty": False, "mismatch": False}]}}
    r = collect(tmp_path, "", json.dumps(status))
    row = by_path(r)["/p/r"]
    assert row["ahead"] is None and row["behind"] is None and row["status"] == "diverged"
    assert row["branch"] is None  # "" is ru's "detached or missing"
    assert any("ru list: empty output" in w for w in r.warnings)


def test_status_truncated_keeps_list(tmp_path, real):
    r = collect(tmp_path, real["list"], real["status"][: len(real["status"]) // 2])
    rows = by_path(r)
    assert len(rows) == 115 and all(x["in_status"] is False and x["status"] is None for x in rows.values())
    assert rows["/data/projects/beads_rust"]["url"].startswith("https://")
    # The truncated envelope is refused, not mistaken for the first repo object inside it.
    assert any("ru status: not valid JSON" in w for w in r.warnings)


def test_wrong_types(tmp_path, real, store):
    status = json.loads(real["status"])
    status["data"]["repos"][0]["ahead"] = "0"
    status["data"]["repos"][0]["dirty"] = "yes"
    status["data"]["repos"][1] = "not an object"
    r = collect(tmp_path, real["list"], json.dumps(status))
    rows = by_path(r)
    first = rows["/data/projects/midas_edge"]
    assert first["ahead"] is None and first["dirty"] is None and first["behind"] == 0
    assert rows["/data/projects/historical_soldiers"]["in_status"] is False  # only `list` knew it
    text = " | ".join(r.warnings)
    assert "repos[0].ahead" in text and "repos[0].dirty" in text
    assert "1 repo entries that are not objects" in text
    assert write(store, r).inserted == {TABLE: 115}  # list-only and status rows share one column set


def test_data_not_an_object(tmp_path):
    r = collect(tmp_path, '{"command": "list", "data": [1, 2]}',
                '{"command": "status", "data": {"repos": 7}}')
    assert r.rows == {}
    text = " | ".join(r.warnings)
    assert "ru list: envelope has no `data` object" in text and "data.repos should be an array" in text


def test_ansi_and_log_lines(tmp_path, real):
    colored = real["status"].replace('"current"', '"\x1b[32mcurrent\x1b[0m"', 1)
    noisy = "\x1b[33m→ checking 115 repos\x1b[0m\n" + colored
    r = collect(tmp_path, real["list"], noisy)
    rows = by_path(r)
    assert rows["/data/projects/midas_edge"]["status"] == "current" and len(rows) == 115
    assert any("non-JSON output before the payload" in w for w in r.warnings)


def test_toon_output_is_reported(tmp_path):
    r = collect(tmp_path, "repos[1]{repo,url,path}:\n  o/r,o/r,/p/r\n", "garbage \x00\x01")
    assert r.rows == {}
    assert any("ru list: not valid JSON" in w for w in r.warnings)
    assert any("ru status: not valid JSON" in w for w in r.warnings)


def test_empty_and_nonzero_exit(tmp_path, real):
    r = collect(tmp_path, "", "", exit_code=3)
    assert r.rows == {}
    assert any("`ru status --no-fetch --json` exited 3 and printed no usable payload" in w
               for w in r.warnings)
    partial = collect(tmp_path, real["list"], real["status"], exit_code=1, sub="b")
    assert len(partial.rows[TABLE]) == 115 and any("exited 1" in w for w in partial.warnings)


def test_insert_and_reinsert(tmp_path, store, real):
    r = collect(tmp_path, real["list"], real["status"])
    assert write(store, r).inserted == {TABLE: 115}
    assert write(store, r).rows == 0
    with store.raw_reader() as con:
        behind = con.execute(f"SELECT sum(behind), count(*) FILTER (WHERE dirty) FROM {TABLE}").fetchone()
    assert behind == (9, 4)  # 2 + 1 + 6 behind; beads_viewer, repo_updater, frankentui, frankensqlite dirty

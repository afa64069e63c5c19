"""ntm: --robot-snapshot per pane, --robot-status fallback per session, the error envelope, bad output."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from collectors.ntm import NtmCollector
from tests.toolbox import Tool, run_collector, toolbox_executor
from workbench.store import Batch

NOW = datetime(2026, 8, 16, 12, 1, tzinfo=UTC)
TABLE = "ntm_sessions_snapshot"


@pytest.fixture(scope="module")
def real(formats_dir: Path) -> dict[str, str]:
    return {n: (formats_dir / f"ntm.{n}.example.json").read_text() for n in ("snapshot", "status", "error")}


def collect(tmp_path: Path, snapshot: str | bytes, status: str | bytes = "", exit_code: int = 0,
            sub: str = "a"):
    tool = Tool(by_subcommand={"--robot-snapshot": snapshot, "--robot-status": status}, exit_code=exit_code)
    return run_collector(NtmCollector(), toolbox_executor(tmp_path / sub, {"ntm": tool}), now=NOW)


def panes(result) -> dict[tuple[str, str], dict]:
    return {(r["session"], r["pane"]): r for r in result.rows.get(TABLE, [])}


def write(store, result):
    b = Batch()
    for table, rows in result.rows.items():
        # pyarrow takes a batch's columns from its first row: every row must carry the same keys.
        assert len({frozenset(r) for r in rows}) == 1, f"{table}: rows with different columns"
        b.add_rows(table, rows)
    return store.write(b)


def test_required_tool():
    assert NtmCollector.required_tool == "ntm"


def test_snapshot(tmp_path, real):
    r = collect(tmp_path, real["snapshot"], real["status"])
    assert r.warnings == []
    p = panes(r)
    assert len(p) == 12 and all(x["row_kind"] == "agent" for x in p.values())
    a = p[("corpus-session-0", "1")]
    assert (a["agent_type"], a["state"], a["context_pct"]) == ("claude", "active", 20.0)
    assert a["current_bead"] == "bd-corpus-00" and a["last_output_age_sec"] == 5 and a["pending_mail"] == 0
    assert a["attached"] is True and a["session_agent_count"] == 4 and a["type_confidence"] == 0.95
    assert a["schema_id"] == "ntm:robot:snapshot:v1" and a["ntm_schema_version"] == "1.0.0"
    assert a["reported_at"] == datetime(2026, 8, 16, 12, 0, tzinfo=UTC) and a["collected_at"] == NOW
    b = p[("corpus-session-1", "2")]
    assert (b["agent_type"], b["variant"], b["state"]) == ("gemini", "gpt-5-codex", "waiting")
    assert b["attached"] is False and b["pending_mail"] == 2
    assert p[("corpus-session-2", "4")]["context_pct"] == 55.0
    assert json.loads(a["raw_json"])["type_method"] == "process"
    assert sum(x["state"] == "active" for x in p.values()) == 4


def test_status_fallback_when_snapshot_flag_unknown(tmp_path, real):
    invalid = json.loads(real["error"])
    invalid.update(error="unknown flag --robot-snapshot", error_code="INVALID_FLAG", hint="ntm --help")
    r = collect(tmp_path, json.dumps(invalid), real["status"], exit_code=1)
    p = panes(r)
    assert set(p) == {(f"proj-{c}", "") for c in "abcde"}
    c = p[("proj-c", "")]
    assert c["row_kind"] == "session" and c["session_agent_count"] == 4 and c["attached"] is True
    assert c["session_health_status"] == "critical"
    assert c["session_health_reason"] == "agent idle >10m with pending work"
    assert c["agent_type"] is None and c["schema_id"] == "ntm:robot:status:v1"
    # generated_at is Go's zero time in this fixture, so the envelope's timestamp stands in.
    assert c["reported_at"] == datetime(2026, 8, 16, 12, 0, tzinfo=UTC)
    assert p[("proj-b", "")]["attached"] is None
    assert len(r.warnings) == 1
    assert r.warnings[0].startswith("ntm --robot-snapshot unusable, used --robot-status")
    assert "INVALID_FLAG" in r.warnings[0]


def test_status_fallback_when_snapshot_prints_usage_text(tmp_path, real):
    r = collect(tmp_path, "Usage: ntm [flags]\n  --robot-status ...\n", real["status"], exit_code=0)
    assert len(r.rows[TABLE]) == 5 and "robot-status" in r.warnings[0]


def test_error_envelope_is_a_warning(tmp_path, real):
    r = collect(tmp_path, real["error"], real["status"], exit_code=1)
    assert r.rows == {}  # SESSION_NOT_FOUND: asking --robot-status instead would not help
    assert r.warnings == ["ntm --robot-snapshot: ntm reported an error: SESSION_NOT_FOUND: "
                          "session 'myproject' not found (hint: Use 'ntm list' to see available sessions)"]


def test_unknown_schema_id_still_read_by_shape(tmp_path, real):
    snap = json.loads(real["snapshot"])
    snap["schema_id"] = "ntm:robot:snapshot:v2"
    r = collect(tmp_path, json.dumps(snap))
    assert len(r.rows[TABLE]) == 12 and r.rows[TABLE][0]["schema_id"] == "ntm:robot:snapshot:v2"
    assert any("unknown schema_id 'ntm:robot:snapshot:v2'" in w for w in r.warnings)


def test_agentless_session_and_unknown_age(tmp_path, real, store):
    snap = json.loads(real["snapshot"])
    snap["sessions"].append({"name": "empty", "attached": False, "agents": None})
    snap["sessions"][0]["agents"][0]["last_output_age_sec"] = -1
    r = collect(tmp_path, json.dumps(snap))
    assert write(store, r).inserted == {TABLE: 13}  # session and agent rows share one column set
    p = panes(r)
    assert p[("empty", "")]["row_kind"] == "session" and p[("empty", "")]["session_agent_count"] == 0
    assert p[("corpus-session-0", "1")]["last_output_age_sec"] is None


def test_truncated(tmp_path, real):
    r = collect(tmp_path, real["snapshot"][:3000], real["status"][:500])
    assert r.rows == {}
    text = " | ".join(r.warnings)
    assert "ntm --robot-snapshot: not valid JSON" in text and "ntm --robot-status: not valid JSON" in text


def test_wrong_types(tmp_path, real):
    snap = json.loads(real["snapshot"])
    a = snap["sessions"][0]["agents"]
    a[0]["context_percent"] = "20%"
    a[1]["pane"] = 2
    a[2] = "pane three"
    snap["sessions"][1] = {"attached": True, "agents": []}
    r = collect(tmp_path, json.dumps(snap))
    p = panes(r)
    assert p[("corpus-session-0", "1")]["context_pct"] is None
    assert p[("corpus-session-0", "1")]["state"] == "active"
    assert ("corpus-session-0", "#1") in p  # a pane id of the wrong type still gets a stable stand-in
    assert len(p) == 7  # 12 minus a broken agent minus a nameless session's 4 agents
    text = " | ".join(r.warnings)
    assert "context_percent" in text and "agents[2] should be an object" in text
    assert "sessions[1] has no name" in text


def test_ansi_garbage_empty(tmp_path, real):
    r = collect(tmp_path, "\x1b]0;ntm\x07\x1b[32m" + real["snapshot"] + "\x1b[0m")
    assert len(r.rows[TABLE]) == 12 and r.warnings == []
    junk = collect(tmp_path, b"\x00\xffgarbage", b"", sub="b")
    assert junk.rows == {}
    assert any("not valid JSON" in w for w in junk.warnings)
    assert any("empty output" in w for w in junk.warnings)
    other = collect(tmp_path, '{"success": true, "schema_id": "ntm:robot:activity:v1"}', "[]", sub="c")
    assert other.rows == {} and any("unknown schema_id 'ntm:robot:activity:v1'" in w for w in other.warnings)


def test_nonzero_exit(tmp_path, real):
    r = collect(tmp_path, "", "", exit_code=2)
    assert r.rows == {} and any("exited 2 and printed no usable payload" in w for w in r.warnings)
    kept = collect(tmp_path, real["snapshot"], exit_code=1, sub="b")
    assert len(kept.rows[TABLE]) == 12 and any("`ntm --robot-snapshot` exited 1" in w for w in kept.warnings)


def test_insert_and_reinsert(tmp_path, store, real):
    r = collect(tmp_path, real["snapshot"])
    assert write(store, r).inserted == {TABLE: 12}
    assert write(store, r).rows == 0
    with store.raw_reader() as con:
        got = con.execute(f"""SELECT agent_type, count(*), max(context_pct) FROM {TABLE}
                              GROUP BY agent_type ORDER BY agent_type""").fetchall()
    assert got == [("claude", 3, 48.0), ("codex", 3, 55.0), ("cursor", 3, 41.0), ("gemini", 3, 34.0)]

"""cass: health (freshness), stats, timeline; the golden payloads, the error envelope, bad output."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from collectors.cass import CassCollector
from tests.toolbox import Tool, run_collector, toolbox_executor
from workbench.store import Batch

NOW = datetime(2026, 8, 22, 12, 0, tzinfo=UTC)
HEALTH, STATS, TIMELINE = "cass_health_snapshots", "cass_stats_snapshots", "cass_timeline_sessions"

# Verbatim from cass.md (tests/golden/robot/stats_missing_db.json.golden; cass exits 3 with it).
MISSING_DB = ('{"error":{"code":3,"kind":"missing-db","message":"Database not found at '
              '[TEST_HOME]/agent_search.db. Run \'cass index --full\' first.",'
              '"hint":"Run \'cass index --full\' to create the database.",'
              '"retryable":true}}')

# No timeline golden exists upstream or in the shared folder: this is the `--group-by hour` example
# RECONSTRUCTED in cass.md from `run_timeline`, with a second group added.
TIMELINE_GROUPED = {
    "range": {"start": 1737158400000, "end": 1737244800000}, "total_sessions": 2,
    "groups": {
        "2026-01-18 14:00": [
            {"id": 42, "agent": "claude_code", "title": "Fix auth bug", "started_at": 1737209000000,
             "ended_at": 1737212600000, "source_path": "/home/u/.claude/projects/x/abc.jsonl",
             "message_count": 57,
             "source_id": "local", "origin_kind": "local", "origin_host": None}],
        "2026-01-18 09:00": [
            {"id": 7, "agent": "codex", "title": None, "started_at": 1737190800000, "ended_at": None,
             "source_path": "/home/u/.codex/sessions/s.jsonl", "message_count": 3,
             "source_id": "builder-2", "origin_kind": "remote", "origin_host": "builder-2.lan"}],
    },
}
# The `--group-by none` form of the same data (items also carry duration_seconds), per cass.md.
TIMELINE_FLAT = {"range": TIMELINE_GROUPED["range"], "total_sessions": 2, "sessions": [
    {**TIMELINE_GROUPED["groups"]["2026-01-18 14:00"][0], "duration_seconds": 3600},
    {**TIMELINE_GROUPED["groups"]["2026-01-18 09:00"][0], "duration_seconds": None}]}


@pytest.fixture(scope="module")
def golden(formats_dir: Path) -> dict[str, str]:
    return {n: (formats_dir / f"cass.{n}.example.json").read_text()
            for n in ("health", "stats", "health_semantic_progress")}


def stale_health(golden_health: str) -> dict:
    """The golden health payload edited into an initialized machine whose index went stale."""
    h = json.loads(golden_health)
    h.update(status="healthy", healthy=True, health_level="healthy", initialized=True, errors=[],
             latency_ms=12)
    h["db"].update(exists=True, opened=True, conversations=1200, messages=98000)
    h["state"]["index"].update(exists=True, status="ready", fresh=False, stale=True, documents=98000,
                               last_indexed_at="2026-08-22T10:00:00Z", age_seconds=7200)
    h["state"]["pending"]["sessions"] = 14
    h["state"]["_meta"]["timestamp"] = "2026-08-22T11:59:59Z"
    h["rebuild_progress"].update(active=True, phase="indexing", processed_conversations=300,
                                 total_conversations=1200, completion_ratio=0.25)
    return h


def collect(tmp_path: Path, health: str | bytes, stats: str | bytes, timeline: str | bytes | None = None,
            exit_code: int = 0, sub: str = "a", **options):
    subs = {"health": health, "stats": stats}
    if timeline is not None:
        subs["timeline"] = timeline
    ex = toolbox_executor(tmp_path / sub, {"cass": Tool(by_subcommand=subs, exit_code=exit_code)})
    return run_collector(CassCollector(), ex, now=NOW, options=options)


def write(store, result):
    b = Batch()
    for table, rows in result.rows.items():
        # pyarrow takes a batch's columns from its first row: every row must carry the same keys.
        assert len({frozenset(r) for r in rows}) == 1, f"{table}: rows with different columns"
        b.add_rows(table, rows)
    return store.write(b)


def test_required_tool():
    assert CassCollector.required_tool == "cass"


def test_golden_health_and_stats(tmp_path, golden):
    r = collect(tmp_path, golden["health"], golden["stats"], json.dumps(TIMELINE_FLAT))
    (h,) = r.rows[HEALTH]
    assert h["status"] == "not_initialized" and h["healthy"] is False and h["initialized"] is False
    assert json.loads(h["errors_json"]) == ["database not initialized yet", "index not initialized yet"]
    assert h["recommended_action"].startswith("Run 'cass index --full'")
    assert h["db_exists"] is False and h["db_conversations"] == 0 and h["db_messages"] == 0
    assert h["index_status"] == "missing" and h["index_stale"] is False
    assert h["index_stale_threshold_seconds"] == 1800
    assert h["pending_sessions"] == 0 and h["rebuild_active"] is False
    assert h["semantic_status"] == "not_initialized"
    assert h["quarantine_breaker_active"] is False and h["search_complete"] is True
    assert h["remote_sync_staleness"] == "not_configured" and h["remote_sync_gap_count"] == 0
    raw = json.loads(h["raw_json"])
    assert "doctor_summary" in raw and "state" in raw
    assert "responsiveness" not in raw and "policy_registry" not in raw
    assert "policy_registry" not in raw["state"]
    (s,) = r.rows[STATS]
    assert (s["conversations"], s["messages"], s["agent_count"]) == (2, 6, 1)
    assert json.loads(s["by_agent_json"]) == {"aider": 2}
    assert json.loads(s["top_workspaces_json"])[1]["workspace"] == "[REPO]/tests/fixtures/aider"
    assert s["raw_mirror_initialized"] is False and s["raw_mirror_total_bytes"] == 0
    assert s["db_path"].endswith("agent_search.db")
    # The golden files carry the test harness's redaction placeholders where numbers and times go:
    # they are wrong types for a real reader, stored as NULL and said so.
    assert h["latency_ms"] is None and h["index_age_seconds"] is None and s["oldest_at"] is None
    text = " | ".join(r.warnings)
    assert "latency_ms should be a number" in text and "date_range.oldest" in text


def test_stale_index_freshness_fields(tmp_path, golden):
    r = collect(tmp_path, json.dumps(stale_health(golden["health"])), golden["stats"], exit_code=0)
    (h,) = r.rows[HEALTH]
    assert h["healthy"] is True and h["index_stale"] is True and h["index_fresh"] is False
    assert h["index_age_seconds"] == 7200
    assert h["index_last_indexed_at"] == datetime(2026, 8, 22, 10, tzinfo=UTC)
    assert h["index_documents"] == 98000 and h["db_conversations"] == 1200 and h["pending_sessions"] == 14
    assert h["rebuild_active"] is True and h["rebuild_completion_ratio"] == 0.25
    assert h["rebuild_phase"] == "indexing"
    assert h["latency_ms"] == 12 and h["reported_at"] == datetime(2026, 8, 22, 11, 59, 59, tzinfo=UTC)


def test_unhealthy_exit_code_is_data_not_a_failure(tmp_path, golden):
    r = collect(tmp_path, golden["health"], MISSING_DB, exit_code=3)
    assert len(r.rows[HEALTH]) == 1 and STATS not in r.rows
    assert not any("cass health" in w and "exited" in w for w in r.warnings)
    assert any("cass stats: cass error missing-db (code 3, retryable): Database not found" in w
               for w in r.warnings)
    assert any("`cass stats --json` exited 3" in w for w in r.warnings)


def test_partial_projection_is_not_a_health_payload(tmp_path, golden):
    r = collect(tmp_path, golden["health_semantic_progress"], golden["stats"])
    assert HEALTH not in r.rows and len(r.rows[STATS]) == 1
    assert any("cass health: no `status`/`healthy` fields" in w for w in r.warnings)


def test_timeline_grouped_and_flat(tmp_path, golden):
    grouped = collect(tmp_path, golden["health"], golden["stats"], json.dumps(TIMELINE_GROUPED))
    flat = collect(tmp_path, golden["health"], golden["stats"], json.dumps(TIMELINE_FLAT), sub="b")
    for r in (grouped, flat):
        rows = {x["session_id"]: x for x in r.rows[TIMELINE]}
        assert set(rows) == {42, 7}
        a = rows[42]
        assert a["agent"] == "claude_code" and a["title"] == "Fix auth bug" and a["message_count"] == 57
        assert a["started_at"] == datetime.fromtimestamp(1737209000, tz=UTC)
        assert a["duration_seconds"] == 3600.0 and a["cass_source_id"] == "local"
        assert a["first_seen_at"] == NOW
        b = rows[7]
        assert b["ended_at"] is None and b["duration_seconds"] is None and b["origin_host"] == "builder-2.lan"
        assert b["cass_source_id"] == "builder-2" and b["title"] is None
    assert not any("timeline" in w for w in grouped.warnings + flat.warnings)


def test_timeline_option_off(tmp_path, golden):
    r = collect(tmp_path, golden["health"], golden["stats"], None, cass_timeline=False)
    assert TIMELINE not in r.rows and not any("timeline" in w for w in r.warnings)


def test_timeline_unknown_flag_is_a_warning(tmp_path, golden):
    # An older cass without `timeline`: the fake answers like a CLI that rejects it (stderr, exit 2).
    r = collect(tmp_path, golden["health"], golden["stats"])
    assert len(r.rows[HEALTH]) == 1 and TIMELINE not in r.rows
    assert any("`cass timeline --json --group-by none` exited 2" in w and "unknown subcommand" in w
               for w in r.warnings)


def test_truncated(tmp_path, golden):
    r = collect(tmp_path, golden["health"][:5000], golden["stats"][:100], json.dumps(TIMELINE_FLAT)[:150])
    assert r.rows == {}
    assert sum("not valid JSON" in w for w in r.warnings) == 3


def test_wrong_types(tmp_path, golden):
    h = json.loads(golden["health"])
    h["healthy"] = "no"
    h["db"]["conversations"] = "many"
    h["state"]["index"] = ["not", "an", "object"]
    s = json.loads(golden["stats"])
    s["messages"] = 6.5
    s["by_agent"] = [{"agent": "aider", "count": "2"}, "x"]
    tl = json.loads(json.dumps(TIMELINE_FLAT))
    tl["sessions"][0]["id"] = "42"
    tl["sessions"][1]["started_at"] = "yesterday"
    r = collect(tmp_path, json.dumps(h), json.dumps(s), json.dumps(tl))
    (hr,) = r.rows[HEALTH]
    assert hr["healthy"] is None and hr["db_conversations"] is None and hr["index_status"] is None
    assert hr["status"] == "not_initialized"  # the rest survives
    (sr,) = r.rows[STATS]
    assert sr["messages"] is None and sr["conversations"] == 2
    assert json.loads(sr["by_agent_json"]) == {"aider": None}
    (tr,) = r.rows[TIMELINE]
    assert tr["session_id"] == 7 and tr["started_at"] is None
    text = " | ".join(r.warnings)
    assert "healthy should be a boolean" in text and "state.index should be an object" in text
    assert "messages should be an integer" in text and "session[0].id" in text and "started_at" in text


def test_ansi_garbage_empty(tmp_path, golden):
    r = collect(tmp_path, "\x1b[1m" + golden["health"] + "\x1b[0m", b"\x00\x01binary", "")
    assert len(r.rows[HEALTH]) == 1 and STATS not in r.rows and TIMELINE not in r.rows
    assert any("cass stats: not valid JSON" in w for w in r.warnings)
    assert "cass timeline: empty output" in r.warnings
    lists = collect(tmp_path, "[1, 2]", '"stats"', "{}", sub="b")
    assert lists.rows == {}
    text = " | ".join(lists.warnings)
    assert "cass health: expected a JSON object, got list" in text and "got str" in text
    assert "not a timeline payload" in text


def test_nonzero_exit_without_payload(tmp_path):
    r = collect(tmp_path, "", "", "", exit_code=1)
    assert r.rows == {}
    assert any("`cass health --json` exited 1 and printed no usable payload" in w for w in r.warnings)


def test_insert_and_reinsert(tmp_path, store, golden):
    health = json.dumps(stale_health(golden["health"]))
    r = collect(tmp_path, health, golden["stats"], json.dumps(TIMELINE_FLAT))
    assert write(store, r).inserted == {HEALTH: 1, STATS: 1, TIMELINE: 2}
    assert write(store, r).rows == 0
    # Next poll: session 42 unchanged (no row), session 7 grew (a new version row).
    grown = json.loads(json.dumps(TIMELINE_FLAT))
    grown["sessions"][1]["message_count"] = 9
    later = run_collector(CassCollector(), toolbox_executor(tmp_path / "later", {"cass": Tool(by_subcommand={
        "health": golden["health"], "stats": golden["stats"], "timeline": json.dumps(grown)})}),
        now=datetime(2026, 8, 22, 12, 5, tzinfo=UTC))
    assert write(store, later).inserted == {HEALTH: 1, STATS: 1, TIMELINE: 1}
    with store.raw_reader() as con:
        latest = con.execute(f"""SELECT message_count FROM {TIMELINE} WHERE session_id = 7
                                 ORDER BY first_seen_at DESC LIMIT 1""").fetchone()[0]
        stale = con.execute(f"SELECT index_stale, index_age_seconds FROM {HEALTH} ORDER BY collected_at"
                            ).fetchall()
    assert latest == 9 and stale == [(True, 7200.0), (False, None)]

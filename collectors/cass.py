"""coding_agent_session_search: `cass health --json`, `cass stats --json`, `cass timeline --json`.

Health is the data-freshness signal (is the session index stale, rebuilding, stalled, quarantining),
so its freshness fields get real columns; stats is the archive's size and spread; the timeline lists
recent sessions. cass exits non-zero when it is unhealthy, but a health payload is then exactly the
answer we want, so only its error envelope (`{"error": {...}}`) counts as a failure.

The timeline shape is reconstructed from cass's source (no golden file upstream): both the grouped
(`groups` map) and flat (`sessions` list) forms are read. Sessions change while they run, so a row
is keyed by a hash of its content: a grown session adds a new version, an unchanged one adds nothing.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any

from collectors.base import CollectContext, Collector, CollectResult
from collectors.cli_json import Fields, Problems, cap_rows, command_warnings, decode_json, dumps

HEALTH_COMMAND = "cass health --json"
STATS_COMMAND = "cass stats --json"
TIMELINE_COMMAND = "cass timeline --json --group-by none"
HEALTH_TABLE = "cass_health_snapshots"
STATS_TABLE = "cass_stats_snapshots"
TIMELINE_TABLE = "cass_timeline_sessions"
KNOWN_STATUSES = {"healthy", "not_initialized", "degraded", "rebuilding", "stalled", "unhealthy"}
# Controller telemetry (the md calls it internal): kilobytes per poll that no view reads.
_TELEMETRY = ("responsiveness", "parallel_wal_shadow", "runtime_optimizations", "policy_registry")


def error_envelope(value: Any, what: str) -> str | None:
    """cass prints `{"error": {code, kind, message, hint, retryable}}` on failure."""
    if isinstance(value, dict) and isinstance(value.get("error"), dict) and len(value) <= 2:
        e = value["error"]
        hint = f" (hint: {str(e.get('hint'))[:200]})" if e.get("hint") else ""
        retry = ", retryable" if e.get("retryable") is True else ""
        return f"{what}: cass error {e.get('kind', '?')} (code {e.get('code', '?')}{retry}): " \
               f"{str(e.get('message', ''))[:300]}{hint}"
    return None


def _load(text: str, what: str) -> tuple[dict[str, Any] | None, list[str]]:
    value, warnings = decode_json(text, what)
    if value is None:
        return None, warnings
    if (err := error_envelope(value, what)):
        return None, warnings + [err]
    if not isinstance(value, dict):
        return None, warnings + [f"{what}: expected a JSON object, got {type(value).__name__}"]
    return value, warnings


def _slim(value: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in value.items() if k not in _TELEMETRY}
    state = out.get("state")
    if isinstance(state, dict):
        out["state"] = {k: v for k, v in state.items() if k not in _TELEMETRY}
    return out


Rows = list[dict[str, Any]]


def parse_health(text: str, machine_id: str, collected_at: datetime, stamp) -> tuple[Rows, list[str]]:
    value, warnings = _load(text, "cass health")
    if value is None:
        return [], warnings
    if "status" not in value and "healthy" not in value:
        return [], warnings + [f"cass health: no `status`/`healthy` fields; not a health payload "
                               f"(keys: {', '.join(sorted(value)[:10])})"]
    problems = Problems("cass health")
    f = Fields(value, problems)
    status = f.str("status")
    if status is not None and status not in KNOWN_STATUSES:
        warnings.append(f"cass health: unknown status {status!r} (kept)")
    idx, db, st_db = f.sub("state.index"), f.sub("db"), f.sub("state.database")
    rb, sem, pend = f.sub("rebuild_progress"), f.sub("state.semantic"), f.sub("state.pending")
    q, rss = f.sub("ingest_quarantine"), f.sub("remote_source_sync")
    warn_list = [w for w in f.list("warnings") if isinstance(w, str)]
    err_list = [e for e in f.list("errors") if isinstance(e, str)]
    row = stamp(
        machine_id, collected_at=collected_at, status=status, healthy=f.bool("healthy"),
        health_level=f.str("health_level"), initialized=f.bool("initialized"),
        explanation=f.str("explanation"), recommended_action=f.str("recommended_action"),
        warnings_json=dumps(warn_list) if warn_list else None,
        errors_json=dumps(err_list) if err_list else None,
        latency_ms=f.num("latency_ms"), data_dir=f.str("data_dir"),
        db_exists=db.bool("exists") if db.obj else st_db.bool("exists"),
        db_opened=db.bool("opened") if db.obj else st_db.bool("opened"),
        db_conversations=db.int("conversations") if db.obj else st_db.int("conversations"),
        db_messages=db.int("messages") if db.obj else st_db.int("messages"),
        db_open_error=db.str("open_error") if db.obj else st_db.str("open_error"),
        index_exists=idx.bool("exists"), index_status=idx.str("status"), index_fresh=idx.bool("fresh"),
        index_stale=idx.bool("stale"), index_last_indexed_at=idx.ts("last_indexed_at"),
        index_age_seconds=idx.num("age_seconds"),
        index_stale_threshold_seconds=idx.num("stale_threshold_seconds"),
        index_documents=idx.int("documents"), index_rebuilding=idx.bool("rebuilding"),
        index_stalled=idx.bool("stalled"),
        pending_sessions=pend.int("sessions"), watch_active=pend.bool("watch_active"),
        rebuild_active=rb.bool("active"), rebuild_stalled=rb.bool("stalled"), rebuild_phase=rb.str("phase"),
        rebuild_processed_conversations=rb.int("processed_conversations"),
        rebuild_total_conversations=rb.int("total_conversations"),
        rebuild_completion_ratio=rb.num("completion_ratio"),
        rebuild_last_progress_at=rb.ts("last_progress_at"),
        semantic_status=sem.str("status"), semantic_available=sem.bool("available"),
        quarantined_conversations=q.int("quarantined_conversations"),
        quarantine_breaker_active=q.bool("circuit_breaker_active"),
        remote_sync_status=rss.str("status"), remote_sync_staleness=rss.str("sync_staleness"),
        remote_sync_gap_count=rss.int("sync_gap_count"),
        search_complete=f.bool("search_completeness.complete"),
        reported_at=f.ts("state._meta.timestamp"),
        raw_json=dumps(_slim(value)))
    return [row], warnings + problems.warnings()


def parse_stats(text: str, machine_id: str, collected_at: datetime, stamp) -> tuple[Rows, list[str]]:
    value, warnings = _load(text, "cass stats")
    if value is None:
        return [], warnings
    if "conversations" not in value and "messages" not in value:
        return [], warnings + [f"cass stats: no `conversations`/`messages`; not a stats payload "
                               f"(keys: {', '.join(sorted(value)[:10])})"]
    problems = Problems("cass stats")
    f = Fields(value, problems)
    rm = f.sub("raw_mirror")
    by_agent = {}
    for i, a in enumerate(f.list("by_agent")):
        af = Fields(a, problems, f"by_agent[{i}].")
        name, count = af.str("agent"), af.int("count")
        if name is not None:
            by_agent[name] = count
    row = stamp(
        machine_id, collected_at=collected_at,
        conversations=f.int("conversations"), messages=f.int("messages"),
        agent_count=len(by_agent), by_agent_json=dumps(by_agent) if by_agent else None,
        top_workspaces_json=f.json("top_workspaces"),
        oldest_at=f.ts("date_range.oldest"), newest_at=f.ts("date_range.newest"),
        db_path=f.str("db_path"),
        raw_mirror_initialized=rm.bool("initialized"), raw_mirror_total_bytes=rm.int("total_storage_bytes"),
        raw_mirror_manifest_count=rm.int("manifest_count"),
        raw_mirror_missing_blob_count=rm.int("missing_blob_count"),
        raw_mirror_invalid_manifest_count=rm.int("invalid_manifest_count"),
        raw_mirror_newest_capture_at=rm.epoch("newest_capture_at_ms", 1e-3),
        raw_json=dumps(value))
    return [row], warnings + problems.warnings()


def _content_hash(item: dict[str, Any]) -> str:
    return hashlib.sha256(dumps(item).encode()).hexdigest()[:24]


def parse_timeline(text: str, machine_id: str, collected_at: datetime, stamp,
                   max_rows: int = 200_000) -> tuple[list[dict[str, Any]], list[str]]:
    value, warnings = _load(text, "cass timeline")
    if value is None:
        return [], warnings
    problems = Problems("cass timeline")
    items: list[Any] = []
    if isinstance(value.get("sessions"), list):
        items = value["sessions"]
    elif isinstance(value.get("groups"), dict):
        for key in sorted(value["groups"]):  # a HashMap upstream: key order means nothing
            g = value["groups"][key]
            if isinstance(g, list):
                items.extend(g)
            else:
                problems.add(f"groups[{key!r}] should be an array of sessions")
    elif "total_sessions" not in value:
        return [], warnings + [f"cass timeline: neither `sessions` nor `groups`; not a timeline payload "
                               f"(keys: {', '.join(sorted(value)[:10])})"]
    rows: dict[tuple[str, int, str], dict[str, Any]] = {}
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            problems.add(f"session {i} should be an object")
            continue
        f = Fields(item, problems, f"session[{i}].")
        sid = f.int("id")
        if sid is None:
            problems.add(f"session[{i}] has no integer id")
            continue
        src = f.str("source_id") or "local"
        started, ended = f.epoch("started_at", 1e-3), f.epoch("ended_at", 1e-3)
        duration = f.num("duration_seconds")
        if duration is None and started and ended:
            duration = (ended - started).total_seconds()
        h = _content_hash(item)
        rows.setdefault((src, sid, h), stamp(
            machine_id, session_id=sid, cass_source_id=src, origin_kind=f.str("origin_kind"),
            origin_host=f.str("origin_host"), agent=f.str("agent"), title=f.str("title"),
            workspace=f.str("workspace"), started_at=started, ended_at=ended, duration_seconds=duration,
            message_count=f.int("message_count"), source_path=f.str("source_path"),
            first_seen_at=collected_at, content_hash=h, raw_json=dumps(item)))
    total = value.get("total_sessions")
    if isinstance(total, int) and not isinstance(total, bool) and total > len(items):
        warnings.append(f"cass timeline: reports {total} sessions but lists {len(items)}")
    warnings += problems.warnings()
    return cap_rows(list(rows.values()), max_rows, "cass timeline", warnings), warnings


class CassCollector(Collector):
    name = "cass"
    source_version = "1"
    schema_version = 1
    required_tool = "cass"

    async def collect(self, ctx: CollectContext) -> CollectResult:
        lim = ctx.limits
        result = CollectResult()
        health = await ctx.executor.run(HEALTH_COMMAND, timeout_s=lim.timeout_s, max_bytes=lim.max_bytes)
        rows, w = parse_health(health.text, ctx.machine_id, ctx.now, self.stamp)
        result.extend(HEALTH_TABLE, rows)
        # Non-zero is how cass says "unhealthy"; with a health payload in hand that is data, not a failure.
        ok_codes = range(256) if rows else (0,)
        result.warnings += command_warnings(health, "cass health", ok_exit_codes=ok_codes,
                                            payload_ok=bool(rows)) + w
        stats = await ctx.executor.run(STATS_COMMAND, timeout_s=lim.timeout_s, max_bytes=lim.max_bytes)
        rows, w = parse_stats(stats.text, ctx.machine_id, ctx.now, self.stamp)
        result.extend(STATS_TABLE, rows)
        result.warnings += command_warnings(stats, "cass stats", payload_ok=bool(rows)) + w
        if ctx.options.get("cass_timeline", True):
            tl = await ctx.executor.run(TIMELINE_COMMAND, timeout_s=lim.timeout_s, max_bytes=lim.max_bytes)
            rows, w = parse_timeline(tl.text, ctx.machine_id, ctx.now, self.stamp, lim.max_rows)
            result.extend(TIMELINE_TABLE, rows)
            result.warnings += command_warnings(tl, "cass timeline", payload_ok=bool(rows)) + w
        return result

"""rch (remote compilation helper): daemon and worker status, completed builds, Prometheus metrics.

- `rch status --json`: the `ApiResponse` envelope; the daemon facts are at `data.daemon.daemon.*`
  (double `daemon`, rch.md) and workers at `data.daemon.workers`. The docs' example JSON is stale
  and ignored. A failed envelope (daemon down) is still a snapshot row, with `success = false`.
- Completed builds: rchd's `--history-file` is JSONL, one `BuildRecord` per line, appended (and
  occasionally compacted by rewrite, i.e. a new inode). Paths come from ctx.options["rch_log_paths"]
  and are tailed by inode+offset. `recent_builds` in the status feeds the same table, so builds show
  up without any log path configured; both land on the same natural key.
- `/metrics` from rchd (127.0.0.1 only, default port 9100 per rch.md), fetched with `curl -sf` through the
  executor and reduced to the charted series; histogram buckets are dropped, `_sum`/`_count` kept.
"""

from __future__ import annotations

import json
import math
from datetime import datetime
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from collectors.base import CollectContext, Collector, CollectResult
from collectors.http_fetch import curl_get
from collectors.tail import (
    Budget,
    as_float,
    as_int,
    as_str,
    command_failure,
    dumps,
    extract_json,
    parse_json_lines,
    parse_ts,
    read_new_lines,
)

DEFAULT_METRICS_URL = "http://127.0.0.1:9100/metrics"
KNOWN_API_VERSION = "1."
KNOWN_STATUS_SCHEMA = "1."
_MAX_LINE_WARNINGS = 3

# Sample names kept from /metrics: what the build-farm charts draw. Everything else is dropped.
CHARTED = frozenset({
    "rch_build_queue_depth",
    "rch_builds_active",
    "rch_builds_total",
    "rch_build_duration_seconds_sum",
    "rch_build_duration_seconds_count",
    "rch_worker_status",
    "rch_worker_slots_total",
    "rch_worker_slots_available",
    "rch_circuit_state",
    "rch_circuit_trips_total",
    "rch_daemon_uptime_seconds",
    "rch_daemon_connections_active",
    "rch_local_fallback_reason_total",
    "rch_remediation_queue_depth",
    "rch_transfer_bytes_total",
})


def _obj(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[dict[str, Any]]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


# ---------- rch status --json ----------

Rows = list[dict[str, Any]]


def parse_status(payload: Any) -> tuple[dict[str, Any] | None, Rows, Rows, list[str]]:
    """Envelope -> (status row fields, worker row fields, build rows from recent_builds, warnings)."""
    warnings: list[str] = []
    if not isinstance(payload, dict) or "success" not in payload:
        return None, [], [], ["`rch status --json` is not an rch ApiResponse envelope (no `success`)"]
    api_version = as_str(payload.get("api_version"))
    if api_version is None or not api_version.startswith(KNOWN_API_VERSION):
        warnings.append(f"rch api_version {payload.get('api_version')!r} is not 1.x; parsed as 1.x, raw kept")
    success = payload.get("success") is True
    err = _obj(payload.get("error"))
    data = _obj(payload.get("data"))
    full = _obj(data.get("daemon"))
    # `data.daemon.daemon` per the code; tolerate a flattened daemon object too.
    info = _obj(full.get("daemon")) if isinstance(full.get("daemon"), dict) else full
    stats = _obj(full.get("stats"))
    saved = _obj(full.get("saved_time"))
    schema = as_str(data.get("schema_version"))
    if success and data and (schema is None or not schema.startswith(KNOWN_STATUS_SCHEMA)):
        warnings.append(f"rch status schema_version {data.get('schema_version')!r} is not 1.x; raw kept")
    if not success:
        warnings.append(f"rch status reported failure: {as_str(err.get('code')) or '?'}: "
                        f"{as_str(err.get('message')) or 'no message'}")
    alerts = _list(full.get("alerts"))
    status = {
        "reported_at": parse_ts(payload.get("timestamp")),
        "api_version": api_version,
        "status_schema": schema,
        "success": success,
        "error_code": as_str(err.get("code"))
        or (str(err["code"]) if as_int(err.get("code")) is not None else None),
        "error_message": as_str(err.get("message")),
        "posture": as_str(data.get("posture")),
        "daemon_pid": as_int(info.get("pid")),
        "daemon_version": as_str(info.get("version")),
        "uptime_secs": as_int(info.get("uptime_secs")),
        "daemon_started_at": parse_ts(info.get("started_at")),
        "workers_total": as_int(info.get("workers_total")),
        "workers_healthy": as_int(info.get("workers_healthy")),
        "slots_total": as_int(info.get("slots_total")),
        "slots_available": as_int(info.get("slots_available")),
        "active_builds": len(full["active_builds"]) if isinstance(full.get("active_builds"), list) else None,
        "queued_builds": len(full["queued_builds"]) if isinstance(full.get("queued_builds"), list) else None,
        "issues_count": len(full["issues"]) if isinstance(full.get("issues"), list) else None,
        "alerts_active": sum(1 for a in alerts if a.get("state", "active") == "active")
        if "alerts" in full else None,
        "total_builds": as_int(stats.get("total_builds")),
        "success_count": as_int(stats.get("success_count")),
        "failure_count": as_int(stats.get("failure_count")),
        "remote_count": as_int(stats.get("remote_count")),
        "local_count": as_int(stats.get("local_count")),
        "avg_duration_ms": as_float(stats.get("avg_duration_ms")),
        "time_saved_ms": as_int(saved.get("time_saved_ms")),
        "raw_json": dumps(payload),
    }
    workers: list[dict[str, Any]] = []
    seen: set[str] = set()
    for w in _list(full.get("workers")):
        wid = as_str(w.get("id"))
        if not wid or wid in seen:
            warnings.append(f"rch worker without a usable/unique `id` skipped: {dumps(w)[:80]}")
            continue
        seen.add(wid)
        hist = w.get("failure_history") if isinstance(w.get("failure_history"), list) else None
        workers.append({
            "worker_id": wid,
            "host": as_str(w.get("host")),
            "ssh_user": as_str(w.get("user")),
            "status": as_str(w.get("status")),
            "circuit_state": as_str(w.get("circuit_state")),
            "used_slots": as_int(w.get("used_slots")),
            "total_slots": as_int(w.get("total_slots")),
            "speed_score": as_float(w.get("speed_score")),
            "last_error": as_str(w.get("last_error")),
            "consecutive_failures": as_int(w.get("consecutive_failures")),
            "recovery_in_secs": as_int(w.get("recovery_in_secs")),
            "recent_checks": len(hist) if hist is not None else None,
            "recent_failures": sum(1 for h in hist if h is False) if hist is not None else None,
            "pressure_state": as_str(w.get("pressure_state")),
            "pressure_disk_free_ratio": as_float(w.get("pressure_disk_free_ratio")),
            "pressure_memory_pressure": as_float(w.get("pressure_memory_pressure")),
            "raw_json": dumps(w),
        })
    builds = []
    for b in _list(full.get("recent_builds")):
        row, _ = build_row(b)
        if row is not None:
            builds.append(row)
    return status, workers, builds, warnings


# ---------- build history JSONL ----------

def build_row(obj: dict[str, Any]) -> tuple[dict[str, Any] | None, str | None]:
    """One BuildRecord (history line or `recent_builds` entry) -> row fields, or (None, reason)."""
    build_id = as_int(obj.get("id"))
    if build_id is None:
        return None, f"no integer `id` (or beyond BIGINT): {obj.get('id')!r}"
    started = parse_ts(obj.get("started_at"))
    if started is None:
        return None, f"build {build_id}: unparseable `started_at` {obj.get('started_at')!r}"
    cancellation = obj.get("cancellation")
    return {
        "build_id": build_id,
        "started_at": started,
        "completed_at": parse_ts(obj.get("completed_at")),
        "project_id": as_str(obj.get("project_id")),
        "worker_id": as_str(obj.get("worker_id")),
        "command": as_str(obj.get("command")),
        "exit_code": as_int(obj.get("exit_code")),
        "duration_ms": as_int(obj.get("duration_ms")),
        "location": as_str(obj.get("location")).lower() if as_str(obj.get("location")) else None,
        "bytes_transferred": as_int(obj.get("bytes_transferred")),
        "cancelled": cancellation is not None if "cancellation" in obj else None,
        "raw_json": dumps(obj),
    }, None


def parse_build_lines(texts: list[str]) -> tuple[list[dict[str, Any]], list[str]]:
    return parse_json_lines(texts, build_row, "build", _MAX_LINE_WARNINGS)


# ---------- /metrics ----------

def parse_metrics(text: str, keep: frozenset[str] = CHARTED) -> tuple[list[dict[str, Any]], list[str]]:
    """Prometheus text -> [{metric, labels_json, value}] for the kept sample names (finite values only)."""
    out: dict[tuple[str, str], float] = {}
    try:
        for family in text_string_to_metric_families(text):
            for s in family.samples:
                if s.name not in keep:
                    continue
                v = float(s.value)
                if math.isnan(v) or math.isinf(v):
                    continue
                out[(s.name, json.dumps(dict(s.labels), sort_keys=True, separators=(",", ":")))] = v
    except (ValueError, TypeError, IndexError) as exc:
        # The parser is all-or-nothing past the bad line; what was read before it is kept.
        rows = [{"metric": m, "labels_json": lj, "value": v} for (m, lj), v in out.items()]
        return rows, [f"rch /metrics: unparseable exposition text "
                      f"({exc.__class__.__name__}: {str(exc)[:120]})"]
    return [{"metric": m, "labels_json": lj, "value": v} for (m, lj), v in out.items()], []


def log_paths(options: dict[str, Any]) -> tuple[list[str], list[str]]:
    raw = options.get("rch_log_paths", [])
    if isinstance(raw, str):
        raw = [raw]
    if not isinstance(raw, list):
        return [], [f"option rch_log_paths must be a list of paths, got {type(raw).__name__}"]
    paths = [p for p in raw if isinstance(p, str) and p.strip()]
    bad = len(raw) - len(paths)
    return list(dict.fromkeys(paths)), ([f"{bad} non-path entries in rch_log_paths ignored"] if bad else [])


class RchCollector(Collector):
    name = "rch"
    source_version = "1"
    schema_version = 1
    required_tool = "rch"

    async def collect(self, ctx: CollectContext) -> CollectResult:
        result = CollectResult()
        budget = Budget(ctx.limits.timeout_s)
        status_builds = await self._status(ctx, budget, result)
        result.cursor = await self._logs(ctx, budget, result)
        # A build seen in both the history file and `recent_builds` is one row: the log's, which
        # names the file it came from.
        logged = {(r["build_id"], r["started_at"]) for r in result.rows.get("rch_build_events", [])}
        result.extend("rch_build_events",
                      [b for b in status_builds if (b["build_id"], b["started_at"]) not in logged])
        await self._metrics(ctx, budget, result)
        return result

    async def _status(self, ctx: CollectContext, budget: Budget, result: CollectResult) -> Rows:
        """Status and worker rows into `result`; the `recent_builds` rows are returned for merging."""
        res = await ctx.executor.run("rch status --json", timeout_s=budget.remaining(),
                                     max_bytes=ctx.limits.max_bytes)
        payload, why = extract_json(res.text)
        fail = command_failure(res)
        if payload is None or res.timed_out or res.truncated:
            result.warnings.append(f"rch: {fail or f'`rch status --json`: {why}'}")
            return []
        if fail and not (isinstance(payload, dict) and payload.get("success") is False):
            result.warnings.append(f"rch: {fail}")  # a failed envelope explains itself below
        status, workers, builds, warns = parse_status(payload)
        result.warnings.extend(warns)
        if status is None:
            return []
        m, now = ctx.machine_id, ctx.now
        result.add("rch_status_snapshots", self.stamp(m, collected_at=now, **status))
        result.extend("rch_workers_snapshots", [self.stamp(m, collected_at=now, **w) for w in workers])
        return [self.stamp(m, log_path=None, **b) for b in builds]

    async def _logs(self, ctx: CollectContext, budget: Budget, result: CollectResult) -> dict[str, Any]:
        paths, warns = log_paths(ctx.options)
        result.warnings.extend(warns)
        prev = _obj(_obj(ctx.cursor).get("files"))
        files: dict[str, Any] = {}
        if not paths:
            return {"files": files}
        per_file = max(64 * 1024, ctx.limits.max_bytes // len(paths))
        for path in paths:
            if budget.exhausted():
                result.warnings.append(f"rch: time budget used up; {path} waits for next cycle")
                if path in prev:
                    files[path] = prev[path]
                continue
            read = await read_new_lines(ctx.executor, path, prev.get(path) if isinstance(prev.get(path), dict)
                                        else None, max_bytes=per_file, timeout_s=budget.remaining())
            result.warnings.extend(f"rch: {w}" for w in read.warnings)
            if read.status == "missing":
                result.warnings.append(f"rch: build history {path} does not exist")
                continue
            if read.cursor is not None:
                files[path] = read.cursor
            rows, bad = parse_build_lines([ln.text for ln in read.lines])
            result.warnings.extend(f"rch: {path}: {w}" for w in bad)
            result.extend("rch_build_events", [self.stamp(ctx.machine_id, log_path=path, **r) for r in rows])
        return {"files": files}

    async def _metrics(self, ctx: CollectContext, budget: Budget, result: CollectResult) -> None:
        url = ctx.options.get("rch_metrics_url", DEFAULT_METRICS_URL)
        if not url:
            return  # metrics explicitly disabled for this machine
        if not isinstance(url, str):
            result.warnings.append(f"rch: option rch_metrics_url must be a string, got {type(url).__name__}")
            return
        got = await curl_get(ctx.executor, url, budget=budget, max_bytes=ctx.limits.max_bytes)
        if got.text is None:
            result.warnings.append(f"rch: /metrics: {got.error}")
            return
        samples, warns = parse_metrics(got.text)
        result.warnings.extend(warns)
        if not samples and not warns:
            result.warnings.append(f"rch: {url} returned no rch_* series")
        ts: datetime = ctx.now
        result.extend("rch_metrics", [self.stamp(ctx.machine_id, ts=ts, **s) for s in samples])

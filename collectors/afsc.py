"""afsc (automated_flywheel_setup_checker): did the machine's tool installers pass their last check?

`status --format json` prints the most recent results file: `{results: [ResultEntry], summary:
RunSummaryEntry|null, file}`, or `{"status": "no_runs", ...}` before the first run. Each collection
keeps one snapshot row (so "no runs yet" and "all passed" are both visible), and each installer
result as an event keyed by (installer, timestamp), so re-reading the same results file adds nothing.
"""

from __future__ import annotations

from typing import Any

from collectors.base import CollectContext, Collector, CollectResult
from collectors.tail import as_bool, as_float, as_int, as_str, command_failure, dumps, extract_json, parse_ts

AFSC_COMMAND = "automated_flywheel_setup_checker status --format json"


def _obj(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def parse_status(payload: Any) -> tuple[dict[str, Any] | None, list[dict[str, Any]], list[str]]:
    """status JSON -> (snapshot row fields, installer result rows, warnings)."""
    if not isinstance(payload, dict):
        return None, [], [f"afsc status is {type(payload).__name__}, expected a JSON object"]
    if payload.get("status") == "no_runs":
        return {"status": "no_runs", "raw_json": dumps(payload)}, [], []
    if "results" not in payload and "summary" not in payload:
        return None, [], ["afsc status has neither `results` nor `summary` nor status=no_runs"]
    warnings: list[str] = []
    summary = _obj(payload.get("summary"))
    run_id = as_str(summary.get("run_id"))
    raw_results = payload.get("results")
    if raw_results is not None and not isinstance(raw_results, list):
        warnings.append(f"afsc `results` is {type(raw_results).__name__}, expected a list")
        raw_results = []
    results: list[dict[str, Any]] = []
    seen: set[tuple[str, Any]] = set()
    bad = 0
    for r in raw_results or []:
        name = as_str(r.get("installer_name")) if isinstance(r, dict) else None
        ts = parse_ts(r.get("timestamp")) if isinstance(r, dict) else None
        if not name or ts is None or (name, ts) in seen:
            bad += 1
            continue
        seen.add((name, ts))
        ec = _obj(r.get("error_classification"))
        results.append({
            "installer_name": name,
            "ts": ts,
            "run_id": run_id,
            "status": (as_str(r.get("status")) or "").lower() or None,
            "duration_ms": as_int(r.get("duration_ms")),
            "exit_code": as_int(r.get("exit_code")),
            "error_category": as_str(ec.get("category")),
            "error_severity": as_str(ec.get("severity")),
            "retryable": as_bool(ec.get("retryable")),
            "error_confidence": as_float(ec.get("confidence")),
            "stderr_excerpt": as_str(r.get("stderr_excerpt")),
            "retry_count": as_int(r.get("retry_count")),
            "sha256_verified": as_bool(r.get("sha256_verified")),
            "raw_json": dumps(r),
        })
    if bad:
        warnings.append(f"{bad} afsc result(s) without installer_name/timestamp (or duplicated) skipped")

    def count(status: str) -> int:
        return sum(1 for r in results if r["status"] == status)

    snap = {
        "status": "ok",
        "run_id": run_id,
        "results_file": as_str(payload.get("file")),
        # The summary is the run's own count; without one, count what we can see.
        "total": as_int(summary.get("total")) if "total" in summary else len(results),
        "passed": as_int(summary.get("passed")) if "passed" in summary else count("passed"),
        "failed": as_int(summary.get("failed")) if "failed" in summary else count("failed"),
        "skipped": as_int(summary.get("skipped")) if "skipped" in summary else count("skipped"),
        "timed_out": count("timedout"),
        "duration_total_ms": as_int(summary.get("duration_total_ms")),
        "run_started_at": parse_ts(summary.get("timestamp_start")),
        "run_ended_at": parse_ts(summary.get("timestamp_end")),
        "failed_installers": sorted({r["installer_name"] for r in results
                                     if r["status"] in ("failed", "timedout")}),
        "raw_json": dumps(payload),
    }
    return snap, results, warnings


class AfscCollector(Collector):
    name = "afsc"
    source_version = "1"
    schema_version = 1
    required_tool = "automated_flywheel_setup_checker"

    async def collect(self, ctx: CollectContext) -> CollectResult:
        result = CollectResult()
        res = await ctx.executor.run(AFSC_COMMAND, timeout_s=ctx.limits.timeout_s,
                                     max_bytes=ctx.limits.max_bytes)
        fail = command_failure(res)
        payload, why = extract_json(res.text)
        if fail:
            result.warnings.append(f"afsc: {fail}")
        if payload is None or res.timed_out or res.truncated:
            if not fail:
                result.warnings.append(f"afsc: `{AFSC_COMMAND}`: {why}")
            return result
        snap, results, warns = parse_status(payload)
        result.warnings.extend(warns)
        if snap is None:
            return result
        m = ctx.machine_id
        result.add("afsc_status_snapshots", self.stamp(m, collected_at=ctx.now, **snap))
        result.extend("afsc_installer_results", [self.stamp(m, **r) for r in results])
        return result

"""pt (process_triage): processes an agent fleet left behind, from `pt robot plan --format json`.

`pt robot` is `pt agent` (a clap alias). The printed document is `run_agent_plan`'s `plan_output`
(pt.md; the README's plan example is a different internal struct). Exit code 1 means "plan ready,
candidates exist" and is the normal answer, not an error; 0 means nothing to do. The plan is
read-only: it never acts unless `--yes` is given, which we never pass.
"""

from __future__ import annotations

from typing import Any

from collectors.base import CollectContext, Collector, CollectResult
from collectors.tail import as_bool, as_float, as_int, as_str, command_failure, dumps, extract_json, parse_ts

PT_COMMAND = "pt robot plan --format json"
OK_EXIT_CODES = (0, 1)  # 0 clean, 1 plan ready
KNOWN_SCHEMA_MAJOR = "1."
EXIT_MEANINGS = {
    2: "actions ok", 3: "partial failure", 4: "policy blocked", 5: "goal unreachable", 6: "interrupted",
    10: "bad arguments", 11: "capability missing", 12: "permission denied", 13: "version mismatch",
    14: "lock held", 15: "session error", 16: "identity error", 20: "internal error", 21: "io error",
    22: "timeout",
}


def _obj(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def parse_plan(payload: Any) -> tuple[dict[str, Any] | None, list[dict[str, Any]], list[str]]:
    """plan_output -> (plan row fields, finding row fields per candidate, warnings)."""
    if not isinstance(payload, dict):
        return None, [], [f"pt plan is {type(payload).__name__}, expected a JSON object"]
    warnings: list[str] = []
    schema = as_str(payload.get("schema_version"))
    if schema is None or not schema.startswith(KNOWN_SCHEMA_MAJOR):
        warnings.append(f"pt schema_version {payload.get('schema_version')!r} is not 1.x; "
                        "parsed as 1.x, raw kept")
    if "candidates" not in payload and "summary" not in payload:
        warnings.append("pt output has neither `candidates` nor `summary` (a --brief/--minimal shape?)")
    summary = _obj(payload.get("summary"))
    recs = _obj(payload.get("recommendations"))
    host = _obj(payload.get("host"))
    session = as_str(payload.get("session_id"))
    raw_candidates = payload.get("candidates")
    if raw_candidates is not None and not isinstance(raw_candidates, list):
        warnings.append(f"pt `candidates` is {type(raw_candidates).__name__}, expected a list")
        raw_candidates = []
    findings: list[dict[str, Any]] = []
    seen: set[int] = set()
    bad = 0
    for c in raw_candidates or []:
        pid = as_int(c.get("pid")) if isinstance(c, dict) else None
        if pid is None or pid in seen:
            bad += 1
            continue
        seen.add(pid)
        post = _obj(c.get("posterior"))
        blast = _obj(c.get("blast_radius"))
        sup = _obj(c.get("supervisor"))
        classification = as_str(c.get("classification")) or as_str(c.get("type"))
        findings.append({
            "pid": pid,
            "session_id": session,
            "start_id": as_str(c.get("start_id")),
            "ppid": as_int(c.get("ppid")),
            "username": as_str(c.get("user")),
            "command": as_str(c.get("command")),
            "command_short": as_str(c.get("command_short")),
            "state": as_str(c.get("state")),
            "classification": classification,
            "score": as_int(c.get("score")),
            "confidence": as_str(c.get("confidence")),
            "recommended_action": as_str(c.get("recommended_action"))
            or (as_str(c.get("recommendation")) or "").lower() or None,
            "action_rationale": as_str(c.get("action_rationale")),
            "age_seconds": as_int(c.get("age_seconds")),
            "memory_mb": as_float(c.get("memory_mb")),
            "cpu_percent": as_float(c.get("cpu_percent")),
            "p_abandoned": as_float(post.get("abandoned")),
            "p_zombie": as_float(post.get("zombie")),
            "policy_blocked": as_bool(c.get("policy_blocked")),
            # The code emits a string; the spec says an object. Keep whichever text we can.
            "reversibility": as_str(c.get("reversibility"))
            or (dumps(c["reversibility"]) if isinstance(c.get("reversibility"), dict) else None),
            "risk_level": as_str(blast.get("risk_level")),
            "supervisor_type": as_str(sup.get("type")),
            "raw_json": dumps(c),
        })
    if bad:
        warnings.append(f"{bad} pt candidate(s) without a usable/unique integer `pid` skipped")
    plan_raw = {k: v for k, v in payload.items() if k != "candidates"}
    plan = {
        "pt_version": as_str(payload.get("pt_version")),
        "plan_schema": schema,
        "session_id": session,
        "generated_at": parse_ts(payload.get("generated_at")) or parse_ts(payload.get("timestamp")),
        "total_processes_scanned": as_int(summary.get("total_processes_scanned")),
        "candidates_returned": as_int(summary.get("candidates_returned"))
        if "candidates_returned" in summary else len(findings),
        "kill_recommendations": as_int(summary.get("kill_recommendations")),
        "review_recommendations": as_int(summary.get("review_recommendations")),
        "policy_blocked": as_int(summary.get("policy_blocked")),
        "expected_memory_freed_gb": as_float(recs.get("expected_memory_freed_gb")),
        "memory_total_gb": as_float(host.get("memory_total_gb")),
        "memory_used_gb": as_float(host.get("memory_used_gb")),
        "raw_json": dumps(plan_raw),
    }
    return plan, findings, warnings


class PtCollector(Collector):
    name = "pt"
    source_version = "1"
    schema_version = 1
    required_tool = "pt"

    async def collect(self, ctx: CollectContext) -> CollectResult:
        result = CollectResult()
        res = await ctx.executor.run(PT_COMMAND, timeout_s=ctx.limits.timeout_s,
                                     max_bytes=ctx.limits.max_bytes)
        fail = command_failure(res, ok_codes=OK_EXIT_CODES)
        if fail and res.exit_code in EXIT_MEANINGS:
            fail += f" ({EXIT_MEANINGS[res.exit_code]})"
        payload, why = extract_json(res.text)
        if fail:
            result.warnings.append(f"pt: {fail}")
        if payload is None or res.timed_out or res.truncated:
            if not fail:
                result.warnings.append(f"pt: `{PT_COMMAND}`: {why}")
            return result
        plan, findings, warns = parse_plan(payload)
        result.warnings.extend(warns)
        if plan is None:
            return result
        m, now = ctx.machine_id, ctx.now
        result.add("pt_plan_snapshots", self.stamp(m, collected_at=now, exit_code=res.exit_code, **plan))
        result.extend("pt_findings", [self.stamp(m, collected_at=now, **f) for f in findings])
        return result

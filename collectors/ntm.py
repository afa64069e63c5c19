"""Named Tmux Manager: `ntm --robot-snapshot` (per agent pane), else `--robot-status` (per session).

The snapshot is the only surface with per-pane detail (agent type, state, context use), so it is
asked first; an ntm too old to know the flag gets `--robot-status`, whose session-level rows keep
the cockpit's agent counts alive. Payloads are recognised by `schema_id`, because ntm's
`schema_version` has changed meaning between releases and its design docs describe shapes the
code does not emit.

One table for both: agent rows carry the pane id, session-level rows have pane '' (a session with
no agents still exists, and status knows only sessions).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from collectors.base import CollectContext, Collector, CollectResult
from collectors.cli_json import Fields, Problems, cap_rows, command_warnings, decode_json, dumps

SNAPSHOT_COMMAND = "ntm --robot-snapshot"
STATUS_COMMAND = "ntm --robot-status"
TABLE = "ntm_sessions_snapshot"
SNAPSHOT_SCHEMA = "ntm:robot:snapshot:v1"
STATUS_SCHEMA = "ntm:robot:status:v1"
# Error codes after which asking `--robot-status` instead can help.
_FALLBACK_CODES = {"INVALID_FLAG", "UNKNOWN_FLAG", "NOT_IMPLEMENTED"}
# Session-level rows carry every agent column as NULL, so all rows of a batch have the same columns.
_NO_AGENT = dict.fromkeys(("agent_type", "variant", "type_confidence", "state", "last_output_age_sec",
                           "output_tail_lines", "context_pct", "current_bead", "pending_mail"))


def error_message(value: dict[str, Any]) -> str:
    se = value.get("structured_error") if isinstance(value.get("structured_error"), dict) else {}
    code = value.get("error_code") or se.get("code") or "?"
    msg = value.get("error") or se.get("message") or "no message"
    hint = value.get("hint") or se.get("recovery_hint")
    return f"{code}: {str(msg)[:300]}" + (f" (hint: {str(hint)[:200]})" if hint else "")


def _kind(value: dict[str, Any], warnings: list[str], what: str) -> str | None:
    sid = value.get("schema_id")
    if sid == SNAPSHOT_SCHEMA:
        return "snapshot"
    if sid == STATUS_SCHEMA:
        return "status"
    sessions = value.get("sessions")
    has_agents = isinstance(sessions, list) and any(isinstance(s, dict) and "agents" in s for s in sessions)
    guess = "snapshot" if has_agents else "status" if isinstance(sessions, list) else None
    if isinstance(sid, str) and sid.startswith("ntm:robot:"):
        warnings.append(f"{what}: unknown schema_id {sid!r}; read as {guess or 'nothing'} by shape, "
                        "raw_json kept")
    elif guess:
        warnings.append(f"{what}: no schema_id; read as {guess} by shape")
    else:
        warnings.append(f"{what}: not an ntm robot status/snapshot payload (schema_id {sid!r})")
    return guess


def parse_robot(text: str, machine_id: str, collected_at: datetime, stamp, what: str = "ntm",
                max_rows: int = 200_000) -> tuple[list[dict[str, Any]], list[str], str | None]:
    """(rows, warnings, error code if ntm answered with its error envelope, or 'NO_JSON')."""
    value, warnings = decode_json(text, what)
    if value is None:
        return [], warnings, "NO_JSON"
    if not isinstance(value, dict):
        return [], warnings + [f"{what}: expected a JSON object, got {type(value).__name__}"], "NO_JSON"
    if value.get("success") is False or ("error_code" in value and "sessions" not in value):
        code = str(value.get("error_code") or "ERROR")
        return [], warnings + [f"{what}: ntm reported an error: {error_message(value)}"], code
    kind = _kind(value, warnings, what)
    if kind is None:
        return [], warnings, "UNKNOWN_SCHEMA"
    problems = Problems(what)
    top = Fields(value, problems)
    reported_at = top.ts("ts") if kind == "snapshot" else top.ts("generated_at")
    reported_at = reported_at or top.ts("timestamp")
    common = {"collected_at": collected_at, "schema_id": top.str("schema_id"),
              "ntm_schema_version": top.str("schema_version"), "reported_at": reported_at}
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    for i, s in enumerate(top.list("sessions")):
        if not isinstance(s, dict):
            problems.add(f"sessions[{i}] should be an object")
            continue
        sf = Fields(s, problems, f"sessions[{i}].")
        session = sf.str("name")
        if not session:
            problems.add(f"sessions[{i}] has no name")
            continue
        agents = sf.list("agents")
        session_cols = {"session": session, "attached": sf.bool("attached"),
                        "session_agent_count": sf.int("agent_count") if kind == "status" else len(agents),
                        "session_health_status": sf.str("health.status"),
                        "session_health_reason": sf.str("health.reason")}
        if kind == "status" or not agents:
            raw = {k: v for k, v in s.items() if k != "agents"}
            rows.setdefault((session, ""), stamp(machine_id, **common, **session_cols, pane="",
                                                 row_kind="session", **_NO_AGENT, raw_json=dumps(raw)))
            continue
        for j, a in enumerate(agents):
            if not isinstance(a, dict):
                problems.add(f"sessions[{i}].agents[{j}] should be an object")
                continue
            af = Fields(a, problems, f"sessions[{i}].agents[{j}].")
            pane = af.str("pane")
            if pane is None:
                pane_idx = af.int("pane_idx")
                pane = str(pane_idx) if pane_idx is not None else f"#{j}"
            age = af.int("last_output_age_sec")
            rows.setdefault((session, pane), stamp(
                machine_id, **common, **session_cols, pane=pane, row_kind="agent",
                agent_type=af.str("type"), variant=af.str("variant"),
                type_confidence=af.num("type_confidence"),
                state=af.str("state"), last_output_age_sec=age if age is not None and age >= 0 else None,
                output_tail_lines=af.int("output_tail_lines"), context_pct=af.num("context_percent"),
                current_bead=af.str("current_bead"), pending_mail=af.int("pending_mail"),
                raw_json=dumps(a)))
    warnings += problems.warnings()
    return cap_rows(list(rows.values()), max_rows, what, warnings), warnings, None


class NtmCollector(Collector):
    name = "ntm"
    source_version = "1"
    schema_version = 1
    required_tool = "ntm"

    async def collect(self, ctx: CollectContext) -> CollectResult:
        lim = ctx.limits
        res = await ctx.executor.run(SNAPSHOT_COMMAND, timeout_s=lim.timeout_s, max_bytes=lim.max_bytes)
        rows, warnings, code = parse_robot(res.text, ctx.machine_id, ctx.now, self.stamp,
                                           "ntm --robot-snapshot", lim.max_rows)
        # ntm exits 1 with its error envelope; that envelope already says more than the exit code.
        envelope = code not in (None, "NO_JSON")
        warnings = command_warnings(res, "ntm --robot-snapshot", payload_ok=bool(rows),
                                    ok_exit_codes=range(256) if envelope else (0,)) + warnings
        if code in _FALLBACK_CODES or (code in ("NO_JSON", "UNKNOWN_SCHEMA") and not res.timed_out):
            res2 = await ctx.executor.run(STATUS_COMMAND, timeout_s=lim.timeout_s, max_bytes=lim.max_bytes)
            rows2, warnings2, code2 = parse_robot(res2.text, ctx.machine_id, ctx.now, self.stamp,
                                                  "ntm --robot-status", lim.max_rows)
            if rows2 or code2 is None:
                rows = rows2
                warnings = [f"ntm --robot-snapshot unusable, used --robot-status (no per-pane detail): "
                            f"{'; '.join(warnings)[:500]}"] + warnings2
            else:
                warnings += warnings2
        return CollectResult(rows={TABLE: rows} if rows else {}, warnings=warnings)

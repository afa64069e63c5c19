"""coding_agent_usage_tracker: `caut usage --json` (envelope `caut.v1`) into `account_usage_snapshots`.

One row per account and rate window (primary = session window, secondary = weekly, tertiary =
model tier). The account is keyed by `cli_json.account_key` (provider + email when known) so the
same subscription seen from several machines, or by caam as well, lines up in a view.

Only the real camelCase `caut.v1` shape is read. ntm ships a snake_case caut mock that caut never
prints; such a payload gets a warning, not a guess.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from collectors.base import CollectContext, Collector, CollectResult
from collectors.cli_json import (
    Fields,
    Problems,
    account_key,
    cap_rows,
    command_warnings,
    decode_json,
    dumps,
    looks_like_email,
    norm_provider,
)

COMMAND = "caut usage --json"
TABLE = "account_usage_snapshots"
SCHEMA_VERSION = "caut.v1"
WINDOWS = ("primary", "secondary", "tertiary")


def _errors(env: Fields) -> list[str]:
    details = [d for d in env.list("errorDetails") if isinstance(d, dict)]
    if details:
        out = []
        for d in details:
            retry = " (retryable)" if d.get("retryable") is True else ""
            out.append(f"caut: {d.get('provider', '?')} failed [{d.get('errorCode', '?')}]{retry}: "
                       f"{str(d.get('finalError', ''))[:300]}")
        return out
    return [f"caut: {str(e)[:300]}" for e in env.list("errors")]


def parse_usage(text: str, machine_id: str, collected_at: datetime, stamp,
                max_rows: int = 200_000) -> tuple[list[dict[str, Any]], list[str]]:
    value, warnings = decode_json(text, "caut usage")
    if value is None:
        return [], warnings
    if not isinstance(value, dict):
        return [], warnings + [f"caut usage: expected a JSON object envelope, got {type(value).__name__}"]
    problems = Problems("caut usage")
    env = Fields(value, problems)
    schema = value.get("schemaVersion", value.get("schema_version"))
    if schema != SCHEMA_VERSION:
        warnings.append(f"caut usage: unknown schemaVersion {schema!r} (expected {SCHEMA_VERSION!r}); "
                        "parsed best-effort, raw_json kept")
    if value.get("command") not in (None, "usage"):
        warnings.append(f"caut usage: envelope command is {value.get('command')!r}, expected 'usage'")
    warnings += _errors(env)
    data = value.get("data")
    if not isinstance(data, list):
        hint = " (snake_case `data.payloads` is ntm's mock, not caut)" if isinstance(data, dict) else ""
        return [], warnings + [f"caut usage: `data` should be an array of provider payloads, got "
                               f"{type(data).__name__}{hint}"] + problems.warnings()
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    dupes = 0
    for i, payload in enumerate(data):
        if not isinstance(payload, dict):
            problems.add(f"data[{i}] should be an object")
            continue
        p = Fields(payload, problems, f"data[{i}].")
        provider = norm_provider(p.str("provider"))
        usage = p.sub("usage")
        ident = usage.sub("identity")
        email = ident.str("accountEmail")
        label = p.str("account")
        key = account_key(provider, machine_id, email=email, label=label)
        credits = p.num("credits.remaining")
        if credits is None:
            credits = p.num("openaiDashboard.creditsRemaining")
        common = {
            "provider": provider, "account_key": key,
            "account_email": (email or (label if looks_like_email(label) else None)),
            "account_label": label, "account_id": None,
            "organization": ident.str("accountOrganization"),
            "plan_type": p.str("openaiDashboard.accountPlan"),
            "login_method": ident.str("loginMethod"),
            "reported_at": usage.ts("updatedAt"),
            "fetch_method": p.str("source"),
            "provider_status": p.str("status.indicator"),
            "credits_remaining": credits,
            "auth_warning": p.str("authWarning"),
            "raw_json": dumps(payload),
        }
        windows = []
        for name in WINDOWS:
            w = usage.sub(name)
            if not w.obj:
                continue
            windows.append({"window_name": name, "used_pct": w.num("usedPercent"),
                            "window_minutes": w.int("windowMinutes"), "resets_at": w.ts("resetsAt"),
                            "reset_description": w.str("resetDescription")})
        if not windows:  # the account is still worth a row: it exists and reported nothing
            windows.append({"window_name": "none", "used_pct": None, "window_minutes": None,
                            "resets_at": None, "reset_description": None})
        for w in windows:
            k = (key, w["window_name"])
            if k in rows:
                dupes += 1
                continue
            rows[k] = stamp(machine_id, collected_at=collected_at, **common, **w)
    if dupes:
        warnings.append(f"caut usage: {dupes} duplicate account/window entries ignored")
    warnings += problems.warnings()
    return cap_rows(list(rows.values()), max_rows, "caut", warnings), warnings


class CautCollector(Collector):
    name = "caut"
    source_version = "1"
    schema_version = 1
    required_tool = "caut"

    async def collect(self, ctx: CollectContext) -> CollectResult:
        res = await ctx.executor.run(COMMAND, timeout_s=ctx.limits.timeout_s, max_bytes=ctx.limits.max_bytes)
        rows, warnings = parse_usage(res.text, ctx.machine_id, ctx.now, self.stamp, ctx.limits.max_rows)
        result = CollectResult(rows={TABLE: rows} if rows else {})
        result.warnings = command_warnings(res, "caut usage", payload_ok=bool(rows)) + warnings
        return result

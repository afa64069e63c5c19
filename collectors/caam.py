"""coding_agent_account_manager: `caam status --json` and `caam limits --format json`.

`limits` feeds `account_usage_snapshots` (the same table caut fills, source "caam") so a view can
put both tools' figures for one account side by side; `status` feeds `caam_status_snapshots`
(who is logged in where, token health, cooldowns). Status runs first because it knows the email
behind a vault profile name, which is what makes the account key global instead of local.

caam is Go: zero `time.Time` values print as 0001-01-01 (read as unset) and durations print as
integer nanoseconds. Its JSON is pretty-printed, and in JSON mode per-provider errors are dropped
silently, so an empty array is a normal answer, not an error.
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

STATUS_COMMAND = "caam status --json"
LIMITS_COMMAND = "caam limits --format json"
USAGE_TABLE = "account_usage_snapshots"
STATUS_TABLE = "caam_status_snapshots"
WINDOWS = (("primary", "primary_window"), ("secondary", "secondary_window"), ("tertiary", "tertiary_window"))
HEALTH = {"healthy", "warning", "critical", "unknown"}


def parse_status(text: str, machine_id: str, collected_at: datetime, stamp
                 ) -> tuple[list[dict[str, Any]], dict[tuple[str, str], dict[str, str | None]], list[str]]:
    """Rows for caam_status_snapshots, plus (tool, active profile) → identity for keying limits rows."""
    value, warnings = decode_json(text, "caam status")
    if value is None:
        return [], {}, warnings
    if not isinstance(value, dict) or not isinstance(value.get("tools"), list):
        got = type(value.get("tools")).__name__ if isinstance(value, dict) else type(value).__name__
        return [], {}, warnings + [f"caam status: expected an object with a `tools` array, got {got}"]
    problems = Problems("caam status")
    top = Fields(value, problems)
    all_warnings = [w for w in top.list("warnings") if isinstance(w, str)]
    recommendations = [r for r in top.list("recommendations") if isinstance(r, str)]
    rows: dict[str, dict[str, Any]] = {}
    identities: dict[tuple[str, str], dict[str, str | None]] = {}
    for i, t in enumerate(value["tools"]):
        if not isinstance(t, dict):
            problems.add(f"tools[{i}] should be an object")
            continue
        f = Fields(t, problems, f"tools[{i}].")
        tool = f.str("tool")
        if not tool:
            problems.add(f"tools[{i}] has no tool name")
            continue
        tool = norm_provider(tool)
        if tool in rows:
            continue
        profile = f.str("active_profile") or None
        ident = f.sub("identity")
        health = f.sub("health")
        email, acct = ident.str("email"), ident.str("account_id")
        status = health.str("status")
        if status is not None and status not in HEALTH:
            problems.add(f"tools[{i}].health.status has unknown value {status!r} (kept)")
        # caam's warnings read "tool/profile: <icon> <Status> - <reasons>"; unprefixed ones concern everyone.
        notices = [w for w in all_warnings if w.startswith(f"{tool}/") or "/" not in w.split(":", 1)[0]]
        logged_in = f.bool("logged_in")
        key = account_key(tool, machine_id, email=email, account_id=acct, label=profile) \
            if logged_in and (email or acct or profile) else None
        rows[tool] = stamp(
            machine_id, collected_at=collected_at, tool=tool, logged_in=logged_in, active_profile=profile,
            error=f.str("error"), health_status=status, health_reason=health.str("reason"),
            health_expires_at=health.ts("expires_at"), health_error_count=health.int("error_count"),
            cooldown_remaining=health.str("cooldown_remaining"),
            identity_email=email, identity_organization=ident.str("organization"),
            identity_plan_type=ident.str("plan_type"), identity_account_id=acct,
            identity_expires_at=ident.ts("expires_at"), account_key=key,
            notices_json=dumps(notices) if notices else None,
            recommendations_json=dumps(recommendations) if recommendations else None,
            raw_json=dumps(t))
        if profile:
            identities[(tool, profile)] = {"email": email, "account_id": acct}
    return list(rows.values()), identities, warnings + problems.warnings()


def _window(w: Fields) -> dict[str, Any]:
    util = w.num("utilization")
    # The fraction is the precise figure; the integer percent is its rounded twin.
    pct = round(util * 100.0, 6) if util is not None else w.num("used_percent")
    dur_ns = w.int("window_duration")
    minutes = None
    if dur_ns is not None and dur_ns > 0:
        minutes = round(dur_ns / 60e9)
    return {"used_pct": pct, "window_minutes": minutes, "resets_at": w.ts("resets_at")}


def parse_limits(text: str, machine_id: str, collected_at: datetime, stamp,
                 identities: dict[tuple[str, str], dict[str, str | None]] | None = None,
                 max_rows: int = 200_000) -> tuple[list[dict[str, Any]], list[str]]:
    value, warnings = decode_json(text, "caam limits")
    if value is None:
        return [], warnings
    if isinstance(value, dict) and "provider" in value:  # `--best` prints one object
        value = [value]
    if not isinstance(value, list):
        return [], warnings + [f"caam limits: expected a JSON array of profiles, got {type(value).__name__}"]
    identities = identities or {}
    problems = Problems("caam limits")
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    dupes = 0
    for i, pu in enumerate(value):
        if not isinstance(pu, dict):
            problems.add(f"[{i}] should be an object")
            continue
        f = Fields(pu, problems, f"[{i}].")
        usage = f.sub("usage")
        provider = norm_provider(f.str("provider") or usage.str("provider"))
        profile = f.str("profile_name") or usage.str("profile_name")
        ident = identities.get((provider, profile or ""), {})
        email = ident.get("email") or (profile if looks_like_email(profile) else None)
        acct = ident.get("account_id")
        key = account_key(provider, machine_id, email=email, account_id=acct, label=profile)
        common = {
            "provider": provider, "account_key": key, "account_email": email, "account_label": profile,
            "account_id": acct, "organization": None,
            "plan_type": usage.str("plan_type"), "rate_limit_tier": usage.str("rate_limit_tier"),
            "reported_at": usage.ts("fetched_at"), "error": usage.str("error"),
            "credits_remaining": usage.num("credits.balance"),
            "burn_tokens_per_hour": usage.num("burn_rate.tokens_per_hour"),
            "burn_pct_per_hour": usage.num("burn_rate.percent_per_hour"),
            "estimated_depletion_at": usage.ts("estimated_depletion"),
            "depletion_confidence": usage.num("depletion_confidence"),
            "raw_json": dumps(pu),
        }
        windows: list[dict[str, Any]] = []
        for name, field in WINDOWS:
            w = usage.sub(field)
            if w.obj:
                windows.append({"window_name": name, **_window(w)})
        models = usage.dict("model_windows") or {}
        for model in sorted(models):  # model names contain dots, so no dotted-path lookup here
            mw = models[model]
            if not isinstance(mw, dict):
                problems.add(f"[{i}].usage.model_windows.{model} should be an object")
                continue
            windows.append({"window_name": f"model:{model}",
                            **_window(Fields(mw, problems, f"[{i}].usage.model_windows.{model}."))})
        if not windows:
            windows.append({"window_name": "none", "used_pct": None, "window_minutes": None,
                            "resets_at": None})
        for w in windows:
            k = (key, w["window_name"])
            if k in rows:
                dupes += 1
                continue
            rows[k] = stamp(machine_id, collected_at=collected_at, **common, **w)
    if dupes:
        warnings.append(f"caam limits: {dupes} duplicate profile/window entries ignored")
    warnings += problems.warnings()
    return cap_rows(list(rows.values()), max_rows, "caam limits", warnings), warnings


class CaamCollector(Collector):
    name = "caam"
    source_version = "1"
    schema_version = 1
    required_tool = "caam"

    async def collect(self, ctx: CollectContext) -> CollectResult:
        lim = ctx.limits
        status_res = await ctx.executor.run(STATUS_COMMAND, timeout_s=lim.timeout_s, max_bytes=lim.max_bytes)
        status_rows, identities, status_warn = parse_status(status_res.text, ctx.machine_id, ctx.now,
                                                            self.stamp)
        limits_res = await ctx.executor.run(LIMITS_COMMAND, timeout_s=lim.timeout_s, max_bytes=lim.max_bytes)
        usage_rows, limits_warn = parse_limits(limits_res.text, ctx.machine_id, ctx.now, self.stamp,
                                               identities, lim.max_rows)
        result = CollectResult()
        result.extend(STATUS_TABLE, status_rows)
        result.extend(USAGE_TABLE, usage_rows)
        # Exit 2 is caam's "partial": the payload is still the best picture there is.
        result.warnings = (
            command_warnings(status_res, "caam status", payload_ok=bool(status_rows)) + status_warn
            + command_warnings(limits_res, "caam limits",
                               payload_ok=bool(usage_rows) or limits_res.text.strip() == "[]") + limits_warn)
        return result

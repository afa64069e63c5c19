"""coding_agent_usage_tracker: `caut usage --json` (envelope `caut.v1`) into `account_usage_snapshots`,
and `caut cost --json` into `account_cost_daily`.

One row per account and rate window (primary = session window, secondary = weekly, tertiary =
model tier). The account is keyed by `cli_json.account_key` (provider + email when known) so the
same subscription seen from several machines, or by caam as well, lines up in a view.

Cost is read less often (option `caut_cost_every_minutes`, default 30; 0 turns it off): caut adds
it up from the agents' local logs, which takes longer than a usage call and changes slowly. Each
provider's `daily[]` holds running totals for recent days; the cursor remembers each day's last
figure so a row is written only when a day's figure changes.

Only the real camelCase `caut.v1` shape is read. ntm ships a snake_case caut mock that caut never
prints; such a payload gets a warning, not a guess.
"""

from __future__ import annotations

from datetime import datetime, timedelta
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
from collectors.tail import Budget, parse_ts

COMMAND = "caut usage --json"
COST_COMMAND = "caut cost --json"
TABLE = "account_usage_snapshots"
COST_TABLE = "account_cost_daily"
COST_EVERY_MINUTES = 30
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


def _envelope(text: str, what: str, command: str) -> tuple[Fields | None, list[Any], Problems, list[str]]:
    """Decode a caut.v1 envelope: (envelope, data list, problems, warnings); envelope None = unusable."""
    problems = Problems(what)
    value, warnings = decode_json(text, what)
    if value is None:
        return None, [], problems, warnings
    if not isinstance(value, dict):
        return None, [], problems, warnings + [f"{what}: expected a JSON object envelope, got {type(value).__name__}"]
    env = Fields(value, problems)
    schema = value.get("schemaVersion", value.get("schema_version"))
    if schema != SCHEMA_VERSION:
        warnings.append(f"{what}: unknown schemaVersion {schema!r} (expected {SCHEMA_VERSION!r}); "
                        "parsed best-effort, raw_json kept")
    if value.get("command") not in (None, command):
        warnings.append(f"{what}: envelope command is {value.get('command')!r}, expected {command!r}")
    warnings += _errors(env)
    data = value.get("data")
    if not isinstance(data, list):
        hint = " (snake_case `data.payloads` is ntm's mock, not caut)" if isinstance(data, dict) else ""
        return None, [], problems, warnings + [f"{what}: `data` should be an array of provider payloads, got "
                                               f"{type(data).__name__}{hint}"] + problems.warnings()
    return env, data, problems, warnings


def parse_cost(text: str, machine_id: str, stamp, seen: dict[str, Any] | None = None
               ) -> tuple[list[dict[str, Any]], dict[str, Any], list[str]]:
    """`caut cost --json` -> (rows of days whose figure changed since `seen`, new `seen`, warnings).

    `seen` maps "provider|day" to the last stored [cost, tokens]; a day no longer listed drops out.
    """
    env, data, problems, warnings = _envelope(text, "caut cost", "cost")
    if env is None:
        return [], dict(seen or {}), warnings
    fallback_at = env.ts("generatedAt")
    rows: list[dict[str, Any]] = []
    now_seen: dict[str, Any] = {}
    for i, payload in enumerate(data):
        if not isinstance(payload, dict):
            problems.add(f"data[{i}] should be an object")
            continue
        p = Fields(payload, problems, f"data[{i}].")
        provider = norm_provider(p.str("provider"))
        reported_at = p.ts("updatedAt") or fallback_at
        if reported_at is None:
            problems.add(f"data[{i}] has neither updatedAt nor an envelope generatedAt")
            continue
        for j, entry in enumerate(p.list("daily")):
            d = Fields(entry, problems, f"data[{i}].daily[{j}].")
            try:
                day = datetime.strptime(d.str("date") or "", "%Y-%m-%d").date()
            except ValueError:
                problems.add(f"data[{i}].daily[{j}].date should be YYYY-MM-DD, got {d.raw('date')!r}")
                continue
            figure = [d.num("totalCost"), d.int("totalTokens")]
            key = f"{provider}|{day.isoformat()}"
            now_seen[key] = figure
            if (seen or {}).get(key) == figure:
                continue
            models = [m for m in d.list("modelsUsed") if isinstance(m, str)]
            rows.append(stamp(machine_id, provider=provider, day=day, reported_at=reported_at,
                              fetch_method=p.str("source"), total_cost_usd=figure[0],
                              input_tokens=d.int("inputTokens"), output_tokens=d.int("outputTokens"),
                              cache_read_tokens=d.int("cacheReadTokens"),
                              cache_creation_tokens=d.int("cacheCreationTokens"), total_tokens=figure[1],
                              models_used=models or None, raw_json=dumps(entry)))
    return rows, now_seen, warnings + problems.warnings()


def parse_usage(text: str, machine_id: str, collected_at: datetime, stamp,
                max_rows: int = 200_000) -> tuple[list[dict[str, Any]], list[str]]:
    env, data, problems, warnings = _envelope(text, "caut usage", "usage")
    if env is None:
        return [], warnings
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
        budget = Budget(ctx.limits.timeout_s)
        res = await ctx.executor.run(COMMAND, timeout_s=budget.remaining(), max_bytes=ctx.limits.max_bytes)
        rows, warnings = parse_usage(res.text, ctx.machine_id, ctx.now, self.stamp, ctx.limits.max_rows)
        result = CollectResult(rows={TABLE: rows} if rows else {})
        result.warnings = command_warnings(res, "caut usage", payload_ok=bool(rows)) + warnings
        await self._cost(ctx, budget, result)
        return result

    async def _cost(self, ctx: CollectContext, budget: Budget, result: CollectResult) -> None:
        prev = ctx.cursor if isinstance(ctx.cursor, dict) else {}
        result.cursor = dict(prev)
        every = ctx.options.get("caut_cost_every_minutes", COST_EVERY_MINUTES)
        if isinstance(every, bool) or not isinstance(every, int | float) or every < 0:
            result.warnings.append(f"caut: option caut_cost_every_minutes must be a number of minutes >= 0, "
                                   f"got {every!r}; using {COST_EVERY_MINUTES}")
            every = COST_EVERY_MINUTES
        last = parse_ts(prev.get("cost_at"))
        if every == 0 or (last is not None and ctx.now - last < timedelta(minutes=every)):
            return
        if budget.exhausted(1.0):
            result.warnings.append("caut: time budget used up before `caut cost`; it runs next cycle")
            return
        res = await ctx.executor.run(COST_COMMAND, timeout_s=budget.remaining(), max_bytes=ctx.limits.max_bytes)
        seen = prev.get("cost_seen") if isinstance(prev.get("cost_seen"), dict) else {}
        rows, now_seen, warnings = parse_cost(res.text, ctx.machine_id, self.stamp, seen)
        answered = bool(now_seen) or (res.exit_code == 0 and not warnings)
        result.warnings += command_warnings(res, "caut cost", payload_ok=answered) + warnings
        if not answered:
            return  # a failed cost call retries next cycle, and forgets nothing it had seen
        result.extend(COST_TABLE, cap_rows(rows, ctx.limits.max_rows, "caut cost", result.warnings))
        result.cursor = {**prev, "cost_at": ctx.now.isoformat(), "cost_seen": now_seen}

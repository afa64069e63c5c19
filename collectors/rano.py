"""rano: connections AI CLIs open (provider, domain, process), from `rano export --format jsonl`.

The export is asked for with `--since <last event ts>`, so each cycle fetches only new events. The
window overlaps the previous one by a second on purpose: whether rano's `--since` is inclusive, and
whether it compares timestamps as text, is not documented, and the overlap makes both harmless
(events are keyed by a hash of their content). The cursor advances only over complete lines, so a
line cut by the output cap is fetched again next cycle rather than lost.
"""

from __future__ import annotations

import hashlib
import json
import shlex
from datetime import datetime, timedelta
from typing import Any

from collectors.base import CollectContext, Collector, CollectResult
from collectors.tail import as_int, as_str, command_failure, dumps, parse_ts, shell_path, strip_ansi

_OVERLAP = timedelta(seconds=1)
_MAX_LINE_WARNINGS = 3


def event_hash(obj: dict[str, Any]) -> str:
    return hashlib.sha256(dumps(obj).encode("utf-8")).hexdigest()[:32]


def since_arg(cursor_ts: datetime) -> str:
    """RFC 3339 `Z` at whole seconds, one second before the last event seen (see module doc)."""
    return (cursor_ts - _OVERLAP).strftime("%Y-%m-%dT%H:%M:%SZ")


def event_row(obj: dict[str, Any]) -> tuple[dict[str, Any] | None, str | None]:
    ts = parse_ts(obj.get("ts"))
    if ts is None:
        return None, f"unparseable `ts` {obj.get('ts')!r}"
    return {
        "event_hash": event_hash(obj),
        "ts": ts,
        "run_id": as_str(obj.get("run_id")),
        "event": as_str(obj.get("event")),
        "provider": as_str(obj.get("provider")),
        "pid": as_int(obj.get("pid")),
        "comm": as_str(obj.get("comm")),
        "cmdline": as_str(obj.get("cmdline")),
        "proto": as_str(obj.get("proto")),
        "local_ip": as_str(obj.get("local_ip")),
        "local_port": as_int(obj.get("local_port")),
        "remote_ip": as_str(obj.get("remote_ip")),
        "remote_port": as_int(obj.get("remote_port")),
        "domain": as_str(obj.get("domain")),
        "ancestry_path": as_str(obj.get("ancestry_path")),
        "duration_ms": as_int(obj.get("duration_ms")),
        "raw_json": dumps(obj),
    }, None


def parse_export(text: str, complete_tail: bool, max_rows: int
                 ) -> tuple[list[dict[str, Any]], datetime | None, datetime | None, bool, list[str]]:
    """JSONL export -> (rows, max ts, ts of the last consumed line, stopped early, warnings).

    `complete_tail` says whether a last line without a newline is whole (the command ended
    normally) or was cut by the byte cap / a timeout, in which case it is left for next cycle.
    """
    lines = text.split("\n")
    cut = False
    if lines and lines[-1] == "":
        lines.pop()
    elif lines and not complete_tail:
        lines.pop()  # partial: re-fetched next cycle because the cursor does not pass it
        cut = True
    rows: list[dict[str, Any]] = []
    problems: list[str] = []
    max_ts: datetime | None = None
    last_ts: datetime | None = None
    for line in lines:
        if len(rows) >= max_rows:
            cut = True
            break
        s = strip_ansi(line).strip()
        if not s:
            continue
        try:
            obj = json.loads(s)
        except json.JSONDecodeError as exc:
            problems.append(f"not JSON ({exc.msg}): {s[:60]!r}")
            continue
        if not isinstance(obj, dict):
            problems.append(f"not an object: {s[:60]!r}")
            continue
        row, why = event_row(obj)
        if row is None:
            problems.append(why or "unusable line")
            continue
        rows.append(row)
        last_ts = row["ts"]
        max_ts = row["ts"] if max_ts is None or row["ts"] > max_ts else max_ts
    warnings = []
    if problems:
        shown = "; ".join(problems[:_MAX_LINE_WARNINGS])
        more = f" (+{len(problems) - _MAX_LINE_WARNINGS} more)" if len(problems) > _MAX_LINE_WARNINGS else ""
        warnings.append(f"rano export: {len(problems)} bad line(s) skipped: {shown}{more}")
    return rows, max_ts, last_ts, cut, warnings


class RanoCollector(Collector):
    name = "rano"
    source_version = "1"
    schema_version = 1
    required_tool = "rano"

    async def collect(self, ctx: CollectContext) -> CollectResult:
        result = CollectResult()
        prev = ctx.cursor if isinstance(ctx.cursor, dict) else {}
        prev_ts = parse_ts(prev.get("since"))
        if prev and prev_ts is None:
            result.warnings.append(f"rano: unusable cursor {prev!r}; exporting everything")
        cmd = "rano export --format jsonl"
        db = ctx.options.get("rano_sqlite")
        if isinstance(db, str) and db:
            cmd += f" --sqlite {shell_path(db)}"
        if prev_ts is not None:
            cmd += f" --since {shlex.quote(since_arg(prev_ts))}"
        res = await ctx.executor.run(cmd, timeout_s=ctx.limits.timeout_s, max_bytes=ctx.limits.max_bytes)
        fail = command_failure(res)
        if fail:
            result.warnings.append(f"rano: {fail}")
        whole = not res.timed_out and not res.truncated
        rows, max_ts, last_ts, cut, warns = parse_export(res.text, whole, ctx.limits.max_rows)
        result.warnings.extend(warns)
        result.extend("net_events", [self.stamp(ctx.machine_id, **r) for r in rows])
        # Everything up to max_ts was read unless the output was cut; then only up to the last line read.
        new_ts = last_ts if (cut or not whole) else max_ts
        if new_ts is not None and (prev_ts is None or new_ts > prev_ts):
            result.cursor = {"since": new_ts.isoformat().replace("+00:00", "Z")}
        else:
            result.cursor = dict(prev) if prev_ts is not None else None
            if cut and rows:
                result.warnings.append("rano: output cap reached within one second of events; "
                                       "raise max_output_bytes or the cursor cannot advance")
        if cut and new_ts is not None and (prev_ts is None or new_ts > prev_ts):
            result.warnings.append(f"rano: output cut at {len(rows)} events; the rest comes next cycle")
        return result

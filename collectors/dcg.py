"""dcg (destructive_command_guard): history.db decisions into dcg_events, `dcg stats` into snapshots.

The implemented history store is SQLite `~/.config/dcg/history.db` (table `commands`, schema v5);
the `history.jsonl` of dcg's design doc is not written by any code, so it is not read. Rows are read
in place on the machine through `sqlite_reader` by `id > cursor` (AUTOINCREMENT ids, rows are never
updated). `dcg stats --format json` (dcg has no `--json` flag) summarizes the decision log, a
different source than history.db, so both are kept.

Options: `dcg_history_db` (path or list of paths; default `~/.config/dcg/history.db`),
`dcg_stats` (bool, default true), `sqlite_engine` (auto | python3 | sqlite3).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from collectors import sqlite_reader as sr
from collectors.base import CollectContext, Collector, CollectResult
from collectors.cli_json import Fields, Problems, command_warnings, decode_json, dumps

DEFAULT_DB = "~/.config/dcg/history.db"
STATS_COMMAND = "dcg stats --format json"
T_EVENTS = "dcg_events"
T_STATS = "dcg_stats_snapshots"
KNOWN_HISTORY_SCHEMA = 5
CURSOR_VERSION = 1
OUTCOMES = ("allow", "deny", "warn", "bypass")


def _paths(value: Any) -> tuple[list[str], list[str]]:
    if value is None:
        return [DEFAULT_DB], []
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list):
        return [], [f"dcg: option dcg_history_db should be a path or a list, got {type(value).__name__}"]
    good = [p for p in value if isinstance(p, str) and p.strip()]
    bad = len(value) - len(good)
    warn = [f"dcg: ignored {bad} non-string dcg_history_db entries"] if bad else []
    return list(dict.fromkeys(good)), warn


def parse_stats(text: str, machine_id: str, collected_at: datetime,
                stamp) -> tuple[dict[str, Any] | None, list[str]]:
    """`dcg stats --format json` to one snapshot row (or None and why)."""
    value, warnings = decode_json(text, "dcg stats")
    if value is None:
        return None, warnings
    if not isinstance(value, dict):
        return None, warnings + [f"dcg stats: expected a JSON object, got {type(value).__name__}"]
    problems = Problems("dcg stats")
    f = Fields(value, problems)
    if "total_entries" not in value and "by_pack" not in value:
        return None, warnings + ["dcg stats: no total_entries / by_pack: not `dcg stats` output "
                                 "(`--rules` and `history stats` print other shapes)"]
    packs = []
    for i, p in enumerate(f.list("by_pack")):
        if not isinstance(p, dict):
            problems.add(f"by_pack[{i}] should be an object")
            continue
        pf = Fields(p, problems, f"by_pack[{i}].")
        packs.append({"pack_id": pf.str("pack_id"), "blocks": pf.int("blocks"), "allows": pf.int("allows"),
                      "bypasses": pf.int("bypasses"), "warns": pf.int("warns")})
    top = max(packs, key=lambda p: p["blocks"] or 0, default=None)
    row = stamp(
        machine_id, collected_at=collected_at,
        period_start=f.epoch("period_start", 1.0), period_end=f.epoch("period_end", 1.0),
        total_entries=f.int("total_entries"), total_blocks=f.int("total_blocks"),
        total_allows=f.int("total_allows"), total_bypasses=f.int("total_bypasses"),
        total_warns=f.int("total_warns"), pack_count=len(packs),
        top_block_pack=top["pack_id"] if top and (top["blocks"] or 0) > 0 else None,
        by_pack_json=dumps(packs), raw_json=dumps(value),
    )
    return row, warnings + problems.warnings()


class DcgCollector(Collector):
    name = "dcg"
    source_version = "1"
    schema_version = 1
    required_tool = "dcg"

    async def collect(self, ctx: CollectContext) -> CollectResult:
        result = CollectResult()
        paths, warns = _paths(ctx.options.get("dcg_history_db"))
        result.warnings += warns
        engine = ctx.options.get("sqlite_engine", "auto")
        if engine not in sr.ENGINES:
            result.warnings.append(f"dcg: unknown sqlite_engine {engine!r}; using auto")
            engine = "auto"
        prev = ctx.cursor if isinstance(ctx.cursor, dict) else {}
        if prev and prev.get("v") != CURSOR_VERSION:
            result.warnings.append(f"dcg: unusable cursor (v={prev.get('v')!r}); "
                                   "reading history from the start")
            prev = {}
        prev_dbs = prev.get("dbs") if isinstance(prev.get("dbs"), dict) else {}
        budget = max(1, ctx.limits.max_rows)
        new_dbs: dict[str, Any] = {}
        for path in paths:
            st = prev_dbs.get(path) if isinstance(prev_dbs.get(path), dict) else {}
            after = st.get("commands") if isinstance(st.get("commands"), int) else 0
            rows, after, warns = await self._history(ctx, path, after, budget, engine)
            budget -= len(rows)
            result.warnings += warns
            result.extend(T_EVENTS, rows)
            new_dbs[path] = {"commands": after}
        result.cursor = {"v": CURSOR_VERSION, "dbs": new_dbs}
        if ctx.options.get("dcg_stats", True):
            res = await ctx.executor.run(STATS_COMMAND, timeout_s=ctx.limits.timeout_s,
                                         max_bytes=ctx.limits.max_bytes)
            row, warns = parse_stats(res.text, ctx.machine_id, ctx.now, self.stamp)
            result.warnings += command_warnings(res, "dcg stats", payload_ok=row is not None) + warns
            if row is not None:
                result.add(T_STATS, row)
        return result

    async def _history(self, ctx: CollectContext, path: str, after: int, budget: int,
                       engine: str) -> tuple[list[dict[str, Any]], int, list[str]]:
        """New `commands` rows and history.db's schema version, in one round trip."""
        if budget <= 0:
            return [], after, [f"dcg {path}: row limit reached; history waits for the next cycle"]
        warnings: list[str] = []
        for attempt in range(2):
            page = sr.after_query("commands", alias="c", after=after, limit=budget)
            version = sr.Query("SELECT max(version) AS v FROM schema_version LIMIT ?", (2,), 1)
            read, ver = await sr.select_many(ctx.executor, path, [page, version], engine=engine,
                                             timeout_s=ctx.limits.timeout_s, max_bytes=ctx.limits.max_bytes)
            sr.finish_after(read, after)
            warnings += read.warnings
            if read.status == "no_table":
                return [], after, warnings + [f"dcg history {path}: no `commands` table; "
                                              "not a dcg history.db?"]
            if not read.ok:
                hint = " (is dcg history enabled?)" if read.status == "missing" else ""
                return [], after, warnings + [(sr.status_warning(read, "dcg history") or "") + hint]
            if read.reset and attempt == 0:
                warnings.append(f"dcg history {path}: max id {read.head} is below the cursor {after} "
                                "(database replaced or pruned at the end); reading it again from the start")
                after = 0
                continue
            break
        schema = sr.to_int(ver.rows[0].get("v")) if ver.ok and ver.rows else None
        if schema is not None and schema != KNOWN_HISTORY_SCHEMA:
            warnings.append(f"dcg history {path}: history.db schema version {schema} (expected "
                            f"{KNOWN_HISTORY_SCHEMA}); read best-effort, raw_json kept")
        rows, skipped = [], 0
        for r in read.rows:
            row = self._row(ctx, path, r, schema)
            if row is None:
                skipped += 1
            else:
                rows.append(row)
        if skipped:
            warnings.append(f"dcg history {path}: {skipped} row(s) without a readable id or timestamp "
                            "skipped")
        unknown = sorted({str(r["outcome"]) for r in rows if r["outcome"] not in OUTCOMES})
        if unknown:
            warnings.append(f"dcg history {path}: unknown outcome value(s) {unknown}; kept as-is")
        if read.more:
            warnings.append(f"dcg history {path}: read {len(read.rows)} rows (row or byte limit); "
                            "the rest comes next cycle")
        return rows, read.next_after, warnings

    def _row(self, ctx: CollectContext, path: str, r: dict[str, Any],
             schema: int | None) -> dict[str, Any] | None:
        eid, ts = sr.to_int(r.get("id")), sr.sqlite_time(r.get("timestamp"))
        if eid is None or ts is None:
            return None
        return self.stamp(
            ctx.machine_id, db_path=path, event_id=eid, ts=ts, outcome=sr.to_str(r.get("outcome")),
            rule_id=sr.to_str(r.get("rule_id")), pack_id=sr.to_str(r.get("pack_id")),
            pattern_name=sr.to_str(r.get("pattern_name")), command=sr.to_str(r.get("command")),
            command_truncated="command" in (r.get(sr.CUT_COL) or []),
            command_hash=sr.to_str(r.get("command_hash")), agent_type=sr.to_str(r.get("agent_type")),
            working_dir=sr.to_str(r.get("working_dir")),
            eval_duration_us=sr.to_int(r.get("eval_duration_us")),
            session_id=sr.to_str(r.get("session_id")), exit_code=sr.to_int(r.get("exit_code")),
            parent_command_id=sr.to_int(r.get("parent_command_id")), hostname=sr.to_str(r.get("hostname")),
            allowlist_layer=sr.to_str(r.get("allowlist_layer")), bypass_code=sr.to_str(r.get("bypass_code")),
            history_schema=schema, raw_json=dumps(sr.public(r)),
        )

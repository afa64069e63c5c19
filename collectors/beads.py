"""Beads issue trackers (beads_rust `br`, beads_viewer `bv`) in the repos a machine works on.

Per repo (ctx.options["beads_repos"], a list of paths on the machine):
- `.beads/issues.jsonl` is tailed by inode+offset. br rewrites the export atomically (new inode)
  on every change, so a restart at 0 is the normal case here and not worth a warning; the natural
  key (repo, issue id, updated_at) makes the re-read add rows only for issues that changed.
- `br ready --json` (a bare JSON array) -> one readiness row per repo per collection; readiness is
  br's own rule, not recomputed from the JSONL (br.md).
- `bv --robot-triage` -> one triage row per repo, when bv is installed (it is optional).
"""

from __future__ import annotations

from typing import Any

from collectors.base import CollectContext, Collector, CollectResult
from collectors.tail import (
    Budget,
    as_bool,
    as_float,
    as_int,
    as_str,
    command_failure,
    dumps,
    extract_json,
    parse_json_lines,
    parse_ts,
    read_new_lines,
    shell_path,
    str_list,
)

ISSUES_FILE = ".beads/issues.jsonl"
_BLOCKING_DEPS = {"blocks", "conditional-blocks", "waits-for"}
_NO_BV = "__VC_NO_BV__"
_MAX_LINE_WARNINGS = 3


def _obj(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def issue_row(obj: dict[str, Any]) -> tuple[dict[str, Any] | None, str | None]:
    """One issues.jsonl object -> row fields (without provenance), or (None, reason)."""
    issue_id = as_str(obj.get("id"))
    if not issue_id:
        return None, "no string `id`"
    updated = parse_ts(obj.get("updated_at"))
    if updated is None:
        return None, f"issue {issue_id}: unparseable `updated_at` {obj.get('updated_at')!r}"
    deps = [d for d in obj.get("dependencies") or [] if isinstance(d, dict)] \
        if isinstance(obj.get("dependencies"), list) else []
    parent = next((as_str(d.get("depends_on_id")) for d in deps if d.get("type") == "parent-child"), None)
    blocked_by = [d["depends_on_id"] for d in deps
                  if d.get("type") in _BLOCKING_DEPS and isinstance(d.get("depends_on_id"), str)]
    comments = obj.get("comments")
    return {
        "issue_id": issue_id,
        "updated_at": updated,
        "title": as_str(obj.get("title")),
        "status": as_str(obj.get("status")),
        "priority": as_int(obj.get("priority")),
        "issue_type": as_str(obj.get("issue_type")),
        "assignee": as_str(obj.get("assignee")),
        "owner": as_str(obj.get("owner")),
        "created_at": parse_ts(obj.get("created_at")),
        "created_by": as_str(obj.get("created_by")),
        "closed_at": parse_ts(obj.get("closed_at")),
        "close_reason": as_str(obj.get("close_reason")),
        "deleted_at": parse_ts(obj.get("deleted_at")),
        "due_at": parse_ts(obj.get("due_at")),
        "defer_until": parse_ts(obj.get("defer_until")),
        "estimated_minutes": as_int(obj.get("estimated_minutes")),
        "labels": str_list(obj.get("labels")) or [],
        "dependency_count": len(deps),
        "blocked_by_ids": blocked_by,
        "parent_id": parent,
        "comment_count": len(comments) if isinstance(comments, list) else 0,
        "raw_json": dumps(obj),
    }, None


def parse_issue_lines(texts: list[str]) -> tuple[list[dict[str, Any]], list[str]]:
    return parse_json_lines(texts, issue_row, "issue", _MAX_LINE_WARNINGS)


def ready_row(payload: Any) -> tuple[dict[str, Any] | None, str | None]:
    """`br ready --json` (a top-level array of ReadyIssue) -> one summary row."""
    if not isinstance(payload, list):
        return None, f"`br ready --json` gave {type(payload).__name__}, expected a JSON array"
    items = [i for i in payload if isinstance(i, dict) and isinstance(i.get("id"), str)]
    bad = len(payload) - len(items)
    prios = [(as_int(i.get("priority")), n) for n, i in enumerate(items)]
    ranked = sorted((p, n) for p, n in prios if p is not None)
    top = items[ranked[0][1]] if ranked else (items[0] if items else None)
    row = {
        "ready_count": len(items),
        "p0_count": sum(1 for p, _ in prios if p == 0),
        "p1_count": sum(1 for p, _ in prios if p == 1),
        "in_progress_count": sum(1 for i in items if i.get("status") == "in_progress"),
        "issue_ids": [i["id"] for i in items],
        "top_issue_id": top["id"] if top else None,
        "top_priority": as_int(top.get("priority")) if top else None,
        "raw_json": dumps(payload),
    }
    return row, (f"{bad} ready entries without a string `id` ignored" if bad else None)


def triage_row(payload: Any) -> tuple[dict[str, Any] | None, str | None]:
    """`bv --robot-triage` envelope `{generated_at, data_hash, triage: TriageResult}` -> one row."""
    if not isinstance(payload, dict) or not isinstance(payload.get("triage"), dict):
        return None, "`bv --robot-triage` output has no `triage` object"
    tri = payload["triage"]
    meta = _obj(tri.get("meta"))
    qr = _obj(tri.get("quick_ref"))
    picks = [p for p in qr.get("top_picks") or [] if isinstance(p, dict)] \
        if isinstance(qr.get("top_picks"), list) else []
    health = _obj(tri.get("project_health"))
    counts = _obj(health.get("counts"))
    graph = _obj(health.get("graph"))
    velocity = _obj(health.get("velocity"))
    stale = _obj(health.get("staleness"))

    def n(v: Any) -> int | None:
        return len(v) if isinstance(v, list) else None

    return {
        "generated_at": parse_ts(payload.get("generated_at")) or parse_ts(meta.get("generated_at")),
        "data_hash": as_str(payload.get("data_hash")),
        "bv_version": as_str(payload.get("version")) or as_str(meta.get("version")),
        "issue_count": as_int(meta["issue_count"]) if "issue_count" in meta else as_int(counts.get("total")),
        "open_count": as_int(qr.get("open_count")),
        "actionable_count": as_int(qr.get("actionable_count")),
        "blocked_count": as_int(qr.get("blocked_count")),
        "in_progress_count": as_int(qr.get("in_progress_count")),
        "not_closed_count": as_int(qr.get("not_closed_count")),
        "top_pick_ids": [p["id"] for p in picks if isinstance(p.get("id"), str)],
        "top_pick_id": as_str(picks[0].get("id")) if picks else None,
        "top_pick_score": as_float(picks[0].get("score")) if picks else None,
        "recommendation_count": n(tri.get("recommendations")),
        "quick_win_count": n(tri.get("quick_wins")),
        "blockers_to_clear_count": n(tri.get("blockers_to_clear")),
        "alert_count": n(tri.get("alerts")) if "alerts" in tri else 0,
        "has_cycles": as_bool(graph.get("has_cycles")),
        "closed_last_7_days": as_int(velocity.get("closed_last_7_days")),
        "closed_last_30_days": as_int(velocity.get("closed_last_30_days")),
        "stale_count": as_int(stale.get("stale_count")),
        "raw_json": dumps(payload),
    }, None


def repos_from(options: dict[str, Any]) -> tuple[list[str], list[str]]:
    raw = options.get("beads_repos", [])
    if isinstance(raw, str):
        raw = [raw]
    if not isinstance(raw, list):
        return [], [f"option beads_repos must be a list of paths, got {type(raw).__name__}"]
    repos = [r.rstrip("/") or "/" for r in raw if isinstance(r, str) and r.strip()]
    bad = len(raw) - len(repos)
    return list(dict.fromkeys(repos)), ([f"{bad} non-path entries in beads_repos ignored"] if bad else [])


class BeadsCollector(Collector):
    name = "beads"
    source_version = "1"
    schema_version = 1
    required_tool = "br"

    async def collect(self, ctx: CollectContext) -> CollectResult:
        result = CollectResult()
        repos, warns = repos_from(ctx.options)
        result.warnings.extend(warns)
        prev_files = _obj(_obj(ctx.cursor).get("files"))
        # Cursors of repos no longer configured are dropped; a re-added repo re-reads (dedupe makes it free).
        files: dict[str, Any] = {}
        if not repos:
            result.cursor = {"files": files}
            return result
        budget = Budget(ctx.limits.timeout_s)
        per_file = max(64 * 1024, ctx.limits.max_bytes // len(repos))
        for repo in repos:
            if budget.exhausted():
                result.warnings.append(f"time budget used up; skipped repo {repo} this cycle")
                if repo in prev_files:
                    files[repo] = prev_files[repo]
                continue
            cursor = await self._issues(ctx, repo, prev_files.get(repo), per_file, budget, result)
            if cursor is not None:
                files[repo] = cursor
            await self._ready(ctx, repo, budget, result)
            await self._triage(ctx, repo, budget, result)
        result.cursor = {"files": files}
        return result

    async def _issues(self, ctx: CollectContext, repo: str, cursor: Any, cap: int, budget: Budget,
                      result: CollectResult) -> dict[str, Any] | None:
        path = f"{repo}/{ISSUES_FILE}"
        read = await read_new_lines(ctx.executor, path, cursor if isinstance(cursor, dict) else None,
                                    max_bytes=cap, timeout_s=budget.remaining(), warn_on_rotation=False)
        result.warnings.extend(read.warnings)
        if read.status == "missing":
            result.warnings.append(f"{repo}: no {ISSUES_FILE} (not a beads repo, or never exported)")
            return None
        rows, warns = parse_issue_lines([ln.text for ln in read.lines])
        result.warnings.extend(f"{path}: {w}" for w in warns)
        result.extend("beads_issues", [self.stamp(ctx.machine_id, repo_path=repo, **r) for r in rows])
        return read.cursor

    async def _ready(self, ctx: CollectContext, repo: str, budget: Budget, result: CollectResult) -> None:
        if budget.exhausted():
            result.warnings.append(f"{repo}: time budget used up before `br ready`")
            return
        res = await ctx.executor.run(f"cd {shell_path(repo)} && br ready --json",
                                     timeout_s=budget.remaining(), max_bytes=ctx.limits.max_bytes)
        payload, why = extract_json(res.text)
        fail = command_failure(res)
        if fail or why:
            result.warnings.append(f"{repo}: {fail or f'`br ready --json`: {why}'}")
            if payload is None or res.timed_out or res.truncated:
                return
        row, warn = ready_row(payload)
        if warn:
            result.warnings.append(f"{repo}: {warn}")
        if row is not None:
            result.add("beads_ready_snapshots",
                       self.stamp(ctx.machine_id, repo_path=repo, collected_at=ctx.now, **row))

    async def _triage(self, ctx: CollectContext, repo: str, budget: Budget, result: CollectResult) -> None:
        if budget.exhausted():
            result.warnings.append(f"{repo}: time budget used up before `bv --robot-triage`")
            return
        cmd = (f"cd {shell_path(repo)} && if command -v bv >/dev/null 2>&1; then bv --robot-triage; "
               f"else echo {_NO_BV}; fi")
        res = await ctx.executor.run(cmd, timeout_s=budget.remaining(), max_bytes=ctx.limits.max_bytes)
        if res.text.strip() == _NO_BV:
            return  # bv is optional
        payload, why = extract_json(res.text)
        fail = command_failure(res)
        if fail or why:
            result.warnings.append(f"{repo}: {fail or f'`bv --robot-triage`: {why}'}")
            if payload is None or res.timed_out or res.truncated:
                return
        row, warn = triage_row(payload)
        if warn:
            result.warnings.append(f"{repo}: {warn}")
        if row is not None:
            result.add("beads_triage_snapshots",
                       self.stamp(ctx.machine_id, repo_path=repo, collected_at=ctx.now, **row))

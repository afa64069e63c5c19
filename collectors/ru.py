"""repo_updater: `ru list --json` and `ru status --no-fetch --json`, one row per configured repo.

`--no-fetch` because a collector is read-only and must not touch the network on a poll: the
ahead/behind figures are against the last fetch the person or `ru sync` did, which is exactly
"what this machine believes". `list` adds the configured spec (URL) and catches repos `status`
skipped; `status` carries the state. Either one alone still yields rows.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from collectors.base import CollectContext, Collector, CollectResult
from collectors.cli_json import Fields, Problems, cap_rows, command_warnings, decode_json, dumps

LIST_COMMAND = "ru list --json"
STATUS_COMMAND = "ru status --no-fetch --json"
TABLE = "repo_status_snapshots"
KNOWN_STATUSES = {"current", "behind", "ahead", "diverged", "no_upstream", "not_git", "missing"}


def parse_envelope(text: str, command: str, what: str
                   ) -> tuple[dict[str, Any] | None, list[dict[str, Any]], list[str]]:
    """(envelope, repo objects, warnings) from one ru JSON envelope."""
    value, warnings = decode_json(text, what)
    if value is None:
        return None, [], warnings
    if not isinstance(value, dict):
        return None, [], warnings + [f"{what}: expected a JSON object envelope, got {type(value).__name__}"]
    if value.get("command") not in (None, command):
        warnings.append(f"{what}: envelope says command={value.get('command')!r}, expected {command!r}")
    if value.get("output_format") not in (None, "json"):
        warnings.append(f"{what}: output_format={value.get('output_format')!r} (TOON?); expected json")
    data = value.get("data")
    if not isinstance(data, dict):
        return value, [], warnings + [f"{what}: envelope has no `data` object"]
    repos = data.get("repos")
    if repos is None:
        repos = []
    if not isinstance(repos, list):
        return value, [], warnings + [f"{what}: data.repos should be an array, got {type(repos).__name__}"]
    good = [r for r in repos if isinstance(r, dict)]
    if len(good) != len(repos):
        warnings.append(f"{what}: skipped {len(repos) - len(good)} repo entries that are not objects")
    return value, good, warnings


def _count(v: Any, problems: Problems, field: str) -> int | None:
    """ahead/behind: -1 means "unknown" upstream, which is NULL here, not a negative count."""
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, int):
        problems.add(f"{field} should be an integer, got {type(v).__name__} {v!r}"[:120])
        return None
    return v if v >= 0 else None


def parse_repos(list_text: str | None, status_text: str | None, machine_id: str, collected_at: datetime,
                stamp, max_rows: int = 200_000) -> tuple[list[dict[str, Any]], list[str]]:
    warnings: list[str] = []
    list_env, listed, status_env, statuses = None, [], None, []
    if list_text is not None:
        list_env, listed, w = parse_envelope(list_text, "list", "ru list")
        warnings += w
    if status_text is not None:
        status_env, statuses, w = parse_envelope(status_text, "status", "ru status")
        warnings += w
    problems = Problems("ru")
    version = None
    generated_at = None
    for env in (status_env, list_env):
        if env is not None:
            f = Fields(env, problems)
            version = version or f.str("version")
            generated_at = generated_at or f.ts("generated_at")
    url_by_key: dict[str, str | None] = {}
    for r in listed:
        f = Fields(r, problems)
        url_by_key[f.str("path") or f.str("repo") or ""] = f.str("url")
    rows: dict[str, dict[str, Any]] = {}
    unknown_status: set[str] = set()
    for i, r in enumerate(statuses):
        f = Fields(r, problems, f"repos[{i}].")
        repo, path = f.str("repo"), f.str("path")
        key = path or repo
        if not key:
            problems.add(f"repos[{i}] has neither path nor repo")
            continue
        st = f.str("status")
        if st is not None and st not in KNOWN_STATUSES:
            unknown_status.add(st)
        rows[key] = stamp(
            machine_id, collected_at=collected_at, path=key, repo=repo, url=url_by_key.get(key),
            status=st, branch=f.str("branch") or None,
            ahead=_count(r.get("ahead"), problems, f"repos[{i}].ahead"),
            behind=_count(r.get("behind"), problems, f"repos[{i}].behind"),
            dirty=f.bool("dirty"), mismatch=f.bool("mismatch"), in_status=True,
            ru_version=version, generated_at=generated_at, raw_json=dumps(r))
    for i, r in enumerate(listed):
        f = Fields(r, problems, f"list[{i}].")
        key = f.str("path") or f.str("repo")
        if not key or key in rows:
            continue
        # Configured but absent from `status` (status failed, or the spec did not resolve there).
        rows[key] = stamp(machine_id, collected_at=collected_at, path=key, repo=f.str("repo"),
                          url=f.str("url"), status=None, branch=None, ahead=None, behind=None, dirty=None,
                          mismatch=None,
                          in_status=False, ru_version=version, generated_at=generated_at, raw_json=dumps(r))
    if unknown_status:
        warnings.append(f"ru status: unknown status value(s) {', '.join(sorted(unknown_status))} (kept)")
    if status_env is not None:
        data = status_env.get("data")
        total = data.get("total") if isinstance(data, dict) else None
        if isinstance(total, int) and not isinstance(total, bool) and total > len(statuses):
            warnings.append(f"ru status: {total} repos configured but only {len(statuses)} reported")
    warnings += problems.warnings()
    return cap_rows(list(rows.values()), max_rows, "ru", warnings), warnings


class RuCollector(Collector):
    name = "ru"
    source_version = "1"
    schema_version = 1
    required_tool = "ru"

    async def collect(self, ctx: CollectContext) -> CollectResult:
        lim = ctx.limits
        list_res = await ctx.executor.run(LIST_COMMAND, timeout_s=lim.timeout_s, max_bytes=lim.max_bytes)
        status_res = await ctx.executor.run(STATUS_COMMAND, timeout_s=lim.timeout_s, max_bytes=lim.max_bytes)
        rows, warnings = parse_repos(list_res.text, status_res.text, ctx.machine_id, ctx.now, self.stamp,
                                     lim.max_rows)
        result = CollectResult(rows={TABLE: rows} if rows else {})
        # ru's exit 1 means "partial failure": the JSON is still the best picture there is.
        result.warnings = (
            command_warnings(list_res, "ru list", payload_ok=bool(list_res.stdout.strip()))
            + command_warnings(status_res, "ru status", payload_ok=bool(status_res.stdout.strip()))
            + warnings)
        return result

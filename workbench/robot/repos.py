"""`vc robot repos`: repo clones per machine (ru) — dirty, ahead, behind, broken — for agents.

By default only the repos that need a look are listed (a fleet has thousands of clean clones);
`--all` lists every repo of every machine's latest collection.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from workbench.robot.envelope import envelope, to_jsonable
from workbench.store import Store
from workbench.views import ops
from workbench.views import repos as vr

STALE_AFTER_S = 3600.0
_REPO_FIELDS = ("machine_id", "path", "repo", "url", "status", "branch", "ahead", "behind", "dirty", "mismatch",
                "in_status", "attention", "collected_at")


def build(store: Store, now: datetime, machine_ids: list[str] | None = None, include_all: bool = False) -> dict:
    with store.reader() as con:
        totals = vr.fleet_repo_totals(con, now, machine_ids=machine_ids).execute().to_dict("records")[0]
        machines = vr.repo_summary(con, now, machine_ids=machine_ids).execute().to_dict("records")
        repos = vr.latest_repos(con, now, machine_ids=machine_ids).execute()
        poll = ops.poll_freshness(con, now).execute().to_dict("records")[0]
    if not include_all:
        repos = repos[repos["attention"].notna()]
    rows: list[dict[str, Any]] = to_jsonable(repos[list(_REPO_FIELDS)].to_dict("records"))
    machines = to_jsonable(machines)
    warnings: list[str] = []
    if not machines:
        warnings.append("no repo status collected yet: ru must run on at least one machine")
    for m in machines:
        if m["age_seconds"] is not None and m["age_seconds"] > STALE_AFTER_S:
            warnings.append(f"{m['machine_id']}: repo status is {m['age_seconds']:.0f}s old")
    ages = [m["age_seconds"] for m in machines if m["age_seconds"] is not None]
    staleness = {
        "last_collected_at": max((m["collected_at"] for m in machines if m["collected_at"]), default=None),
        "oldest_age_seconds": max(ages) if ages else None,
        "last_poll_at": poll.get("last_run_at"),
        "poll_age_seconds": poll.get("age_seconds"),
        "stale": not ages or max(ages) > STALE_AFTER_S,
    }
    data = {"totals": totals if machines else None, "machines": machines, "repos": rows, "all_repos": include_all}
    return envelope(data, staleness, warnings, now)


def to_markdown(doc: dict) -> str:
    d = doc["data"]
    lines = [f"# Repos — {doc['generated_at']}", ""]
    t = d.get("totals")
    if t:
        lines.append(f"{t['repos']} clones on {t['machines']} machines: {t['dirty']} dirty, {t['behind']} behind, "
                     f"{t['ahead']} ahead, {t['diverged']} diverged, {t['broken']} broken; "
                     f"{t['needs_attention']} need a look.")
    else:
        lines.append("no data yet")
    lines += ["", "| machine | repos | dirty | ahead | behind | need a look |", "|---|---|---|---|---|---|"]
    lines += [f"| {m['machine_id']} | {m['repos']} | {m['dirty']} | {m['ahead']} | {m['behind']} | "
              f"{m['needs_attention']} |" for m in d["machines"]]
    if d["repos"]:
        lines += ["", "| machine | repo | branch | status | why |", "|---|---|---|---|---|"]
        lines += [f"| {r['machine_id']} | {r.get('repo') or r['path']} | {r.get('branch') or '-'} | "
                  f"{r.get('status') or '-'} | {r.get('attention') or ''} |" for r in d["repos"]]
    return "\n".join(lines + [f"- warning: {w}" for w in doc["warnings"]]) + "\n"

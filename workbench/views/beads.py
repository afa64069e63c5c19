"""Beads issue trackers: what is ready to work on (br), bv's triage, and what blocks what.

Readiness is br's own rule and triage is bv's: both are read as reported, never recomputed from
the issue export. The issue export adds what neither summarizes: which open issue waits on which
other issue, and whether that blocker is itself still open.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import ibis
import ibis.expr.types as ir

from workbench.views.snapshots import age_seconds, latest_rows, scoped

REPO_KEY = ["machine_id", "repo_path"]
DONE_STATUSES = ("closed", "tombstone")


def _unfinished(status: ir.StringValue) -> ir.BooleanValue:
    """Not closed or deleted; an unknown status counts as unfinished (nothing says it is done)."""
    return (~status.isin(list(DONE_STATUSES))).fill_null(True)


def latest_ready(con: ibis.BaseBackend, machine_ids: Sequence[str] | None = None) -> ir.Table:
    return latest_rows(scoped(con.table("beads_ready_snapshots"), machine_ids), REPO_KEY)


def latest_triage(con: ibis.BaseBackend, machine_ids: Sequence[str] | None = None) -> ir.Table:
    return latest_rows(scoped(con.table("beads_triage_snapshots"), machine_ids), REPO_KEY)


def latest_issues(con: ibis.BaseBackend, machine_ids: Sequence[str] | None = None) -> ir.Table:
    """Each issue's current version (the export adds a row whenever an issue's updated_at moves)."""
    return latest_rows(scoped(con.table("beads_issues"), machine_ids), [*REPO_KEY, "issue_id"], ts="updated_at")


def issue_counts(con: ibis.BaseBackend, machine_ids: Sequence[str] | None = None) -> ir.Table:
    """Per repo: issues by status in the current export (deleted issues left out)."""
    i = latest_issues(con, machine_ids)
    i = i.filter(i.deleted_at.isnull() & (i.status != "tombstone").fill_null(True))
    return i.group_by(REPO_KEY).agg(
        issues=i.count(),
        open=(i.status == "open").sum(),
        in_progress=(i.status == "in_progress").sum(),
        blocked=(i.status == "blocked").sum(),
        closed=(i.status == "closed").sum(),
        waiting_on_others=((i.blocked_by_ids.length() > 0) & _unfinished(i.status)).sum(),
    )


def repo_overview(con: ibis.BaseBackend, now: datetime, machine_ids: Sequence[str] | None = None) -> ir.Table:
    """One row per (machine, repo): br readiness, bv triage and issue counts side by side.

    A repo appears if any of the three knows it; a part that was not collected is NULL, not 0.
    """
    r, t, c = latest_ready(con, machine_ids), latest_triage(con, machine_ids), issue_counts(con, machine_ids)
    keys = (r.select(*REPO_KEY).union(t.select(*REPO_KEY)).union(c.select(*REPO_KEY))).distinct()
    j = (keys.left_join(r, [keys.machine_id == r.machine_id, keys.repo_path == r.repo_path])
         .left_join(t, [keys.machine_id == t.machine_id, keys.repo_path == t.repo_path])
         .left_join(c, [keys.machine_id == c.machine_id, keys.repo_path == c.repo_path]))
    seen = ibis.greatest(r.collected_at, t.collected_at)
    return j.select(
        keys.machine_id, keys.repo_path,
        ready_count=r.ready_count, ready_p0=r.p0_count, ready_p1=r.p1_count, top_ready_id=r.top_issue_id,
        top_ready_priority=r.top_priority,
        open_count=t.open_count, actionable_count=t.actionable_count, blocked_count=t.blocked_count,
        in_progress_count=t.in_progress_count, top_pick_id=t.top_pick_id, top_pick_score=t.top_pick_score,
        blockers_to_clear=t.blockers_to_clear_count, has_cycles=t.has_cycles, bv_alerts=t.alert_count,
        issues=c.issues, waiting_on_others=c.waiting_on_others,
        collected_at=seen, age_seconds=age_seconds(now, seen),
    ).order_by(REPO_KEY)


def triage_blockers(con: ibis.BaseBackend, machine_ids: Sequence[str] | None = None) -> ir.Table:
    """bv's `blockers_to_clear` of each repo's latest triage: the issues whose closing unblocks most."""
    t = latest_triage(con, machine_ids)
    b = t.select(*REPO_KEY, "collected_at",
                 item=t.raw_json.cast("json")["triage"]["blockers_to_clear"].array.unnest())
    return b.select(
        *REPO_KEY, "collected_at", issue_id=b.item["id"].str, title=b.item["title"].str,
        unblocks_count=b.item["unblocks_count"].int, actionable=b.item["actionable"].bool,
    ).order_by([ibis.desc("unblocks_count"), "issue_id"])


def top_picks(con: ibis.BaseBackend, machine_ids: Sequence[str] | None = None) -> ir.Table:
    """bv's top picks (score, what it unblocks, why) of each repo's latest triage."""
    t = latest_triage(con, machine_ids)
    p = t.select(*REPO_KEY, item=t.raw_json.cast("json")["triage"]["quick_ref"]["top_picks"].array.unnest())
    return p.select(
        *REPO_KEY, issue_id=p.item["id"].str, title=p.item["title"].str, score=p.item["score"].float,
        unblocks=p.item["unblocks"].int,
        reasons=p.item["reasons"].array.map(lambda x: x.str).join("; "),
    ).order_by([ibis.desc("score"), "issue_id"])


def open_blockers(con: ibis.BaseBackend, machine_ids: Sequence[str] | None = None) -> ir.Table:
    """Unfinished issues waiting on another issue, with that blocker's own state.

    blocker_status NULL: the blocker is not in this repo's export (another repo, or deleted), so
    whether it is done is unknown. Blockers known to be closed are left out: nothing waits on them.
    """
    i = latest_issues(con, machine_ids)
    waiting = i.filter(_unfinished(i.status) & (i.blocked_by_ids.length() > 0))
    w = waiting.select(*REPO_KEY, "issue_id", "title", "status", "priority", "assignee",
                       blocker_id=waiting.blocked_by_ids.unnest())
    b = i.select(*REPO_KEY, blocker_id=i.issue_id, blocker_title=i.title, blocker_status=i.status,
                 blocker_assignee=i.assignee)
    j = w.left_join(b, [w.machine_id == b.machine_id, w.repo_path == b.repo_path, w.blocker_id == b.blocker_id])
    out = j.select(w.machine_id, w.repo_path, w.issue_id, w.title, w.status, w.priority, w.assignee,
                   w.blocker_id, b.blocker_title, b.blocker_status, b.blocker_assignee)
    out = out.filter(_unfinished(out.blocker_status))
    return out.order_by(["priority", "machine_id", "repo_path", "issue_id", "blocker_id"])


def beads_totals(con: ibis.BaseBackend, now: datetime, machine_ids: Sequence[str] | None = None) -> ir.Table:
    """One row: repos tracked, issues ready (br), blocked (bv), and issue → open-blocker pairs."""
    o = repo_overview(con, now, machine_ids)
    w = open_blockers(con, machine_ids)
    waits = w.aggregate(waiting_pairs=w.count())
    totals = o.aggregate(repos=o.count(), ready=o.ready_count.sum(), ready_p0=o.ready_p0.sum(),
                         blocked=o.blocked_count.sum(), blockers_to_clear=o.blockers_to_clear.sum())
    return totals.cross_join(waits)

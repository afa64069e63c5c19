"""Repositories per machine (ru): dirty trees, commits ahead / behind, remote mismatches.

ru's figures are against the machine's last fetch (the collector never fetches), so "behind" means
"behind what this machine last saw". NULL ahead/behind is "unknown" (ru's -1), never zero.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import ibis
import ibis.expr.types as ir

from workbench.views.snapshots import age_seconds, latest_rows, scoped

# ru statuses that mean the repo cannot be compared with its upstream at all.
BROKEN_STATUSES = ("no_upstream", "not_git", "missing")


def latest_repos(con: ibis.BaseBackend, now: datetime, machine_ids: Sequence[str] | None = None) -> ir.Table:
    """Every repo of each machine's latest ru collection, with `attention` (why it needs a look)."""
    r = latest_rows(scoped(con.table("repo_status_snapshots"), machine_ids), ["machine_id"])
    reasons = [
        (r.in_status == False, "not in ru status"),  # noqa: E712 (an Ibis expression, not a Python bool)
        (r.status.isin(list(BROKEN_STATUSES)), r.status.fill_null("")),
        (r.status == "diverged", "diverged"),
        (r.mismatch, "remote URL differs"),
        (r.dirty, "uncommitted changes"),
        (r.behind > 0, "behind " + r.behind.cast("string")),
        (r.ahead > 0, "ahead " + r.ahead.cast("string")),
    ]
    parts = [ibis.cases((cond.fill_null(False), text), else_=ibis.null("string")) for cond, text in reasons]
    attention = ibis.array(parts).filter(lambda x: x.notnull()).join(", ")
    out = r.select(
        "machine_id", "path", "repo", "url", "status", "branch", "ahead", "behind", "dirty", "mismatch",
        "in_status", "collected_at", age_seconds=age_seconds(now, r.collected_at),
        attention=ibis.cases((attention == "", ibis.null("string")), else_=attention),
    )
    return out.order_by(["machine_id", "path"])


def repo_summary(con: ibis.BaseBackend, now: datetime, machine_ids: Sequence[str] | None = None) -> ir.Table:
    """Per machine: how many repos, and how many are dirty, ahead, behind, diverged, broken or unknown."""
    r = latest_repos(con, now, machine_ids)
    return r.group_by("machine_id").agg(
        repos=r.count(),
        dirty=r.dirty.fill_null(False).sum(),
        ahead=(r.ahead > 0).fill_null(False).sum(),
        behind=(r.behind > 0).fill_null(False).sum(),
        diverged=(r.status == "diverged").fill_null(False).sum(),
        mismatched=r.mismatch.fill_null(False).sum(),
        broken=(r.status.isin(list(BROKEN_STATUSES)) | (r.in_status == False)).fill_null(False).sum(),  # noqa: E712
        unknown=(r.ahead.isnull() | r.behind.isnull()).sum(),
        needs_attention=r.attention.notnull().sum(),
        collected_at=r.collected_at.max(),
        age_seconds=r.age_seconds.min(),
    ).order_by("machine_id")


def fleet_repo_totals(con: ibis.BaseBackend, now: datetime, machine_ids: Sequence[str] | None = None) -> ir.Table:
    """One row: repo clones across the fleet and how many of them need attention, by reason."""
    s = repo_summary(con, now, machine_ids)
    return s.aggregate(
        machines=s.count(), repos=s.repos.sum(), dirty=s.dirty.sum(), ahead=s.ahead.sum(), behind=s.behind.sum(),
        diverged=s.diverged.sum(), mismatched=s.mismatched.sum(), broken=s.broken.sum(),
        needs_attention=s.needs_attention.sum(), oldest_age_seconds=s.age_seconds.max(),
    )

"""Tool availability per machine: which upstream tools each machine has, from its latest check.

A tool that a machine did not answer for has no row at all (unknown is not absent), so the
machine × tool grid leaves that cell empty instead of claiming the tool is missing.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import ibis
import ibis.expr.types as ir

from workbench.views.snapshots import age_seconds, latest_rows, scoped


def tool_availability(con: ibis.BaseBackend, now: datetime, machine_ids: Sequence[str] | None = None) -> ir.Table:
    """One row per (machine, tool): present or not, path and version, at that tool's latest check."""
    c = latest_rows(scoped(con.table("machine_tool_capabilities"), machine_ids), ["machine_id", "tool"],
                    ts="checked_at")
    return c.select("machine_id", "tool", "present", "path", "version", "checked_at",
                    age_seconds=age_seconds(now, c.checked_at)).order_by(["machine_id", "tool"])


def tool_coverage(con: ibis.BaseBackend, now: datetime, machine_ids: Sequence[str] | None = None) -> ir.Table:
    """Per tool: on how many of the checked machines it is present, and which versions are seen."""
    a = tool_availability(con, now, machine_ids)
    return a.group_by("tool").agg(
        machines_checked=a.count(),
        machines_present=a.present.sum(),
        versions=a.version.collect(distinct=True, order_by=a.version),
        last_checked_at=a.checked_at.max(),
    ).order_by([ibis.desc("machines_present"), "tool"])

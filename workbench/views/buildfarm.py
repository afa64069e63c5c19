"""The build farm (rch): workers and slots, queue depth over time, completed builds.

Queue depth comes from the `rch status` snapshots (queued builds listed by the daemon at each
collection) rather than from the Prometheus gauge: status is collected on every machine running
rch, /metrics only where its loopback endpoint is reachable, and drawing both would show each
reading twice.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import ibis
import ibis.expr.types as ir

from workbench.views.snapshots import age_seconds, latest_rows, scoped

# Worker statuses that still take builds.
SERVING = ("healthy", "degraded")


def latest_status(con: ibis.BaseBackend, now: datetime, machine_ids: Sequence[str] | None = None) -> ir.Table:
    """Each machine's latest `rch status`: posture, daemon, workers and slots, queue, build stats."""
    s = latest_rows(scoped(con.table("rch_status_snapshots"), machine_ids), ["machine_id"])
    return s.select(
        "machine_id", "collected_at", "success", "error_code", "error_message", "posture", "daemon_version",
        "uptime_secs", "workers_total", "workers_healthy", "slots_total", "slots_available", "active_builds",
        "queued_builds", "issues_count", "alerts_active", "total_builds", "success_count", "failure_count",
        "remote_count", "local_count", "avg_duration_ms", "time_saved_ms",
        age_seconds=age_seconds(now, s.collected_at),
    ).order_by("machine_id")


def workers(con: ibis.BaseBackend, now: datetime, machine_ids: Sequence[str] | None = None) -> ir.Table:
    """Workers as each machine's daemon last listed them: status, circuit, slots in use, last error."""
    w = latest_rows(scoped(con.table("rch_workers_snapshots"), machine_ids), ["machine_id"])
    return w.select(
        "machine_id", "worker_id", "host", "status", "circuit_state", "used_slots", "total_slots", "speed_score",
        "consecutive_failures", "recent_checks", "recent_failures", "recovery_in_secs", "last_error",
        "pressure_state", "collected_at",
        slots_used_pct=ibis.cases((w.total_slots > 0, 100.0 * w.used_slots / w.total_slots),
                                  else_=ibis.null("float64")),
        serving=w.status.isin(list(SERVING)).fill_null(False),
        age_seconds=age_seconds(now, w.collected_at),
    ).order_by(["machine_id", "worker_id"])


def farm_totals(con: ibis.BaseBackend, now: datetime, machine_ids: Sequence[str] | None = None) -> ir.Table:
    """One row over every daemon's latest status: workers, slots, queue, active builds, failing daemons."""
    s = latest_status(con, now, machine_ids)
    return s.aggregate(
        daemons=s.count(), daemons_failing=(~s.success).sum(), workers_total=s.workers_total.sum(),
        workers_healthy=s.workers_healthy.sum(), slots_total=s.slots_total.sum(),
        slots_available=s.slots_available.sum(), queued_builds=s.queued_builds.sum(),
        active_builds=s.active_builds.sum(), degraded=(s.posture != "remote_ready").fill_null(True).sum(),
        oldest_age_seconds=s.age_seconds.max(),
    )


def queue_series(con: ibis.BaseBackend, start: datetime, end: datetime,
                 machine_ids: Sequence[str] | None = None) -> ir.Table:
    """Per machine and collection: queued and active builds and free slots (as reported, not resampled)."""
    s = scoped(con.table("rch_status_snapshots"), machine_ids, start, end)
    s = s.filter(s.success)
    return s.select(
        "machine_id", ts=s.collected_at, queued_builds=s.queued_builds, active_builds=s.active_builds,
        slots_available=s.slots_available, slots_total=s.slots_total,
    ).order_by(["machine_id", "ts"])


def recent_builds(con: ibis.BaseBackend, start: datetime, end: datetime, machine_ids: Sequence[str] | None = None,
                  limit: int = 200) -> ir.Table:
    """Completed builds that started in [start, end], newest first."""
    b = scoped(con.table("rch_build_events"), machine_ids, start, end, ts="started_at")
    return b.select(
        "machine_id", "build_id", "started_at", "completed_at", "project_id", "worker_id", "command", "exit_code",
        "duration_ms", "location", "bytes_transferred", "cancelled",
        failed=(b.exit_code != 0).fill_null(False) & ~b.cancelled.fill_null(False),
    ).order_by([ibis.desc("started_at"), "machine_id", "build_id"]).limit(limit)


def build_summary(con: ibis.BaseBackend, start: datetime, end: datetime,
                  machine_ids: Sequence[str] | None = None) -> ir.Table:
    """Per machine: builds started in the window, failures, mean duration, how many ran remotely."""
    b = scoped(con.table("rch_build_events"), machine_ids, start, end, ts="started_at")
    failed = (b.exit_code != 0).fill_null(False) & ~b.cancelled.fill_null(False)
    return b.group_by("machine_id").agg(
        builds=b.count(), failed=failed.sum(), cancelled=b.cancelled.fill_null(False).sum(),
        remote=(b.location == "remote").fill_null(False).sum(), mean_duration_ms=b.duration_ms.mean(),
        last_started_at=b.started_at.max(),
    ).order_by("machine_id")


def build_totals(con: ibis.BaseBackend, start: datetime, end: datetime,
                 machine_ids: Sequence[str] | None = None) -> ir.Table:
    """One row: builds started in the window and how many failed."""
    s = build_summary(con, start, end, machine_ids)
    return s.aggregate(builds=s.builds.sum(), failed=s.failed.sum(), remote=s.remote.sum())

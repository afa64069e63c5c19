"""Operational views: poll freshness, collector runs, lock contention, active alerts."""

from __future__ import annotations

from datetime import datetime, timedelta

import ibis
import ibis.expr.types as ir


def poll_freshness(con: ibis.BaseBackend, now: datetime) -> ir.Table:
    """One row: when the daemon last finished a collector run, how long ago, and the last hour's tally."""
    r = con.table("collector_runs")
    hour_ago = now - timedelta(hours=1)
    recent = r.started_at >= hour_ago
    return r.aggregate(
        last_run_at=r.finished_at.max(),
        runs_last_hour=recent.sum(),
        errors_last_hour=(recent & r.status.isin(["error", "timeout"])).sum(),
        warnings_last_hour=(recent & (r.status == "warning")).sum(),
    ).mutate(
        age_seconds=lambda t: (ibis.literal(now).epoch_seconds() - t.last_run_at.epoch_seconds()).cast("float64")
    )


def collector_status(con: ibis.BaseBackend, now: datetime, machine_ids: list[str] | None = None) -> ir.Table:
    """Machine × collector: latest run, its status, duration, rows, last error and freshness."""
    r = con.table("collector_runs")
    if machine_ids is not None:
        r = r.filter(r.machine_id.isin(machine_ids))
    last = r.group_by(["machine_id", "collector"]).agg(
        last_started_at=r.started_at.max(),
        status=r.status.argmax(r.started_at),
        duration_ms=r.duration_ms.argmax(r.started_at),
        rows_written=r.rows_written.argmax(r.started_at),
        last_error=r.error.argmax(r.started_at),
        runs=r.count(),
        errors=r.status.isin(["error", "timeout"]).sum(),
    )
    errs = r.filter(r.error.notnull()).group_by(["machine_id", "collector"]).agg(
        last_error_at=r.started_at.max()
    )
    j = last.left_join(errs, (last.machine_id == errs.machine_id) & (last.collector == errs.collector))
    return j.select(
        last.machine_id, last.collector, last.last_started_at, last.status, last.duration_ms,
        last.rows_written, last.runs, last.errors, last.last_error, errs.last_error_at,
        age_seconds=(ibis.literal(now).epoch_seconds() - last.last_started_at.epoch_seconds()).cast("float64"),
    ).order_by(["machine_id", "collector"])


def recent_runs(con: ibis.BaseBackend, limit: int = 200, machine_id: str | None = None,
                machine_ids: list[str] | None = None, since: datetime | None = None) -> ir.Table:
    r = con.table("collector_runs")
    if machine_id:
        r = r.filter(r.machine_id == machine_id)
    if machine_ids is not None:
        r = r.filter(r.machine_id.isin(machine_ids))
    if since is not None:
        r = r.filter(r.started_at >= since)
    return r.order_by(ibis.desc("started_at")).limit(limit)


def lock_contention(con: ibis.BaseBackend, now: datetime, hours: int = 24) -> ir.Table:
    """Who blocked writes, how often and for how long (written by the store when a write waited)."""
    e = con.table("store_lock_events")
    e = e.filter(e.ts >= now - timedelta(hours=hours))
    return e.group_by(["writer", "blocked_by", "outcome"]).agg(
        events=e.count(), total_wait_ms=e.waited_ms.sum(), max_wait_ms=e.waited_ms.max(), last_at=e.ts.max()
    ).order_by(ibis.desc("total_wait_ms"))


def active_alerts(con: ibis.BaseBackend, machine_ids: list[str] | None = None) -> ir.Table:
    """Alerts pending or firing, with their latest ack if any."""
    a = con.table("alerts")
    if machine_ids is not None:
        a = a.filter(a.machine_id.isin(machine_ids))
    k = con.table("alert_acks")
    last_ack = k.group_by("alert_id").agg(
        acked_at=k.acked_at.max(), acked_by=k.acked_by.argmax(k.acked_at), ack_note=k.note.argmax(k.acked_at)
    )
    active = a.filter(a.state.isin(["pending", "firing"]))
    j = active.left_join(last_ack, active.alert_id == last_ack.alert_id)
    return j.select(active, last_ack.acked_at, last_ack.acked_by, last_ack.ack_note).order_by(
        ibis.desc("started_at")
    )


def active_alert_count(con: ibis.BaseBackend, machine_ids: list[str] | None = None) -> ir.Table:
    a = active_alerts(con, machine_ids)
    return a.aggregate(active=a.count(), unacked=a.acked_at.isnull().sum())

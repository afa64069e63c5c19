"""Named metric series for alert rules: a registry of Ibis views.

A rule names a source ("disk_free_pct"); the source is a view that takes an Ibis backend and a
time range and returns long rows: its label columns (machine_id first, then keys such as mount),
`ts` and `value`. Rule files therefore never hold SQL, and a new signal is one decorated function:

    @source("rch_queue_depth", table="rch_status", unit="jobs",
            description="Jobs waiting in the remote compilation queue.")
    def rch_queue_depth(con, start, end):
        t = con.table("rch_status")
        t = t.filter((t.collected_at >= start) & (t.collected_at <= end))
        return t.select("machine_id", ts=t.collected_at, value=t.queue_depth.cast("float64"))

Sources stay plain views: they do not decide what is bad. Thresholds, rates, forecasts and
absence live in the rules and the engine.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

import ibis
import ibis.expr.types as ir

from workbench.alerts.model import Series, utc

log = logging.getLogger("vc.alerts")

SourceFn = Callable[[ibis.BaseBackend, datetime, datetime], ir.Table]
# "latest" fetches only each series' newest point at or before `now`, however old (absence rules).
FetchMode = Literal["window", "latest"]
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class SourceSpec:
    name: str
    fn: SourceFn
    table: str
    labels: tuple[str, ...]
    unit: str
    description: str
    value_type: Literal["number", "string"] = "number"


REGISTRY: dict[str, SourceSpec] = {}


class UnknownSourceError(KeyError):
    def __str__(self) -> str:
        return str(self.args[0])


def source(name: str, *, table: str, labels: tuple[str, ...] = ("machine_id",), unit: str = "",
           description: str = "", value_type: Literal["number", "string"] = "number"
           ) -> Callable[[SourceFn], SourceFn]:
    """Register `fn` as the series `name`; it must return columns labels + (ts, value)."""

    def register(fn: SourceFn) -> SourceFn:
        if name in REGISTRY and REGISTRY[name].fn is not fn:
            raise ValueError(f"alert source {name!r} is registered twice")
        REGISTRY[name] = SourceSpec(name, fn, table, tuple(labels), unit,
                                    description or (fn.__doc__ or "").strip(), value_type)
        return fn

    return register


def get_source(name: str) -> SourceSpec:
    try:
        return REGISTRY[name]
    except KeyError:
        known = ", ".join(sorted(REGISTRY)) or "none"
        raise UnknownSourceError(f"unknown source {name!r}; known sources: {known}") from None


def source_expr(con: ibis.BaseBackend, spec: SourceSpec, start: datetime, end: datetime,
                mode: FetchMode = "window") -> ir.Table:
    """The source's rows for [start, end], or each series' newest row at or before `end`."""
    expr = spec.fn(con, _EPOCH if mode == "latest" else start, end)
    missing = [c for c in (*spec.labels, "ts", "value") if c not in expr.columns]
    if missing:
        raise ValueError(f"alert source {spec.name!r} did not return column(s) {', '.join(missing)}")
    expr = expr.filter(expr.ts <= end)
    if mode == "latest":
        expr = expr.group_by(list(spec.labels)).agg(ts=expr.ts.max(), value=expr.value.argmax(expr.ts))
    return expr.select(*spec.labels, "ts", "value")


def fetch_series(con: ibis.BaseBackend, needs: Iterable[tuple[str, FetchMode, timedelta]],
                 now: datetime, errors: dict[str, str] | None = None) -> dict[str, list[Series]]:
    """Run each needed source once per mode (widest lookback) and group rows into Series.

    Every source read is a key of the result (an empty list: no data). A source whose query fails
    is left out and its error put in `errors`, so the engine keeps its alerts as they were rather
    than resolving them for lack of data.
    """
    now = utc(now)
    plan: dict[tuple[str, FetchMode], timedelta] = {}
    for name, mode, lookback in needs:
        k = (name, mode)
        plan[k] = max(plan.get(k, timedelta(0)), lookback)
    points: dict[str, dict[tuple[tuple[str, str], ...], dict[datetime, object]]] = {}
    failed: dict[str, str] = {}
    for (name, mode), lookback in sorted(plan.items()):
        per_series = points.setdefault(name, {})
        try:
            spec = get_source(name)
            rows = source_expr(con, spec, now - lookback, now, mode).to_pyarrow().to_pylist()
        except Exception as exc:  # one broken source must not silence the others
            failed[name] = f"{type(exc).__name__}: {exc}"
            log.warning("alert source %s (%s) failed: %s", name, mode, failed[name])
            continue
        for row in rows:
            if row["ts"] is None:
                continue
            labels = tuple(sorted((lab, "" if row[lab] is None else str(row[lab])) for lab in spec.labels))
            per_series.setdefault(labels, {})[utc(row["ts"])] = row["value"]
    if errors is not None:
        errors.update(failed)
    out: dict[str, list[Series]] = {}
    for name, by_labels in points.items():
        if name in failed:
            continue
        table = REGISTRY[name].table
        out[name] = [Series.of(name, dict(labels), list(pts.items()), table)
                     for labels, pts in sorted(by_labels.items())]
    return out


# ---------------------------------------------------------------- sources from current tables

# Read-only images are always 100 % used; alerting on them would be noise forever.
FULL_BY_DESIGN = ("iso9660", "udf", "squashfs", "erofs", "cramfs")


@source("disk_free_pct", table="sys_filesystems", labels=("machine_id", "mount"), unit="%",
        description="Free space per mount as `df` shows it (100 - used %, reserved blocks excluded).")
def disk_free_pct(con: ibis.BaseBackend, start: datetime, end: datetime) -> ir.Table:
    f = con.table("sys_filesystems")
    f = f.filter((f.ts >= start) & (f.ts <= end) & (f.total_bytes.isnull() | (f.total_bytes > 0))
                 & ~ibis.coalesce(f.fstype, "").isin(FULL_BY_DESIGN))
    value = ibis.coalesce(100.0 - f.used_pct, 100.0 * f.free_bytes / f.total_bytes)
    return f.select("machine_id", "mount", "ts", value=value.cast("float64"))


@source("load5_per_core", table="sys_samples", unit="x",
        description="5-minute load average divided by the machine's CPU count.")
def load5_per_core(con: ibis.BaseBackend, start: datetime, end: datetime) -> ir.Table:
    s = con.table("sys_samples")
    s = s.filter((s.ts >= start) & (s.ts <= end) & s.load5.notnull())
    m = con.table("machines").select(m_id="machine_id", m_cores="cpu_count")
    j = s.left_join(m, s.machine_id == m.m_id)
    cores = ibis.coalesce(j.cpu_count, j.m_cores)
    j = j.filter(cores > 0)
    return j.select("machine_id", "ts", value=(j.load5 / cores.cast("float64")).cast("float64"))


@source("swap_used_pct", table="sys_samples", unit="%",
        description="Swap used as a percentage of swap size; machines without swap have no series.")
def swap_used_pct(con: ibis.BaseBackend, start: datetime, end: datetime) -> ir.Table:
    s = con.table("sys_samples")
    s = s.filter((s.ts >= start) & (s.ts <= end) & (s.swap_total_bytes > 0) & s.swap_used_bytes.notnull())
    pct = 100.0 * s.swap_used_bytes / s.swap_total_bytes
    return s.select("machine_id", "ts", value=pct.cast("float64"))


@source("sample_age_seconds", table="sys_samples", unit="s",
        description="The machine's system samples as heartbeats (age 0 at each sample); the absence "
                    "kind turns them into seconds since the last sample. Disabled machines are left out.")
def sample_age_seconds(con: ibis.BaseBackend, start: datetime, end: datetime) -> ir.Table:
    s = con.table("sys_samples")
    s = s.filter((s.ts >= start) & (s.ts <= end))
    disabled = con.table("machines").filter(lambda m: ~m.enabled).select(d_id="machine_id")
    s = s.anti_join(disabled, s.machine_id == disabled.d_id)
    return s.select("machine_id", "ts", value=ibis.literal(0.0))


# ---------------------------------------------------------------- sources from the fleet's tools

@source("cass_index_age_seconds", table="cass_health_snapshots", unit="s",
        description="Age of the cass search index as cass reported it at each collection.")
def cass_index_age_seconds(con: ibis.BaseBackend, start: datetime, end: datetime) -> ir.Table:
    c = con.table("cass_health_snapshots")
    c = c.filter((c.collected_at >= start) & (c.collected_at <= end) & c.index_age_seconds.notnull())
    return c.select("machine_id", ts=c.collected_at, value=c.index_age_seconds.cast("float64"))


@source("dirty_repos", table="repo_status_snapshots", unit="repos",
        description="Repos with uncommitted changes per machine at each `ru status` collection.")
def dirty_repos(con: ibis.BaseBackend, start: datetime, end: datetime) -> ir.Table:
    r = con.table("repo_status_snapshots")
    r = r.filter((r.collected_at >= start) & (r.collected_at <= end))
    # A collection where ru reported no dirtiness at all (every value NULL) is no data, not zero.
    agg = r.group_by(["machine_id", "collected_at"]).agg(
        value=r.dirty.cast("int64").sum().cast("float64"), known=r.dirty.count())
    agg = agg.filter(agg.known > 0)
    return agg.select("machine_id", ts=agg.collected_at, value=agg.value)


def _rch_ok(con: ibis.BaseBackend, start: datetime, end: datetime) -> ir.Table:
    s = con.table("rch_status_snapshots")
    return s.filter((s.collected_at >= start) & (s.collected_at <= end) & s.success)


@source("rch_queue_depth", table="rch_status_snapshots", unit="builds",
        description="Builds waiting in the rch queue (answered status calls only).")
def rch_queue_depth(con: ibis.BaseBackend, start: datetime, end: datetime) -> ir.Table:
    s = _rch_ok(con, start, end)
    s = s.filter(s.queued_builds.notnull())
    return s.select("machine_id", ts=s.collected_at, value=s.queued_builds.cast("float64"))


@source("rch_workers_while_builds_active", table="rch_status_snapshots", unit="workers",
        description="Healthy rch workers, only at collections where builds were running or queued and "
                    "workers are configured (a machine without workers builds locally by design).")
def rch_workers_while_builds_active(con: ibis.BaseBackend, start: datetime, end: datetime) -> ir.Table:
    s = _rch_ok(con, start, end)
    busy = ibis.coalesce(s.active_builds, 0) + ibis.coalesce(s.queued_builds, 0)
    s = s.filter((busy > 0) & (s.workers_total > 0) & s.workers_healthy.notnull())
    return s.select("machine_id", ts=s.collected_at, value=s.workers_healthy.cast("float64"))


@source("anomaly_score", table="anomalies", labels=("machine_id", "metric"), unit="score",
        description="The statistical detector's score per machine and metric (rows exist only where it flagged).")
def anomaly_score(con: ibis.BaseBackend, start: datetime, end: datetime) -> ir.Table:
    a = con.table("anomalies")
    a = a.filter((a.ts >= start) & (a.ts <= end) & (a.detector == "robust_seasonal"))
    return a.select("machine_id", "metric", "ts", value=a.score.cast("float64"))


# ---------------------------------------------------------------- the kernel, via system samples

@source("oom_kills", table="sys_samples", unit="kills",
        description="The kernel's cumulative OOM-kill count (/proc/vmstat oom_kill; 0 again after a reboot). "
                    "A counter: rules read it with kind rate. Kernels without it (< 4.13) have no series.")
def oom_kills(con: ibis.BaseBackend, start: datetime, end: datetime) -> ir.Table:
    s = con.table("sys_samples")
    s = s.filter((s.ts >= start) & (s.ts <= end) & s.oom_kill_total.notnull())
    return s.select("machine_id", "ts", value=s.oom_kill_total.cast("float64"))


@source("inotify_watches_used_pct", table="sysmoni_snapshots", unit="%",
        description="inotify watches in use (sysmoni NrWatches) as a percentage of fs.inotify.max_user_watches. "
                    "The limit is per user and the count machine-wide: exact on the usual one-user agent box, "
                    "an overestimate where several users hold watches.")
def inotify_watches_used_pct(con: ibis.BaseBackend, start: datetime, end: datetime) -> ir.Table:
    s = con.table("sysmoni_snapshots")
    s = s.filter((s.ts >= start) & (s.ts <= end) & s.inotify_nr_watches.notnull()
                 & (s.inotify_max_user_watches > 0))
    pct = 100.0 * s.inotify_nr_watches / s.inotify_max_user_watches
    return s.select("machine_id", "ts", value=pct.cast("float64"))


# ---------------------------------------------------------------- event and state tables, per collection
#
# dcg decisions and agent-mail recipients change only when something happens, so their rows alone
# cannot say "still 0 denies" or "still unread" ten minutes later. These sources therefore sample at
# the instants the collector looked (its answered runs in collector_runs): a machine whose collector
# stops answering goes stale like any other series instead of repeating its last state forever.

ANSWERED = ("ok", "warning")
HOUR = timedelta(hours=1)
HOUR_S = int(HOUR.total_seconds())
# An ack-required message not acked this long after it was sent is overdue. Same default as the
# health factor (`health.mail_ack_due_seconds`), so the alert and the health score agree on what
# "overdue" means; mcp_agent_mail itself has no due time.
MAIL_ACK_DUE = timedelta(hours=1)


def _answered_runs(con: ibis.BaseBackend, collector: str, start: datetime, end: datetime) -> ir.Table:
    """(machine_id, ts): when `collector` (its `name`, as the runner records it) ran and answered in
    [start, end]: the sampling instants. A run that failed or timed out says nothing about the table."""
    r = con.table("collector_runs")
    r = r.filter((r.collector == collector) & r.status.isin(ANSWERED) & (r.started_at >= start)
                 & (r.started_at <= end))
    return r.select("machine_id", ts=r.started_at).distinct()


@source("dcg_denies_per_hour", table="dcg_events", unit="denies",
        description="Commands dcg denied in the hour before each answered dcg collection (0 is a reading).")
def dcg_denies_per_hour(con: ibis.BaseBackend, start: datetime, end: datetime) -> ir.Table:
    runs = _answered_runs(con, "dcg", start, end)
    e = con.table("dcg_events")
    e = e.filter((e.outcome == "deny") & (e.ts > start - HOUR) & (e.ts <= end))
    e = e.select(e_machine=e.machine_id, e_ts=e.ts)
    j = runs.left_join(e, [runs.machine_id == e.e_machine, e.e_ts > runs.ts - ibis.interval(seconds=HOUR_S),
                           e.e_ts <= runs.ts])
    return j.group_by(["machine_id", "ts"]).agg(value=j.e_ts.count().cast("float64"))


@source("dcg_deny_rule_id", table="dcg_events", value_type="string",
        description="The rule id (pack:pattern, e.g. core.git:reset-hard) of each command dcg denied, at the "
                    "decision's time. dcg's history does not record a rule's severity, so rules pick the "
                    "critical ones by name (dcg's docs/packs/*.md list each pattern's severity).")
def dcg_deny_rule_id(con: ibis.BaseBackend, start: datetime, end: datetime) -> ir.Table:
    e = con.table("dcg_events")
    rule = ibis.coalesce(e.rule_id, e.pack_id)
    e = e.filter((e.outcome == "deny") & (e.ts >= start) & (e.ts <= end) & rule.notnull())
    return e.select("machine_id", "ts", value=rule)


def _mail_at_runs(con: ibis.BaseBackend, start: datetime, end: datetime) -> ir.Table:
    """Each answered mcp_agent_mail run joined to the urgent or ack-required recipients seen by then,
    with when each was first seen read and acked (states only move unread → read → acked)."""
    runs = _answered_runs(con, "mcp_agent_mail", start, end)
    r = con.table("mail_recipients")
    r = r.filter(r.observed_at <= end)
    keys = ["machine_id", "db_path", "message_id", "message_created_at", "agent_id"]
    rec = r.group_by(keys).agg(
        seen_at=r.observed_at.min(),
        read_seen_at=r.observed_at.min(where=r.state.isin(("read", "acked"))),
        acked_seen_at=r.observed_at.min(where=r.state == "acked"),
        r_ack_required=r.ack_required.any(),
    )
    m = con.table("mail_messages")
    m = m.select(m_machine=m.machine_id, m_db=m.db_path, m_id=m.message_id, m_created=m.created_at,
                 urgent=ibis.coalesce(m.is_urgent, False) | (ibis.coalesce(m.importance, "").lower() == "urgent"),
                 m_ack_required=m.ack_required)
    rec = rec.left_join(m, [rec.machine_id == m.m_machine, rec.db_path == m.m_db, rec.message_id == m.m_id,
                            rec.message_created_at == m.m_created])
    rec = rec.select("machine_id", "message_created_at", "seen_at", "read_seen_at", "acked_seen_at",
                     urgent=ibis.coalesce(rec.urgent, False),
                     ack_required=ibis.coalesce(rec.r_ack_required, rec.m_ack_required, False))
    rec = rec.filter(rec.urgent | rec.ack_required).rename(rec_machine="machine_id")
    return runs.left_join(rec, [runs.machine_id == rec.rec_machine, rec.seen_at <= runs.ts])


@source("mail_urgent_unread", table="mail_recipients", unit="messages",
        description="Agent-mail deliveries (message × recipient) of importance 'urgent' still unread, at each "
                    "answered mcp_agent_mail collection (0 is a reading).")
def mail_urgent_unread(con: ibis.BaseBackend, start: datetime, end: datetime) -> ir.Table:
    j = _mail_at_runs(con, start, end)
    unread = j.urgent & (j.read_seen_at.isnull() | (j.read_seen_at > j.ts))
    return j.group_by(["machine_id", "ts"]).agg(value=j.ts.count(where=unread).cast("float64"))


@source("mail_ack_overdue", table="mail_recipients", unit="messages",
        description="Agent-mail deliveries that require an acknowledgement and are not acked 1 h (MAIL_ACK_DUE, "
                    "the health factor's default) after sending, at each answered mcp_agent_mail collection.")
def mail_ack_overdue(con: ibis.BaseBackend, start: datetime, end: datetime) -> ir.Table:
    j = _mail_at_runs(con, start, end)
    due = MAIL_ACK_DUE.total_seconds()
    overdue = (j.ack_required & (j.acked_seen_at.isnull() | (j.acked_seen_at > j.ts))
               & (j.message_created_at <= j.ts - ibis.interval(seconds=int(due))))
    return j.group_by(["machine_id", "ts"]).agg(value=j.ts.count(where=overdue).cast("float64"))


# ---------------------------------------------------------------- forecasts

# Forecast statuses that carry a time to the limit; every other status (resets first, not rising,
# too few points, reset passed) means "not exhausted before the window resets" and has no series.
RATE_ETA_STATUSES = ("reaches limit", "at limit")


@source("ratelimit_eta_seconds", table="predictions", labels=("machine_id", "account_key", "window_name"),
        unit="s",
        description="Seconds from now until an account's rate window is used up, per the newest rate_limit "
                    "forecast of each account and window; one series per machine that reports the account. "
                    "Absent when the newest forecast says the window resets first or usage is not rising.")
def ratelimit_eta_seconds(con: ibis.BaseBackend, start: datetime, end: datetime) -> ir.Table:
    p = con.table("predictions")
    p = p.filter((p.kind == "rate_limit") & (p.made_at >= start) & (p.made_at <= end))
    # The newest forecast decides: an older "reaches limit" must not outlive a newer "resets first".
    p = p.mutate(newest=p.made_at.max().over(ibis.window(group_by="subject")))
    p = p.filter((p.made_at == p.newest) & p.status.isin(RATE_ETA_STATUSES))
    end_s = end.timestamp()
    # Past the forecast's horizon (the window's reset, when known) it says nothing any more.
    p = p.filter(p.horizon_s.isnull() | (p.made_at.epoch_seconds() + p.horizon_s > end_s))
    p = p.filter((p.status == "at limit") | p.eta.notnull())
    # Counted from `end` (the evaluation time), not from made_at: a forecast that is some minutes old
    # still tells how long is left now.
    left = ibis.greatest(p.eta.epoch_seconds() - end_s, 0.0)
    value = ibis.ifelse(p.status == "at limit", 0.0, left)
    parts = p.subject.re_extract(r"^(.*)/([^/]*)$", 1), p.subject.re_extract(r"^(.*)/([^/]*)$", 2)
    p = p.select("made_at", account_key=parts[0], window_name=parts[1], value=value.cast("float64"),
                 machine=p.details_json.cast("json")["machines"].array.unnest())
    return p.select(machine_id=p.machine.str, account_key=p.account_key, window_name=p.window_name,
                    ts=p.made_at, value=p.value)

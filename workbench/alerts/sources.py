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

"""Explainable machine and fleet health.

Each factor maps one reading to a score in [0, 1] with a linear ramp between its `warn` (score 1)
and `crit` (score 0) thresholds, so a person can see exactly why a machine scored what it did.
A machine's score is the weighted mean of its factors, capped by its worst factor so that one full
disk cannot hide behind five healthy factors. A machine that was never collected, or has gone
silent, scores badly through the freshness factor: no data is not good news.
"""

from __future__ import annotations

from datetime import datetime

import ibis
import ibis.expr.types as ir

from workbench.config import HealthConfig, Threshold
from workbench.views.machines import machine_state

OK_AT = 0.8
WARN_AT = 0.5
# score <= WORST_CAP_BASE + WORST_CAP_SLOPE * worst factor score
WORST_CAP_BASE = 0.3
WORST_CAP_SLOPE = 0.7

FACTORS = ("cpu", "memory", "load_per_core", "swap", "disk", "freshness")


def _ramp(value: ir.NumericValue, th: Threshold) -> ir.NumericValue:
    span = max(th.crit - th.warn, 1e-9)
    raw = 1.0 - (value - th.warn) / span
    return ibis.greatest(ibis.least(raw, 1.0), 0.0)


def severity_of(score: ir.NumericValue) -> ir.StringValue:
    return ibis.cases((score.isnull(), "unknown"), (score >= OK_AT, "ok"), (score >= WARN_AT, "warning"),
                      else_="critical")


def health_factors(con: ibis.BaseBackend, cfg: HealthConfig, now: datetime,
                   tags: list[str] | None = None, machine_ids: list[str] | None = None) -> ir.Table:
    """Long table: machine_id, factor, value, unit, score, weight, detail (one row per factor)."""
    st = machine_state(con, now, tags, machine_ids)
    th, w = cfg.thresholds, cfg.weights

    def fmt(v: ir.NumericValue, digits: int = 1) -> ir.StringValue:
        return v.round(digits).cast("string")

    age = st.age_seconds
    parts = [
        ("cpu", st.cpu_pct, "%", _ramp(st.cpu_pct, th.cpu_pct), w.cpu,
         "CPU busy " + fmt(st.cpu_pct) + "%"),
        ("memory", st.mem_used_pct, "%", _ramp(st.mem_used_pct, th.memory_pct), w.memory,
         "memory used " + fmt(st.mem_used_pct) + "%"),
        ("load_per_core", st.load_per_core, "x", _ramp(st.load_per_core, th.load_per_core), w.load_per_core,
         "load5 per core " + fmt(st.load_per_core, 2)),
        ("swap", st.swap_used_pct, "%", _ramp(st.swap_used_pct, th.swap_pct), w.swap,
         "swap used " + fmt(st.swap_used_pct) + "%"),
        ("disk", st.worst_disk_pct, "%", _ramp(st.worst_disk_pct, th.disk_pct), w.disk,
         "fullest disk " + ibis.coalesce(st.worst_disk_mount, "?") + " at " + fmt(st.worst_disk_pct) + "%"),
        ("freshness", age, "s",
         ibis.cases((st.last_ts.isnull(), 0.0), else_=_ramp(age, th.stale_seconds)), w.freshness,
         ibis.cases((st.last_ts.isnull(), "never collected"),
                    else_="last sample " + fmt(age, 0) + "s ago")),
    ]
    tables = []
    for order, (name, value, unit, score, weight, detail) in enumerate(parts):
        tables.append(st.select(
            machine_id=st.machine_id,
            factor=ibis.literal(name),
            value=value.cast("float64"),
            unit=ibis.literal(unit),
            score=ibis.cases((value.isnull() & (name != "freshness"), ibis.null("float64")),
                             else_=score.cast("float64").round(4)),
            weight=ibis.literal(float(weight)),
            detail=ibis.cases((value.isnull() & (name != "freshness"), "no data"), else_=detail),
            # Ties (e.g. every factor at 1.0) name the same "worst" factor every time.
            tiebreak=ibis.literal(order * 1e-6),
        ))
    return ibis.union(*tables)


def all_health_factors(con: ibis.BaseBackend, cfg: HealthConfig, now: datetime,
                       tags: list[str] | None = None, machine_ids: list[str] | None = None,
                       interval_seconds: float | None = None) -> ir.Table:
    """The system factors plus the fleet factors of `workbench.views.health_fleet` (same columns)."""
    from workbench.views.health_fleet import fleet_health_factors

    sys_f = health_factors(con, cfg, now, tags, machine_ids)
    fleet_f = fleet_health_factors(con, cfg, now, tags, machine_ids, interval_seconds)
    return sys_f if fleet_f is None else ibis.union(sys_f, fleet_f)


def machine_health(con: ibis.BaseBackend, cfg: HealthConfig, now: datetime,
                   tags: list[str] | None = None, machine_ids: list[str] | None = None,
                   include_fleet: bool = False, interval_seconds: float | None = None) -> ir.Table:
    """One row per machine: score, severity, the worst factor by name, and its detail.

    `include_fleet` adds the fleet factors (agent friction, build farm, accounts, per-source freshness,
    temperature) to the system ones; off by default so existing pages keep their scores.
    """
    f = (all_health_factors(con, cfg, now, tags, machine_ids, interval_seconds) if include_fleet
         else health_factors(con, cfg, now, tags, machine_ids))
    scored = f.filter(f.score.notnull() & (f.weight > 0))
    agg = scored.group_by("machine_id").agg(
        weighted=(scored.score * scored.weight).sum() / scored.weight.sum(),
        worst_score=scored.score.min(),
        worst_factor=scored.factor.argmin(scored.score + scored.tiebreak),
        worst_detail=scored.detail.argmin(scored.score + scored.tiebreak),
        factors_scored=scored.count(),
    )
    capped = ibis.least(agg.weighted, WORST_CAP_BASE + WORST_CAP_SLOPE * agg.worst_score)
    out = agg.select(
        "machine_id", "worst_factor", "worst_detail", "worst_score", "factors_scored",
        score=capped.round(4),
    )
    st = machine_state(con, now, tags, machine_ids)
    j = st.join(out, st.machine_id == out.machine_id)
    return j.select(
        st.machine_id, st.display_name, st.tags, st.is_demo, st.last_ts, st.age_seconds,
        out.score, severity=severity_of(out.score), worst_factor=out.worst_factor,
        worst_detail=out.worst_detail, worst_score=out.worst_score,
    ).order_by([ibis.asc("score"), "machine_id"])


def fleet_health(con: ibis.BaseBackend, cfg: HealthConfig, now: datetime,
                 tags: list[str] | None = None, machine_ids: list[str] | None = None,
                 include_fleet: bool = False, interval_seconds: float | None = None) -> ir.Table:
    """One row: fleet score (mean of machines), counts by severity, and the worst machine named."""
    mh = machine_health(con, cfg, now, tags, machine_ids, include_fleet, interval_seconds)
    counts = mh.aggregate(
        score=mh.score.mean().round(4),
        machines=mh.count(),
        ok=(mh.severity == "ok").sum(),
        warning=(mh.severity == "warning").sum(),
        critical=(mh.severity == "critical").sum(),
    )
    # The worst machine is one whole row (not three independent arg_mins that could disagree on ties).
    worst = mh.order_by([ibis.asc("score"), "machine_id"]).limit(1).select(
        worst_machine=mh.machine_id, worst_factor=mh.worst_factor, worst_detail=mh.worst_detail,
        worst_score=mh.score,
    )
    agg = counts.cross_join(worst)
    # A fleet with any critical machine is at least in "warning", however healthy the rest.
    sev = severity_of(agg.score)
    return agg.mutate(severity=ibis.cases(((sev == "ok") & (agg.critical > 0), "warning"), else_=sev))

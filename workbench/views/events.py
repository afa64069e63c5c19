"""Fleet events: commands dcg stopped, network connections of AI CLIs (rano), stuck processes (pt).

Event views take a time window; pt plans and dcg stats are snapshots, so the latest per machine is shown.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import ibis
import ibis.expr.types as ir

from workbench.views.machines import pick_bucket_seconds
from workbench.views.snapshots import age_seconds, latest_rows, scoped


def bucket_seconds_for(start: datetime, end: datetime) -> int:
    """Bar width for event counts over [start, end]: per hour, coarser when that would be over ~48 bars."""
    return max(3600, pick_bucket_seconds(start, end, max_points=48))


# ---------------------------------------------------------------- dcg decisions

DENY = "deny"


def dcg_events(con: ibis.BaseBackend, start: datetime, end: datetime,
               machine_ids: Sequence[str] | None = None) -> ir.Table:
    return scoped(con.table("dcg_events"), machine_ids, start, end, ts="ts")


def dcg_denies_by_rule(con: ibis.BaseBackend, start: datetime, end: datetime,
                       machine_ids: Sequence[str] | None = None) -> ir.Table:
    """Per rule: commands dcg denied in the window, on how many machines, by which agents, the latest one."""
    e = dcg_events(con, start, end, machine_ids)
    e = e.filter(e.outcome == DENY)
    e = e.mutate(rule=ibis.coalesce(e.rule_id, e.pack_id, ibis.literal("unknown")))
    return e.group_by(["rule", "pack_id"]).agg(
        denies=e.count(),
        machines=e.machine_id.nunique(),
        agents=e.agent_type.collect(distinct=True, order_by=e.agent_type),
        last_ts=e.ts.max(),
        last_command=e.command.argmax(e.ts),
        last_machine=e.machine_id.argmax(e.ts),
        last_working_dir=e.working_dir.argmax(e.ts),
    ).order_by([ibis.desc("denies"), "rule"])


def dcg_denies_series(con: ibis.BaseBackend, start: datetime, end: datetime,
                      machine_ids: Sequence[str] | None = None, bucket_seconds: int | None = None) -> ir.Table:
    """Denies per rule per time bucket (an hour by default); buckets without denies are absent."""
    e = dcg_events(con, start, end, machine_ids)
    e = e.filter(e.outcome == DENY)
    step = bucket_seconds or bucket_seconds_for(start, end)
    e = e.mutate(bucket=e.ts.bucket(ibis.interval(seconds=step)),
                 rule=ibis.coalesce(e.rule_id, e.pack_id, ibis.literal("unknown")))
    return e.group_by(["bucket", "rule"]).agg(denies=e.count()).rename(ts="bucket").order_by(["rule", "ts"])


def dcg_totals(con: ibis.BaseBackend, start: datetime, end: datetime,
               machine_ids: Sequence[str] | None = None) -> ir.Table:
    """One row: decisions in the window by outcome, rules that denied, machines that reported."""
    e = dcg_events(con, start, end, machine_ids)
    deny = e.outcome == DENY
    return e.aggregate(
        decisions=e.count(), denies=deny.sum(), warns=(e.outcome == "warn").sum(),
        bypasses=(e.outcome == "bypass").sum(), allows=(e.outcome == "allow").sum(),
        rules=e.rule_id.nunique(where=deny), machines=e.machine_id.nunique(),
    )


def dcg_stats(con: ibis.BaseBackend, now: datetime, machine_ids: Sequence[str] | None = None) -> ir.Table:
    """Each machine's latest `dcg stats` totals (dcg's own window, 30 days by default)."""
    s = latest_rows(scoped(con.table("dcg_stats_snapshots"), machine_ids), ["machine_id"])
    return s.select("machine_id", "collected_at", "period_start", "period_end", "total_entries", "total_blocks",
                    "total_allows", "total_bypasses", "total_warns", "top_block_pack",
                    age_seconds=age_seconds(now, s.collected_at)).order_by("machine_id")


# ---------------------------------------------------------------- rano network events


def net_events(con: ibis.BaseBackend, start: datetime, end: datetime,
               machine_ids: Sequence[str] | None = None) -> ir.Table:
    return scoped(con.table("net_events"), machine_ids, start, end, ts="ts")


def net_by_provider(con: ibis.BaseBackend, start: datetime, end: datetime,
                    machine_ids: Sequence[str] | None = None) -> ir.Table:
    """Per (provider, domain): connections opened and closed, which programs, on how many machines."""
    e = net_events(con, start, end, machine_ids)
    e = e.mutate(provider=e.provider.fill_null("unknown"), domain=e.domain.fill_null(e.remote_ip))
    return e.group_by(["provider", "domain"]).agg(
        connects=(e.event == "connect").sum(),
        closes=(e.event == "close").sum(),
        mean_duration_ms=e.duration_ms.mean(),
        programs=e.comm.collect(distinct=True, order_by=e.comm),
        machines=e.machine_id.nunique(),
        first_ts=e.ts.min(),
        last_ts=e.ts.max(),
    ).order_by([ibis.desc("connects"), "provider", "domain"])


def net_series(con: ibis.BaseBackend, start: datetime, end: datetime, machine_ids: Sequence[str] | None = None,
               bucket_seconds: int | None = None) -> ir.Table:
    """Connections opened per provider per time bucket (buckets without events are absent, not 0)."""
    e = net_events(con, start, end, machine_ids)
    e = e.filter(e.event == "connect")
    step = bucket_seconds or bucket_seconds_for(start, end)
    e = e.mutate(bucket=e.ts.bucket(ibis.interval(seconds=step)), provider=e.provider.fill_null("unknown"))
    return e.group_by(["bucket", "provider"]).agg(connects=e.count()).rename(ts="bucket").order_by(["provider", "ts"])


# ---------------------------------------------------------------- pt process triage


def pt_plans(con: ibis.BaseBackend, now: datetime, machine_ids: Sequence[str] | None = None) -> ir.Table:
    """Each machine's latest pt plan: processes scanned, candidates, kill / review recommendations."""
    p = latest_rows(scoped(con.table("pt_plan_snapshots"), machine_ids), ["machine_id"])
    return p.select(
        "machine_id", "collected_at", "generated_at", "pt_version", "total_processes_scanned", "candidates_returned",
        "kill_recommendations", "review_recommendations", "policy_blocked", "expected_memory_freed_gb",
        "memory_total_gb", "memory_used_gb", age_seconds=age_seconds(now, p.collected_at),
    ).order_by("machine_id")


def pt_findings(con: ibis.BaseBackend, now: datetime, machine_ids: Sequence[str] | None = None) -> ir.Table:
    """The candidates of each machine's latest plan, highest score first."""
    f = latest_rows(scoped(con.table("pt_findings"), machine_ids), ["machine_id"])
    return f.select(
        "machine_id", "pid", "command_short", "command", "username", "classification", "score", "confidence",
        "recommended_action", "action_rationale", "age_seconds", "memory_mb", "cpu_percent", "p_abandoned",
        "risk_level", "policy_blocked", "collected_at", seen_age_seconds=age_seconds(now, f.collected_at),
    ).order_by([ibis.desc("score"), "machine_id", "pid"])


def net_totals(con: ibis.BaseBackend, start: datetime, end: datetime,
               machine_ids: Sequence[str] | None = None) -> ir.Table:
    """One row: connections opened in the window, providers and domains they went to."""
    e = net_events(con, start, end, machine_ids)
    return e.aggregate(connects=(e.event == "connect").sum(), providers=e.provider.nunique(),
                       domains=e.domain.nunique(), machines=e.machine_id.nunique())


def pt_totals(con: ibis.BaseBackend, now: datetime, machine_ids: Sequence[str] | None = None) -> ir.Table:
    """One row over the latest plans: processes scanned, kill / review recommendations, memory to free."""
    p = pt_plans(con, now, machine_ids)
    return p.aggregate(
        machines=p.count(), processes_scanned=p.total_processes_scanned.sum(),
        candidates_returned=p.candidates_returned.sum(), kill_recommendations=p.kill_recommendations.sum(),
        review_recommendations=p.review_recommendations.sum(),
        expected_memory_freed_gb=p.expected_memory_freed_gb.sum(),
    )

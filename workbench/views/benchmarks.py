"""Host benchmarks (cloud_benchmarker): is a host slower than it used to be?

cloud_benchmarker's overall score is relative to the other hosts of the same run (min-max across
hosts), so it moves when another host changes. The question a fleet operator asks of a VPS — "am I
still getting what I pay for?" — is answered against the host's own history instead: each metric of
its latest run over the median of its earlier runs in a look-back window. A median, not a mean, so
one bad run in the baseline does not hide the next one.

Hosts are named as the benchmarker's inventory names them; a host that is also a fleet machine id
follows the dashboard's machine filter.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

import ibis
import ibis.expr.types as ir

from workbench.views.snapshots import age_seconds, latest_rows

BASELINE_WINDOW = timedelta(days=7)
# (column, higher is better): a ratio below 1 - DEGRADED_BY (or above 1 + DEGRADED_BY for latencies)
# marks the metric degraded. 20 % is past sysbench's run-to-run noise (a few %) on a quiet host.
METRICS: tuple[tuple[str, bool], ...] = (
    ("cpu_events_per_second", True),
    ("fileio_reads_per_second", True),
    ("memory_mib_transferred", True),
    ("mutex_avg_latency_ms", False),
    ("threads_avg_latency_ms", False),
)
DEGRADED_BY = 0.20
LABELS = {"cpu_events_per_second": "CPU", "fileio_reads_per_second": "disk reads",
          "memory_mib_transferred": "memory throughput", "mutex_avg_latency_ms": "mutex latency",
          "threads_avg_latency_ms": "thread latency"}


def describe_degraded(row: dict) -> str:
    """'CPU 40% under its usual, thread latency 90% over its usual' for one latest_vs_baseline row."""
    parts = []
    for col in row["degraded_metrics"]:
        ratio = row[f"{col}_ratio"]
        parts.append(f"{LABELS[col]} {abs(ratio - 1) * 100:.0f}% {'under' if ratio < 1 else 'over'} its usual")
    return ", ".join(parts)


def _hosts(t: ir.Table, hosts: Sequence[str] | None) -> ir.Table:
    return t if hosts is None else t.filter(t.host.isin(list(hosts)))


def subscores(con: ibis.BaseBackend, start: datetime | None, end: datetime, hosts: Sequence[str] | None = None
              ) -> ir.Table:
    """Every run in [start, end] (start None: from the first): one row per host and run (a host read by
    two control nodes once)."""
    t = _hosts(con.table("benchmark_subscores"), hosts)
    t = t.filter(t.run_at <= end) if start is None else t.filter((t.run_at >= start) & (t.run_at <= end))
    t = t.group_by(["host", "run_at"]).agg(
        ip_address=t.ip_address.max(), **{c: t[c].max() for c, _ in METRICS})
    return t.order_by(["host", "run_at"])


def overall_scores(con: ibis.BaseBackend, start: datetime, end: datetime, hosts: Sequence[str] | None = None
                   ) -> ir.Table:
    """The benchmarker's own weighted score per host and run (0..100, relative to that run's hosts)."""
    t = _hosts(con.table("benchmark_overall_scores"), hosts)
    t = t.filter((t.run_at >= start) & (t.run_at <= end))
    return t.group_by(["host", "run_at"]).agg(overall_score=t.overall_score.max()).order_by(["host", "run_at"])


def latest_vs_baseline(con: ibis.BaseBackend, now: datetime, hosts: Sequence[str] | None = None,
                       window: timedelta = BASELINE_WINDOW) -> ir.Table:
    """Per host: its latest run, each metric's ratio to the median of its earlier runs within `window`,
    the metrics that fell by more than DEGRADED_BY, and its latest overall score.

    A host with no earlier run has NULL ratios (no baseline yet), never 1.0.
    """
    runs = subscores(con, None, now, hosts)
    last = latest_rows(runs, ["host"], ts="run_at")
    prior = runs.join(last.select("host", last_run=last.run_at), "host")
    prior = prior.filter((prior.run_at < prior.last_run) & (prior.run_at >= prior.last_run - window))
    base = prior.group_by("host").agg(baseline_runs=prior.count(),
                                      **{f"{c}_baseline": prior[c].median() for c, _ in METRICS})
    j = last.left_join(base, last.host == base.host)
    ratios = {f"{c}_ratio": ibis.cases((j[f"{c}_baseline"] > 0, j[c] / j[f"{c}_baseline"]),
                                       else_=ibis.null("float64")) for c, _ in METRICS}
    j = j.mutate(**ratios)
    flags = [ibis.cases(((j[f"{c}_ratio"] < 1 - DEGRADED_BY) if higher else (j[f"{c}_ratio"] > 1 + DEGRADED_BY),
                         ibis.literal(c)), else_=ibis.null("string")) for c, higher in METRICS]
    j = j.mutate(degraded_metrics=ibis.array(flags).filter(lambda x: x.notnull()))
    overall = con.table("benchmark_overall_scores")
    overall = latest_rows(_hosts(overall, hosts).filter(overall.run_at <= now), ["host"], ts="run_at")
    overall = overall.group_by("host").agg(overall_score=overall.overall_score.max(),
                                           overall_run_at=overall.run_at.max())
    j = j.left_join(overall, j.host == overall.host)
    fleet = con.table("machines").select(machine_host=ibis._.machine_id)
    j = j.left_join(fleet, j.host == fleet.machine_host)
    return j.select(
        "host", "run_at", "ip_address", *[c for c, _ in METRICS], *ratios,
        baseline_runs=j.baseline_runs.fill_null(0), degraded_metrics=j.degraded_metrics,
        degraded=(j.degraded_metrics.length() > 0).fill_null(False),
        overall_score=j.overall_score, in_fleet=j.machine_host.notnull(),
        age_seconds=age_seconds(now, j.run_at),
    ).order_by([ibis.desc("degraded"), "host"])

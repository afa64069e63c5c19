"""Fleet health factors: agent friction, infrastructure, accounts, per-source freshness, temperature.

Same contract as the system factors in `workbench.views.health`: one row per machine and factor with
machine_id, factor, value, unit, score (linear ramp, 1 at `warn`, 0 at `crit`), weight and detail,
so `machine_health(..., include_fleet=True)` scores them all together and the worst one is named.

A factor exists only where its source has data for the machine: a machine without rch, caut or
sysmoni temperatures has no such factor (rather than a perfect score that nobody measured). Every
query reads rows at or before `now`, so replaying history at an earlier `now` sees only the past.

Sources and what each factor means:
- dcg_denies: `dcg_events` with outcome 'deny' in the hour before `now` (machines dcg was ever
  read on; 0 denies in the hour is a reading).
- mail_urgent_unread / mail_ack_overdue: each mail recipient's current state (`mail_recipients`,
  newest row at or before `now`) joined to its message: urgent (importance 'urgent') and still
  unread; ack required and not acked `mail_ack_due_seconds` after it was sent (mcp_agent_mail has
  no due time of its own).
- net_short_conns: rano close events shorter than `short_conn_ms` in the last hour (machines rano
  was ever read on): connections that die at once, i.e. an agent CLI retrying against a failing
  endpoint. rano records no error field, so this is the closest honest signal to "repeated network errors".
- rch_queue: queued builds of the latest answered `rch status`.
- rch_workers: (active + queued builds) per healthy worker at the latest answered status; absent
  when the machine has no workers configured (it builds locally by design); no healthy worker while
  builds wait is the worst case (score 0).
- cass_index: the search index age cass reported at its latest health collection.
- accounts: the highest used % over every account and window in the machine's latest caut/caam
  collection (window 'none' and NULL used % are not readings).
- freshness:<collector>: seconds since that collector's last ok/warning run on the machine, in
  multiples of the collection interval; a collector that ran but never succeeded scores 0.
- temperature: sysmoni's hottest zone at its latest sample.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime

import ibis
import ibis.expr.types as ir

from workbench.config import HealthConfig, Threshold
from workbench.views.machines import machines

FLEET_FACTORS = ("dcg_denies", "mail_urgent_unread", "mail_ack_overdue", "net_short_conns", "rch_queue",
                 "rch_workers", "cass_index", "accounts", "freshness:<collector>", "temperature")
DEFAULT_INTERVAL_SECONDS = 60.0
FACTOR_SCHEMA = ibis.schema({"machine_id": "string", "factor": "string", "value": "float64", "unit": "string",
                             "score": "float64", "weight": "float64", "detail": "string", "tiebreak": "float64"})
# Tie-break offsets after the six system factors (health.py uses order * 1e-6 for 0..5).
_TIEBREAK_BASE = 10


def _ts(now: datetime) -> str:
    return f"TIMESTAMPTZ '{now.astimezone(UTC).isoformat()}'"


def _score_sql(value: str, th: Threshold) -> str:
    span = max(th.crit - th.warn, 1e-9)
    return f"round(greatest(least(1.0 - (({value}) - {th.warn!r}) / {span!r}, 1.0), 0.0), 4)"


def _columns(con: ibis.BaseBackend) -> dict[str, set[str]]:
    """Table → columns of the main schema (information_schema directly: this ibis/duckdb pair's
    `list_tables` calls a DuckDB method that no longer exists)."""
    rows = con.con.execute("SELECT table_name, column_name FROM information_schema.columns "
                           "WHERE table_schema = 'main'").fetchall()
    out: dict[str, set[str]] = {}
    for table, column in rows:
        out.setdefault(table, set()).add(column)
    return out


def _has(catalog: dict[str, set[str]], table: str, columns: Iterable[str]) -> bool:
    return table in catalog and all(c in catalog[table] for c in columns)


def _factor(order: int, factor_sql: str, value: str, unit: str, score: str, weight: float,
            detail: str, body: str) -> str:
    """SELECT in the factor schema over `body` (a FROM … clause that yields machine_id and the inputs)."""
    return (f"SELECT CAST(machine_id AS VARCHAR) AS machine_id, CAST({factor_sql} AS VARCHAR) AS factor, "
            f"CAST({value} AS DOUBLE) AS value, '{unit}' AS unit, CAST({score} AS DOUBLE) AS score, "
            f"CAST({float(weight)!r} AS DOUBLE) AS weight, CAST({detail} AS VARCHAR) AS detail, "
            f"CAST({(_TIEBREAK_BASE + order) * 1e-6!r} AS DOUBLE) AS tiebreak {body}")


def fleet_factor_sql(con: ibis.BaseBackend, cfg: HealthConfig, now: datetime,
                     interval_seconds: float | None = None) -> list[str]:
    """One SELECT per factor whose source table exists (an empty list when none does)."""
    th, w = cfg.thresholds, cfg.weights
    t = _ts(now)
    interval = float(cfg.source_interval_seconds or interval_seconds or DEFAULT_INTERVAL_SECONDS)
    parts: list[str] = []
    cat = _columns(con)

    if _has(cat, "dcg_events", ("machine_id", "ts", "outcome")):
        parts.append(_factor(
            0, "'dcg_denies'", "n", "/h", _score_sql("n", th.dcg_denies_per_hour), w.dcg_denies,
            "CAST(n AS BIGINT) || ' dcg denies in the last hour'",
            f"FROM (SELECT machine_id, count(*) FILTER (WHERE outcome = 'deny' AND ts > {t} - INTERVAL 1 HOUR) AS n "
            f"FROM dcg_events WHERE ts <= {t} GROUP BY machine_id)"))

    if (_has(cat, "mail_recipients", ("machine_id", "db_path", "message_id", "message_created_at", "agent_id",
                                      "state", "observed_at", "ack_required"))
            and _has(cat, "mail_messages", ("machine_id", "db_path", "message_id", "created_at", "importance",
                                            "is_urgent", "ack_required"))):
        due = float(cfg.mail_ack_due_seconds)
        # Each recipient's current state: its newest row (acked > read > unread on equal observed_at).
        body = (f"FROM (WITH cur AS (SELECT r.*, row_number() OVER (PARTITION BY r.machine_id, r.db_path, "
                f"r.message_id, r.message_created_at, r.agent_id ORDER BY r.observed_at DESC, "
                f"CASE r.state WHEN 'acked' THEN 2 WHEN 'read' THEN 1 ELSE 0 END DESC) AS rn "
                f"FROM mail_recipients r WHERE r.observed_at <= {t}) "
                f"SELECT cur.machine_id, "
                f"count(*) FILTER (WHERE cur.state = 'unread' AND (m.is_urgent OR m.importance = 'urgent')) "
                f"AS urgent, "
                f"count(*) FILTER (WHERE coalesce(cur.ack_required, m.ack_required) AND cur.state <> 'acked' "
                f"AND cur.message_created_at <= {t} - INTERVAL {int(due)} SECOND) AS overdue "
                f"FROM cur LEFT JOIN mail_messages m ON m.machine_id = cur.machine_id AND m.db_path = cur.db_path "
                f"AND m.message_id = cur.message_id AND m.created_at = cur.message_created_at "
                f"WHERE cur.rn = 1 GROUP BY cur.machine_id)")
        parts.append(_factor(
            1, "'mail_urgent_unread'", "urgent", "msgs", _score_sql("urgent", th.mail_urgent_unread),
            w.mail_urgent_unread, "CAST(urgent AS BIGINT) || ' urgent messages unread'", body))
        parts.append(_factor(
            2, "'mail_ack_overdue'", "overdue", "msgs", _score_sql("overdue", th.mail_ack_overdue),
            w.mail_ack_overdue,
            f"CAST(overdue AS BIGINT) || ' messages not acked {int(due) // 60} min after sending'", body))

    if _has(cat, "net_events", ("machine_id", "ts", "event", "duration_ms")):
        short = float(cfg.short_conn_ms)
        parts.append(_factor(
            3, "'net_short_conns'", "n", "/h", _score_sql("n", th.net_short_conns_per_hour), w.net_short_conns,
            f"CAST(n AS BIGINT) || ' connections closed within {short:g} ms in the last hour"
            f" (of ' || CAST(closes AS BIGINT) || ')'",
            f"FROM (SELECT machine_id, count(*) FILTER (WHERE duration_ms < {short!r} AND recent) AS n, "
            f"count(*) FILTER (WHERE recent) AS closes FROM (SELECT *, ts > {t} - INTERVAL 1 HOUR AS recent "
            f"FROM net_events WHERE event = 'close' AND duration_ms IS NOT NULL AND ts <= {t}) "
            f"GROUP BY machine_id)"))

    if _has(cat, "rch_status_snapshots", ("machine_id", "collected_at", "success", "queued_builds")):
        latest = (f"FROM (SELECT * FROM rch_status_snapshots s WHERE success AND collected_at = "
                  f"(SELECT max(collected_at) FROM rch_status_snapshots x WHERE x.machine_id = s.machine_id "
                  f"AND x.success AND x.collected_at <= {t}))")
        parts.append(_factor(
            4, "'rch_queue'", "queued_builds", "builds", _score_sql("queued_builds", th.rch_queue_depth),
            w.rch_queue, "CAST(queued_builds AS BIGINT) || ' builds queued in rch'",
            latest + " WHERE queued_builds IS NOT NULL"))
        busy = "(coalesce(active_builds, 0) + coalesce(queued_builds, 0))"
        per_worker = f"CASE WHEN workers_healthy > 0 THEN {busy} / workers_healthy ELSE NULL END"
        parts.append(_factor(
            5, "'rch_workers'", per_worker, "builds/worker",
            f"CASE WHEN workers_healthy > 0 THEN {_score_sql(per_worker, th.rch_builds_per_worker)} "
            f"WHEN {busy} > 0 THEN 0.0 ELSE 1.0 END",
            w.rch_workers,
            f"CAST({busy} AS BIGINT) || ' builds active or queued on ' || CAST(workers_healthy AS BIGINT) "
            f"|| '/' || CAST(workers_total AS BIGINT) || ' healthy workers'",
            latest + " WHERE workers_total > 0 AND workers_healthy IS NOT NULL"))

    if _has(cat, "cass_health_snapshots", ("machine_id", "collected_at", "index_age_seconds")):
        parts.append(_factor(
            6, "'cass_index'", "index_age_seconds", "s", _score_sql("index_age_seconds", th.cass_index_age_seconds),
            w.cass_index, "'cass index ' || CAST(round(index_age_seconds / 3600.0, 1) AS VARCHAR) || ' h old'",
            f"FROM (SELECT * FROM cass_health_snapshots s WHERE index_age_seconds IS NOT NULL AND collected_at = "
            f"(SELECT max(collected_at) FROM cass_health_snapshots x WHERE x.machine_id = s.machine_id "
            f"AND x.index_age_seconds IS NOT NULL AND x.collected_at <= {t}))"))

    if _has(cat, "account_usage_snapshots", ("machine_id", "collected_at", "used_pct", "account_key")):
        parts.append(_factor(
            7, "'accounts'", "used", "%", _score_sql("used", th.account_used_pct), w.accounts,
            "'most used: ' || worst || ' at ' || CAST(round(used, 1) AS VARCHAR) || '% ('"
            " || CAST(n AS BIGINT) || ' account windows)'",
            f"FROM (SELECT machine_id, max(used_pct) AS used, arg_max(account_key || ' ' || window_name, used_pct) "
            f"AS worst, count(*) AS n FROM account_usage_snapshots s WHERE used_pct IS NOT NULL "
            f"AND window_name <> 'none' AND collected_at = (SELECT max(collected_at) FROM account_usage_snapshots x "
            f"WHERE x.machine_id = s.machine_id AND x.collected_at <= {t}) GROUP BY machine_id)"))

    if _has(cat, "collector_runs", ("machine_id", "collector", "started_at", "status")):
        age = f"(epoch({t}) - epoch(last_ok)) / {interval!r}"
        parts.append(_factor(
            8, "'freshness:' || collector", f"CASE WHEN last_ok IS NULL THEN NULL ELSE {age} END", "intervals",
            f"CASE WHEN last_ok IS NULL THEN 0.0 ELSE {_score_sql(age, th.source_age_intervals)} END",
            w.source_freshness,
            f"CASE WHEN last_ok IS NULL THEN collector || ': no ok run among ' || CAST(runs AS BIGINT) "
            f"|| ' (last: ' || last_status || ')' ELSE collector || ' last ok ' || "
            f"CAST(round(epoch({t}) - epoch(last_ok)) AS BIGINT) || 's ago (interval {interval:g}s)' END",
            f"FROM (SELECT machine_id, collector, count(*) AS runs, "
            f"max(coalesce(finished_at, started_at)) FILTER (WHERE status IN ('ok', 'warning')) AS last_ok, "
            f"arg_max(status, started_at) AS last_status FROM collector_runs WHERE started_at <= {t} "
            f"AND status <> 'skipped' GROUP BY machine_id, collector)"))

    if _has(cat, "sysmoni_snapshots", ("machine_id", "ts", "temp_max_c")):
        parts.append(_factor(
            9, "'temperature'", "temp_max_c", "°C", _score_sql("temp_max_c", th.temp_c), w.temperature,
            "'hottest ' || coalesce(temp_max_zone, '?') || ' at ' || CAST(round(temp_max_c, 1) AS VARCHAR) || ' °C'",
            f"FROM (SELECT * FROM sysmoni_snapshots s WHERE temp_max_c IS NOT NULL AND ts = "
            f"(SELECT max(ts) FROM sysmoni_snapshots x WHERE x.machine_id = s.machine_id "
            f"AND x.temp_max_c IS NOT NULL AND x.ts <= {t}))"))
    return parts


def fleet_health_factors(con: ibis.BaseBackend, cfg: HealthConfig, now: datetime,
                         tags: list[str] | None = None, machine_ids: list[str] | None = None,
                         interval_seconds: float | None = None) -> ir.Table | None:
    """Long table of fleet factors for known machines (None when no fleet source table exists)."""
    parts = fleet_factor_sql(con, cfg, now, interval_seconds)
    if not parts:
        return None
    # An explicit schema: ibis would otherwise DESCRIBE the query through an API this DuckDB lacks.
    f = con.sql(" UNION ALL ".join(f"({p})" for p in parts), schema=FACTOR_SCHEMA)
    m = machines(con, tags, machine_ids).select(known_id="machine_id")
    f = f.semi_join(m, f.machine_id == m.known_id)
    return f.select("machine_id", "factor", "value", "unit", "score", "weight", "detail", "tiebreak")

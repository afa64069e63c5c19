"""The health job the daemon runs after each cycle: score every machine and keep the result.

`health_factors` gets every factor of every machine, `health_summary` each machine's score and a
fleet row (machine_id '*'), all stamped with `now` floored to the minute. Read on a read-only
connection (closed), then one write through `Store.write`; the tables' keys make a second run in
the same minute a no-op, so the daemon may call it every cycle whatever its interval.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import ibis
import ibis.expr.types as ir

from workbench.config import HealthConfig
from workbench.store import Batch, Store
from workbench.views.health import all_health_factors, fleet_health, machine_health

FLEET_ID = "*"


def _health_cfg(cfg: Any) -> tuple[HealthConfig, float | None]:
    """Accept a VcConfig (health + daemon interval) or a bare HealthConfig."""
    if isinstance(cfg, HealthConfig):
        return cfg, None
    daemon = getattr(cfg, "daemon", None)
    return cfg.health, getattr(daemon, "interval_seconds", None)


def floor_minute(now: datetime) -> datetime:
    return now.astimezone(UTC).replace(second=0, microsecond=0)


def health_rows(con: ibis.BaseBackend, cfg: Any, now: datetime) -> tuple[list[dict], list[dict]]:
    """(factor rows, summary rows) as of `now`, stamped with the minute."""
    hcfg, interval = _health_cfg(cfg)
    ts = floor_minute(now)
    f = all_health_factors(con, hcfg, now, interval_seconds=interval).drop("tiebreak")
    factors = [dict(r, ts=ts) for r in f.to_pyarrow().to_pylist()]
    scored: dict[str, int] = {}
    for r in factors:
        if r["score"] is not None and (r["weight"] or 0) > 0:
            scored[r["machine_id"]] = scored.get(r["machine_id"], 0) + 1
    mh = machine_health(con, hcfg, now, include_fleet=True, interval_seconds=interval)
    summary = [{"machine_id": r["machine_id"], "ts": ts, "score": r["score"], "severity": r["severity"],
                "worst_factor": r["worst_factor"], "worst_detail": r["worst_detail"],
                "worst_score": r["worst_score"], "factors_scored": scored.get(r["machine_id"], 0)}
               for r in mh.to_pyarrow().to_pylist()]
    if summary:
        fh = fleet_health(con, hcfg, now, include_fleet=True, interval_seconds=interval).to_pyarrow().to_pylist()
        for r in fh:
            summary.append({"machine_id": FLEET_ID, "ts": ts, "score": r["score"], "severity": r["severity"],
                            "worst_factor": r["worst_factor"],
                            "worst_detail": f"{r['worst_machine']}: {r['worst_detail']}",
                            "worst_score": r["worst_score"], "factors_scored": int(r["machines"])})
    return factors, summary


def run_health_job(store: Store, cfg: Any, now: datetime) -> dict[str, int]:
    """Score as of `now` and store; rows newly written per table (0 on a re-run in the same minute)."""
    with store.reader() as con:
        factors, summary = health_rows(con, cfg, now)
    if not factors and not summary:
        return {"health_factors": 0, "health_summary": 0}
    batch = Batch()
    if factors:
        batch.add_rows("health_factors", factors)
    if summary:
        batch.add_rows("health_summary", summary)
    out = store.write(batch).inserted
    return {"health_factors": out.get("health_factors", 0), "health_summary": out.get("health_summary", 0)}


def health_history(con: ibis.BaseBackend, machine_id: str, start: datetime, end: datetime) -> ir.Table:
    """A machine's (or the fleet's, machine_id '*') stored scores in [start, end], oldest first."""
    s = con.table("health_summary")
    s = s.filter((s.machine_id == machine_id) & (s.ts >= start) & (s.ts <= end))
    return s.order_by("ts")


def health_factor_history(con: ibis.BaseBackend, machine_id: str, start: datetime, end: datetime) -> ir.Table:
    """A machine's stored factor scores in [start, end]: one line per factor to chart."""
    f = con.table("health_factors")
    f = f.filter((f.machine_id == machine_id) & (f.ts >= start) & (f.ts <= end))
    return f.order_by(["factor", "ts"])

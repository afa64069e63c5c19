"""`vc robot health`: fleet and machine health for agents, as JSON or Markdown."""

from __future__ import annotations

from datetime import datetime

from workbench.config import VcConfig
from workbench.robot.envelope import envelope, to_jsonable
from workbench.store import Store
from workbench.views import health as vh
from workbench.views import ops

STALE_AFTER_S = 900.0


def build(cfg: VcConfig, store: Store, now: datetime) -> dict:
    warnings: list[str] = []
    with store.reader() as con:
        fleet = vh.fleet_health(con, cfg.health, now).execute().to_dict("records")
        machines = vh.machine_health(con, cfg.health, now).execute()
        factors = vh.health_factors(con, cfg.health, now).execute()
        poll = ops.poll_freshness(con, now).execute().to_dict("records")[0]
        alerts = ops.active_alert_count(con).execute().to_dict("records")[0]
    by_machine: dict[str, list[dict]] = {}
    for rec in factors.sort_values(["machine_id", "factor"]).to_dict("records"):
        by_machine.setdefault(rec.pop("machine_id"), []).append(rec)
    machine_docs = []
    for rec in machines.to_dict("records"):
        rec["factors"] = by_machine.get(rec["machine_id"], [])
        machine_docs.append(rec)
    fleet_doc = fleet[0] if fleet else {}
    if not machine_docs:
        warnings.append("no machines known yet: run `vc collect --once` or `vc demo`")
    last_sample = machines["last_ts"].max() if len(machines) else None
    poll_age = to_jsonable(poll.get("age_seconds"))
    if poll_age is None:
        warnings.append("the collector daemon has never completed a run")
    elif poll_age > STALE_AFTER_S:
        warnings.append(f"last collector run was {poll_age:.0f}s ago: data may be stale")
    data = {
        "fleet": fleet_doc,
        "active_alerts": to_jsonable(alerts.get("active")) or 0,
        "machines": machine_docs,
    }
    staleness = {
        "last_sample_at": last_sample,
        "last_poll_at": poll.get("last_run_at"),
        "poll_age_seconds": poll_age,
        "stale": poll_age is None or poll_age > STALE_AFTER_S,
    }
    return envelope(data, staleness, warnings, now)


def to_markdown(doc: dict) -> str:
    d = doc["data"]
    f = d.get("fleet") or {}
    lines = [f"# Fleet health — {doc['generated_at']}", ""]
    if f:
        lines.append(f"**Score {f.get('score')} ({f.get('severity')})** — {f.get('machines')} machines: "
                     f"{f.get('ok')} ok, {f.get('warning')} warning, {f.get('critical')} critical. "
                     f"Active alerts: {d.get('active_alerts', 0)}.")
        if f.get("worst_machine"):
            lines.append(f"Worst: `{f['worst_machine']}` — {f.get('worst_factor')}: {f.get('worst_detail')}")
    lines += ["", "| machine | score | severity | worst factor | detail |", "|---|---|---|---|---|"]
    for m in d.get("machines", []):
        lines.append(f"| {m['machine_id']} | {m.get('score')} | {m.get('severity')} | "
                     f"{m.get('worst_factor')} | {m.get('worst_detail')} |")
    if doc["warnings"]:
        lines += ["", "**Warnings**", *[f"- {w}" for w in doc["warnings"]]]
    return "\n".join(lines) + "\n"

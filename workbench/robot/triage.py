"""`vc robot triage`: what to do next, ranked, each item with why and a concrete next command.

Sources: firing / pending alerts, degraded machines (health), forecasts from the `predictions`
table (disks filling soon, accounts near a rate limit), failing collectors, repos that need a look.

Ranking (documented for the agents that act on it): every item gets an `urgency` in [0, 100] for
what it is and a `confidence` in [0, 1] that the problem is real; `score = urgency × confidence`
(rounded to 0.1) and items are sorted by score, highest first; ties by kind in the order of
KIND_ORDER, then subject.

    alert          firing: critical 100, warning 75, info 45; pending: × 0.6; acked or snoozed: × 0.4
                   (somebody is on it). confidence 1 when firing, 0.7 when pending (may not hold `for:`).
    disk_forecast  a disk_full prediction that is filling: ETA ≤ 6 h → 90, ≤ 24 h → 70, ≤ 48 h → 50
                   (later: not listed); at limit 95. confidence: the prediction's.
    machine        health warning or critical: 30 + 60 × (1 − health score). confidence 0.9 when
                   the worst factor is a measured one, 0.6 when it is freshness (silent: the machine
                   may be down, or only its collector).
    account        a rate_limit prediction: at limit or `swap now` 85, `prepare swap` 70, `slow down`
                   55, window ≥ 90 % used 60, reaches the limit before the reset 40. confidence: the
                   prediction's, at least 0.5 when the window is ≥ 90 % used, 1 at the limit.
    collector      latest run errored or timed out: 50. confidence 0.5 + 0.5 × errors / runs.
    repos          a machine with repos that need a look: 15 + 2.5 per repo (at most 40). confidence 0.8
                   (ahead / behind are against the machine's last fetch).
"""

from __future__ import annotations

import json
import math
import shlex
from datetime import datetime
from typing import Any

from workbench.config import VcConfig
from workbench.robot.envelope import envelope, to_jsonable
from workbench.store import Store
from workbench.views import alerts as va
from workbench.views import health as vh
from workbench.views import ops
from workbench.views import repos as vr

KIND_ORDER = ("alert", "disk_forecast", "machine", "account", "collector", "repos")
STALE_AFTER_S = 900.0
DISK_HORIZON_S = 48 * 3600.0
ACCOUNT_HOT_PCT = 90.0

_ALERT_URGENCY = {"critical": 100.0, "warning": 75.0, "info": 45.0}
_ACCOUNT_ACTION_URGENCY = {"swap now": 85.0, "prepare swap": 70.0, "slow down": 55.0}
_FACTOR_COMMANDS = {
    "cpu": "top -b -n1 -o %CPU | head -20",
    "load_per_core": "top -b -n1 -o %CPU | head -20",
    "memory": "ps aux --sort=-rss | head -15",
    "swap": "free -h && ps aux --sort=-rss | head -10",
}


def _num(v: Any) -> float | None:
    if v is None or isinstance(v, bool):
        return None
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def _clip01(v: Any, default: float = 0.5) -> float:
    f = _num(v)
    return default if f is None else max(0.0, min(1.0, f))


def remote(ssh: str | None, command: str) -> str:
    """`command` as run on the machine: as is for `local`, else wrapped in ssh with one quoted argument."""
    if not ssh or ssh == "local":
        return command
    return f"ssh {shlex.quote(ssh)} {shlex.quote(command)}"


def _item(kind: str, subject: str, why: str, next_command: str, urgency: float, confidence: float,
          machine_id: str | None = None, severity: str | None = None, more: list[str] | None = None,
          ref: dict[str, Any] | None = None) -> dict[str, Any]:
    confidence = round(max(0.0, min(1.0, confidence)), 3)
    urgency = round(max(0.0, min(100.0, urgency)), 1)  # score is computed from the published figures
    return {"kind": kind, "subject": subject, "machine_id": machine_id, "severity": severity, "why": why,
            "next_command": next_command, "more_commands": more or [], "urgency": urgency,
            "confidence": confidence, "score": round(urgency * confidence, 1), "ref": ref or {}}


def alert_items(alerts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for a in alerts:
        if a["view_state"] == "resolved":
            continue
        firing = a["state"] == "firing"
        urgency = _ALERT_URGENCY.get(a["severity"], 45.0) * (1.0 if firing else 0.6)
        handled = a["view_state"] == "acked"
        if handled:
            urgency *= 0.4
        mid = a.get("machine_id")
        actions = [x for x in (a.get("actions") or []) if isinstance(x, str)]
        machine_cmd = f"vc robot machine {mid} --md" if mid else "vc robot health --md"
        why = f"{a['state']} {a['severity']} alert: {a.get('summary') or a['rule_id']}"
        if handled:
            who = a.get("acked_by") or a.get("snoozed_by")
            why += f" (acked by {who})" if a.get("acked_by") else f" (snoozed until {a.get('snoozed_until')} by {who})"
        out.append(_item("alert", a["alert_id"], why, machine_cmd, urgency, 1.0 if firing else 0.7,
                         machine_id=mid, severity=a["severity"],
                         ref={"alert_id": a["alert_id"], "rule_id": a["rule_id"], "state": a["state"],
                              "view_state": a["view_state"], "actions": actions}))
    return out


def machine_items(health: list[dict[str, Any]], ssh: dict[str, str], disk_mounts: dict[str, str]
                  ) -> list[dict[str, Any]]:
    out = []
    for m in health:
        if m.get("severity") not in ("warning", "critical"):
            continue
        mid = m["machine_id"]
        score = _num(m.get("score")) or 0.0
        factor = m.get("worst_factor") or "?"
        detail = m.get("worst_detail") or ""
        inspect = f"vc robot machine {mid} --md"
        if factor == "freshness":
            first, more, conf = f"vc collect --once --machine {mid}", [inspect], 0.6
        elif factor == "disk":
            mount = disk_mounts.get(mid) or "/"
            first = remote(ssh.get(mid), f"df -h {shlex.quote(mount)}")
            more = [remote(ssh.get(mid), f"du -xh --max-depth=2 {shlex.quote(mount)} 2>/dev/null | sort -h | tail"),
                    inspect]
            conf = 0.9
        elif factor in _FACTOR_COMMANDS:
            first, more, conf = remote(ssh.get(mid), _FACTOR_COMMANDS[factor]), [inspect], 0.9
        else:
            first, more, conf = inspect, [], 0.9
        out.append(_item("machine", mid, f"health {m['severity']} (score {score:.2f}): worst factor {factor} — "
                         f"{detail}", first, 30.0 + 60.0 * (1.0 - max(0.0, min(1.0, score))), conf,
                         machine_id=mid, severity=m["severity"], more=more,
                         ref={"health_score": score, "worst_factor": factor}))
    return out


def disk_items(preds: list[dict[str, Any]], now: datetime, ssh: dict[str, str]) -> list[dict[str, Any]]:
    out = []
    for p in preds:
        if p["kind"] != "disk_full" or p["status"] not in ("filling", "at limit"):
            continue
        mid, _, mount = p["subject"].partition(":")
        eta = p.get("eta")
        eta_s = None if eta is None else (datetime.fromisoformat(eta.replace("Z", "+00:00")) - now).total_seconds()
        if p["status"] == "at limit":
            urgency, when = 95.0, "is full"
        elif eta_s is None or eta_s > DISK_HORIZON_S:
            continue
        else:
            urgency = 90.0 if eta_s <= 6 * 3600 else 70.0 if eta_s <= 24 * 3600 else 50.0
            when = f"full in ~{max(eta_s, 0) / 3600:.1f} h (at {eta})"
        level = _num(p.get("level"))
        why = f"disk {mount or '/'} on {mid} {when}" + (f"; now {level:.0f}% used" if level is not None else "")
        out.append(_item("disk_forecast", p["subject"], why, remote(ssh.get(mid), f"df -h {shlex.quote(mount or '/')}"),
                         urgency, _clip01(p.get("confidence")) if p["status"] != "at limit" else 1.0,
                         machine_id=mid, severity="critical" if urgency >= 90 else "warning",
                         more=[remote(ssh.get(mid), f"du -xh --max-depth=2 {shlex.quote(mount or '/')} 2>/dev/null "
                                                    "| sort -h | tail"), f"vc robot machine {mid} --md"],
                         ref={"kind": p["kind"], "made_at": p.get("made_at"), "eta": eta,
                              "eta_low": p.get("eta_low"), "eta_high": p.get("eta_high")}))
    return out


def account_items(preds: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for p in preds:
        if p["kind"] != "rate_limit":
            continue
        level = _num(p.get("level"))
        action = p.get("action") or ""
        conf = _clip01(p.get("confidence"), 0.0)
        if p["status"] == "at limit" or action == "swap now":
            urgency = 85.0
            conf = 1.0 if p["status"] == "at limit" else conf
        elif action in _ACCOUNT_ACTION_URGENCY:
            urgency = _ACCOUNT_ACTION_URGENCY[action]
        elif level is not None and level >= ACCOUNT_HOT_PCT:
            urgency = 60.0
        elif p["status"] == "reaches limit":
            urgency = 40.0
        else:
            continue
        if level is not None and level >= ACCOUNT_HOT_PCT:
            conf = max(conf, 0.5)
        details = {}
        if isinstance(p.get("details_json"), str):
            try:
                details = json.loads(p["details_json"])
            except ValueError:
                details = {}
        alt = (details.get("alternative") or {}).get("account_key") if isinstance(details, dict) else None
        why = (f"{p['subject']}: {p['status']}" + (f", {level:.0f}% used" if level is not None else "")
               + (f", limit at {p['eta']}" if p.get("eta") else "") + (f"; forecast says {action}" if action else "")
               + (f"; most headroom: {alt}" if alt else ""))
        out.append(_item("account", p["subject"], why, "vc robot accounts --md", urgency, conf,
                         severity="critical" if urgency >= 85 else "warning",
                         ref={"kind": p["kind"], "made_at": p.get("made_at"), "action": action or None,
                              "alternative": alt}))
    return out


def collector_items(status: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for c in status:
        if c.get("status") not in ("error", "timeout"):
            continue
        runs = max(int(_num(c.get("runs")) or 1), 1)
        errors = int(_num(c.get("errors")) or 0)
        mid = c["machine_id"]
        why = f"{c['collector']} on {mid}: last run {c['status']} ({errors}/{runs} runs failed)"
        if c.get("last_error"):
            why += f": {c['last_error']}"
        out.append(_item("collector", f"{mid}/{c['collector']}", why, f"vc collect --once --machine {mid}", 50.0,
                         0.5 + 0.5 * min(1.0, errors / runs), machine_id=mid, severity="warning",
                         more=[f"vc robot machine {mid} --md"],
                         ref={"collector": c["collector"], "last_started_at": c.get("last_started_at")}))
    return out


def repo_items(repos: list[dict[str, Any]], ssh: dict[str, str]) -> list[dict[str, Any]]:
    by_machine: dict[str, list[dict[str, Any]]] = {}
    for r in repos:
        if r.get("attention"):
            by_machine.setdefault(r["machine_id"], []).append(r)
    out = []
    for mid, rs in sorted(by_machine.items()):
        first = rs[0]
        names = ", ".join(f"{r.get('repo') or r['path']} ({r['attention']})" for r in rs[:5])
        more = "" if len(rs) <= 5 else f" and {len(rs) - 5} more"
        out.append(_item("repos", mid, f"{len(rs)} repo(s) need a look on {mid}: {names}{more}",
                         remote(ssh.get(mid), f"git -C {shlex.quote(first['path'])} status --short --branch"),
                         min(40.0, 15.0 + 2.5 * len(rs)), 0.8, machine_id=mid, severity="info",
                         more=["vc robot repos --md"], ref={"repos": [r["path"] for r in rs]}))
    return out


def rank(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    order = {k: i for i, k in enumerate(KIND_ORDER)}
    ranked = sorted(items, key=lambda x: (-x["score"], order.get(x["kind"], 99), x["subject"]))
    for i, it in enumerate(ranked, 1):
        it["rank"] = i
    return ranked


def build(cfg: VcConfig, store: Store, now: datetime, limit: int | None = None) -> dict:
    from workbench.robot.alerts import alert_docs

    warnings: list[str] = []
    with store.reader() as con:
        alerts = alert_docs(va.alerts_with_acks(con, now, view_states=["open", "acked"]).execute())
        health = to_jsonable(vh.machine_health(con, cfg.health, now).execute().to_dict("records"))
        disks = {r["machine_id"]: r["worst_disk_mount"]
                 for r in to_jsonable(_disk_mounts(con).execute().to_dict("records"))}
        targets = {r["machine_id"]: r["ssh"] for r in va.machine_targets(con).execute().to_dict("records")}
        status = to_jsonable(ops.collector_status(con, now).execute().to_dict("records"))
        poll = ops.poll_freshness(con, now).execute().to_dict("records")[0]
        preds: list[dict[str, Any]] = []
        if va.has_table(con, "predictions"):
            preds = to_jsonable(va.latest_predictions(con).execute().to_dict("records"))
        else:
            warnings.append("no predictions table: forecasts (disks filling, accounts near a limit) left out")
        repos: list[dict[str, Any]] = []
        if va.has_table(con, "repo_status_snapshots"):
            repos = to_jsonable(vr.latest_repos(con, now).execute().to_dict("records"))
    items = rank(alert_items(alerts) + disk_items(preds, now, targets) + machine_items(health, targets, disks)
                 + account_items(preds) + collector_items(status) + repo_items(repos, targets))
    total = len(items)
    if limit is not None:
        items = items[:limit]
    if not health:
        warnings.append("no machines known yet: run `vc collect --once` or `vc demo`")
    poll_age = to_jsonable(poll.get("age_seconds"))
    if poll_age is None:
        warnings.append("the collector daemon has never completed a run")
    elif poll_age > STALE_AFTER_S:
        warnings.append(f"last collector run was {poll_age:.0f}s ago: data may be stale")
    staleness = {"last_poll_at": poll.get("last_run_at"), "poll_age_seconds": poll_age,
                 "predictions_made_at": max((p["computed_at"] for p in preds if p.get("computed_at")), default=None),
                 "stale": poll_age is None or poll_age > STALE_AFTER_S}
    data = {"items": items, "total": total, "kinds": {k: sum(1 for i in items if i["kind"] == k) for k in KIND_ORDER},
            "ranking": "score = urgency × confidence, highest first; ties by kind order then subject"}
    return envelope(data, staleness, warnings, now)


def _disk_mounts(con):
    from workbench.views.machines import worst_disk

    return worst_disk(con).select("machine_id", "worst_disk_mount")


def to_markdown(doc: dict) -> str:
    d = doc["data"]
    lines = [f"# Triage — {doc['generated_at']}", ""]
    if not d["items"]:
        lines.append("Nothing to do: no alert, degraded machine, forecast, failing collector or dirty repo.")
    else:
        lines += ["| # | score | kind | subject | why | next |", "|---|---|---|---|---|---|"]
        for it in d["items"]:
            why = it["why"].replace("|", "\\|")
            lines.append(f"| {it['rank']} | {it['score']} | {it['kind']} | {it['subject']} | {why} | "
                         f"`{it['next_command']}` |")
        lines += ["", f"Ranking: {d['ranking']} (see `workbench/robot/triage.py`)."]
    return "\n".join(lines + [f"- warning: {w}" for w in doc["warnings"]]) + "\n"

"""`vc robot alerts`: alerts with their ack / snooze state, evidence and suggested actions, for agents.

By default the active ones (open and acked); `--all` adds the resolved and cancelled episodes.
An agent deciding what to pick up wants the open ones first, so the order is the view's:
open, acked, resolved; critical first; newest first.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from workbench.robot.envelope import envelope, to_jsonable
from workbench.store import Store
from workbench.views import alerts as va
from workbench.views import ops

STALE_AFTER_S = 900.0
_FIELDS = ("alert_id", "rule_id", "machine_id", "dedupe_key", "severity", "state", "view_state", "summary",
           "value", "started_at", "fired_at", "updated_at", "resolved_at", "acked_at", "acked_by", "ack_note",
           "snoozed_until", "snoozed_by", "snooze_note")


def _loads(text: Any, default: Any) -> Any:
    if not isinstance(text, str) or not text:
        return default
    try:
        return json.loads(text)
    except ValueError:
        return default


def alert_docs(frame) -> list[dict[str, Any]]:
    """View rows as plain dicts with the JSON columns parsed (evidence, actions, labels)."""
    out = []
    for rec in to_jsonable(frame.to_dict("records")):
        doc = {k: rec.get(k) for k in _FIELDS}
        doc["evidence"] = _loads(rec.get("evidence_json"), {})
        doc["actions"] = _loads(rec.get("actions_json"), [])
        doc["labels"] = _loads(rec.get("labels_json"), {})
        out.append(doc)
    return out


def build(store: Store, now: datetime, include_resolved: bool = False) -> dict:
    states = None if include_resolved else ["open", "acked"]
    with store.reader() as con:
        frame = va.alerts_with_acks(con, now, view_states=states).execute()
        counts = to_jsonable(va.alert_counts(con, now).execute().to_dict("records")[0])
        poll = ops.poll_freshness(con, now).execute().to_dict("records")[0]
        last_eval = con.table("alert_state").last_eval_at.max().execute()
    alerts = alert_docs(frame)
    counts = {k: int(counts.get(k) or 0) for k in ("open", "acked", "resolved", "firing")}
    warnings: list[str] = []
    last_eval = to_jsonable(last_eval)
    if last_eval is None:
        warnings.append("the alert rules have never been evaluated: `vc daemon` evaluates them after each cycle")
    poll_age = to_jsonable(poll.get("age_seconds"))
    if poll_age is not None and poll_age > STALE_AFTER_S:
        warnings.append(f"last collector run was {poll_age:.0f}s ago: alerts may be out of date")
    staleness = {
        "last_evaluated_at": last_eval,
        "last_poll_at": poll.get("last_run_at"),
        "poll_age_seconds": poll_age,
        "stale": poll_age is None or poll_age > STALE_AFTER_S,
    }
    return envelope({"counts": counts, "include_resolved": include_resolved, "alerts": alerts},
                    staleness, warnings, now)


def to_markdown(doc: dict) -> str:
    d = doc["data"]
    c = d["counts"]
    lines = [f"# Alerts — {doc['generated_at']}", "",
             f"{c['open']} open, {c['acked']} acked, {c['resolved']} resolved ({c['firing']} firing).", ""]
    if not d["alerts"]:
        lines.append("no data yet" if not any(c.values()) else "No alert needs a look.")
    for a in d["alerts"]:
        who = ""
        if a.get("acked_by"):
            who = f" — acked by {a['acked_by']}" + (f": {a['ack_note']}" if a.get("ack_note") else "")
        if a.get("snoozed_until"):
            who += f" — snoozed until {a['snoozed_until']} by {a.get('snoozed_by')}"
        lines.append(f"## [{a['view_state']}] {a['severity']} · {a.get('summary') or a['rule_id']}")
        lines.append(f"`{a['alert_id']}` rule `{a['rule_id']}` on `{a.get('machine_id') or '-'}`, {a['state']} "
                     f"since {a['started_at']}{who}")
        ev = a.get("evidence") or {}
        if ev.get("condition"):
            lines.append(f"- evidence: {ev.get('kind', '')} on `{ev.get('source', '')}`: {ev['condition']}, "
                         f"{ev.get('samples', '?')} samples {ev.get('ts_from') or ''} → {ev.get('ts_to') or ''}")
        elif ev:
            lines.append(f"- evidence: `{json.dumps(ev, sort_keys=True)[:300]}`")
        lines += [f"- do: {act}" for act in a.get("actions") or []]
        lines.append("")
    return "\n".join(lines + [f"- warning: {w}" for w in doc["warnings"]]) + "\n"

"""Alerts as a person handles them: open, acked (or snoozed) and resolved, with the latest ack and snooze.

The engine's `alerts.state` says what the condition does (pending, firing, resolved, cancelled); a
person also needs to know whether somebody is already on it. Acks are per episode (alert_id),
snoozes per dedupe key (rule + machine + key, so a new episode inside the window stays quiet), and
both live in `alert_acks`: an ack row has no `snooze_until`, a snooze row has one. The newest row of
each kind wins, so a snooze that ends at or before now (the engine's way to cancel one) unsnoozes.

Also here: the newest prediction per subject and the events `vc watch` streams, each read through
Ibis so they run on any backend the rest of the views run on.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import ibis
import ibis.expr.types as ir

ACTIVE = ("pending", "firing")
CLOSED = ("resolved", "cancelled")
VIEW_STATES = ("open", "acked", "resolved")


def alerts_with_acks(con: ibis.BaseBackend, now: datetime, machine_ids: Sequence[str] | None = None,
                     view_states: Sequence[str] | None = None) -> ir.Table:
    """Every alert with its latest ack, its running snooze and `view_state` (open | acked | resolved).

    acked = active and (acknowledged this episode, or its dedupe key is snoozed past `now`).
    Ordered by view state, then severity (critical first), then newest first.
    """
    a = con.table("alerts")
    if machine_ids is not None:
        a = a.filter(a.machine_id.isin(list(machine_ids)))
    k = con.table("alert_acks")
    acks = k.filter(k.snooze_until.isnull())
    last_ack = acks.group_by("alert_id").agg(
        acked_at=acks.acked_at.max(), acked_by=acks.acked_by.argmax(acks.acked_at),
        ack_note=acks.note.argmax(acks.acked_at),
    )
    sn = k.filter(k.snooze_until.notnull() & k.dedupe_key.notnull())
    last_snooze = sn.group_by("dedupe_key").agg(
        snoozed_until=sn.snooze_until.argmax(sn.acked_at), snoozed_by=sn.acked_by.argmax(sn.acked_at),
        snoozed_at=sn.acked_at.max(), snooze_note=sn.note.argmax(sn.acked_at),
    )
    j = a.left_join(last_ack, a.alert_id == last_ack.alert_id).left_join(
        last_snooze, a.dedupe_key == last_snooze.dedupe_key)
    snoozed = (j.snoozed_until.notnull() & (j.snoozed_until > ibis.literal(now))).fill_null(False)
    active = j.state.isin(list(ACTIVE))
    view_state = ibis.cases((~active, "resolved"), (j.acked_at.notnull() | snoozed, "acked"), else_="open")
    sev_rank = ibis.cases((j.severity == "critical", 0), (j.severity == "warning", 1), else_=2)
    state_rank = ibis.cases((view_state == "open", 0), (view_state == "acked", 1), else_=2)
    out = j.select(
        "alert_id", "rule_id", "machine_id", "dedupe_key", "severity", "state", "summary", "evidence_json",
        "actions_json", "labels_json", "value", "started_at", "fired_at", "updated_at", "resolved_at",
        "acked_at", "acked_by", "ack_note",
        snoozed_until=ibis.cases((snoozed, j.snoozed_until), else_=ibis.null(j.snoozed_until.type())),
        snoozed_by=ibis.cases((snoozed, j.snoozed_by), else_=ibis.null("string")),
        snooze_note=ibis.cases((snoozed, j.snooze_note), else_=ibis.null("string")),
        view_state=view_state, _sev=sev_rank, _st=state_rank,
    )
    if view_states is not None:
        out = out.filter(out.view_state.isin(list(view_states)))
    return out.order_by([out._st, out._sev, ibis.desc(out.started_at), out.alert_id]).drop("_sev", "_st")


def alert_counts(con: ibis.BaseBackend, now: datetime, machine_ids: Sequence[str] | None = None) -> ir.Table:
    """One row: how many alerts are open, acked and resolved (resolved includes cancelled)."""
    a = alerts_with_acks(con, now, machine_ids)
    return a.aggregate(
        open=(a.view_state == "open").sum().fill_null(0),
        acked=(a.view_state == "acked").sum().fill_null(0),
        resolved=(a.view_state == "resolved").sum().fill_null(0),
        firing=(a.state == "firing").sum().fill_null(0),
    )


def machine_targets(con: ibis.BaseBackend) -> ir.Table:
    """machine_id → how to reach it (`ssh` as configured: `user@host` or `local`)."""
    m = con.table("machines")
    return m.select("machine_id", "ssh", "display_name")


def has_table(con: ibis.BaseBackend, name: str) -> bool:
    """Whether a migration created `name` yet (optional sources: predictions, repo snapshots)."""
    from ibis.common.exceptions import TableNotFound

    try:
        con.table(name)
    except TableNotFound:
        return False
    return True


def latest_predictions(con: ibis.BaseBackend, kinds: Sequence[str] | None = None) -> ir.Table:
    """The newest prediction per (kind, subject): what the forecasts say now."""
    p = con.table("predictions")
    if kinds is not None:
        p = p.filter(p.kind.isin(list(kinds)))
    w = ibis.window(group_by=[p.kind, p.subject], order_by=[ibis.desc(p.made_at), ibis.desc(p.computed_at)])
    ranked = p.mutate(_rn=ibis.row_number().over(w))
    return ranked.filter(ranked._rn == 0).drop("_rn").order_by(["kind", "subject"])


def alert_events_after(con: ibis.BaseBackend, ts: datetime | None, event_id: str | None,
                       limit: int = 1000) -> ir.Table:
    """Alert transitions strictly after the (ts, event_id) cursor, oldest first."""
    e = con.table("alert_events")
    if ts is not None:
        lit = ibis.literal(ts)
        e = e.filter((e.ts > lit) | ((e.ts == lit) & (e.event_id > (event_id or ""))))
    return e.order_by(["ts", "event_id"]).limit(limit)


def predictions_after(con: ibis.BaseBackend, computed_at: datetime | None, key: str | None,
                      limit: int = 2000) -> ir.Table:
    """Prediction rows written after the cursor, oldest first, each with the previous row of its subject.

    `prev_status`, `prev_action`, `prev_eta` are the subject's row just before (by made_at), NULL
    for the first one: the watcher emits a row only when it changes what the forecast says.
    """
    p = con.table("predictions")
    w = ibis.window(group_by=[p.kind, p.subject], order_by=[p.made_at])
    withprev = p.mutate(prev_status=p.status.lag().over(w), prev_action=p.action.lag().over(w),
                        prev_eta=p.eta.lag().over(w), prev_made_at=p.made_at.lag().over(w),
                        _key=p.kind + "\x1f" + p.subject + "\x1f" + p.made_at.cast("string"))
    if computed_at is not None:
        lit = ibis.literal(computed_at)
        withprev = withprev.filter((withprev.computed_at > lit)
                                   | ((withprev.computed_at == lit) & (withprev._key > (key or ""))))
    return withprev.order_by(["computed_at", "_key"]).limit(limit)

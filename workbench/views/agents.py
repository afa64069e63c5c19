"""Agents: sessions (ntm) — which agents run where, in what state, how full their context is — and
their mail (mcp_agent_mail) — who has urgent unread messages, overdue acks, files reserved.

ntm's snapshot lists one row per agent pane; an older ntm (or a session without agents) gives
session-level rows only (`row_kind` 'session'). Counts of agents come from agent rows, counts of
sessions from both, so a fleet on an old ntm still shows its sessions.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

import ibis
import ibis.expr.types as ir

from workbench.views.snapshots import age_seconds, latest_rows, scoped

STATES = ("active", "idle", "waiting", "error", "unknown")


def latest_ntm(con: ibis.BaseBackend, now: datetime, machine_ids: Sequence[str] | None = None) -> ir.Table:
    """Every row of each machine's latest ntm collection."""
    n = latest_rows(scoped(con.table("ntm_sessions_snapshot"), machine_ids), ["machine_id"])
    return n.mutate(age_seconds=age_seconds(now, n.collected_at))


def ntm_agents(con: ibis.BaseBackend, now: datetime, machine_ids: Sequence[str] | None = None) -> ir.Table:
    """One row per agent pane: type, state, context use, idle time, current bead, pending mail."""
    n = latest_ntm(con, now, machine_ids)
    a = n.filter(n.row_kind == "agent")
    return a.select(
        "machine_id", "session", "pane", "agent_type", "variant", "state", "context_pct",
        "last_output_age_sec", "current_bead", "pending_mail", "attached", "collected_at", "age_seconds",
    ).order_by(["machine_id", "session", "pane"])


def ntm_sessions(con: ibis.BaseBackend, now: datetime, machine_ids: Sequence[str] | None = None) -> ir.Table:
    """One row per (machine, session): agent counts by state, fullest context, pending mail."""
    n = latest_ntm(con, now, machine_ids)
    agent = n.row_kind == "agent"
    return n.group_by(["machine_id", "session"]).agg(
        attached=n.attached.max(),
        agents=ibis.greatest(agent.sum(), n.session_agent_count.max().fill_null(0)),
        active=(agent & (n.state == "active")).sum(),
        idle=(agent & (n.state == "idle")).sum(),
        waiting=(agent & (n.state == "waiting")).sum(),
        error=(agent & (n.state == "error")).sum(),
        max_context_pct=n.context_pct.max(),
        pending_mail=n.pending_mail.sum(),
        health=n.session_health_status.max(),
        health_reason=n.session_health_reason.max(),
        collected_at=n.collected_at.max(),
        age_seconds=n.age_seconds.min(),
    ).order_by(["machine_id", "session"])


def agent_state_counts(con: ibis.BaseBackend, now: datetime, machine_ids: Sequence[str] | None = None) -> ir.Table:
    """Agents per (agent_type, state) across the fleet: the chart of who is working and who waits."""
    a = ntm_agents(con, now, machine_ids)
    a = a.mutate(agent_type=a.agent_type.fill_null("unknown"), state=a.state.fill_null("unknown"))
    return a.group_by(["agent_type", "state"]).agg(agents=a.count()).order_by(["agent_type", "state"])


def agent_totals(con: ibis.BaseBackend, now: datetime, machine_ids: Sequence[str] | None = None) -> ir.Table:
    """One row: sessions, agents and agents by state, and the fullest context in the fleet."""
    s = ntm_sessions(con, now, machine_ids)
    return s.aggregate(
        machines=s.machine_id.nunique(), sessions=s.count(), agents=s.agents.sum(), active=s.active.sum(),
        idle=s.idle.sum(), waiting=s.waiting.sum(), error=s.error.sum(), max_context_pct=s.max_context_pct.max(),
        pending_mail=s.pending_mail.sum(), oldest_age_seconds=s.age_seconds.max(),
    )


# ---------------------------------------------------------------- agent mail (mcp_agent_mail)

# A message that asks for an acknowledgement and has none after this long is overdue.
ACK_OVERDUE_AFTER = timedelta(minutes=30)
_STATE_RANK = {"unread": 0, "read": 1, "acked": 2}


def _current(t: ir.Table, keys: Sequence[str], order: Sequence[ir.Value]) -> ir.Table:
    """The row per `keys` that sorts first by `order` (each row is one version the collector saw)."""
    rn = ibis.row_number().over(group_by=[t[k] for k in keys], order_by=list(order))
    return t.mutate(_vc_rn=rn).filter(lambda x: x._vc_rn == 0).drop("_vc_rn")


def mail_recipients(con: ibis.BaseBackend, machine_ids: Sequence[str] | None = None) -> ir.Table:
    """Each recipient's current state (unread / read / acked) joined with its message.

    The collector adds a row whenever a recipient's state moves on; the current one is the latest
    observed, and within one observation the furthest along (a message first seen already acked).
    """
    r = scoped(con.table("mail_recipients"), machine_ids)
    rank = ibis.cases(*[(r.state == k, v) for k, v in _STATE_RANK.items()], else_=-1)
    r = _current(r.mutate(_vc_rank=rank), ["machine_id", "db_path", "message_id", "message_created_at", "agent_id"],
                 [ibis.desc("observed_at"), ibis.desc("_vc_rank")])
    m = scoped(con.table("mail_messages"), machine_ids)
    j = r.left_join(m, [r.machine_id == m.machine_id, r.db_path == m.db_path, r.message_id == m.message_id,
                        r.message_created_at == m.created_at])
    return j.select(
        r.machine_id, r.db_path, r.message_id, r.agent_id, r.agent_name, r.kind, r.state, r.read_at, r.ack_at,
        created_at=r.message_created_at, project_slug=m.project_slug, project_key=m.project_key,
        sender_name=m.sender_name, subject=m.subject, thread_id=m.thread_id, importance=m.importance,
        is_urgent=ibis.coalesce(m.is_urgent, m.importance == "urgent", False),
        ack_required=ibis.coalesce(r.ack_required, m.ack_required, False),
    )


def mail_inbox(con: ibis.BaseBackend, now: datetime, machine_ids: Sequence[str] | None = None,
               ack_overdue_after: timedelta = ACK_OVERDUE_AFTER) -> ir.Table:
    """Per (machine, project, agent): unread, urgent unread, acks pending and overdue, oldest unread."""
    r = mail_recipients(con, machine_ids)
    unread = r.state == "unread"
    pending = r.ack_required & (r.state != "acked")
    overdue = pending & (r.created_at < ibis.literal(now - ack_overdue_after))
    g = r.group_by(["machine_id", "db_path", "project_slug", "agent_name"]).agg(
        messages=r.count(),
        unread=unread.sum(),
        urgent_unread=(unread & r.is_urgent).sum(),
        ack_pending=pending.sum(),
        ack_overdue=overdue.sum(),
        oldest_unread_at=r.created_at.min(where=unread),
        oldest_overdue_at=r.created_at.min(where=overdue),
        last_message_at=r.created_at.max(),
    )
    return g.mutate(oldest_unread_age_seconds=age_seconds(now, g.oldest_unread_at)).order_by(
        [ibis.desc("urgent_unread"), ibis.desc("ack_overdue"), ibis.desc("unread"), "machine_id", "agent_name"])


def mail_attention(con: ibis.BaseBackend, now: datetime, machine_ids: Sequence[str] | None = None,
                   ack_overdue_after: timedelta = ACK_OVERDUE_AFTER, limit: int = 200) -> ir.Table:
    """The messages behind the counts: urgent and unread, or waiting for an overdue acknowledgement."""
    r = mail_recipients(con, machine_ids)
    overdue = r.ack_required & (r.state != "acked") & (r.created_at < ibis.literal(now - ack_overdue_after))
    urgent = r.is_urgent & (r.state == "unread")
    a = r.filter(urgent | overdue)
    return a.mutate(urgent_unread=urgent, ack_overdue=overdue,
                    age_seconds=age_seconds(now, a.created_at)).order_by(
        [ibis.desc("urgent_unread"), "created_at"]).limit(limit)


def mail_totals(con: ibis.BaseBackend, now: datetime, machine_ids: Sequence[str] | None = None,
                ack_overdue_after: timedelta = ACK_OVERDUE_AFTER) -> ir.Table:
    """One row: agents with mail, unread, urgent unread, acks pending and overdue across the fleet."""
    i = mail_inbox(con, now, machine_ids, ack_overdue_after)
    return i.aggregate(agents=i.agent_name.nunique(), unread=i.unread.sum(), urgent_unread=i.urgent_unread.sum(),
                       ack_pending=i.ack_pending.sum(), ack_overdue=i.ack_overdue.sum())


def active_reservations(con: ibis.BaseBackend, now: datetime, machine_ids: Sequence[str] | None = None) -> ir.Table:
    """File reservations held right now (current version 'held' and not yet expired), soonest expiry first."""
    f = scoped(con.table("mail_file_reservations"), machine_ids)
    f = _current(f, ["machine_id", "db_path", "reservation_id", "created_at"],
                 [ibis.desc("observed_at"), ibis.desc("expires_at")])
    f = f.filter((f.state == "held") & (f.expires_at > ibis.literal(now)))
    return f.select(
        "machine_id", "db_path", "reservation_id", "project_slug", "agent_name", "path_pattern", "exclusive",
        "reason", "created_at", "expires_at",
        expires_in_seconds=(f.expires_at.epoch_seconds() - ibis.literal(now).epoch_seconds()).cast("float64"),
        held_for_seconds=age_seconds(now, f.created_at),
    ).order_by(["expires_at", "machine_id", "reservation_id"])

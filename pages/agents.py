"""Agents: which coding agents run where and in what state (ntm), and who has mail waiting (agent mail)."""

from __future__ import annotations

import streamlit as st

from workbench.ui import charts, context, errors, filters, scope
from workbench.ui import fleet_tables as ft
from workbench.ui import format as fmt
from workbench.views import agents as va

cfg, store = context.config(), context.store()
f = filters.current(cfg.dashboard.default_window)
now = context.now()
overdue_s = va.ACK_OVERDUE_AFTER.total_seconds()

st.title("Agents")
in_view = scope.machine_scope(f, "vc_agents_only_focused")
with errors.guarded(), store.reader() as con:
    sessions = va.ntm_sessions(con, now, machine_ids=in_view).execute()
    totals = va.agent_totals(con, now, machine_ids=in_view).execute().iloc[0]
    agents = va.ntm_agents(con, now, machine_ids=in_view).execute()
    states = va.agent_state_counts(con, now, machine_ids=in_view).execute()
    inbox = va.mail_inbox(con, now, machine_ids=in_view).execute()
    mail = va.mail_totals(con, now, machine_ids=in_view).execute().iloc[0]
    attention = va.mail_attention(con, now, machine_ids=in_view).execute()
    held = va.active_reservations(con, now, machine_ids=in_view).execute()

st.subheader("Sessions (ntm)")
if sessions.empty:
    errors.no_data()
else:
    c = st.columns(5)
    c[0].metric("Sessions", str(int(totals["sessions"])), border=True,
                help=f"{int(totals['agents'])} agents on {int(totals['machines'])} machine(s), "
                     "latest ntm snapshot each")
    for col, label in zip(c[1:], ("active", "idle", "waiting", "error"), strict=True):
        col.metric(f"Agents {label}", str(int(totals[label])), border=True)
    df, config = ft.ntm_sessions(sessions)
    st.dataframe(df, hide_index=True, column_config=config, width="stretch", key="vc_ntm_sessions")
    st.caption(f"Oldest snapshot {fmt.fmt_age(totals['oldest_age_seconds'])}.")
    if states.empty:
        errors.no_data("no per-agent detail (this ntm reports sessions only)")
    else:
        st.plotly_chart(charts.stacked_bars(states, "agent_type", "state", "agents", "Agents by type and state",
                                            "agents", colors=charts.STATE_COLORS, horizontal=True),
                        key="vc_chart_agent_states")

st.subheader("Agent panes")
if agents.empty:
    errors.no_data()
else:
    df, config = ft.ntm_agents(agents)
    st.dataframe(df, hide_index=True, column_config=config, width="stretch", key="vc_ntm_agents")

st.subheader("Mail (agent mail)")
if inbox.empty:
    errors.no_data()
else:
    c = st.columns(4)
    c[0].metric("Urgent unread", str(int(mail["urgent_unread"])), border=True)
    c[1].metric("Acks overdue", str(int(mail["ack_overdue"])), border=True,
                help=f"Acknowledgement asked for and not given after {fmt.fmt_duration(overdue_s)}")
    c[2].metric("Acks pending", str(int(mail["ack_pending"])), border=True)
    c[3].metric("Unread", str(int(mail["unread"])), border=True, help=f"for {int(mail['agents'])} agent(s)")
    df, config = ft.mail_inbox(inbox)
    st.dataframe(df, hide_index=True, column_config=config, width="stretch", key="vc_mail_inbox")
    if attention.empty:
        st.success("No urgent unread message and no overdue acknowledgement.", icon=":material/check_circle:")
    else:
        st.markdown("**Messages that need someone**")
        df, config = ft.mail_attention(attention)
        st.dataframe(df, hide_index=True, column_config=config, width="stretch", key="vc_mail_attention")

st.subheader("File reservations")
if held.empty and inbox.empty:
    errors.no_data()  # no mail database collected: nothing is known about reservations
elif held.empty:
    st.info("No file is reserved right now.", icon=":material/lock_open:")
else:
    df, config = ft.reservations(held)
    st.dataframe(df, hide_index=True, column_config=config, width="stretch", key="vc_reservations")
    st.caption("Reservations held now (not released, not expired), soonest expiry first.")

"""Beads: what is ready to work on in each repo (br), bv's triage, and which issues are blocked by what."""

from __future__ import annotations

import streamlit as st

from workbench.ui import context, errors, filters, scope
from workbench.ui import fleet_tables as ft
from workbench.ui import format as fmt
from workbench.views import beads as vb

cfg, store = context.config(), context.store()
f = filters.current(cfg.dashboard.default_window)
now = context.now()

st.title("Beads")
in_view = scope.machine_scope(f, "vc_beads_only_focused")
with errors.guarded(), store.reader() as con:
    overview = vb.repo_overview(con, now, machine_ids=in_view).execute()
    totals = vb.beads_totals(con, now, machine_ids=in_view).execute().iloc[0]
    picks = vb.top_picks(con, machine_ids=in_view).execute()
    to_clear = vb.triage_blockers(con, machine_ids=in_view).execute()
    waiting = vb.open_blockers(con, machine_ids=in_view).execute()

if overview.empty:
    errors.no_data()
    st.stop()

c = st.columns(4)
c[0].metric("Repos", str(int(totals["repos"])), border=True)
c[1].metric("Ready", fmt.fmt_number(totals["ready"], 0), border=True,
            help="Issues br reports as ready (no open blocker), latest `br ready` per repo")
c[2].metric("Blocked (bv)", fmt.fmt_number(totals["blocked"], 0), border=True)
c[3].metric("Waiting on another issue", str(int(totals["waiting_pairs"])), border=True,
            help="Unfinished issue → blocker pairs from the issue export whose blocker is not closed")

st.subheader("Repos")
df, config = ft.beads_overview(overview)
st.dataframe(df, hide_index=True, column_config=config, width="stretch", key="vc_beads_overview")

st.subheader("Waiting on another issue")
if waiting.empty:
    st.success("No unfinished issue waits on an open blocker.", icon=":material/check_circle:")
else:
    df, config = ft.open_blockers(waiting)
    st.dataframe(df, hide_index=True, column_config=config, width="stretch", key="vc_beads_waiting")

st.subheader("Top picks (bv)")
if picks.empty:
    errors.no_data()
else:
    df, config = ft.top_picks(picks)
    st.dataframe(df, hide_index=True, column_config=config, width="stretch", key="vc_beads_picks")

st.subheader("Blockers to clear (bv)")
if to_clear.empty:
    errors.no_data()
else:
    df, config = ft.triage_blockers(to_clear)
    st.dataframe(df, hide_index=True, column_config=config, width="stretch", key="vc_beads_to_clear")

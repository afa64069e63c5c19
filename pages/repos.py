"""Repos: which clones on which machine are dirty, ahead, behind or broken (ru, latest collection)."""

from __future__ import annotations

import streamlit as st

from workbench.ui import context, errors, filters, scope
from workbench.ui import fleet_tables as ft
from workbench.ui import format as fmt
from workbench.views import repos as vr

cfg, store = context.config(), context.store()
f = filters.current(cfg.dashboard.default_window)
now = context.now()

st.title("Repos")
in_view = scope.machine_scope(f, "vc_repos_only_focused")
with errors.guarded(), store.reader() as con:
    summary = vr.repo_summary(con, now, machine_ids=in_view).execute()
    repos = vr.latest_repos(con, now, machine_ids=in_view).execute()
    totals = vr.fleet_repo_totals(con, now, machine_ids=in_view).execute().iloc[0]

if summary.empty:
    errors.no_data()
    st.stop()

c = st.columns(5)
for col, label, key, why in (
    (c[0], "Repos", "repos", "Clones across the machines in view (one repo on two machines counts twice)"),
    (c[1], "Dirty", "dirty", "Uncommitted changes"),
    (c[2], "Behind", "behind", "Behind the machine's last fetch of upstream"),
    (c[3], "Ahead", "ahead", "Local commits not pushed"),
    (c[4], "Need a look", "needs_attention", "Dirty, ahead, behind, diverged, remote mismatch or broken"),
):
    col.metric(label, str(int(totals[key])), border=True, help=why)
st.caption(f"Latest ru collection per machine; oldest {fmt.fmt_age(totals['oldest_age_seconds'])}. "
           "ahead / behind are against each machine's last fetch (the collector never fetches).")

st.subheader("By machine")
df, config = ft.repo_summary(summary)
st.dataframe(df, hide_index=True, column_config=config, width="stretch", key="vc_repo_summary")

st.subheader("Repos")
show_all = st.toggle("Show every repo, not only those that need a look", key="vc_repos_show_all")
shown = repos if show_all else repos[repos["attention"].notna()]
if shown.empty:
    st.success("Every repo is clean and up to date with its last fetch.", icon=":material/check_circle:")
else:
    df, config = ft.repos(shown)
    st.dataframe(df, hide_index=True, column_config=config, width="stretch", key="vc_repos_table")

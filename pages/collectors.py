"""Collectors: is data flowing, which collector failed where, and who blocked writes."""

from __future__ import annotations

from datetime import timedelta

import streamlit as st

from workbench.ui import context, errors, filters, tables
from workbench.ui import fleet_tables as ft
from workbench.ui import format as fmt
from workbench.views import collectors_fleet as vcf
from workbench.views import ops

RUNS_LIMIT = 200
_WINDOW_HOURS = {"1h": 1, "6h": 6, "24h": 24, "7d": 24 * 7}

cfg, store = context.config(), context.store()
f = filters.current(cfg.dashboard.default_window)
now = context.now()
hours = _WINDOW_HOURS.get(f.window, 24)

st.title("Collectors")
only_focused = st.toggle(f"Only the machine picked in the sidebar ({f.label(f.machine_id)})",
                         key="vc_collectors_only_focused", disabled=f.machine_id is None)
machine_filter = f.machine_id if only_focused else None
in_view = [machine_filter] if machine_filter else (list(f.machine_ids) if f.tags else None)
with errors.guarded(), store.reader() as con:
    poll = ops.poll_freshness(con, now).execute()
    status = ops.collector_status(con, now, machine_ids=in_view).execute()
    runs = ops.recent_runs(con, limit=RUNS_LIMIT, machine_ids=in_view,
                           since=now - timedelta(hours=hours)).execute()
    locks = ops.lock_contention(con, now, hours=hours).execute()
    tools = vcf.tool_availability(con, now, machine_ids=in_view).execute()

pr = poll.iloc[0] if len(poll) else None
c = st.columns(4)
c[0].metric("Last poll", fmt.fmt_age(None if pr is None else pr["age_seconds"]), border=True)
for col, label, key in ((c[1], "Runs (1h)", "runs_last_hour"), (c[2], "Errors (1h)", "errors_last_hour"),
                        (c[3], "Warnings (1h)", "warnings_last_hour")):
    v = None if pr is None else pr[key]
    col.metric(label, "0" if fmt.is_missing(v) else str(int(v)), border=True)

st.subheader("Status by machine and collector")
if status.empty:
    errors.no_data()
else:
    df, config = tables.collector_status(status)
    st.dataframe(df, hide_index=True, column_config=config, width="stretch", key="vc_collector_status",
                 placeholder="—")

st.subheader("Recent runs")
problems_only = st.toggle("Only runs with errors or warnings", key="vc_collectors_problems_only")
if problems_only:
    runs = runs[runs["status"].isin(["error", "timeout", "warning"])]
if runs.empty:
    errors.no_data()
else:
    df, config = tables.runs(runs)
    st.dataframe(df, hide_index=True, column_config=config, width="stretch", key="vc_recent_runs",
                 placeholder="")
    st.caption(f"Latest {RUNS_LIMIT} runs at most in the last {f.window}, newest first.")

st.subheader("Write-lock contention")
if locks.empty:
    st.info(f"No write had to wait for the database lock in the last {f.window}.",
            icon=":material/lock_open:")
else:
    df, config = tables.lock_contention(locks)
    st.dataframe(df, hide_index=True, column_config=config, width="stretch", key="vc_lock_contention")
    st.caption(f"Writes that waited for the DuckDB file lock in the last {f.window}, longest total first.")

st.subheader("Tool availability")
if tools.empty:
    errors.no_data()
else:
    df, config = ft.tool_grid(tools)
    st.dataframe(df, hide_index=True, column_config=config, width="stretch", key="vc_tool_availability")
    st.caption(f"Latest `command -v` check per machine and tool (version where the tool reports one); "
               f"oldest check {fmt.fmt_age(tools['age_seconds'].max())}. An empty cell: the machine never "
               "answered for that tool.")

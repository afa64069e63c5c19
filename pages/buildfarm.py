"""Build farm: are the rch workers up, is the queue growing, and which builds failed."""

from __future__ import annotations

import streamlit as st

from workbench.ui import charts, context, errors, filters, scope
from workbench.ui import fleet_tables as ft
from workbench.ui import format as fmt
from workbench.views import buildfarm as vb
from workbench.views import machines as vm

BUILDS_LIMIT = 200



def _n(v: object, missing: str = fmt.MISSING) -> str:
    return missing if fmt.is_missing(v) else str(int(v))  # type: ignore[call-overload]


cfg, store = context.config(), context.store()
f = filters.current(cfg.dashboard.default_window)
now = context.now()
start, end = vm.window_bounds(now, f.window)

st.title("Build farm")
in_view = scope.machine_scope(f, "vc_buildfarm_only_focused")
with errors.guarded(), store.reader() as con:
    status = vb.latest_status(con, now, machine_ids=in_view).execute()
    workers = vb.workers(con, now, machine_ids=in_view).execute()
    queue = vb.queue_series(con, start, end, machine_ids=in_view).execute()
    builds = vb.recent_builds(con, start, end, machine_ids=in_view, limit=BUILDS_LIMIT).execute()
    farm = vb.farm_totals(con, now, machine_ids=in_view).execute().iloc[0]
    built = vb.build_totals(con, start, end, machine_ids=in_view).execute().iloc[0]

if status.empty:
    errors.no_data()
else:
    c = st.columns(5)
    c[0].metric("Workers healthy", f"{_n(farm['workers_healthy'])} / {_n(farm['workers_total'])}", border=True)
    c[1].metric("Free slots", f"{_n(farm['slots_available'])} / {_n(farm['slots_total'])}", border=True)
    c[2].metric("Queued builds", _n(farm["queued_builds"]), border=True)
    c[3].metric("Active builds", _n(farm["active_builds"]), border=True)
    c[4].metric(f"Builds ({f.window})", _n(built["builds"], "0"), border=True,
                help=f"{_n(built['failed'], '0')} failed")
    postures = ", ".join(f"{m}: {p}" for m, p in zip(status["machine_id"], status["posture"].fillna("unknown"),
                                                     strict=True))
    st.caption(f"Daemon posture — {postures}. Latest status {fmt.fmt_age(status['age_seconds'].min())}.")
    down = status[~status["success"]]
    for _, row in down.iterrows():
        st.warning(f"rch on **{row['machine_id']}** did not answer: {row['error_code'] or '?'}: "
                   f"{row['error_message'] or 'no message'}", icon=":material/cloud_off:")

st.subheader("Queue")
if queue.empty:
    errors.no_data(errors.NO_DATA_WINDOW)
else:
    a, b = st.columns(2)
    a.plotly_chart(charts.snapshot_series(queue, "machine_id", "queued_builds", "Queued builds", "builds",
                                         x_range=(start, end)), key="vc_chart_queue")
    b.plotly_chart(charts.snapshot_series(queue, "machine_id", "slots_available", "Free slots", "slots",
                                         x_range=(start, end)), key="vc_chart_slots")

st.subheader("Workers")
if workers.empty:
    errors.no_data()
else:
    df, config = ft.rch_workers(workers)
    st.dataframe(df, hide_index=True, column_config=config, width="stretch", key="vc_rch_workers")

st.subheader("Recent builds")
if builds.empty:
    errors.no_data(errors.NO_DATA_WINDOW)
else:
    df, config = ft.builds(builds)
    st.dataframe(df, hide_index=True, column_config=config, width="stretch", key="vc_rch_builds")
    st.caption(f"Builds started in the last {f.window}, newest first (at most {BUILDS_LIMIT}).")

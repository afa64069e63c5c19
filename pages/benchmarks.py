"""Benchmarks: is a host slower than it used to be (cloud_benchmarker's sysbench runs)?"""

from __future__ import annotations

import streamlit as st

from workbench.ui import charts, context, errors, filters, scope
from workbench.ui import fleet_tables as ft
from workbench.ui import format as fmt
from workbench.views import benchmarks as vbm
from workbench.views import machines as vm

cfg, store = context.config(), context.store()
f = filters.current(cfg.dashboard.default_window)
now = context.now()
start, end = vm.window_bounds(now, f.window)
# Benchmarks run hours apart: a short dashboard window would hold no run at all.
chart_start = min(start, now - vbm.BASELINE_WINDOW)

st.title("Benchmarks")
in_view = scope.machine_scope(f, "vc_bench_only_focused")
with errors.guarded(), store.reader() as con:
    latest = vbm.latest_vs_baseline(con, now, hosts=in_view).execute()
    runs = vbm.subscores(con, chart_start, end, hosts=in_view).execute()
    overall = vbm.overall_scores(con, chart_start, end, hosts=in_view).execute()

if latest.empty:
    errors.no_data()
    st.caption("List `cloud_benchmarker` in the `collectors` of the machine that runs it "
               "(option `cloud_benchmarker_url`, default http://127.0.0.1:9999).")
    st.stop()

slower = latest[latest["degraded"]]
c = st.columns(3)
c[0].metric("Hosts benchmarked", str(len(latest)), border=True)
c[1].metric("Slower than their own baseline", str(len(slower)), border=True,
            help=f"A metric of the latest run {int(vbm.DEGRADED_BY * 100)}% worse than the median of the "
                 f"host's runs in the {vbm.BASELINE_WINDOW.days} days before it")
c[2].metric("Latest run", fmt.fmt_age(latest["age_seconds"].min()), border=True)
for _, row in slower.iterrows():
    st.warning(f"**{row['host']}** is slower than its baseline: {vbm.describe_degraded(row.to_dict())}. "
               "An oversold or noisy-neighbour host shows here before agents notice.",
               icon=":material/speed:")

st.subheader("Latest run per host")
df, config = ft.benchmarks(latest)
st.dataframe(df, hide_index=True, column_config=config, width="stretch", key="vc_bench_latest")
st.caption("Ratios compare each host with itself. The overall score is cloud_benchmarker's own: relative to "
           "the other hosts of the same run, so it moves when another host changes.")

st.subheader(f"History (since {chart_start:%Y-%m-%d %H:%M} UTC)")
if runs.empty:
    errors.no_data(errors.NO_DATA_WINDOW)
else:
    a, b = st.columns(2)
    a.plotly_chart(charts.snapshot_series(runs, "host", "cpu_events_per_second", "CPU (sysbench events/s)",
                                         "events/s", x="run_at", x_range=(chart_start, end)), key="vc_chart_bench_cpu")
    b.plotly_chart(charts.snapshot_series(overall, "host", "overall_score", "Overall score (relative)", "score",
                                         y_range=(0, 100), x="run_at", x_range=(chart_start, end)),
                   key="vc_chart_bench_overall")

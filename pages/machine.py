"""Machine: one machine's resources over the chosen time window."""

from __future__ import annotations

import streamlit as st

from workbench.ui import charts, context, errors, filters
from workbench.ui import format as fmt
from workbench.views import machines as vm

cfg, store = context.config(), context.store()
f = filters.current(cfg.dashboard.default_window)
now = context.now()
mid = f.machine_id

st.title(f"Machine — {f.label(mid)}" if mid else "Machine")
if mid is None:
    errors.no_data("no machines yet" + (" with these tags" if f.tags else ""))
    st.stop()

start, end = vm.window_bounds(now, f.window)
bucket = vm.pick_bucket_seconds(start, end)
with errors.guarded(), store.reader() as con:
    state = vm.machine_state(con, now, machine_ids=[mid]).execute()
    series = vm.sample_series(con, mid, start, end, bucket).execute()
    disks = vm.filesystem_series(con, mid, start, end, bucket).execute()

s = state.iloc[0] if len(state) else None
last = fmt.fmt_age(None if s is None else s["age_seconds"])
st.caption(f"Last {f.window}, mean per {fmt.fmt_duration(bucket)} bucket, times in UTC. "
           f"Latest sample: {last}. Pick another machine or window in the sidebar.")

th = cfg.health.thresholds
xr = (start, end)
if series.empty:
    errors.no_data(errors.NO_DATA_WINDOW)
else:
    a, b = st.columns(2)
    a.plotly_chart(charts.percent_series(series, "cpu_pct", "CPU %", warn_at=th.cpu_pct.warn, x_range=xr),
                   key="vc_chart_cpu")
    b.plotly_chart(charts.time_series(series, {"load_per_core": "load1 / core"}, "Load per core", "× cores",
                                      hover_format=".2f", threshold=th.load_per_core.warn, x_range=xr),
                   key="vc_chart_load")
    a, b = st.columns(2)
    a.plotly_chart(charts.percent_series(series, "mem_used_pct", "Memory %", warn_at=th.memory_pct.warn,
                                         x_range=xr), key="vc_chart_mem")
    b.plotly_chart(charts.percent_series(series, "swap_used_pct", "Swap %", warn_at=th.swap_pct.warn,
                                         x_range=xr), key="vc_chart_swap")
    st.plotly_chart(charts.network_series(series, "Network rx / tx", x_range=xr), key="vc_chart_net")

st.subheader("Disks")
if disks.empty:
    errors.no_data(errors.NO_DATA_WINDOW)
else:
    st.plotly_chart(charts.grouped_series(disks, "mount", "used_pct", "Disk used % per filesystem", "%",
                                          y_range=(0, 100), threshold=th.disk_pct.warn, x_range=xr),
                    key="vc_chart_disk")

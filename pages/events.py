"""Events: what agents tried and were stopped from doing (dcg), whom they talked to (rano), what got stuck (pt)."""

from __future__ import annotations

import streamlit as st

from workbench.ui import charts, context, errors, filters, scope
from workbench.ui import fleet_tables as ft
from workbench.ui import format as fmt
from workbench.views import events as ve
from workbench.views import machines as vm


def _count(v: object) -> str:
    return fmt.MISSING if fmt.is_missing(v) else str(int(v))  # type: ignore[call-overload]


def _span(row: object) -> str:
    start, end = row["period_start"], row["period_end"]  # type: ignore[index]
    if fmt.is_missing(start) or fmt.is_missing(end):
        return "its own window"
    return f"{start:%Y-%m-%d} to {end:%Y-%m-%d}"


cfg, store = context.config(), context.store()
f = filters.current(cfg.dashboard.default_window)
now = context.now()
start, end = vm.window_bounds(now, f.window)
xr = (start, end)
bucket = ve.bucket_seconds_for(start, end)

st.title("Events")
in_view = scope.machine_scope(f, "vc_events_only_focused")
with errors.guarded(), store.reader() as con:
    denies = ve.dcg_denies_by_rule(con, start, end, machine_ids=in_view).execute()
    deny_series = ve.dcg_denies_series(con, start, end, machine_ids=in_view, bucket_seconds=bucket).execute()
    dcg = ve.dcg_totals(con, start, end, machine_ids=in_view).execute().iloc[0]
    dcg_stats = ve.dcg_stats(con, now, machine_ids=in_view).execute()
    net = ve.net_by_provider(con, start, end, machine_ids=in_view).execute()
    net_totals = ve.net_totals(con, start, end, machine_ids=in_view).execute().iloc[0]
    net_series = ve.net_series(con, start, end, machine_ids=in_view, bucket_seconds=bucket).execute()
    plans = ve.pt_plans(con, now, machine_ids=in_view).execute()
    pt_totals = ve.pt_totals(con, now, machine_ids=in_view).execute().iloc[0]
    findings = ve.pt_findings(con, now, machine_ids=in_view).execute()

st.subheader("Commands denied (dcg)")
if int(dcg["decisions"] or 0) == 0:
    errors.no_data(errors.NO_DATA_WINDOW)
else:
    c = st.columns(4)
    c[0].metric(f"Denied ({f.window})", _count(dcg["denies"]), border=True,
                help=f"of {_count(dcg['decisions'])} decisions on {_count(dcg['machines'])} machine(s)")
    c[1].metric("Rules that denied", _count(dcg["rules"]), border=True)
    c[2].metric("Warned", _count(dcg["warns"]), border=True)
    c[3].metric("Bypassed", _count(dcg["bypasses"]), border=True, help="Denied, then let through by an allowlist")
    if denies.empty:
        st.success(f"dcg denied nothing in the last {f.window}.", icon=":material/check_circle:")
    else:
        st.plotly_chart(charts.stacked_bars(deny_series, "ts", "rule", "denies",
                                            f"Denies per rule per {fmt.fmt_duration(bucket)}, last {f.window}",
                                            "denies", x_range=xr, bucket_seconds=bucket), key="vc_chart_dcg")
        df, config = ft.dcg_rules(denies)
        st.dataframe(df, hide_index=True, column_config=config, width="stretch", key="vc_dcg_rules")
for _, row in dcg_stats.iterrows():
    st.caption(f"`dcg stats` on {row['machine_id']} (dcg's decision log, {_span(row)}): "
               f"{_count(row['total_blocks'])} blocked, {_count(row['total_bypasses'])} bypassed, "
               f"{_count(row['total_warns'])} warned of {_count(row['total_entries'])} decisions; "
               f"most blocks: {row['top_block_pack'] or 'none'}.")

st.subheader("Network connections (rano)")
if net.empty:
    errors.no_data(errors.NO_DATA_WINDOW)
else:
    c = st.columns(3)
    c[0].metric(f"Connections ({f.window})", str(int(net_totals["connects"])), border=True,
                help=f"on {int(net_totals['machines'])} machine(s)")
    c[1].metric("Providers", str(int(net_totals["providers"])), border=True)
    c[2].metric("Domains", str(int(net_totals["domains"])), border=True)
    st.plotly_chart(charts.stacked_bars(net_series, "ts", "provider", "connects",
                                        f"Connections opened per provider per {fmt.fmt_duration(bucket)}, "
                                        f"last {f.window}", "connections", x_range=xr, bucket_seconds=bucket),
                    key="vc_chart_net")
    df, config = ft.net_by_provider(net)
    st.dataframe(df, hide_index=True, column_config=config, width="stretch", key="vc_net_table")

st.subheader("Process triage (pt)")
if plans.empty:
    errors.no_data()
else:
    c = st.columns(4)
    c[0].metric("Processes scanned", _count(pt_totals["processes_scanned"]), border=True,
                help=f"latest plan of {int(pt_totals['machines'])} machine(s)")
    c[1].metric("Kill recommended", _count(pt_totals["kill_recommendations"]), border=True)
    c[2].metric("Review recommended", _count(pt_totals["review_recommendations"]), border=True)
    freed = pt_totals["expected_memory_freed_gb"]
    c[3].metric("Memory to free", fmt.MISSING if fmt.is_missing(freed) else fmt.fmt_bytes(freed * 1024**3),
                border=True, help="pt's own estimate if its kill set were applied")
    if findings.empty:
        st.success("pt found no stuck or abandoned process in its latest plans.", icon=":material/check_circle:")
    else:
        df, config = ft.pt_findings(findings)
        st.dataframe(df, hide_index=True, column_config=config, width="stretch", key="vc_pt_findings")
        returned = pt_totals["candidates_returned"]
        if not fmt.is_missing(returned) and int(returned) > len(findings):
            st.caption(f"pt reported {int(returned)} candidates but listed {len(findings)} in its output.")

"""Overview: is the fleet healthy right now, and if not, which machine and why."""

from __future__ import annotations

import streamlit as st

from workbench.ui import context, errors, filters, tables
from workbench.ui import format as fmt
from workbench.views import health as vh
from workbench.views import machines as vm
from workbench.views import ops

LIST_KEY = "vc_overview_machines"
_ROWS_KEY = "vc_overview_rows"


def _selected_rows(state: object) -> list[int]:
    # The widget's state is an attribute dict once drawn, or the plain dict this page assigned.
    if isinstance(state, dict) and "selection" in state:
        return list(state["selection"].get("rows", []))
    selection = getattr(state, "selection", None)
    return list(getattr(selection, "rows", []) or [])


def _on_pick() -> None:
    rows = _selected_rows(st.session_state.get(LIST_KEY))
    ids = st.session_state.get(_ROWS_KEY) or []
    if rows and rows[0] < len(ids):
        filters.set_machine(ids[rows[0]])


cfg, store = context.config(), context.store()
f = filters.current(cfg.dashboard.default_window)
now = context.now()

st.title("Fleet overview")
with errors.guarded(), store.reader() as con:
    fleet = vh.fleet_health(con, cfg.health, now, tags=f.tag_list).execute()
    poll = ops.poll_freshness(con, now).execute()
    alerts = ops.active_alert_count(con, machine_ids=list(f.machine_ids) if f.tags else None).execute()
    mh = vh.machine_health(con, cfg.health, now, tags=f.tag_list).execute()

# --- top row: always three metrics, even on an empty database -------------------------------
c1, c2, c3 = st.columns(3)
if len(fleet):
    fr = fleet.iloc[0]
    c1.metric("Fleet health", f"{fmt.fmt_score(fr['score'])} · {fr['severity']}", border=True,
              help=f"{int(fr['machines'])} machines: {int(fr['ok'])} ok, {int(fr['warning'])} warning, "
                   f"{int(fr['critical'])} critical")
else:
    c1.metric("Fleet health", "no machines", border=True,
              help="No machine known yet: run `vc demo` or `vc collect --once`")
pr = poll.iloc[0] if len(poll) else None
poll_age = None if pr is None else pr["age_seconds"]
c2.metric("Last poll", fmt.fmt_age(poll_age), border=True,
          help=None if pr is None or fmt.is_missing(pr["last_run_at"]) else
          f"{int(pr['runs_last_hour'] or 0)} runs, {int(pr['errors_last_hour'] or 0)} errors, "
          f"{int(pr['warnings_last_hour'] or 0)} warnings in the last hour")
ar = alerts.iloc[0] if len(alerts) else None
active = 0 if ar is None or fmt.is_missing(ar["active"]) else int(ar["active"])
unacked = 0 if ar is None or fmt.is_missing(ar["unacked"]) else int(ar["unacked"])
c3.metric("Active alerts", str(active), border=True, help=f"{unacked} not acknowledged")
if len(fleet):
    fr = fleet.iloc[0]
    st.caption(f"{int(fr['machines'])} machines — {int(fr['ok'])} ok, {int(fr['warning'])} warning, "
               f"{int(fr['critical'])} critical. Worst: **{fr['worst_machine']}** "
               f"({fr['worst_factor']}: {fr['worst_detail']}).")

# --- machine list (left) and the focused machine (right) ------------------------------------
left, right = st.columns([1, 1], gap="large")
with left:
    st.subheader("Machines")
    if mh.empty:
        errors.no_data()
    else:
        ids = mh["machine_id"].tolist()
        st.session_state[_ROWS_KEY] = ids
        if f.machine_id in ids:
            # Keep the highlighted row on the focused machine (it may have been picked in the sidebar).
            want = {"selection": {"rows": [ids.index(f.machine_id)]}}
            if _selected_rows(st.session_state.get(LIST_KEY)) != want["selection"]["rows"]:
                st.session_state[LIST_KEY] = want
        df, config = tables.machine_list(mh)
        st.dataframe(df, key=LIST_KEY, on_select=_on_pick, selection_mode="single-row-required",
                     hide_index=True, column_config=config, width="stretch")
        st.caption("Select a row to see that machine on the right.")

with right:
    mid = f.machine_id
    if mid is None:
        st.subheader("Machine")
        errors.no_data()
        st.stop()
    with errors.guarded(), store.reader() as con:
        state = vm.machine_state(con, now, machine_ids=[mid]).execute()
        hf = vh.health_factors(con, cfg.health, now, machine_ids=[mid]).execute()
        fs = vm.latest_filesystems(con, machine_ids=[mid]).execute()
        top_cpu = vm.top_processes(con, mid, "cpu").execute()
        top_mem = vm.top_processes(con, mid, "memory").execute()

    st.subheader(f.label(mid))
    row = mh[mh["machine_id"] == mid]
    if len(row):
        r = row.iloc[0]
        st.markdown(f"{fmt.severity_badge(r['severity'])} · score **{fmt.fmt_score(r['score'])}** · "
                    f"worst factor **{r['worst_factor']}**: {r['worst_detail']}")
    if st.button("Open machine page", key="vc_open_machine", icon=":material/open_in_new:"):
        st.switch_page("pages/machine.py")

    s = state.iloc[0] if len(state) else None
    if s is None or int(s["samples"]) == 0:
        errors.no_data("no samples from this machine yet")
    else:
        readings = [
            ("CPU", fmt.fmt_pct(s["cpu_pct"]), None),
            ("Load / core", fmt.fmt_number(s["load_per_core"]), "load5 divided by the core count"),
            ("Memory", fmt.fmt_pct(s["mem_used_pct"]), None),
            ("Swap", fmt.fmt_pct(s["swap_used_pct"]), None),
            ("Fullest disk", fmt.fmt_pct(s["worst_disk_pct"]),
             None if fmt.is_missing(s["worst_disk_mount"]) else f"mount {s['worst_disk_mount']}"),
            ("Sample age", fmt.fmt_duration(s["age_seconds"]), "time since the latest sample"),
            ("Net rx", fmt.fmt_rate(s["net_rx_bps"]), None),
            ("Net tx", fmt.fmt_rate(s["net_tx_bps"]), None),
            ("Uptime", fmt.fmt_duration(s["uptime_seconds"]), None),
        ]
        for start in range(0, len(readings), 3):
            for col, (label, value, why) in zip(st.columns(3), readings[start:start + 3], strict=True):
                col.metric(label, value, help=why)
        st.caption(f"{fmt.fmt_number(s['cpu_count'], 0)} cores · "
                   f"{fmt.fmt_bytes(s['mem_total_bytes'])} memory")

    st.markdown("**Health factors**")
    if hf.empty:
        errors.no_data()
    else:
        df, config = tables.factors(hf)
        st.dataframe(df, hide_index=True, column_config=config, width="stretch")

    st.markdown("**Filesystems**")
    if fs.empty:
        errors.no_data()
    else:
        df, config = tables.filesystems(fs)
        st.dataframe(df, hide_index=True, column_config=config, width="stretch")

    st.markdown("**Top processes**")
    by_cpu, by_mem = st.tabs(["By CPU", "By memory"])
    for tab, tp in ((by_cpu, top_cpu), (by_mem, top_mem)):
        with tab:
            if tp.empty:
                errors.no_data()
            else:
                df, config = tables.processes(tp)
                st.dataframe(df, hide_index=True, column_config=config, width="stretch")

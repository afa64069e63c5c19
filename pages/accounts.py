"""Accounts: how much of each provider rate window is used, when it resets, and who shares the account."""

from __future__ import annotations

from datetime import timedelta

import streamlit as st

from workbench.ui import charts, context, errors, filters, scope
from workbench.ui import fleet_tables as ft
from workbench.ui import format as fmt
from workbench.views import accounts as va
from workbench.views import forecast as fc
from workbench.views import machines as vm

COST_SPAN = timedelta(days=14)

cfg, store = context.config(), context.store()
f = filters.current(cfg.dashboard.default_window)
now = context.now()
start, end = vm.window_bounds(now, f.window)

st.title("Accounts")
in_view = scope.machine_scope(f, "vc_accounts_only_focused")
with errors.guarded(), store.reader() as con:
    usage = va.account_usage(con, now, machine_ids=in_view).execute()
    totals = va.account_totals(con, now, machine_ids=in_view).execute().iloc[0]
    series = va.usage_series(con, start, end, machine_ids=in_view).execute()
    logins = va.account_logins(con, now, machine_ids=in_view).execute()
    cost = fc.cost_per_day(con, machine_ids=in_view, since=(now - COST_SPAN).date()).execute()

if usage.empty:
    errors.no_data()
else:
    c = st.columns(4)
    c[0].metric("Accounts", str(int(totals["accounts"])), border=True,
                help=f"{int(totals['providers'])} provider(s); an account seen from several machines counts once")
    c[1].metric("Fullest window", fmt.fmt_pct(totals["fullest_used_pct"], 0), border=True,
                help=None if fmt.is_missing(totals["fullest_account"]) else
                f"{totals['fullest_account']} · {totals['fullest_window']}")
    reset = totals["next_reset_in_seconds"]
    c[2].metric("Next reset", fmt.MISSING if fmt.is_missing(reset) else f"in {fmt.fmt_duration(reset)}",
                border=True)
    c[3].metric("Shared accounts", str(int(totals["shared_accounts"])), border=True,
                help="Accounts reported by more than one machine")

    st.subheader("Usage by account and window")
    st.plotly_chart(charts.usage_bars(usage.assign(label=usage["account_key"] + " · " + usage["window_name"]),
                                      "label", "used_pct", "Used % (most recent report)"), key="vc_chart_usage_now")
    df, config = ft.accounts(usage)
    st.dataframe(df, hide_index=True, column_config=config, width="stretch", key="vc_accounts_table")
    st.caption("Each machine's latest caut / caam report, merged per account: **Used %** is the most recent "
               "report, **Max %** the highest current one. Machines sharing an account share its quota.")

st.subheader("Usage over time")
if series.empty:
    errors.no_data(errors.NO_DATA_WINDOW)
else:
    st.plotly_chart(charts.snapshot_series(series, "series", "used_pct", f"Used % per account window, last {f.window}",
                                          "%", y_range=(0, 100), threshold=90, x_range=(start, end)),
                    key="vc_chart_usage_series")

st.subheader(f"Spend per day (last {COST_SPAN.days} days)")
if cost.empty:
    errors.no_data()
else:
    today = cost[cost["day"].astype(str).str[:10] == now.date().isoformat()]["cost_usd"].sum()
    days = cost.groupby("day")["cost_usd"].sum()
    a, b = st.columns(2)
    a.metric("Today so far", f"${today:,.2f}", border=True)
    b.metric("Average per day", f"${days.mean():,.2f}", border=True, help=f"Over the {len(days)} day(s) with a report")
    st.plotly_chart(charts.stacked_bars(cost.assign(day=cost["day"].astype(str).str[:10]), "day", "provider",
                                        "cost_usd", "USD per day by provider", "USD"), key="vc_chart_cost")
    st.caption("From `caut cost` on each machine (it adds up that machine's agent logs), summed over the "
               "machines in view. Today's bar grows until the day ends.")

st.subheader("Logins (caam)")
if logins.empty:
    errors.no_data()
else:
    df, config = ft.account_logins(logins)
    st.dataframe(df, hide_index=True, column_config=config, width="stretch", key="vc_account_logins")

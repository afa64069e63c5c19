"""View DataFrames reshaped for display: chosen columns, readable labels, column configs.

Only presentation happens here (renaming, formatting, units). Every value shown comes from the
view frame passed in; nothing is computed that a view should own.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st
from pandas.io.formats.style import Styler

from workbench.ui import format as fmt
from workbench.views.health import FACTORS

Table = tuple[pd.DataFrame | Styler, dict[str, Any]]

_CELL = {
    "green": "background-color: rgba(33, 195, 84, 0.18)",
    "orange": "background-color: rgba(255, 164, 33, 0.25)",
    "red": "background-color: rgba(255, 43, 43, 0.22)",
    "gray": "",
}
_SCORE = st.column_config.ProgressColumn("Score", min_value=0.0, max_value=1.0, format="%.2f", color="auto")


def _colour(df: pd.DataFrame, column: str, palette: dict[str, str]) -> Styler:
    """Tint a status column's cells (text stays as is, so it still reads without colour)."""
    return df.style.map(lambda v: _CELL[palette.get(str(v), "gray")], subset=[column])


def machine_list(mh: pd.DataFrame) -> Table:
    """From views.health.machine_health: one row per machine, worst first."""
    df = pd.DataFrame({
        "Machine": mh["display_name"],
        "Status": mh["severity"].fillna("unknown"),
        "Score": mh["score"],
        "Worst factor": mh["worst_factor"],
        "Last sample": mh["age_seconds"].map(fmt.fmt_age),
        "Why": mh["worst_detail"],
        "Demo": mh["is_demo"].fillna(False).astype(bool),
    })
    config = {
        "Score": _SCORE,
        "Demo": st.column_config.CheckboxColumn("Demo", width="small"),
    }
    if not df["Demo"].any():
        df = df.drop(columns=["Demo"])
    return _colour(df, "Status", fmt.SEVERITY_COLOR), config


def factors(hf: pd.DataFrame) -> Table:
    """From views.health.health_factors for one machine, in the views' factor order."""
    order = {name: i for i, name in enumerate(FACTORS)}
    hf = hf.assign(_order=hf["factor"].map(order)).sort_values("_order")
    df = pd.DataFrame({
        "Factor": hf["factor"],
        "Reading": [fmt.fmt_with_unit(v, u) for v, u in zip(hf["value"], hf["unit"], strict=True)],
        "Score": hf["score"],
        "Weight": hf["weight"],
        "Detail": hf["detail"],
    })
    config = {
        "Score": _SCORE,
        "Weight": st.column_config.NumberColumn("Weight", format="%.1f"),
    }
    return df, config


def filesystems(fs: pd.DataFrame) -> Table:
    """From views.machines.latest_filesystems for one machine."""
    df = pd.DataFrame({
        "Mount": fs["mount"],
        "Device": fs["device"],
        "Type": fs["fstype"],
        "Size": fs["total_bytes"].map(fmt.fmt_bytes),
        "Used": fs["used_bytes"].map(fmt.fmt_bytes),
        "Free": fs["free_bytes"].map(fmt.fmt_bytes),
        "Used %": fs["used_pct"],
    }).sort_values("Mount")
    config = {"Used %": st.column_config.ProgressColumn("Used %", min_value=0.0, max_value=100.0,
                                                       format="%.1f%%", color="auto-inverse")}
    return df, config


def processes(tp: pd.DataFrame) -> Table:
    """From views.machines.top_processes."""
    df = pd.DataFrame({
        "#": tp["rank"],
        "PID": tp["pid"],
        "Name": tp["name"],
        "User": tp["username"],
        "CPU %": tp["cpu_pct"],
        "RSS": tp["mem_rss_bytes"].map(fmt.fmt_bytes),
        "Command": tp["cmdline"],
    })
    config = {"CPU %": st.column_config.NumberColumn("CPU %", format="%.1f")}
    return df, config


def collector_status(cs: pd.DataFrame) -> Table:
    """From views.ops.collector_status."""
    df = pd.DataFrame({
        "Machine": cs["machine_id"],
        "Collector": cs["collector"],
        "Status": cs["status"],
        "Last run": cs["age_seconds"].map(fmt.fmt_age),
        "Duration": cs["duration_ms"].map(fmt.fmt_ms),
        "Rows": cs["rows_written"],
        "Runs": cs["runs"],
        "Errors": cs["errors"],
        "Last error": cs["last_error"].fillna(""),
        "Last error at": cs["last_error_at"],
    })
    return _colour(df, "Status", fmt.STATUS_COLOR), {
        "Last error at": st.column_config.DatetimeColumn("Last error at", format="YYYY-MM-DD HH:mm:ss")}


def runs(rr: pd.DataFrame) -> Table:
    """From views.ops.recent_runs."""
    df = pd.DataFrame({
        "Started": rr["started_at"],
        "Machine": rr["machine_id"],
        "Collector": rr["collector"],
        "Status": rr["status"],
        "Duration": rr["duration_ms"].map(fmt.fmt_ms),
        "Rows": rr["rows_written"],
        "Error": rr["error"].fillna(""),
        "Warnings": rr["warnings"].map(fmt.join_list),
    })
    return _colour(df, "Status", fmt.STATUS_COLOR), {
        "Started": st.column_config.DatetimeColumn("Started", format="YYYY-MM-DD HH:mm:ss"),
        "Error": st.column_config.TextColumn("Error", width="large"),
        "Warnings": st.column_config.TextColumn("Warnings", width="large")}


def lock_contention(lc: pd.DataFrame) -> Table:
    """From views.ops.lock_contention."""
    df = pd.DataFrame({
        "Writer": lc["writer"],
        "Blocked by": lc["blocked_by"].fillna("unknown"),
        "Outcome": lc["outcome"],
        "Events": lc["events"],
        "Total wait": lc["total_wait_ms"].map(fmt.fmt_ms),
        "Longest wait": lc["max_wait_ms"].map(fmt.fmt_ms),
        "Last": lc["last_at"],
    })
    return df, {"Last": st.column_config.DatetimeColumn("Last", format="YYYY-MM-DD HH:mm:ss")}

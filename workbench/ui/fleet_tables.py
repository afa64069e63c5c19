"""Fleet-tool view frames reshaped for display (accounts, repos, agents, events, beads, build farm, tools).

Same rules as `workbench.ui.tables`: presentation only (labels, units, colours); every value comes
from the view frame passed in, and a missing value stays missing (a dash), never 0.
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from workbench.ui import format as fmt
from workbench.ui.tables import _CELL, Table, _colour

_WHEN = "YYYY-MM-DD HH:mm:ss"
# Neutral bars: half a weekly quota or half a context window is not an alarm (red-above-half would say so).
_PCT = {"min_value": 0.0, "max_value": 100.0, "format": "%.0f%%", "color": "blue"}
STATE_COLOR = {"active": "green", "idle": "gray", "waiting": "orange", "error": "red", "unknown": "gray"}
WORKER_COLOR = {"healthy": "green", "degraded": "orange", "draining": "orange", "drained": "gray",
                "unreachable": "red", "disabled": "gray"}
HEALTH_COLOR = {"healthy": "green", "warning": "orange", "critical": "red", "unknown": "gray"}


def _list(values: pd.Series) -> pd.Series:
    return values.map(lambda v: fmt.join_list(v, ", "))


def _repo_name(paths: pd.Series) -> pd.Series:
    """The repo's directory name; its full path (often long) goes in a column at the end."""
    return paths.map(lambda p: str(p).rstrip("/").rsplit("/", 1)[-1] if isinstance(p, str) else fmt.MISSING)


def _resets_in(seconds: object, passed: object) -> str:
    if fmt.is_missing(seconds):
        return fmt.MISSING
    if passed is True or float(seconds) <= 0:  # type: ignore[arg-type]
        return "reset since the report"
    return f"in {fmt.fmt_duration(seconds)}"


def accounts(a: pd.DataFrame) -> Table:
    """From views.accounts.account_usage: one row per account window."""
    df = pd.DataFrame({
        "Provider": a["provider"],
        "Account": a["account_email"].fillna(a["account_label"]).fillna(a["account_key"]),
        "Window": a["window_name"],
        "Used %": a["used_pct"],
        "Max %": a["max_used_pct"],
        "Resets": [_resets_in(s, p) for s, p in zip(a["resets_in_seconds"], a["reset_passed"], strict=True)],
        "Window length": (a["window_minutes"] * 60).map(fmt.fmt_duration),
        "Plan": a["plan_type"].fillna(""),
        "Machines": _list(a["machines"]),
        "Tools": _list(a["sources"]),
        "Reported": a["age_seconds"].map(fmt.fmt_age),
        "Error": a["error"].fillna(a["auth_warning"]).fillna(""),
    })
    config = {
        "Used %": st.column_config.ProgressColumn("Used %", help="Figure of the most recent report", **_PCT),
        "Max %": st.column_config.NumberColumn("Max %", format="%.0f%%",
                                               help="Highest figure among the machines' current reports"),
        "Machines": st.column_config.TextColumn("Machines", help="Machines whose latest report lists this account"),
    }
    return df, config


def account_logins(lg: pd.DataFrame) -> Table:
    """From views.accounts.account_logins."""
    df = pd.DataFrame({
        "Machine": lg["machine_id"],
        "Tool": lg["tool"],
        "Logged in": lg["logged_in"],
        "Profile": lg["active_profile"].fillna(""),
        "Health": lg["health_status"].fillna("unknown"),
        "Token expires": lg["health_expires_at"],
        "Errors (1h)": lg["health_error_count"],
        "Cooldown": lg["cooldown_remaining"].fillna(""),
        "Notices": lg["notices_json"].fillna(""),
        "Checked": lg["age_seconds"].map(fmt.fmt_age),
    })
    return _colour(df, "Health", HEALTH_COLOR), {
        "Token expires": st.column_config.DatetimeColumn("Token expires", format=_WHEN),
        "Errors (1h)": st.column_config.NumberColumn("Errors (1h)", format="%d"),
        "Logged in": st.column_config.CheckboxColumn("Logged in", width="small"),
    }


def repo_summary(rs: pd.DataFrame) -> Table:
    """From views.repos.repo_summary."""
    df = pd.DataFrame({
        "Machine": rs["machine_id"], "Repos": rs["repos"], "Dirty": rs["dirty"], "Ahead": rs["ahead"],
        "Behind": rs["behind"], "Diverged": rs["diverged"], "Remote mismatch": rs["mismatched"],
        "Broken": rs["broken"], "Unknown": rs["unknown"], "Need a look": rs["needs_attention"],
        "Collected": rs["age_seconds"].map(fmt.fmt_age),
    })
    return df, {"Unknown": st.column_config.NumberColumn("Unknown", help="ahead/behind not known (no upstream)")}


def repos(r: pd.DataFrame) -> Table:
    """From views.repos.latest_repos."""
    df = pd.DataFrame({
        "Machine": r["machine_id"],
        "Repo": r["repo"].fillna(r["path"]),
        "Branch": r["branch"].fillna(""),
        "Status": r["status"].fillna("unknown"),
        "Why": r["attention"].fillna(""),
        "Ahead": r["ahead"],
        "Behind": r["behind"],
        "Dirty": r["dirty"],
        "Path": r["path"],
    })
    palette = {"current": "green", "behind": "orange", "ahead": "orange", "diverged": "red", "no_upstream": "red",
               "not_git": "red", "missing": "red"}
    return _colour(df, "Status", palette), {"Dirty": st.column_config.CheckboxColumn("Dirty", width="small"),
                                            "Why": st.column_config.TextColumn("Why", width="medium")}


def ntm_sessions(s: pd.DataFrame) -> Table:
    """From views.agents.ntm_sessions."""
    df = pd.DataFrame({
        "Machine": s["machine_id"], "Session": s["session"], "Attached": s["attached"], "Agents": s["agents"],
        "Active": s["active"], "Idle": s["idle"], "Waiting": s["waiting"], "Error": s["error"],
        "Fullest context": s["max_context_pct"], "Pending mail": s["pending_mail"],
        "Health": s["health"].fillna(""), "Seen": s["age_seconds"].map(fmt.fmt_age),
    })
    return df, {"Fullest context": st.column_config.ProgressColumn("Fullest context", **_PCT),
                "Attached": st.column_config.CheckboxColumn("Attached", width="small")}


def ntm_agents(a: pd.DataFrame) -> Table:
    """From views.agents.ntm_agents."""
    df = pd.DataFrame({
        "Machine": a["machine_id"], "Session": a["session"], "Pane": a["pane"],
        "Agent": a["agent_type"].fillna("unknown"), "Variant": a["variant"].fillna(""),
        "State": a["state"].fillna("unknown"), "Context": a["context_pct"],
        "Last output": a["last_output_age_sec"].map(fmt.fmt_age),
        "Bead": a["current_bead"].fillna(""), "Pending mail": a["pending_mail"],
    })
    return _colour(df, "State", STATE_COLOR), {"Context": st.column_config.ProgressColumn("Context", **_PCT)}


def mail_inbox(i: pd.DataFrame) -> Table:
    """From views.agents.mail_inbox."""
    df = pd.DataFrame({
        "Machine": i["machine_id"], "Project": i["project_slug"].fillna(""), "Agent": i["agent_name"].fillna(""),
        "Urgent unread": i["urgent_unread"], "Ack overdue": i["ack_overdue"], "Ack pending": i["ack_pending"],
        "Unread": i["unread"], "Messages": i["messages"],
        "Oldest unread": i["oldest_unread_age_seconds"].map(lambda v: "" if fmt.is_missing(v) else fmt.fmt_age(v)),
    })
    return df, {}


def mail_attention(a: pd.DataFrame) -> Table:
    """From views.agents.mail_attention."""
    why = [", ".join(w for w, on in (("urgent, unread", u), ("ack overdue", o)) if on)
           for u, o in zip(a["urgent_unread"], a["ack_overdue"], strict=True)]
    df = pd.DataFrame({
        "Sent": a["created_at"], "Machine": a["machine_id"], "Project": a["project_slug"].fillna(""),
        "To": a["agent_name"].fillna(""), "From": a["sender_name"].fillna(""), "Subject": a["subject"].fillna(""),
        "Importance": a["importance"].fillna(""), "State": a["state"], "Why": why,
    })
    return df, {"Sent": st.column_config.DatetimeColumn("Sent", format=_WHEN),
                "Subject": st.column_config.TextColumn("Subject", width="large")}


def reservations(r: pd.DataFrame) -> Table:
    """From views.agents.active_reservations."""
    df = pd.DataFrame({
        "Machine": r["machine_id"], "Project": r["project_slug"].fillna(""), "Agent": r["agent_name"].fillna(""),
        "Paths": r["path_pattern"].fillna(""), "Exclusive": r["exclusive"], "Reason": r["reason"].fillna(""),
        "Held for": r["held_for_seconds"].map(fmt.fmt_duration),
        "Expires in": r["expires_in_seconds"].map(fmt.fmt_duration),
    })
    return df, {"Exclusive": st.column_config.CheckboxColumn("Exclusive", width="small")}


def dcg_rules(d: pd.DataFrame) -> Table:
    """From views.events.dcg_denies_by_rule."""
    df = pd.DataFrame({
        "Rule": d["rule"], "Pack": d["pack_id"].fillna(""), "Denies": d["denies"], "Machines": d["machines"],
        "Agents": _list(d["agents"]), "Last": d["last_ts"], "Last command": d["last_command"].fillna(""),
        "On": d["last_machine"], "In": d["last_working_dir"].fillna(""),
    })
    return df, {"Last": st.column_config.DatetimeColumn("Last", format=_WHEN),
                "Last command": st.column_config.TextColumn("Last command", width="large")}


def net_by_provider(n: pd.DataFrame) -> Table:
    """From views.events.net_by_provider."""
    df = pd.DataFrame({
        "Provider": n["provider"], "Domain": n["domain"], "Connects": n["connects"], "Closes": n["closes"],
        "Mean duration": n["mean_duration_ms"].map(fmt.fmt_ms), "Programs": _list(n["programs"]),
        "Machines": n["machines"], "Last": n["last_ts"],
    })
    return df, {"Last": st.column_config.DatetimeColumn("Last", format=_WHEN)}


def pt_findings(p: pd.DataFrame) -> Table:
    """From views.events.pt_findings."""
    df = pd.DataFrame({
        "Machine": p["machine_id"], "PID": p["pid"], "Process": p["command_short"].fillna(""),
        "Command": p["command"].fillna(""), "User": p["username"].fillna(""),
        "Class": p["classification"].fillna(""), "Score": p["score"], "Confidence": p["confidence"].fillna(""),
        "Action": p["recommended_action"].fillna(""), "Age": p["age_seconds"].map(fmt.fmt_duration),
        "Memory": (p["memory_mb"] * 1024 * 1024).map(fmt.fmt_bytes), "Risk": p["risk_level"].fillna(""),
    })
    palette = {"kill": "red", "review": "orange", "keep": "green"}
    return _colour(df, "Action", palette), {
        "Score": st.column_config.ProgressColumn("Score", min_value=0, max_value=100, format="%d",
                                                 color="auto-inverse"),
        "Command": st.column_config.TextColumn("Command", width="large")}


def beads_overview(b: pd.DataFrame) -> Table:
    """From views.beads.repo_overview."""
    df = pd.DataFrame({
        "Machine": b["machine_id"], "Repo": _repo_name(b["repo_path"]), "Ready": b["ready_count"],
        "Ready P0": b["ready_p0"], "Top ready": b["top_ready_id"].fillna(""), "Open": b["open_count"],
        "Actionable": b["actionable_count"], "Blocked": b["blocked_count"], "In progress": b["in_progress_count"],
        "Top pick": b["top_pick_id"].fillna(""), "Blockers to clear": b["blockers_to_clear"],
        "Cycles": b["has_cycles"], "Collected": b["age_seconds"].map(fmt.fmt_age), "Path": b["repo_path"],
    })
    return df, {"Cycles": st.column_config.CheckboxColumn("Cycles", width="small")}


def top_picks(p: pd.DataFrame) -> Table:
    """From views.beads.top_picks."""
    df = pd.DataFrame({
        "Machine": p["machine_id"], "Repo": _repo_name(p["repo_path"]), "Issue": p["issue_id"],
        "Title": p["title"].fillna(""), "Score": p["score"], "Unblocks": p["unblocks"],
        "Why": p["reasons"].fillna(""), "Path": p["repo_path"],
    })
    return df, {"Score": st.column_config.NumberColumn("Score", format="%.2f")}


def triage_blockers(t: pd.DataFrame) -> Table:
    """From views.beads.triage_blockers."""
    df = pd.DataFrame({
        "Machine": t["machine_id"], "Repo": _repo_name(t["repo_path"]), "Issue": t["issue_id"],
        "Title": t["title"].fillna(""), "Unblocks": t["unblocks_count"], "Actionable": t["actionable"],
        "Path": t["repo_path"],
    })
    return df, {"Actionable": st.column_config.CheckboxColumn("Actionable", width="small")}


def open_blockers(o: pd.DataFrame) -> Table:
    """From views.beads.open_blockers."""
    df = pd.DataFrame({
        "Machine": o["machine_id"], "Repo": _repo_name(o["repo_path"]), "Issue": o["issue_id"],
        "Title": o["title"].fillna(""), "Priority": o["priority"], "Status": o["status"].fillna(""),
        "Waits on": o["blocker_id"], "Blocker status": o["blocker_status"].fillna("not in this export"),
        "Blocker title": o["blocker_title"].fillna(""), "Path": o["repo_path"],
    })
    return df, {"Title": st.column_config.TextColumn("Title", width="medium")}


def rch_workers(w: pd.DataFrame) -> Table:
    """From views.buildfarm.workers."""
    df = pd.DataFrame({
        "Machine": w["machine_id"], "Worker": w["worker_id"], "Host": w["host"].fillna(""),
        "Status": w["status"].fillna("unknown"), "Circuit": w["circuit_state"].fillna(""),
        "Slots used": w["used_slots"], "Slots": w["total_slots"], "Used %": w["slots_used_pct"],
        "Speed": w["speed_score"], "Failures in a row": w["consecutive_failures"],
        "Last error": w["last_error"].fillna(""),
    })
    return _colour(df, "Status", WORKER_COLOR), {
        "Used %": st.column_config.ProgressColumn("Used %", **(_PCT | {"color": "auto-inverse"})),
        "Speed": st.column_config.NumberColumn("Speed", format="%.1f")}


def builds(b: pd.DataFrame) -> Table:
    """From views.buildfarm.recent_builds."""
    result = [("cancelled" if c else "failed" if f else "ok")
              for c, f in zip(b["cancelled"].fillna(False), b["failed"], strict=True)]
    df = pd.DataFrame({
        "Started": b["started_at"], "Machine": b["machine_id"], "Build": b["build_id"],
        "Project": b["project_id"].fillna(""), "Worker": b["worker_id"].fillna("local"),
        "Result": result, "Exit": b["exit_code"], "Duration": b["duration_ms"].map(fmt.fmt_ms),
        "Where": b["location"].fillna(""), "Command": b["command"].fillna(""),
    })
    return _colour(df, "Result", {"ok": "green", "failed": "red", "cancelled": "gray"}), {
        "Started": st.column_config.DatetimeColumn("Started", format=_WHEN)}


def benchmarks(b: pd.DataFrame) -> Table:
    """From views.benchmarks.latest_vs_baseline: raw figures with each one's ratio to the host's baseline."""
    def vs(col: str) -> pd.Series:
        return b[f"{col}_ratio"] * 100

    df = pd.DataFrame({
        "Host": b["host"], "State": ["slower" if d else "as usual" if n else "no baseline yet"
                                     for d, n in zip(b["degraded"], b["baseline_runs"], strict=True)],
        "Run": b["run_at"], "CPU events/s": b["cpu_events_per_second"], "CPU vs usual": vs("cpu_events_per_second"),
        "Disk reads/s": b["fileio_reads_per_second"], "Disk vs usual": vs("fileio_reads_per_second"),
        "Memory MiB": b["memory_mib_transferred"], "Memory vs usual": vs("memory_mib_transferred"),
        "Threads latency ms": b["threads_avg_latency_ms"], "Latency vs usual": vs("threads_avg_latency_ms"),
        "Overall score": b["overall_score"], "Baseline runs": b["baseline_runs"],
        "Fleet machine": b["in_fleet"],
    })
    pct = {"format": "%.0f%%"}
    return _colour(df, "State", {"slower": "red", "as usual": "green", "no baseline yet": "gray"}), {
        "Run": st.column_config.DatetimeColumn("Run", format=_WHEN),
        "CPU vs usual": st.column_config.NumberColumn("CPU vs usual", **pct),
        "Disk vs usual": st.column_config.NumberColumn("Disk vs usual", **pct),
        "Memory vs usual": st.column_config.NumberColumn("Memory vs usual", **pct),
        "Latency vs usual": st.column_config.NumberColumn("Latency vs usual", **pct),
        "Overall score": st.column_config.NumberColumn("Overall score", format="%.1f")}


def tool_grid(ta: pd.DataFrame, tools: list[str] | None = None) -> Table:
    """From views.collectors_fleet.tool_availability: machines as rows, tools as columns.

    A cell is the tool's version (or "yes" without one) where present, "no" where the machine said
    it is absent, and empty where the machine was never asked about that tool.
    """
    cell = [("no" if not p else (v if isinstance(v, str) and v else "yes"))
            for p, v in zip(ta["present"], ta["version"], strict=True)]
    grid = ta.assign(cell=cell).pivot(index="machine_id", columns="tool", values="cell")
    cols = tools or sorted(grid.columns)
    grid = grid.reindex(columns=[c for c in cols if c in grid.columns]).fillna("")
    grid = grid.reset_index().rename(columns={"machine_id": "Machine"})
    grid.columns.name = None
    return grid.style.map(_tool_cell, subset=[c for c in grid.columns if c != "Machine"]), {}


def _tool_cell(value: str) -> str:
    return _CELL["red"] if value == "no" else _CELL["green"] if value else ""

"""Alerts: what is open, who is on what, what resolved; ack and snooze from here.

Acks and snoozes go through `workbench.alerts.engine` (the same functions the CLI and tests use)
as one short write: a busy database (the daemon mid-batch) gives a warning, never a traceback,
and a write that had to be spooled says so (it lands with the next write that gets the lock).
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pandas as pd
import streamlit as st

from workbench.alerts import engine
from workbench.store import Store, StoreBusyError, spool
from workbench.ui import context, errors, filters, scope
from workbench.ui import format as fmt
from workbench.views import alerts as va

WRITE_BUDGET_S = 2.0
FLASH_KEY = "vc_alerts_flash"
SNOOZE_CHOICES = {"1 hour": timedelta(hours=1), "4 hours": timedelta(hours=4), "12 hours": timedelta(hours=12),
                  "1 day": timedelta(days=1), "3 days": timedelta(days=3), "1 week": timedelta(weeks=1)}
TAB_TITLES = {"open": "Open", "acked": "Acked", "resolved": "Resolved"}

cfg, store = context.config(), context.store()
f = filters.current(cfg.dashboard.default_window)
now = context.now()

st.title("Alerts")
in_view = scope.machine_scope(f, "vc_alerts_only_focused")
with errors.guarded(), store.reader() as con:
    frame = va.alerts_with_acks(con, now, machine_ids=in_view).execute()

flash = st.session_state.pop(FLASH_KEY, None)
if flash:
    st.success(flash, icon=":material/check_circle:")

if frame.empty:
    errors.no_data()
    st.stop()


def _loads(text: Any, default: Any) -> Any:
    if not isinstance(text, str) or not text:
        return default
    try:
        return json.loads(text)
    except ValueError:
        return default


def _ts(v: Any) -> str:
    return fmt.MISSING if fmt.is_missing(v) else pd.Timestamp(v).strftime("%Y-%m-%d %H:%M UTC")


def _who(row: pd.Series) -> str:
    parts = []
    if not fmt.is_missing(row["acked_by"]):
        parts.append(f"acked by {row['acked_by']}")
    if not fmt.is_missing(row["snoozed_until"]):
        parts.append(f"snoozed until {_ts(row['snoozed_until'])}")
    return "; ".join(parts)


def _table(rows: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({
        "Severity": rows["severity"],
        "State": rows["state"],
        "Summary": rows["summary"].fillna(rows["rule_id"]),
        "Machine": rows["machine_id"].fillna(fmt.MISSING),
        "Since": rows["started_at"].map(_ts),
        "Handled": [_who(r) for _, r in rows.iterrows()],
        "Rule": rows["rule_id"],
        "Alert id": rows["alert_id"],
    })


def _write(action, done: str) -> None:
    """Run `action(store)` as one short write; on success rerun so the alert shows in its new tab."""
    short = Store(store.db_path, store.spool_dir, lock_budget_s=min(WRITE_BUDGET_S, store.lock_budget_s),
                  writer_name=store.writer_name)
    queued_before = len(spool.pending(store.spool_dir))
    try:
        action(short)
    except StoreBusyError as exc:
        st.warning(errors.busy_message(exc) + " Your change was not saved: submit it again in a moment.",
                   icon=":material/hourglass_top:")
        return
    except engine.UnknownAlertError as exc:
        st.error(f"{exc}: it may have been removed; reload the page.")
        return
    except ValueError as exc:
        st.error(str(exc))
        return
    if len(spool.pending(store.spool_dir)) > queued_before:
        st.warning("The database was busy: your change is queued and will be written with the next write "
                   "that gets the lock. Nothing is lost.", icon=":material/hourglass_top:")
        return
    st.session_state[FLASH_KEY] = done
    st.rerun()


def _details(row: pd.Series) -> None:
    evidence = _loads(row["evidence_json"], {})
    actions = _loads(row["actions_json"], [])
    st.markdown(f"**{row['summary'] or row['rule_id']}**  \n"
                f"{fmt.severity_badge(row['severity'])} · {row['state']} since {_ts(row['started_at'])}"
                + (f" · fired {_ts(row['fired_at'])}" if not fmt.is_missing(row["fired_at"]) else "")
                + (f" · resolved {_ts(row['resolved_at'])}" if not fmt.is_missing(row["resolved_at"]) else ""))
    if not fmt.is_missing(row["acked_by"]):
        note = "" if fmt.is_missing(row["ack_note"]) else f": {row['ack_note']}"
        st.caption(f"Acked by {row['acked_by']} at {_ts(row['acked_at'])}{note}")
    if not fmt.is_missing(row["snoozed_until"]):
        note = "" if fmt.is_missing(row["snooze_note"]) else f": {row['snooze_note']}"
        st.caption(f"Snoozed until {_ts(row['snoozed_until'])} by {row['snoozed_by']}{note} "
                   "(still evaluated and recorded; not delivered)")
    left, right = st.columns(2)
    with left:
        st.markdown("**Suggested actions**")
        if actions:
            st.markdown("\n".join(f"- {a}" for a in actions))
        else:
            st.caption("The rule suggests no action.")
    with right:
        st.markdown("**Evidence**")
        if isinstance(evidence, dict) and evidence.get("condition"):
            st.caption(f"{evidence.get('kind', '')} on `{evidence.get('source', '')}`: {evidence['condition']}; "
                       f"{evidence.get('samples', '?')} samples")
        if evidence:
            st.json(evidence, expanded=False)
        else:
            st.caption("No evidence recorded.")


def _forms(row: pd.Series, tab: str) -> None:
    alert_id = str(row["alert_id"])
    left, right = st.columns(2)
    with left, st.form(key=f"vc_ack_form_{tab}", clear_on_submit=True):
        st.markdown("**Acknowledge**")
        who = st.text_input("Who", key=f"vc_ack_who_{tab}")
        note = st.text_input("Note", key=f"vc_ack_note_{tab}")
        ack = st.form_submit_button("Ack", key=f"vc_ack_submit_{tab}", icon=":material/done:")
    with right, st.form(key=f"vc_snooze_form_{tab}", clear_on_submit=True):
        st.markdown("**Snooze** (this rule on this machine; later episodes stay quiet too)")
        choice = st.selectbox("For", list(SNOOZE_CHOICES), key=f"vc_snooze_for_{tab}")
        s_who = st.text_input("Who", key=f"vc_snooze_who_{tab}")
        s_note = st.text_input("Note", key=f"vc_snooze_note_{tab}")
        snooze = st.form_submit_button("Snooze", key=f"vc_snooze_submit_{tab}", icon=":material/snooze:")
    end = False
    if not fmt.is_missing(row["snoozed_until"]):
        with st.form(key=f"vc_unsnooze_form_{tab}", clear_on_submit=True):
            st.markdown(f"**End the snooze** (running until {_ts(row['snoozed_until'])})")
            e_who = st.text_input("Who", key=f"vc_unsnooze_who_{tab}")
            end = st.form_submit_button("End snooze", key=f"vc_unsnooze_submit_{tab}",
                                        icon=":material/notifications_active:")
    if end:
        # A snooze until now is the engine's way to end one (the newest snooze row wins).
        _write(lambda s: engine.snooze(s, alert_id, context.now(), e_who, "snooze ended"),
               f"Snooze of {alert_id} ended.")
    if ack:
        _write(lambda s: engine.ack(s, alert_id, who, note.strip() or None),
               f"Acked {alert_id} as {who.strip()}.")
    if snooze:
        until = context.now() + SNOOZE_CHOICES[choice]
        _write(lambda s: engine.snooze(s, alert_id, until, s_who, s_note.strip() or None),
               f"Snoozed {alert_id} until {until:%Y-%m-%d %H:%M} UTC.")


def _label(rows: pd.DataFrame):
    by_id = {r["alert_id"]: r for _, r in rows.iterrows()}

    def label(alert_id: str) -> str:
        r = by_id[alert_id]
        return f"{r['severity']} · {r['machine_id'] or '-'} · {r['summary'] or r['rule_id']} ({alert_id})"

    return label


counts = frame["view_state"].value_counts()
c = st.columns(3)
for col, state in zip(c, va.VIEW_STATES, strict=True):
    col.metric(TAB_TITLES[state], str(int(counts.get(state, 0))), border=True)

tabs = st.tabs([f"{TAB_TITLES[s]} ({int(counts.get(s, 0))})" for s in va.VIEW_STATES])
for tab, state in zip(tabs, va.VIEW_STATES, strict=True):
    with tab:
        rows = frame[frame["view_state"] == state]
        if rows.empty:
            st.info({"open": "No open alert: nothing needs a look.", "acked": "No alert is acked or snoozed.",
                     "resolved": "No resolved alert yet."}[state], icon=":material/check_circle:")
            continue
        st.dataframe(_table(rows), hide_index=True, width="stretch", key=f"vc_alerts_table_{state}")
        picked = st.selectbox("Alert", rows["alert_id"].tolist(), format_func=_label(rows),
                              key=f"vc_alerts_pick_{state}")
        row = rows[rows["alert_id"] == picked].iloc[0]
        _details(row)
        if state != "resolved":
            _forms(row, state)

"""The shared filter bar: machine, tags, time window.

The chosen values live under plain session-state keys (`vc_machine`, `vc_tags`, `vc_window`)
that no widget owns. Streamlit forgets a widget's state on any run where that widget is not
drawn (a page that stopped early, a missing database), so the widgets only mirror these keys.
The values are also written to the URL query string, so a link reproduces the view; the query
string is read once per session, when the session starts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import streamlit as st

from workbench.config import VcConfig
from workbench.store import Store
from workbench.views import machines as vm

WINDOWS: tuple[str, ...] = ("1h", "6h", "24h", "7d")

KEY_MACHINE = "vc_machine"
KEY_TAGS = "vc_tags"
KEY_WINDOW = "vc_window"
KEY_CURRENT = "vc_filters"
_KEY_INIT = "vc_filters_initialised"
_W_MACHINE = "vc_w_machine"
_W_TAGS = "vc_w_tags"
_W_WINDOW = "vc_w_window"

QP_MACHINE = "machine"
QP_TAG = "tag"
QP_WINDOW = "window"


@dataclass(frozen=True)
class Filters:
    machine_id: str | None
    tags: tuple[str, ...]
    window: str
    # Machines in view (after the tag filter), in the order the selector lists them.
    machine_ids: tuple[str, ...] = ()
    labels: dict[str, str] = field(default_factory=dict)
    any_demo: bool = False

    @property
    def tag_list(self) -> list[str] | None:
        """Tags as the views take them: None means no tag filter."""
        return list(self.tags) or None

    def label(self, machine_id: str | None) -> str:
        if machine_id is None:
            return "no machine"
        return self.labels.get(machine_id, machine_id)


def _init_from_query(default_window: str) -> None:
    """Seed the shared keys from the URL once per session (deep links)."""
    if st.session_state.get(_KEY_INIT):
        return
    qp = st.query_params
    st.session_state.setdefault(KEY_MACHINE, qp.get(QP_MACHINE) or None)
    st.session_state.setdefault(KEY_TAGS, list(qp.get_all(QP_TAG)))
    window = qp.get(QP_WINDOW)
    st.session_state.setdefault(KEY_WINDOW, window if window in WINDOWS else default_window)
    st.session_state[_KEY_INIT] = True


def _copy(widget_key: str, shared_key: str) -> None:
    st.session_state[shared_key] = st.session_state[widget_key]


def set_machine(machine_id: str) -> None:
    """Focus a machine from elsewhere (a table selection). Call from a widget callback only:
    Streamlit refuses changes to a widget's state after that widget has been drawn in the run."""
    st.session_state[KEY_MACHINE] = machine_id
    st.session_state[_W_MACHINE] = machine_id


def _mirror(widget_key: str, value: Any) -> None:
    # Set the widget's value through session state only, never as a default argument as well.
    if st.session_state.get(widget_key) != value:
        st.session_state[widget_key] = value


def _write_query(f: Filters) -> None:
    want = {
        QP_MACHINE: [f.machine_id] if f.machine_id else [],
        QP_TAG: list(f.tags),
        QP_WINDOW: [f.window],
    }
    qp = st.query_params
    for key, values in want.items():
        if qp.get_all(key) == values:
            continue
        if values:
            qp[key] = values if len(values) > 1 else values[0]
        elif key in qp:
            del qp[key]


def render(store: Store, cfg: VcConfig) -> Filters:
    """Draw the filter bar in the sidebar and return the filters every page uses."""
    _init_from_query(cfg.dashboard.default_window)
    with store.reader() as con:
        all_tags = [t for t in vm.all_tags(con).execute()["tag"].tolist() if t is not None]
        picked_tags = [t for t in st.session_state.get(KEY_TAGS) or [] if t in all_tags]
        in_view = vm.machines(con, tags=picked_tags or None).select(
            "machine_id", "display_name", "is_demo"
        ).order_by("machine_id").execute()

    sb = st.sidebar
    sb.markdown("**Filters**")
    st.session_state[KEY_TAGS] = picked_tags
    _mirror(_W_TAGS, picked_tags)
    sb.multiselect("Tags", all_tags, key=_W_TAGS, on_change=_copy, args=(_W_TAGS, KEY_TAGS),
                   placeholder="all machines" if all_tags else "no tags yet")

    ids = in_view["machine_id"].tolist()
    labels = {
        mid: (f"{name} ({mid})" if name and name != mid else mid)
        for mid, name in zip(ids, in_view["display_name"].tolist(), strict=True)
    }
    machine = st.session_state.get(KEY_MACHINE)
    if machine not in ids:
        machine = ids[0] if ids else None
    st.session_state[KEY_MACHINE] = machine
    _mirror(_W_MACHINE, machine)
    sb.selectbox("Machine", ids, key=_W_MACHINE, on_change=_copy, args=(_W_MACHINE, KEY_MACHINE),
                 format_func=lambda mid: labels.get(mid, mid),
                 placeholder="no machines yet", disabled=not ids)

    window = st.session_state.get(KEY_WINDOW)
    if window not in WINDOWS:
        window = cfg.dashboard.default_window
    st.session_state[KEY_WINDOW] = window
    _mirror(_W_WINDOW, window)
    sb.radio("Time window", WINDOWS, key=_W_WINDOW, on_change=_copy, args=(_W_WINDOW, KEY_WINDOW),
             horizontal=True)

    f = Filters(
        machine_id=machine, tags=tuple(picked_tags), window=window, machine_ids=tuple(ids),
        labels=labels, any_demo=bool(in_view["is_demo"].fillna(False).astype(bool).any()),
    )
    st.session_state[KEY_CURRENT] = f
    _write_query(f)
    return f


def current(default_window: str = "6h") -> Filters:
    """The filters drawn by app.py in this run (pages never draw their own)."""
    f = st.session_state.get(KEY_CURRENT)
    if isinstance(f, Filters):
        return f
    return Filters(machine_id=None, tags=(), window=default_window)

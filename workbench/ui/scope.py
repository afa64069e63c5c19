"""Which machines a fleet page covers: every machine in view, or only the one picked in the sidebar.

Fleet pages (accounts, repos, agents …) look across machines, so by default they cover every machine
the tag filter lets through; a toggle narrows them to the sidebar's machine, as on the Collectors page.
"""

from __future__ import annotations

import streamlit as st

from workbench.ui.filters import Filters


def machine_scope(f: Filters, key: str) -> list[str] | None:
    """Draw the toggle; return the machine ids for the views (None: no machine filter at all)."""
    only = st.toggle(f"Only the machine picked in the sidebar ({f.label(f.machine_id)})", key=key,
                     disabled=f.machine_id is None)
    if only and f.machine_id is not None:
        return [f.machine_id]
    return list(f.machine_ids) if f.tags else None

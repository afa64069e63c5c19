"""Friendly states instead of tracebacks.

The dashboard is often opened before anything was collected, or while the daemon holds the write
lock. Both are normal situations, so they get a sentence that says what to do, not a stack trace.
Empty results get "no data yet": a chart is never drawn from invented or zero-filled numbers.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import streamlit as st
from ibis.common.exceptions import TableNotFound

from workbench.config import ConfigError
from workbench.store import Store, StoreBusyError

NO_DATABASE = "No database yet: run `vc demo` or `vc collect --once`"
NO_DATA = "no data yet"
NO_DATA_WINDOW = "no data yet for this window"


def show_config_error(exc: ConfigError) -> None:
    st.error(f"The configuration cannot be used:\n\n```\n{exc}\n```")


def require_database(store: Store) -> None:
    """Stop the run with the friendly message when the DuckDB file does not exist yet."""
    if not store.db_path.exists():
        st.info(f"{NO_DATABASE}  \nExpected at `{store.db_path}`.", icon=":material/database:")
        st.stop()


def busy_message(exc: StoreBusyError) -> str:
    who = "another process"
    if exc.holder is not None and exc.holder.program:
        who = f"{exc.holder.program} (PID {exc.holder.pid})" if exc.holder.pid else exc.holder.program
    return (f"The database is busy: {who} kept it locked for {exc.waited_s:.1f}s. "
            "Nothing is lost; reload in a moment. The Collectors page shows who blocked writes.")


@contextmanager
def guarded() -> Iterator[None]:
    """Turn the expected storage states into a message and stop this run; anything else still raises."""
    try:
        yield
    except StoreBusyError as exc:
        st.warning(busy_message(exc), icon=":material/hourglass_top:")
        st.stop()
    except TableNotFound as exc:
        st.warning(f"The database has no table `{exc}` yet: run `vc db migrate` (or `vc demo`).",
                   icon=":material/database:")
        st.stop()
    except FileNotFoundError as exc:
        # Only the store's own "no database" error; other missing files are real bugs.
        if "no database yet" not in str(exc):
            raise
        st.info(NO_DATABASE, icon=":material/database:")
        st.stop()


def no_data(message: str = NO_DATA) -> None:
    st.info(message, icon=":material/hourglass_empty:")

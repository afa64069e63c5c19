"""The dashboard's config and store, loaded once per config file rather than on every rerun.

The cache key is the resolved config path and its modification time: editing `vc.toml` takes
effect on the next rerun, and two configs in one process (the tests) never share a store.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

import streamlit as st

from workbench.config import VcConfig, load_config, resolve_config_path
from workbench.store import Store

WRITER_NAME = "streamlit"


@st.cache_resource(show_spinner=False)
def _load(path_key: str, mtime: float, cwd: str) -> tuple[VcConfig, Store]:
    # `mtime` and `cwd` only key the cache: built-in defaults resolve the data dir against the cwd.
    cfg = load_config(path_key or None)
    return cfg, Store.from_config(cfg, writer_name=WRITER_NAME)


def _cache_key() -> tuple[str, float, str]:
    path = resolve_config_path()
    if path is None:
        return "", 0.0, os.getcwd()
    p = Path(path).resolve()
    return str(p), p.stat().st_mtime, os.getcwd()


def load() -> tuple[VcConfig, Store]:
    """Config and Store; raises `workbench.config.ConfigError` with a message meant for a person."""
    return _load(*_cache_key())


def config() -> VcConfig:
    return load()[0]


def store() -> Store:
    return load()[1]


def now() -> datetime:
    return datetime.now(UTC)

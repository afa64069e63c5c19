"""Shared fixtures: a migrated DuckDB file on disk per test (cheap), config files, the shared formats."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.toolbox import SHARED_FORMATS
from workbench.store import Store

os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture
def store(tmp_path: Path) -> Store:
    s = Store(tmp_path / "data" / "vc.duckdb", lock_budget_s=5.0, writer_name="pytest")
    s.migrate()
    return s


@pytest.fixture(scope="session")
def formats_dir() -> Path:
    assert SHARED_FORMATS.is_dir(), f"shared upstream formats not found at {SHARED_FORMATS}"
    return SHARED_FORMATS

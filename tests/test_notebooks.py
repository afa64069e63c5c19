"""Notebooks are executed for real against a database on disk, and their outputs checked."""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"


@pytest.fixture(scope="module")
def fleet_db(tmp_path_factory) -> Path:
    import subprocess
    import sys

    d = tmp_path_factory.mktemp("nb")
    cfg = d / "vc.toml"
    cfg.write_text(textwrap.dedent("""
        [storage]
        data_dir = "data"
        [[machines]]
        id = "local"
        ssh = "local"
        [[machines]]
        id = "ghost"
        ssh = "local"
        enabled = false
    """))
    r = subprocess.run([sys.executable, "-m", "workbench.cli", "--config", str(cfg), "collect", "--once"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    return cfg


def _text(nb) -> str:
    out = []
    for cell in nb.cells:
        for o in cell.get("outputs", []):
            out.append(o.get("text", ""))
            data = o.get("data", {})
            out.append(data.get("text/plain", ""))
            out.append(data.get("text/html", ""))
    return "\n".join(out)


@pytest.mark.integration
def test_fleet_health_notebook_executes(fleet_db, monkeypatch):
    monkeypatch.setenv("VC_CONFIG", str(fleet_db))
    nb = nbformat.read(NOTEBOOKS / "fleet_health.ipynb", as_version=4)
    NotebookClient(nb, timeout=300, kernel_name="python3",
                   resources={"metadata": {"path": str(fleet_db.parent)}}).execute()
    text = _text(nb)
    assert "worst machine: ghost" in text  # never collected → worst
    assert "never collected" in text
    assert str(fleet_db.parent / "data" / "vc.duckdb") in text
    assert not any(o.get("output_type") == "error" for c in nb.cells for o in c.get("outputs", []))
    assert os.environ["VC_CONFIG"] == str(fleet_db)

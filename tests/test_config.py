"""Config loading: defaults, resolution order, and errors that name file, key and expectation."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from workbench.config import ConfigError, load_config

EXAMPLE = Path(__file__).resolve().parents[1] / "vc.example.toml"


def test_defaults_are_local_only(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("VC_CONFIG", raising=False)
    cfg = load_config()
    assert [m.id for m in cfg.machines] == ["local"] and cfg.machines[0].is_local
    assert cfg.dashboard.host == "127.0.0.1"
    assert cfg.db_path == tmp_path / "data" / "vc.duckdb"
    assert cfg.source_path is None


def test_example_file_is_valid_and_documents_every_section():
    cfg = load_config(EXAMPLE)
    text = EXAMPLE.read_text()
    for section in ("[storage]", "[daemon]", "[dashboard]", "[health.weights]", "[health.thresholds]", "[[machines]]"):
        assert section in text
    for key in type(cfg.daemon).model_fields:
        assert f"{key} =" in text, f"vc.example.toml does not document daemon.{key}"
    for key in type(cfg.storage).model_fields:
        assert f"{key} =" in text, f"vc.example.toml does not document storage.{key}"
    assert any(not m.is_local for m in cfg.machines)


def test_env_var_and_tilde(tmp_path, monkeypatch):
    p = tmp_path / "x.toml"
    p.write_text('[storage]\ndata_dir = "~/vcdata"\n')
    monkeypatch.setenv("VC_CONFIG", str(p))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    cfg = load_config()
    assert cfg.source_path == p
    assert cfg.storage.data_dir == tmp_path / "home" / "vcdata"


def test_relative_data_dir_is_relative_to_config_file(tmp_path):
    p = tmp_path / "sub" / "vc.toml"
    p.parent.mkdir()
    p.write_text('[storage]\ndata_dir = "d"\n')
    assert load_config(p).db_path == tmp_path / "sub" / "d" / "vc.duckdb"


@pytest.mark.parametrize("body, key, expect", [
    ('[daemon]\ninterval_seconds = "soon"\n', "daemon.interval_seconds", "valid number"),
    ("[daemon]\nmachines_in_flight = 0\n", "daemon.machines_in_flight", "greater than or equal to 1"),
    ("[dashboard]\nport = 70000\n", "dashboard.port", "less than or equal to 65535"),
    ("[daemon]\nintreval_seconds = 5\n", "daemon.intreval_seconds", "Extra inputs are not permitted"),
    ('[[machines]]\nid = "a"\nssh = "not a host:x:y"\n', "machines.0.ssh", "user@host[:port]"),
    ('[[machines]]\nid = "a"\n[[machines]]\nid = "a"\n', "machines", "duplicate machine id"),
    ('[[machines]]\nid = "bad id!"\n', "machines.0.id", "pattern"),
])
def test_errors_name_file_key_and_expectation(tmp_path, body, key, expect):
    p = tmp_path / "vc.toml"
    p.write_text(body)
    with pytest.raises(ConfigError) as ei:
        load_config(p)
    msg = str(ei.value)
    assert str(p) in msg and key in msg and expect in msg


def test_bad_toml_and_missing_file(tmp_path):
    p = tmp_path / "vc.toml"
    p.write_text("[daemon\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(p)
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.toml")


def test_cli_reports_config_error_without_traceback(tmp_path):
    p = tmp_path / "vc.toml"
    p.write_text("[daemon]\ncollector_timeout_seconds = -1\n")
    r = subprocess.run([sys.executable, "-m", "workbench.cli", "--config", str(p), "config", "check"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2
    assert "daemon.collector_timeout_seconds" in r.stderr and "Traceback" not in r.stderr
    assert r.stdout == ""

"""The `vc` command line as a user runs it: help, collect, robot health (schema-validated), vc up."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import textwrap
import time
import urllib.request
from pathlib import Path

import jsonschema
import pytest

from workbench.robot.envelope import load_schema

VC = [sys.executable, "-m", "workbench.cli"]


def vc(cfg: Path | None, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    base = [*VC, "--config", str(cfg)] if cfg else VC
    return subprocess.run([*base, *args], capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def collected(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("cli")
    cfg = d / "vc.toml"
    cfg.write_text(textwrap.dedent("""
        [storage]
        data_dir = "data"
        [[machines]]
        id = "local"
        ssh = "local"
        tags = ["local"]
        [[machines]]
        id = "never-seen"
        ssh = "local"
        enabled = false
    """))
    r = vc(cfg, "collect", "--once")
    assert r.returncode == 0, r.stderr
    return cfg


@pytest.mark.parametrize("cmd", [[], ["up"], ["daemon"], ["collect"], ["db"], ["db", "migrate"], ["db", "status"],
                                 ["demo"], ["robot"], ["robot", "health"], ["robot", "machines"],
                                 ["robot", "machine"], ["config", "check"]])
def test_help_is_useful(cmd):
    r = vc(None, *cmd, "--help", timeout=60)
    assert r.returncode == 0
    assert "Usage:" in r.stdout and len(r.stdout.splitlines()) > 5


def test_collect_once_summary_goes_to_stderr(collected):
    r = vc(collected, "collect", "--once", "--machine", "local")
    assert r.returncode == 0 and r.stdout == ""
    assert "local" in r.stderr and "system" in r.stderr and " ok " in r.stderr
    bad = vc(collected, "collect", "--once", "--machine", "nope")
    assert bad.returncode == 2 and "unknown machine 'nope'" in bad.stderr


def test_robot_health_json_matches_schema(collected):
    r = vc(collected, "robot", "health", "--json")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)  # stdout is data only
    jsonschema.validate(doc, load_schema("robot_health"))
    machines = {m["machine_id"]: m for m in doc["data"]["machines"]}
    assert set(machines) == {"local", "never-seen"}
    never = machines["never-seen"]
    assert never["score"] == 0 and never["severity"] == "critical" and never["worst_factor"] == "freshness"
    local = machines["local"]
    assert {f["factor"] for f in local["factors"]} == {"cpu", "memory", "load_per_core", "swap", "disk", "freshness"}
    assert local["score"] > never["score"]
    assert doc["data"]["fleet"]["worst_machine"] == "never-seen"
    assert doc["staleness"]["stale"] is False and doc["staleness"]["poll_age_seconds"] < 120


def test_robot_health_schema_rejects_a_broken_document(collected):
    doc = json.loads(vc(collected, "robot", "health", "--json").stdout)
    doc["data"]["machines"][0]["score"] = 1.5
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(doc, load_schema("robot_health"))


def test_robot_health_md(collected):
    r = vc(collected, "robot", "health", "--md")
    assert r.returncode == 0 and r.stdout.startswith("# Fleet health")
    assert "| never-seen | 0.0 | critical | freshness | never collected |" in r.stdout


def test_robot_machines_and_machine(collected):
    r = vc(collected, "robot", "machines", "--json")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    jsonschema.validate(doc, load_schema("robot_machines"))
    ids = [m["machine_id"] for m in doc["data"]["machines"]]
    assert ids == ["local", "never-seen"]
    r = vc(collected, "robot", "machine", "local", "--json")
    one = json.loads(r.stdout)
    jsonschema.validate(one, load_schema("robot_machine"))
    assert one["data"]["machine"]["machine_id"] == "local"
    assert "/" in [f["mount"] for f in one["data"]["filesystems"]]
    status = {c["collector"]: c["status"] for c in one["data"]["collectors"]}
    assert status["system"] == "ok" and status["capabilities"] in ("ok", "warning")
    # This machine has none of the fleet's tools: their collectors are skipped, not failed.
    assert status["rano"] == "skipped" and status["pt"] == "skipped"
    assert len(one["data"]["health"]["factors"]) == 6
    md = vc(collected, "robot", "machine", "local", "--md").stdout
    assert md.startswith("# local") and "| disk |" in md
    missing = vc(collected, "robot", "machine", "nope")
    assert missing.returncode == 2 and "unknown machine 'nope'" in missing.stderr and missing.stdout == ""


def test_robot_without_database_is_a_clear_error(tmp_path):
    cfg = tmp_path / "vc.toml"
    cfg.write_text('[storage]\ndata_dir = "nothing-here"\n')
    r = vc(cfg, "robot", "health", "--json")
    assert r.returncode == 4 and r.stdout == "" and "no database yet" in r.stderr


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.integration
def test_vc_up_serves_health_and_stops_cleanly(collected):
    port = _free_port()
    p = subprocess.Popen([*VC, "--config", str(collected), "up", "--port", str(port)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        body = None
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and p.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2) as resp:
                    body = resp.read().decode()
                    break
            except OSError:
                time.sleep(0.5)
        if body != "ok":
            p.kill()
            pytest.fail(f"vc up never answered /_stcore/health: {p.communicate(timeout=30)[1][-3000:]}")
        # Bound to loopback only.
        listening = subprocess.run(["ss", "-ltnH", f"sport = :{port}"], capture_output=True, text=True).stdout
        local_addrs = [line.split()[3] for line in listening.splitlines() if line.strip()]
        assert local_addrs and all(a.startswith("127.0.0.1:") for a in local_addrs), listening
    finally:
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=60)
    assert p.returncode == 0, err
    assert "vc up: stopped" in err
    # Both children are gone: nothing listens any more.
    with pytest.raises(OSError):
        urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2)


def test_vc_rules_test_passes_shipped_and_fails_wrong_expectation(tmp_path):
    rules_dir = Path(__file__).resolve().parent / "rules"
    ok = vc(None, "rules", "test", str(rules_dir))
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "PASS" in ok.stdout and "FAIL" not in ok.stdout
    src = (rules_dir / "load_high.test.yaml").read_text()
    wrong = tmp_path / "wrong.test.yaml"
    shipped = Path(__file__).resolve().parents[1] / "workbench" / "alerts" / "rules" / "default.yaml"
    wrong.write_text(src.replace("../../workbench/alerts/rules/default.yaml", str(shipped))
                     .replace("state: firing", "state: resolved", 1))
    bad = vc(None, "rules", "test", str(wrong))
    assert bad.returncode == 1 and "FAIL" in bad.stdout

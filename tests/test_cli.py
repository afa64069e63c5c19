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

from tests import fleet_fixtures as ff
from tests.ui_fixtures import build_ui_db
from workbench.robot.envelope import load_schema
from workbench.store import Store

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
                                 ["robot", "machine"], ["robot", "accounts"], ["robot", "repos"],
                                 ["robot", "alerts"], ["robot", "triage"], ["watch"], ["rules", "test"],
                                 ["config", "check"]])
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
    assert doc["staleness"]["stale"] is False and doc["staleness"]["poll_age_seconds"] >= 0


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


@pytest.fixture(scope="module")
def fleet_cfg(tmp_path_factory) -> Path:
    """The dashboard fixture database: fleet rows written by the collectors on recorded payloads."""
    from datetime import UTC, datetime

    db = build_ui_db(tmp_path_factory.mktemp("fleet_cli"), datetime.now(UTC).replace(microsecond=0))
    return db.config_path


def test_robot_accounts_merges_an_account_seen_from_two_machines(fleet_cfg):
    r = vc(fleet_cfg, "robot", "accounts", "--json")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    jsonschema.validate(doc, load_schema("robot_accounts"))
    accounts = doc["data"]["accounts"]
    keys = [a["account_key"] for a in accounts]
    assert sorted(keys) == sorted({ff.CAUT_ACCOUNT, ff.CAAM_ACCOUNT}) and len(keys) == len(set(keys))
    codex = next(a for a in accounts if a["account_key"] == ff.CAUT_ACCOUNT)
    assert codex["machines"] == ["alpha", "demo-01"] and codex["sources"] == ["caut"]
    windows = {w["window_name"]: w for w in codex["windows"]}
    assert list(windows) == ["primary", "secondary"]
    # demo-01 reported last (t0-5m): its figures are current; alpha's 59% is the highest current report.
    assert (windows["secondary"]["used_pct"], windows["secondary"]["max_used_pct"]) == (57.0, 59.0)
    assert windows["primary"]["latest_machine"] == "demo-01" and windows["primary"]["resets_in_seconds"] > 0
    claude = next(a for a in accounts if a["account_key"] == ff.CAAM_ACCOUNT)
    assert claude["machines"] == ["alpha"] and claude["plan_type"] == "max"
    assert {p["provider"] for p in doc["data"]["providers"]} == {"claude", "codex"}
    cost = {(c["provider"], c["day"]): (c["cost_usd"], c["machines"]) for c in doc["data"]["cost_per_day"]}
    assert len(cost) == 5 and sorted({m for _, m in cost.values()}) == [2]  # alpha and demo-01 add up
    assert sorted(round(usd, 2) for usd, _ in cost.values()) == [6.88, 13.46, 19.74, 33.9, 36.84]
    assert doc["staleness"]["stale"] is False and doc["warnings"] == []
    broken = json.loads(r.stdout)
    broken["data"]["accounts"][0]["machines"] = []
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, load_schema("robot_accounts"))
    md = vc(fleet_cfg, "robot", "accounts", "--md").stdout
    assert md.startswith("# Accounts")
    assert "| codex | user@example.com | secondary | 57 | 59 |" in md and "| alpha, demo-01 | caut |" in md
    assert "## Spend per day (caut cost)" in md and "| claude | 36.84 | 2 |" in md


def test_robot_repos_lists_what_needs_a_look(fleet_cfg):
    r = vc(fleet_cfg, "robot", "repos", "--json")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    jsonschema.validate(doc, load_schema("robot_repos"))
    d = doc["data"]
    assert d["totals"]["repos"] == 125 and d["totals"]["dirty"] == 5 and d["totals"]["needs_attention"] == 9
    assert [m["machine_id"] for m in d["machines"]] == ["alpha", "demo-01"]
    assert len(d["repos"]) == 9 and all(r["attention"] for r in d["repos"])
    demo = [r for r in d["repos"] if r["machine_id"] == "demo-01"]
    assert [(r["repo"], r["ahead"], r["dirty"]) for r in demo] == [(ff.DEMO_AHEAD_REPO, 3, True)]
    every = json.loads(vc(fleet_cfg, "robot", "repos", "--all", "--json").stdout)
    jsonschema.validate(every, load_schema("robot_repos"))
    assert every["data"]["all_repos"] is True and len(every["data"]["repos"]) == 125
    md = vc(fleet_cfg, "robot", "repos", "--md").stdout
    assert md.startswith("# Repos") and "| demo-01 | 10 | 1 | 1 | 0 | 1 |" in md


def test_robot_accounts_and_repos_on_an_empty_database(tmp_path):
    cfg = tmp_path / "vc.toml"
    cfg.write_text('[storage]\ndata_dir = "data"\n')
    Store(tmp_path / "data" / "vc.duckdb", writer_name="pytest").migrate()
    for cmd, schema in (("accounts", "robot_accounts"), ("repos", "robot_repos")):
        r = vc(cfg, "robot", cmd, "--json")
        assert r.returncode == 0, r.stderr
        doc = json.loads(r.stdout)
        jsonschema.validate(doc, load_schema(schema))
        assert doc["staleness"]["stale"] is True and doc["warnings"], doc
        assert "no data yet" in vc(cfg, "robot", cmd, "--md").stdout


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

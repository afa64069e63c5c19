"""`vc robot alerts`, `vc robot triage` and `vc watch`, run as a user runs them (subprocess, real DB).

The database is the dashboard fixture (tests.ui_fixtures: alpha's /data filling to 91 %, a firing
warning alert, ghost never collected and its collector failing, accounts, repos) plus what the
daemon's jobs would add: forecasts from the real forecast job, and alerts from the real engine with
the shipped rules (disk_free_low goes pending, then firing after its 5-minute `for:`).
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import jsonschema
import pytest

from tests.ui_fixtures import ALPHA, ERROR_TEXT, GHOST, build_ui_db
from workbench.alerts import engine
from workbench.alerts.rules import DEFAULT_RULES, load_rules
from workbench.robot import watch as rw
from workbench.robot.envelope import load_schema
from workbench.store import Store
from workbench.views.forecast_job import run_forecast_job

VC = [sys.executable, "-m", "workbench.cli"]


def vc(cfg: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([*VC, "--config", str(cfg), *args], capture_output=True, text=True, timeout=timeout)


@dataclass
class Fleet:
    cfg: Path
    store: Store
    t0: datetime


def make_fleet(root: Path) -> Fleet:
    t0 = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=10)
    db = build_ui_db(root, t0)
    store = db.store()
    assert run_forecast_job(store, t0) > 0
    rules = load_rules([DEFAULT_RULES])
    engine.evaluate_and_store(store, rules, t0)
    fired = engine.evaluate_and_store(store, rules, t0 + timedelta(minutes=6))
    assert [(t.rule_id, t.to_state, t.severity) for t in fired] == [("disk_free_low", "firing", "critical")]
    return Fleet(db.config_path, store, t0)


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Fleet:
    return make_fleet(tmp_path_factory.mktemp("triage"))


def _json(r: subprocess.CompletedProcess) -> dict:
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


# ---------------------------------------------------------------- robot alerts


def test_robot_alerts_json_is_schema_valid_and_lists_active_alerts(fleet: Fleet) -> None:
    doc = _json(vc(fleet.cfg, "robot", "alerts", "--json"))
    jsonschema.validate(doc, load_schema("robot_alerts"))
    alerts = doc["data"]["alerts"]
    assert doc["data"]["counts"] == {"open": 3, "acked": 0, "resolved": 1, "firing": 2}
    assert {a["view_state"] for a in alerts} == {"open"}  # resolved ones only with --all
    first = alerts[0]  # open, critical first
    assert (first["rule_id"], first["state"], first["severity"]) == ("disk_free_low", "firing", "critical")
    assert first["machine_id"] == ALPHA and first["labels"]["mount"] == "/data"
    assert first["evidence"]["condition"] and first["evidence"]["samples"] >= 1
    assert any("du -xh" in a for a in first["actions"])
    every = _json(vc(fleet.cfg, "robot", "alerts", "--all"))
    jsonschema.validate(every, load_schema("robot_alerts"))
    assert [a["alert_id"] for a in every["data"]["alerts"] if a["view_state"] == "resolved"] == ["alert-resolved"]


def test_robot_alerts_markdown(fleet: Fleet) -> None:
    r = vc(fleet.cfg, "robot", "alerts", "--md")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("# Alerts") and "3 open, 0 acked, 1 resolved (2 firing)." in r.stdout
    assert "## [open] critical" in r.stdout and "- do: See what grew" in r.stdout


# ---------------------------------------------------------------- robot triage


def test_triage_ranks_firing_alert_then_critical_machine_then_failing_collector(fleet: Fleet) -> None:
    doc = _json(vc(fleet.cfg, "robot", "triage", "--json"))
    jsonschema.validate(doc, load_schema("robot_triage"))
    items = doc["data"]["items"]
    assert [i["rank"] for i in items] == list(range(1, len(items) + 1))
    scores = [i["score"] for i in items]
    assert scores == sorted(scores, reverse=True)
    for i in items:
        assert i["score"] == pytest.approx(round(i["urgency"] * i["confidence"], 1), abs=0.051)
        assert 0 <= i["confidence"] <= 1

    def find(kind: str, subject: str) -> dict:
        hits = [i for i in items if i["kind"] == kind and i["subject"] == subject]
        assert len(hits) == 1, (kind, subject, [(i["kind"], i["subject"]) for i in items])
        return hits[0]

    firing = items[0]
    assert firing["kind"] == "alert" and firing["ref"]["rule_id"] == "disk_free_low"
    assert firing["score"] == 100.0 and firing["next_command"] == f"vc robot machine {ALPHA} --md"
    ghost = find("machine", GHOST)
    assert ghost["severity"] == "critical" and ghost["next_command"] == f"vc collect --once --machine {GHOST}"
    collector = find("collector", f"{GHOST}/system")
    assert ERROR_TEXT in collector["why"] and collector["next_command"] == f"vc collect --once --machine {GHOST}"
    assert firing["rank"] < ghost["rank"] < collector["rank"]
    disk = find("disk_forecast", f"{ALPHA}:/data")
    assert disk["next_command"] == "ssh ops@alpha 'df -h /data'"
    assert find("machine", ALPHA)["next_command"] == "ssh ops@alpha 'df -h /data'"
    repos = find("repos", ALPHA)
    assert repos["next_command"].startswith("ssh ops@alpha 'git -C /") and "status" in repos["next_command"]
    # The fixture's plain warning alert is listed, below the critical firing one.
    assert find("alert", "alert-firing")["rank"] > firing["rank"]
    assert doc["data"]["total"] == len(items) and doc["data"]["kinds"]["alert"] == 3


def test_triage_acked_alert_drops_and_limit_and_markdown(tmp_path: Path) -> None:
    f = make_fleet(tmp_path)
    before = _json(vc(f.cfg, "robot", "triage", "--json"))["data"]["items"]
    top = before[0]
    assert top["kind"] == "alert"
    engine.ack(f.store, top["subject"], "ops-bob", "on it")
    after = _json(vc(f.cfg, "robot", "triage", "--json", "--limit", "3"))
    jsonschema.validate(after, load_schema("robot_triage"))
    assert len(after["data"]["items"]) == 3 and after["data"]["total"] == len(before)
    acked = [i for i in _json(vc(f.cfg, "robot", "triage"))["data"]["items"] if i["subject"] == top["subject"]][0]
    assert acked["score"] == pytest.approx(top["score"] * 0.4) and "acked by ops-bob" in acked["why"]
    assert after["data"]["items"][0]["subject"] != top["subject"]
    md = vc(f.cfg, "robot", "triage", "--md")
    assert md.returncode == 0 and md.stdout.startswith("# Triage")
    assert "`vc collect --once --machine ghost`" in md.stdout


# ---------------------------------------------------------------- vc watch


def _events(r: subprocess.CompletedProcess) -> list[dict]:
    assert r.returncode == 0, r.stderr
    evs = list(rw.iter_lines(r.stdout))
    schema = load_schema("watch_event")
    for e in evs:
        jsonschema.validate(e, schema)
    return evs


def test_watch_once_then_cursor_emits_nothing_then_new_alert(tmp_path: Path) -> None:
    f = make_fleet(tmp_path)
    first = _events(vc(f.cfg, "watch", "--format", "jsonl", "--once", "--interval", "1"))
    types = [e["type"] for e in first]
    assert {"alert", "prediction", "opportunity"} <= set(types)
    # Engine transitions: two pending at t0 (same ts: ordered by event id), then firing at t0+6m.
    alerts = [(e["data"]["rule_id"], e["data"]["to"]) for e in first if e["type"] == "alert"]
    assert sorted(alerts[:2]) == [("disk_fill_forecast", "pending"), ("disk_free_low", "pending")]
    assert alerts[2:] == [("disk_free_low", "firing")]
    assert len({e["id"] for e in first}) == len(first)
    opp = {e["data"]["subject"] for e in first if e["type"] == "opportunity"}
    assert {GHOST, f"{GHOST}/system", f"{ALPHA}:/data"} <= opp
    preds = [e for e in first if e["type"] == "prediction"]
    assert all(e["data"]["change"] == ["new"] for e in preds)
    assert any(e["data"]["kind"] == "disk_full" and e["data"]["subject"] == f"{ALPHA}:/data" for e in preds)

    last = first[-1]["cursor"]
    again = _events(vc(f.cfg, "watch", "--once", "--since", last, "--no-state"))
    assert again == []
    # The state file under the data dir resumes the same way without --since.
    assert (f.store.db_path.parent / rw.STATE_FILE).exists()
    assert _events(vc(f.cfg, "watch", "--once")) == []

    # A new transition (the engine a while later: data gone stale, alerts clear) is emitted, once.
    later = engine.evaluate_and_store(f.store, load_rules([DEFAULT_RULES]), f.t0 + timedelta(hours=2))
    assert later
    new = _events(vc(f.cfg, "watch", "--once", "--since", last, "--no-state"))
    assert [e["type"] for e in new] == ["alert"] * len(later)
    assert [e["data"]["event_id"] for e in new] == sorted(t.event_id for t in later)
    assert _events(vc(f.cfg, "watch", "--once", "--since", new[-1]["cursor"], "--no-state")) == []


def test_watch_max_events_and_resume_from_a_middle_cursor(fleet: Fleet, tmp_path: Path) -> None:
    state = tmp_path / "cursor.json"
    full = _events(vc(fleet.cfg, "watch", "--once", "--no-state"))
    assert len(full) > 4
    head = _events(vc(fleet.cfg, "watch", "--once", "--max-events", "2", "--state-file", str(state)))
    assert [e["id"] for e in head] == [e["id"] for e in full[:2]]
    # The state file holds the cursor of the last event printed, so the rest follows without a repeat.
    rest = _events(vc(fleet.cfg, "watch", "--once", "--state-file", str(state)))
    assert [e["id"] for e in rest] == [e["id"] for e in full[2:]]
    bad = vc(fleet.cfg, "watch", "--once", "--since", "garbage")
    assert bad.returncode == 2 and "cursor" in bad.stderr
    assert vc(fleet.cfg, "watch", "--format", "csv", "--once").returncode == 2


def test_watch_loop_stops_on_sigterm(fleet: Fleet) -> None:
    p = subprocess.Popen([*VC, "--config", str(fleet.cfg), "watch", "--interval", "0.2", "--no-state"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert p.stdout is not None
        line = p.stdout.readline()  # the first pass has events
        assert json.loads(line)["schema_version"] == rw.EVENT_VERSION
        time.sleep(0.5)
        p.send_signal(signal.SIGTERM)
        out, err = p.communicate(timeout=30)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait(timeout=10)
    assert p.returncode == 0, err
    assert "pass(es)" in err


def test_cursor_round_trip_and_prediction_change_rules() -> None:
    c = rw.Cursor("2026-01-01T00:00:00+00:00", "ev1", None, None, ["b", "a"])
    back = rw.Cursor.decode(c.encode())
    assert (back.alert_ts, back.alert_id, back.opportunities) == (c.alert_ts, "ev1", ["a", "b"])
    with pytest.raises(rw.CursorError):
        rw.Cursor.decode("w1.not-base64-json")
    base = {"prev_made_at": "2026-01-01T00:00:00Z", "made_at": "2026-01-01T01:00:00Z", "status": "filling",
            "prev_status": "filling", "action": None, "prev_action": None,
            "eta": "2026-01-01T11:00:00Z", "prev_eta": "2026-01-01T10:00:00Z"}
    assert rw.prediction_change(base) == []  # 1 h shift of ~9 h left: same news
    assert rw.prediction_change({**base, "eta": "2026-01-01T05:00:00Z"}) == ["eta"]
    assert rw.prediction_change({**base, "status": "at limit"}) == ["status"]
    assert rw.prediction_change({**base, "prev_made_at": None}) == ["new"]

"""The alerts engine: rule validation, every kind through the pure state machine, the store round
trip (alerts, alert_state, alert_events, acks, snoozes), delivery to JSONL and to real local
webhook servers (retrying, dead, hanging), and the promtool-like rules test runner."""

from __future__ import annotations

import json
import os
import re
import socket
import threading
import time
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml

from workbench.alerts import engine, sources
from workbench.alerts.config import AlertsConfig, WebhookConfig
from workbench.alerts.delivery import Notifier, read_jsonl
from workbench.alerts.engine import ack, evaluate, evaluate_and_store, snooze
from workbench.alerts.model import Series, parse_duration
from workbench.alerts.rules import DEFAULT_RULES, Rule, RulesError, load_rules, parse_rules
from workbench.alerts.rules_test import expand_values, parse_series, rules_test_cli, run_rules_test
from workbench.alerts.service import AlertService
from workbench.config import VcConfig
from workbench.store import Batch
from workbench.views import ops

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
REPO = Path(__file__).resolve().parents[1]
# Rules shipped disabled ("needs source X") until their sources were added, now enabled.
WAITED_FOR_A_SOURCE = {"oom_kills", "inotify_near_limit", "dcg_denies_high", "dcg_new_critical_rule",
                       "mail_urgent_unread", "mail_ack_overdue", "ratelimit_eta_low"}
RULE_TESTS = REPO / "tests" / "rules"


# ---------------------------------------------------------------- helpers

def make_rule(**kw) -> Rule:
    """One rule through the real YAML loader (durations, kind checks and templates included)."""
    base = {"id": "r", "summary": "{machine_id} {value}", "severity": "warning"}
    return parse_rules(yaml.safe_dump({"rules": [{**base, **kw}]}), "test.yaml")[0]


def series(source: str, values: list, labels: dict | None = None, step_s: int = 60,
           start: datetime = T0, table: str | None = "sys_samples") -> Series:
    pts = [(start + timedelta(seconds=i * step_s), v) for i, v in enumerate(values) if v is not None]
    return Series.of(source, labels or {"machine_id": "m1"}, pts, table)


def run(rules: list[Rule], data: dict[str, list[Series]], minutes: int, start: datetime = T0):
    """Evaluate once a minute from `start`; returns (states, [(minute, transition)])."""
    states: dict = {}
    log = []
    for k in range(minutes + 1):
        res = evaluate(rules, data, states, start + timedelta(minutes=k))
        states = res.states
        log += [(k, t) for t in res.transitions]
    return states, log


def moves(log) -> list[tuple[int, str, str]]:
    return [(k, t.from_state, t.to_state) for k, t in log]


# ---------------------------------------------------------------- rule files

def test_shipped_rules_load_and_cover_the_asked_for_signals():
    every = load_rules(include_disabled=True)
    enabled = {r.id for r in every if r.enabled}
    assert {"disk_free_low", "disk_fill_forecast", "load_high", "swap_rising", "machine_silent",
            # sources on tables the fleet collectors already fill
            "rch_queue_high", "rch_no_workers", "cass_index_stale", "dirty_repos",
            # the anomaly detector's table
            "anomaly_score_high",
            # the kernel's OOM counter (sys_samples), sysmoni's inotify figures, dcg and agent-mail
            # history sampled at their collections, and the rate-limit forecasts
            } | WAITED_FOR_A_SOURCE == enabled
    disabled = {r.id: r for r in every if not r.enabled}
    assert disabled == {}
    for r in every:
        assert r.source in sources.REGISTRY, r.id
    # A rule left disabled says which source it waits for, right above it; one that got its source
    # says why it is there instead (and no longer that it waits).
    lines = DEFAULT_RULES.read_text().splitlines()
    for rid, r in disabled.items():
        at = lines.index(f"  - id: {rid}")
        assert f"needs source {r.source}" in lines[at - 1] or f"needs source {r.source}" in lines[at - 2], rid
    for rid in WAITED_FOR_A_SOURCE:
        at = lines.index(f"  - id: {rid}")
        assert lines[at - 1].startswith("  # ") and "needs source" not in lines[at - 1], rid
    load = next(r for r in every if r.id == "load_high")
    assert (load.kind, load.condition.op, load.condition.value, load.for_) == ("threshold", ">", 1.5,
                                                                              timedelta(minutes=10))
    silent = next(r for r in every if r.id == "machine_silent")
    assert silent.condition.value == 600.0  # "10m" read as seconds
    by_id = {r.id: r for r in every}
    oom = by_id["oom_kills"]  # a counter: kills per hour over the last hour, at once
    assert (oom.kind, oom.window, oom.per, oom.condition.op, oom.condition.value, oom.for_) == (
        "rate", timedelta(hours=1), timedelta(hours=1), ">", 0.0, timedelta(0))
    new = by_id["dcg_new_critical_rule"]
    assert (new.kind, new.condition.op, new.window, new.history) == ("pattern", "new", timedelta(hours=1),
                                                                    timedelta(days=7))
    assert by_id["ratelimit_eta_low"].condition.value == 1800.0  # "30m" read as seconds
    assert by_id["ratelimit_eta_low"].dedupe_fields == ["machine_id", "account_key"]


def test_critical_dcg_rule_regex_picks_dcgs_critical_core_rules():
    """dcg's history does not store severity; the shipped regex is the critical rules of its core packs."""
    rx = next(r for r in load_rules() if r.id == "dcg_new_critical_rule").regex
    critical = ["core.git:reset-hard", "core.git:clean-force", "core.git:push-force-long", "core.git:push-force-short",
                "core.git:stash-clear", "core.filesystem:rm-rf-root-home", "core.filesystem:rm-r-f-separate-root-home",
                "core.filesystem:find-delete-root-home", "core.filesystem:dd-overwrite-root-home",
                "core.filesystem:credential-file-write", "core.filesystem:git-internals-write",
                "core.filesystem:fork-bomb", "core.filesystem:cp-sensitive-then-delete"]
    high_or_less = ["core.git:reset-merge", "core.git:checkout-discard", "core.git:branch-force-delete",
                    "core.git:stash-drop", "core.filesystem:rm-rf-general", "core.filesystem:rm-r-f-separate",
                    "core.filesystem:redirect-truncate-dynamic-path", "core.git", "coreXgit:reset-hard",
                    "core.git:reset-hard-ish", "database.postgresql:drop-table"]
    assert [c for c in critical if not rx.search(c)] == []
    assert [c for c in high_or_less if rx.search(c)] == []


def test_every_enabled_shipped_rule_has_a_passing_rules_test():
    for r in load_rules():
        path = RULE_TESTS / f"{r.id}.test.yaml"
        assert path.is_file(), f"missing {path}"
        rep = run_rules_test(path)
        assert rep.passed, rep.render()
        assert any(c.rule == r.id for c in rep.cases)
        # A test that only ever expects silence would pass on a broken rule.
        doc = yaml.safe_load(path.read_text())
        assert any(e.get("state", "firing") == "firing" for t in doc["tests"]
                   for a in t["alert_rule_test"] for e in a.get("exp_alerts", [])), path


def test_rule_errors_name_file_rule_and_key(tmp_path):
    def err(rule: dict) -> str:
        doc = {"rules": [{"id": "ok_rule", "kind": "threshold", "source": "disk_free_pct",
                          "condition": {"op": "<", "value": 5}, "summary": "x"}, rule]}
        p = tmp_path / "fleet.yaml"
        p.write_text(yaml.safe_dump(doc, sort_keys=False))
        with pytest.raises(RulesError) as ei:
            load_rules(p)
        return str(ei.value)

    base = {"id": "bad_rule", "kind": "threshold", "source": "disk_free_pct",
            "condition": {"op": "<", "value": 5}, "summary": "{mount} low"}
    msg = err({**base, "treshold": 3})
    assert "fleet.yaml: rule 'bad_rule' (#2, line" in msg and "key 'treshold'" in msg
    assert "key 'condition.op'" in err({**base, "condition": {"op": "=>", "value": 5}})
    assert "key 'window': required for kind 'rate'" in err({**base, "kind": "rate"})
    assert "key 'target': not used by kind 'threshold'" in err({**base, "target": 3})
    assert "key 'source': unknown source 'disk_free'" in err({**base, "source": "disk_free"})
    assert "key 'for'" in err({**base, "for": "ten minutes"})
    m = err({**base, "summary": "{mountpoint} is low"})
    assert "key 'summary': unknown placeholder(s) mountpoint" in m and "mount" in m
    assert "key 'actions.0'" in err({**base, "actions": ["{value.__class__}"]})
    assert "key 'dedupe': 'device' is not a label" in err({**base, "dedupe": ["machine_id", "device"]})
    assert "key 'condition.value': expected a number or a duration" in err(
        {**base, "condition": {"op": "<", "value": "lots"}})
    assert "key 'condition.op': kind 'pattern' needs one of matches, new" in err(
        {**base, "kind": "pattern", "window": "1h"})
    assert "key 'id': duplicate rule id" in err({**base, "id": "ok_rule"})
    # A rule for a source that is not collected yet loads when it says so.
    p = tmp_path / "later.yaml"
    p.write_text(yaml.safe_dump({"rules": [{**base, "id": "later", "source": "not_yet", "enabled": False,
                                            "summary": "{anything}"}]}))
    assert load_rules(p) == [] and load_rules(p, include_disabled=True)[0].id == "later"
    p.write_text("rules: [\n")
    with pytest.raises(RulesError, match="later.yaml: not valid YAML"):
        load_rules(p)


def test_durations():
    assert parse_duration("1h30m") == timedelta(minutes=90)
    assert parse_duration("90s") == parse_duration(90) == parse_duration("90") == timedelta(seconds=90)
    assert parse_duration("2d") == timedelta(days=2)
    for bad in ("10 minutes", "m10", "", "-5m", True):
        with pytest.raises(ValueError):
            parse_duration(bad)


# ---------------------------------------------------------------- the pure state machine, per kind

def test_threshold_for_and_keep_firing_for():
    r = make_rule(kind="threshold", source="disk_free_pct", condition={"op": "<", "value": 10},
                  summary="{mount} on {machine_id}: {value:.0f}% free", **{"for": "5m"}, keep_firing_for="3m")
    s = series("disk_free_pct", [50, 50] + [5] * 10 + [50] * 10, {"machine_id": "m1", "mount": "/data"},
               table="sys_filesystems")
    states, log = run([r], {"disk_free_pct": [s]}, 21)
    # pending at 2m, firing when it held 5m (7m), back to 50 at 12m, resolved 3m later
    assert moves(log) == [(2, "inactive", "pending"), (7, "pending", "firing"), (15, "firing", "resolved")]
    fired = log[1][1]
    assert fired.summary == "/data on m1: 5% free"
    assert fired.labels == {"machine_id": "m1", "mount": "/data"}
    assert fired.dedupe_key == "r:m1:/data" and fired.alert_id == log[0][1].alert_id == log[2][1].alert_id
    ev = fired.evidence
    assert ev["table"] == "sys_filesystems" and ev["machine_id"] == "m1" and ev["values"][-1][1] == 5
    assert ev["ts_to"] == (T0 + timedelta(minutes=7)).isoformat()
    assert "held for 5m" in fired.reason
    assert log[2][1].reason.startswith("condition cleared: 50 is not < 10")
    (st,) = states.values()
    assert st.state == "resolved" and st.fired_at == T0 + timedelta(minutes=7)


def test_for_zero_fires_at_once_and_a_new_episode_gets_a_new_id():
    r = make_rule(kind="threshold", source="load5_per_core", condition={"op": ">", "value": 1})
    s = series("load5_per_core", [2, 2, 0.5, 0.5, 2, 2])
    _, log = run([r], {"load5_per_core": [s]}, 5)
    assert moves(log) == [(0, "inactive", "firing"), (2, "firing", "resolved"), (4, "inactive", "firing")]
    assert log[0][1].alert_id != log[2][1].alert_id


def test_pending_that_clears_before_for_is_cancelled_not_resolved():
    r = make_rule(kind="threshold", source="load5_per_core", condition={"op": ">", "value": 1},
                  **{"for": "10m"})
    _, log = run([r], {"load5_per_core": [series("load5_per_core", [2, 2, 2, 0.5, 0.5])]}, 4)
    assert moves(log) == [(0, "inactive", "pending"), (3, "pending", "cancelled")]
    assert "before `for:`" in log[1][1].reason


def test_keep_firing_for_stops_flapping():
    flappy = [2, 0.5] * 10  # crosses the threshold every minute
    data = {"load5_per_core": [series("load5_per_core", flappy)]}
    plain = make_rule(kind="threshold", source="load5_per_core", condition={"op": ">", "value": 1})
    kept = make_rule(kind="threshold", source="load5_per_core", condition={"op": ">", "value": 1},
                     keep_firing_for="5m")
    _, log_plain = run([plain], data, 19)
    _, log_kept = run([kept], data, 30)
    assert len(log_plain) == 20  # fire, resolve, fire, resolve …
    assert moves(log_kept) == [(0, "inactive", "firing"), (24, "firing", "resolved")]  # last true at 18m


def test_dedupe_by_machine_merges_mounts_and_the_worst_speaks():
    r = make_rule(kind="threshold", source="disk_free_pct", condition={"op": "<", "value": 10},
                  dedupe=["machine_id"], summary="{machine_id} {value:.0f}%")
    data = {"disk_free_pct": [
        series("disk_free_pct", [8] * 3, {"machine_id": "m1", "mount": "/"}, table="sys_filesystems"),
        series("disk_free_pct", [3] * 3, {"machine_id": "m1", "mount": "/data"}, table="sys_filesystems"),
        series("disk_free_pct", [40] * 3, {"machine_id": "m2", "mount": "/"}, table="sys_filesystems"),
    ]}
    states, log = run([r], data, 2)
    assert moves(log) == [(0, "inactive", "firing")]  # one alert, not two, and not re-sent every minute
    t = log[0][1]
    assert t.dedupe_key == "r:m1" and t.labels == {"machine_id": "m1"} and t.summary == "m1 3%"
    assert t.evidence["labels"]["mount"] == "/data"
    assert t.evidence["also_matching"] == [{"machine_id": "m1", "mount": "/"}]
    assert len(states) == 1


def test_rate_kind():
    r = make_rule(kind="rate", source="swap_used_pct", window="10m", per="1h",
                  condition={"op": ">", "value": 30}, keep_firing_for="2m")
    vals = [10] * 10 + [10 + i for i in range(1, 11)] + [20] * 20  # +1/min (60/h) from 10m to 19m
    _, log = run([r], {"swap_used_pct": [series("swap_used_pct", vals)]}, 39)
    # 10m window: rate > 30/h once the rise covers more than half of it (6 points → 36/h at 15m)
    assert moves(log)[0] == (15, "inactive", "firing")
    assert log[0][1].value == pytest.approx(36.0)
    assert log[0][1].evidence["first"] == 10 and log[0][1].evidence["last"] == 16
    # from 20m the window's first point climbs; at 24m it is 15 → (20 - 15) per 10m = 30/h, not above
    # 30: cleared at 24m, resolved after keep_firing_for 2m
    assert moves(log)[1:] == [(26, "firing", "resolved")]


def test_absence_kind_fires_on_silence_and_not_on_machines_never_seen():
    r = make_rule(kind="absence", source="sample_age_seconds", condition={"op": ">", "value": "5m"},
                  summary="{machine_id} quiet for {value_human}")
    data = {"sample_age_seconds": [series("sample_age_seconds", [0] * 3 + [None] * 10 + [0])]}
    _, log = run([r], data, 13)
    assert moves(log) == [(8, "inactive", "firing"), (13, "firing", "resolved")]
    assert log[0][1].summary == "m1 quiet for 6m" and log[0][1].value == 360.0
    assert log[0][1].evidence["last_seen"] == (T0 + timedelta(minutes=2)).isoformat()
    _, log = run([r], {"sample_age_seconds": []}, 10)
    assert log == []


def test_pattern_kind_matches_and_new():
    texts = ["ok", "rm-rf-root", "ok", None, "force-push", "ok"]
    data = {"dcg_rule": [series("dcg_rule", texts)]}
    m = make_rule(kind="pattern", source="dcg_rule", enabled=False, window="2m",
                  condition={"op": "matches", "value": "^(rm-rf|force)"}, summary="{machine_id} {value}")
    m = m.model_copy(update={"enabled": True})  # unknown source: built disabled, switched on for the test
    _, log = run([m], data, 7)
    assert moves(log) == [(1, "inactive", "firing"), (3, "firing", "resolved"), (4, "inactive", "firing"),
                          (6, "firing", "resolved")]
    assert log[0][1].value_text == "rm-rf-root" and log[0][1].summary == "m1 rm-rf-root"
    new = make_rule(kind="pattern", source="dcg_rule", enabled=False, window="2m", history="1h",
                    condition={"op": "new", "value": ".+"}).model_copy(update={"enabled": True})
    data = {"dcg_rule": [series("dcg_rule", ["a", "b", "a", "a", "a", "c", "a"])]}
    _, log = run([new], data, 8)
    fired = [(k, t.value_text) for k, t in log if t.to_state == "firing"]
    # t0 "a" and t1 "b" are new (no history yet); "c" at 5m is new; "a" again later is not
    assert fired == [(0, "a"), (5, "c")]


def test_anomaly_kind_spike_fires_noise_does_not():
    r = make_rule(kind="anomaly", source="load5_per_core", window="30m", min_samples=10,
                  condition={"op": ">", "value": 6}, summary="{machine_id} z={value:.1f}")
    noise = [1.0 + 0.05 * ((i * 7) % 5 - 2) for i in range(40)]
    spiky = noise[:30] + [3.0] + noise[31:]
    _, quiet = run([r], {"load5_per_core": [series("load5_per_core", noise)]}, 39)
    assert quiet == []
    _, log = run([r], {"load5_per_core": [series("load5_per_core", spiky)]}, 39)
    assert moves(log) == [(30, "inactive", "firing"), (31, "firing", "resolved")]
    assert log[0][1].value > 6 and log[0][1].evidence["median"] == pytest.approx(1.0)
    down = make_rule(kind="anomaly", source="load5_per_core", window="30m", direction="down",
                     condition={"op": ">", "value": 6})
    _, log = run([down], {"load5_per_core": [series("load5_per_core", spiky)]}, 39)
    assert log == []  # an upward spike is not a drop


def test_forecast_kind_eta_and_never():
    r = make_rule(kind="forecast", source="disk_free_pct", window="30m", target=0, min_samples=5,
                  condition={"op": "<", "value": "2h"}, summary="{mount} full in {value_human}")
    lab = {"machine_id": "m1", "mount": "/"}
    falling = series("disk_free_pct", [60 - i for i in range(40)], lab, table="sys_filesystems")  # 60/h
    _, log = run([r], {"disk_free_pct": [falling]}, 39)
    # at 15m: 45 left at 60/h = 45m < 2h (first moment with half a window of history)
    assert moves(log) == [(15, "inactive", "firing")]
    assert log[0][1].value == pytest.approx(45 * 60) and log[0][1].summary == "/ full in 45m"
    assert log[0][1].evidence["slope_per_hour"] == pytest.approx(-60)
    rising = series("disk_free_pct", [20 + i for i in range(40)], lab, table="sys_filesystems")
    states, log = run([r], {"disk_free_pct": [rising]}, 39)
    assert log == []
    m = engine.measure(r, rising, T0 + timedelta(minutes=39))
    assert m.value == float("inf") and m.numeric is None and m.evidence["eta_seconds"] is None


def test_removed_rule_resolves_its_alerts():
    r = make_rule(kind="threshold", source="load5_per_core", condition={"op": ">", "value": 1})
    data = {"load5_per_core": [series("load5_per_core", [2] * 5)]}
    res = evaluate([r], data, {}, T0)
    res2 = evaluate([], data, res.states, T0 + timedelta(minutes=1))
    assert [(t.to_state, t.reason) for t in res2.transitions] == [("resolved", "rule removed or disabled")]


def test_unreadable_source_keeps_alerts_while_no_data_clears_them(store):
    r = make_rule(kind="threshold", source="load5_per_core", condition={"op": ">", "value": 1})
    firing = evaluate([r], {"load5_per_core": [series("load5_per_core", [2])]}, {}, T0).states
    later = T0 + timedelta(minutes=1)
    kept = evaluate([r], {}, firing, later)  # key missing: the source could not be read
    assert kept.transitions == [] and kept.states == firing
    cleared = evaluate([r], {"load5_per_core": []}, firing, later + timedelta(minutes=30))
    assert [t.to_state for t in cleared.transitions] == ["resolved"]
    assert cleared.transitions[0].reason == "no data from load5_per_core"

    # Through the store: a source whose query fails is reported and the others still evaluate.
    @sources.source("broken_for_test", table="nowhere")
    def broken(con, start, end):
        return con.table("no_such_table")

    try:
        bad = make_rule(id="bad", kind="threshold", source="broken_for_test",
                        condition={"op": ">", "value": 1})
        hot = make_rule(id="hot", kind="threshold", source="load5_per_core",
                        condition={"op": ">", "value": 1})
        _write(store, sys_samples=_samples("m1", range(0, 3), load5=9.0, cores=1))
        ev = engine.evaluate_store(store, [bad, hot], T0 + timedelta(minutes=2))
        assert "no_such_table" in ev.source_errors["broken_for_test"]
        assert [t.rule_id for t in ev.transitions] == ["hot"]
    finally:
        sources.REGISTRY.pop("broken_for_test", None)


def test_evaluate_is_pure():
    r = make_rule(kind="threshold", source="load5_per_core", condition={"op": ">", "value": 1},
                  **{"for": "2m"})
    data = {"load5_per_core": [series("load5_per_core", [2] * 5)]}
    first = evaluate([r], data, {}, T0)
    again = evaluate([r], data, {}, T0)
    assert first.transitions == again.transitions
    later = evaluate([r], data, first.states, T0 + timedelta(minutes=2))
    assert [t.to_state for t in later.transitions] == ["firing"]
    assert first.states[("r", "r:m1")].state == "pending"  # the input states were not mutated


# ---------------------------------------------------------------- rules test notation and runner

def test_compact_values_notation():
    # promtool semantics: a+bxn is n+1 samples; _xn is n gaps
    assert expand_values("10+5x6 50 _ 80x3") == [10, 15, 20, 25, 30, 35, 40, 50, None, 80, 80, 80, 80]
    assert expand_values("1-0.5x2 _x2 -3") == [1, 0.5, 0, None, None, -3]
    assert expand_values(["a", None, 2]) == ["a", None, 2]
    with pytest.raises(ValueError, match="cannot read value 'ten'"):
        expand_values("1 ten")
    assert parse_series('disk_free_pct{machine_id="m1", mount="/da\\"ta"}') == (
        "disk_free_pct", {"machine_id": "m1", "mount": '/da"ta'})
    with pytest.raises(ValueError):
        parse_series("disk free")


WRONG = """
rule_files: [{rules}]
tests:
  - name: wrong on purpose
    input_series:
      - series: 'load5_per_core{{machine_id="m1"}}'
        values: "3x20"
    alert_rule_test:
      - eval_time: 5m
        rule: load_high
        exp_alerts:
          - labels: {{machine_id: m9}}
            state: firing
      - eval_time: 15m
        rule: load_high
        exp_alerts:
          - labels: {{machine_id: m1}}
"""


def test_rules_test_reports_a_readable_failure(tmp_path, capsys):
    p = tmp_path / "wrong.test.yaml"
    p.write_text(WRONG.format(rules=DEFAULT_RULES))
    rep = run_rules_test(p)
    assert not rep.passed and [c.passed for c in rep.cases] == [False, True]
    text = rep.render()
    assert "FAIL  eval_time 5m (rule load_high)" in text and "PASS  eval_time 15m (rule load_high)" in text
    assert re.search(r'expected, not found:\n\s+- load_high\{machine_id="m9"\} state=firing\n', text)
    assert re.search(r'found, not expected:\n\s+\+ load_high\{machine_id="m1"\} state=pending '
                     r'value=3 since=0s', text)
    assert "1 passed, 1 failed" in text
    assert rules_test_cli(p) == 1
    assert "FAIL" in capsys.readouterr().out
    assert rules_test_cli(RULE_TESTS) == 0
    assert rules_test_cli(tmp_path / "nope.yaml") == 2


def test_rules_test_file_errors_are_errors_not_passes(tmp_path):
    p = tmp_path / "typo.test.yaml"
    p.write_text(WRONG.format(rules=DEFAULT_RULES).replace("load5_per_core{", "load5_per_cor{"))
    rep = run_rules_test(p)
    assert not rep.passed and not rep.cases
    assert "no enabled rule reads 'load5_per_cor'" in rep.errors[0]
    p.write_text("tests: []\n")
    assert not run_rules_test(p).passed
    assert rules_test_cli(p) == 2


# ---------------------------------------------------------------- with the store

def _samples(machine: str, minutes: range, load5: float, cores: int = 4,
             swap_pct: float | None = None) -> list[dict]:
    rows = []
    for m in minutes:
        row = dict(machine_id=machine, ts=T0 + timedelta(minutes=m), source="test", schema_version=1,
                   cpu_count=cores, load5=load5)
        if swap_pct is not None:
            row.update(swap_total_bytes=1000, swap_used_bytes=int(10 * swap_pct))
        rows.append(row)
    return rows


def _fs(machine: str, mount: str, minutes: range, used_pct: float, fstype: str = "ext4") -> list[dict]:
    return [dict(machine_id=machine, ts=T0 + timedelta(minutes=m), mount=mount, source="test",
                 schema_version=1, fstype=fstype, total_bytes=1000, used_bytes=int(10 * used_pct),
                 free_bytes=1000 - int(10 * used_pct), used_pct=used_pct) for m in minutes]


def _write(store, **tables) -> None:
    b = Batch()
    for name, rows in tables.items():
        if name == "machines":
            b.add_upserts(name, rows)
        else:
            b.add_rows(name, rows)
    assert store.write(b).spooled is None


def _q(store, sql: str, params: list | None = None) -> list[tuple]:
    with store.raw_reader() as con:
        return con.execute(sql, params or []).fetchall()


def test_evaluate_and_store_round_trip(store):
    rules = load_rules()
    _write(store,
           machines=[dict(machine_id="m1", cpu_count=4, enabled=True),
                     dict(machine_id="m2", cpu_count=2, enabled=True),
                     dict(machine_id="off", cpu_count=2, enabled=False)],
           sys_samples=_samples("m1", range(0, 31), load5=8.0) + _samples("m2", range(0, 5), load5=0.1)
           + _samples("off", range(0, 3), load5=0.1),
           sys_filesystems=_fs("m1", "/data", range(0, 31), used_pct=95.0)
           + _fs("m1", "/", range(0, 31), 40.0)
           + _fs("m1", "/media/cdrom", range(0, 31), 100.0, fstype="iso9660"))  # full by design: ignored
    seen = []
    # Evaluations around each timer's edge (each costs a few queries; every minute is not needed).
    for k in (0, 4, 5, 9, 10, 14, 15, 30):
        seen += evaluate_and_store(store, rules, T0 + timedelta(minutes=k))
    got = sorted({(t.rule_id, t.machine_id, t.to_state) for t in seen})
    assert got == [("disk_free_low", "m1", "firing"), ("disk_free_low", "m1", "pending"),
                   ("load_high", "m1", "firing"), ("load_high", "m1", "pending"),
                   ("machine_silent", "m2", "firing")]
    silent = next(t for t in seen if t.rule_id == "machine_silent")
    assert silent.ts == T0 + timedelta(minutes=15)  # last sample at 4m, over 10m silent at 15m
    # alerts: one row per episode, upserted by alert_id
    rows = _q(store, "SELECT rule_id, machine_id, dedupe_key, state, severity, started_at, fired_at, "
                     "labels_json, evidence_json, value FROM alerts ORDER BY rule_id, machine_id")
    assert [(r[0], r[1], r[2], r[3]) for r in rows] == [
        ("disk_free_low", "m1", "disk_free_low:m1:/data", "firing"),
        ("load_high", "m1", "load_high:m1", "firing"),
        ("machine_silent", "m2", "machine_silent:m2", "firing")]
    disk = rows[0]
    assert disk[4] == "critical" and disk[5] == T0 and disk[6] == T0 + timedelta(minutes=5)
    assert json.loads(disk[7]) == {"machine_id": "m1", "mount": "/data"} and disk[9] == pytest.approx(5.0)
    ev = json.loads(disk[8])
    assert ev["table"] == "sys_filesystems" and ev["machine_id"] == "m1"
    assert ev["values"][-1][1] == pytest.approx(5)
    assert ev["ts_to"] == (T0 + timedelta(minutes=30)).isoformat()
    load_value = _q(store, "SELECT value FROM alerts WHERE rule_id = 'load_high'")[0][0]
    assert load_value == pytest.approx(2.0)  # 8 / 4 cores
    assert _q(store, "SELECT count(*) FROM alert_events")[0][0] == len(seen) == 5
    assert _q(store, "SELECT count(*) FROM alert_state")[0][0] == 3
    # the existing dashboard view sees them
    with store.reader() as con:
        active = ops.active_alerts(con).execute()
    assert sorted(active.rule_id) == ["disk_free_low", "load_high", "machine_silent"]
    # same evaluation again: nothing new
    assert evaluate_and_store(store, rules, T0 + timedelta(minutes=30)) == []
    assert _q(store, "SELECT count(*) FROM alert_events")[0][0] == 5

    # recovery: healthy disk from 31m, m2 back; disk resolves after keep_firing_for (15m)
    _write(store, sys_samples=_samples("m1", range(31, 60), load5=8.0) + _samples("m2", range(40, 60), 0.1),
           sys_filesystems=_fs("m1", "/data", range(31, 60), used_pct=50.0))
    later = []
    for k in (31, 39, 40, 44, 45, 46, 59):
        later += evaluate_and_store(store, rules, T0 + timedelta(minutes=k))
    assert [(t.rule_id, t.to_state, t.ts) for t in later] == [
        ("machine_silent", "resolved", T0 + timedelta(minutes=45)),  # samples back at 40m, kept firing 5m
        ("disk_free_low", "resolved", T0 + timedelta(minutes=46)),
    ]
    resolved = _q(store, "SELECT state, resolved_at FROM alerts WHERE rule_id = 'disk_free_low'")
    assert resolved == [("resolved", T0 + timedelta(minutes=46))]
    hist = engine.alert_history(store, later[1].alert_id)
    assert [(h["from_state"], h["to_state"]) for h in hist] == [
        ("inactive", "pending"), ("pending", "firing"), ("firing", "resolved")]


def test_every_source_runs_on_the_migrated_schema(store):
    errors: dict[str, str] = {}
    with store.reader() as con:
        got = sources.fetch_series(con, [(name, mode, timedelta(hours=1)) for name in sources.REGISTRY
                                         for mode in ("window", "latest")], T0, errors)
    assert errors == {}
    assert set(got) == set(sources.REGISTRY) and all(v == [] for v in got.values())


def test_tool_sources_read_their_tables(store):
    def at(m: int) -> datetime:
        return T0 + timedelta(minutes=m)

    base = dict(machine_id="m1", source="test", schema_version=1)
    rch = [dict(base, collected_at=at(0), success=True, workers_total=2, workers_healthy=0, active_builds=1,
                queued_builds=30),
           dict(base, collected_at=at(1), success=True, workers_total=2, workers_healthy=0, active_builds=0,
                queued_builds=0),  # idle: no sample for "workers while builds active"
           dict(base, collected_at=at(2), success=False),  # daemon down: neither source has a sample
           dict(base, machine_id="solo", collected_at=at(0), success=True, workers_total=0, workers_healthy=0,
                active_builds=3, queued_builds=0)]  # no workers configured: local builds by design
    repos = [dict(base, collected_at=at(0), path=f"/r/{i}", dirty=i < 3) for i in range(5)]
    repos += [dict(base, collected_at=at(1), path="/r/0", dirty=None)]  # ru said nothing: no data
    cass = [dict(base, collected_at=at(0), index_age_seconds=90000.0)]
    _write(store, rch_status_snapshots=rch, repo_status_snapshots=repos, cass_health_snapshots=cass)
    with store.reader() as con:
        got = sources.fetch_series(con, [(n, "window", timedelta(hours=1)) for n in (
            "rch_queue_depth", "rch_workers_while_builds_active", "dirty_repos", "cass_index_age_seconds")],
            at(5))

    def pts(name: str) -> dict[str, list[tuple[int, float]]]:
        return {s.label_map["machine_id"]: [(int((t - T0).total_seconds() // 60), v) for t, v in s.points]
                for s in got[name]}

    assert pts("rch_queue_depth") == {"m1": [(0, 30.0), (1, 0.0)], "solo": [(0, 0.0)]}
    assert pts("rch_workers_while_builds_active") == {"m1": [(0, 0.0)]}
    assert pts("dirty_repos") == {"m1": [(0, 3.0)]}
    assert pts("cass_index_age_seconds") == {"m1": [(0, 90000.0)]}


def test_restart_keeps_pending_timers(store):
    """The state lives in the database: a new process continues the `for:` timer, it does not restart it."""
    rules = [r for r in load_rules() if r.id == "load_high"]
    _write(store, sys_samples=_samples("m1", range(0, 20), load5=9.0))
    assert [t.to_state for t in evaluate_and_store(store, rules, T0)] == ["pending"]
    assert evaluate_and_store(store, rules, T0 + timedelta(minutes=9)) == []
    fired = evaluate_and_store(store, rules, T0 + timedelta(minutes=10))
    assert [t.to_state for t in fired] == ["firing"]


def test_ack_and_snooze(store, tmp_path, hook_server):
    rules = [r for r in load_rules() if r.id == "load_high"]
    _write(store, sys_samples=_samples("m1", range(0, 40), load5=9.0)
           + _samples("m1", range(40, 80), load5=0.1))
    evaluate_and_store(store, rules, T0)
    (alert_id,) = [r[0] for r in _q(store, "SELECT alert_id FROM alerts")]
    ack(store, alert_id, "alice", "looking", now=T0 + timedelta(minutes=1))
    with store.reader() as con:
        a = ops.active_alerts(con).execute()
    assert list(a.acked_by) == ["alice"] and list(a.ack_note) == ["looking"]
    snooze(store, alert_id, until=T0 + timedelta(hours=2), who="alice", note="known",
           now=T0 + timedelta(minutes=2))
    with pytest.raises(engine.UnknownAlertError):
        ack(store, "al-nope", "bob")
    with pytest.raises(ValueError):
        ack(store, alert_id, "  ")

    hook = Hook()
    url = hook_server(hook)
    notifier = Notifier(tmp_path / "alerts.jsonl", [WebhookConfig(url=url, backoff_seconds=0.01)])
    fired = evaluate_and_store(store, rules, T0 + timedelta(minutes=10))
    assert [t.to_state for t in fired] == ["firing"] and fired[0].snoozed
    report = notifier.deliver(fired)
    assert report.suppressed == 1 and report.queued == {}
    # the snooze is ended early (until = now); the same alert's resolution is delivered
    snooze(store, alert_id, until=T0 + timedelta(minutes=20), who="alice", now=T0 + timedelta(minutes=20))
    resolved = []
    for k in (40, 49, 50, 54):
        resolved += evaluate_and_store(store, rules, T0 + timedelta(minutes=k))
    assert [t.to_state for t in resolved] == ["resolved"] and not resolved[0].snoozed
    assert notifier.deliver(resolved).queued == {url: 1}
    assert notifier.wait_idle(5)
    notifier.close()
    assert [a["to"] for body in hook.bodies for a in body["alerts"]] == ["resolved"]
    lines = read_jsonl(tmp_path / "alerts.jsonl")
    assert [(x["to"], bool(x["delivery"]["suppressed"])) for x in lines] == [
        ("firing", True), ("resolved", False)]
    # recorded in history either way
    ev = _q(store, "SELECT to_state, snoozed_until FROM alert_events ORDER BY ts")
    assert ev == [("pending", None), ("firing", T0 + timedelta(hours=2)), ("resolved", None)]


# ---------------------------------------------------------------- delivery

class Hook:
    """Behaviour of a local webhook endpoint: fail the first N requests, or hang."""

    def __init__(self, fail_first: int = 0, hang: bool = False, status: int = 500):
        self.fail_first, self.hang, self.status = fail_first, hang, status
        self.requests = 0
        self.bodies: list[dict] = []
        self.release = threading.Event()
        self.lock = threading.Lock()


@pytest.fixture
def hook_server():
    servers = []

    def start(hook: Hook) -> str:
        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with hook.lock:
                    hook.requests += 1
                    n = hook.requests
                if hook.hang:
                    hook.release.wait(10)
                    return
                if n <= hook.fail_first:
                    self.send_response(hook.status)
                    self.end_headers()
                    return
                with hook.lock:
                    hook.bodies.append(json.loads(body))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *a):
                pass

        srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        srv.daemon_threads = True
        threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        servers.append((srv, hook))
        return f"http://127.0.0.1:{srv.server_address[1]}/hook"

    yield start
    for srv, hook in servers:
        hook.release.set()
        srv.shutdown()
        srv.server_close()


def _transitions(n: int = 1, severity: str = "critical") -> list:
    r = make_rule(kind="threshold", source="load5_per_core", condition={"op": ">", "value": 1},
                  severity=severity)
    data = {"load5_per_core": [series("load5_per_core", [2], {"machine_id": f"m{i}"}) for i in range(n)]}
    return evaluate([r], data, {}, T0).transitions


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_jsonl_gets_every_transition(tmp_path):
    n = Notifier(tmp_path / "data" / "alerts.jsonl")
    rep = n.deliver(_transitions(3))
    n.deliver(_transitions(1))
    assert rep.jsonl_written == 3
    lines = read_jsonl(tmp_path / "data" / "alerts.jsonl")
    assert [x["machine_id"] for x in lines] == ["m0", "m1", "m2", "m0"]
    assert lines[0]["to"] == "firing" and lines[0]["from"] == "inactive" and lines[0]["rule_id"] == "r"
    assert lines[0]["evidence"]["values"][0][1] == 2
    n.close()


def test_webhook_retries_until_it_succeeds(tmp_path, hook_server):
    hook = Hook(fail_first=2)
    url = hook_server(hook)
    n = Notifier(tmp_path / "alerts.jsonl", [WebhookConfig(url=url, backoff_seconds=0.05, max_attempts=4)])
    n.deliver(_transitions(2))
    assert n.wait_idle(10)
    st = n.stats()[url]
    assert (st["attempts"], st["sent"], st["failed"], hook.requests) == (3, 1, 0, 3)
    (body,) = hook.bodies
    assert body["version"] == 1 and [a["machine_id"] for a in body["alerts"]] == ["m0", "m1"]
    n.close()


def test_webhook_gives_up_after_max_attempts_and_skips_permanent_errors(tmp_path, hook_server):
    flaky, bad = Hook(fail_first=99), Hook(fail_first=99, status=404)
    u1, u2 = hook_server(flaky), hook_server(bad)
    n = Notifier(tmp_path / "alerts.jsonl", [WebhookConfig(url=u1, backoff_seconds=0.01, max_attempts=3),
                                             WebhookConfig(url=u2, backoff_seconds=0.01, max_attempts=3)])
    n.deliver(_transitions())
    assert n.wait_idle(10)
    s1 = n.stats()[u1]
    assert (s1["attempts"], s1["failed"], s1["last_error"]) == (3, 1, "HTTP 500")
    assert (n.stats()[u2]["attempts"], n.stats()[u2]["failed"]) == (1, 1)  # 404 is not retried
    n.close()


def test_dead_and_hanging_webhooks_never_block_the_caller(tmp_path, hook_server):
    hanging, healthy = Hook(hang=True), Hook()
    u_hang, u_ok = hook_server(hanging), hook_server(healthy)
    u_dead = f"http://127.0.0.1:{_free_port()}/"
    n = Notifier(tmp_path / "alerts.jsonl", [
        WebhookConfig(url=u_hang, timeout_seconds=1.0, max_attempts=2, backoff_seconds=0.05),
        WebhookConfig(url=u_dead, timeout_seconds=1.0, max_attempts=3, backoff_seconds=0.05),
        WebhookConfig(url=u_ok)], queue_size=2)
    t = time.monotonic()
    for _ in range(5):  # more than the queue holds: the extra payloads are dropped, not waited for
        n.deliver(_transitions())
    assert time.monotonic() - t < 0.5
    # The healthy endpoint gets everything its queue accepted while the hanging one still hangs.
    deadline = time.monotonic() + 5
    ok = n.stats()[u_ok]
    while len(healthy.bodies) < ok["submitted"] - ok["dropped"] and time.monotonic() < deadline:
        time.sleep(0.02)
        ok = n.stats()[u_ok]
    assert len(healthy.bodies) == ok["sent"] == ok["submitted"] - ok["dropped"] >= 2
    assert not hanging.release.is_set() and hanging.requests >= 1
    deadline = time.monotonic() + 10
    while n.stats()[u_dead]["failed"] < 1 and time.monotonic() < deadline:
        time.sleep(0.02)
    dead = n.stats()[u_dead]
    assert dead["failed"] >= 1 and dead["attempts"] >= 3 and "Connection refused" in dead["last_error"]
    assert n.stats()[u_hang]["dropped"] >= 1
    t = time.monotonic()
    n.close(flush_seconds=0.2, join_seconds=0.5)
    assert time.monotonic() - t < 2.0
    assert len(read_jsonl(tmp_path / "alerts.jsonl")) == 5


def test_webhook_filters_by_state_and_severity(tmp_path, hook_server):
    hook = Hook()
    url = hook_server(hook)
    n = Notifier(tmp_path / "a.jsonl", [WebhookConfig(url=url, min_severity="critical")])
    n.deliver(_transitions(1, severity="warning"))
    n.deliver(_transitions(1, severity="critical"))
    assert n.wait_idle(5)
    assert [a["severity"] for b in hook.bodies for a in b["alerts"]] == ["critical"]
    n.close()
    assert AlertsConfig.model_validate({"webhooks": ["http://127.0.0.1:1/x"]}).webhooks[0].max_attempts == 4
    with pytest.raises(ValueError):
        AlertsConfig.model_validate({"webhooks": ["ftp://x"]})


# ---------------------------------------------------------------- the daemon hook

def test_alert_service_after_cycle(store, tmp_path, hook_server):
    hook = Hook()
    url = hook_server(hook)
    cfg = VcConfig.model_validate({"storage": {"data_dir": str(tmp_path / "data")}})
    rules_file = tmp_path / "rules.yaml"
    rules_file.write_text(yaml.safe_dump({"rules": [{
        "id": "hot", "kind": "threshold", "source": "load5_per_core", "condition": {"op": ">", "value": 1},
        "summary": "{machine_id} hot"}]}))
    svc = AlertService.from_config(cfg, store, AlertsConfig(rule_files=[rules_file], webhooks=[url]))
    now = datetime.now(UTC).replace(microsecond=0)
    _write(store, sys_samples=[dict(machine_id="m1", ts=now - timedelta(seconds=30), source="t",
                                    schema_version=1, cpu_count=1, load5=3.0)])
    svc.after_cycle(None)
    assert svc.last_error is None
    assert svc.notifier.wait_idle(5)
    assert [a["summary"] for b in hook.bodies for a in b["alerts"]] == ["m1 hot"]
    assert read_jsonl(tmp_path / "data" / "alerts.jsonl")[0]["rule_id"] == "hot"
    # a broken edit keeps the last good rules; evaluation goes on
    rules_file.write_text("rules: [{id: hot, kind: nonsense}]\n")
    os.utime(rules_file, (time.time() + 5, time.time() + 5))
    assert [r.id for r in svc.rules] == ["hot"]
    svc.after_cycle(None)
    assert svc.last_error is None
    svc.close(flush_seconds=0.5)

"""caam: `status --json` into caam_status_snapshots, `limits --format json` into account_usage_snapshots."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from collectors.caam import CaamCollector
from collectors.caut import CautCollector
from tests.toolbox import Tool, run_collector, toolbox_executor
from workbench.store import Batch

NOW = datetime(2026, 1, 20, 12, 5, tzinfo=UTC)
USAGE, STATUS = "account_usage_snapshots", "caam_status_snapshots"

# caam has no verbatim JSON examples upstream and none is in the shared folder. These payloads are
# built from the examples RECONSTRUCTED in caam.md (from the Go struct tags): `caam status --json`
# (section 2) with codex logged in and concrete warnings, and `caam limits --format json` (section 1)
# extended with a codex profile (credits, model window) and a gemini profile whose fetch failed.
STATUS_OUT = {
    "tools": [
        {"tool": "codex", "logged_in": True, "active_profile": "work",
         "health": {"status": "warning", "expires_at": "0001-01-01T00:00:00Z", "error_count": 3,
                    "cooldown_remaining": "(cooldown: 1h 20m remaining)"},
         "identity": {"email": "Bob@Corp.com", "account_id": "acct-123", "plan_type": "plus",
                      "expires_at": "0001-01-01T00:00:00Z", "provider": "codex"}},
        {"tool": "claude", "logged_in": True, "active_profile": "alice@example.com",
         "health": {"status": "healthy", "expires_at": "2026-01-21T10:00:00Z", "error_count": 0},
         "identity": {"email": "alice@example.com", "plan_type": "max", "expires_at": "2026-01-21T10:00:00Z",
                      "provider": "claude"}},
        {"tool": "gemini", "logged_in": False},
    ],
    "warnings": ["claude/alice@example.com: 🟡 Warning - Token expires in 45 minutes",
                 "All gemini profiles in cooldown"],
    "recommendations": ["Switch codex to profile 'home'\n  caam activate codex home"],
}
LIMITS_OUT = [
    {"provider": "claude", "profile_name": "alice@example.com",
     "usage": {"provider": "claude", "plan_type": "max",
               "primary_window": {"utilization": 0.42, "used_percent": 42,
                                  "resets_at": "2026-01-20T15:00:00Z", "window_duration": 18000000000000},
               "secondary_window": {"utilization": 0.18, "used_percent": 18,
                                    "resets_at": "2026-01-24T09:00:00Z", "window_duration": 604800000000000},
               "fetched_at": "2026-01-20T12:00:00Z",
               "burn_rate": {"tokens_per_minute": 1500, "tokens_per_hour": 90000,
                             "sample_period": 3600000000000, "sample_size": 40, "confidence": 0.8,
                             "total_tokens": 90000,
                             "first_entry": "2026-01-20T11:00:00Z", "last_entry": "2026-01-20T11:59:00Z"},
               "estimated_depletion": "0001-01-01T00:00:00Z"}},
    {"provider": "codex", "profile_name": "work",
     "usage": {"provider": "codex", "plan_type": "plus", "rate_limit_tier": "tier-2",
               "primary_window": {"utilization": 0.9, "used_percent": 90, "resets_at": "2026-01-20T13:00:00Z",
                                  "window_duration": 18000000000000},
               "model_windows": {"gpt-5.1-codex": {"utilization": 0.5, "used_percent": 50,
                                                   "resets_at": "2026-01-21T00:00:00Z"}},
               "credits": {"has_credits": True, "unlimited": False, "balance": 12.5},
               "fetched_at": "2026-01-20T12:00:00Z", "estimated_depletion": "2026-01-20T12:40:00Z",
               "depletion_confidence": 0.7}},
    {"provider": "gemini", "profile_name": "side",
     "usage": {"provider": "gemini", "fetched_at": "2026-01-20T12:00:00Z", "error": "HTTP 401 Unauthorized",
               "estimated_depletion": "0001-01-01T00:00:00Z"}},
]


def collect(tmp_path: Path, status: str | bytes, limits: str | bytes, exit_code: int = 0, sub: str = "a"):
    tool = Tool(by_subcommand={"status": status, "limits": limits}, exit_code=exit_code)
    return run_collector(CaamCollector(), toolbox_executor(tmp_path / sub, {"caam": tool}), now=NOW)


def usage(result) -> dict[tuple[str, str], dict]:
    return {(r["provider"], r["window_name"]): r for r in result.rows.get(USAGE, [])}


def status(result) -> dict[str, dict]:
    return {r["tool"]: r for r in result.rows.get(STATUS, [])}


def write(store, result):
    b = Batch()
    for table, rows in result.rows.items():
        # pyarrow takes a batch's columns from its first row: every row must carry the same keys.
        assert len({frozenset(r) for r in rows}) == 1, f"{table}: rows with different columns"
        b.add_rows(table, rows)
    return store.write(b)


def test_required_tool():
    assert CaamCollector.required_tool == "caam"


def test_status_rows(tmp_path):
    r = collect(tmp_path, json.dumps(STATUS_OUT, indent=2), json.dumps(LIMITS_OUT, indent=2))
    assert r.warnings == []
    s = status(r)
    assert set(s) == {"codex", "claude", "gemini"}
    c = s["claude"]
    assert c["logged_in"] is True and c["active_profile"] == "alice@example.com"
    assert c["health_status"] == "healthy" and c["health_error_count"] == 0
    assert c["health_expires_at"] == datetime(2026, 1, 21, 10, 0, tzinfo=UTC)
    assert c["identity_plan_type"] == "max" and c["account_key"] == "claude:alice@example.com"
    assert json.loads(c["notices_json"]) == STATUS_OUT["warnings"]  # its own plus the unprefixed one
    x = s["codex"]
    assert x["health_expires_at"] is None and x["identity_expires_at"] is None  # Go zero time = unset
    assert x["cooldown_remaining"] == "(cooldown: 1h 20m remaining)" and x["health_error_count"] == 3
    assert x["account_key"] == "codex:bob@corp.com" and x["identity_account_id"] == "acct-123"
    assert json.loads(x["notices_json"]) == ["All gemini profiles in cooldown"]
    assert "caam activate" in json.loads(x["recommendations_json"])[0]
    g = s["gemini"]
    assert g["logged_in"] is False and g["account_key"] is None and g["health_status"] is None
    assert g["source"] == "caam" and g["collected_at"] == NOW


def test_limits_rows(tmp_path):
    r = collect(tmp_path, json.dumps(STATUS_OUT), json.dumps(LIMITS_OUT, indent=2))
    u = usage(r)
    assert set(u) == {("claude", "primary"), ("claude", "secondary"), ("codex", "primary"),
                      ("codex", "model:gpt-5.1-codex"), ("gemini", "none")}
    p = u[("claude", "primary")]
    assert p["account_key"] == "claude:alice@example.com" and p["source"] == "caam"
    assert p["used_pct"] == 42.0 and p["window_minutes"] == 300
    assert p["resets_at"] == datetime(2026, 1, 20, 15, 0, tzinfo=UTC)
    assert p["reported_at"] == datetime(2026, 1, 20, 12, 0, tzinfo=UTC)
    assert p["burn_tokens_per_hour"] == 90000.0 and p["estimated_depletion_at"] is None
    assert u[("claude", "secondary")]["window_minutes"] == 10080
    assert u[("claude", "secondary")]["used_pct"] == 18.0
    # A profile named "work" is keyed by the email caam status knows for it, not by the local name.
    c = u[("codex", "primary")]
    assert c["account_key"] == "codex:bob@corp.com" and c["account_label"] == "work"
    assert c["account_id"] == "acct-123" and c["rate_limit_tier"] == "tier-2"
    assert c["credits_remaining"] == 12.5
    assert c["estimated_depletion_at"] == datetime(2026, 1, 20, 12, 40, tzinfo=UTC)
    assert c["depletion_confidence"] == 0.7 and c["used_pct"] == 90.0
    m = u[("codex", "model:gpt-5.1-codex")]
    assert m["used_pct"] == 50.0 and m["window_minutes"] is None
    g = u[("gemini", "none")]
    assert g["error"] == "HTTP 401 Unauthorized" and g["used_pct"] is None
    assert g["account_key"] == "gemini:label:side"


def test_same_account_from_caut_and_caam_lines_up(tmp_path, store):
    """caut on one machine, caam on another: one account_key, so a view can merge them."""
    caut_env = {"schemaVersion": "caut.v1", "generatedAt": "2026-01-20T12:00:00Z", "command": "usage",
                "data": [{"provider": "claude", "account": "Alice@Example.com", "source": "oauth",
                          "usage": {"primary": {"usedPercent": 44.0, "windowMinutes": 300}, "secondary": None,
                                    "updatedAt": "2026-01-20T12:00:00Z"}}],
                "errors": [], "meta": {"format": "json", "flags": [], "runtime": "cli"}}
    caut_box = toolbox_executor(tmp_path / "m1", {"caut": Tool(json.dumps(caut_env))}, "m1")
    caut = run_collector(CautCollector(), caut_box, now=NOW)
    caam = collect(tmp_path, json.dumps(STATUS_OUT), json.dumps(LIMITS_OUT))
    write(store, caut)
    write(store, caam)
    with store.raw_reader() as con:
        got = con.execute(f"""SELECT source, machine_id, used_pct FROM {USAGE}
                              WHERE account_key = 'claude:alice@example.com' AND window_name = 'primary'
                              ORDER BY source""").fetchall()
    assert got == [("caam", "test-host", 42.0), ("caut", "m1", 44.0)]


def test_no_profiles_is_not_a_problem(tmp_path):
    r = collect(tmp_path, json.dumps({"tools": []}), "[]\n")
    assert r.rows == {} and r.warnings == []


def test_limits_truncated_keeps_status(tmp_path):
    text = json.dumps(LIMITS_OUT, indent=2)
    r = collect(tmp_path, json.dumps(STATUS_OUT), text[: len(text) // 2])
    assert len(r.rows[STATUS]) == 3 and USAGE not in r.rows
    assert any("caam limits: not valid JSON" in w for w in r.warnings)


def test_wrong_types(tmp_path):
    limits = json.loads(json.dumps(LIMITS_OUT))
    del limits[0]["usage"]["primary_window"]["utilization"]
    limits[0]["usage"]["primary_window"]["used_percent"] = "42"
    limits[0]["usage"]["secondary_window"]["utilization"] = 0.25  # falls back correctly per field
    limits[1]["usage"]["model_windows"]["gpt-5.1-codex"] = 7
    limits.append("caam")
    st = json.loads(json.dumps(STATUS_OUT))
    st["tools"][1]["logged_in"] = "yes"
    st["tools"][1]["health"]["error_count"] = "none"
    r = collect(tmp_path, json.dumps(st), json.dumps(limits))
    u = usage(r)
    assert u[("claude", "primary")]["used_pct"] is None and u[("claude", "secondary")]["used_pct"] == 25.0
    assert ("codex", "model:gpt-5.1-codex") not in u and ("codex", "primary") in u
    assert status(r)["claude"]["logged_in"] is None and status(r)["claude"]["health_error_count"] is None
    text = " | ".join(r.warnings)
    assert "primary_window.used_percent" in text and "gpt-5.1-codex should be an object" in text
    assert "[3] should be an object" in text and "tools[1].logged_in" in text


def test_garbage_ansi_and_wrong_shapes(tmp_path):
    r = collect(tmp_path, "\x1b[31mError:\x1b[0m vault locked\n", '{"provider": 1, "usage": []}')
    assert STATUS not in r.rows
    text = " | ".join(r.warnings)
    assert "caam status: not valid JSON" in text and "usage should be an object" in text
    colored = collect(tmp_path, "\x1b[0m" + json.dumps(STATUS_OUT) + "\x1b[0m", json.dumps({"limits": []}),
                      sub="b")
    assert len(colored.rows[STATUS]) == 3
    assert any("expected a JSON array of profiles" in w for w in colored.warnings)


def test_empty_and_nonzero_exit(tmp_path):
    r = collect(tmp_path, "", "", exit_code=1)
    assert r.rows == {}
    assert "caam status: empty output" in r.warnings and "caam limits: empty output" in r.warnings
    assert any("`caam limits --format json` exited 1 and printed no usable payload" in w for w in r.warnings)
    partial = collect(tmp_path, json.dumps(STATUS_OUT), json.dumps(LIMITS_OUT), exit_code=2, sub="b")
    assert len(partial.rows[USAGE]) == 5 and any("exited 2" in w for w in partial.warnings)


def test_insert_and_reinsert(tmp_path, store):
    r = collect(tmp_path, json.dumps(STATUS_OUT), json.dumps(LIMITS_OUT))
    assert write(store, r).inserted == {STATUS: 3, USAGE: 5}
    assert write(store, r).rows == 0
    with store.raw_reader() as con:
        n = con.execute(f"SELECT count(DISTINCT account_key) FROM {USAGE} WHERE source = 'caam'"
                        ).fetchone()[0]
        h = con.execute(f"SELECT health_status FROM {STATUS} WHERE tool = 'codex'").fetchone()[0]
    assert n == 3 and h == "warning"

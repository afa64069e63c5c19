"""caut usage: the caut.v1 envelope into account_usage_snapshots, account keys, errors, bad output."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from collectors.caut import CautCollector
from tests.toolbox import Tool, run_collector, toolbox_executor
from workbench.store import Batch

NOW = datetime(2026, 1, 18, 12, 1, tzinfo=UTC)
TABLE = "account_usage_snapshots"

# Verbatim from caut.md ("Second example", tests/schema_contract_test.rs::test_provider_payload_full).
CONTRACT = {
    "schemaVersion": "caut.v1", "generatedAt": "2026-01-18T10:30:00Z", "command": "usage",
    "data": [{"provider": "claude", "account": "test@example.com", "version": "1.0.0", "source": "oauth",
              "status": {"indicator": "none", "description": "All systems operational",
                         "url": "https://status.anthropic.com"},
              "usage": {"primary": {"usedPercent": 30.0, "windowMinutes": 180,
                                    "resetsAt": "2026-01-18T12:30:00Z", "resetDescription": "in 2 hours"},
                        "secondary": {"usedPercent": 15.0, "windowMinutes": 10080,
                                      "resetDescription": "in 5 days"},
                        "updatedAt": "2026-01-18T10:30:00Z",
                        "identity": {"accountEmail": "test@example.com", "loginMethod": "oauth"}}}],
    "errors": [], "meta": {"format": "json", "flags": [], "runtime": "cli"}}


@pytest.fixture(scope="module")
def readme(formats_dir: Path) -> str:
    return (formats_dir / "caut.example.json").read_text()


def collect(tmp_path: Path, stdout: str | bytes, exit_code: int = 0, machine_id: str = "test-host"):
    """`caut usage` only (cost off): the usage tests below."""
    tools = {"caut": Tool(stdout=stdout, exit_code=exit_code)}
    ex = toolbox_executor(tmp_path / machine_id, tools, machine_id)
    return run_collector(CautCollector(), ex, now=NOW, options={"caut_cost_every_minutes": 0})


def collect_both(tmp_path: Path, usage: str | bytes, cost: str | bytes, now: datetime = NOW,
                 cursor: dict | None = None, **options):
    tools = {"caut": Tool(by_subcommand={"usage": usage, "cost": cost})}
    ex = toolbox_executor(tmp_path, tools, "test-host")
    return run_collector(CautCollector(), ex, now=now, cursor=cursor, options=options)


def windows(result) -> dict[str, dict]:
    return {r["window_name"]: r for r in result.rows.get(TABLE, [])}


def write(store, result):
    b = Batch()
    for table, rows in result.rows.items():
        # pyarrow takes a batch's columns from its first row: every row must carry the same keys.
        assert len({frozenset(r) for r in rows}) == 1, f"{table}: rows with different columns"
        b.add_rows(table, rows)
    return store.write(b)


def test_required_tool():
    assert CautCollector.required_tool == "caut"


def test_readme_payload(tmp_path, readme):
    r = collect(tmp_path, readme)
    assert r.warnings == []
    w = windows(r)
    assert set(w) == {"primary", "secondary"}  # "tertiary": null is no window
    p = w["primary"]
    assert p["provider"] == "codex" and p["account_key"] == "codex:user@example.com"
    assert p["account_email"] == "user@example.com" and p["login_method"] == "google"
    assert p["used_pct"] == 28.0 and p["window_minutes"] == 180
    assert p["resets_at"] == datetime(2026, 1, 18, 14, 15, tzinfo=UTC)
    assert p["reported_at"] == datetime(2026, 1, 18, 12, 0, tzinfo=UTC)
    assert p["fetch_method"] == "openai-web" and p["provider_status"] == "none"
    assert p["credits_remaining"] == 112.4
    assert p["source"] == "caut" and p["collected_at"] == NOW
    s = w["secondary"]
    assert (s["used_pct"], s["window_minutes"]) == (59.0, 10080)
    assert s["resets_at"] == datetime(2026, 1, 24, 9, 0, tzinfo=UTC)
    assert json.loads(s["raw_json"])["version"] == "0.6.0"


def test_contract_payload(tmp_path):
    r = collect(tmp_path, json.dumps(CONTRACT))
    assert r.warnings == []
    w = windows(r)
    assert w["primary"]["account_key"] == "claude:test@example.com"
    assert w["primary"]["reset_description"] == "in 2 hours" and w["primary"]["used_pct"] == 30.0
    assert w["secondary"]["resets_at"] is None and w["secondary"]["reset_description"] == "in 5 days"
    assert w["primary"]["fetch_method"] == "oauth" and w["primary"]["credits_remaining"] is None


def test_account_key_is_global_for_emails_and_local_otherwise(tmp_path):
    upper = json.loads(json.dumps(CONTRACT))
    upper["data"][0]["account"] = upper["data"][0]["usage"]["identity"]["accountEmail"] = " Test@Example.COM "
    anon = json.loads(json.dumps(CONTRACT))
    del anon["data"][0]["account"], anon["data"][0]["usage"]["identity"]
    a = windows(collect(tmp_path, json.dumps(CONTRACT), machine_id="alpha"))["primary"]["account_key"]
    b = windows(collect(tmp_path, json.dumps(upper), machine_id="beta"))["primary"]["account_key"]
    assert a == b == "claude:test@example.com"
    c = windows(collect(tmp_path, json.dumps(anon), machine_id="alpha"))["primary"]["account_key"]
    d = windows(collect(tmp_path, json.dumps(anon), machine_id="beta"))["primary"]["account_key"]
    assert c == "claude:unknown@alpha" and d == "claude:unknown@beta"


def test_provider_errors_become_warnings_and_windowless_accounts_a_row(tmp_path, store):
    env = json.loads(json.dumps(CONTRACT))
    env["data"].append({"provider": "gemini", "account": "g@example.com", "source": "cli",
                        "usage": {"primary": None, "secondary": None, "updatedAt": "2026-01-18T10:30:00Z"},
                        "authWarning": "token expires in 10 minutes"})
    env["errors"] = ["Failed to fetch codex: timeout"]
    env["errorDetails"] = [{"provider": "codex", "finalError": "timeout after 30s", "errorCode": "E_TIMEOUT",
                            "retryable": True, "attempts": []}]
    r = collect(tmp_path, json.dumps(env))
    gem = [x for x in r.rows[TABLE] if x["provider"] == "gemini"]
    assert len(gem) == 1 and gem[0]["window_name"] == "none" and gem[0]["used_pct"] is None
    assert gem[0]["auth_warning"] == "token expires in 10 minutes"
    assert r.warnings == ["caut: codex failed [E_TIMEOUT] (retryable): timeout after 30s"]
    assert write(store, r).inserted == {TABLE: 3}


def test_unknown_schema_version_keeps_rows(tmp_path):
    env = {**CONTRACT, "schemaVersion": "caut.v2"}
    r = collect(tmp_path, json.dumps(env))
    assert len(r.rows[TABLE]) == 2 and json.loads(r.rows[TABLE][0]["raw_json"])["provider"] == "claude"
    assert any("unknown schemaVersion 'caut.v2'" in w for w in r.warnings)


def test_ntm_mock_shape_is_refused(tmp_path):
    mock = {"schema_version": "caut.v1", "command": "usage", "timestamp": "2026-01-18T10:30:00Z",
            "data": {"payloads": [{"provider": "claude",
                                   "usage": {"primary_rate_window": {"used_percent": 45.0}}}]}}
    r = collect(tmp_path, json.dumps(mock))
    assert r.rows == {} and any("ntm's mock" in w for w in r.warnings)


def test_truncated(tmp_path, readme):
    r = collect(tmp_path, readme[:400])
    assert r.rows == {} and any("caut usage: not valid JSON" in w for w in r.warnings)


def test_wrong_types(tmp_path):
    env = json.loads(json.dumps(CONTRACT))
    env["data"][0]["usage"]["primary"]["usedPercent"] = "30%"
    env["data"][0]["usage"]["primary"]["resetsAt"] = "soon"
    env["data"][0]["usage"]["secondary"] = "weekly"
    env["data"].append(42)
    r = collect(tmp_path, json.dumps(env))
    w = windows(r)
    assert set(w) == {"primary"} and w["primary"]["used_pct"] is None and w["primary"]["resets_at"] is None
    assert w["primary"]["window_minutes"] == 180
    (msg,) = r.warnings
    assert "primary.usedPercent" in msg and "primary.resetsAt" in msg and "secondary" in msg
    assert "data[1]" in msg


def test_ansi_and_garbage(tmp_path, readme):
    r = collect(tmp_path, "\x1b[2K\x1b[1G" + readme.replace("\n", "\x1b[0m\n"))
    assert len(r.rows[TABLE]) == 2 and r.warnings == []
    junk = collect(tmp_path, b"\xff\xfe\x00 Error: keyring locked\n", machine_id="junk")
    assert junk.rows == {} and any("not valid JSON" in w for w in junk.warnings)


def test_empty_and_nonzero_exit(tmp_path, readme):
    r = collect(tmp_path, "", exit_code=1)
    assert r.rows == {}
    assert "caut usage: empty output" in r.warnings
    assert any("exited 1 and printed no" in w for w in r.warnings)
    kept = collect(tmp_path, readme, exit_code=2, machine_id="other")
    assert len(kept.rows[TABLE]) == 2 and any("exited 2" in w for w in kept.warnings)


def test_insert_and_reinsert(tmp_path, store, readme):
    r = collect(tmp_path, readme)
    assert write(store, r).inserted == {TABLE: 2}
    assert write(store, r).rows == 0
    with store.raw_reader() as con:
        got = con.execute(f"SELECT window_name, used_pct, resets_at FROM {TABLE} ORDER BY window_name"
                          ).fetchall()
    assert [(g[0], g[1]) for g in got] == [("primary", 28.0), ("secondary", 59.0)]
    assert got[0][2] == datetime(2026, 1, 18, 14, 15, tzinfo=UTC)


# ---------------------------------------------------------------- caut cost

COST = (Path(__file__).resolve().parents[2] / "sample_data" / "upstream_templates"
        / "caut.cost.reconstructed.json").read_text()


def test_cost_days_per_provider(tmp_path, readme, store):
    r = collect_both(tmp_path, readme, COST)
    assert r.warnings == []
    rows = {(x["provider"], x["day"].isoformat()): x for x in r.rows["account_cost_daily"]}
    assert sorted(rows) == [("claude", "2026-01-16"), ("claude", "2026-01-17"), ("claude", "2026-01-18"),
                            ("codex", "2026-01-17"), ("codex", "2026-01-18")]
    c = rows[("claude", "2026-01-17")]
    assert c["total_cost_usd"] == 16.95 and c["total_tokens"] == 8339342 and c["cache_read_tokens"] == 7340021
    assert c["models_used"] == ["claude-sonnet-4-5", "claude-haiku-4-5"] and c["fetch_method"] == "local"
    assert c["reported_at"] == datetime(2026, 1, 18, 12, 0, tzinfo=UTC)
    assert rows[("codex", "2026-01-18")]["cache_creation_tokens"] is None  # not reported: NULL, not 0
    assert len(r.rows[TABLE]) == 2  # usage still read
    assert r.cursor["cost_at"] == NOW.isoformat() and r.cursor["cost_seen"]["codex|2026-01-18"] == [3.44, 1451569]
    assert write(store, r).inserted["account_cost_daily"] == 5


def test_cost_runs_every_n_minutes_and_writes_only_changed_days(tmp_path, readme):
    first = collect_both(tmp_path / "a", readme, COST)
    soon = collect_both(tmp_path / "b", readme, COST, now=NOW + timedelta(minutes=10), cursor=first.cursor)
    assert "account_cost_daily" not in soon.rows and soon.cursor == first.cursor  # not due yet
    grown = json.loads(COST)
    grown["data"][0]["updatedAt"] = "2026-01-18T12:40:00Z"
    grown["data"][0]["daily"][-1].update(totalCost=7.90, totalTokens=3900000)
    later = collect_both(tmp_path / "c", readme, json.dumps(grown), now=NOW + timedelta(minutes=40),
                         cursor=first.cursor)
    (row,) = later.rows["account_cost_daily"]  # only today's claude figure moved
    assert (row["provider"], row["day"].isoformat(), row["total_cost_usd"]) == ("claude", "2026-01-18", 7.90)
    off = collect_both(tmp_path / "d", readme, COST, caut_cost_every_minutes=0)
    assert "account_cost_daily" not in off.rows and off.warnings == []
    bad = collect_both(tmp_path / "e", readme, COST, caut_cost_every_minutes="often")
    assert any("caut_cost_every_minutes" in w for w in bad.warnings) and bad.rows["account_cost_daily"]


@pytest.mark.parametrize("cost, expect", [
    ("error: unknown command 'cost'", "not valid JSON"),
    ('{"schemaVersion": "caut.v1", "command": "cost", "data": {"payloads": []}}', "`data` should be an array"),
    ('{"schemaVersion": "caut.v2", "command": "cost", "data": []}', "unknown schemaVersion 'caut.v2'"),
])
def test_cost_bad_output_keeps_usage_and_retries(tmp_path, readme, cost: str, expect: str):
    r = collect_both(tmp_path, readme, cost)
    assert len(r.rows[TABLE]) == 2 and "account_cost_daily" not in r.rows
    assert any(w.startswith("caut cost") and expect in w for w in r.warnings), r.warnings
    assert "cost_at" not in r.cursor  # not marked done: the next cycle asks again


def test_cost_bad_days_are_named(tmp_path, readme):
    env = json.loads(COST)
    env["data"][0]["daily"][0]["date"] = "16/01/2026"
    env["data"][0]["daily"][1]["totalCost"] = "$16.95"
    del env["data"][1]["updatedAt"]  # falls back to the envelope's generatedAt
    r = collect_both(tmp_path, readme, json.dumps(env))
    rows = {(x["provider"], x["day"].isoformat()): x for x in r.rows["account_cost_daily"]}
    assert ("claude", "2026-01-16") not in rows and rows[("claude", "2026-01-17")]["total_cost_usd"] is None
    assert rows[("codex", "2026-01-17")]["reported_at"] == datetime(2026, 1, 18, 12, 0, tzinfo=UTC)
    (msg,) = [w for w in r.warnings if w.startswith("caut cost")]
    assert "daily[0].date should be YYYY-MM-DD" in msg and "daily[1].totalCost" in msg

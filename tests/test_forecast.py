"""Forecasts: disk-full ETA, rate-window time-to-limit (reset-aware, merged across machines), the
build queue, the predictions job, and the demo fleet's filling disk.

Usage rows come from `caut usage --json` payloads shaped like upstream_formats/caut.example.json,
parsed by the caut collector; filesystem, rch and demo rows go through `Store.write`, as the daemon's do.
"""

from __future__ import annotations

import copy
import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from collectors.caut import CautCollector, parse_usage
from sample_data import demo_fleet as demo
from workbench.store import Batch, Store
from workbench.views import forecast as fc
from workbench.views.forecast_job import run_forecast_job

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
GiB = 1024**3


# ------------------------------------------------------------------------------------------ helpers


def fs_rows(machine_id: str, mount: str, values: list[float], end: datetime = NOW, step_min: int = 5,
            total: int = 1000 * GiB) -> list[dict]:
    start = end - timedelta(minutes=step_min * (len(values) - 1))
    return [{"machine_id": machine_id, "ts": start + timedelta(minutes=step_min * i), "mount": mount,
             "source": "system", "source_version": "1", "schema_version": 1, "device": "/dev/sdb1",
             "fstype": "ext4", "total_bytes": total, "used_bytes": int(total * v / 100),
             "free_bytes": total - int(total * v / 100), "used_pct": float(v)} for i, v in enumerate(values)]


def write(store: Store, table: str, rows: list[dict]) -> int:
    b = Batch()
    b.add_rows(table, rows)
    return store.write(b).inserted.get(table, 0)


@pytest.fixture(scope="module")
def template(formats_dir: Path) -> dict:
    return json.loads((formats_dir / "caut.example.json").read_text())


def caut_text(template: dict, at: datetime, accounts: list[dict]) -> str:
    """A `caut usage --json` envelope: accounts = [{provider, email, primary: (pct, resets_at), secondary?}]."""
    env = copy.deepcopy(template)
    env["generatedAt"] = at.isoformat().replace("+00:00", "Z")
    data = []
    for a in accounts:
        p = copy.deepcopy(template["data"][0])
        p["provider"], p["account"] = a["provider"], a["email"]
        usage = p["usage"]
        for name in ("primary", "secondary"):
            if name in a:
                pct, resets = a[name]
                usage[name] = {"usedPercent": pct, "windowMinutes": 300 if name == "primary" else 10080,
                               "resetsAt": resets.isoformat().replace("+00:00", "Z")}
            else:
                usage[name] = None
        usage["updatedAt"] = at.isoformat().replace("+00:00", "Z")
        usage["identity"] = {"accountEmail": a["email"], "loginMethod": "oauth"}
        data.append(p)
    env["data"] = data
    return json.dumps(env)


def write_caut(store: Store, template: dict, machine_id: str, at: datetime, accounts: list[dict]) -> int:
    rows, warnings = parse_usage(caut_text(template, at, accounts), machine_id, at, CautCollector().stamp)
    assert warnings == [] and rows
    return write(store, "account_usage_snapshots", rows)


def forecasts(store: Store, fn, now: datetime = NOW, **kw) -> pd.DataFrame:
    with store.reader() as con:
        return fn(con, now, **kw)


def one(df: pd.DataFrame, subject: str) -> pd.Series:
    rows = df[df["subject"] == subject]
    assert len(rows) == 1, f"{subject}: {len(rows)} rows in {list(df['subject'])}"
    return rows.iloc[0]


# ------------------------------------------------------------------------------------------ disk


def test_linear_fill_eta_within_interval(store):
    # 6 h of readings every 5 min, +2 %/h from 60 % to 72 %: 100 % is 14 h after the last reading.
    values = [60.0 + 2.0 * i * 5 / 60 for i in range(73)]
    write(store, "sys_filesystems", fs_rows("m1", "/data", values))
    r = one(forecasts(store, fc.disk_forecasts), "m1:/data")
    truth = NOW + timedelta(hours=14)
    assert r["status"] == "filling"
    assert r["made_at"] == pd.Timestamp(NOW)
    assert abs((r["eta"] - truth).total_seconds()) < 60
    assert r["eta_low"] <= truth <= r["eta_high"]
    assert r["slope_per_hour"] == pytest.approx(2.0, rel=1e-6)
    inputs = json.loads(r["inputs_json"])
    assert inputs["n_points"] >= 6 and inputs["window_s"] > 0 and inputs["slope_per_hour"] == pytest.approx(2.0)
    assert json.loads(r["details_json"])["bytes_per_hour"] == pytest.approx(0.02 * 1000 * GiB, rel=1e-3)
    assert 0.9 < r["confidence"] <= 1.0


def test_noise_widens_interval():
    t = np.arange(0, 6 * 3600 + 1, 300.0) + NOW.timestamp() - 6 * 3600
    clean = 60.0 + 2.0 * (t - t[0]) / 3600
    noisy = clean + np.random.default_rng(3).normal(0.0, 1.0, len(t))
    a = fc.disk_forecast_series("m", "/", t, clean)
    b = fc.disk_forecast_series("m", "/", t, noisy)
    width = {k: (r["eta_high"] - r["eta_low"]).total_seconds() for k, r in (("clean", a), ("noisy", b))}
    assert width["noisy"] > 5 * max(width["clean"], 60.0)
    truth = pd.Timestamp(t[-1] + 14 * 3600, unit="s", tz="UTC")
    assert b["eta_low"] <= truth <= b["eta_high"]
    assert b["confidence"] < a["confidence"]


def test_not_filling_and_stale(store):
    write(store, "sys_filesystems", fs_rows("m1", "/", [70.0 - 0.01 * i for i in range(60)]))
    write(store, "sys_filesystems", fs_rows("old", "/", [50.0 + i for i in range(20)], end=NOW - timedelta(hours=3)))
    df = forecasts(store, fc.disk_forecasts)
    r = one(df, "m1:/")
    assert r["status"] == "not filling" and pd.isna(r["eta"]) and pd.isna(r["eta_high"])
    assert "old:/" not in set(df["subject"])  # no reading in the last hour: no forecast


def test_demo_fleet_disk_filling_and_quiet_machines(store):
    end = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
    summary = demo.generate(store, days=1, machines=12, seed=7, end=end)
    ep = next(e for e in summary.episodes if e.kind == "disk_filling")
    silent = next(e for e in summary.episodes if e.kind == "silent")
    df = forecasts(store, fc.disk_forecasts, now=end)
    filling = one(df, f"{ep.machine_id}:/data")
    assert filling["status"] == "filling"
    assert end < filling["eta"] < end + timedelta(hours=2)
    assert filling["eta_low"] <= filling["eta"] <= filling["eta_high"]
    quiet = df[df["subject"] != f"{ep.machine_id}:/data"]
    assert len(quiet) >= 15
    assert not any(quiet["machine_id"] == silent.machine_id)  # silent for 3 h: stale, no forecast
    for r in quiet.itertuples():
        assert r.status == "not filling" or r.eta - end > timedelta(hours=24), (r.subject, r.status, r.eta)


# ------------------------------------------------------------------------------------------ rate limits


def usage_series(store: Store, template: dict, machine_id: str, email: str, values: list[float], resets_at: datetime,
                 end: datetime = NOW, step_min: int = 5, offset_min: int = 0, provider: str = "claude",
                 secondary: tuple[float, datetime] | None = None) -> None:
    for i, v in enumerate(values):
        at = end - timedelta(minutes=step_min * (len(values) - 1 - i) + offset_min)
        acct = {"provider": provider, "email": email, "primary": (v, resets_at)}
        if secondary:
            acct["secondary"] = secondary
        write_caut(store, template, machine_id, at, [acct])


def test_rate_limit_reaches_limit_with_eta(store, template):
    # +20 %/h for 2 h up to 60 %: the limit in 2 h, the window resets in 4 h.
    usage_series(store, template, "m1", "alice@example.com", [20.0 + 20 * i * 5 / 60 for i in range(25)],
                 NOW + timedelta(hours=4))
    r = one(forecasts(store, fc.rate_limit_forecasts), "claude:alice@example.com/primary")
    truth = NOW + timedelta(hours=2)
    assert r["status"] == "reaches limit"
    assert abs((r["eta"] - truth).total_seconds()) < 120
    assert r["eta_low"] <= truth <= r["eta_high"]
    assert r["horizon_s"] == pytest.approx(4 * 3600)
    assert r["action"] in ("slow down", "prepare swap")
    assert json.loads(r["details_json"])["resets_at"].startswith("2026-03-02T16:00")


def test_reset_before_limit_is_resets_first(store, template):
    # +10 %/h up to 30 %: the limit would be 7 h away, but the window resets in 1 h.
    usage_series(store, template, "m1", "alice@example.com", [10.0 + 10 * i * 5 / 60 for i in range(25)],
                 NOW + timedelta(hours=1))
    r = one(forecasts(store, fc.rate_limit_forecasts), "claude:alice@example.com/primary")
    assert r["status"] == "resets first"
    assert r["eta"] > NOW + timedelta(hours=1)
    assert r["action"] == "continue"
    # After the reset time, with no newer report, the figure is stale.
    later = forecasts(store, fc.rate_limit_forecasts, now=NOW + timedelta(hours=1, minutes=5))
    assert one(later, "claude:alice@example.com/primary")["status"] == "reset passed"


def test_fast_rise_is_swap_now(store, template):
    usage_series(store, template, "m1", "alice@example.com", [40.0 + 5 * i for i in range(12)],
                 NOW + timedelta(hours=3))  # +60 %/h, at 95 %: the limit in 5 minutes
    r = one(forecasts(store, fc.rate_limit_forecasts), "claude:alice@example.com/primary")
    assert r["status"] == "reaches limit" and r["action"] == "swap now"
    assert r["eta"] < NOW + timedelta(minutes=15)


def test_reset_detected_from_a_drop(store, template):
    # No usable resets_at (the tool's is in the past for every report): the drop at 11:00 is the reset.
    stale = NOW - timedelta(hours=5)
    before = [50.0 + i for i in range(25)]             # 09:00 .. 11:00 minus 5 min, up to 74 %
    after = [2.0 + 3.0 * i for i in range(13)]         # 11:00 .. 12:00, +36 %/h from 2 %
    usage_series(store, template, "m1", "bob@example.com", before + after, stale)
    r = one(forecasts(store, fc.rate_limit_forecasts), "claude:bob@example.com/primary")
    inputs = json.loads(r["inputs_json"])
    assert inputs["window_since_reset_start"].startswith("2026-03-02T11:00")
    assert r["slope_per_hour"] == pytest.approx(36.0, rel=0.01)
    assert r["level"] == pytest.approx(38.0, abs=0.5)
    assert json.loads(r["details_json"])["resets_seen"][-1]["reason"] == "usage dropped"


def test_same_account_from_two_machines_is_one_account(store, template):
    values = [20.0 + 20 * i * 5 / 60 for i in range(25)]
    resets = NOW + timedelta(hours=4)
    usage_series(store, template, "m1", "alice@example.com", values, resets)
    # m2 sees the same account two minutes later each time (it is one quota: same figures, later).
    usage_series(store, template, "m2", "Alice@Example.com", values, resets, offset_min=-2,
                 end=NOW - timedelta(minutes=2))
    df = forecasts(store, fc.rate_limit_forecasts)
    assert list(df["subject"]) == ["claude:alice@example.com/primary"]
    r = df.iloc[0]
    assert r["level"] == pytest.approx(60.0, abs=0.5)       # not 120: nothing is summed
    assert r["slope_per_hour"] == pytest.approx(20.0, rel=0.05)
    details = json.loads(r["details_json"])
    assert details["machines"] == ["m1", "m2"]
    assert details["per_machine_usage"] is False and "account-wide" in details["note"]
    by = {b["machine_id"]: b for b in details["breakdown"]}
    assert by["m1"]["last_used_pct"] == pytest.approx(60.0) and by["m2"]["reports"] == 25
    assert json.loads(r["inputs_json"])["n_points"] >= 25


def test_per_machine_velocity_split_from_burn_rates(store):
    rows = []
    for i in range(13):
        at = NOW - timedelta(minutes=5 * (12 - i))
        for machine, burn in (("m1", 30000.0), ("m2", 10000.0)):
            rows.append({"machine_id": machine, "collected_at": at, "source": "caam",
                         "account_key": "claude:alice@example.com", "window_name": "primary",
                         "source_version": "1", "schema_version": 1, "provider": "claude",
                         "used_pct": 10.0 + 4.0 * i, "window_minutes": 300, "resets_at": NOW + timedelta(hours=3),
                         "reported_at": at, "burn_tokens_per_hour": burn})
    write(store, "account_usage_snapshots", rows)
    r = one(forecasts(store, fc.rate_limit_forecasts), "claude:alice@example.com/primary")
    details = json.loads(r["details_json"])
    assert details["per_machine_usage"] is True
    by = {b["machine_id"]: b for b in details["breakdown"]}
    assert by["m1"]["velocity_share"] == pytest.approx(0.75) and by["m2"]["velocity_share"] == pytest.approx(0.25)
    assert by["m1"]["velocity_pct_per_hour"] == pytest.approx(0.75 * 48.0, rel=0.01)


def test_best_alternative_account(store, template):
    resets = NOW + timedelta(hours=2)
    weekly = NOW + timedelta(days=3)
    for i in range(6):
        at = NOW - timedelta(minutes=5 * (5 - i))
        write_caut(store, template, "m1", at, [
            {"provider": "claude", "email": "alice@example.com", "primary": (85.0 + i, resets),
             "secondary": (40.0, weekly)},
            {"provider": "claude", "email": "bob@example.com", "primary": (50.0, resets), "secondary": (30.0, weekly)},
            # carol's session window is empty, but her weekly window is nearly spent: 5 % headroom.
            {"provider": "claude", "email": "carol@example.com", "primary": (10.0, resets),
             "secondary": (95.0, weekly)},
            {"provider": "codex", "email": "dev@example.com", "primary": (0.0, resets), "secondary": (0.0, weekly)},
        ])
    df = forecasts(store, fc.rate_limit_forecasts)
    alice = json.loads(one(df, "claude:alice@example.com/primary")["details_json"])
    assert alice["alternative"] == {"account_key": "claude:bob@example.com", "headroom_pct": 50.0,
                                    "limiting_window": "primary"}
    assert alice["account_headroom_pct"] == pytest.approx(10.0)
    bob = json.loads(one(df, "claude:bob@example.com/primary")["details_json"])
    assert bob["alternative"] is None and "no other account" in bob["alternative_note"]


# ------------------------------------------------------------------------------------------ queue, cost


def test_queue_growth_from_rch_metrics(store):
    rows = [{"machine_id": "farm", "ts": NOW - timedelta(minutes=2 * (30 - i)), "metric": "rch_build_queue_depth",
             "labels_json": "{}", "source": "rch", "source_version": "1", "schema_version": 1,
             "value": float(i // 2)} for i in range(31)]  # +15 builds/h, 15 waiting now
    write(store, "rch_metrics", rows)
    r = one(forecasts(store, fc.queue_forecasts, queue_limit=30.0), "farm")
    assert r["status"] == "growing" and r["slope_per_hour"] == pytest.approx(15.0, rel=0.1)
    assert NOW + timedelta(minutes=45) < r["eta"] < NOW + timedelta(minutes=90)
    assert forecasts(store, fc.queue_forecasts, now=NOW + timedelta(hours=2)).empty  # stale: nothing


def cost_row(machine: str, provider: str, day: str, at_min: int, usd: float | None, tokens: int) -> dict:
    return {"machine_id": machine, "provider": provider, "day": date.fromisoformat(day),
            "reported_at": NOW - timedelta(minutes=at_min), "source": "caut", "source_version": "1",
            "schema_version": 1, "total_cost_usd": usd, "total_tokens": tokens}


def test_cost_per_day_latest_report_per_machine_summed_over_machines(store):
    with store.reader() as con:
        assert fc.cost_per_day(con).execute().empty  # nothing reported: no rows, not zeros
    write(store, "account_cost_daily", [
        cost_row("m1", "claude", "2026-09-01", 90, 10.0, 100), cost_row("m1", "claude", "2026-09-01", 30, 12.5, 150),
        cost_row("m2", "claude", "2026-09-01", 20, 4.0, 40),  # another machine's own logs: adds up
        cost_row("m1", "claude", "2026-08-31", 30, 20.0, 200), cost_row("m2", "codex", "2026-09-01", 20, 3.0, 30),
        cost_row("m2", "codex", "2026-08-31", 20, None, 10),  # no figure: no row for that day
    ])
    with store.reader() as con:
        got = fc.cost_per_day(con).execute()
        only_m2 = fc.cost_per_day(con, machine_ids=["m2"]).execute()
        recent = fc.cost_per_day(con, since=date(2026, 9, 1)).execute()
    by = {(r.provider, str(r.day)[:10]): (r.cost_usd, r.tokens, r.machines) for r in got.itertuples()}
    assert by == {("claude", "2026-08-31"): (20.0, 200, 1), ("claude", "2026-09-01"): (16.5, 190, 2),
                  ("codex", "2026-09-01"): (3.0, 30, 1)}
    assert only_m2["cost_usd"].sum() == 7.0 and {str(d)[:10] for d in recent["day"]} == {"2026-09-01"}


# ------------------------------------------------------------------------------------------ the job


def test_job_writes_once(store, template):
    write(store, "sys_filesystems", fs_rows("m1", "/data", [60.0 + 0.2 * i for i in range(60)]))
    usage_series(store, template, "m1", "alice@example.com", [20.0 + 2 * i for i in range(12)],
                 NOW + timedelta(hours=4))
    n = run_forecast_job(store, NOW)
    assert n == 2
    with store.raw_reader() as con:
        rows = con.execute("SELECT kind, subject, made_at, status, eta, inputs_json, action FROM predictions "
                           "ORDER BY kind").fetchall()
    assert [(r[0], r[1]) for r in rows] == [("disk_full", "m1:/data"),
                                            ("rate_limit", "claude:alice@example.com/primary")]
    assert all(r[2] == NOW for r in rows) and all(r[4] is not None for r in rows)
    assert json.loads(rows[0][5])["n_points"] > 0 and rows[1][6] in fc.ACTIONS
    assert run_forecast_job(store, NOW) == 0
    assert run_forecast_job(store, NOW + timedelta(minutes=1)) == 0  # no new data: same made_at, nothing new
    with store.raw_reader() as con:
        assert con.execute("SELECT count(*) FROM predictions").fetchone()[0] == 2

"""cloud_benchmarker collector: its API served by a real HTTP server on loopback, fetched by the real curl."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from collectors.base import Limits
from collectors.cloud_benchmarker import CloudBenchmarkerCollector, narrower, parse_rows, period_for
from collectors.executors.local import LocalExecutor
from tests.http_server import Served, closed_port_url, serve
from tests.toolbox import run_collector
from workbench.store import Batch

TEMPLATES = Path(__file__).resolve().parents[2] / "sample_data" / "upstream_templates"
NOW = datetime(2026, 12, 1, 0, 0, tzinfo=UTC)


def raw_rows() -> list[dict]:
    return json.loads((TEMPLATES / "cloud_benchmarker.raw.reconstructed.json").read_text())


def overall_rows() -> list[dict]:
    return json.loads((TEMPLATES / "cloud_benchmarker.overall.reconstructed.json").read_text())


@pytest.fixture
def api():
    with serve({"/data/raw/": json.dumps(raw_rows()), "/data/overall/": json.dumps(overall_rows())}) as s:
        yield s


def collect(url: str, cursor: dict | None = None, now: datetime = NOW, limits: Limits | None = None, **opts):
    return run_collector(CloudBenchmarkerCollector(), LocalExecutor("control"), cursor=cursor, now=now,
                         limits=limits or Limits(timeout_s=10),
                         options={"cloud_benchmarker_url": url, **opts})


def write(store, result) -> dict[str, int]:
    b = Batch()
    for table, rows in result.rows.items():
        b.add_rows(table, rows)
    return store.write(b).inserted


def test_reads_both_endpoints(api: Served):
    res = collect(api.base)
    assert res.warnings == []
    assert api.requests == ["/data/raw/", "/data/overall/"]  # first read: the whole history
    subs = res.rows["benchmark_subscores"]
    assert len(subs) == 4 and [r["run_at"] for r in subs] == sorted(r["run_at"] for r in subs)
    nyc = [r for r in subs if r["host"] == "vps-nyc-2"]
    assert nyc[-1]["cpu_events_per_second"] == 1688.3 and nyc[-1]["fileio_reads_per_second"] == 640.12
    assert nyc[-1]["mutex_avg_latency_ms"] == 4.75 and nyc[-1]["threads_avg_latency_ms"] == 2.11
    assert nyc[-1]["memory_mib_transferred"] == 39877.4 and nyc[-1]["ip_address"] == "198.51.100.7"
    assert nyc[-1]["run_at"] == datetime(2026, 11, 30, 12, 0, 9, 4121, tzinfo=UTC)
    assert nyc[-1]["server_row_id"] == 44 and json.loads(nyc[-1]["raw_json"])["id"] == 44
    scores = {(r["host"], r["run_at"].hour): r["overall_score"] for r in res.rows["benchmark_overall_scores"]}
    assert scores == {("vps-fra-1", 6): 100.0, ("vps-nyc-2", 6): 0.0, ("vps-fra-1", 12): 100.0,
                      ("vps-nyc-2", 12): 0.0}
    assert all(r["machine_id"] == "control" and r["source"] == "cloud_benchmarker" for r in subs)
    assert res.cursor == {"raw": "2026-11-30T12:00:09.004121+00:00",
                          "overall": "2026-11-30T12:00:09.021877+00:00"}


def test_server_time_zone_option(api: Served):
    res = collect(api.base, cloud_benchmarker_timezone="Europe/Berlin")
    assert res.warnings == []
    first = res.rows["benchmark_subscores"][0]
    assert first["run_at"] == datetime(2026, 11, 30, 5, 0, 14, 512733, tzinfo=UTC)  # 06:00 CET
    bad = collect(api.base, cloud_benchmarker_timezone="Mars/Olympus")
    assert any("unknown time zone 'Mars/Olympus'" in w for w in bad.warnings)
    assert bad.rows["benchmark_subscores"][0]["run_at"].hour == 6  # read as UTC, rows still kept


def test_next_cycle_asks_a_period_and_adds_only_new_runs(api: Served, store):
    first = collect(api.base)
    assert write(store, first) == {"benchmark_subscores": 4, "benchmark_overall_scores": 4}
    newer = raw_rows() + [{**raw_rows()[1], "id": 45, "datetime": "2026-11-30T18:00:11.000001",
                           "cpu_speed_test__events_per_second": 1201.0}]
    api.set("/data/raw/", json.dumps(newer))
    api.requests.clear()
    second = collect(api.base, cursor=first.cursor, now=NOW + timedelta(hours=1))
    assert api.requests == ["/data/raw/?time_period=last_7_days", "/data/overall/?time_period=last_7_days"]
    # Runs older than the cursor are not re-emitted; the cursor's own run is (the key dedupes it).
    assert {r["run_at"].hour for r in second.rows["benchmark_subscores"]} == {12, 18}
    assert write(store, second) == {"benchmark_subscores": 1, "benchmark_overall_scores": 0}
    assert second.cursor["raw"].startswith("2026-11-30T18:00:11")
    assert second.cursor["overall"] == first.cursor["overall"]
    with store.raw_reader() as con:
        got = con.execute("SELECT count(*), min(cpu_events_per_second) FROM benchmark_subscores").fetchone()
    assert got == (5, 1201.0)


def test_period_choice():
    assert period_for(None, NOW) is None
    assert period_for(NOW - timedelta(days=2), NOW) == "last_7_days"
    assert period_for(NOW - timedelta(days=6, hours=12), NOW) == "last_30_days"  # too close to the edge
    assert period_for(NOW - timedelta(days=20), NOW) == "last_30_days"
    assert period_for(NOW - timedelta(days=200), NOW) == "last_year"
    assert period_for(NOW - timedelta(days=400), NOW) is None
    assert [narrower(None), narrower("last_year"), narrower("last_30_days"), narrower("last_7_days")] == \
        ["last_year", "last_30_days", "last_7_days", None]


def test_too_large_history_narrows_the_period(api: Served):
    big = raw_rows() * 1  # the full history: make it larger than the byte limit
    big = [{**r, "id": i, "datetime": f"2025-{1 + i % 12:02d}-01T00:00:{i % 60:02d}"} for i, r in
           enumerate(big * 40)]
    api.set("/data/raw/", json.dumps(big))
    api.set("/data/raw/?time_period=last_year", json.dumps(big))
    api.set("/data/raw/?time_period=last_30_days", json.dumps(raw_rows()))
    limit = len(json.dumps(raw_rows())) + 500
    res = collect(api.base, limits=Limits(timeout_s=10, max_bytes=limit))
    assert api.requests[:3] == ["/data/raw/", "/data/raw/?time_period=last_year",
                                "/data/raw/?time_period=last_30_days"]
    assert sum("asking for last_year instead" in w for w in res.warnings) == 1
    assert sum("asking for last_30_days instead" in w for w in res.warnings) == 1
    assert len(res.rows["benchmark_subscores"]) == 4  # what fits is kept
    assert len(res.rows["benchmark_overall_scores"]) == 4


@pytest.mark.parametrize("body, expect", [
    ("<html><body>Internal Server Error</body></html>", "is not JSON"),
    ('[{"id": 1, "datetime": "2026-11-30T06:00:14", "hostname": "a"', "is not JSON"),
    ('{"error": "Invalid time period"}', "the server answered an error: Invalid time period"),
    ('{"rows": []}', "expected a JSON list of rows, got dict"),
    ("", "is not JSON"),
])
def test_malformed_answers(api: Served, body: str, expect: str):
    api.set("/data/raw/", body)
    res = collect(api.base)
    assert any(expect in w and "/data/raw/" in w for w in res.warnings), res.warnings
    assert "benchmark_subscores" not in res.rows
    assert len(res.rows["benchmark_overall_scores"]) == 4  # the other endpoint is unaffected
    assert "raw" not in res.cursor  # nothing read: the next cycle starts over


def test_bad_rows_and_drift_keep_raw_json(api: Served):
    rows = raw_rows()
    rows[0]["cpu_speed_test__events_per_second"] = "n/a"
    rows[1]["fileio_test__reads_per_second"] = True
    rows[2]["network_test__mbps"] = 912.5  # a metric a newer playbook added
    del rows[3]["hostname"]
    rows.append({**raw_rows()[0]})  # the same (host, run) twice
    api.set("/data/raw/", json.dumps(rows))
    res = collect(api.base)
    subs = res.rows["benchmark_subscores"]
    assert len(subs) == 3
    assert subs[0]["cpu_events_per_second"] is None and json.loads(subs[0]["raw_json"])[
        "cpu_speed_test__events_per_second"] == "n/a"
    assert subs[1]["fileio_reads_per_second"] is None
    assert json.loads(subs[2]["raw_json"])["network_test__mbps"] == 912.5
    joined = "\n".join(res.warnings)
    assert "2 row(s) without hostname/datetime (or repeated) skipped" in joined
    assert "2 non-numeric metric value(s) stored as NULL" in joined
    assert "['network_test__mbps']" in joined


def test_http_error_unreachable_and_hung_server(api: Served):
    api.set("/data/raw/", '{"detail": "boom"}', status=500)
    res = collect(api.base)
    assert any("exited 22" in w and "HTTP error status" in w for w in res.warnings), res.warnings
    assert len(res.rows["benchmark_overall_scores"]) == 4

    down = collect(closed_port_url().rstrip("/"))
    assert sum("not reachable" in w for w in down.warnings) == 2 and down.row_count == 0

    api.set("/data/raw/", json.dumps(raw_rows()), delay_s=30)
    t0 = time.monotonic()
    hung = collect(api.base, limits=Limits(timeout_s=4))
    assert time.monotonic() - t0 < 15
    assert any("/data/raw/" in w and ("timed out" in w or "did not answer in time" in w or "budget" in w)
               for w in hung.warnings), hung.warnings
    assert "benchmark_subscores" not in hung.rows


@pytest.mark.parametrize("url", ["ftp://example", "", 9999, "127.0.0.1:9999"])
def test_bad_url_option(url):
    res = collect(url)  # type: ignore[arg-type]
    assert res.row_count == 0
    assert res.warnings and "must be an http(s) URL" in res.warnings[0]


def test_parse_rows_filters_by_since():
    from zoneinfo import ZoneInfo

    rows, warns = parse_rows(overall_rows(), "overall", ZoneInfo("UTC"),
                             since=datetime(2026, 11, 30, 12, 0, tzinfo=UTC))
    assert warns == [] and {r["run_at"].hour for r in rows} == {12} and len(rows) == 2


def test_daemon_cycles_over_real_ssh(tmp_path: Path):
    """A control node reached over real sshd lists `cloud_benchmarker` in vc.toml: the daemon's cycle
    curls the API on that machine, the second cycle asks only for the last 7 days and adds only the
    new run, and a down API is a warning in collector_runs, not a failed cycle."""
    from collectors.runner import Runner
    from tests.sshd import SshdFleet, write_vc_toml
    from workbench.config import load_config
    from workbench.store import Store

    shift = datetime.now(UTC).replace(tzinfo=None) - timedelta(hours=1) - datetime(2026, 11, 30, 12)

    def recent(rows: list[dict]) -> list[dict]:
        """The template's runs moved to the last hours (the daemon's clock is the real one)."""
        return [{**r, "datetime": (datetime.fromisoformat(r["datetime"]) + shift).isoformat()} for r in rows]

    with serve({"/data/raw/": json.dumps(recent(raw_rows())), "/data/overall/": json.dumps(recent(overall_rows()))}
               ) as api, SshdFleet(tmp_path / "sshd") as fleet:
        srv = fleet.add("control")
        block = fleet.machine_toml(srv, collectors=["probe", "cloud_benchmarker"])
        block += f'[machines.options]\ncloud_benchmarker_url = "{api.base}"\n'
        cfg = load_config(write_vc_toml(tmp_path / "vc.toml", [block], data_dir=tmp_path / "data"))
        store = Store.from_config(cfg)
        store.migrate()
        runner = Runner(cfg, store)
        runner.sync_machines()

        def runs() -> tuple:
            with store.raw_reader() as con:
                return con.execute("SELECT status, rows_written, warnings FROM collector_runs WHERE "
                                   "collector = 'cloud_benchmarker' ORDER BY started_at DESC LIMIT 1").fetchone()

        first = runner.run_cycle()
        assert not first.errors, first.errors
        assert first.inserted.get("benchmark_subscores") == 4 and first.inserted.get("benchmark_overall_scores") == 4
        assert runs()[:2] == ("ok", 8)

        newer = {**raw_rows()[0], "id": 99, "datetime": datetime.now(UTC).replace(tzinfo=None).isoformat()}
        api.set("/data/raw/", json.dumps(recent(raw_rows()) + [newer]))
        api.requests.clear()
        second = runner.run_cycle()
        assert api.requests == ["/data/raw/?time_period=last_7_days", "/data/overall/?time_period=last_7_days"]
        assert second.inserted.get("benchmark_subscores") == 1 and not second.inserted.get("benchmark_overall_scores")

        api.set("/data/raw/", "Internal Server Error", status=500)
        third = runner.run_cycle()
        assert not third.errors
        status, _, warnings = runs()
        assert status in ("ok", "warning") and "HTTP error status" in str(warnings)
        with store.raw_reader() as con:
            assert con.execute("SELECT count(*) FROM benchmark_subscores WHERE machine_id = 'control'"
                               ).fetchone()[0] == 5

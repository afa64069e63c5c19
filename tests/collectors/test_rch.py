"""rch collector: `rch status --json` (rch.md's struct-derived example), history JSONL, Prometheus /metrics.

/metrics is served by a real HTTP server on 127.0.0.1 and fetched by the real curl through the
executor, exactly as in production.
"""

from __future__ import annotations

import copy
import http.server
import json
import re
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from collectors.base import Limits
from collectors.rch import RchCollector, parse_metrics, parse_status
from tests.toolbox import Tool, run_collector, toolbox_executor
from workbench.store import Batch


def write(store, result) -> dict[str, int]:
    b = Batch()
    for table, rows in result.rows.items():
        b.add_rows(table, rows)
    return store.write(b).inserted


@pytest.fixture(scope="module")
def status_example(formats_dir: Path) -> dict:
    """rch.md's reconstructed example (no verbatim payload exists upstream), plus two recent builds."""
    md = (formats_dir / "rch.md").read_text()
    block = re.search(r"### Reconstructed example.*?```json\n(.*?)```", md, re.S)
    assert block, "rch.md example not found"
    payload = json.loads(block[1])
    payload["data"]["daemon"]["recent_builds"] = [
        {"id": 29_410_000_000_000_001, "started_at": "2026-08-22T10:50:00+00:00",
         "completed_at": "2026-08-22T10:51:10+00:00", "project_id": "myproj", "worker_id": "worker-a",
         "command": "cargo build --release", "exit_code": 0, "duration_ms": 70000, "location": "remote",
         "bytes_transferred": 1048576},
        {"id": 29_410_000_000_000_002, "started_at": "2026-08-22T10:55:00+00:00",
         "completed_at": "2026-08-22T10:55:30+00:00", "project_id": "myproj", "worker_id": None,
         "command": "cargo test", "exit_code": 101, "duration_ms": 30000, "location": "local",
         "bytes_transferred": None},
    ]
    return payload


# Exposition text shaped after rch.md's metric table (the code's names and labels, not the docs').
METRICS = """\
# HELP rch_worker_status Worker status (0=down, 1=up, 2=draining)
# TYPE rch_worker_status gauge
rch_worker_status{worker="worker-a",status="healthy"} 1
rch_worker_status{worker="worker-b",status="unreachable"} 0
# HELP rch_worker_slots_available Available slots
# TYPE rch_worker_slots_available gauge
rch_worker_slots_available{worker="worker-a"} 24
rch_worker_slots_available{worker="worker-b"} 0
# HELP rch_builds_total Builds
# TYPE rch_builds_total counter
rch_builds_total{result="success",location="remote"} 9
rch_builds_total{result="failure",location="local"} 1
# HELP rch_build_queue_depth Queued builds
# TYPE rch_build_queue_depth gauge
rch_build_queue_depth 3
# HELP rch_build_duration_seconds Build duration
# TYPE rch_build_duration_seconds histogram
rch_build_duration_seconds_bucket{location="remote",le="0.1"} 0
rch_build_duration_seconds_bucket{location="remote",le="300.0"} 9
rch_build_duration_seconds_bucket{location="remote",le="+Inf"} 9
rch_build_duration_seconds_sum{location="remote"} 378.5
rch_build_duration_seconds_count{location="remote"} 9
# HELP rch_decision_latency_seconds Decision latency
# TYPE rch_decision_latency_seconds histogram
rch_decision_latency_seconds_bucket{decision_type="compilation",le="+Inf"} 4
rch_decision_latency_seconds_sum{decision_type="compilation"} 0.01
rch_decision_latency_seconds_count{decision_type="compilation"} 4
# HELP rch_daemon_info Daemon info
# TYPE rch_daemon_info gauge
rch_daemon_info{version="1.4.2"} 1
# HELP rch_circuit_state Circuit (0=closed, 1=half_open, 2=open)
# TYPE rch_circuit_state gauge
rch_circuit_state{worker="worker-b"} 2
rch_circuit_state{worker="worker-c"} NaN
"""


class _Handler(http.server.BaseHTTPRequestHandler):
    body = METRICS.encode()

    def do_GET(self):  # noqa: N802 - http.server API
        if self.path != "/metrics":
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; version=0.0.4")
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, *args):  # keep test output quiet
        pass


@pytest.fixture(scope="module")
def metrics_url() -> Iterator[str]:
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    try:
        yield f"http://127.0.0.1:{srv.server_address[1]}/metrics"
    finally:
        srv.shutdown()
        srv.server_close()


def closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/metrics"


def history_line(build_id: int, started: str, **kw) -> str:
    rec = {"id": build_id, "started_at": started, "completed_at": started, "project_id": "test-project",
           "worker_id": None, "command": "cargo build", "exit_code": 0, "duration_ms": 100,
           "location": "local", "bytes_transferred": None, "timing": None, "cancellation": None} | kw
    return json.dumps(rec) + "\n"


def collect(tmp_path: Path, status: str | bytes, *, exit_code: int = 0, cursor=None, **options):
    ex = toolbox_executor(tmp_path / "box", {"rch": Tool(stdout=status, exit_code=exit_code)})
    return run_collector(RchCollector(), ex, cursor=cursor, options=options)


def test_status_payload_parses(tmp_path, status_example):
    res = collect(tmp_path, json.dumps(status_example), rch_metrics_url="")
    assert res.warnings == []
    (st,) = res.rows["rch_status_snapshots"]
    assert st["success"] is True and st["posture"] == "degraded" and st["api_version"] == "1.0"
    assert st["daemon_pid"] == 4242 and st["uptime_secs"] == 3600 and st["workers_total"] == 2
    assert st["workers_healthy"] == 1 and st["slots_total"] == 48 and st["slots_available"] == 40
    assert st["active_builds"] == 1 and st["queued_builds"] == 0 and st["alerts_active"] == 0
    assert st["total_builds"] == 10 and st["failure_count"] == 1 and st["time_saved_ms"] == 600000
    assert st["reported_at"].timestamp() == 1755880000 and st["status_schema"] == "1.0.0"
    workers = {w["worker_id"]: w for w in res.rows["rch_workers_snapshots"]}
    assert workers["worker-a"]["status"] == "healthy" and workers["worker-a"]["speed_score"] == 87.5
    assert workers["worker-a"]["used_slots"] == 8 and workers["worker-a"]["recent_failures"] == 0
    b = workers["worker-b"]
    assert b["circuit_state"] == "open" and b["last_error"] == "ssh timeout"
    assert b["consecutive_failures"] == 5
    assert b["recovery_in_secs"] == 120 and b["recent_checks"] == 2 and b["recent_failures"] == 2
    builds = {r["build_id"]: r for r in res.rows["rch_build_events"]}
    failed = builds[29_410_000_000_000_002]
    assert failed["exit_code"] == 101 and failed["worker_id"] is None
    assert builds[29_410_000_000_000_001]["location"] == "remote"
    assert all(r["log_path"] is None for r in builds.values())
    assert "rch_metrics" not in res.rows  # disabled with an empty URL


def test_insert_and_reinsert(tmp_path, status_example, store, metrics_url):
    hist = tmp_path / "history.jsonl"
    hist.write_text(history_line(7, "2024-01-01T00:00:07Z"))
    res = collect(tmp_path, json.dumps(status_example), rch_metrics_url=metrics_url,
                  rch_log_paths=[str(hist)])
    assert res.warnings == []
    inserted = write(store, res)
    assert inserted == {"rch_status_snapshots": 1, "rch_workers_snapshots": 2, "rch_build_events": 3,
                        "rch_metrics": len(res.rows["rch_metrics"])}
    assert sum(write(store, res).values()) == 0
    with store.raw_reader() as con:
        v = con.execute("SELECT value FROM rch_metrics WHERE metric = 'rch_build_queue_depth'").fetchone()[0]
        assert v == 3.0
        lp = con.execute("SELECT log_path FROM rch_build_events WHERE build_id = 7").fetchone()[0]
        assert lp == str(hist)


def test_metrics_downsampled_to_charted_series(tmp_path, status_example, metrics_url):
    res = collect(tmp_path, json.dumps(status_example), rch_metrics_url=metrics_url)
    got = {(r["metric"], r["labels_json"]): r["value"] for r in res.rows["rch_metrics"]}
    assert got[("rch_build_queue_depth", "{}")] == 3.0
    assert got[("rch_builds_total", '{"location":"remote","result":"success"}')] == 9.0
    assert got[("rch_worker_status", '{"status":"unreachable","worker":"worker-b"}')] == 0.0
    assert got[("rch_build_duration_seconds_sum", '{"location":"remote"}')] == 378.5
    assert got[("rch_build_duration_seconds_count", '{"location":"remote"}')] == 9.0
    assert not any(m.endswith("_bucket") or m.startswith("rch_decision") or m == "rch_daemon_info"
                   for m, _ in got)
    assert ("rch_circuit_state", '{"worker":"worker-c"}') not in got  # NaN dropped
    assert len(got) == 10
    collected_at = res.rows["rch_status_snapshots"][0]["collected_at"]
    assert all(r["ts"] == collected_at for r in res.rows["rch_metrics"])


def test_metrics_unreachable_and_garbage(tmp_path, status_example):
    res = collect(tmp_path, json.dumps(status_example), rch_metrics_url=closed_port_url())
    assert any("exited 7" in w and "not reachable" in w for w in res.warnings)
    assert "rch_metrics" not in res.rows and len(res.rows["rch_status_snapshots"]) == 1
    rows, warns = parse_metrics("rch_build_queue_depth 2\nthis is { not prometheus\n")
    assert warns and "unparseable" in warns[0]
    assert parse_metrics("")[0] == []


def test_history_tail_cursor_restart(tmp_path, status_example):
    hist = tmp_path / "history.jsonl"
    hist.write_text(history_line(1, "2024-01-01T00:00:01Z") + history_line(2, "2024-01-01T00:00:02Z")
                    + '{"id": 3, "started_at": "2024-01-01T00:0')  # rchd mid-write
    status = json.dumps(status_example | {"data": {}})  # no recent_builds: only the log feeds builds
    first = collect(tmp_path, status, rch_metrics_url="", rch_log_paths=[str(hist)])
    assert sorted(r["build_id"] for r in first.rows["rch_build_events"]) == [1, 2]
    cursor = json.loads(json.dumps(first.cursor))
    with hist.open("a") as fh:
        fh.write('2:03Z", "completed_at": null, "project_id": "p", "command": "cargo check", '
                 '"exit_code": 130, "duration_ms": 5, "location": "Remote", '
                 '"cancellation": {"reason": "user"}}\n')
    second = collect(tmp_path, status, rch_metrics_url="", rch_log_paths=[str(hist)], cursor=cursor)
    (b3,) = second.rows["rch_build_events"]
    assert b3["build_id"] == 3 and b3["cancelled"] is True and b3["location"] == "remote"
    assert b3["completed_at"] is None and b3["log_path"] == str(hist)
    third = collect(tmp_path, status, rch_metrics_url="", rch_log_paths=[str(hist)], cursor=second.cursor)
    assert "rch_build_events" not in third.rows


def test_history_compaction_rereads_and_log_wins_over_status(tmp_path, status_example, store):
    hist = tmp_path / "history.jsonl"
    same = status_example["data"]["daemon"]["recent_builds"][0]
    hist.write_text(json.dumps(same) + "\n")
    res = collect(tmp_path, json.dumps(status_example), rch_metrics_url="", rch_log_paths=[str(hist)])
    rows = res.rows["rch_build_events"]
    assert len(rows) == 2  # the build in both sources is one row
    assert {r["build_id"]: r["log_path"] for r in rows}[same["id"]] == str(hist)
    write(store, res)
    # rchd compacts: rewrite via temp + rename (new inode); nothing is new, one warning.
    keep = tmp_path / "old"
    keep.hardlink_to(hist)
    tmp = tmp_path / "history.tmp"
    tmp.write_text(json.dumps(same) + "\n")
    tmp.replace(hist)
    again = collect(tmp_path, json.dumps(status_example), rch_metrics_url="", rch_log_paths=[str(hist)],
                    cursor=res.cursor)
    assert any("inode changed" in w for w in again.warnings)
    assert write(store, again)["rch_build_events"] == 0


def test_bad_history_lines_and_missing_log(tmp_path, status_example):
    hist = tmp_path / "history.jsonl"
    hist.write_text('{"id": "x", "started_at": "2024-01-01T00:00:00Z"}\n{"id": 5}\nnot json\n'
                    '{"id": 18446744073709551615, "started_at": "2024-01-01T00:00:00Z"}\n'
                    + history_line(6, "2024-01-01T00:00:06Z", exit_code="0", duration_ms=1.5))
    res = collect(tmp_path, json.dumps(status_example | {"data": {}}), rch_metrics_url="",
                  rch_log_paths=[str(hist), str(tmp_path / "gone.jsonl")])
    (row,) = res.rows["rch_build_events"]
    assert row["build_id"] == 6 and row["exit_code"] is None and row["duration_ms"] is None
    assert any("4 bad build line(s)" in w for w in res.warnings)
    assert any("gone.jsonl does not exist" in w for w in res.warnings)
    assert str(tmp_path / "gone.jsonl") not in res.cursor["files"]


def test_failed_envelope_is_a_row(tmp_path, store):
    env = {"api_version": "1.0", "timestamp": 1755880000, "command": "status", "success": False,
           "error": {"code": "RCH-E101", "category": "daemon", "message": "daemon not running"}}
    res = collect(tmp_path, json.dumps(env), exit_code=1, rch_metrics_url="")
    (st,) = res.rows["rch_status_snapshots"]
    assert st["success"] is False and st["error_code"] == "RCH-E101" and st["posture"] is None
    assert st["workers_total"] is None
    assert res.warnings == ["rch status reported failure: RCH-E101: daemon not running"]
    assert write(store, res) == {"rch_status_snapshots": 1}


def test_malformed_status_outputs(tmp_path, status_example):
    text = json.dumps(status_example, indent=2)
    v2 = copy.deepcopy(status_example)
    v2["api_version"] = "2.0"
    v2["data"]["daemon"]["workers"][0]["used_slots"] = "eight"
    v2["data"]["daemon"]["workers"].append({"host": "no-id"})
    cases = {
        "truncated": (text[: len(text) // 2], "not JSON", 0),
        "empty": ("", "empty output", 0),
        "ansi": ("\x1b[2K\x1b[1Gconnecting...\n" + text, None, 1),
        "not envelope": ('{"daemon": {"running": true}}', "not an rch ApiResponse", 0),
        "array": ("[1, 2]", "not an rch ApiResponse", 0),
        "unknown version": (json.dumps(v2), "api_version '2.0'", 1),
    }
    for label, (out, warn, nrows) in cases.items():
        res = collect(tmp_path / label.replace(" ", "_"), out, rch_metrics_url="")
        if warn is None:
            assert res.warnings == [], label
        else:
            assert any(warn in w for w in res.warnings), (label, res.warnings)
        assert len(res.rows.get("rch_status_snapshots", [])) == nrows, label
    status, workers, _, warns = parse_status(v2)
    assert status["raw_json"] and workers[0]["used_slots"] is None and len(workers) == 2
    assert any("without a usable" in w for w in warns)


def test_nonzero_exit_and_timeout(tmp_path, status_example):
    res = collect(tmp_path / "a", json.dumps(status_example), exit_code=3, rch_metrics_url="")
    assert any("exited 3" in w for w in res.warnings) and len(res.rows["rch_status_snapshots"]) == 1
    ex = toolbox_executor(tmp_path / "b", {"rch": Tool(stdout="{}", sleep_s=5)})
    slow = run_collector(RchCollector(), ex, options={"rch_metrics_url": ""}, limits=Limits(timeout_s=1.5))
    assert any("timed out" in w for w in slow.warnings) and slow.rows == {}

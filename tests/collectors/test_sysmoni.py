"""sysmoni: the Go (PascalCase) and bash (snake_case) shapes, the one-shot zero-CPU sample, bad output."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from collectors.base import Limits
from collectors.sysmoni import SysmoniCollector
from tests.toolbox import Tool, run_collector, toolbox_executor
from workbench.store import Batch

NOW = datetime(2026, 4, 29, 15, 0, tzinfo=UTC)

# No sysmoni payload exists in the shared formats folder (the upstream repo has no examples either).
# This is the Go example RECONSTRUCTED in sysmoni.md (section A), with its elided PerCore filled in.
GO_SAMPLE = {
    "Timestamp": "2026-04-29T10:50:01.123456789-04:00", "Interval": 1000000000,
    "CPU": {"Total": 37.5, "PerCore": [40.1, 35.0, 36.2, 38.7], "Load1": 3.2, "Load5": 2.9, "Load15": 2.5},
    "Memory": {"UsedBytes": 27487790694, "TotalBytes": 68719476736, "SwapUsed": 0, "SwapTotal": 8589934592,
               "Cached": 20000000000, "Buffers": 400000000},
    "IO": {"DiskReadMBs": 1.2, "DiskWriteMBs": 8.4, "NetRxMbps": 3.1, "NetTxMbps": 0.4,
           "PerDevice": [{"Name": "nvme0n1", "ReadMBs": 1.2, "WriteMBs": 8.4}]},
    "GPUs": None, "Battery": {"Percent": 0, "State": "", "SecondsRemaining": 0},
    "Top": [{"PID": 4242, "Nice": 0, "CPU": 180.2, "Memory": 3.1, "Command": "cargo build --release",
             "FDCount": 312, "ReadKBs": 0, "WriteKBs": 2048, "FDDiff": 4}],
    "Throttled": [{"PID": 5151, "Nice": 10, "CPU": 95.0, "Memory": 1.2, "Command": "node …", "FDCount": 80,
                   "ReadKBs": 0, "WriteKBs": 0, "FDDiff": 0}],
    "Cgroups": [{"Name": "user.slice", "CPU": 250.1}],
    "Inotify": {"MaxUserWatches": 524288, "MaxUserInstances": 1024, "NrWatches": 40211},
    "Temps": [{"Zone": "thermal_zone0", "Temp": 54.0}, {"Zone": "thermal_zone1", "Temp": 61.5}],
}

# What the Go one-shot `--json` really prints per sysmoni.md's caveat: the first sample, CPU and IO zero.
GO_ONE_SHOT = {**GO_SAMPLE,
               "CPU": {"Total": 0, "PerCore": [0, 0, 0, 0], "Load1": 3.2, "Load5": 2.9, "Load15": 2.5},
               "IO": {"DiskReadMBs": 0, "DiskWriteMBs": 0, "NetRxMbps": 0, "NetTxMbps": 0, "PerDevice": None},
               "Top": [{"PID": 4242, "Nice": 0, "CPU": 0, "Memory": 3.1, "Command": "cargo build --release",
                        "FDCount": 312, "ReadKBs": 0, "WriteKBs": 0, "FDDiff": 0}],
               "Throttled": None}

# The legacy bash fallback, built from the `printf` template quoted in sysmoni.md (section B).
BASH_SAMPLE = {
    "timestamp": 1777474201, "cpu": 22.5, "mem": 61.3,
    "top": [{"cmd": "python train.py", "pid": 777, "nice": 0, "cpu": 99.0, "mem": 12.5},
            {"cmd": "rg foo", "pid": 778, "nice": 5, "cpu": 10.0, "mem": 0.1}],
    "historical": [{"cmd": "python train.py", "cpu_integral": 1234.0, "max_cpu": 100.0, "max_mem": 13.0}],
    "per_core": [{"core": "0", "cpu": 20}, {"core": "1", "cpu": 25}],
    "io": {"disk_read_mb_s": 0.5, "disk_write_mb_s": 2.0, "net_rx_mbps": 1.5, "net_tx_mbps": 0.2,
           "per_device": [{"dev": "sda", "read_mb_s": 0.5, "write_mb_s": 2.0}]},
    "temps": [{"zone": "x86_pkg_temp", "temp_c": 71.0}],
    "inotify": {"max_user_watches": 8192, "max_user_instances": 128, "nr_watches": 8000},
    "cgroups": [{"cgroup": "user.slice", "cpu": 120.0}],
    "gpu": [{"gpu": "NVIDIA A100", "util": 87, "mem_used": 30000, "mem_total": 40960, "mem_pct": 73.2,
             "temp_c": 66}],
    "battery": None,
}


def line(obj) -> str:
    return json.dumps(obj) + "\n"


def collect(tmp_path: Path, stdout: str | bytes, exit_code: int = 0, sub: str = "a", sleep_s: float = 0.0,
            limits: Limits | None = None):
    tools = {"sysmoni": Tool(stdout=stdout, exit_code=exit_code, sleep_s=sleep_s)}
    ex = toolbox_executor(tmp_path / sub, tools)
    return run_collector(SysmoniCollector(), ex, now=NOW, limits=limits or Limits(timeout_s=10))


def write(store, result):
    b = Batch()
    for table, rows in result.rows.items():
        # pyarrow takes a batch's columns from its first row: every row must carry the same keys.
        assert len({frozenset(r) for r in rows}) == 1, f"{table}: rows with different columns"
        b.add_rows(table, rows)
    return store.write(b)


def test_required_tool():
    assert SysmoniCollector.required_tool == "sysmoni"


def test_go_sample(tmp_path):
    r = collect(tmp_path, line(GO_SAMPLE))
    assert r.warnings == []
    (s,) = r.rows["sysmoni_snapshots"]
    assert s["variant"] == "go" and s["first_sample"] is False
    assert s["ts"] == datetime(2026, 4, 29, 14, 50, 1, 123456, tzinfo=UTC)  # -04:00 offset made UTC
    assert s["collected_at"] == NOW and s["interval_s"] == 1.0
    assert s["cpu_pct"] == 37.5 and s["cpu_cores"] == 4 and json.loads(s["per_core_json"])[3] == 38.7
    assert (s["load1"], s["load5"], s["load15"]) == (3.2, 2.9, 2.5)
    assert s["mem_used_bytes"] == 27487790694 and s["mem_total_bytes"] == 68719476736
    assert s["mem_used_pct"] == pytest.approx(40.0, abs=1e-6)
    assert s["swap_total_bytes"] == 8589934592 and s["mem_cached_bytes"] == 20000000000
    assert (s["disk_write_mbs"], s["net_rx_mbps"]) == (8.4, 3.1)
    assert s["inotify_nr_watches"] == 40211 and s["inotify_max_user_watches"] == 524288
    assert s["temp_max_c"] == 61.5 and s["temp_max_zone"] == "thermal_zone1"
    assert s["gpu_count"] == 0 and s["gpu_json"] is None  # GPUs: null is an empty list
    assert s["throttled_count"] == 1
    assert json.loads(s["raw_json"])["Cgroups"][0]["Name"] == "user.slice"
    assert s["machine_id"] == "test-host" and s["source"] == "sysmoni"
    procs = {(p["list_kind"], p["rank"]): p for p in r.rows["sysmoni_top_processes"]}
    assert procs[("top", 1)]["pid"] == 4242 and procs[("top", 1)]["cpu_pct"] == 180.2
    assert procs[("top", 1)]["command"] == "cargo build --release" and procs[("top", 1)]["write_kbs"] == 2048
    assert procs[("throttled", 1)]["pid"] == 5151 and procs[("throttled", 1)]["nice"] == 10
    assert all(p["ts"] == s["ts"] for p in procs.values())


def test_go_one_shot_stores_null_cpu_not_zero(tmp_path):
    r = collect(tmp_path, line(GO_ONE_SHOT))
    assert r.warnings == []  # a known property of the one-shot mode, not a problem to report
    (s,) = r.rows["sysmoni_snapshots"]
    assert s["first_sample"] is True
    assert s["cpu_pct"] is None and s["per_core_json"] is None
    assert s["disk_read_mbs"] is None and s["net_tx_mbps"] is None
    assert s["load1"] == 3.2 and s["mem_used_bytes"] == 27487790694  # the non-rate figures are real
    (p,) = r.rows["sysmoni_top_processes"]
    assert p["cpu_pct"] is None and p["mem_pct"] == 3.1
    assert s["throttled_count"] == 0


def test_real_idle_core_is_not_mistaken_for_first_sample(tmp_path):
    idle = {**GO_SAMPLE,
            "CPU": {"Total": 0.0, "PerCore": [0.0, 0.4], "Load1": 0.0, "Load5": 0.0, "Load15": 0.0}}
    (s,) = collect(tmp_path, line(idle)).rows["sysmoni_snapshots"]
    assert s["first_sample"] is False and s["cpu_pct"] == 0.0


def test_bash_fallback(tmp_path):
    r = collect(tmp_path, line(BASH_SAMPLE))
    assert r.warnings == []
    (s,) = r.rows["sysmoni_snapshots"]
    assert s["variant"] == "bash"
    assert s["ts"] == datetime.fromtimestamp(1777474201, tz=UTC)
    assert s["cpu_pct"] == 22.5 and s["mem_used_pct"] == 61.3 and s["mem_total_bytes"] is None
    assert s["cpu_cores"] == 2 and json.loads(s["per_core_json"]) == [20, 25]
    assert s["load1"] is None  # the bash template has no load average
    assert (s["disk_write_mbs"], s["net_rx_mbps"]) == (2.0, 1.5)
    assert s["inotify_nr_watches"] == 8000 and s["inotify_max_user_instances"] == 128
    assert s["temp_max_c"] == 71.0 and s["temp_max_zone"] == "x86_pkg_temp"
    assert s["gpu_count"] == 1 and json.loads(s["gpu_json"])[0]["gpu"] == "NVIDIA A100"
    top = r.rows["sysmoni_top_processes"]
    assert [(p["rank"], p["pid"], p["command"]) for p in top] == [(1, 777, "python train.py"),
                                                                   (2, 778, "rg foo")]
    assert top[1]["nice"] == 5 and top[0]["mem_pct"] == 12.5


def test_stream_output_gives_one_row_per_sample(tmp_path):
    second = {**GO_SAMPLE, "Timestamp": "2026-04-29T10:50:02.123456789-04:00"}
    r = collect(tmp_path, line(GO_ONE_SHOT) + line(second))
    samples = sorted(r.rows["sysmoni_snapshots"], key=lambda s: s["ts"])
    assert [s["cpu_pct"] for s in samples] == [None, 37.5]


def test_top_processes_capped_by_option(tmp_path):
    many = {**GO_SAMPLE, "Top": [{**GO_SAMPLE["Top"][0], "PID": 1000 + i} for i in range(64)]}
    ex = toolbox_executor(tmp_path, {"sysmoni": Tool(stdout=line(many))})
    r = run_collector(SysmoniCollector(), ex, now=NOW, options={"top_processes": 5})
    top = [p for p in r.rows["sysmoni_top_processes"] if p["list_kind"] == "top"]
    assert [p["pid"] for p in top] == [1000, 1001, 1002, 1003, 1004]


def test_truncated(tmp_path):
    text = line(GO_SAMPLE)
    r = collect(tmp_path, text[: len(text) // 2])
    assert r.rows == {}
    assert any("not JSON" in w for w in r.warnings)


def test_wrong_types_cost_only_their_fields(tmp_path):
    bad = {**GO_SAMPLE, "CPU": {**GO_SAMPLE["CPU"], "Total": "high", "Load1": True},
           "Memory": {**GO_SAMPLE["Memory"], "UsedBytes": "27G"}, "Temps": "hot"}
    r = collect(tmp_path, line(bad))
    (s,) = r.rows["sysmoni_snapshots"]
    assert s["cpu_pct"] is None and s["load1"] is None and s["mem_used_bytes"] is None
    assert s["mem_used_pct"] is None and s["temp_max_c"] is None
    assert s["load5"] == 2.9 and s["mem_total_bytes"] == 68719476736  # the rest survives
    (w,) = r.warnings
    assert "CPU.Total" in w and "Memory.UsedBytes" in w and "Temps" in w


def test_ansi_and_banner_around_payload(tmp_path):
    text = "\x1b[1;32msysmoni starting\x1b[0m\n\x1b[0m" + json.dumps(GO_SAMPLE) + "\x1b[0m\n"
    r = collect(tmp_path, text)
    (s,) = r.rows["sysmoni_snapshots"]
    assert s["cpu_pct"] == 37.5
    assert len(r.warnings) == 1 and "skipped 1 line" in r.warnings[0]


def test_garbage(tmp_path):
    r = collect(tmp_path, b"\x00\xff\xfegarbage\n[1, 2]\n{\"foo\": 1}\n")
    assert r.rows == {}
    text = " | ".join(r.warnings)
    assert "not JSON" in text and "not a sample object" in text and "unknown format" in text


def test_empty(tmp_path):
    r = collect(tmp_path, "")
    assert r.rows == {} and r.warnings == ["sysmoni: empty output"]


def test_nonzero_exit(tmp_path):
    r = collect(tmp_path, "", exit_code=1)
    assert r.rows == {} and any("exited 1 and printed no usable payload" in w for w in r.warnings)
    kept = collect(tmp_path, line(GO_SAMPLE), exit_code=2, sub="b")
    assert len(kept.rows["sysmoni_snapshots"]) == 1 and any("exited 2" in w for w in kept.warnings)


def test_timeout(tmp_path):
    r = collect(tmp_path, line(GO_SAMPLE), sleep_s=5, limits=Limits(timeout_s=0.5))
    assert r.rows == {} and any("timed out" in w for w in r.warnings)


def test_rows_insert_and_reinsert_is_idempotent(tmp_path, store):
    r = collect(tmp_path, line(GO_SAMPLE) + line(BASH_SAMPLE))
    first = write(store, r)
    assert first.inserted == {"sysmoni_snapshots": 2, "sysmoni_top_processes": 4}
    assert write(store, r).rows == 0
    # The same sample collected again later is the same row: its own timestamp is the key.
    box = toolbox_executor(tmp_path / "c", {"sysmoni": Tool(line(GO_SAMPLE))})
    later = run_collector(SysmoniCollector(), box, now=datetime(2026, 4, 29, 16, 0, tzinfo=UTC))
    assert write(store, later).rows == 0
    with store.raw_reader() as con:
        got = con.execute("SELECT variant, cpu_pct, mem_used_pct FROM sysmoni_snapshots ORDER BY variant"
                          ).fetchall()
    assert got[0][0] == "bash" and got[1][1] == 37.5 and got[1][2] == pytest.approx(40.0)

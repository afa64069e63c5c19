"""The psutil system collector on this very machine, cross-checked against /proc and os.statvfs."""

from __future__ import annotations

import os

import pytest

from collectors import probe_parsers as pp
from collectors.executors.local import LocalExecutor
from collectors.system import SystemCollector
from tests.toolbox import run_collector


@pytest.fixture(scope="module")
def result():
    return run_collector(SystemCollector(), LocalExecutor("local"), options={"top_processes": 5})


def test_sample_matches_proc(result):
    s = result.rows["sys_samples"][0]
    info = pp.parse_meminfo(open("/proc/meminfo").read())
    assert s["mem_total_bytes"] == info["MemTotal"]
    # Memory moves between readings; a few percent of slack is plenty to catch unit errors (kB vs B).
    assert s["mem_available_bytes"] == pytest.approx(info["MemAvailable"], rel=0.05)
    assert s["swap_total_bytes"] == info.get("SwapTotal", 0)
    assert s["cpu_count"] == os.cpu_count()
    la = pp.parse_loadavg(open("/proc/loadavg").read())
    assert s["load15"] == pytest.approx(la.load15, abs=0.5)
    assert s["uptime_seconds"] == pytest.approx(pp.parse_uptime(open("/proc/uptime").read()), abs=5)
    assert 0.0 <= s["cpu_pct"] <= 100.0
    assert s["net_rx_bps"] is None  # first reading has no rate


def test_root_filesystem_matches_statvfs(result):
    fs = {r["mount"]: r for r in result.rows["sys_filesystems"]}
    assert "/" in fs
    st = os.statvfs("/")
    total = st.f_blocks * st.f_frsize
    free = st.f_bavail * st.f_frsize
    assert fs["/"]["total_bytes"] == total
    assert fs["/"]["free_bytes"] == pytest.approx(free, rel=0.01)
    assert fs["/"]["used_pct"] == pytest.approx(
        100 * (total - st.f_bfree * st.f_frsize) / (total - st.f_bfree * st.f_frsize + free), abs=0.2)
    assert not any(r["fstype"] in ("tmpfs", "proc", "sysfs") for r in fs.values())


def test_top_processes_ranked(result):
    top = result.rows["sys_top_processes"]
    by_cpu = [r for r in top if r["rank_by"] == "cpu"]
    by_mem = [r for r in top if r["rank_by"] == "memory"]
    assert [r["rank"] for r in by_cpu] == list(range(1, len(by_cpu) + 1)) and 1 <= len(by_cpu) <= 5
    assert all(a["mem_rss_bytes"] >= b["mem_rss_bytes"] for a, b in zip(by_mem, by_mem[1:], strict=False))
    assert any(r["pid"] == os.getpid() or r["name"] for r in top)


def test_second_reading_uses_cursor_for_network_rate(result):
    again = run_collector(SystemCollector(), LocalExecutor("local"), cursor=result.cursor,
                          options={"top_processes": 0})
    s = again.rows["sys_samples"][0]
    assert s["net_rx_bps"] is not None and s["net_rx_bps"] >= 0
    assert "sys_top_processes" not in again.rows


def test_rows_fit_schema(result, store):
    from workbench.store import Batch

    b = Batch()
    for t, rows in result.rows.items():
        b.add_rows(t, rows)
    first = store.write(b)
    assert first.inserted["sys_samples"] == 1 and first.inserted["sys_filesystems"] >= 1
    assert store.write(b).rows == 0

"""The basic probe's parsers on recorded outputs, and on the ways real output goes wrong."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from collectors import probe_parsers as pp
from collectors.base import Collector
from collectors.executors.local import LocalExecutor
from collectors.probe import ProbeCollector, parse_probe, split_sections
from tests.toolbox import run_collector
from workbench.store import Batch

REC = Path(__file__).resolve().parents[1] / "sample_data" / "probe"


def rec(name: str) -> str:
    return (REC / name).read_text()


def _stamp(machine_id, **row):
    row.update(machine_id=machine_id, source="probe", source_version="1", schema_version=1)
    return row


def test_loadavg_recorded():
    la = pp.parse_loadavg(rec("loadavg.txt"))
    parts = rec("loadavg.txt").split()
    assert la.load1 == float(parts[0]) and la.load15 == float(parts[2])
    assert la.total_tasks is not None and la.total_tasks >= la.running >= 1


@pytest.mark.parametrize("bad", ["", "garbage", "0.5 abc 0.1 1/2 3", "-1 0 0 1/1 1"])
def test_loadavg_bad(bad):
    with pytest.raises(pp.ProbeParseError):
        pp.parse_loadavg(bad)


def test_loadavg_ansi_junk_is_stripped():
    la = pp.parse_loadavg("\x1b[32m1.50 2.00 3.25\x1b[0m 2/300 999\r\n")
    assert (la.load1, la.load5, la.load15) == (1.5, 2.0, 3.25)


def test_meminfo_recorded_matches_free():
    info = pp.parse_meminfo(rec("meminfo.txt"))
    free = pp.parse_free(rec("free_b.txt"))
    assert info["MemTotal"] == free["mem_total"]
    mem = pp.memory_from_meminfo(info)
    assert mem["mem_total_bytes"] == info["MemTotal"]
    assert 0 < mem["mem_used_bytes"] < mem["mem_total_bytes"]
    assert mem["swap_total_bytes"] == free["swap_total"]


def test_meminfo_old_kernel_without_memavailable():
    text = "\n".join(ln for ln in rec("meminfo.txt").splitlines() if not ln.startswith("MemAvailable"))
    info = pp.parse_meminfo(text)
    mem = pp.memory_from_meminfo(info)
    assert mem["mem_available_bytes"] == info["MemFree"] + info["Buffers"] + info["Cached"]


def test_meminfo_truncated_before_memtotal():
    with pytest.raises(pp.ProbeParseError, match="MemTotal"):
        pp.parse_meminfo("Mem")


def test_meminfo_truncated_midway_keeps_what_is_there():
    text = rec("meminfo.txt")
    info = pp.parse_meminfo(text[: text.index("SwapTotal")])
    assert "MemTotal" in info and "SwapTotal" not in info
    assert pp.memory_from_meminfo(info)["swap_used_bytes"] is None


def test_uptime():
    assert pp.parse_uptime(rec("uptime.txt")) == float(rec("uptime.txt").split()[0])
    for bad in ("", "abc", "-5 3"):
        with pytest.raises(pp.ProbeParseError):
            pp.parse_uptime(bad)


def test_df_recorded_skips_pseudo_filesystems():
    rows, warnings = pp.parse_df(rec("df_P.txt"))
    assert warnings == []
    assert [r.mount for r in rows] == ["/"]
    root = rows[0]
    line = next(ln for ln in rec("df_P.txt").splitlines() if ln.endswith(" /"))
    total_kb, used_kb, avail_kb = (int(x) for x in line.split()[1:4])
    assert root.total_bytes == total_kb * 1024
    assert root.used_pct == pytest.approx(100 * used_kb / (used_kb + avail_kb))


def test_df_one_byte_blocks_and_mount_with_spaces():
    text = ("Filesystem 1-blocks Used Available Capacity Mounted on\n"
            "/dev/sdb1 1000 900 100 90% /mnt/my disk\n"
            "/dev/sdc1 oops 1 1 1% /x\n"
            "/dev/sdd1 10\n")
    rows, warnings = pp.parse_df(text)
    assert [(r.mount, r.total_bytes, r.used_pct) for r in rows] == [("/mnt/my disk", 1000, 90.0)]
    assert len(warnings) == 2


@pytest.mark.parametrize("bad", ["", "\x00\x01garbage", "Size Used Avail"])
def test_df_garbage(bad):
    with pytest.raises(pp.ProbeParseError):
        pp.parse_df(bad)


def test_df_human_readable_refused():
    with pytest.raises(pp.ProbeParseError, match="human"):
        pp.parse_df("Filesystem Size Used Avail Use% Mounted on\n/dev/vda 252G 22G 80G 22% /\n")


def test_free_recorded_and_bad():
    free = pp.parse_free(rec("free_b.txt"))
    assert free["mem_total"] > 0 and "swap_total" in free
    with pytest.raises(pp.ProbeParseError):
        pp.parse_free("total used\nSwap: 0 0")


def test_proc_stat_and_net_dev():
    busy, total = pp.parse_proc_stat_cpu(rec("stat.txt"))
    assert 0 <= busy <= total
    net = pp.parse_net_dev(rec("net_dev.txt"))
    assert "lo" not in net and all(rx >= 0 and tx >= 0 for rx, tx in net.values())
    with pytest.raises(pp.ProbeParseError):
        pp.parse_proc_stat_cpu("intr 1 2 3")


def test_nproc():
    assert pp.parse_nproc(rec("nproc.txt")) >= 1
    with pytest.raises(pp.ProbeParseError):
        pp.parse_nproc("zero")


def test_vmstat_oom_kill_recorded():
    full = rec("vmstat.txt")
    line = next(ln for ln in full.splitlines() if ln.startswith("oom_kill "))
    assert pp.parse_vmstat_oom_kill(full) == int(line.split()[1])
    # the probe's section is only that line (grep), and the same number
    assert pp.parse_vmstat_oom_kill(rec("vmstat_oom_kill.txt")) == int(line.split()[1])
    assert pp.parse_vmstat_oom_kill("\x1b[1moom_kill 12\x1b[0m\r\n") == 12


def test_vmstat_without_oom_kill_is_unknown():
    """Kernels before 4.13 have no oom_kill line: unknown (None), never 0."""
    old = "\n".join(ln for ln in rec("vmstat.txt").splitlines() if not ln.startswith("oom_kill "))
    assert pp.parse_vmstat_oom_kill(old) is None
    assert pp.parse_vmstat_oom_kill("") is None


@pytest.mark.parametrize("bad", ["oom_kill", "oom_kill -1", "oom_kill 1.5", "oom_kill 3 4"])
def test_vmstat_garbled_oom_kill(bad):
    with pytest.raises(pp.ProbeParseError, match="oom_kill"):
        pp.parse_vmstat_oom_kill(bad)


class _Probe(Collector):
    name = "probe"

    async def collect(self, ctx):  # pragma: no cover - only stamp() is used here
        raise NotImplementedError


def test_full_probe_recorded_output():
    ts = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
    rows, cursor, warnings = parse_probe("m1", rec("full_probe.txt"), ts, None, _Probe().stamp)
    assert warnings == []
    s = rows["sys_samples"][0]
    assert s["machine_id"] == "m1" and s["ts"] == ts and s["source"] == "probe"
    assert s["cpu_count"] == int(rec("nproc.txt")) or s["cpu_count"] >= 1
    assert s["mem_total_bytes"] == pp.parse_meminfo(rec("meminfo.txt"))["MemTotal"]
    assert s["cpu_pct"] is None  # one reading: no rate yet
    assert [f["mount"] for f in rows["sys_filesystems"]] == ["/"]
    assert set(cursor) == {"ts", "cpu", "net"}
    assert s["oom_kill_total"] == pp.parse_vmstat_oom_kill(rec("vmstat_oom_kill.txt"))


def test_probe_on_a_kernel_without_the_oom_counter(store):
    """An empty vmstat section (grep found no oom_kill line) leaves the column NULL, with no warning."""
    text = rec("full_probe.txt")
    old = text.replace(split_sections(text)["vmstat"], "")
    ts = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
    rows, _, warnings = parse_probe("old", old, ts, None, _Probe().stamp)
    assert warnings == [] and "oom_kill_total" not in rows["sys_samples"][0]
    new, _, _ = parse_probe("new", text, ts, None, _Probe().stamp)
    b = Batch()
    b.add_rows("sys_samples", rows["sys_samples"] + new["sys_samples"])
    assert store.write(b).inserted["sys_samples"] == 2
    with store.raw_reader() as con:
        got = con.execute("SELECT machine_id, oom_kill_total FROM sys_samples ORDER BY machine_id").fetchall()
    assert got == [("new", 0), ("old", None)]


def test_probe_garbled_oom_counter_costs_only_itself():
    text = rec("full_probe.txt")
    broken = text.replace(split_sections(text)["vmstat"], "oom_kill \x1b[31m?\x1b[0m")
    rows, _, warnings = parse_probe("m1", broken, datetime.now(UTC), None, _Probe().stamp)
    s = rows["sys_samples"][0]
    assert "oom_kill_total" not in s and s["mem_total_bytes"] > 0
    assert len(warnings) == 1 and "oom_kill" in warnings[0]


def test_probe_command_on_this_machine_reads_the_oom_counter():
    """The real probe command through the LocalExecutor: its vmstat section is this kernel's counter."""
    proc = Path("/proc/vmstat")
    if not proc.exists():
        pytest.skip("no /proc/vmstat on this machine")
    before = pp.parse_vmstat_oom_kill(proc.read_text())
    res = run_collector(ProbeCollector(), LocalExecutor("local"))
    after = pp.parse_vmstat_oom_kill(proc.read_text())
    s = res.rows["sys_samples"][0]
    assert res.warnings == []
    if before is None:
        assert "oom_kill_total" not in s
    else:
        assert before <= s["oom_kill_total"] <= after


def test_probe_second_reading_gives_rates():
    ts1 = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
    ts2 = datetime(2026, 11, 22, 12, 1, tzinfo=UTC)
    text = rec("full_probe.txt")
    _, cursor, _ = parse_probe("m1", text, ts1, None, _Probe().stamp)
    busy, total = cursor["cpu"]
    rx, tx = cursor["net"]
    sections = split_sections(text)
    stat2 = f"cpu  {busy + 30} 0 0 {total - busy + 70} 0 0 0 0 0 0"
    net_lines = sections["netdev"].splitlines()
    iface = next(ln for ln in net_lines if ":" in ln and not ln.strip().startswith("lo"))
    name = iface.split(":")[0].strip()
    net2 = f"{net_lines[0]}\n{net_lines[1]}\n{name}: {rx + 6000} 1 0 0 0 0 0 0 {tx + 600} 1 0 0 0 0 0 0\n"
    text2 = text.replace(sections["stat"], stat2).replace(sections["netdev"], net2)
    rows, _, warnings = parse_probe("m1", text2, ts2, cursor, _Probe().stamp)
    s = rows["sys_samples"][0]
    assert s["cpu_pct"] == pytest.approx(30.0)
    assert s["net_rx_bps"] == pytest.approx(100.0) and s["net_tx_bps"] == pytest.approx(10.0)


def test_probe_truncated_output_keeps_early_sections_and_warns():
    text = rec("full_probe.txt")
    cut = text[: text.index("__VC_SECTION__ df")]
    rows, _, warnings = parse_probe("m1", cut, datetime.now(UTC), None, _Probe().stamp)
    assert rows["sys_samples"][0]["load1"] is not None
    assert "sys_filesystems" not in rows
    assert any("sections missing" in w and "df" in w for w in warnings)


def test_probe_garbage_raises_clearly():
    with pytest.raises(pp.ProbeParseError, match="none of its sections"):
        parse_probe("m1", "\x1b[31mPermission denied\x1b[0m\n" * 50, datetime.now(UTC), None, _Probe().stamp)


def test_probe_one_broken_section_costs_only_itself():
    text = rec("full_probe.txt")
    sec = split_sections(text)
    broken = text.replace(sec["loadavg"], "\x1b[1mnot a loadavg\x1b[0m")
    rows, _, warnings = parse_probe("m1", broken, datetime.now(UTC), None, _Probe().stamp)
    s = rows["sys_samples"][0]
    assert "load1" not in s and s["mem_total_bytes"] > 0
    assert any("loadavg" in w for w in warnings)

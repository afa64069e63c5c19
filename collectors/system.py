"""The local system collector (psutil): CPU, load, memory, swap, filesystems, network, top processes.

psutil only sees the machine it runs on, so this collector is local-only; remote machines get the
same tables from the basic probe. Counter-based rates (network) keep their last reading in the
cursor so a daemon restart does not produce a spike or a gap.

The kernel's OOM-kill counter (`oom_kill` in /proc/vmstat, Linux >= 4.13) is read from the file
directly: psutil does not expose it. It is stored as the cumulative count (`oom_kill_total`); the
alert rule turns it into kills per hour. A kernel without the line leaves it NULL, never 0.
"""

from __future__ import annotations

import asyncio
import os
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import psutil

from collectors import probe_parsers as pp
from collectors.base import CollectContext, Collector, CollectResult
from collectors.rates import busy_pct, counter_rate

VMSTAT = Path("/proc/vmstat")

# Filesystems that never fill in a way a person can act on.
_SKIP_FSTYPES = {
    "tmpfs", "devtmpfs", "squashfs", "proc", "sysfs", "cgroup", "cgroup2", "devpts", "mqueue",
    "debugfs", "tracefs", "securityfs", "pstore", "bpf", "autofs", "fusectl", "configfs", "nsfs",
    "ramfs", "hugetlbfs", "binfmt_misc", "efivarfs", "rpc_pipefs", "fuse.lxcfs",
}


def filesystems(machine_id: str, ts: datetime, stamp) -> tuple[list[dict], list[str]]:
    rows, warnings, seen_dev, seen_mount = [], [], set(), set()
    for part in psutil.disk_partitions(all=True):
        if part.fstype in _SKIP_FSTYPES or part.mountpoint in seen_mount:
            continue
        key = part.device if part.device not in ("", "none", "overlay") else part.mountpoint
        if key in seen_dev:
            continue
        try:
            usage = psutil.disk_usage(part.mountpoint)
        except (PermissionError, OSError) as exc:
            warnings.append(f"disk_usage({part.mountpoint}): {exc.__class__.__name__}")
            continue
        if usage.total == 0:
            continue
        seen_dev.add(key)
        seen_mount.add(part.mountpoint)
        rows.append(stamp(machine_id, ts=ts, mount=part.mountpoint, device=part.device, fstype=part.fstype,
                          total_bytes=usage.total, used_bytes=usage.used, free_bytes=usage.free,
                          used_pct=float(usage.percent)))
    return rows, warnings


# Process objects kept between cycles: psutil measures a process's CPU % since the previous call on
# the same object, so keeping them gives "CPU since the last cycle" without sleeping in the collector.
_KNOWN: dict[int, psutil.Process] = {}


def top_processes(machine_id: str, ts: datetime, n: int, stamp) -> list[dict]:
    if n <= 0:
        return []
    info = []
    seen: set[int] = set()
    for p in psutil.process_iter(["pid", "name", "username"]):
        pid = p.info["pid"]
        seen.add(pid)
        known = _KNOWN.get(pid)
        if known is None or not _same_process(known, p):
            _KNOWN[pid] = known = p
        try:
            with known.oneshot():
                cpu = known.cpu_percent(None)
                rss = known.memory_info().rss
                cmd = " ".join(known.cmdline())[:300]
            info.append((pid, p.info["name"], p.info.get("username"), cpu, rss, cmd))
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    for pid in set(_KNOWN) - seen:
        del _KNOWN[pid]
    rows = []
    for rank_by, key in (("cpu", lambda r: r[3]), ("memory", lambda r: r[4])):
        for rank, r in enumerate(sorted(info, key=key, reverse=True)[:n], start=1):
            rows.append(stamp(machine_id, ts=ts, rank_by=rank_by, rank=rank, pid=r[0], name=r[1],
                              username=r[2], cpu_pct=float(r[3]), mem_rss_bytes=int(r[4]), cmdline=r[5]))
    return rows


def _same_process(a: psutil.Process, b: psutil.Process) -> bool:
    try:
        return a.create_time() == b.create_time()
    except psutil.Error:
        return False


def _cpu_jiffies() -> tuple[float, float]:
    t = psutil.cpu_times()
    idle = t.idle + getattr(t, "iowait", 0.0)
    total = sum(v for k, v in t._asdict().items() if k not in ("guest", "guest_nice"))
    return total - idle, total


def oom_kill_total(path: Path = VMSTAT) -> tuple[int | None, str | None]:
    """The OOM-kill counter of `path` (a /proc/vmstat), and a warning when the file is unusable.

    (None, None) on a kernel without the line or a system without /proc (not Linux): unknown, which
    is not a problem worth a warning on every sample. An unreadable file or a garbled line is
    (None, warning).
    """
    try:
        text = path.read_text(encoding="ascii", errors="replace")
    except FileNotFoundError:
        return None, None
    except OSError as exc:
        return None, f"{path}: {exc.__class__.__name__}"
    try:
        return pp.parse_vmstat_oom_kill(text), None
    except pp.ProbeParseError as exc:
        return None, str(exc)


def sample(machine_id: str, ts: datetime, cursor: dict[str, Any] | None, n_top: int, stamp,
           vmstat: Path = VMSTAT) -> CollectResult:
    """One system sample of this machine; `vmstat` is where the OOM counter is read (tests point it
    at a recorded file to play a kernel without the counter)."""
    result = CollectResult()
    prev = cursor or {}
    cpu_now = _cpu_jiffies()
    p_cpu = prev.get("cpu")
    cpu_pct = busy_pct(tuple(p_cpu) if p_cpu else None, cpu_now)
    if cpu_pct is None:  # first reading ever: a short blocking sample beats a missing value
        cpu_pct = psutil.cpu_percent(interval=0.1)
    load1, load5, load15 = os.getloadavg()
    vm = psutil.virtual_memory()
    sw = psutil.swap_memory()
    net = psutil.net_io_counters(pernic=True)
    rx = sum(v.bytes_recv for k, v in net.items() if k != "lo")
    tx = sum(v.bytes_sent for k, v in net.items() if k != "lo")
    dt = ts.timestamp() - prev["ts"] if "ts" in prev else None
    p_net = prev.get("net")
    oom, oom_warn = oom_kill_total(vmstat)
    if oom_warn:
        result.warnings.append(oom_warn)
    result.add("sys_samples", stamp(
        machine_id, ts=ts, cpu_pct=float(cpu_pct), cpu_count=psutil.cpu_count() or os.cpu_count(),
        load1=load1, load5=load5, load15=load15,
        mem_total_bytes=vm.total, mem_used_bytes=vm.total - vm.available, mem_available_bytes=vm.available,
        swap_total_bytes=sw.total, swap_used_bytes=sw.used,
        net_rx_bps=counter_rate(p_net[0] if p_net else None, rx, dt),
        net_tx_bps=counter_rate(p_net[1] if p_net else None, tx, dt),
        uptime_seconds=time.time() - psutil.boot_time(), oom_kill_total=oom,
    ))
    fs_rows, fs_warn = filesystems(machine_id, ts, stamp)
    result.extend("sys_filesystems", fs_rows)
    result.warnings.extend(fs_warn)
    result.extend("sys_top_processes", top_processes(machine_id, ts, n_top, stamp))
    result.cursor = {"ts": ts.timestamp(), "net": [rx, tx], "cpu": list(cpu_now)}
    return result


class SystemCollector(Collector):
    name = "system"
    source_version = f"psutil-{psutil.__version__}"
    schema_version = 1
    local_only = True

    async def collect(self, ctx: CollectContext) -> CollectResult:
        n_top = int(ctx.options.get("top_processes", 10))
        return await asyncio.to_thread(sample, ctx.machine_id, ctx.now, ctx.cursor, n_top, self.stamp)

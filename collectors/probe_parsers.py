"""Parsers for the "basic probe": plain /proc files and coreutils output, for machines with no tools.

Each parser takes the text of one command and returns plain values, raising `ProbeParseError`
with a reason when the text is not what that command prints (truncated, garbage, ANSI junk), so
the probe can keep the sections that did parse and warn about the rest.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from collectors.cli_json import strip_ansi


class ProbeParseError(ValueError):
    pass


@dataclass(frozen=True)
class LoadAvg:
    load1: float
    load5: float
    load15: float
    running: int | None
    total_tasks: int | None


def parse_loadavg(text: str) -> LoadAvg:
    parts = strip_ansi(text).split()
    if len(parts) < 3:
        raise ProbeParseError(f"/proc/loadavg: expected at least 3 fields, got {len(parts)}")
    try:
        l1, l5, l15 = (float(p) for p in parts[:3])
    except ValueError as exc:
        raise ProbeParseError(f"/proc/loadavg: not numbers: {' '.join(parts[:3])[:80]!r}") from exc
    if min(l1, l5, l15) < 0:
        raise ProbeParseError("/proc/loadavg: negative load")
    running = total = None
    if len(parts) >= 4 and "/" in parts[3]:
        a, _, b = parts[3].partition("/")
        if a.isdigit() and b.isdigit():
            running, total = int(a), int(b)
    return LoadAvg(l1, l5, l15, running, total)


def parse_meminfo(text: str) -> dict[str, int]:
    """Bytes per key. MemTotal must be present: without it nothing else is meaningful."""
    out: dict[str, int] = {}
    for line in strip_ansi(text).splitlines():
        key, sep, rest = line.partition(":")
        if not sep:
            continue
        fields = rest.split()
        if not fields or not fields[0].isdigit():
            continue
        value = int(fields[0])
        if len(fields) > 1 and fields[1].lower() == "kb":
            value *= 1024
        out[key.strip()] = value
    if "MemTotal" not in out:
        raise ProbeParseError("/proc/meminfo: no MemTotal line")
    return out


def memory_from_meminfo(info: dict[str, int]) -> dict[str, int | None]:
    total = info["MemTotal"]
    available = info.get("MemAvailable")
    if available is None:  # kernels before 3.14
        available = info.get("MemFree", 0) + info.get("Buffers", 0) + info.get("Cached", 0)
    swap_total = info.get("SwapTotal")
    swap_free = info.get("SwapFree")
    return {
        "mem_total_bytes": total,
        "mem_available_bytes": available,
        "mem_used_bytes": max(0, total - available),
        "swap_total_bytes": swap_total,
        "swap_used_bytes": None if swap_total is None or swap_free is None else max(0, swap_total - swap_free),
    }


def parse_uptime(text: str) -> float:
    parts = strip_ansi(text).split()
    try:
        value = float(parts[0])
    except (IndexError, ValueError) as exc:
        raise ProbeParseError(f"/proc/uptime: expected seconds, got {text.strip()[:80]!r}") from exc
    if value < 0:
        raise ProbeParseError("/proc/uptime: negative uptime")
    return value


@dataclass(frozen=True)
class DfRow:
    device: str
    total_bytes: int
    used_bytes: int
    free_bytes: int
    used_pct: float
    mount: str


_PSEUDO_FS_DEVICES = {"tmpfs", "devtmpfs", "udev", "none", "overlay_ro", "shm", "proc", "sysfs", "cgroup"}


def parse_df(text: str, *, include_pseudo: bool = False) -> tuple[list[DfRow], list[str]]:
    """`df -P` (1024-blocks) or `df -P -B1`; returns rows and per-line warnings."""
    lines = [ln for ln in strip_ansi(text).splitlines() if ln.strip()]
    if not lines or not lines[0].lower().startswith("filesystem"):
        raise ProbeParseError("df -P: missing header line")
    header = lines[0].split()
    unit_field = header[1] if len(header) > 1 else "1024-blocks"
    m = re.match(r"(\d+)([KMG]?)-blocks", unit_field, re.I)
    if m:
        unit = int(m.group(1)) * {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3}[m.group(2).upper()]
    elif unit_field.lower() == "size":
        raise ProbeParseError("df: human-readable sizes are not supported; use df -P")
    else:
        unit = 1024
    rows: list[DfRow] = []
    warnings: list[str] = []
    for ln in lines[1:]:
        parts = ln.split()
        if len(parts) < 6:
            warnings.append(f"df -P: skipped short line {ln[:80]!r}")
            continue
        # Mount points may contain spaces: everything after the 5th field is the mount.
        device, total, used, avail, pct = parts[:5]
        mount = " ".join(parts[5:])
        try:
            t, u, a = int(total) * unit, int(used) * unit, int(avail) * unit
        except ValueError:
            warnings.append(f"df -P: skipped non-numeric line {ln[:80]!r}")
            continue
        if not include_pseudo and (device in _PSEUDO_FS_DEVICES or t == 0):
            continue
        pct_val = pct.rstrip("%")
        # df's Capacity rounds up; recompute from used/avail the way df defines it.
        used_pct = 100.0 * u / (u + a) if (u + a) else (float(pct_val) if pct_val.isdigit() else 0.0)
        rows.append(DfRow(device, t, u, a, used_pct, mount))
    return rows, warnings


def parse_free(text: str) -> dict[str, int]:
    """`free -b`: used as a cross-check and fallback when /proc/meminfo is unreadable."""
    out: dict[str, int] = {}
    lines = strip_ansi(text).splitlines()
    header = None
    for ln in lines:
        parts = ln.split()
        if not parts:
            continue
        if parts[0] == "total":
            header = parts
            continue
        if header and parts[0] in ("Mem:", "Swap:"):
            name = parts[0].rstrip(":").lower()
            for col, val in zip(header, parts[1:], strict=False):
                if val.isdigit():
                    out[f"{name}_{col}"] = int(val)
    if "mem_total" not in out:
        raise ProbeParseError("free -b: no Mem: line with a total")
    return out


def parse_nproc(text: str) -> int:
    s = strip_ansi(text).strip()
    if not s.isdigit() or int(s) <= 0:
        raise ProbeParseError(f"nproc: expected a positive integer, got {s[:40]!r}")
    return int(s)


def parse_proc_stat_cpu(text: str) -> tuple[int, int]:
    """(busy, total) jiffies from the aggregate `cpu` line; a rate needs two readings."""
    for ln in strip_ansi(text).splitlines():
        parts = ln.split()
        if parts and parts[0] == "cpu":
            try:
                vals = [int(v) for v in parts[1:]]
            except ValueError as exc:
                raise ProbeParseError("/proc/stat: cpu line is not numeric") from exc
            if len(vals) < 4:
                raise ProbeParseError("/proc/stat: cpu line too short")
            idle = vals[3] + (vals[4] if len(vals) > 4 else 0)
            # guest time is already counted in user/nice
            total = sum(vals[:8]) if len(vals) >= 8 else sum(vals)
            return total - idle, total
    raise ProbeParseError("/proc/stat: no aggregate cpu line")


def parse_vmstat_oom_kill(text: str) -> int | None:
    """The `oom_kill` counter of /proc/vmstat: processes the OOM killer killed since boot.

    None when the text has no such line: kernels before 4.13 do not count OOM kills, and a count
    that is unknown must stay unknown (NULL), never read as 0 ("no kills"). A line that is there
    but not a count is an error, so a garbled read is not mistaken for an old kernel.
    """
    for ln in strip_ansi(text).splitlines():
        parts = ln.split()
        if parts and parts[0] == "oom_kill":
            if len(parts) != 2 or not parts[1].isdigit():
                raise ProbeParseError(f"/proc/vmstat: oom_kill is not a count: {ln.strip()[:80]!r}")
            return int(parts[1])
    return None


def parse_net_dev(text: str) -> dict[str, tuple[int, int]]:
    """Interface → (rx_bytes, tx_bytes), loopback excluded."""
    out: dict[str, tuple[int, int]] = {}
    for ln in strip_ansi(text).splitlines():
        if ":" not in ln:
            continue
        name, _, rest = ln.partition(":")
        name = name.strip()
        fields = rest.split()
        if name == "lo" or len(fields) < 9:
            continue
        try:
            out[name] = (int(fields[0]), int(fields[8]))
        except ValueError:
            continue
    if not out and "Inter-" not in text:
        raise ProbeParseError("/proc/net/dev: no interfaces")
    return out

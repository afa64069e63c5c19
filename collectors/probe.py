"""The basic probe: one shell round-trip of /proc files and coreutils, for any Linux machine.

It is the fallback that always runs on remote machines, so it must survive anything: each section
parses on its own and a broken section costs only its own fields (with a warning).

The `vmstat` section is only the `oom_kill` line of /proc/vmstat (grep, not the ~190-line file):
the kernel's cumulative OOM-kill count, which kernels before 4.13 do not have. An empty section
leaves `oom_kill_total` NULL (unknown), never 0.
"""

from __future__ import annotations

from typing import Any

from collectors import probe_parsers as pp
from collectors.base import CollectContext, Collector, CollectResult
from collectors.rates import busy_pct, counter_rate

SECTIONS = ("loadavg", "meminfo", "uptime", "nproc", "df", "free", "stat", "netdev", "vmstat")
_MARK = "__VC_SECTION__"

PROBE_COMMAND = "; ".join(
    f"echo {_MARK} {name}; {cmd} 2>/dev/null"
    for name, cmd in (
        ("loadavg", "cat /proc/loadavg"),
        ("meminfo", "cat /proc/meminfo"),
        ("uptime", "cat /proc/uptime"),
        ("nproc", "nproc"),
        ("df", "df -P -x tmpfs -x devtmpfs -x squashfs"),
        ("free", "free -b"),
        ("stat", "head -1 /proc/stat"),
        ("netdev", "cat /proc/net/dev"),
        ("vmstat", "grep -E '^oom_kill ' /proc/vmstat"),
    )
)


def split_sections(text: str) -> dict[str, str]:
    out: dict[str, list[str]] = {}
    current: str | None = None
    for line in text.splitlines():
        if line.startswith(_MARK):
            current = line[len(_MARK):].strip()
            out[current] = []
        elif current is not None:
            out[current].append(line)
    return {k: "\n".join(v) for k, v in out.items()}


def parse_probe(machine_id: str, text: str, ts, cursor: dict[str, Any] | None,
                stamp) -> tuple[dict[str, list[dict]], dict[str, Any], list[str]]:
    """Rows for sys_samples / sys_filesystems, the next cursor, and warnings."""
    warnings: list[str] = []
    sections = split_sections(text)
    missing = [s for s in SECTIONS if s not in sections]
    if len(missing) == len(SECTIONS):
        raise pp.ProbeParseError(f"probe output has none of its sections ({len(text)} bytes of something else)")
    if missing:
        warnings.append(f"probe: sections missing (output truncated?): {', '.join(missing)}")

    sample: dict[str, Any] = {"ts": ts}
    next_cursor: dict[str, Any] = {"ts": ts.timestamp()}
    prev = cursor or {}
    dt = ts.timestamp() - prev["ts"] if "ts" in prev else None

    def attempt(name: str, fn):
        if name not in sections:
            return None
        try:
            return fn(sections[name])
        except pp.ProbeParseError as exc:
            warnings.append(f"probe: {exc}")
            return None

    la = attempt("loadavg", pp.parse_loadavg)
    if la:
        sample.update(load1=la.load1, load5=la.load5, load15=la.load15)
    mem = attempt("meminfo", pp.parse_meminfo)
    if mem:
        sample.update(pp.memory_from_meminfo(mem))
    else:
        free = attempt("free", pp.parse_free)
        if free:
            sample.update(mem_total_bytes=free["mem_total"], mem_used_bytes=free.get("mem_used"),
                          mem_available_bytes=free.get("mem_available"),
                          swap_total_bytes=free.get("swap_total"), swap_used_bytes=free.get("swap_used"))
    up = attempt("uptime", pp.parse_uptime)
    if up is not None:
        sample["uptime_seconds"] = up
    n = attempt("nproc", pp.parse_nproc)
    if n:
        sample["cpu_count"] = n
    stat = attempt("stat", pp.parse_proc_stat_cpu)
    if stat:
        next_cursor["cpu"] = list(stat)
        sample["cpu_pct"] = busy_pct(tuple(prev["cpu"]) if "cpu" in prev else None, stat)
    net = attempt("netdev", pp.parse_net_dev)
    if net is not None:
        rx = sum(v[0] for v in net.values())
        tx = sum(v[1] for v in net.values())
        next_cursor["net"] = [rx, tx]
        p = prev.get("net")
        sample["net_rx_bps"] = counter_rate(p[0] if p else None, rx, dt)
        sample["net_tx_bps"] = counter_rate(p[1] if p else None, tx, dt)
    oom = attempt("vmstat", pp.parse_vmstat_oom_kill)
    if oom is not None:
        sample["oom_kill_total"] = oom

    rows: dict[str, list[dict]] = {"sys_samples": [stamp(machine_id, **sample)]}
    df = attempt("df", lambda t: pp.parse_df(t))
    if df:
        fs_rows, df_warn = df
        warnings.extend(df_warn)
        seen: set[str] = set()
        rows["sys_filesystems"] = []
        for r in fs_rows:
            if r.mount in seen:
                continue
            seen.add(r.mount)
            rows["sys_filesystems"].append(stamp(
                machine_id, ts=ts, mount=r.mount, device=r.device, total_bytes=r.total_bytes,
                used_bytes=r.used_bytes, free_bytes=r.free_bytes, used_pct=r.used_pct))
    return rows, next_cursor, warnings


class ProbeCollector(Collector):
    name = "probe"
    source_version = "1"
    schema_version = 1

    async def collect(self, ctx: CollectContext) -> CollectResult:
        res = await ctx.executor.run(PROBE_COMMAND, timeout_s=ctx.limits.timeout_s, max_bytes=ctx.limits.max_bytes)
        result = CollectResult()
        if (p := res.problem()):
            result.warnings.append(p)
        rows, cursor, warnings = parse_probe(ctx.machine_id, res.text, ctx.now, ctx.cursor, self.stamp)
        result.rows = rows
        result.cursor = cursor
        result.warnings.extend(warnings)
        return result

"""SRPS `sysmoni --json`: one system sample (CPU, load, memory, IO, inotify, temps, GPUs, top processes).

Two programs answer to `sysmoni`: the Go binary (PascalCase keys, bytes, RFC 3339 timestamps) and
the legacy bash fallback the installer leaves when the download fails (snake_case keys, percentages,
epoch seconds). Which one a machine has is only visible in the payload, so the shape is detected per
sample by its keys, never assumed per machine.

The Go one-shot mode emits the sampler's very first sample, whose CPU and IO figures are deltas
against nothing: all zeros. Storing those zeros would draw a perfectly idle machine, so such a
sample keeps NULL for the rates (the machine's load, memory and processes are still real).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from collectors.base import CollectContext, Collector, CollectResult
from collectors.cli_json import Fields, Problems, cap_rows, command_warnings, decode_json_lines, dumps

COMMAND = "sysmoni --json"
SAMPLES = "sysmoni_snapshots"
PROCS = "sysmoni_top_processes"


def detect_variant(obj: dict[str, Any]) -> str | None:
    """'go' | 'bash' | None, by the keys each implementation always prints."""
    if "CPU" in obj or "Memory" in obj or "Timestamp" in obj:
        return "go"
    if "cpu" in obj or "mem" in obj or "top" in obj:
        return "bash"
    return None


def _all_zero(values: list[Any]) -> bool:
    return all(isinstance(v, int | float) and not isinstance(v, bool) and v == 0 for v in values)


def _max_temp(items: list[Any], zone_key: str, temp_key: str) -> tuple[float | None, str | None]:
    best: tuple[float | None, str | None] = (None, None)
    for t in items:
        if not isinstance(t, dict):
            continue
        v = t.get(temp_key)
        if isinstance(v, int | float) and not isinstance(v, bool) and (best[0] is None or v > best[0]):
            zone = t.get(zone_key)
            best = (float(v), zone if isinstance(zone, str) else None)
    return best


def _go_process(p: Fields) -> dict[str, Any]:
    return {"pid": p.int("PID"), "nice": p.int("Nice"), "cpu_pct": p.num("CPU"), "mem_pct": p.num("Memory"),
            "command": p.str("Command"), "fd_count": p.int("FDCount"), "read_kbs": p.num("ReadKBs"),
            "write_kbs": p.num("WriteKBs"), "fd_diff": p.int("FDDiff")}


def _bash_process(p: Fields) -> dict[str, Any]:
    return {"pid": p.int("pid"), "nice": p.int("nice"), "cpu_pct": p.num("cpu"), "mem_pct": p.num("mem"),
            "command": p.str("cmd"), "fd_count": None, "read_kbs": None, "write_kbs": None, "fd_diff": None}


Procs = list[tuple[str, dict[str, Any]]]


def parse_go(obj: dict[str, Any], problems: Problems) -> tuple[dict[str, Any], Procs]:
    f = Fields(obj, problems)
    cpu = f.sub("CPU")
    mem = f.sub("Memory")
    io = f.sub("IO")
    ino = f.sub("Inotify")
    per_core = cpu.list("PerCore")
    total = cpu.num("Total")
    # The one-shot's first sample: Total 0 and every core 0 (or no per-core data at all).
    first_sample = total == 0 and _all_zero(per_core)
    interval_ns = f.int("Interval")
    used, mem_total = mem.int("UsedBytes"), mem.int("TotalBytes")
    temps = f.list("Temps")
    tmax, tzone = _max_temp(temps, "Zone", "Temp")
    gpus = f.list("GPUs")
    top = f.list("Top")
    throttled = f.list("Throttled")
    rates = {
        "disk_read_mbs": io.num("DiskReadMBs"), "disk_write_mbs": io.num("DiskWriteMBs"),
        "net_rx_mbps": io.num("NetRxMbps"), "net_tx_mbps": io.num("NetTxMbps"),
    }
    if first_sample:
        rates = dict.fromkeys(rates)
    sample = {
        "variant": "go",
        "ts": f.ts("Timestamp"),
        "interval_s": interval_ns / 1e9 if interval_ns is not None else None,
        "first_sample": first_sample,
        "cpu_pct": None if first_sample else total,
        "cpu_cores": len(per_core) or None,
        "per_core_json": None if first_sample or not per_core else dumps(per_core),
        "load1": cpu.num("Load1"), "load5": cpu.num("Load5"), "load15": cpu.num("Load15"),
        "mem_used_bytes": used, "mem_total_bytes": mem_total,
        "mem_used_pct": 100.0 * used / mem_total if used is not None and mem_total else None,
        "mem_cached_bytes": mem.int("Cached"), "mem_buffers_bytes": mem.int("Buffers"),
        "swap_used_bytes": mem.int("SwapUsed"), "swap_total_bytes": mem.int("SwapTotal"),
        **rates,
        "io_per_device_json": None if first_sample else io.json("PerDevice"),
        "inotify_max_user_watches": ino.int("MaxUserWatches"),
        "inotify_max_user_instances": ino.int("MaxUserInstances"),
        "inotify_nr_watches": ino.int("NrWatches"),
        "temp_max_c": tmax, "temp_max_zone": tzone,
        "gpu_count": len(gpus), "gpu_json": dumps(gpus) if gpus else None,
        "throttled_count": len(throttled),
        "cgroups_json": f.json("Cgroups"),
        "battery_json": f.json("Battery"),
    }
    procs: Procs = []
    for kind, items in (("top", top), ("throttled", throttled)):
        for i, p in enumerate(items):
            key = "Top" if kind == "top" else "Throttled"
            if not isinstance(p, dict):
                problems.add(f"{key}[{i}] should be an object")
                continue
            procs.append((kind, _go_process(Fields(p, problems, f"{key}[{i}]."))))
    if first_sample and procs and all(r["cpu_pct"] in (0, None) for _, r in procs):
        for _, r in procs:  # per-process CPU is a delta as well
            r["cpu_pct"] = None
    return sample, procs


def parse_bash(obj: dict[str, Any], problems: Problems) -> tuple[dict[str, Any], Procs]:
    f = Fields(obj, problems)
    io = f.sub("io")
    ino = f.sub("inotify")
    per_core = [c.get("cpu") for c in f.list("per_core") if isinstance(c, dict)]
    temps = f.list("temps")
    tmax, tzone = _max_temp(temps, "zone", "temp_c")
    gpus = f.list("gpu")
    sample = {
        "variant": "bash",
        "ts": f.epoch("timestamp", 1.0),
        "interval_s": None,
        "first_sample": False,  # the bash script samples /proc/stat twice itself
        "cpu_pct": f.num("cpu"),
        "cpu_cores": len(per_core) or None,
        "per_core_json": dumps(per_core) if per_core else None,
        "load1": None, "load5": None, "load15": None,
        "mem_used_bytes": None, "mem_total_bytes": None, "mem_used_pct": f.num("mem"),
        "mem_cached_bytes": None, "mem_buffers_bytes": None,
        "swap_used_bytes": None, "swap_total_bytes": None,
        "disk_read_mbs": io.num("disk_read_mb_s"), "disk_write_mbs": io.num("disk_write_mb_s"),
        "net_rx_mbps": io.num("net_rx_mbps"), "net_tx_mbps": io.num("net_tx_mbps"),
        "io_per_device_json": io.json("per_device"),
        "inotify_max_user_watches": ino.int("max_user_watches"),
        "inotify_max_user_instances": ino.int("max_user_instances"),
        "inotify_nr_watches": ino.int("nr_watches"),
        "temp_max_c": tmax, "temp_max_zone": tzone,
        "gpu_count": len(gpus), "gpu_json": dumps(gpus) if gpus else None,
        "throttled_count": None,
        "cgroups_json": f.json("cgroups"),
        "battery_json": f.json("battery"),
    }
    procs: Procs = []
    for i, p in enumerate(f.list("top")):
        if not isinstance(p, dict):
            problems.add(f"top[{i}] should be an object")
            continue
        procs.append(("top", _bash_process(Fields(p, problems, f"top[{i}]."))))
    return sample, procs


def parse_samples(text: str, machine_id: str, collected_at: datetime, stamp, max_top: int = 20,
                  max_rows: int = 200_000) -> tuple[dict[str, list[dict[str, Any]]], list[str]]:
    """Rows for both tables from `sysmoni --json` (one line) or `--json-stream` (NDJSON) output."""
    values, warnings = decode_json_lines(text, "sysmoni")
    samples: list[dict[str, Any]] = []
    procs: list[dict[str, Any]] = []
    seen_ts: set[datetime] = set()
    for n, obj in enumerate(values):
        if not isinstance(obj, dict):
            warnings.append(f"sysmoni: line {n + 1} is a JSON {type(obj).__name__}, not a sample object")
            continue
        variant = detect_variant(obj)
        if variant is None:
            warnings.append(f"sysmoni: line {n + 1} has neither the Go (CPU/Memory) nor the bash (cpu/mem) "
                            f"keys; unknown format, keys: {', '.join(sorted(obj)[:10])}")
            continue
        problems = Problems(f"sysmoni ({variant})")
        sample, plist = (parse_go if variant == "go" else parse_bash)(obj, problems)
        warnings.extend(problems.warnings())
        ts = sample["ts"] or collected_at
        if ts in seen_ts:
            continue
        seen_ts.add(ts)
        sample["ts"] = ts
        samples.append(stamp(machine_id, collected_at=collected_at, raw_json=dumps(obj), **sample))
        rank = {"top": 0, "throttled": 0}
        for kind, p in plist:
            if kind == "top" and rank["top"] >= max_top:
                continue
            rank[kind] += 1
            procs.append(stamp(machine_id, ts=ts, list_kind=kind, rank=rank[kind], **p))
    if values and not samples and not warnings:
        warnings.append("sysmoni: no samples in output")
    if not values and not warnings:
        warnings.append("sysmoni: empty output")
    rows: dict[str, list[dict[str, Any]]] = {}
    if samples:
        rows[SAMPLES] = cap_rows(samples, max_rows, "sysmoni", warnings)
    if procs:
        rows[PROCS] = cap_rows(procs, max_rows, "sysmoni processes", warnings)
    return rows, warnings


class SysmoniCollector(Collector):
    name = "sysmoni"
    source_version = "1"
    schema_version = 1
    required_tool = "sysmoni"

    async def collect(self, ctx: CollectContext) -> CollectResult:
        res = await ctx.executor.run(COMMAND, timeout_s=ctx.limits.timeout_s, max_bytes=ctx.limits.max_bytes)
        rows, warnings = parse_samples(res.text, ctx.machine_id, ctx.now, self.stamp,
                                       max_top=int(ctx.options.get("top_processes", 20)),
                                       max_rows=ctx.limits.max_rows)
        result = CollectResult(rows=rows)
        result.warnings = command_warnings(res, "sysmoni", payload_ok=bool(rows)) + warnings
        return result

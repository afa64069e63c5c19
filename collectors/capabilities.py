"""Which tools a machine has, found in one shell round-trip and cached per machine with a TTL.

Collectors are enabled per machine by the presence of their upstream tool, and a fleet of hundreds
of machines cannot afford one SSH round-trip per tool per cycle: one script runs `command -v` for
every tool (and `TOOL --version` only for tools known to answer it quickly, each bounded by
`timeout`), prints one marker line per tool, and `parse_capabilities` reads that text back.

Unknown is not absent: a tool missing from a truncated or timed-out answer is left out of the
result (with a warning), so a slow machine never makes a collector look uninstalled.

Every check is kept as rows of `machine_tool_capabilities` (PK machine_id, tool, checked_at), so
"when did `caut` disappear from host-7" is a query.
"""

from __future__ import annotations

import asyncio
import re
import shlex
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, NamedTuple

from collectors.base import CollectContext, Collector, CollectResult
from collectors.cli_json import strip_ansi
from collectors.executors.base import CommandResult, Executor

TABLE = "machine_tool_capabilities"
MARK = "__VC_CAP__"

# Upstream tools of the fleet plus the basics their collectors and playbooks lean on.
DEFAULT_TOOLS: tuple[str, ...] = (
    "caut", "caam", "cass", "ntm", "br", "bv", "ru", "dcg", "pt", "rano", "rch", "sysmoni",
    "automated_flywheel_setup_checker", "claude", "codex", "gemini", "tmux", "git", "sqlite3",
    "python3", "docker", "timeout",
)

# Tools whose version flag is cheap (a static binary or a tiny script printing one line). Node- and
# Python-heavy CLIs (claude, codex, gemini) are left out: their --version costs a runtime start-up.
VERSION_FLAGS: dict[str, str] = {
    "caut": "--version", "caam": "--version", "cass": "--version", "ntm": "--version",
    "br": "--version", "bv": "--version", "ru": "--version", "dcg": "--version", "pt": "--version",
    "rano": "--version", "rch": "--version", "tmux": "-V", "git": "--version",
    "sqlite3": "--version", "python3": "--version",
}

_TOOL_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.+-]{0,127}$")
_FLAG_RE = re.compile(r"^-{1,2}[A-Za-z][A-Za-z0-9-]*$")
# A version token stands alone (after a space, "(" or "v") so dates and timestamps in junk lines
# (12:30:00.123Z) are not mistaken for one.
_VERSION_RE = re.compile(r"(?:^|[\s(v])(\d+\.\d+(?:\.\d+)*[a-z]?(?:[-+][0-9A-Za-z.+-]+)?)(?=$|[\s,;)])")


class ToolCapability(NamedTuple):
    present: bool
    path: str | None
    version: str | None


def _check_tool(tool: str) -> str:
    if not _TOOL_RE.match(tool):
        raise ValueError(f"not a tool name: {tool!r}")  # it goes into a shell script
    return tool


def capability_command(tools: Iterable[str], version_flags: Mapping[str, str] | None = None,
                       version_timeout_s: int = 2) -> str:
    """The one-round-trip shell script (POSIX sh). Versions only where `timeout` exists to bound them."""
    flags = VERSION_FLAGS if version_flags is None else version_flags
    t = max(1, int(version_timeout_s))
    fn = (
        "vc_t() { p=$(command -v \"$1\" 2>/dev/null) || p=; "
        f"if [ -z \"$p\" ]; then printf '{MARK}\\t%s\\t0\\t\\t\\n' \"$1\"; return 0; fi; v=; "
        "if [ -n \"$2\" ] && [ -n \"$vc_to\" ]; then "
        "v=$($vc_to \"$p\" $2 </dev/null 2>&1 | head -n 1 | head -c 200 | tr -d '\\t\\r'); fi; "
        f"printf '{MARK}\\t%s\\t1\\t%s\\t%s\\n' \"$1\" \"$p\" \"$v\"; }}"
    )
    lines = [f"vc_to=; command -v timeout >/dev/null 2>&1 && vc_to='timeout -s KILL {t}'", fn]
    seen: set[str] = set()
    for tool in tools:
        if _check_tool(tool) in seen:
            continue
        seen.add(tool)
        flag = flags.get(tool, "")
        if flag and not _FLAG_RE.match(flag):
            raise ValueError(f"not a version flag: {flag!r}")
        lines.append(f"vc_t {tool} {shlex.quote(flag) if flag else chr(39) * 2}")
    return "\n".join(lines) + "\n"


def extract_version(line: str) -> str | None:
    """The version token of a `--version` line ("git version 2.39.5" -> "2.39.5"), or None."""
    line = strip_ansi(line).strip()[:200]
    if not line or line[0] in "{[<":  # a tool that ignored the flag and printed its payload
        return None
    m = _VERSION_RE.search(line)
    return m.group(1) if m else None


def parse_capabilities(text: str) -> dict[str, ToolCapability]:
    """{tool: (present, path, version)} from the script's output; junk lines are ignored.

    A last line without its newline was cut off mid-write and is dropped, because a cut path
    would be a wrong path.
    """
    lines = text.splitlines()
    if lines and not text.endswith("\n"):
        lines = lines[:-1]
    out: dict[str, ToolCapability] = {}
    for raw in lines:
        line = strip_ansi(raw)
        if not line.startswith(MARK + "\t"):
            continue
        parts = line.split("\t")
        if len(parts) < 3 or not _TOOL_RE.match(parts[1]) or parts[2] not in ("0", "1"):
            continue
        tool, present = parts[1], parts[2] == "1"
        if not present:
            out[tool] = ToolCapability(False, None, None)
            continue
        path = parts[3].strip() if len(parts) > 3 and parts[3].strip() else None
        version = extract_version("\t".join(parts[4:])) if len(parts) > 4 else None
        out[tool] = ToolCapability(True, path, version)
    return out


@dataclass
class CapabilityReport:
    machine_id: str
    checked_at: datetime
    tools: dict[str, ToolCapability]
    warnings: list[str] = field(default_factory=list)
    from_cache: bool = False

    def has(self, tool: str) -> bool | None:
        """True/False when known, None when the machine did not answer for this tool."""
        cap = self.tools.get(tool)
        return None if cap is None else cap.present

    def rows(self, stamp: Any = None) -> list[dict[str, Any]]:
        """Rows for `machine_tool_capabilities`; `stamp` adds provenance (Collector.stamp)."""
        out = []
        for tool, cap in sorted(self.tools.items()):
            row: dict[str, Any] = {"tool": tool, "checked_at": self.checked_at, "present": cap.present,
                                   "path": cap.path, "version": cap.version}
            out.append(stamp(self.machine_id, **row) if stamp else {"machine_id": self.machine_id, **row})
        return out


def report_from_result(machine_id: str, wanted: list[str], res: CommandResult,
                       checked_at: datetime) -> CapabilityReport:
    """What one probe's output says, with warnings for anything that makes it incomplete."""
    warnings: list[str] = []
    if res.problem():
        warnings.append(f"capabilities: {res.problem()}")
    elif res.exit_code != 0:
        warnings.append(f"capabilities: probe exited {res.exit_code}: {res.err_text.strip()[:300]}")
    wanted_set = set(wanted)
    found = {t: c for t, c in parse_capabilities(res.text).items() if t in wanted_set}
    missing = [t for t in wanted if t not in found]
    if missing:
        warnings.append(f"capabilities: no answer for {len(missing)} tool(s), left unknown: "
                        f"{', '.join(missing[:20])}")
    return CapabilityReport(machine_id, checked_at, found, warnings)


async def probe_capabilities(executor: Executor, tools: Iterable[str] = DEFAULT_TOOLS, *,
                             now: datetime | None = None, timeout_s: float = 15.0,
                             max_bytes: int = 256 * 1024,
                             version_flags: Mapping[str, str] | None = None) -> CapabilityReport:
    """One round-trip on `executor`; ExecutorError (unreachable machine) propagates to the caller."""
    wanted = list(dict.fromkeys(tools))
    checked_at = now or datetime.now(UTC)
    script = capability_command(wanted, version_flags)
    res = await executor.run(script, timeout_s=timeout_s, max_bytes=max_bytes)
    return report_from_result(executor.machine_id, wanted, res, checked_at)


class CapabilityCache:
    """Per-machine capability answers, reused until `ttl_s` old; concurrent askers share one probe."""

    def __init__(self, ttl_s: float = 600.0, clock: Any = time.monotonic):
        self.ttl_s = ttl_s
        self.clock = clock
        self._entries: dict[str, tuple[float, CapabilityReport]] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    def peek(self, machine_id: str) -> CapabilityReport | None:
        """The cached report if still fresh."""
        entry = self._entries.get(machine_id)
        if entry is None or self.clock() - entry[0] >= self.ttl_s:
            return None
        return entry[1]

    def invalidate(self, machine_id: str | None = None) -> None:
        if machine_id is None:
            self._entries.clear()
        else:
            self._entries.pop(machine_id, None)

    async def get(self, executor: Executor, tools: Iterable[str] = DEFAULT_TOOLS, *, force: bool = False,
                  **probe_kw: Any) -> CapabilityReport:
        wanted = list(dict.fromkeys(tools))
        mid = executor.machine_id
        lock = self._locks.setdefault(mid, asyncio.Lock())
        async with lock:
            cached = None if force else self.peek(mid)
            if cached is not None and all(t in cached.tools for t in wanted):
                return CapabilityReport(mid, cached.checked_at, {t: cached.tools[t] for t in wanted},
                                        [], from_cache=True)
            report = await probe_capabilities(executor, wanted, **probe_kw)
            if report.tools:  # a probe that got no answer (hung, garbage) is not worth trusting for a TTL
                self._entries[mid] = (self.clock(), report)
            return report


# The daemon's cache: collector instances are created per cycle, the cache outlives them.
CACHE = CapabilityCache()


def tools_to_check() -> list[str]:
    """DEFAULT_TOOLS plus every registered collector's `required_tool`."""
    from collectors import registry  # late: the registry imports this module's collector

    extra = [c.required_tool for c in registry.ALL.values() if c.required_tool]
    return list(dict.fromkeys([*DEFAULT_TOOLS, *extra]))


class CapabilitiesCollector(Collector):
    """Records tool availability rows when the cache had to ask the machine (at most once per TTL)."""

    name = "capabilities"
    source_version = "1"
    schema_version = 1

    def __init__(self, cache: CapabilityCache | None = None):
        self.cache = cache or CACHE

    async def collect(self, ctx: CollectContext) -> CollectResult:
        tools = ctx.options.get("capability_tools") or tools_to_check()
        report = await self.cache.get(ctx.executor, tools, now=ctx.now,
                                      timeout_s=min(ctx.limits.timeout_s, 20.0),
                                      max_bytes=min(ctx.limits.max_bytes, 1024 * 1024))
        result = CollectResult(warnings=list(report.warnings))
        if not report.from_cache:
            result.extend(TABLE, report.rows(self.stamp))
        return result

"""Fake machines at the machine edge only: a directory of shell scripts named after upstream tools.

Each script prints a recorded payload (and exits with a chosen code), and the real LocalExecutor
runs it with that directory first on PATH, so collectors are tested through the same command path
they use in production.
"""

from __future__ import annotations

import asyncio
import shlex
import stat
from dataclasses import dataclass
from pathlib import Path

from collectors.base import CollectContext, Collector, CollectResult, Limits
from collectors.executors.local import LocalExecutor

SHARED_FORMATS = Path(__file__).resolve().parents[2] / "shared" / "upstream_formats"


@dataclass
class Tool:
    """What a fake tool does: print `stdout` (bytes or a file), then exit `exit_code`; or sleep."""

    stdout: bytes | str | Path = b""
    exit_code: int = 0
    sleep_s: float = 0.0
    # When set, the script prints a different payload per first argument (e.g. `ru list` / `ru status`).
    by_subcommand: dict[str, bytes | str | Path] | None = None


def _payload(v: bytes | str | Path) -> bytes:
    if isinstance(v, Path):
        return v.read_bytes()
    return v.encode() if isinstance(v, str) else v


def make_toolbox(root: Path, tools: dict[str, Tool]) -> Path:
    """Write one executable per tool under `root/bin`; returns the bin dir."""
    bindir = root / "bin"
    payloads = root / "payloads"
    bindir.mkdir(parents=True, exist_ok=True)
    payloads.mkdir(parents=True, exist_ok=True)
    for name, tool in tools.items():
        lines = ["#!/bin/sh"]
        if tool.sleep_s:
            lines.append(f"sleep {tool.sleep_s}")
        if tool.by_subcommand:
            lines.append('case "$1" in')
            for sub, data in tool.by_subcommand.items():
                f = payloads / f"{name}.{sub}.out"
                f.write_bytes(_payload(data))
                lines.append(f"  {shlex.quote(sub)}) cat {shlex.quote(str(f))} ;;")
            lines.append("  *) echo \"unknown subcommand $1\" >&2; exit 2 ;;")
            lines.append("esac")
        else:
            f = payloads / f"{name}.out"
            f.write_bytes(_payload(tool.stdout))
            lines.append(f"cat {shlex.quote(str(f))}")
        lines.append(f"exit {tool.exit_code}")
        script = bindir / name
        script.write_text("\n".join(lines) + "\n")
        script.chmod(script.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return bindir


def toolbox_executor(root: Path, tools: dict[str, Tool], machine_id: str = "test-host") -> LocalExecutor:
    import os

    bindir = make_toolbox(root, tools)
    return LocalExecutor(machine_id, env={"PATH": f"{bindir}:{os.environ.get('PATH', '/usr/bin:/bin')}",
                                          "HOME": str(root)})


def run_collector(collector: Collector, executor, cursor: dict | None = None,
                  limits: Limits | None = None, **kw) -> CollectResult:
    ctx = CollectContext(machine_id=executor.machine_id, executor=executor, cursor=cursor,
                         limits=limits or Limits(timeout_s=10), **kw)
    return asyncio.run(collector.collect(ctx))

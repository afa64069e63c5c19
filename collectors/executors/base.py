"""Executors run read-only commands on a machine and return bounded output.

Collectors see only this interface, so the same parser runs on the local machine and over SSH.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass


class ExecutorError(RuntimeError):
    """The machine could not be reached or the command could not be started."""


@dataclass
class CommandResult:
    command: str
    exit_code: int | None
    stdout: bytes
    stderr: bytes
    duration_s: float
    timed_out: bool = False
    truncated: bool = False

    @property
    def text(self) -> str:
        return self.stdout.decode("utf-8", errors="replace")

    @property
    def err_text(self) -> str:
        return self.stderr.decode("utf-8", errors="replace")

    def problem(self) -> str | None:
        """A one-line reason this output should not be trusted as complete, or None."""
        if self.timed_out:
            return f"`{self.command}` timed out after {self.duration_s:.1f}s"
        if self.truncated:
            return f"`{self.command}` output exceeded the byte limit and was truncated"
        return None


class Executor(abc.ABC):
    machine_id: str

    @abc.abstractmethod
    async def run(self, command: str, *, timeout_s: float, max_bytes: int) -> CommandResult:
        """Run `command` through a POSIX shell; never raises for a non-zero exit."""

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Release the connection (SSH executors reuse one per machine per cycle)."""

    async def has_tool(self, tool: str, timeout_s: float = 5.0) -> bool:
        res = await self.run(f"command -v {tool}", timeout_s=timeout_s, max_bytes=4096)
        return res.exit_code == 0 and bool(res.stdout.strip())

"""Run commands on this machine with a timeout and an output cap."""

from __future__ import annotations

import asyncio
import os
import signal
import time

from collectors.executors.base import CommandResult, Executor, ExecutorError

_READ_CHUNK = 65536


async def _read_capped(stream: asyncio.StreamReader, max_bytes: int) -> tuple[bytes, bool]:
    buf = bytearray()
    truncated = False
    while True:
        chunk = await stream.read(_READ_CHUNK)
        if not chunk:
            break
        room = max_bytes - len(buf)
        if room > 0:
            buf.extend(chunk[:room])
        if len(chunk) > room:
            truncated = True  # keep draining so the child does not block on a full pipe
    return bytes(buf), truncated


class LocalExecutor(Executor):
    def __init__(self, machine_id: str = "local", env: dict[str, str] | None = None):
        self.machine_id = machine_id
        self.env = env

    async def run(self, command: str, *, timeout_s: float, max_bytes: int) -> CommandResult:
        start = time.monotonic()
        env = {**os.environ, **(self.env or {}), "LC_ALL": "C", "NO_COLOR": "1"}
        try:
            proc = await asyncio.create_subprocess_shell(
                command, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE, env=env, start_new_session=True,
            )
        except OSError as exc:
            raise ExecutorError(f"cannot start `{command}`: {exc}") from exc
        out_task = asyncio.ensure_future(_read_capped(proc.stdout, max_bytes))
        err_task = asyncio.ensure_future(_read_capped(proc.stderr, 64 * 1024))
        timed_out = False
        try:
            await asyncio.wait_for(proc.wait(), timeout_s)
        except TimeoutError:
            timed_out = True
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            await proc.wait()
        (out, out_trunc), (err, _) = await asyncio.gather(out_task, err_task)
        return CommandResult(command, None if timed_out else proc.returncode, out, err,
                             time.monotonic() - start, timed_out=timed_out, truncated=out_trunc)

"""Short-lived DuckDB connections with lock-conflict retry.

DuckDB lets one process write a file or several read it, never both. The daemon, Streamlit,
notebooks and the CLI are separate processes, so nobody keeps a connection between units of
work: open, do one thing, close. A conflict is retried with backoff here so that no caller ever
sees a raw lock error; the caller decides what to do when the budget runs out (the daemon spools).
"""

from __future__ import annotations

import os
import random
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import duckdb

_PID_RE = re.compile(r"Conflicting lock is held in (?P<prog>.+?) \(PID (?P<pid>\d+)\)")


class StoreBusyError(RuntimeError):
    """The database stayed locked by another process for the whole retry budget."""

    def __init__(self, path: Path, waited_s: float, holder: LockHolder | None):
        self.path = path
        self.waited_s = waited_s
        self.holder = holder
        who = f"{holder.program} (PID {holder.pid})" if holder and holder.pid else "another process"
        super().__init__(f"{path} is busy: {who} held it for the last {waited_s:.1f}s")


@dataclass(frozen=True)
class LockHolder:
    program: str | None
    pid: int | None


@dataclass
class LockWait:
    """How long an open had to wait, so the store can record who blocked it."""

    waited_ms: float = 0.0
    attempts: int = 1
    holder: LockHolder | None = None


def is_lock_error(exc: BaseException) -> bool:
    msg = str(exc)
    return isinstance(exc, duckdb.IOException | duckdb.ConnectionException) and (
        "lock" in msg.lower() or "different configuration" in msg.lower()
    )


def parse_lock_holder(exc: BaseException) -> LockHolder | None:
    m = _PID_RE.search(str(exc))
    if not m:
        return None
    return LockHolder(program=os.path.basename(m.group("prog")), pid=int(m.group("pid")))


def _configure(con: duckdb.DuckDBPyConnection) -> None:
    con.execute("SET TimeZone = 'UTC'")


def open_with_retry(
    path: Path, *, read_only: bool, budget_s: float, wait: LockWait | None = None
) -> duckdb.DuckDBPyConnection:
    """Open `path`, retrying lock conflicts with jittered exponential backoff for `budget_s`."""
    start = time.monotonic()
    delay = 0.01
    attempts = 0
    while True:
        attempts += 1
        try:
            con = duckdb.connect(str(path), read_only=read_only)
            _configure(con)
            if wait is not None:
                wait.attempts = attempts
                wait.waited_ms = (time.monotonic() - start) * 1000
            return con
        except (duckdb.IOException, duckdb.ConnectionException) as exc:
            if not is_lock_error(exc):
                raise
            holder = parse_lock_holder(exc)
            if wait is not None:
                wait.holder = holder or wait.holder
            elapsed = time.monotonic() - start
            if elapsed >= budget_s:
                raise StoreBusyError(path, elapsed, holder) from exc
            time.sleep(min(delay * (1 + random.random()), max(0.0, budget_s - elapsed)))
            delay = min(delay * 2, 0.5)


@contextmanager
def raw_reader(path: Path, budget_s: float = 10.0) -> Iterator[duckdb.DuckDBPyConnection]:
    """A read-only connection that is closed when the block ends."""
    if not Path(path).exists():
        raise FileNotFoundError(f"{path}: no database yet; run `vc db migrate` or `vc demo` first")
    con = open_with_retry(Path(path), read_only=True, budget_s=budget_s)
    try:
        yield con
    finally:
        con.close()

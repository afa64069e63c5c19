"""Incremental reading of append-only files on any machine, plus the small decoders tailing collectors share.

A JSONL file is read from a cursor `{inode, offset}` with one read-only shell round-trip, so the same
code works locally and over SSH. Rules (DESIGN.md, storage): only complete lines are consumed, so a
line being written while we read is picked up whole next cycle; an inode change or a file shorter
than the cursor means rotation or truncation, and reading restarts at 0; one cycle reads at most
`max_bytes`, and the rest waits for the next cycle. Rows derived from the lines must carry natural
keys, because a restart at 0 re-reads lines that were already stored.
"""

from __future__ import annotations

import json
import re
import shlex
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from collectors.cli_json import strip_ansi

if TYPE_CHECKING:
    from collectors.executors.base import Executor

_HEADER = "__VC_TAIL__"
_MISSING = "__VC_TAIL_MISSING__"
_UNREADABLE = "__VC_TAIL_UNREADABLE__"
_NOT_A_FILE = "__VC_TAIL_NOT_A_FILE__"
# Room for the stat header on top of the data cap, so the executor never truncates the data itself.
_HEADER_ROOM = 4096


@dataclass(frozen=True)
class TailLine:
    offset: int  # byte offset of the line's first byte in the file: a stable id while the inode lives
    text: str


@dataclass
class TailRead:
    """Complete new lines and the cursor to store with the rows made from them."""

    path: str
    lines: list[TailLine] = field(default_factory=list)
    cursor: dict[str, Any] | None = None
    warnings: list[str] = field(default_factory=list)
    status: str = "ok"  # ok | missing | error
    rotated: bool = False
    pending_bytes: int = 0  # bytes left behind the cap (or a partial last line) for the next cycle


def shell_path(path: str) -> str:
    """Quote a path for sh, keeping a leading `~/` meaning the remote user's home."""
    if path == "~":
        return '"$HOME"'
    if path.startswith("~/"):
        return '"$HOME"/' + shlex.quote(path[2:])
    return shlex.quote(path)


def tail_command(path: str, offset: int, max_bytes: int) -> str:
    """One read-only command: inode and size of the open file, then up to `max_bytes` from `offset`.

    `stat` runs on the same open descriptor as `tail` (`/dev/stdin`), so a rotation between the two
    cannot pair one file's inode with another file's bytes.
    """
    q = shell_path(path)
    return (
        f"f={q}; if [ ! -e \"$f\" ]; then echo {_MISSING}; "
        f"elif [ ! -f \"$f\" ]; then echo {_NOT_A_FILE}; "
        f"elif [ ! -r \"$f\" ]; then echo {_UNREADABLE}; "
        f"else {{ stat -L -c '{_HEADER} %i %s' /dev/stdin && tail -c +{int(offset) + 1} | "
        f"head -c {int(max_bytes)}; }} < \"$f\"; fi"
    )


def _valid_cursor(cursor: Any) -> tuple[int | None, int, bool]:
    if not isinstance(cursor, dict):
        return None, 0, False
    inode = cursor.get("inode")
    offset = cursor.get("offset")
    if not isinstance(inode, int) or isinstance(inode, bool) or not isinstance(offset, int) or offset < 0:
        return None, 0, False
    return inode, offset, bool(cursor.get("skip_to_newline"))


def split_complete(data: bytes, start: int, full: bool, skip_to_newline: bool
                   ) -> tuple[list[TailLine], int, bool, list[str]]:
    """Lines of `data` (read from file offset `start`) that end in a newline.

    Returns (lines, new offset, skip_to_newline for next time, warnings). A chunk that is full and
    holds no newline at all is one line longer than the cap: it is skipped (with a warning) rather
    than stalling the cursor forever.
    """
    warnings: list[str] = []
    pos = 0
    if skip_to_newline:
        nl = data.find(b"\n")
        if nl < 0:  # still inside the over-long line: keep skipping
            return [], start + len(data), True, warnings
        pos = nl + 1
    last_nl = data.rfind(b"\n")
    lines: list[TailLine] = []
    if last_nl >= pos:
        cur = pos
        while cur <= last_nl:
            nl = data.index(b"\n", cur)
            raw = data[cur:nl]
            if raw.endswith(b"\r"):
                raw = raw[:-1]
            if raw.strip():
                lines.append(TailLine(start + cur, raw.decode("utf-8", errors="replace")))
            cur = nl + 1
        return lines, start + last_nl + 1, False, warnings
    if full and len(data) > pos:
        warnings.append(f"a line longer than the {len(data)}-byte read cap at offset {start + pos} "
                        "was skipped")
        return [], start + len(data), True, warnings
    return [], start + pos, False, warnings


async def read_new_lines(executor: Executor, path: str, cursor: dict[str, Any] | None, *, max_bytes: int,
                         timeout_s: float, warn_on_rotation: bool = True) -> TailRead:
    """Read the complete lines appended to `path` since `cursor`; never raises for machine trouble.

    `warn_on_rotation=False` is for files that are rewritten on purpose (an atomic export replaces
    the inode every time), where a restart at 0 is the normal case and not news.
    """
    inode, offset, skip = _valid_cursor(cursor)
    out = TailRead(path=path, cursor=dict(cursor) if isinstance(cursor, dict) else None)
    if cursor is not None and inode is None:
        out.warnings.append(f"{path}: unusable cursor {cursor!r}; reading from the start")
    cap = max(1, int(max_bytes))
    res = await executor.run(tail_command(path, offset, cap), timeout_s=timeout_s,
                             max_bytes=cap + _HEADER_ROOM)
    if res.timed_out:
        out.status = "error"
        out.warnings.append(f"{path}: read timed out after {res.duration_s:.1f}s; will retry next cycle")
        return out
    first, _, data = res.stdout.partition(b"\n")
    head = first.decode("utf-8", errors="replace").strip()
    if head == _MISSING:
        out.status = "missing"
        return out
    if head in (_UNREADABLE, _NOT_A_FILE):
        out.status = "error"
        why = "not readable by the collecting user" if head == _UNREADABLE else "not a regular file"
        out.warnings.append(f"{path}: {why}")
        return out
    parts = head.split()
    if len(parts) != 3 or parts[0] != _HEADER or not parts[1].isdigit() or not parts[2].isdigit():
        out.status = "error"
        detail = (res.err_text.strip() or head)[:200]
        out.warnings.append(f"{path}: could not stat/read the file (exit {res.exit_code}): {detail}")
        return out
    cur_inode, size = int(parts[1]), int(parts[2])
    if inode is not None and (cur_inode != inode or size < offset):
        why = ("inode changed (rotated or replaced)" if cur_inode != inode
               else f"file shrank to {size} < {offset}")
        out.rotated = True
        if warn_on_rotation:
            out.warnings.append(f"{path}: {why}; reading again from the start")
        # The bytes we read came from the old offset: re-read from 0 in the same cycle.
        res = await executor.run(tail_command(path, 0, cap), timeout_s=timeout_s,
                                 max_bytes=cap + _HEADER_ROOM)
        first, _, data = res.stdout.partition(b"\n")
        parts = first.decode("utf-8", errors="replace").split()
        if res.timed_out or len(parts) != 3 or parts[0] != _HEADER or not parts[1].isdigit():
            out.status = "error"
            out.cursor = None  # start over next cycle rather than trust the stale cursor
            out.warnings.append(f"{path}: re-read after rotation failed (exit {res.exit_code}); "
                                "retry next cycle")
            return out
        cur_inode, size = int(parts[1]), int(parts[2])
        offset, skip = 0, False
    elif inode is None:
        offset, skip = 0, False
    full = len(data) >= cap
    lines, new_offset, new_skip, warns = split_complete(data, offset, full, skip)
    out.warnings.extend(f"{path}: {w}" for w in warns)
    out.lines = lines
    out.cursor = {"inode": cur_inode, "offset": new_offset}
    if new_skip:
        out.cursor["skip_to_newline"] = True
    out.pending_bytes = max(0, size - new_offset)
    if full and out.pending_bytes > 0:
        out.warnings.append(f"{path}: read cap of {cap} bytes reached; "
                            f"{out.pending_bytes} bytes left for next cycle")
    return out


# ---------- decoders shared by the tailing and command collectors ----------



def extract_json(text: str) -> tuple[Any, str | None]:
    """Parse a command's JSON output, tolerating ANSI colour and banner lines before the document.

    Returns (value, None) or (None, reason). Trailing junk after a complete document is ignored.
    """
    clean = strip_ansi(text).strip()
    if not clean:
        return None, "empty output"
    try:
        return json.loads(clean), None
    except json.JSONDecodeError as exc:
        first_err = exc
    # Only a document that starts a line counts: a nested object of a truncated document must never
    # be mistaken for the whole answer.
    dec = json.JSONDecoder()
    for i, ch in enumerate(clean):
        if ch in "{[" and (i == 0 or clean[i - 1] == "\n"):
            try:
                value, _ = dec.raw_decode(clean, i)
                return value, None
            except json.JSONDecodeError:
                continue
    return None, f"not JSON ({first_err.msg} at char {first_err.pos}; {len(clean)} chars)"


def parse_ts(value: Any) -> datetime | None:
    """RFC 3339 string (any fraction length, `Z`) or unix seconds -> tz-aware UTC datetime, else None."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        try:
            return datetime.fromtimestamp(float(value), UTC)
        except (OverflowError, OSError, ValueError):
            return None
    if not isinstance(value, str) or not value.strip():
        return None
    s = value.strip()
    try:
        dt = datetime.fromisoformat(s)
    except ValueError:
        # Python's parser takes up to 6 fraction digits on some versions: trim nanoseconds.
        m = re.match(r"^(.*T\d\d:\d\d:\d\d)\.(\d+)(.*)$", s)
        if not m:
            return None
        try:
            dt = datetime.fromisoformat(f"{m[1]}.{m[2][:6]}{m[3]}")
        except ValueError:
            return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.astimezone(UTC)


def as_int(value: Any) -> int | None:
    """Integers only (bools and floats with a fraction are not integers); fits BIGINT or None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, int) and -(2**63) <= value < 2**63:
        return value
    return None


def as_float(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    f = float(value)
    return f if f == f and f not in (float("inf"), float("-inf")) else None


def as_str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def as_bool(value: Any) -> bool | None:
    return value if isinstance(value, bool) else None


def str_list(value: Any) -> list[str] | None:
    if not isinstance(value, list):
        return None
    return [v for v in value if isinstance(v, str)]


def dumps(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def command_failure(res: Any, ok_codes: tuple[int, ...] = (0,)) -> str | None:
    """Why a command's result is not a clean answer (timeout, missing tool, bad exit), or None."""
    if res.timed_out:
        return f"`{res.command}` timed out after {res.duration_s:.1f}s"
    if res.truncated:
        return f"`{res.command}` output exceeded the byte limit and was truncated"
    if res.exit_code in ok_codes:
        return None
    err = strip_ansi(res.err_text).strip().splitlines()
    tail = f": {err[-1][:200]}" if err else ""
    if res.exit_code == 127:
        return f"`{res.command}`: command not found{tail}"
    return f"`{res.command}` exited {res.exit_code}{tail}"


class Budget:
    """A collector's time budget shared by its commands, so N sequential commands cannot overrun the
    runner's per-collector timeout (which would drop every row, not just the slow command's)."""

    def __init__(self, total_s: float, reserve_s: float = 0.5):
        self._deadline = time.monotonic() + max(0.1, total_s - reserve_s)

    def remaining(self) -> float:
        return max(0.0, self._deadline - time.monotonic())

    def exhausted(self, floor_s: float = 0.2) -> bool:
        return self.remaining() < floor_s


def parse_json_lines(texts: list[str], to_row: Callable[[dict[str, Any]], tuple[dict[str, Any] | None, str | None]],
                     what: str, max_quoted: int = 3) -> tuple[list[dict[str, Any]], list[str]]:
    """Rows for every good JSONL line; bad lines cost only themselves (one summary warning, first few quoted)."""
    rows: list[dict[str, Any]] = []
    problems: list[str] = []
    for text in texts:
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as exc:
            problems.append(f"not JSON ({exc.msg}): {text[:60]!r}")
            continue
        if not isinstance(obj, dict):
            problems.append(f"not an object: {text[:60]!r}")
            continue
        row, why = to_row(obj)
        if row is None:
            problems.append(why or "unusable line")
        else:
            rows.append(row)
    warnings = []
    if problems:
        shown = "; ".join(problems[:max_quoted])
        more = f" (+{len(problems) - max_quoted} more)" if len(problems) > max_quoted else ""
        warnings.append(f"{len(problems)} bad {what} line(s) skipped: {shown}{more}")
    return rows, warnings

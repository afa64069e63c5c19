"""Shared reading of upstream CLIs' JSON for the snapshot collectors (sysmoni, ru, caut, caam, cass, ntm).

Upstream tools are written in Go, Rust and bash, by people who change them weekly; their output
reaches us through SSH with banners, ANSI colour, byte caps and timeouts. Everything here turns
that into "a value plus warnings" and never raises for bad input, so one odd field costs that
field (NULL and a warning), not the whole snapshot.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from collectors.executors.base import CommandResult

# CSI sequences, OSC sequences (terminal titles, hyperlinks) and two-byte escapes.
_ANSI_RE = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[@-Z\\-_]")
# A line that opens a JSON document (as opposed to a log tag such as "[INFO] ...").
_JSON_OPEN_RE = re.compile(r'^[ \t]*(\{[ \t]*(?:"|}|$)|\[[ \t]*(?:[\[{"\]\-0-9]|null|true|false|$))', re.M)
# Go's zero time.Time: `omitempty` never drops it, so it means "unset".
_ZERO_TIME_PREFIX = "0001-01-01"
MAX_FIELD_WARNINGS = 8


def strip_ansi(text: str) -> str:
    return _ANSI_RE.sub("", text).replace("\r", "")


def snippet(text: str, n: int = 80) -> str:
    return repr(text[:n]) + ("…" if len(text) > n else "")


def command_warnings(res: CommandResult, what: str, *, ok_exit_codes: Iterable[int] = (0,),
                     payload_ok: bool = True) -> list[str]:
    """Warnings about how a command ended (timeout, cap, exit code), phrased for the collectors page.

    A non-zero exit is reported when the payload was still usable too: several tools exit 1 for
    "partial failure" and the rows are worth keeping, but the person should know.
    """
    out: list[str] = []
    if (p := res.problem()):
        out.append(f"{what}: {p}")
    if not res.timed_out and res.exit_code is not None and res.exit_code not in tuple(ok_exit_codes):
        err = strip_ansi(res.err_text).strip().splitlines()
        tail = f": {snippet(err[-1], 200)}" if err else ""
        kept = "" if payload_ok else " and printed no usable payload"
        out.append(f"{what}: `{res.command}` exited {res.exit_code}{kept}{tail}")
    return out


def decode_json(text: str, what: str) -> tuple[Any | None, list[str]]:
    """Parse one JSON document out of a command's stdout.

    Accepts ANSI colour, a BOM, log lines before the document and junk after it (each skipped part
    is reported). Only the first line that looks like the start of a JSON document is tried, so a
    truncated envelope is never mistaken for the first nested object inside it.
    """
    cleaned = strip_ansi(text).lstrip("\ufeff").strip()
    if not cleaned:
        return None, [f"{what}: empty output"]
    try:
        return json.loads(cleaned), []
    except json.JSONDecodeError as exc:
        first_error = exc
    except RecursionError:
        return None, [f"{what}: JSON nested too deeply to parse"]
    m = _JSON_OPEN_RE.search(cleaned)
    if m is not None:
        start = m.start(1)
        try:
            value, end = json.JSONDecoder().raw_decode(cleaned, start)
        except (json.JSONDecodeError, RecursionError):
            pass
        else:
            warnings = []
            if cleaned[:start].strip():
                warnings.append(f"{what}: ignored {len(cleaned[:start].strip())} chars of non-JSON output "
                                f"before the payload ({snippet(cleaned[:start].strip(), 60)})")
            if cleaned[end:].strip():
                warnings.append(f"{what}: ignored {len(cleaned[end:].strip())} chars after the payload "
                                f"({snippet(cleaned[end:].strip(), 60)})")
            return value, warnings
    return None, [f"{what}: not valid JSON ({first_error.msg} at line {first_error.lineno} column "
                  f"{first_error.colno}; output may be truncated); starts with {snippet(cleaned, 60)}"]


def decode_json_lines(text: str, what: str, max_lines: int = 10_000) -> tuple[list[Any], list[str]]:
    """NDJSON: every complete line that parses; broken lines are counted, not fatal."""
    values: list[Any] = []
    bad = 0
    first_bad = ""
    lines = strip_ansi(text).lstrip("\ufeff").splitlines()
    for line in lines[:max_lines]:
        line = line.strip()
        if not line:
            continue
        try:
            values.append(json.loads(line))
        except (json.JSONDecodeError, RecursionError):
            bad += 1
            first_bad = first_bad or line
    warnings = []
    if bad:
        warnings.append(f"{what}: skipped {bad} line(s) that are not JSON (first: {snippet(first_bad, 60)})")
    if len(lines) > max_lines:
        warnings.append(f"{what}: read only the first {max_lines} of {len(lines)} lines")
    return values, warnings


def dumps(value: Any) -> str:
    """Compact JSON for `raw_json` / `*_json` columns (order kept: it is what the tool printed)."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str)


def parse_ts(value: Any) -> datetime | None:
    """RFC 3339 (any fraction length, `Z` or offset, or naive = UTC) to aware UTC; zero time = None.

    Raises ValueError for a string that is not a timestamp, TypeError for a non-string.
    """
    if not isinstance(value, str):
        raise TypeError(f"expected an RFC 3339 string, got {type(value).__name__}")
    s = value.strip()
    if not s or s.startswith(_ZERO_TIME_PREFIX):
        return None
    dt = datetime.fromisoformat(s)
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.astimezone(UTC)


def from_epoch(value: Any, unit_s: float) -> datetime:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"expected an epoch number, got {type(value).__name__}")
    return datetime.fromtimestamp(value * unit_s, tz=UTC)


class Problems:
    """Collects per-field complaints for one payload and summarises them into a few warnings."""

    def __init__(self, what: str):
        self.what = what
        self.items: list[str] = []

    def add(self, msg: str) -> None:
        self.items.append(msg)

    def warnings(self) -> list[str]:
        if not self.items:
            return []
        shown = self.items[:MAX_FIELD_WARNINGS]
        more = len(self.items) - len(shown)
        tail = f" (and {more} more)" if more else ""
        return [f"{self.what}: unexpected field types, stored as NULL: {'; '.join(shown)}{tail}"]


def _describe(v: Any) -> str:
    return f"{type(v).__name__} {snippet(v, 30) if isinstance(v, str) else v!r}"[:60]


class Fields:
    """Typed reads from one JSON object by dotted path.

    A missing field or JSON null is simply None (upstream fields are mostly optional); a value of
    the wrong type is None plus a note in `problems`, so the rest of the object still counts.
    """

    def __init__(self, obj: Any, problems: Problems, prefix: str = ""):
        self.obj = obj if isinstance(obj, dict) else {}
        self.problems = problems
        self.prefix = prefix

    def raw(self, path: str) -> Any:
        cur: Any = self.obj
        for part in path.split("."):
            if not isinstance(cur, dict):
                return None
            cur = cur.get(part)
        return cur

    def _bad(self, path: str, want: str, v: Any) -> None:
        self.problems.add(f"{self.prefix}{path} should be {want}, got {_describe(v)}")

    def int(self, path: str) -> int | None:
        v = self.raw(path)
        if v is None:
            return None
        if isinstance(v, bool):
            self._bad(path, "an integer", v)
            return None
        if isinstance(v, int):
            return v
        if isinstance(v, float) and v.is_integer():
            return int(v)
        self._bad(path, "an integer", v)
        return None

    def num(self, path: str) -> float | None:
        v = self.raw(path)
        if v is None:
            return None
        if isinstance(v, bool) or not isinstance(v, int | float):
            self._bad(path, "a number", v)
            return None
        return float(v)

    def str(self, path: str) -> str | None:
        v = self.raw(path)
        if v is None:
            return None
        if not isinstance(v, str):
            self._bad(path, "a string", v)
            return None
        return v

    def bool(self, path: str) -> bool | None:
        v = self.raw(path)
        if v is None:
            return None
        if not isinstance(v, bool):
            self._bad(path, "a boolean", v)
            return None
        return v

    def ts(self, path: str) -> datetime | None:
        v = self.raw(path)
        if v is None:
            return None
        try:
            return parse_ts(v)
        except (TypeError, ValueError):
            self._bad(path, "an RFC 3339 timestamp", v)
            return None

    def epoch(self, path: str, unit_s: float) -> datetime | None:
        v = self.raw(path)
        if v is None:
            return None
        try:
            return from_epoch(v, unit_s)
        except (TypeError, ValueError, OverflowError, OSError):
            self._bad(path, "an epoch number", v)
            return None

    def dict(self, path: str) -> dict[str, Any] | None:
        v = self.raw(path)
        if v is None:
            return None
        if not isinstance(v, dict):
            self._bad(path, "an object", v)
            return None
        return v

    def list(self, path: str) -> list[Any]:
        """Go's nil slices print as null, so missing and null are both the empty list."""
        v = self.raw(path)
        if v is None:
            return []
        if not isinstance(v, list):
            self._bad(path, "an array", v)
            return []
        return v

    def sub(self, path: str) -> Fields:
        return Fields(self.dict(path), self.problems, f"{self.prefix}{path}.")

    def json(self, path: str) -> str | None:
        v = self.raw(path)
        return None if v is None else dumps(v)


def norm_provider(provider: str | None) -> str:
    return (provider or "unknown").strip().lower() or "unknown"


def looks_like_email(s: str | None) -> bool:
    return bool(s) and re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", s.strip()) is not None


def account_key(provider: str | None, machine_id: str, *, email: str | None = None,
                account_id: str | None = None, label: str | None = None) -> str:
    """One key per real account, the same whichever machine or tool reports it.

    An email is global, so it wins; a provider account id next; a local label (caam profile name,
    caut account string that is not an email) might be shared across machines by convention; with
    nothing at all the key stays machine-local so two unknown accounts never merge.
    """
    p = norm_provider(provider)
    for cand in (email, label):
        if looks_like_email(cand):
            return f"{p}:{cand.strip().lower()}"
    if account_id and account_id.strip():
        return f"{p}:id:{account_id.strip()}"
    if label and label.strip():
        return f"{p}:label:{label.strip().lower()}"
    return f"{p}:unknown@{machine_id}"


def cap_rows(rows: list[dict[str, Any]], limit: int, what: str, warnings: list[str]) -> list[dict[str, Any]]:
    if limit and len(rows) > limit:
        warnings.append(f"{what}: {len(rows)} rows exceed the limit of {limit}; kept the first {limit}")
        return rows[:limit]
    return rows

"""Read rows out of a SQLite database that lives on the machine, locally or over SSH, without copying it.

Upstream tools (mcp_agent_mail, dcg) keep their state in SQLite files that their servers write while
we read. Copying the file (plus its WAL) every cycle would cost the whole database per poll and can
tear a WAL snapshot, and the file may sit on a remote machine. So one read-only command runs *on the
machine* through the executor:

- `python3 -I -c SCRIPT PATH QUERIES ...`: SCRIPT (below, small, Python 3.6-compatible) opens
  `file:PATH?mode=ro` with `uri=True` and `PRAGMA query_only`, runs each parameterized SELECT of the
  batch inside one read transaction (one consistent snapshot), and prints one JSON object per row
  plus an end marker per query. Each query stops at its `limit` (reporting whether more rows were
  waiting); all of them together stop at a byte budget below the executor's cap; any single text
  value longer than `max_value_chars` is cut. Output is bounded and always ends on a complete row.
  A batch costs one process start and one SSH round trip, whatever the number of queries.
- `sqlite3 -readonly -json` when python3 is missing, one CLI call per query in the same shell
  command. The CLI cannot bind parameters, so they are inlined as literals by `inline_params`
  (integers and floats as numbers, strings quoted with `''` doubling); every SQL text here is ours,
  never user input. Needs sqlite3 >= 3.33 for `-json`.

Every argument goes through `shlex.quote`. A missing, locked (a writer holding an exclusive lock past
the busy timeout), corrupt or foreign database is a `status` plus a warning, never an exception.

Incremental reads (`read_after`) are keyset reads: `pk > cursor ORDER BY pk LIMIT n`. When the limit
or the byte budget cuts a read, `next_after` is the last row returned, so the rest comes next cycle.
Each read also reports the table's current max(pk) (`head`): a head below the cursor means rows were
deleted at the end or the database was replaced, and the caller decides how to restart.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from collectors.tail import shell_path

if TYPE_CHECKING:
    from collectors.executors.base import CommandResult, Executor

MARK = "__VC_SQLITE__"
PK_COL = "__vc_pk"
HEAD_COL = "__vc_max"
CUT_COL = "__vc_cut"
ENGINES = ("auto", "python3", "sqlite3")
_IDENT_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# Room on top of the script's byte budget for the end marker and JSON framing.
_MARKER_ROOM = 4096
_MAX_VALUE_CHARS = 64 * 1024

# Runs on the machine. Python 3.6-compatible on purpose (old distributions), no f-strings.
# argv: path, queries (JSON [[sql, params, limit], ...]), byte budget, max value chars, busy timeout (s).
# All queries run in one read transaction (one consistent snapshot); after a lock error the rest are
# reported locked without waiting again.
SCRIPT = r"""
import json, os, sqlite3, sys
from urllib.parse import quote
M = "__VC_SQLITE__"
p = os.path.expanduser(sys.argv[1])
qs = json.loads(sys.argv[2])
budget, vmax, busy = int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5])
w = sys.stdout.write
def err(i, e):
    w(M + " error " + json.dumps({"q": i, "kind": type(e).__name__, "msg": str(e)}) + "\n")
if not os.path.exists(p):
    w(M + " missing\n"); sys.exit(0)
try:
    con = sqlite3.connect("file:" + quote(os.path.abspath(p)) + "?mode=ro", uri=True, timeout=busy,
                          isolation_level=None)
    con.text_factory = lambda b: b.decode("utf-8", "replace")
    con.execute("PRAGMA query_only = 1")
    con.execute("BEGIN")
except sqlite3.Error as e:
    err(-1, e); sys.exit(0)
used, dead = 0, None
for i, (sql, params, lim) in enumerate(qs):
    if dead is not None:
        err(i, dead); continue
    n, more, cut = 0, False, None
    try:
        cur = con.execute(sql, params)
        cols = [d[0] for d in cur.description or ()]
        while True:
            r = cur.fetchone()
            if r is None:
                break
            if n >= lim:
                more = True; break
            row = {}
            for k, v in zip(cols, r):
                if isinstance(v, bytes):
                    v = v.hex()
                if isinstance(v, str) and len(v) > vmax:
                    v = v[:vmax]; row.setdefault("__vc_cut", []).append(k)
                row[k] = v
            line = json.dumps(row) + "\n"
            if used and used + len(line) > budget:
                more = True; cut = "bytes"; break
            w(line); used += len(line); n += 1
        w(M + " end " + json.dumps({"q": i, "rows": n, "more": more, "cut": cut}) + "\n")
    except sqlite3.Error as e:
        err(i, e)
        if "locked" in str(e) or "busy" in str(e):
            dead = e
"""


@dataclass(frozen=True)
class Query:
    """One SELECT: at most `limit` rows come back. The SQL should end in `LIMIT limit + 1` (or have
    none): the extra row is how "more waiting" is known on the CLI path, where nothing else bounds it."""

    sql: str
    params: tuple[Any, ...] = ()
    limit: int = 1000


@dataclass
class SqliteRead:
    """The outcome of one SELECT on the machine: rows, and how far to trust them."""

    path: str
    rows: list[dict[str, Any]] = field(default_factory=list)
    status: str = "ok"  # ok | missing | locked | no_table | corrupt | no_reader | error
    engine: str | None = None  # python3 | sqlite3
    more: bool = False  # rows were left for the next call (limit, byte budget, or cut output)
    complete: bool = True  # the reader reached this query's end marker
    error: str | None = None
    warnings: list[str] = field(default_factory=list)
    head: int | None = None  # read_after: max(pk) of the table now (None for an empty table)
    after: int = 0  # read_after: the cursor the read started from

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def next_after(self) -> int:
        """Cursor to store: the last row returned (never past what was actually handed back)."""
        pks = [r[PK_COL] for r in self.rows if isinstance(r.get(PK_COL), int)]
        return max([self.after, *pks])

    @property
    def reset(self) -> bool:
        """The table's max pk is below the cursor: tail rows deleted or the file was replaced."""
        return self.ok and self.complete and self.after > 0 and (self.head or 0) < self.after

    def trim(self, n: int) -> None:
        """Keep the first `n` rows (a caller's row budget); the rest count as waiting."""
        if len(self.rows) > n:
            self.rows = self.rows[:max(0, n)]
            self.more = True


def ident(name: str) -> str:
    """Table and column names are spliced into SQL, so only plain identifiers are accepted."""
    if not _IDENT_RE.match(name):
        raise ValueError(f"not a plain SQL identifier: {name!r}")
    return name


def ts_key_sql(expr: str) -> str:
    """SQL giving one comparable integer (µs since epoch) for a timestamp stored either way.

    mcp_agent_mail's Rust build stores INTEGER µs, the Python build naive-UTC ISO TEXT (with ' ' or
    'T'); `julianday` reads the text (ms precision), so ordering and keyset comparisons work on
    either variant, even a half-migrated table. Anything unreadable is NULL.
    """
    x = expr
    return (f"(CASE typeof({x}) WHEN 'integer' THEN {x} WHEN 'real' THEN CAST({x} AS INTEGER) "
            f"WHEN 'text' THEN CAST(round((julianday({x}) - 2440587.5) * 86400000.0) AS INTEGER) * 1000 END)")


def sql_literal(value: Any) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return str(int(value))
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            raise ValueError(f"cannot inline {value!r} as an SQL literal")
        return repr(float(value))
    if isinstance(value, str):
        if "\x00" in value:
            raise ValueError("cannot inline a string with NUL as an SQL literal")
        return "'" + value.replace("'", "''") + "'"
    raise TypeError(f"cannot inline {type(value).__name__} as an SQL literal")


def inline_params(sql: str, params: Sequence[Any]) -> str:
    """Replace each `?` by a literal, for the sqlite3 CLI. Our SQL never has `?` inside a string."""
    parts = sql.split("?")
    if len(parts) - 1 != len(params):
        raise ValueError(f"SQL has {len(parts) - 1} placeholders but {len(params)} parameters")
    out = [parts[0]]
    for value, tail in zip(params, parts[1:], strict=True):
        out.append(sql_literal(value))
        out.append(tail)
    return "".join(out)


def _cli_path(path: str) -> str:
    if not (path.startswith("/") or path == "~" or path.startswith("~/")):
        path = "./" + path  # a relative name starting with '-' must not read as an option
    return shell_path(path)


def reader_command(path: str, queries: Sequence[Query], *, budget: int, max_value_chars: int,
                   busy_s: float, engine: str = "auto") -> str:
    """One shell command: python3 if present, else the sqlite3 CLI, else a marker saying neither is."""
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {ENGINES}, got {engine!r}")
    spec = json.dumps([[q.sql, list(q.params), int(q.limit)] for q in queries])
    py = " ".join(["python3", "-I", "-c", shlex.quote(SCRIPT), shlex.quote(path), shlex.quote(spec),
                   str(int(budget)), str(int(max_value_chars)), f"{float(busy_s):.3f}"])
    # The CLI has no row cap of its own: each SQL's LIMIT (limit + 1 rows) bounds it. Its errors go to
    # stdout (2>&1) so they land next to the query they belong to; exit 5 (busy) skips the rest.
    q = _cli_path(path)
    timeout_cmd = shlex.quote(f".timeout {int(busy_s * 1000)}")
    steps = []
    for i, query in enumerate(queries):
        sql = shlex.quote(inline_params(query.sql, query.params))
        steps.append(f"if [ \"$vc_ok\" = 1 ]; then "
                     f"sqlite3 -readonly -json -cmd {timeout_cmd} {q} {sql} 2>&1; "
                     f"vc_s=$?; echo \"{MARK} cli-exit $vc_s {i}\"; [ $vc_s -ne 5 ] || vc_ok=0; "
                     f"else echo '{MARK} cli-skip 0 {i}'; fi")
    cli = f"if [ ! -e {q} ]; then echo '{MARK} missing'; else vc_ok=1; {'; '.join(steps)}; fi"
    none = f"echo '{MARK} no_reader'"
    has = "command -v {} >/dev/null 2>&1"
    if engine == "python3":
        return f"if {has.format('python3')}; then {py}; else {none}; fi"
    if engine == "sqlite3":
        return f"if {has.format('sqlite3')}; then {cli}; else {none}; fi"
    return f"if {has.format('python3')}; then {py}; elif {has.format('sqlite3')}; then {cli}; else {none}; fi"


def classify_error(message: str) -> str:
    m = message.lower()
    if "locked" in m or "busy" in m:
        return "locked"
    if "no such table" in m:
        return "no_table"
    if "not a database" in m or "malformed" in m or "corrupt" in m:
        return "corrupt"
    return "error"


def _cli_row(line: str) -> dict[str, Any] | None:
    """`sqlite3 -json` prints `[{row},` / `{row},` / `{row}]`, one row per line (newlines are escaped)."""
    s = line.strip()
    if s.startswith("["):
        s = s[1:]
    if s.endswith(","):
        s = s[:-1]
    elif s.endswith("]"):
        s = s[:-1]
    if not s.startswith("{"):
        return None
    try:
        v = json.loads(s)
    except (json.JSONDecodeError, RecursionError):
        return None
    return v if isinstance(v, dict) else None


def _marker_query(rest: str) -> tuple[int | None, str]:
    """`cli-exit CODE Q` / `cli-skip 0 Q` -> (Q, CODE)."""
    parts = rest.split()
    if len(parts) >= 2 and parts[1].lstrip("-").isdigit():
        return int(parts[1]), parts[0]
    return None, ""


def parse_output(res: CommandResult, path: str, limits: Sequence[int]) -> list[SqliteRead]:
    """Turn the reader's stdout back into rows and a status per query (pure: testable on recorded text).

    Rows belong to the query whose end marker follows them. A query without a marker (timeout, output
    cap) keeps the complete rows that did arrive and counts as incomplete, never as "nothing new".
    """
    reads = [SqliteRead(path) for _ in limits]
    marked = [False] * len(reads)
    rows: list[dict[str, Any]] = []
    other: list[str] = []
    bad_lines = 0
    everyone: tuple[str, str] | None = None  # a status for all queries (missing file, no reader, open error)

    def settle(i: int | None, status: str = "ok", error: str | None = None, more: bool = False,
               engine: str | None = None, cut: bool = False) -> None:
        nonlocal rows, other
        if i is None or not 0 <= i < len(reads) or marked[i]:
            rows, other = [], []
            return
        r = reads[i]
        marked[i], r.engine, r.status, r.error = True, engine, status, error
        if status == "ok":
            r.rows, r.more = rows, more
            if len(r.rows) > limits[i]:  # CLI: the SQL asked for limit + 1 rows to learn whether more wait
                r.rows, r.more = r.rows[:limits[i]], True
            if cut:
                r.warnings.append(f"sqlite {path}: byte budget reached after {len(r.rows)} row(s); "
                                  "the rest comes next cycle")
        else:
            r.complete = False
        rows, other = [], []

    for line in res.text.splitlines():
        if not line.startswith(MARK):
            row = _cli_row(line)  # also reads the python3 script's plain `{row}` lines
            if row is not None:
                rows.append(row)
            elif line.strip():
                other.append(line.strip())
            continue
        word, _, rest = line[len(MARK):].strip().partition(" ")
        if word == "missing":
            everyone = ("missing", "file does not exist")
        elif word == "no_reader":
            everyone = ("no_reader", "neither python3 nor sqlite3 is installed")
        elif word in ("end", "error"):
            try:
                info = json.loads(rest)
                q = int(info.get("q"))
            except (json.JSONDecodeError, AttributeError, TypeError, ValueError):
                bad_lines += 1
                continue
            if word == "end":
                settle(q, more=bool(info.get("more")), engine="python3", cut=info.get("cut") == "bytes")
                continue
            msg = f"{info.get('kind', 'Error')}: {info.get('msg', '')}"
            if q < 0:
                everyone = (classify_error(msg), msg)
            else:
                settle(q, classify_error(msg), msg, engine="python3")
        elif word in ("cli-exit", "cli-skip"):
            q, code = _marker_query(rest)
            if word == "cli-skip":
                settle(q, "locked", "skipped: the database was locked for an earlier query", engine="sqlite3")
            elif code == "0":
                bad_lines += len(other)
                settle(q, engine="sqlite3")
            else:
                msg = other[-1] if other else f"sqlite3 exited {code}"
                if "unknown option" in msg.lower():
                    msg += " (the sqlite3 CLI needs version 3.33+ for -json)"
                settle(q, classify_error(msg), msg, engine="sqlite3")
    bad_lines += len(other)
    if everyone is not None:
        for r in reads:
            r.status, r.error, r.complete, r.rows = everyone[0], everyone[1], False, []
        return reads
    pending = [i for i, m in enumerate(marked) if not m]
    if pending:
        err = res.err_text.strip().splitlines()
        parts = [p for p in (res.problem(), f"reader exited {res.exit_code}" if res.exit_code else None,
                             err[-1][:200] if err else None) if p]
        detail = "; ".join(parts) or "no end marker"
        for n, i in enumerate(pending):
            r = reads[i]
            r.complete, r.more = False, True
            if n == 0 and rows:  # the query that was running when the output stopped
                r.rows = rows[:limits[i]]
                r.warnings.append(f"sqlite {path}: output incomplete ({detail}); "
                                  f"kept {len(r.rows)} complete row(s)")
            else:
                r.status, r.error = "error", f"output ended before this query finished ({detail})"
    if bad_lines:
        reads[0].warnings.append(f"sqlite {path}: {bad_lines} unparseable output line(s) skipped")
    return reads


def _budgets(max_bytes: int, timeout_s: float, max_value_chars: int | None) -> tuple[int, int, float]:
    budget = max(1024, int(max_bytes) - _MARKER_ROOM)
    vmax = max_value_chars if max_value_chars is not None else max(256, min(_MAX_VALUE_CHARS, budget // 16))
    busy = max(0.05, min(2.0, timeout_s / 4))
    return budget, vmax, busy


async def select_many(executor: Executor, path: str, queries: Sequence[Query], *, timeout_s: float,
                      max_bytes: int, engine: str = "auto",
                      max_value_chars: int | None = None) -> list[SqliteRead]:
    """Run several read-only SELECTs in one round trip (one read transaction on the python3 path).

    Output of all queries together stays under `max_bytes`; a query cut by that budget reports `more`.
    """
    if not queries:
        return []
    qs = [Query(q.sql, tuple(q.params), max(1, int(q.limit))) for q in queries]
    budget, vmax, busy = _budgets(max_bytes, timeout_s, max_value_chars)
    cmd = reader_command(path, qs, budget=budget, max_value_chars=vmax, busy_s=busy, engine=engine)
    res = await executor.run(cmd, timeout_s=timeout_s, max_bytes=max_bytes)
    return parse_output(res, path, [q.limit for q in qs])


async def select(executor: Executor, path: str, sql: str, params: Sequence[Any] = (), *, limit: int,
                 timeout_s: float, max_bytes: int, engine: str = "auto",
                 max_value_chars: int | None = None) -> SqliteRead:
    """One read-only SELECT on the machine; at most `limit` rows come back (see `Query`)."""
    (read,) = await select_many(executor, path, [Query(sql, tuple(params), limit)], timeout_s=timeout_s,
                                max_bytes=max_bytes, engine=engine, max_value_chars=max_value_chars)
    return read


def _after(after: Any) -> int:
    return after if isinstance(after, int) and not isinstance(after, bool) and after > 0 else 0


def after_query(table: str, *, after: int | None, limit: int, pk: str = "id", alias: str = "t",
                columns: str | None = None, joins: str = "", where: str = "") -> Query:
    """Keyset SELECT (`pk > after ORDER BY pk`) plus the table's current max(pk) on every row.

    The max comes back even when no row is new (a LEFT JOIN of the max onto the page), which is how
    a replaced database is noticed without a second query. `pk` is an INTEGER PRIMARY KEY column or
    `rowid` (for tables keyed otherwise, e.g. composite keys). Finish the read with `finish_after`.
    """
    t, k, a = ident(table), ident(pk), ident(alias)
    cols = columns or f"{a}.*"
    extra = f" AND ({where})" if where else ""
    sql = (f"SELECT h.{HEAD_COL} AS {HEAD_COL}, q.* FROM (SELECT max({a}.{k}) AS {HEAD_COL} FROM {t} AS {a}) "
           f"AS h LEFT JOIN (SELECT {a}.{k} AS {PK_COL}, {cols} FROM {t} AS {a} {joins} "
           f"WHERE {a}.{k} > ?{extra} ORDER BY {a}.{k} LIMIT ?) AS q ON 1 ORDER BY q.{PK_COL}")
    limit = max(1, int(limit))
    return Query(sql, (_after(after), limit + 1), limit)


def finish_after(read: SqliteRead, after: int | None) -> SqliteRead:
    """Split an `after_query` result into the table's head and the new rows."""
    read.after = _after(after)
    if read.ok:
        heads = [r.get(HEAD_COL) for r in read.rows if isinstance(r.get(HEAD_COL), int)]
        read.head = max(heads) if heads else None
        read.rows = [r for r in read.rows if r.get(PK_COL) is not None]
    return read


async def read_after(executor: Executor, path: str, table: str, *, after: int | None, limit: int,
                     timeout_s: float, max_bytes: int, pk: str = "id", alias: str = "t",
                     columns: str | None = None, joins: str = "", where: str = "",
                     engine: str = "auto") -> SqliteRead:
    """Rows with pk > `after`, in pk order, at most `limit`; `next_after` is the cursor to store."""
    q = after_query(table, after=after, limit=limit, pk=pk, alias=alias, columns=columns, joins=joins,
                    where=where)
    (read,) = await select_many(executor, path, [q], timeout_s=timeout_s, max_bytes=max_bytes, engine=engine)
    return finish_after(read, after)


def columns_query(tables: Sequence[str]) -> Query:
    names = [ident(t) for t in tables]
    marks = ", ".join("?" for _ in names)
    sql = (f"SELECT m.name AS tbl, p.name AS col, p.type AS type FROM sqlite_master AS m, "
           f"pragma_table_info(m.name) AS p WHERE m.type = 'table' AND m.name IN ({marks}) "
           f"ORDER BY m.name, p.cid")
    return Query(sql, tuple(names), 5000)


async def table_columns(executor: Executor, path: str, tables: Sequence[str], *, timeout_s: float,
                        max_bytes: int, engine: str = "auto") -> tuple[dict[str, dict[str, str]], SqliteRead]:
    """Which of `tables` exist and their columns with declared types (variants differ: Rust vs Python)."""
    (res,) = await select_many(executor, path, [columns_query(tables)], timeout_s=timeout_s,
                               max_bytes=max_bytes, engine=engine)
    out: dict[str, dict[str, str]] = {}
    if res.ok:
        for r in res.rows:
            if isinstance(r.get("tbl"), str) and isinstance(r.get("col"), str):
                out.setdefault(r["tbl"], {})[r["col"]] = str(r.get("type") or "").upper()
    return out, res


def status_warning(read: SqliteRead, what: str) -> str | None:
    """One line for the collectors page, phrased by cause (and saying nothing was lost)."""
    if read.ok:
        return None
    why = {
        "missing": "database file not found",
        "locked": "database is locked by a writer; nothing read, retrying next cycle",
        "no_table": "expected table is missing (not this tool's database, or an older schema)",
        "corrupt": "file is not a readable SQLite database (corrupt or another format)",
        "no_reader": "neither python3 nor sqlite3 is installed on the machine; cannot read it",
    }.get(read.status, "read failed")
    detail = f" ({read.error})" if read.error and read.status != "missing" else ""
    return f"{what} {read.path}: {why}{detail}"


def sqlite_time(value: Any) -> datetime | None:
    """A stored timestamp to aware UTC, whichever way the writer stored it.

    Integers by magnitude: seconds (< 1e11), milliseconds (< 1e14), else microseconds (the Rust
    mail server). Text: ISO 8601 with ' ' or 'T', naive = UTC (the Python server), or a number in
    text. None for NULL or anything unreadable.
    """
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, str):
        s = value.strip()
        if not s:
            return None
        if re.fullmatch(r"-?\d+(\.\d+)?", s):
            return sqlite_time(float(s) if "." in s else int(s))
        try:
            dt = datetime.fromisoformat(s.replace("Z", "+00:00") if s.endswith("Z") else s)
        except ValueError:
            return None
        return (dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt).astimezone(UTC)
    if isinstance(value, int | float):
        v = float(value)
        scale = 1.0 if abs(v) < 1e11 else 1e3 if abs(v) < 1e14 else 1e6
        try:
            return datetime.fromtimestamp(v / scale, tz=UTC)
        except (OverflowError, OSError, ValueError):
            return None
    return None


def to_bool(value: Any) -> bool | None:
    """SQLite booleans are 0/1 integers (sometimes '0'/'1' or 'true' text)."""
    if value is None:
        return None
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return value != 0
    if isinstance(value, str):
        s = value.strip().lower()
        if s in ("1", "true", "t", "yes"):
            return True
        if s in ("0", "false", "f", "no", ""):
            return False
    return None


def to_int(value: Any) -> int | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and re.fullmatch(r"-?\d+", value.strip()):
        return int(value.strip())
    return None


def to_str(value: Any) -> str | None:
    if value is None:
        return None
    return value if isinstance(value, str) else str(value)


def public(row: dict[str, Any], drop: Sequence[str] = ()) -> dict[str, Any]:
    """The row as the database holds it, without our helper columns (for raw_json)."""
    return {k: v for k, v in row.items() if not k.startswith("__vc_") and k not in drop}

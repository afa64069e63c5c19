"""mcp_agent_mail's SQLite database (Python or Rust server) into mail_messages, mail_recipients and
mail_file_reservations.

Read in place on the machine through `sqlite_reader` (read-only, no copy; the servers write in WAL
mode while we read). Both server variants share table and column names but not timestamp encoding:
Python stores naive-UTC ISO text, Rust integer microseconds, so every timestamp is converted by its
value (`sqlite_time`) and every SQL comparison on time uses `ts_key_sql`, which maps both to µs.

What changes after insert, and how it is captured:
- messages never change: read by `id > cursor`.
- recipients: new rows by `rowid > cursor` (the table's key is composite); read_ts / ack_ts are set
  in place later, so each cycle also reads the already-seen recipients whose greatest read/ack time
  passed a high-water mark `(time, rowid)` (keyset, so a capped read resumes exactly). The mark
  starts at the table's newest read/ack time on first contact, so existing state is not re-read.
  A recipient therefore gets one row per state it is seen in (unread, read, acked). This costs one
  scan of message_recipients per cycle and no unbounded "still unread" snapshot. Limit: a state
  change stamped earlier than the mark (a clock step back on the server) is missed until the row
  changes again.
- reservations: new rows by `id > cursor`; releases (Python: released_ts in place; Rust: a row in
  `file_reservation_releases`) and renewals (expires_ts moved, no change timestamp) are caught by
  re-reading every seen reservation that expires after the previous cycle (minus an hour's margin):
  the live set, which is small. A row per version (state, expires_at).

Cost per database and cycle: two round trips (a schema probe, then every read above in one batch and
one read transaction), and at most `limits.max_rows` rows over all databases.

Options: `mail_db_paths` (list or one string; default the Rust server's
`~/.mcp_agent_mail_git_mailbox_repo/storage.sqlite3`; the Python server's `./storage.sqlite3` is
relative to wherever it runs, so list it explicitly), `sqlite_engine` (auto | python3 | sqlite3).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from collectors import sqlite_reader as sr
from collectors.base import CollectContext, Collector, CollectResult
from collectors.cli_json import dumps

DEFAULT_DB = "~/.mcp_agent_mail_git_mailbox_repo/storage.sqlite3"
T_MESSAGES = "mail_messages"
T_RECIPIENTS = "mail_recipients"
T_RESERVATIONS = "mail_file_reservations"
UPSTREAM_TABLES = ("messages", "message_recipients", "file_reservations", "file_reservation_releases",
                   "agents", "projects")
CURSOR_VERSION = 1
RECHECK_MARGIN = timedelta(hours=1)
DEFAULT_RECHECK = timedelta(hours=24)  # how far back to re-read reservations when there is no last run


def _paths(value: Any) -> tuple[list[str], list[str]]:
    if value is None:
        return [DEFAULT_DB], []
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list):
        return [], ["mcp_agent_mail: option mail_db_paths should be a list of paths, "
                    f"got {type(value).__name__}"]
    good = [p for p in value if isinstance(p, str) and p.strip()]
    bad = len(value) - len(good)
    return list(dict.fromkeys(good)), ([f"mcp_agent_mail: ignored {bad} non-string mail_db_paths entries"]
                                       if bad else [])


def _state(raw: Any) -> dict[str, Any]:
    s = raw if isinstance(raw, dict) else {}
    out: dict[str, Any] = {}
    for k in ("messages", "recipients", "reservations"):
        v = s.get(k)
        out[k] = v if isinstance(v, int) and not isinstance(v, bool) and v >= 0 else 0
    hw = s.get("recipients_hw")
    if isinstance(hw, list) and len(hw) == 2 and all(type(x) is int for x in hw):
        out["recipients_hw"] = hw
    return out


def _usec(dt: datetime) -> int:
    return int(dt.timestamp() * 1_000_000)


def _joins(schema: dict[str, dict[str, str]], alias: str, *, agent_col: str, agent_as: str,
           project: bool) -> tuple[list[str], list[str]]:
    cols, joins = [], []
    if "agents" in schema:
        cols.append(f"a.name AS {agent_as}")
        joins.append(f"LEFT JOIN agents AS a ON a.id = {alias}.{agent_col}")
    if project and "projects" in schema:
        cols.append("p.slug AS __vc_project_slug, p.human_key AS __vc_project_key")
        joins.append(f"LEFT JOIN projects AS p ON p.id = {alias}.project_id")
    return cols, joins


@dataclass
class _Db:
    """One database's reads for a cycle: rows, the cursor state to store, and what went wrong."""

    path: str
    state: dict[str, Any]
    budget: int
    rows: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    reset: bool = False
    skipped: dict[str, int] = field(default_factory=dict)

    def skip(self, what: str) -> None:
        self.skipped[what] = self.skipped.get(what, 0) + 1

    def take(self, read: sr.SqliteRead, what: str) -> list[dict[str, Any]]:
        """Rows within the cycle's row budget (in query order); the rest wait for the next cycle."""
        read.trim(self.budget)
        self.budget -= len(read.rows)
        if read.more:
            self.warnings.append(f"mcp_agent_mail {self.path}: read {len(read.rows)} {what} (row or byte "
                                 "limit); the rest comes next cycle")
        return read.rows

    def ok(self, read: sr.SqliteRead, what: str) -> bool:
        self.warnings += read.warnings
        if not read.ok:
            self.warnings.append(sr.status_warning(read, f"mcp_agent_mail {what}") or "")
            return False
        if read.reset:
            self.reset = True
            self.warnings.append(f"mcp_agent_mail {self.path}: {what} max id {read.head} is below the "
                                 f"cursor {read.after} (database replaced, or newest rows deleted); reading "
                                 "it again from the start (rows already stored are not duplicated)")
            return False
        return True


class McpAgentMailCollector(Collector):
    name = "mcp_agent_mail"
    source_version = "1"
    schema_version = 1
    required_tool = None  # no CLI to probe: the database file is the source (missing file = warning)

    async def collect(self, ctx: CollectContext) -> CollectResult:
        result = CollectResult()
        paths, warns = _paths(ctx.options.get("mail_db_paths"))
        result.warnings += warns
        engine = ctx.options.get("sqlite_engine", "auto")
        if engine not in sr.ENGINES:
            result.warnings.append(f"mcp_agent_mail: unknown sqlite_engine {engine!r}; using auto")
            engine = "auto"
        prev = ctx.cursor if isinstance(ctx.cursor, dict) else {}
        if prev and prev.get("v") != CURSOR_VERSION:
            result.warnings.append(f"mcp_agent_mail: unusable cursor (v={prev.get('v')!r}); "
                                   "reading from the start")
            prev = {}
        prev_dbs = prev.get("dbs") if isinstance(prev.get("dbs"), dict) else {}
        budget = max(1, ctx.limits.max_rows)
        new_dbs: dict[str, Any] = {}
        for path in paths:
            db = await self._read_db(ctx, path, _state(prev_dbs.get(path)), budget, engine)
            if db.reset:  # the file was replaced or its newest rows deleted: start over, once
                result.warnings += db.warnings
                db = await self._read_db(ctx, path, _state(None), budget, engine)
            result.warnings += db.warnings
            for what, n in db.skipped.items():
                result.warnings.append(f"mcp_agent_mail {path}: {n} {what} skipped")
            for table, rows in db.rows.items():
                result.extend(table, rows)
            budget = db.budget
            new_dbs[path] = db.state
        result.cursor = {"v": CURSOR_VERSION, "dbs": new_dbs}
        return result

    # ---------- one database: a schema probe, then every read in one round trip ----------
    async def _read_db(self, ctx: CollectContext, path: str, state: dict[str, Any], budget: int,
                       engine: str) -> _Db:
        db = _Db(path, dict(state), budget)
        kw: dict[str, Any] = {"timeout_s": ctx.limits.timeout_s, "max_bytes": ctx.limits.max_bytes,
                              "engine": engine}
        schema, probe = await sr.table_columns(ctx.executor, path, UPSTREAM_TABLES, **kw)
        if not db.ok(probe, "database"):
            return db
        if "messages" not in schema:
            db.warnings.append(f"mcp_agent_mail {path}: no `messages` table; not an mcp_agent_mail database?")
            return db
        if budget <= 0:
            db.warnings.append(f"mcp_agent_mail {path}: row limit reached; this database waits for the "
                               "next cycle")
            return db
        created_type = schema["messages"].get("created_ts", "")
        variant = "rust" if "INT" in created_type or "recipients_json" in schema["messages"] else "python"
        base = {"db_path": path, "variant": variant, "observed_at": ctx.now}

        plan: list[tuple[str, sr.Query]] = [("messages", self._messages_query(schema, db, budget))]
        if "message_recipients" in schema:
            plan += self._recipient_queries(schema, db, budget)
        if "file_reservations" in schema:
            since = (ctx.last_run_at or ctx.now - DEFAULT_RECHECK) - RECHECK_MARGIN
            plan += self._reservation_queries(schema, db, budget, _usec(since))
        reads = await sr.select_many(ctx.executor, path, [q for _, q in plan], **kw)
        for (kind, _), read in zip(plan, reads, strict=True):
            getattr(self, f"_take_{kind}")(ctx, db, read, base)
            if db.reset:
                break
        return db

    def _messages_query(self, schema: dict[str, dict[str, str]], db: _Db, budget: int) -> sr.Query:
        cols, joins = _joins(schema, "m", agent_col="sender_id", agent_as="__vc_sender_name", project=True)
        if "body_md" in schema["messages"]:
            cols.insert(0, "length(m.body_md) AS __vc_body_len")
        return sr.after_query("messages", alias="m", after=db.state["messages"], limit=budget,
                              columns=", ".join(["m.*", *cols]), joins=" ".join(joins))

    def _take_messages(self, ctx: CollectContext, db: _Db, read: sr.SqliteRead, base: dict[str, Any]) -> None:
        sr.finish_after(read, db.state["messages"])
        if not db.ok(read, "messages"):
            return
        for r in db.take(read, "messages"):
            row = self._message_row(ctx, r, base)
            if row is None:
                db.skip("message(s) without a readable id or created_ts")
            else:
                db.rows.setdefault(T_MESSAGES, []).append(row)
        db.state["messages"] = read.next_after

    def _message_row(self, ctx: CollectContext, r: dict[str, Any],
                     base: dict[str, Any]) -> dict[str, Any] | None:
        mid, created = sr.to_int(r.get("id")), sr.sqlite_time(r.get("created_ts"))
        if mid is None or created is None:
            return None
        importance = sr.to_str(r.get("importance"))
        cut = r.get(sr.CUT_COL) or []
        return self.stamp(
            ctx.machine_id, **base, message_id=mid, created_at=created,
            project_id=sr.to_int(r.get("project_id")), project_slug=sr.to_str(r.get("__vc_project_slug")),
            project_key=sr.to_str(r.get("__vc_project_key")), sender_id=sr.to_int(r.get("sender_id")),
            sender_name=sr.to_str(r.get("__vc_sender_name")), thread_id=sr.to_str(r.get("thread_id")),
            topic=sr.to_str(r.get("topic")), subject=sr.to_str(r.get("subject")),
            body_md=sr.to_str(r.get("body_md")), body_chars=sr.to_int(r.get("__vc_body_len")),
            body_truncated="body_md" in cut, importance=importance,
            is_urgent=(importance or "").strip().lower() == "urgent",
            ack_required=sr.to_bool(r.get("ack_required")),
            attachments_json=sr.to_str(r.get("attachments")),
            recipients_json=sr.to_str(r.get("recipients_json")),
            raw_json=dumps(sr.public(r, drop=("body_md",))),
        )

    # Recipients: the greatest of read_ts / ack_ts, as µs whichever way it is stored.
    _CHG = (f"max(coalesce({sr.ts_key_sql('r.read_ts')}, 0), "
            f"coalesce({sr.ts_key_sql('r.ack_ts')}, 0))")

    def _recipient_queries(self, schema: dict[str, dict[str, str]], db: _Db,
                           budget: int) -> list[tuple[str, sr.Query]]:
        cols, joins = _joins(schema, "r", agent_col="agent_id", agent_as="__vc_agent_name", project=False)
        columns = ", ".join(["r.*", "m.created_ts AS __vc_msg_created", "m.ack_required AS __vc_ack_required",
                             *cols])
        join_sql = " ".join(["LEFT JOIN messages AS m ON m.id = r.message_id", *joins])
        seen = db.state["recipients"]
        plan: list[tuple[str, sr.Query]] = []
        if "recipients_hw" not in db.state:
            # First contact: states that exist now arrive with the rows themselves; later changes
            # are those past the newest read/ack time of this moment.
            plan.append(("recipients_init", sr.Query(
                f"SELECT max({self._CHG}) AS hw, max(r.rowid) AS top FROM message_recipients AS r", (), 1)))
        elif seen > 0:
            hw, hw_pk = db.state["recipients_hw"]
            sql = (f"SELECT * FROM (SELECT r.rowid AS {sr.PK_COL}, {columns}, {self._CHG} AS __vc_chg "
                   f"FROM message_recipients AS r {join_sql} WHERE r.rowid <= ?) AS c "
                   f"WHERE c.__vc_chg > 0 AND (c.__vc_chg > ? OR (c.__vc_chg = ? AND c.{sr.PK_COL} > ?)) "
                   f"ORDER BY c.__vc_chg, c.{sr.PK_COL} LIMIT ?")
            plan.append(("recipient_changes", sr.Query(sql, (seen, hw, hw, hw_pk, budget + 1), budget)))
        plan.append(("recipients", sr.after_query("message_recipients", pk="rowid", alias="r", after=seen,
                                                  limit=budget, columns=columns, joins=join_sql)))
        return plan

    def _take_recipients_init(self, ctx: CollectContext, db: _Db, read: sr.SqliteRead,
                              base: dict[str, Any]) -> None:
        if db.ok(read, "recipients"):
            first = read.rows[0] if read.rows else {}
            db.state["recipients_hw"] = [sr.to_int(first.get("hw")) or 0, sr.to_int(first.get("top")) or 0]

    def _take_recipient_changes(self, ctx: CollectContext, db: _Db, read: sr.SqliteRead,
                                base: dict[str, Any]) -> None:
        if not db.ok(read, "recipient changes"):
            return
        rows = db.take(read, "recipient state changes")
        if rows:
            hw = sr.to_int(rows[-1].get("__vc_chg"))
            pk = sr.to_int(rows[-1].get(sr.PK_COL))
            if hw is not None and pk is not None:
                db.state["recipients_hw"] = [hw, pk]
        self._add_recipients(ctx, db, rows, base)

    def _take_recipients(self, ctx: CollectContext, db: _Db, read: sr.SqliteRead,
                         base: dict[str, Any]) -> None:
        sr.finish_after(read, db.state["recipients"])
        if not db.ok(read, "recipients"):
            return
        self._add_recipients(ctx, db, db.take(read, "recipients"), base)
        db.state["recipients"] = read.next_after

    def _add_recipients(self, ctx: CollectContext, db: _Db, rows: list[dict[str, Any]],
                        base: dict[str, Any]) -> None:
        for r in rows:
            mid, aid = sr.to_int(r.get("message_id")), sr.to_int(r.get("agent_id"))
            created = sr.sqlite_time(r.get("__vc_msg_created"))
            if mid is None or aid is None or created is None:
                db.skip("recipient row(s) whose message is missing or unreadable")
                continue
            read_raw, ack_raw = r.get("read_ts"), r.get("ack_ts")
            state = "acked" if ack_raw is not None else "read" if read_raw is not None else "unread"
            db.rows.setdefault(T_RECIPIENTS, []).append(self.stamp(
                ctx.machine_id, **base, message_id=mid, message_created_at=created, agent_id=aid, state=state,
                agent_name=sr.to_str(r.get("__vc_agent_name")), kind=sr.to_str(r.get("kind")),
                read_at=sr.sqlite_time(read_raw), ack_at=sr.sqlite_time(ack_raw),
                ack_required=sr.to_bool(r.get("__vc_ack_required")), raw_json=dumps(sr.public(r)),
            ))

    def _reservation_queries(self, schema: dict[str, dict[str, str]], db: _Db, budget: int,
                             since_us: int) -> list[tuple[str, sr.Query]]:
        cols, joins = _joins(schema, "r", agent_col="agent_id", agent_as="__vc_agent_name", project=True)
        if "file_reservation_releases" in schema:  # Rust: releases go to a ledger, not the row
            cols.append("l.released_ts AS __vc_ledger_released")
            joins.append("LEFT JOIN file_reservation_releases AS l ON l.reservation_id = r.id")
        columns, join_sql = ", ".join(["r.*", *cols]), " ".join(joins)
        seen = db.state["reservations"]
        # New rows first: a live set as large as the row budget must not starve them.
        plan: list[tuple[str, sr.Query]] = [("reservations", sr.after_query(
            "file_reservations", alias="r", after=seen, limit=budget, columns=columns, joins=join_sql))]
        if seen > 0:
            sql = (f"SELECT r.id AS {sr.PK_COL}, {columns} FROM file_reservations AS r {join_sql} "
                   f"WHERE r.id <= ? AND {sr.ts_key_sql('r.expires_ts')} >= ? ORDER BY r.id LIMIT ?")
            plan.append(("reservation_recheck", sr.Query(sql, (seen, since_us, budget + 1), budget)))
        return plan

    def _take_reservation_recheck(self, ctx: CollectContext, db: _Db, read: sr.SqliteRead,
                                  base: dict[str, Any]) -> None:
        if db.ok(read, "reservations"):
            self._add_reservations(ctx, db, db.take(read, "live reservations re-checked"), base)

    def _take_reservations(self, ctx: CollectContext, db: _Db, read: sr.SqliteRead,
                           base: dict[str, Any]) -> None:
        sr.finish_after(read, db.state["reservations"])
        if not db.ok(read, "reservations"):
            return
        self._add_reservations(ctx, db, db.take(read, "reservations"), base)
        db.state["reservations"] = read.next_after

    def _add_reservations(self, ctx: CollectContext, db: _Db, rows: list[dict[str, Any]],
                          base: dict[str, Any]) -> None:
        for r in rows:
            rid = sr.to_int(r.get("id"))
            created, expires = sr.sqlite_time(r.get("created_ts")), sr.sqlite_time(r.get("expires_ts"))
            if rid is None or created is None or expires is None:
                db.skip("reservation(s) without a readable id, created_ts or expires_ts")
                continue
            released_raw = r.get("__vc_ledger_released")
            if released_raw is None:
                released_raw = r.get("released_ts")
            db.rows.setdefault(T_RESERVATIONS, []).append(self.stamp(
                ctx.machine_id, **base, reservation_id=rid, created_at=created,
                state="released" if released_raw is not None else "held", expires_at=expires,
                project_id=sr.to_int(r.get("project_id")), project_slug=sr.to_str(r.get("__vc_project_slug")),
                agent_id=sr.to_int(r.get("agent_id")), agent_name=sr.to_str(r.get("__vc_agent_name")),
                path_pattern=sr.to_str(r.get("path_pattern")), exclusive=sr.to_bool(r.get("exclusive")),
                reason=sr.to_str(r.get("reason")), released_at=sr.sqlite_time(released_raw),
                raw_json=dumps(sr.public(r)),
            ))

"""The store: the only code that opens the DuckDB file.

Readers get an Ibis backend over a read-only connection that closes when the block ends.
Writers hand over a `Batch`; it is written in one transaction, after any spooled batches (so
order is kept), or spooled to disk when the lock cannot be had within the retry budget.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import ibis
import pyarrow as pa

from workbench.store import migrations, spool
from workbench.store.batch import Batch
from workbench.store.connection import LockWait, StoreBusyError, open_with_retry, raw_reader

# Waits shorter than this are normal contention and not worth a row.
_LOCK_EVENT_MIN_MS = 50.0


class SchemaDriftError(ValueError):
    """Rows name columns or tables the migrated schema does not have."""


class BatchRejectedError(ValueError):
    """The database refused the batch's data (a constraint or a type); nothing of it was written."""


@dataclass
class WriteOutcome:
    inserted: dict[str, int] = field(default_factory=dict)
    spooled: Path | None = None
    replayed: int = 0
    waited_ms: float = 0.0

    @property
    def rows(self) -> int:
        return sum(self.inserted.values())


def _process_name() -> str:
    return os.path.basename(sys.argv[0]) or "python"


class Store:
    def __init__(self, db_path: Path, spool_dir: Path | None = None, lock_budget_s: float = 10.0,
                 writer_name: str | None = None):
        self.db_path = Path(db_path)
        self.spool_dir = Path(spool_dir) if spool_dir else self.db_path.parent / "spool"
        self.lock_budget_s = lock_budget_s
        self.writer_name = writer_name or _process_name()
        self._write_mutex = threading.Lock()
        self._catalog: dict[str, set[str]] | None = None
        self._lock_events: list[dict] = []

    @classmethod
    def from_config(cls, cfg, writer_name: str | None = None) -> Store:
        return cls(cfg.storage.db_path, cfg.storage.spool_dir, cfg.storage.lock_retry_seconds, writer_name)

    # ---------- schema ----------
    def migrate(self, force: bool = False) -> list[int]:
        self.db_path.parent.mkdir(parents=True, exist_ok=True)
        with self._writer() as (con, _):
            done = migrations.migrate(con, force=force)
            self._catalog = _read_catalog(con)
        return done

    def migration_status(self) -> list[migrations.MigrationStatus]:
        if not self.db_path.exists():
            return migrations.status(duckdb.connect())
        with raw_reader(self.db_path, self.lock_budget_s) as con:
            return migrations.status(con)

    def catalog(self) -> dict[str, set[str]]:
        """Table → column names of the migrated schema (cached: the schema changes only by migrate)."""
        if self._catalog is None:
            with raw_reader(self.db_path, self.lock_budget_s) as con:
                self._catalog = _read_catalog(con)
        return self._catalog

    # ---------- reading ----------
    @contextmanager
    def reader(self) -> Iterator[ibis.BaseBackend]:
        """An Ibis backend on a read-only connection, closed at the end of the block."""
        with raw_reader(self.db_path, self.lock_budget_s) as con:
            backend = ibis.duckdb.from_connection(con)
            yield backend

    @contextmanager
    def raw_reader(self) -> Iterator[duckdb.DuckDBPyConnection]:
        with raw_reader(self.db_path, self.lock_budget_s) as con:
            yield con

    # ---------- writing ----------
    @contextmanager
    def _writer(self, budget_s: float | None = None) -> Iterator[tuple[duckdb.DuckDBPyConnection, LockWait]]:
        wait = LockWait()
        with self._write_mutex:
            con = open_with_retry(self.db_path, read_only=False,
                                  budget_s=self.lock_budget_s if budget_s is None else budget_s, wait=wait)
            try:
                yield con, wait
            finally:
                con.close()

    def write(self, batch: Batch, budget_s: float | None = None) -> WriteOutcome:
        """Write `batch` (after any spooled ones); spool it if the lock cannot be had."""
        outcome = WriteOutcome()
        if batch.is_empty() and not spool.pending(self.spool_dir):
            return outcome
        if self._catalog is not None:
            self.validate(batch)  # refuse drift before it can reach the spool
        try:
            with self._writer(budget_s) as (con, wait):
                if self._catalog is None:
                    self._catalog = _read_catalog(con)
                    self.validate(batch)
                outcome.waited_ms = wait.waited_ms
                self._note_wait(wait, "written")
                for path, old in spool.iter_pending(self.spool_dir):
                    try:
                        self.validate(old)
                    except SchemaDriftError as exc:
                        # A spooled batch the schema no longer accepts must not block the queue forever.
                        spool.quarantine(path, self.spool_dir.parent / "rejected", str(exc))
                        continue
                    try:
                        self._write_tx(con, old)
                    except BatchRejectedError as exc:
                        spool.quarantine(path, self.spool_dir.parent / "rejected", str(exc))
                        continue
                    spool.discard(path)
                    outcome.replayed += 1
                if outcome.replayed:
                    self._note(wait, "replayed", force=True)
                outcome.inserted = self._write_tx(con, batch)
        except StoreBusyError as exc:
            if batch.is_empty():
                return outcome  # nothing new to keep; spooled batches stay where they are
            outcome.spooled = spool.spool_batch(self.spool_dir, batch, reason=str(exc))
            self._note(LockWait(exc.waited_s * 1000, 0, exc.holder), "spooled", force=True)
        return outcome

    def drain_spool(self) -> int:
        """Replay spooled batches now; returns how many were written."""
        if not spool.pending(self.spool_dir):
            return 0
        return self.write(Batch()).replayed

    def validate(self, batch: Batch) -> None:
        cat = self.catalog()
        for _, table, data in batch.pieces():
            check_columns(cat, table, data.column_names)

    def _write_tx(self, con: duckdb.DuckDBPyConnection, batch: Batch) -> dict[str, int]:
        inserted: dict[str, int] = {}
        con.execute("BEGIN TRANSACTION")
        try:
            for mode, table, data in batch.pieces():
                n = _insert(con, table, data, "OR IGNORE" if mode == "insert" else "OR REPLACE")
                inserted[table] = inserted.get(table, 0) + n
            if batch.cursors:
                _insert(con, "ingestion_cursors", pa.Table.from_pylist([c.as_row() for c in batch.cursors]),
                        "OR REPLACE")
            if self._lock_events:
                _insert(con, "store_lock_events", pa.Table.from_pylist(self._lock_events), "")
            con.execute("COMMIT")
        except BatchRejectedError:
            con.execute("ROLLBACK")
            raise
        except duckdb.Error as exc:
            con.execute("ROLLBACK")
            raise BatchRejectedError(str(exc)) from exc
        self._lock_events.clear()
        return inserted

    def _note_wait(self, wait: LockWait, outcome: str) -> None:
        self._note(wait, outcome, force=False)

    def _note(self, wait: LockWait, outcome: str, force: bool) -> None:
        if not force and wait.waited_ms < _LOCK_EVENT_MIN_MS:
            return
        self._lock_events.append({
            "ts": datetime.now(UTC),
            "writer": self.writer_name,
            "writer_pid": os.getpid(),
            "blocked_by_pid": wait.holder.pid if wait.holder else None,
            "blocked_by": wait.holder.program if wait.holder else None,
            "waited_ms": float(wait.waited_ms),
            "attempts": int(wait.attempts),
            "outcome": outcome,
        })

    def execute_write(self, sql: str, params: list | None = None) -> None:
        """One statement in its own short write transaction (UI actions such as notes)."""
        with self._writer() as (con, wait):
            self._note_wait(wait, "written")
            con.execute(sql, params or [])


def _read_catalog(con: duckdb.DuckDBPyConnection) -> dict[str, set[str]]:
    rows = con.execute(
        "SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = 'main'"
    ).fetchall()
    cat: dict[str, set[str]] = {}
    for t, c in rows:
        cat.setdefault(t, set()).add(c)
    return cat


def check_columns(catalog: dict[str, set[str]], table: str, columns: list[str]) -> None:
    if table not in catalog:
        raise SchemaDriftError(f"table {table!r} does not exist in the migrated schema")
    unknown = sorted(set(columns) - catalog[table])
    if unknown:
        raise SchemaDriftError(f"table {table!r} has no column(s) {', '.join(unknown)}")


def _insert(con: duckdb.DuckDBPyConnection, table: str, data: pa.Table, mode: str) -> int:
    if data.num_rows == 0:
        return 0
    con.register("_vc_batch", data)
    try:
        res = con.execute(f'INSERT {mode} INTO "{table}" BY NAME SELECT * FROM _vc_batch').fetchone()
    except duckdb.Error as exc:
        # Keep the real reason (e.g. a NOT NULL violation), not the aborted-transaction noise after it.
        raise BatchRejectedError(f"{table}: {exc}") from exc
    finally:
        try:
            con.unregister("_vc_batch")
        except duckdb.Error:
            pass
    return int(res[0]) if res else 0

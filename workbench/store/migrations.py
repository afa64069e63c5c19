"""Versioned SQL migrations with checksums.

A migration that was applied and later edited would leave databases in different shapes for the
same version number, so a changed checksum refuses to start unless forced.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import duckdb

from workbench.config import REPO_ROOT

MIGRATIONS_DIR = REPO_ROOT / "sql" / "migrations"
_NAME_RE = re.compile(r"^(?P<version>\d{4})_(?P<desc>[a-z0-9_]+)\.sql$")


class MigrationError(RuntimeError):
    """The database and the migration files disagree; the message says how."""


@dataclass(frozen=True)
class Migration:
    version: int
    description: str
    path: Path
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class MigrationStatus:
    version: int
    description: str
    applied_at: datetime | None
    checksum_ok: bool | None  # None when not applied yet


def discover(directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    found: list[Migration] = []
    for p in sorted(directory.glob("*.sql")):
        m = _NAME_RE.match(p.name)
        if not m:
            raise MigrationError(f"{p}: migration files must be named NNNN_description.sql")
        found.append(Migration(int(m["version"]), m["desc"], p, p.read_text(encoding="utf-8")))
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise MigrationError(f"{directory}: two migrations share a version number")
    return found


_BOOKKEEPING = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version     INTEGER PRIMARY KEY,
    description VARCHAR NOT NULL,
    checksum    VARCHAR NOT NULL,
    applied_at  TIMESTAMPTZ NOT NULL
)
"""


def _applied(con: duckdb.DuckDBPyConnection) -> dict[int, tuple[str, str, datetime]]:
    exists = con.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_name = 'schema_migrations'"
    ).fetchone()[0]
    if not exists:
        return {}
    rows = con.execute("SELECT version, description, checksum, applied_at FROM schema_migrations").fetchall()
    return {r[0]: (r[1], r[2], r[3]) for r in rows}


def status(con: duckdb.DuckDBPyConnection, directory: Path = MIGRATIONS_DIR) -> list[MigrationStatus]:
    applied = _applied(con)
    out = []
    for m in discover(directory):
        a = applied.get(m.version)
        out.append(
            MigrationStatus(m.version, m.description, a[2] if a else None, (a[1] == m.checksum) if a else None)
        )
    return out


def check(con: duckdb.DuckDBPyConnection, directory: Path = MIGRATIONS_DIR, force: bool = False) -> None:
    """Raise if an applied migration's file changed (unless `force`)."""
    applied = _applied(con)
    known = {m.version: m for m in discover(directory)}
    for version, (desc, checksum, _) in sorted(applied.items()):
        m = known.get(version)
        if m is None:
            raise MigrationError(
                f"database has migration {version:04d}_{desc} which is not in {directory}; "
                "this build is older than the database"
            )
        if m.checksum != checksum and not force:
            raise MigrationError(
                f"migration {m.path.name} was modified after it was applied "
                f"(checksum {checksum[:12]}… in the database, {m.checksum[:12]}… on disk). "
                "Restore the file, or add a new migration; `vc db migrate --force` accepts the change."
            )


def migrate(con: duckdb.DuckDBPyConnection, directory: Path = MIGRATIONS_DIR, force: bool = False) -> list[int]:
    """Apply pending migrations in order, each in its own transaction; returns versions applied."""
    con.execute(_BOOKKEEPING)
    check(con, directory, force=force)
    applied = _applied(con)
    done: list[int] = []
    for m in discover(directory):
        if m.version in applied:
            if force and applied[m.version][1] != m.checksum:
                con.execute("UPDATE schema_migrations SET checksum = ? WHERE version = ?", [m.checksum, m.version])
            continue
        con.execute("BEGIN TRANSACTION")
        try:
            con.execute(m.sql)
            con.execute(
                "INSERT INTO schema_migrations VALUES (?, ?, ?, ?)",
                [m.version, m.description, m.checksum, datetime.now(UTC)],
            )
            con.execute("COMMIT")
        except Exception as exc:
            con.execute("ROLLBACK")
            raise MigrationError(f"{m.path.name} failed: {exc}") from exc
        done.append(m.version)
    return done

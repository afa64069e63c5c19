"""Migrations: fresh apply, idempotent re-run, checksum refusal (and --force)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from workbench.store import Store
from workbench.store import migrations as mig

REAL = mig.MIGRATIONS_DIR


def test_fresh_and_rerun(tmp_path):
    s = Store(tmp_path / "vc.duckdb")
    done = s.migrate()
    assert done == [m.version for m in mig.discover()]
    assert s.migrate() == []
    st = s.migration_status()
    assert all(r.applied_at is not None and r.checksum_ok for r in st)
    with duckdb.connect(str(s.db_path), read_only=True) as con:
        tables = {r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
    assert {"sys_samples", "collector_runs", "ingestion_cursors", "schema_migrations", "machines"} <= tables


def _copy_migrations(tmp_path: Path) -> Path:
    d = tmp_path / "migrations"
    shutil.copytree(REAL, d)
    return d


def test_modified_migration_refuses_then_force(tmp_path):
    d = _copy_migrations(tmp_path)
    con = duckdb.connect(str(tmp_path / "x.duckdb"))
    mig.migrate(con, d)
    first = sorted(d.glob("*.sql"))[0]
    first.write_text(first.read_text() + "\n-- edited after the fact\n")
    with pytest.raises(mig.MigrationError, match="modified after it was applied"):
        mig.migrate(con, d)
    assert mig.migrate(con, d, force=True) == []
    mig.check(con, d)  # accepted now
    con.close()


def test_failed_migration_rolls_back(tmp_path):
    d = _copy_migrations(tmp_path)
    (d / "9998_ok.sql").write_text("CREATE TABLE later_ok (a INTEGER);")
    (d / "9999_broken.sql").write_text("CREATE TABLE half_done (a INTEGER); SELECT * FROM no_such_table;")
    con = duckdb.connect(str(tmp_path / "x.duckdb"))
    with pytest.raises(mig.MigrationError, match="9999_broken.sql failed"):
        mig.migrate(con, d)
    names = {r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
    assert "later_ok" in names and "half_done" not in names
    assert 9999 not in {r[0] for r in con.execute("SELECT version FROM schema_migrations").fetchall()}
    con.close()


def test_database_newer_than_code(tmp_path):
    d = _copy_migrations(tmp_path)
    con = duckdb.connect(str(tmp_path / "x.duckdb"))
    (d / "9000_future.sql").write_text("CREATE TABLE future (a INTEGER);")
    mig.migrate(con, d)
    (d / "9000_future.sql").unlink()
    with pytest.raises(mig.MigrationError, match="not in"):
        mig.migrate(con, d)
    con.close()


def test_bad_file_name(tmp_path):
    d = tmp_path / "m"
    d.mkdir()
    (d / "1_x.sql").write_text("SELECT 1")
    with pytest.raises(mig.MigrationError, match="NNNN_description"):
        mig.discover(d)


def test_cli_migrate_and_status(tmp_path):
    cfg = tmp_path / "vc.toml"
    cfg.write_text('[storage]\ndata_dir = "data"\n')
    run = [sys.executable, "-m", "workbench.cli", "--config", str(cfg)]
    r = subprocess.run([*run, "db", "migrate"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert "applied" in r.stderr and r.stdout == ""
    r = subprocess.run([*run, "db", "status"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and "0001  core" in r.stdout and "pending" not in r.stdout

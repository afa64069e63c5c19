"""Ingestion throughput: `Store.write(Batch)` with Arrow against naive row-by-row INSERTs.

Same run, same rows (system samples for 200 machines, one a minute), each method into its own fresh,
migrated database (so every method pays the same primary-key checks):

- Store.write, one Arrow batch: what `vc demo` and a big daemon cycle do (open, validate, INSERT OR
  IGNORE … BY NAME from Arrow, commit, close).
- Store.write, the same batch again: every row a duplicate; what re-collecting costs.
- Store.write, daemon-sized batches: 1,000-row batches (one cycle of a 1,000-machine fleet), each one
  a whole open / write / close of the file.
- row-by-row: `INSERT INTO sys_samples (…) VALUES (?, …)` per row on one open connection, each in
  its own (auto-committed) transaction: the naive way.
- executemany, one transaction: the same statement with all rows at once.

The slow methods run on fewer rows; rows/s is what they would sustain.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa

from workbench.store import Batch, Store

GIB = 1024**3
START_MINUTE = 29_400_000  # 2025-11-25, any fixed minute will do


def sample_rows(n: int, machines: int = 200) -> pa.Table:
    """`n` realistic sys_samples rows: `machines` machines, one a minute, time-major like the daemon."""
    rng = np.random.default_rng(7)
    i = np.arange(n)
    m = i % machines
    minute = START_MINUTE + i // machines
    cores = (4 * (1 + m % 8)).astype(np.int32)
    cpu = np.round(np.clip(25 + 20 * np.sin(minute / 229.0 + m) + 15 * rng.random(n), 0.5, 100), 1)
    mem_total = (16 * (1 + m % 8) * GIB).astype(np.int64)
    mem_used = (mem_total * (0.3 + 0.4 * rng.random(n))).astype(np.int64)
    ids = pa.array([f"bench-{k:04d}" for k in range(machines)])
    return pa.table({
        "machine_id": pa.DictionaryArray.from_arrays(pa.array(m.astype(np.int32)), ids).dictionary_decode(),
        "ts": pa.array(minute.astype(np.int64) * 60_000_000, pa.timestamp("us", tz="UTC")),
        "source": pa.repeat("system", n), "source_version": pa.repeat("1", n),
        "schema_version": pa.array(np.ones(n, np.int32)),
        "cpu_pct": cpu, "cpu_count": pa.array(cores),
        "load1": np.round(cores * cpu / 100 * (0.8 + 0.4 * rng.random(n)), 2),
        "load5": np.round(cores * cpu / 100, 2), "load15": np.round(cores * cpu / 100 * 0.9, 2),
        "mem_total_bytes": mem_total, "mem_used_bytes": mem_used, "mem_available_bytes": mem_total - mem_used,
        "swap_total_bytes": np.full(n, 8 * GIB, np.int64),
        "swap_used_bytes": (GIB * 0.2 * rng.random(n)).astype(np.int64),
        "net_rx_bps": np.round(1e6 * (1 + 4 * rng.random(n)), 1),
        "net_tx_bps": np.round(2e5 * (1 + 4 * rng.random(n)), 1),
        "uptime_seconds": 86400.0 + 60.0 * (minute - START_MINUTE),
        "is_demo": pa.repeat(False, n),
    })


def fresh_store(root: Path, name: str) -> Store:
    s = Store(root / name / "vc.duckdb", writer_name="bench")
    s.migrate()
    return s


def count(store: Store) -> int:
    with store.raw_reader() as con:
        return con.execute("SELECT count(*) FROM sys_samples").fetchone()[0]


def timed(fn: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=200_000, help="rows for the batch methods")
    ap.add_argument("--naive-rows", type=int, default=5_000, help="rows for the row-by-row methods")
    ap.add_argument("--daemon-batches", type=int, default=20, help="how many 1,000-row Store.write calls")
    args = ap.parse_args(argv)

    table = sample_rows(args.rows)
    naive = table.slice(0, min(args.naive_rows, args.rows))
    cols = table.column_names
    insert_sql = f"INSERT INTO sys_samples ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})"
    naive_rows = [tuple(r[c] for c in cols) for r in naive.to_pylist()]
    results: list[tuple[str, int, float, int]] = []  # (method, rows, seconds, rows stored)

    with tempfile.TemporaryDirectory(prefix="vc-bench-ingest-") as tmp:
        root = Path(tmp)

        s = fresh_store(root, "batch")
        b = Batch()
        b.add_rows("sys_samples", table)
        results.append(("Store.write, one Arrow batch", table.num_rows, timed(lambda: s.write(b)), count(s)))
        again: dict[str, int] = {}
        secs = timed(lambda: again.update(s.write(b).inserted))
        results.append(("Store.write, same batch again (dupes)", table.num_rows, secs,
                        again.get("sys_samples", 0)))

        s2 = fresh_store(root, "daemon")
        size = 1_000
        parts = []
        for k in range(min(args.daemon_batches, args.rows // size)):
            pb = Batch()
            pb.add_rows("sys_samples", table.slice(k * size, size))
            parts.append(pb)
        secs = timed(lambda: [s2.write(pb) for pb in parts])
        results.append((f"Store.write, {len(parts)} batches of {size:,}", size * len(parts), secs, count(s2)))

        s3 = fresh_store(root, "naive")

        def row_by_row() -> None:
            con = duckdb.connect(str(s3.db_path))
            try:
                for row in naive_rows:
                    con.execute(insert_sql, row)
            finally:
                con.close()

        results.append(("row-by-row INSERT, autocommit", len(naive_rows), timed(row_by_row), count(s3)))

        s4 = fresh_store(root, "many")

        def executemany() -> None:
            con = duckdb.connect(str(s4.db_path))
            try:
                con.execute("BEGIN TRANSACTION")
                con.executemany(insert_sql, naive_rows)
                con.execute("COMMIT")
            finally:
                con.close()

        results.append(("executemany, one transaction", len(naive_rows), timed(executemany), count(s4)))

    naive_rate = next(n / t for name, n, t, _ in results if name.startswith("row-by-row"))
    print(f"sys_samples ingestion, duckdb {duckdb.__version__}, pyarrow {pa.__version__}")
    header = f"{'method':<40} {'rows':>9} {'seconds':>9} {'rows/s':>12} {'vs row-by-row':>14} {'stored':>9}"
    print(header)
    print("-" * len(header))
    for name, n, t, stored in results:
        rate = n / t if t > 0 else float("inf")
        print(f"{name:<40} {n:9,d} {t:9.3f} {rate:12,.0f} {rate / naive_rate:13.1f}x {stored:9,d}")
    batch_rate = results[0][1] / results[0][2]
    print(f"\nspeedup of Store.write (Arrow) over row-by-row INSERT: {batch_rate / naive_rate:,.0f}x")


if __name__ == "__main__":
    main()

"""How fast the Overview's views answer on a big database (default: 1000 machines × 7 days ≈ 10 M samples).

The database is built with plain DuckDB SQL (`INSERT … SELECT … FROM range()`) after `Store.migrate()`:
a fast path for bench data only, real rows always go through `Store.write`. Rows are inserted in time
order (every machine's minute t, then t+1 …), the order the daemon writes them in, so per-machine
filters cannot lean on an accidentally machine-sorted file. The built file is cached under
/tmp/vc-bench/ keyed by the parameters and the migrations, so reruns only time the views.

Each view runs through a fresh read-only `Store.reader()`, like a page render: "cold" is its first
execution after opening (DuckDB's buffer pool empty; the OS page cache may be warm), "warm" is the
median of the next `--repeat` executions. Times include Ibis compilation and conversion to pandas.

Baseline, same run, same data: "latest sample per machine" written the textbook way, a
ROW_NUMBER() window over the whole table, against the arg_max aggregate `latest_samples` uses
(machine_state, machine_health and fleet_health all stand on it); and the same answer computed in
pandas after loading the needed columns, which is what a notebook without the views would do.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import ibis

from workbench.config import HealthConfig
from workbench.store import Store
from workbench.store.migrations import discover
from workbench.views import health, machines, ops

END = datetime(2026, 1, 8, tzinfo=UTC)  # fixed, so a cached database stays valid
DATA_VERSION = "1"  # bump when the generating SQL changes
GIB = "1073741824::BIGINT"  # SQL literal: products of INTEGER literals would overflow


def cache_path(cache_dir: Path, n_machines: int, days: int) -> Path:
    mig = hashlib.sha256("".join(m.checksum for m in discover()).encode()).hexdigest()[:10]
    return cache_dir / f"views-m{n_machines}-d{days}-v{DATA_VERSION}-{mig}.duckdb"


def _u(k: int) -> str:
    """A deterministic uniform in [0, 1) per (machine, minute, k), from DuckDB's hash."""
    return f"((hash(m, t, {k}) % 1000003) / 1000003.0)"


def build(path: Path, n_machines: int, days: int) -> float:
    """Write the bench database to `path` (via a temporary name, so a half-built file is never reused)."""
    tmp = path.with_name(path.name + ".building")
    for p in (tmp, Path(str(tmp) + ".wal")):
        p.unlink(missing_ok=True)
    t0 = time.perf_counter()
    Store(tmp, writer_name="bench").migrate()
    minutes = days * 1440
    end = f"TIMESTAMPTZ '{END.isoformat()}'"
    ts = f"({end} - to_minutes(({minutes} - 1 - t)::BIGINT))"
    mid = "('bench-' || lpad(m::VARCHAR, 4, '0'))"
    cores = "(4 * (1 + m % 8))"
    # Working-hours shape per machine (phase by machine), plus noise; a few machines run hot.
    day = "sin(2 * pi() * ((t % 1440) / 1440.0) + (m % 24) / 3.8)"
    hot = "CASE WHEN m % 97 = 0 THEN 45 ELSE 0 END"
    cpu = f"least(100.0, greatest(0.5, 25 + 20 * {day} + 15 * {_u(1)} + {hot}))"
    mem_total = f"((16 * (1 + m % 8))::BIGINT * {GIB})"
    con = duckdb.connect(str(tmp))
    try:
        con.execute("SET TimeZone = 'UTC'")
        con.execute(f"""
            INSERT INTO machines BY NAME
            SELECT {mid} AS machine_id, {mid} AS display_name, {mid} || '.bench.internal' AS hostname,
                   ['bench', ['agents', 'build', 'ci', 'db'][1 + m % 4],
                    ['eu', 'us', 'ap'][1 + m % 3]] AS tags,
                   FALSE AS is_demo, TRUE AS enabled, {cores} AS cpu_count,
                   {end} - INTERVAL {days} DAY AS added_at, {end} AS updated_at
            FROM range({n_machines}) r(m)""")
        for d in range(days):  # one day per statement keeps memory flat
            con.execute(f"""
                INSERT INTO sys_samples BY NAME
                SELECT {mid} AS machine_id, {ts} AS ts, 'bench' AS source, '1' AS source_version,
                       1 AS schema_version, round({cpu}, 1) AS cpu_pct, {cores} AS cpu_count,
                       round({cores} * {cpu} / 100 * (0.8 + 0.4 * {_u(2)}), 2) AS load1,
                       round({cores} * {cpu} / 100 * (0.9 + 0.2 * {_u(3)}), 2) AS load5,
                       round({cores} * {cpu} / 100, 2) AS load15,
                       {mem_total} AS mem_total_bytes,
                       ({mem_total} * (0.3 + 0.4 * {_u(4)}))::BIGINT AS mem_used_bytes,
                       ({mem_total} * (0.7 - 0.4 * {_u(4)}))::BIGINT AS mem_available_bytes,
                       (8 * {GIB})::BIGINT AS swap_total_bytes,
                       ({GIB} * 0.2 * {_u(5)})::BIGINT AS swap_used_bytes,
                       round(1e6 * (1 + 4 * {_u(6)}), 1) AS net_rx_bps,
                       round(2e5 * (1 + 4 * {_u(7)}), 1) AS net_tx_bps,
                       (86400.0 * (1 + m % 30) + 60.0 * t) AS uptime_seconds, FALSE AS is_demo
                FROM range({d * 1440}, {(d + 1) * 1440}) a(t), range({n_machines}) b(m)
                ORDER BY t, m""")
            print(f"  built day {d + 1}/{days}: {(d + 1) * 1440 * n_machines:,} samples, "
                  f"{time.perf_counter() - t0:.1f}s", file=sys.stderr, flush=True)
        # Filesystems every 15 minutes (2 mounts), collector runs every 15 minutes: lower resolution.
        fs_ts = f"({end} - to_minutes(({minutes} - 1 - t)::BIGINT))"
        con.execute(f"""
            INSERT INTO sys_filesystems BY NAME
            SELECT {mid} AS machine_id, {fs_ts} AS ts, mnt AS mount, 'bench' AS source, '1' AS source_version,
                   1 AS schema_version, '/dev/' || mnt_dev AS device, 'ext4' AS fstype,
                   (500 * {GIB})::BIGINT AS total_bytes,
                   (500 * {GIB} * used / 100)::BIGINT AS used_bytes,
                   (500 * {GIB} * (100 - used) / 100)::BIGINT AS free_bytes, round(used, 2) AS used_pct,
                   FALSE AS is_demo
            FROM (SELECT t, m, mnt, mnt_dev,
                         least(99.0, 30 + (m % 50) + 10 * (t % 1440) / 1440.0
                               + CASE WHEN m % 113 = 0 AND mnt = '/data' THEN 20 ELSE 0 END) AS used
                  FROM range(0, {minutes}, 15) a(t), range({n_machines}) b(m),
                       (VALUES ('/', 'nvme0n1p2'), ('/data', 'sdb1')) v(mnt, mnt_dev))
            ORDER BY t, m, mnt""")
        con.execute(f"""
            INSERT INTO collector_runs BY NAME
            SELECT 'r-' || m || '-' || t AS run_id, 'c-' || t AS cycle_id, {mid} AS machine_id,
                   'probe' AS collector, {fs_ts} AS started_at,
                   {fs_ts} + INTERVAL 300 MILLISECOND AS finished_at,
                   300.0 AS duration_ms, 2 AS rows_written,
                   CASE WHEN hash(m, t) % 50 = 0 THEN 'error' WHEN hash(m, t) % 20 = 0 THEN 'warning'
                        ELSE 'ok' END AS status,
                   '1' AS source_version, 1 AS schema_version
            FROM range(0, {minutes}, 15) a(t), range({n_machines}) b(m)
            ORDER BY t, m""")
        con.execute(f"""
            INSERT INTO alerts BY NAME
            SELECT 'a-' || i AS alert_id, 'disk_full' AS rule_id,
                   'bench-' || lpad((i * 7 % {n_machines})::VARCHAR, 4, '0') AS machine_id,
                   'disk_full:' || i AS dedupe_key, 'warning' AS severity,
                   ['pending', 'firing', 'resolved', 'resolved'][1 + i % 4] AS state,
                   'disk above 85%' AS summary,
                   {end} - to_minutes(i::BIGINT) AS started_at, {end} AS updated_at
            FROM range(400) r(i)""")
        con.execute(f"""
            INSERT INTO alert_acks BY NAME
            SELECT 'a-' || i AS alert_id, {end} - to_minutes((i / 2)::BIGINT) AS acked_at, 'bench' AS acked_by
            FROM range(0, 400, 3) r(i)""")
        con.execute("CHECKPOINT")
    finally:
        con.close()
    os.replace(tmp, path)
    return time.perf_counter() - t0


def timed(fn: Callable[[], object]) -> tuple[float, object]:
    t0 = time.perf_counter()
    out = fn()
    return (time.perf_counter() - t0) * 1000, out


def measure(store: Store, fn: Callable, repeat: int) -> tuple[float, float, float, int]:
    """(open ms, cold ms, warm median ms, result rows) with a fresh read-only reader."""
    t0 = time.perf_counter()
    with store.reader() as con:
        open_ms = (time.perf_counter() - t0) * 1000
        cold, out = timed(lambda: fn(con))
        warm = [timed(lambda: fn(con))[0] for _ in range(repeat)]
    return open_ms, cold, statistics.median(warm), len(out)


_METRICS = ", ".join(machines._SAMPLE_METRICS)
# DuckDB's native arg_max: one pass, no sort.
ARGMAX_SQL = f"""
SELECT machine_id, max(ts) AS last_ts, count(*) AS samples,
       {", ".join(f"arg_max({c}, ts) AS {c}" for c in machines._SAMPLE_METRICS)}
FROM sys_samples GROUP BY machine_id
"""
# Latest timestamp per machine, then join back to fetch that row.
MAXJOIN_SQL = f"""
SELECT s.machine_id, s.ts AS last_ts, {", ".join("s." + c for c in machines._SAMPLE_METRICS)}
FROM sys_samples s JOIN (SELECT machine_id, max(ts) AS ts FROM sys_samples GROUP BY 1) l
  ON s.machine_id = l.machine_id AND s.ts = l.ts
"""
# The textbook "latest row per group": rank every row, keep rank 1. Same columns as latest_samples
# except its sample count (that would need a second window).
WINDOW_SQL = f"""
SELECT machine_id, ts AS last_ts, {_METRICS} FROM (
    SELECT *, row_number() OVER (PARTITION BY machine_id ORDER BY ts DESC) AS rn FROM sys_samples
) WHERE rn = 1
"""


def pandas_latest(con) -> object:
    """Load the columns machine_state needs, then the latest row per machine with pandas."""
    df = con.con.execute(
        "SELECT machine_id, ts, cpu_pct, cpu_count, load1, load5, mem_total_bytes, mem_used_bytes, "
        "swap_total_bytes, swap_used_bytes FROM sys_samples"
    ).df()
    return df.sort_values("ts").groupby("machine_id", sort=True).tail(1)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--machines", type=int, default=1000)
    ap.add_argument("--days", type=int, default=7)
    ap.add_argument("--repeat", type=int, default=5, help="warm executions per view (median reported)")
    ap.add_argument("--cache-dir", type=Path, default=Path("/tmp/vc-bench"))
    ap.add_argument("--rebuild", action="store_true", help="ignore a cached database")
    ap.add_argument("--no-pandas", action="store_true", help="skip the pandas baseline (it loads the table)")
    args = ap.parse_args(argv)
    # Deprecation chatter from pandas / Ibis internals would drown the table.
    warnings.simplefilter("ignore")

    args.cache_dir.mkdir(parents=True, exist_ok=True)
    path = cache_path(args.cache_dir, args.machines, args.days)
    if args.rebuild or not path.exists():
        print(f"building {path} ({args.machines} machines × {args.days} days) …", file=sys.stderr)
        secs = build(path, args.machines, args.days)
        print(f"built in {secs:.1f}s", file=sys.stderr)
    store = Store(path, writer_name="bench")
    with store.raw_reader() as con:
        counts = {t: con.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
                  for t in ("machines", "sys_samples", "sys_filesystems", "collector_runs", "alerts")}
    size_mb = path.stat().st_size / 1e6
    now = END
    cfg = HealthConfig()
    one = "bench-0001"

    cases: list[tuple[str, Callable]] = [
        ("machine_state", lambda c: machines.machine_state(c, now).execute()),
        ("machine_health", lambda c: health.machine_health(c, cfg, now).execute()),
        ("fleet_health", lambda c: health.fleet_health(c, cfg, now).execute()),
        ("sample_series 1 machine 24h", lambda c: machines.sample_series(c, one, now - timedelta(hours=24),
                                                                          now).execute()),
        ("sample_series 1 machine 7d", lambda c: machines.sample_series(c, one, now - timedelta(days=7),
                                                                         now).execute()),
        ("ops.poll_freshness", lambda c: ops.poll_freshness(c, now).execute()),
        ("ops.active_alert_count", lambda c: ops.active_alert_count(c).execute()),
        ("Overview page (4 views above)", lambda c: [
            health.fleet_health(c, cfg, now).execute(), ops.poll_freshness(c, now).execute(),
            ops.active_alert_count(c).execute(), health.machine_health(c, cfg, now).execute()]),
    ]
    with store.reader() as c:
        views_sql = str(ibis.to_sql(machines.latest_samples(c), dialect="duckdb"))
    baselines: list[tuple[str, Callable]] = [
        ("latest_samples (Ibis, as the views run)", lambda c: machines.latest_samples(c).execute()),
        ("latest: the views' SQL (compiled by Ibis)", lambda c: c.con.execute(views_sql).df()),
        ("latest: native arg_max", lambda c: c.con.execute(ARGMAX_SQL).df()),
        ("latest: max(ts) + join back", lambda c: c.con.execute(MAXJOIN_SQL).df()),
        ("latest: ROW_NUMBER window", lambda c: c.con.execute(WINDOW_SQL).df()),
    ]
    if not args.no_pandas:
        baselines.append(("latest: pandas (load, sort, groupby)", pandas_latest))

    print(f"\ndatabase: {path} ({size_mb:,.0f} MB)")
    print("rows: " + ", ".join(f"{t} {n:,}" for t, n in counts.items()))
    print(f"duckdb {duckdb.__version__}, {os.cpu_count()} CPU(s); warm = median of {args.repeat}\n")
    header = f"{'view':<40} {'open ms':>8} {'cold ms':>9} {'warm ms':>9} {'rows':>6}"
    print(header)
    print("-" * len(header))
    results: dict[str, float] = {}
    for name, fn in cases + [("", None)] + baselines:
        if fn is None:
            print(f"{'-- baseline (same data, same run) --':<40}")
            continue
        reps = args.repeat if "pandas" not in name else max(1, min(args.repeat, 2))
        o, cold, warm, n = measure(store, fn, reps)
        results[name] = warm
        print(f"{name:<40} {o:8.1f} {cold:9.1f} {warm:9.1f} {n:6d}")
    ref_name = "latest: the views' SQL (compiled by Ibis)"
    ref = results[ref_name]
    print(f"\nwarm speed relative to {ref_name} ({ref:.1f} ms); >1 is faster than the views:")
    for name, ms in results.items():
        if name.startswith("latest: ") and name != ref_name:
            print(f"  {name[len('latest: '):]:<32} {ms:9.1f} ms  {ref / ms:7.2f}x")
    ibis_ms = results["latest_samples (Ibis, as the views run)"]
    print(f"the same query through Ibis (compile + pandas): {ibis_ms:.1f} ms warm vs {ref:.1f} ms as raw SQL")

if __name__ == "__main__":
    main()

"""The demo fleet: a seeded, deterministic set of machines with realistic days and injected episodes.

Every value is a pure function of (seed, machine, minute): noise comes from a counter-based hash,
not from a stateful generator. That is what lets the daemon's keep-alive produce the next minutes
of a demo machine with exactly the generator that produced its history, so the dashboard moves
without a seam. Rows go through `Store.write(Batch)`, the same ingestion path collectors use.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa

from workbench.store import Batch, Store

SOURCE = "demo"
SOURCE_VERSION = "demo-1"
GiB = 1024**3
MAX_BACKFILL = timedelta(hours=24)
EPISODES_FILE = "demo_episodes.json"  # next to the database: for people, notebooks and tests
_DEMO_TABLES = ("sys_samples", "sys_filesystems", "sys_top_processes", "machines")
_ROLES = ("agents", "build", "agents", "agents", "ci", "agents", "build", "agents", "db", "agents", "gpu", "agents")
_REGIONS = ("eu", "us", "ap")
_PROCS = (("claude", "claude --resume"), ("codex", "codex exec"), ("gemini", "gemini -p"), ("cargo", "cargo build"),
          ("node", "node vite build"), ("python", "python -m pytest"), ("postgres", "postgres: writer"),
          ("rustc", "rustc --crate-type lib"), ("ntm", "ntm serve"), ("rchd", "rchd --workers 8"))


@dataclass(frozen=True)
class Episode:
    machine_id: str
    kind: str  # disk_filling | load_storm | swap_thrash | silent
    start: datetime
    end: datetime | None  # None: still going on
    description: str

    def to_json(self) -> dict:
        d = asdict(self)
        d["start"] = self.start.isoformat()
        d["end"] = self.end.isoformat() if self.end else None
        return d

    @classmethod
    def from_json(cls, d: dict) -> Episode:
        return cls(d["machine_id"], d["kind"], datetime.fromisoformat(d["start"]),
                   datetime.fromisoformat(d["end"]) if d["end"] else None, d["description"])


@dataclass(frozen=True)
class DemoMachine:
    index: int
    machine_id: str
    role: str
    region: str
    cores: int
    mem_total: int
    swap_total: int
    base_cpu: float
    amp_cpu: float
    base_mem: float
    mounts: tuple[tuple[str, str, int, float], ...]  # (mount, device, total_bytes, start_used_pct)


@dataclass
class DemoSummary:
    machines: int
    days: int
    seed: int
    start: datetime
    end: datetime
    rows: dict[str, int]
    episodes: list[Episode]
    episodes_path: Path | None = None

    def __str__(self) -> str:
        total = sum(self.rows.values())
        return (f"{self.machines} machines × {self.days} days (seed {self.seed}), {total:,} rows "
                f"({', '.join(f'{k} {v:,}' for k, v in self.rows.items())}), {len(self.episodes)} episodes")


# ---------------- deterministic noise ----------------
_M1, _M2 = np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB)


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64 finalizer: a well-spread 64-bit hash of each element."""
    x = x.astype(np.uint64, copy=True)
    with np.errstate(over="ignore"):
        x ^= x >> np.uint64(30)
        x *= _M1
        x ^= x >> np.uint64(27)
        x *= _M2
        x ^= x >> np.uint64(31)
    return x


def uniform(seed: int, machine: int, channel: int, minutes: np.ndarray) -> np.ndarray:
    """U[0,1) for each epoch minute: a pure function of its arguments."""
    key = np.uint64((seed * 1_000_003 + machine * 7919 + channel * 104_729) & 0xFFFFFFFFFFFF)
    with np.errstate(over="ignore"):
        h = _mix(minutes.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15) + key)
    return (h >> np.uint64(11)).astype(np.float64) / float(1 << 53)


def normal(seed: int, machine: int, channel: int, minutes: np.ndarray) -> np.ndarray:
    u1 = np.clip(uniform(seed, machine, channel, minutes), 1e-12, 1.0)
    u2 = uniform(seed, machine, channel + 50, minutes)
    return np.sqrt(-2.0 * np.log(u1)) * np.cos(2 * np.pi * u2)


def smooth_noise(seed: int, machine: int, channel: int, minutes: np.ndarray, period: int = 30) -> np.ndarray:
    """Slowly varying noise in [-1, 1]: cosine interpolation between hashed knots every `period` minutes."""
    k0 = minutes // period
    frac = (minutes % period) / period
    a = uniform(seed, machine, channel, k0) * 2 - 1
    b = uniform(seed, machine, channel, k0 + 1) * 2 - 1
    w = (1 - np.cos(np.pi * frac)) / 2
    return a * (1 - w) + b * w


# ---------------- fleet definition ----------------
def fleet(seed: int, n: int) -> list[DemoMachine]:
    rng = np.random.default_rng(seed)  # only for per-machine constants, drawn in a fixed order
    out = []
    for i in range(n):
        role = _ROLES[i % len(_ROLES)]
        cores = int(rng.choice([8, 16, 32, 64] if role in ("build", "ci", "gpu") else [4, 8, 16]))
        mem = int(rng.choice([32, 64, 128] if role in ("build", "db", "gpu") else [16, 32, 64])) * GiB
        mounts = [("/", "/dev/nvme0n1p2", int(rng.choice([200, 500])) * GiB, float(rng.uniform(30, 60)))]
        if role in ("build", "db", "ci", "gpu") or i % 3 == 0:
            mounts.append(("/data", "/dev/sdb1", int(rng.choice([1000, 2000, 4000])) * GiB,
                           float(rng.uniform(40, 70))))
        if role == "agents" and i % 2 == 1:
            mounts.append(("/home", "/dev/nvme0n1p3", 500 * GiB, float(rng.uniform(20, 50))))
        out.append(DemoMachine(
            index=i, machine_id=f"demo-{role}-{i + 1:02d}", role=role, region=_REGIONS[i % len(_REGIONS)],
            cores=cores, mem_total=mem, swap_total=int(mem // 4), base_cpu=float(rng.uniform(10, 35)),
            amp_cpu=float(rng.uniform(10, 30)), base_mem=float(rng.uniform(0.35, 0.6)), mounts=tuple(mounts),
        ))
    return out


def episodes_for(machines: list[DemoMachine], start: datetime, end: datetime) -> list[Episode]:
    """Where the interesting things happen, placed relative to the end of the history."""
    span = end - start
    n = len(machines)

    used: set[str] = set()

    def pick(i: int) -> str:
        order = [machines[(i + k) % n].machine_id for k in range(n)]
        mid = next((c for c in order if c not in used), order[0])
        used.add(mid)
        return mid

    with_data = [m.machine_id for m in machines[2:] + machines[:2] if any(mt[0] == "/data" for mt in m.mounts)]
    used.update(with_data[:1])
    eps = [
        Episode(with_data[0] if with_data else pick(2), "disk_filling", end - min(span, timedelta(hours=8)), None,
                "/data fills from its usual level to ~97% (a runaway build cache); still filling"
                if with_data else "no machine has /data: nothing fills"),
        Episode(pick(5), "load_storm", end - min(span, timedelta(hours=26)),
                end - min(span, timedelta(hours=26)) + timedelta(minutes=30),
                "30-minute load storm: load per core above 2.5 (a fork-bombing test suite)"),
        Episode(pick(7), "swap_thrash", end - min(span, timedelta(hours=14)),
                end - min(span, timedelta(hours=14)) + timedelta(hours=3),
                "3 hours of memory pressure: memory ~95%, swap climbing to ~70%"),
        Episode(pick(10), "silent", end - min(span, timedelta(hours=3)), None,
                "the machine stops reporting (network partition) and stays silent"),
    ]
    return eps if n > 10 else [e for e in eps if e.machine_id in {m.machine_id for m in machines}]


def _epoch_minutes(ts: datetime) -> int:
    return int(ts.timestamp() // 60)


def _active(ep: Episode, minutes: np.ndarray) -> np.ndarray:
    lo = _epoch_minutes(ep.start)
    hi = np.iinfo(np.int64).max if ep.end is None else _epoch_minutes(ep.end)
    return (minutes >= lo) & (minutes < hi)


def _progress(ep: Episode, minutes: np.ndarray, ramp_minutes: int) -> np.ndarray:
    return np.clip((minutes - _epoch_minutes(ep.start)) / max(ramp_minutes, 1), 0.0, 1.0)


# ---------------- sample generation (vectorized, pure) ----------------
def samples(m: DemoMachine, seed: int, minutes: np.ndarray, eps: list[Episode]) -> pa.Table:
    mine = [e for e in eps if e.machine_id == m.machine_id]
    silent = [e for e in mine if e.kind == "silent"]
    if silent:
        minutes = minutes[~_active(silent[0], minutes)]
    hour = (minutes % 1440) / 60.0
    # Working-hours shape (agents busy 08-20 UTC in their region), plus slow drift and fast noise.
    shift = {"eu": 0.0, "us": -6.0, "ap": 7.0}[m.region]
    daily = np.clip(np.sin(np.pi * ((hour + shift) % 24 - 7) / 14), 0, None)
    cpu = (m.base_cpu + m.amp_cpu * daily + 8 * smooth_noise(seed, m.index, 1, minutes)
           + 4 * normal(seed, m.index, 2, minutes))
    mem_frac = m.base_mem + 0.1 * daily + 0.04 * smooth_noise(seed, m.index, 3, minutes, 120)
    swap_frac = np.full(len(minutes), 0.01) + 0.005 * uniform(seed, m.index, 4, minutes)
    load_factor = 1 + 0.15 * normal(seed, m.index, 5, minutes)
    for e in mine:
        act = _active(e, minutes)
        if e.kind == "load_storm":
            cpu = np.where(act, 97 + 2 * uniform(seed, m.index, 6, minutes), cpu)
            load_factor = np.where(act, 2.8 + 0.4 * uniform(seed, m.index, 7, minutes), load_factor)
        elif e.kind == "swap_thrash":
            p = _progress(e, minutes, 180)
            mem_frac = np.where(act, 0.93 + 0.04 * uniform(seed, m.index, 8, minutes), mem_frac)
            swap_frac = np.where(act, 0.1 + 0.6 * p, swap_frac)
    cpu = np.clip(cpu, 0.5, 100.0)
    load1 = np.where(load_factor > 2, load_factor * m.cores, m.cores * cpu / 100 * load_factor)
    load1 = np.clip(load1, 0.0, None)
    load5 = 0.7 * load1 + 0.3 * m.cores * cpu / 100
    mem_used = (np.clip(mem_frac, 0.05, 0.99) * m.mem_total).astype(np.int64)
    swap_used = (np.clip(swap_frac, 0, 1) * m.swap_total).astype(np.int64)
    net = (2e6 + 8e6 * daily) * (1 + 0.3 * normal(seed, m.index, 9, minutes))
    ts = minutes.astype("int64") * 60_000_000
    n = len(minutes)
    return pa.table({
        "machine_id": pa.array([m.machine_id] * n, pa.string()),
        "ts": pa.array(ts, pa.timestamp("us", tz="UTC")),
        "source": pa.array([SOURCE] * n, pa.string()),
        "source_version": pa.array([SOURCE_VERSION] * n, pa.string()),
        "schema_version": pa.array(np.ones(n, np.int32)),
        "cpu_pct": cpu, "cpu_count": pa.array(np.full(n, m.cores, np.int32)),
        "load1": load1, "load5": load5, "load15": 0.5 * load5 + 0.5 * m.cores * m.base_cpu / 100,
        "mem_total_bytes": np.full(n, m.mem_total, np.int64), "mem_used_bytes": mem_used,
        "mem_available_bytes": m.mem_total - mem_used,
        "swap_total_bytes": np.full(n, m.swap_total, np.int64), "swap_used_bytes": swap_used,
        "net_rx_bps": np.clip(net, 0, None), "net_tx_bps": np.clip(net * 0.2, 0, None),
        # Each machine reboots every 30 days (staggered): a pure function of the minute, like the rest.
        "uptime_seconds": ((minutes + m.index * 2 * 1440) % (30 * 1440)) * 60.0,
        "is_demo": pa.array(np.ones(n, bool)),
    })


def filesystems(m: DemoMachine, seed: int, minutes: np.ndarray, eps: list[Episode]) -> pa.Table:
    """One reading every 5 minutes; slow growth with nightly cleanups, and the disk-filling episode."""
    minutes = minutes[minutes % 5 == 0]
    mine = [e for e in eps if e.machine_id == m.machine_id]
    silent = [e for e in mine if e.kind == "silent"]
    if silent:
        minutes = minutes[~_active(silent[0], minutes)]
    cols: dict[str, list] = {k: [] for k in ("mount", "device", "total", "used_pct", "ts")}
    for j, (mount, device, total, start_pct) in enumerate(m.mounts):
        day_frac = (minutes % 1440) / 1440.0
        used = start_pct + 6 * day_frac + 1.5 * smooth_noise(seed, m.index, 20 + j, minutes, 240)
        for e in mine:
            if e.kind == "disk_filling" and mount == "/data":
                p = _progress(e, minutes, 8 * 60)
                used = np.where(minutes >= _epoch_minutes(e.start), used + (97.5 - used) * p ** 1.3, used)
        used = np.clip(used, 1.0, 99.5)
        n = len(minutes)
        cols["mount"] += [mount] * n
        cols["device"] += [device] * n
        cols["total"].append(np.full(n, total, np.int64))
        cols["used_pct"].append(used)
        cols["ts"].append(minutes.astype("int64") * 60_000_000)
    total = np.concatenate(cols["total"]) if cols["total"] else np.zeros(0, np.int64)
    used_pct = np.concatenate(cols["used_pct"]) if cols["used_pct"] else np.zeros(0)
    used_b = (total * used_pct / 100).astype(np.int64)
    n = len(total)
    return pa.table({
        "machine_id": pa.array([m.machine_id] * n, pa.string()),
        "ts": pa.array(np.concatenate(cols["ts"]) if cols["ts"] else np.zeros(0, np.int64),
                       pa.timestamp("us", tz="UTC")),
        "mount": pa.array(cols["mount"], pa.string()), "device": pa.array(cols["device"], pa.string()),
        "fstype": pa.array(["ext4"] * n, pa.string()),
        "source": pa.array([SOURCE] * n, pa.string()), "source_version": pa.array([SOURCE_VERSION] * n, pa.string()),
        "schema_version": pa.array(np.ones(n, np.int32)),
        "total_bytes": total, "used_bytes": used_b, "free_bytes": total - used_b, "used_pct": used_pct,
        "is_demo": pa.array(np.ones(n, bool)),
    })


def top_processes(m: DemoMachine, seed: int, minutes: np.ndarray, eps: list[Episode], n_top: int = 5) -> pa.Table:
    """Hourly top-N by CPU and by memory, from a fixed cast of agent and build processes."""
    minutes = minutes[minutes % 60 == 0]
    silent = [e for e in eps if e.machine_id == m.machine_id and e.kind == "silent"]
    if silent:
        minutes = minutes[~_active(silent[0], minutes)]
    rows: list[dict] = []
    for t in minutes:
        tt = np.array([t])
        ts = datetime.fromtimestamp(int(t) * 60, UTC)
        procs = []
        for k, (name, cmd) in enumerate(_PROCS):
            heavy = name in ("cargo", "rustc", "claude")
            cpu = float(uniform(seed, m.index, 100 + k, tt)[0]) * (180 if heavy else 60)
            rss_scale = 6 * GiB if name == "postgres" else 2 * GiB
            rss = int((0.2 + float(uniform(seed, m.index, 200 + k, tt)[0])) * rss_scale)
            procs.append((1000 + 37 * k + m.index, name, cpu, rss, cmd))
        for rank_by, key in (("cpu", 2), ("memory", 3)):
            for rank, p in enumerate(sorted(procs, key=lambda p: p[key], reverse=True)[:n_top], start=1):
                rows.append({"machine_id": m.machine_id, "ts": ts, "rank_by": rank_by, "rank": rank,
                             "source": SOURCE, "source_version": SOURCE_VERSION, "schema_version": 1,
                             "pid": p[0], "name": p[1], "username": "dev" if p[1] != "postgres" else "postgres",
                             "cpu_pct": p[2], "mem_rss_bytes": p[3], "cmdline": p[4], "is_demo": True})
    return pa.Table.from_pylist(rows) if rows else pa.table({})


def _machine_rows(machines: list[DemoMachine], at: datetime) -> list[dict]:
    """Stamped with the history's end, not the wall clock: the same seed and end give the same rows."""
    return [{"machine_id": m.machine_id, "display_name": m.machine_id.replace("demo-", "").replace("-", " "),
             "hostname": f"{m.machine_id}.demo.internal", "ssh": "demo", "tags": ["demo", m.role, m.region],
             "is_demo": True, "enabled": True, "cpu_count": m.cores, "added_at": at, "updated_at": at}
            for m in machines]


def _batch_for(machines: list[DemoMachine], seed: int, minutes: np.ndarray, eps: list[Episode]) -> Batch:
    b = Batch()
    for m in machines:
        b.add_rows("sys_samples", samples(m, seed, minutes, eps))
        b.add_rows("sys_filesystems", filesystems(m, seed, minutes, eps))
        b.add_rows("sys_top_processes", top_processes(m, seed, minutes, eps))
    return b


# ---------------- public API ----------------
def generate(store: Store, *, days: int = 7, machines: int = 12, seed: int = 42, end: datetime | None = None,
             progress: Callable[[int, int], None] | None = None, sources: bool = True) -> DemoSummary:
    """Write `days` of history for `machines` demo machines ending at `end` (default: now, to the minute).

    `sources` adds the upstream tools' data (accounts, repos, agents, builds …) made by the real
    collectors from simulated machines (sample_data/demo_sources.py); off, only system samples.
    """
    end = (end or datetime.now(UTC)).replace(second=0, microsecond=0)
    start = end - timedelta(days=days)
    fl = fleet(seed, machines)
    eps = episodes_for(fl, start, end)
    # A new demo replaces the old one: rows of an older history would carry other episodes.
    from sample_data.demo_sources import clear_demo_sources, write_history

    clear_demo_sources(store)  # first: it finds the old demo's machines by `machines.is_demo`
    store.execute_write("; ".join(f"DELETE FROM {t} WHERE is_demo" for t in _DEMO_TABLES))
    meta = Batch()
    meta.add_upserts("machines", _machine_rows(fl, end))
    meta.add_upserts("demo_fleet", [{"fleet_id": "demo", "seed": seed, "machines": machines, "days": days,
                                     "start_ts": start, "end_ts": end,
                                     "episodes_json": json.dumps([e.to_json() for e in eps]),
                                     "created_at": datetime.now(UTC)}])
    store.write(meta)
    path = _write_episodes_file(store, seed, machines, days, start, end, fl, eps)
    rows: dict[str, int] = {}
    first, last = _epoch_minutes(start), _epoch_minutes(end)
    for d in range(days):
        lo = first + d * 1440
        hi = lo + 1440 if d < days - 1 else last + 1  # the history includes its `end` minute
        minutes = np.arange(lo, hi, dtype=np.int64)
        out = store.write(_batch_for(fl, seed, minutes, eps))
        for k, v in out.inserted.items():
            rows[k] = rows.get(k, 0) + v
        if progress:
            progress(d + 1, days + 1)
    # The upstream tools' sources, through the real collectors (sample_data/demo_sources.py).
    for k, v in (write_history(store, fl, seed, eps, start, end) if sources else {}).items():
        rows[k] = rows.get(k, 0) + v
    if progress:
        progress(days + 1, days + 1)
    return DemoSummary(machines, days, seed, start, end, rows, eps, path)


def episodes_path(store: Store) -> Path:
    return store.db_path.parent / EPISODES_FILE


def _write_episodes_file(store: Store, seed: int, machines: int, days: int, start: datetime, end: datetime,
                         fl: list[DemoMachine], eps: list[Episode]) -> Path:
    """The episodes as JSON next to the database (written whole, then renamed into place)."""
    path = episodes_path(store)
    doc = {"seed": seed, "machines": machines, "days": days, "start": start.isoformat(), "end": end.isoformat(),
           "machine_ids": [m.machine_id for m in fl], "episodes": [e.to_json() for e in eps]}
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    return path


def read_episodes(store: Store) -> list[Episode]:
    """The episodes of the demo fleet last generated next to `store` (empty when there is none)."""
    try:
        doc = json.loads(episodes_path(store).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return []
    return [Episode.from_json(e) for e in doc["episodes"]]


def load_demo(store: Store) -> tuple[dict, list[Episode]] | None:
    """The recorded demo parameters and episodes, or None when no demo fleet was generated."""
    with store.raw_reader() as con:
        row = con.execute("SELECT seed, machines, days, start_ts, end_ts, episodes_json FROM demo_fleet "
                          "WHERE fleet_id = 'demo'").fetchone()
    if row is None:
        return None
    params = {"seed": row[0], "machines": row[1], "days": row[2], "start": row[3], "end": row[4]}
    return params, [Episode.from_json(e) for e in json.loads(row[5])]


def demo_present(store: Store) -> bool:
    return store.db_path.exists() and load_demo(store) is not None


def keep_alive_hook(store: Store) -> Callable[[datetime], Batch | None]:
    """A runner hook that extends every demo machine up to `now`, with the generator that made its past."""
    state: dict = {}

    def _stamp() -> tuple[int, int] | None:
        try:
            st = episodes_path(store).stat()  # each generation renames a new file into place
        except FileNotFoundError:
            return None
        return st.st_ino, st.st_mtime_ns

    def demo_keep_alive(now: datetime) -> Batch | None:
        stamp = _stamp()
        if state.get("stamp", stamp) != stamp:
            state.clear()  # `vc demo` ran again: reload its parameters and where its data ends
        state["stamp"] = stamp
        if state.get("absent"):
            return None  # no demo fleet, and no `vc demo` since we looked: no read every cycle
        if "params" not in state:
            loaded = load_demo(store)
            if loaded is None:
                state["absent"] = True
                return None
            params, eps = loaded
            state.update(params=params, eps=eps, fleet=fleet(params["seed"], params["machines"]))
            from sample_data.demo_sources import SourceKeepAlive

            state["sources"] = SourceKeepAlive(store, params, eps, state["fleet"])
            with store.raw_reader() as con:
                last = dict(con.execute("SELECT machine_id, max(ts) FROM sys_samples WHERE is_demo "
                                        "GROUP BY machine_id").fetchall())
            state["last"] = {m.machine_id: last.get(m.machine_id, params["end"]) for m in state["fleet"]}
        target = _epoch_minutes(now)
        b = Batch()
        for m in state["fleet"]:
            floor = target - int(MAX_BACKFILL.total_seconds() // 60)
            since = max(_epoch_minutes(state["last"][m.machine_id]) + 1, floor)
            if since > target:
                continue
            minutes = np.arange(since, target + 1, dtype=np.int64)
            b.merge(_batch_for([m], state["params"]["seed"], minutes, state["eps"]))
            state["last"][m.machine_id] = datetime.fromtimestamp(target * 60, UTC)
        src = state["sources"].advance(now)  # the demo machines' tools, every few minutes of wall time
        if src is not None:
            b.merge(src)
        return b if not b.is_empty() else None

    return demo_keep_alive

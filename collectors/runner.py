"""The collection cycle and the daemon around it.

One cycle visits every enabled machine (bounded machines in flight), runs its collectors (bounded
per machine, each with a hard timeout), and writes everything it gathered in ONE transaction:
rows, cursors and `collector_runs`. A collector that raises, hangs or emits rows that do not fit
the schema costs only its own rows for this cycle; the cycle itself never fails.
"""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import threading
import time
import traceback
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa

from collectors import registry
from collectors.base import CollectContext, Collector, CollectResult, Limits
from collectors.capabilities import CapabilitiesCollector, CapabilityCache
from collectors.executors.base import Executor, ExecutorError
from collectors.executors.local import LocalExecutor
from workbench.config import MachineConfig, VcConfig
from workbench.store import Batch, BatchRejectedError, CursorUpdate, SchemaDriftError, Store
from workbench.store.db import check_columns

log = logging.getLogger("vc.daemon")

CURSOR_KEY = "default"
# Hook for extra rows each cycle (the demo fleet's keep-alive); returns a Batch to merge.
CycleHook = Callable[[datetime], Batch | None]


@dataclass
class RunRecord:
    machine_id: str
    collector: str
    started_at: datetime
    duration_ms: float
    status: str
    rows: int
    warnings: list[str] = field(default_factory=list)
    error: str | None = None
    source_version: str | None = None
    schema_version: int | None = None


@dataclass
class CycleReport:
    cycle_id: str
    started_at: datetime
    duration_s: float = 0.0
    runs: list[RunRecord] = field(default_factory=list)
    inserted: dict[str, int] = field(default_factory=dict)
    spooled: bool = False
    replayed: int = 0

    @property
    def errors(self) -> list[RunRecord]:
        return [r for r in self.runs if r.status in ("error", "timeout")]


def make_executor(machine: MachineConfig, timeout_s: float) -> Executor:
    if machine.is_local:
        return LocalExecutor(machine.id)
    from collectors.executors.ssh import SshExecutor  # imported lazily: asyncssh is heavy

    return SshExecutor(machine, connect_timeout_s=min(timeout_s, 15.0))


def collectors_for(machine: MachineConfig) -> list[Collector]:
    names = machine.collectors if machine.collectors is not None else registry.default_for(machine.is_local)
    out: list[Collector] = []
    for n in names:
        cls = registry.ALL.get(n)
        if cls is None:
            known = ", ".join(sorted(registry.ALL))
            raise ValueError(f"machine {machine.id!r}: unknown collector {n!r}; known: {known}")
        if cls.local_only and not machine.is_local:
            continue
        out.append(cls())
    return out


class Runner:
    def __init__(self, cfg: VcConfig, store: Store, hooks: list[CycleHook] | None = None):
        self.cfg = cfg
        self.store = store
        self.hooks = hooks or []
        self._cursors: dict[tuple[str, str], dict[str, Any]] = {}
        self._last_run: dict[tuple[str, str], datetime] = {}
        self._cursors_loaded = False
        self.rejected_dir = cfg.storage.data_dir / "rejected"
        self.capabilities = CapabilityCache(ttl_s=cfg.daemon.capabilities_ttl_seconds)

    # ---------- setup ----------
    def load_cursors(self) -> None:
        """Cursors from the database (restart safety), loaded once per daemon start."""
        with self.store.raw_reader() as con:
            rows = con.execute(
                "SELECT machine_id, source, cursor_json FROM ingestion_cursors WHERE cursor_key = ?", [CURSOR_KEY]
            ).fetchall()
        self._cursors = {(m, s): json.loads(c) for m, s, c in rows}
        self._cursors_loaded = True

    def sync_machines(self) -> None:
        """Configured machines appear in `machines` even before their first sample; machines removed
        from the config are marked disabled (their history stays) so nothing keeps alerting on them."""
        now = datetime.now(UTC)
        rows = [{
            "machine_id": m.id, "display_name": m.display_name or m.id, "ssh": m.ssh, "tags": list(m.tags),
            "is_demo": False, "enabled": m.enabled, "updated_at": now,
        } for m in self.cfg.machines]
        configured = {m.id for m in self.cfg.machines}
        with self.store.raw_reader() as con:
            known = con.execute("SELECT machine_id, display_name, ssh, tags FROM machines "
                                "WHERE NOT is_demo AND enabled").fetchall()
        rows += [{"machine_id": mid, "display_name": name, "ssh": ssh, "tags": tags, "is_demo": False,
                  "enabled": False, "updated_at": now} for mid, name, ssh, tags in known if mid not in configured]
        b = Batch()
        b.add_upserts("machines", rows)
        self.store.write(b)

    # ---------- one cycle ----------
    async def _run_one(self, machine: MachineConfig, collector: Collector, executor: Executor,
                       sem: asyncio.Semaphore, now: datetime) -> tuple[RunRecord, CollectResult | None]:
        key = (machine.id, collector.name)
        d = self.cfg.daemon
        limits = Limits(timeout_s=d.collector_timeout_seconds, max_bytes=d.max_output_bytes, max_rows=d.max_rows)
        ctx = CollectContext(machine_id=machine.id, executor=executor, cursor=self._cursors.get(key),
                             limits=limits, now=now, last_run_at=self._last_run.get(key),
                             options={"top_processes": d.top_processes, **machine.options})
        async with sem:
            t0 = time.monotonic()
            started = datetime.now(UTC)
            result: CollectResult | None = None
            error: str | None = None
            status = "ok"
            try:
                result = await asyncio.wait_for(collector.collect(ctx), timeout=limits.timeout_s + 1.0)
            except TimeoutError:
                status, error = "timeout", f"{collector.name} did not finish within {limits.timeout_s:.0f}s"
            except ExecutorError as exc:
                status, error = "error", str(exc)
            except Exception as exc:  # a broken collector must not take the cycle down
                status, error = "error", f"{exc.__class__.__name__}: {exc}"
                log.debug("collector %s on %s failed:\n%s", collector.name, machine.id, traceback.format_exc())
            duration_ms = (time.monotonic() - t0) * 1000
        rows = 0
        warnings: list[str] = []
        if result is not None:
            warnings = list(result.warnings)
            try:
                self._check_schema(result)
                rows = result.row_count
            except SchemaDriftError as exc:
                path = self._reject(machine.id, collector.name, result, str(exc))
                status, error = "error", f"schema drift: {exc}; rows kept in {path}"
                result = None
            if status == "ok" and warnings:
                status = "warning"
        rec = RunRecord(machine.id, collector.name, started, duration_ms, status, rows, warnings, error,
                        collector.source_version, collector.schema_version)
        return rec, result

    def _check_schema(self, result: CollectResult) -> None:
        cat = self.store.catalog()
        for table, rows in result.rows.items():
            cols = sorted({k for r in rows for k in r})
            check_columns(cat, table, cols)

    def _reject(self, machine_id: str, collector: str, result: CollectResult, reason: str) -> Path:
        """Rows that do not fit the schema are kept on disk, never dropped."""
        self.rejected_dir.mkdir(parents=True, exist_ok=True)
        path = self.rejected_dir / f"{int(time.time())}-{machine_id}-{collector}.json"
        path.write_text(json.dumps({"reason": reason, "rows": result.rows}, default=str), encoding="utf-8")
        return path

    async def _machine(self, machine: MachineConfig, now: datetime,
                       gate: asyncio.Semaphore) -> list[tuple[RunRecord, CollectResult | None]]:
        """Capabilities first (cached per TTL), then every collector whose tool is not known to be absent."""
        async with gate:
            try:
                collectors = collectors_for(machine)
            except ValueError as exc:
                return [(RunRecord(machine.id, "config", datetime.now(UTC), 0.0, "error", 0, [], str(exc)), None)]
            executor = make_executor(machine, self.cfg.daemon.collector_timeout_seconds)
            sem = asyncio.Semaphore(self.cfg.daemon.collectors_per_machine)
            out: list[tuple[RunRecord, CollectResult | None]] = []
            try:
                if any(c.required_tool for c in collectors):
                    cap = await self._run_one(machine, CapabilitiesCollector(self.capabilities), executor, sem, now)
                    out.append(cap)
                    if cap[0].status in ("error", "timeout"):
                        # An unreachable machine: one clear error per collector, no pointless reconnects.
                        reason = f"skipped: capability probe failed: {cap[0].error}"
                        return out + [(RunRecord(machine.id, c.name, now, 0.0, "error", 0, [], reason), None)
                                      for c in collectors]
                report = self.capabilities.peek(machine.id)
                if report is None and any(c.required_tool for c in collectors):
                    # The machine answered nothing useful (hung or garbage shell): running every tool
                    # collector would only cost one timeout each. The probe still runs.
                    why = f"skipped: capability probe got no answer ({'; '.join(cap[0].warnings)[:300]})"
                    out += [(RunRecord(machine.id, c.name, now, 0.0, "skipped", 0, [why]), None)
                            for c in collectors if c.required_tool]
                    collectors = [c for c in collectors if not c.required_tool]
                runnable = []
                for c in collectors:
                    if c.required_tool and report is not None and report.has(c.required_tool) is False:
                        out.append((RunRecord(machine.id, c.name, now, 0.0, "skipped", 0,
                                              [f"{c.required_tool} not found on {machine.id}"]), None))
                    else:
                        runnable.append(c)
                out += await asyncio.gather(*[self._run_one(machine, c, executor, sem, now) for c in runnable])
                return out
            finally:
                try:
                    await executor.close()
                except Exception:  # closing a dead connection is not news
                    pass

    async def run_cycle_async(self, machine_ids: list[str] | None = None) -> CycleReport:
        if not self._cursors_loaded:
            self.load_cursors()
        now = datetime.now(UTC)
        report = CycleReport(cycle_id=uuid.uuid4().hex[:12], started_at=now)
        t0 = time.monotonic()
        machines = [m for m in self.cfg.machines if m.enabled and (not machine_ids or m.id in machine_ids)]
        gate = asyncio.Semaphore(self.cfg.daemon.machines_in_flight)
        per_machine = await asyncio.gather(*[self._machine(m, now, gate) for m in machines])
        parts: list[tuple[RunRecord, Batch]] = []
        new_cursors: dict[tuple[str, str], dict[str, Any]] = {}
        for results in per_machine:
            for rec, result in results:
                report.runs.append(rec)
                if result is None:
                    continue
                part = Batch()
                for table, rows in result.rows.items():
                    part.add_rows(table, rows)
                if result.cursor is not None:
                    new_cursors[(rec.machine_id, rec.collector)] = result.cursor
                    part.cursors.append(CursorUpdate(rec.machine_id, rec.collector, CURSOR_KEY, result.cursor))
                parts.append((rec, part))
        for hook in self.hooks:
            name = getattr(hook, "__name__", "hook")
            try:
                extra = hook(now)
            except Exception as exc:
                report.runs.append(RunRecord("*", name, now, 0.0, "error", 0, [], f"{exc.__class__.__name__}: {exc}"))
                continue
            if extra is not None:
                rec = RunRecord("*", name, now, 0.0, "ok", extra.row_count)
                report.runs.append(rec)
                parts.append((rec, extra))
        outcome, rejected = self._write(report, parts)
        report.inserted = outcome.inserted
        report.spooled = outcome.spooled is not None
        report.replayed = outcome.replayed
        # Cursors advance in memory whether written or spooled (the spool replays in order),
        # but not past rows the database refused.
        self._cursors.update({k: v for k, v in new_cursors.items() if k not in rejected})
        for rec in report.runs:
            self._last_run[(rec.machine_id, rec.collector)] = rec.started_at
        report.duration_s = time.monotonic() - t0
        return report

    def _write(self, report: CycleReport, parts: list[tuple[RunRecord, Batch]]):
        """One transaction for the whole cycle; if the database refuses it, each source alone.

        Falling back per source means one source's bad rows cost only that source, never the cycle.
        """
        batch = Batch()
        for _, part in parts:
            batch.merge(part)
        batch.add_rows("collector_runs", self._run_rows(report))
        try:
            return self.store.write(batch), set()
        except BatchRejectedError:
            pass
        rejected: set[tuple[str, str]] = set()
        for rec, part in parts:
            try:
                self.store.write(part)
            except BatchRejectedError as exc:
                path = self._reject(rec.machine_id, rec.collector, CollectResult(
                    rows={t: [r for d in ds for r in d.to_pylist()] for t, ds in part.inserts.items()}), str(exc))
                rejected.add((rec.machine_id, rec.collector))
                rec.status, rec.error = "error", f"database refused rows: {exc}; rows kept in {path}"
                rec.rows = 0
        tail = Batch()
        tail.add_rows("collector_runs", self._run_rows(report))
        return self.store.write(tail), rejected

    def run_cycle(self, machine_ids: list[str] | None = None) -> CycleReport:
        return asyncio.run(self.run_cycle_async(machine_ids))

    def _run_rows(self, report: CycleReport) -> pa.Table:
        rows = []
        for r in report.runs:
            finished = datetime.fromtimestamp(r.started_at.timestamp() + r.duration_ms / 1000, UTC)
            rows.append({
                "run_id": uuid.uuid4().hex, "cycle_id": report.cycle_id, "machine_id": r.machine_id,
                "collector": r.collector, "started_at": r.started_at, "finished_at": finished,
                "duration_ms": r.duration_ms, "rows_written": r.rows, "status": r.status,
                "warnings": [w[:2000] for w in r.warnings], "error": (r.error or None) and r.error[:4000],
                "source_version": r.source_version, "schema_version": r.schema_version,
            })
        schema = pa.schema([
            ("run_id", pa.string()), ("cycle_id", pa.string()), ("machine_id", pa.string()),
            ("collector", pa.string()), ("started_at", pa.timestamp("us", tz="UTC")),
            ("finished_at", pa.timestamp("us", tz="UTC")), ("duration_ms", pa.float64()),
            ("rows_written", pa.int64()), ("status", pa.string()), ("warnings", pa.list_(pa.string())),
            ("error", pa.string()), ("source_version", pa.string()), ("schema_version", pa.int32()),
        ])
        return pa.Table.from_pylist(rows, schema=schema)


def run_daemon(runner: Runner, interval_s: float, stop: threading.Event | None = None,
               max_cycles: int | None = None, on_cycle: Callable[[CycleReport], None] | None = None) -> int:
    """Run cycles every `interval_s` until SIGINT/SIGTERM (or `stop`, or `max_cycles`)."""
    from apscheduler.executors.pool import ThreadPoolExecutor as APThreadPool
    from apscheduler.schedulers.background import BackgroundScheduler

    stop = stop or threading.Event()
    cycles = 0
    logging.getLogger("apscheduler").setLevel(logging.WARNING)

    def job() -> None:
        nonlocal cycles
        try:
            report = runner.run_cycle()
            if on_cycle:
                on_cycle(report)
        except Exception as exc:  # the daemon outlives any single cycle
            log.error("cycle failed: %s", exc)
        cycles += 1
        if max_cycles is not None and cycles >= max_cycles:
            stop.set()

    def _handle(signum, _frame) -> None:
        log.info("signal %s: stopping after the current cycle", signum)
        stop.set()

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _handle)
        signal.signal(signal.SIGINT, _handle)
    sched = BackgroundScheduler(executors={"default": APThreadPool(1)}, timezone="UTC")
    sched.add_job(job, "interval", seconds=interval_s, next_run_time=datetime.now(UTC),
                  max_instances=1, coalesce=True, misfire_grace_time=max(1, int(interval_s)))
    sched.start()
    try:
        while not stop.wait(0.2):
            pass
    finally:
        sched.shutdown(wait=True)
        runner.store.drain_spool()
    return cycles

"""The collector contract: every registered collector's rows fit the migrated schema, carry provenance,
and re-collecting the same payload adds nothing.

The reference Rust project lost whole batches to column drift that no test caught, so this test
iterates `collectors.registry.ALL` itself: a new collector is covered the moment it is registered, and
one registered without recorded payloads in tests/contract_payloads.py fails here with instructions.
Collectors run through the real LocalExecutor with fake upstream tools printing recorded payloads.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from collectors import registry
from collectors.base import CollectContext, Collector, CollectResult, Limits
from tests.contract_payloads import CASES, ContractCase, Payload, case_for
from tests.http_server import serve
from tests.toolbox import run_collector, toolbox_executor
from workbench.store import Batch, Store
from workbench.store.db import SchemaDriftError, check_columns

NOW = datetime(2026, 9, 1, 12, 0, tzinfo=UTC)
LATER = NOW + timedelta(minutes=5)
MACHINE = "contract-host"
PROVENANCE = ("machine_id", "source", "source_version", "schema_version")


def primary_keys(store: Store) -> dict[str, list[str]]:
    with store.raw_reader() as con:
        rows = con.execute(
            "SELECT table_name, constraint_column_names FROM duckdb_constraints() "
            "WHERE constraint_type = 'PRIMARY KEY' AND schema_name = 'main'").fetchall()
    return {t: list(cols) for t, cols in rows}


def write(store: Store, result: CollectResult) -> dict[str, int]:
    b = Batch()
    for table, rows in result.rows.items():
        b.add_rows(table, rows)
    inserted = store.write(b).inserted
    return {t: inserted.get(t, 0) for t in result.rows}


def count(store: Store, table: str) -> int:
    with store.raw_reader() as con:
        return con.execute(f'SELECT count(*) FROM "{table}" WHERE machine_id = ?', [MACHINE]).fetchone()[0]


def unexpected_warnings(result: CollectResult, allowed: tuple[str, ...]) -> list[str]:
    return [w for w in result.warnings if not any(re.search(a, w) for a in allowed)]


def check_contract(cls: type[Collector], case: ContractCase, root: Path, store: Store) -> dict[str, Any]:
    """Run the whole contract for one collector; returns what it saw (tables, event/snapshot split).

    Raises AssertionError naming the collector, table and columns on any breach.
    """
    with serve(case.http_routes()) as http:
        return _check_contract(cls, case, root, store, http.base)


def _check_contract(cls: type[Collector], case: ContractCase, root: Path, store: Store, http_base: str
                    ) -> dict[str, Any]:
    name = cls.name
    root.mkdir(parents=True, exist_ok=True)
    case.write_files(root)  # toolbox_executor makes `root` the machine's HOME
    ex = toolbox_executor(root, case.make_tools(), MACHINE)
    opts = case.make_options(root, http_base)

    def collect(now: datetime, cursor: dict | None = None) -> CollectResult:
        return run_collector(cls(), ex, cursor=cursor, limits=Limits(timeout_s=20), now=now, options=dict(opts))

    first = collect(NOW)
    bad = unexpected_warnings(first, case.allowed_warnings)
    assert not bad, f"{name}: recorded payloads gave warnings (parser drift, or list them in " \
                    f"allowed_warnings of its case): {bad}"
    assert first.row_count > 0, f"{name}: no rows from its recorded payloads " \
                                f"({[p.describe() for p in case.payloads()]})"

    catalog = store.catalog()
    for table, rows in first.rows.items():
        cols = sorted({k for r in rows for k in r})
        try:
            check_columns(catalog, table, cols)
        except SchemaDriftError as exc:
            raise AssertionError(f"{name}: column drift: {exc} (add a migration or fix the collector)") from exc
        for i, row in enumerate(rows):
            missing = [c for c in PROVENANCE if row.get(c) in (None, "")]
            assert not missing, f"{name}: {table} row {i} lacks provenance {missing}"
            assert row["machine_id"] == MACHINE, f"{name}: {table} row {i} machine_id {row['machine_id']!r}"
            assert row["source_version"] == cls.source_version and row["schema_version"] == cls.schema_version, \
                f"{name}: {table} row {i} provenance {row['source_version']!r}/{row['schema_version']!r} " \
                f"differs from the collector's {cls.source_version!r}/{cls.schema_version!r}"
            assert isinstance(row["source"], str), f"{name}: {table} row {i} source is not a string"

    inserted = write(store, first)
    for table, rows in first.rows.items():
        assert inserted[table] == len(rows), \
            f"{name}: {table}: {len(rows)} rows emitted but {inserted[table]} inserted (rows sharing a " \
            f"primary key in one result are silently dropped)"
        assert count(store, table) == len(rows), f"{name}: {table}: rows not readable back"

    # The same payload again in the same cycle (a spool replay, a retried cycle): nothing new.
    again = write(store, collect(NOW))
    assert all(v == 0 for v in again.values()), f"{name}: re-collecting the same payload added rows: {again}"

    # A later cycle over the same payload: snapshot tables add one snapshot, event tables nothing.
    pks = primary_keys(store)
    later = collect(LATER)
    snapshot_tables = {t for t, rows in later.rows.items()
                       if any(r.get(c) == LATER for r in rows for c in pks.get(t, []))}
    event_tables = set(later.rows) - snapshot_tables
    later_inserted = write(store, later)
    for t in event_tables:
        assert later_inserted[t] == 0, f"{name}: event table {t}: the same payload at a later time " \
                                       f"added {later_inserted[t]} duplicate rows (natural key misses?)"
    for t in snapshot_tables:
        assert later_inserted[t] == len(later.rows[t]), f"{name}: snapshot table {t}: next cycle's " \
                                                        f"snapshot not stored in full"
    # And through the cursor, as the daemon runs it: still no duplicate events.
    cursor = collect(LATER + timedelta(minutes=5), first.cursor) if first.cursor is not None else None
    if cursor is not None:
        via_cursor = write(store, cursor)
        for t in event_tables & set(via_cursor):
            assert via_cursor[t] == 0, f"{name}: event table {t}: {via_cursor[t]} duplicates via the cursor"
    return {"tables": sorted(first.rows), "events": sorted(event_tables), "snapshots": sorted(snapshot_tables)}


@pytest.mark.parametrize("name", sorted(registry.ALL))
def test_collector_contract(name: str, tmp_path: Path, store: Store):
    cls = registry.ALL[name]
    assert cls.name == name, f"registry key {name!r} differs from {cls.__name__}.name {cls.name!r}"
    seen = check_contract(cls, case_for(name), tmp_path / "box", store)
    assert seen["tables"], name


def test_every_registered_collector_has_recorded_payloads():
    missing = sorted(set(registry.ALL) - set(CASES))
    assert not missing, f"collectors without an entry in tests/contract_payloads.py CASES: {missing}"


def test_no_case_for_an_unregistered_collector():
    stale = sorted(set(CASES) - set(registry.ALL))
    assert not stale, f"tests/contract_payloads.py has cases for collectors that are not registered: {stale}"


def test_every_recorded_payload_loads():
    for name, case in CASES.items():
        for p in case.payloads():
            assert p.load().strip(), f"{name}: empty payload {p.describe()}"


def test_missing_case_message_tells_the_developer_what_to_do():
    with pytest.raises(AssertionError, match=r"'brand_new'.*registry\.py.*tests/contract_payloads\.py CASES"):
        case_for("brand_new")


# ---------- the contract itself catches breaches (so a green run means something) ----------

class _Drifting(Collector):
    name = "t_drift"
    required_tool = "rano"

    async def collect(self, ctx: CollectContext) -> CollectResult:
        res = await ctx.executor.run("rano export --format jsonl", timeout_s=5, max_bytes=1 << 20)
        r = CollectResult()
        for i, _ in enumerate(res.text.splitlines()):
            r.add("net_events", self.stamp(ctx.machine_id, event_hash=f"h{i}", ts=ctx.now, provider_name="x"))
        return r


class _Unkeyed(Collector):
    """An event source whose key includes the collection time: duplicates every cycle."""

    name = "t_unkeyed"

    async def collect(self, ctx: CollectContext) -> CollectResult:
        res = await ctx.executor.run("rano export --format jsonl", timeout_s=5, max_bytes=1 << 20)
        r = CollectResult()
        for i, _ in enumerate(res.text.splitlines()):
            r.add("net_events", self.stamp(ctx.machine_id, event_hash=f"{ctx.now.timestamp()}-{i}",
                                           ts=datetime(2026, 1, 1, tzinfo=UTC) + timedelta(seconds=i)))
        return r


class _Unstamped(Collector):
    name = "t_unstamped"

    async def collect(self, ctx: CollectContext) -> CollectResult:
        return CollectResult(rows={"sys_samples": [{"machine_id": ctx.machine_id, "ts": ctx.now, "source": "x"}]})


RANO = ContractCase(tools={"rano": Payload("rano.export.example.jsonl")})


def test_contract_catches_column_drift(tmp_path: Path, store: Store):
    with pytest.raises(AssertionError, match=r"t_drift: column drift: .*net_events.*provider_name"):
        check_contract(_Drifting, RANO, tmp_path, store)


def test_contract_catches_missing_provenance(tmp_path: Path, store: Store):
    with pytest.raises(AssertionError, match=r"t_unstamped: sys_samples row 0 lacks provenance "
                                             r"\['source_version', 'schema_version'\]"):
        check_contract(_Unstamped, ContractCase(), tmp_path, store)


def test_contract_catches_duplicating_events(tmp_path: Path, store: Store):
    with pytest.raises(AssertionError, match=r"t_unkeyed: event table net_events: .* duplicates via the cursor|"
                                             r"t_unkeyed: event table net_events: the same payload"):
        check_contract(_Unkeyed, RANO, tmp_path, store)

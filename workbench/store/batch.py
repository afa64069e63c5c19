"""A unit of writing: rows per table plus cursor moves, written in one transaction.

Cursors travel with the rows they describe, so a crash can never advance a cursor past rows that
were not stored (or store rows whose cursor did not advance, which dedupe makes harmless).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa


@dataclass
class CursorUpdate:
    machine_id: str
    source: str
    cursor_key: str
    value: Any

    def as_row(self) -> dict[str, Any]:
        return {
            "machine_id": self.machine_id,
            "source": self.source,
            "cursor_key": self.cursor_key,
            "cursor_json": json.dumps(self.value, sort_keys=True, default=str),
            "updated_at": datetime.now(UTC),
        }


def to_arrow(rows: pa.Table | list[dict[str, Any]]) -> pa.Table:
    if isinstance(rows, pa.Table):
        return rows
    return pa.Table.from_pylist(rows)


@dataclass
class Batch:
    """`inserts` are deduplicated by natural key (first write wins); `upserts` replace (latest wins)."""

    inserts: dict[str, pa.Table] = field(default_factory=dict)
    upserts: dict[str, pa.Table] = field(default_factory=dict)
    cursors: list[CursorUpdate] = field(default_factory=list)

    def add_rows(self, table: str, rows: pa.Table | list[dict[str, Any]]) -> None:
        t = to_arrow(rows)
        if t.num_rows == 0:
            return
        prev = self.inserts.get(table)
        self.inserts[table] = t if prev is None else pa.concat_tables([prev, t], promote_options="permissive")

    def add_upserts(self, table: str, rows: pa.Table | list[dict[str, Any]]) -> None:
        t = to_arrow(rows)
        if t.num_rows == 0:
            return
        prev = self.upserts.get(table)
        self.upserts[table] = t if prev is None else pa.concat_tables([prev, t], promote_options="permissive")

    def merge(self, other: Batch) -> None:
        for name, t in other.inserts.items():
            self.add_rows(name, t)
        for name, t in other.upserts.items():
            self.add_upserts(name, t)
        self.cursors.extend(other.cursors)

    @property
    def row_count(self) -> int:
        return sum(t.num_rows for t in self.inserts.values()) + sum(t.num_rows for t in self.upserts.values())

    def is_empty(self) -> bool:
        return self.row_count == 0 and not self.cursors

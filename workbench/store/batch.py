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
    """Arrow from rows, with the union of every row's keys (from_pylist alone would keep row 0's only)."""
    if isinstance(rows, pa.Table):
        return rows
    cols = list(dict.fromkeys(k for r in rows for k in r))
    return pa.Table.from_pylist([{c: r.get(c) for c in cols} for r in rows])


@dataclass
class Batch:
    """`inserts` are deduplicated by natural key (first write wins); `upserts` replace (latest wins).

    Pieces of one table are kept apart rather than concatenated: concatenating tables with
    different columns would fill the gaps with NULL and defeat the columns' DEFAULTs.
    """

    inserts: dict[str, list[pa.Table]] = field(default_factory=dict)
    upserts: dict[str, list[pa.Table]] = field(default_factory=dict)
    cursors: list[CursorUpdate] = field(default_factory=list)

    def add_rows(self, table: str, rows: pa.Table | list[dict[str, Any]]) -> None:
        t = to_arrow(rows)
        if t.num_rows:
            self.inserts.setdefault(table, []).append(t)

    def add_upserts(self, table: str, rows: pa.Table | list[dict[str, Any]]) -> None:
        t = to_arrow(rows)
        if t.num_rows:
            self.upserts.setdefault(table, []).append(t)

    def merge(self, other: Batch) -> None:
        for name, parts in other.inserts.items():
            self.inserts.setdefault(name, []).extend(parts)
        for name, parts in other.upserts.items():
            self.upserts.setdefault(name, []).extend(parts)
        self.cursors.extend(other.cursors)

    def pieces(self) -> list[tuple[str, str, pa.Table]]:
        """(mode, table, data) in write order: inserts then upserts."""
        out = [("insert", t, d) for t, parts in self.inserts.items() for d in parts]
        out += [("upsert", t, d) for t, parts in self.upserts.items() for d in parts]
        return out

    @property
    def row_count(self) -> int:
        return sum(d.num_rows for _, _, d in self.pieces())

    def is_empty(self) -> bool:
        return self.row_count == 0 and not self.cursors

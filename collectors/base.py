"""The collector contract.

A collector only parses and normalizes: given a context (machine, executor, last cursor, limits)
it returns rows per table, a new cursor, warnings and raw artifacts. It never scores and never
writes; the runner owns writing, so a broken collector can only lose its own rows for one cycle.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from collectors.executors.base import Executor


@dataclass(frozen=True)
class Limits:
    timeout_s: float = 30.0
    max_bytes: int = 8 * 1024 * 1024
    max_rows: int = 200_000


@dataclass
class CollectContext:
    machine_id: str
    executor: Executor
    cursor: dict[str, Any] | None = None
    limits: Limits = field(default_factory=Limits)
    now: datetime = field(default_factory=lambda: datetime.now(UTC))
    last_run_at: datetime | None = None
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class CollectResult:
    rows: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    cursor: dict[str, Any] | None = None
    warnings: list[str] = field(default_factory=list)
    raw: dict[str, str] = field(default_factory=dict)

    def add(self, table: str, row: dict[str, Any]) -> None:
        self.rows.setdefault(table, []).append(row)

    def extend(self, table: str, rows: list[dict[str, Any]]) -> None:
        if rows:
            self.rows.setdefault(table, []).extend(rows)

    @property
    def row_count(self) -> int:
        return sum(len(v) for v in self.rows.values())


class Collector(abc.ABC):
    """Subclasses set the class attributes and implement `collect`."""

    name: ClassVar[str]
    source_version: ClassVar[str] = "1"
    schema_version: ClassVar[int] = 1
    # Command whose presence on the machine (`command -v`) enables this collector; None = always.
    required_tool: ClassVar[str | None] = None
    # Collectors that only make sense on the local machine (psutil) set this.
    local_only: ClassVar[bool] = False

    def stamp(self, machine_id: str, **row: Any) -> dict[str, Any]:
        """Add the provenance columns every row carries."""
        row.setdefault("machine_id", machine_id)
        row.setdefault("source", self.name)
        row.setdefault("source_version", self.source_version)
        row.setdefault("schema_version", self.schema_version)
        return row

    @abc.abstractmethod
    async def collect(self, ctx: CollectContext) -> CollectResult: ...

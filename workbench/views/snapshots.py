"""Shared building blocks for the fleet-tool views: "the latest snapshot" and common filters.

Snapshot tables keep every collection (PK includes `collected_at`), so "now" is each key's most
recent collection. It is found as max(ts) per key joined back on the key, the shape
`machines.latest_samples` measured ~30x faster than per-column arg_max on large tables.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import ibis
import ibis.expr.types as ir


def scoped(t: ir.Table, machine_ids: Sequence[str] | None = None, since: datetime | None = None,
           until: datetime | None = None, ts: str = "collected_at") -> ir.Table:
    """`t` limited to machines (None = all) and to [since, until] on column `ts` (None = open)."""
    if machine_ids is not None:
        t = t.filter(t.machine_id.isin(list(machine_ids)))
    if since is not None:
        t = t.filter(t[ts] >= since)
    if until is not None:
        t = t.filter(t[ts] <= until)
    return t


def latest_rows(t: ir.Table, keys: Sequence[str], ts: str = "collected_at") -> ir.Table:
    """The rows of `t` at the greatest `ts` per `keys` (every row of that collection, same columns)."""
    last = t.group_by(list(keys)).agg(_vc_latest=t[ts].max())
    preds = [t[k] == last[k] for k in keys] + [t[ts] == last._vc_latest]
    return t.join(last, preds).select(*[t[c] for c in t.columns])


def age_seconds(now: datetime, ts: ir.TimestampValue) -> ir.FloatingValue:
    """Seconds from `ts` to `now` (negative when `ts` is ahead of this clock)."""
    return (ibis.literal(now).epoch_seconds() - ts.epoch_seconds()).cast("float64")

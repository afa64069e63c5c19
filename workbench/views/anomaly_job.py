"""The anomaly job the daemon runs after each cycle: read recent samples, detect, store the rows.

Reading and writing are two separate short units of work (a read-only connection, closed; then one
write transaction through `Store.write`), per the store's discipline: the job never holds the file
while it computes. Re-running it over the same data writes nothing new: the anomalies table's
primary key (machine_id, metric, ts, detector) makes the insert idempotent, and the detector gives
the same answer for the same data.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pandas as pd
import pyarrow as pa

from workbench.store import Batch, Store
from workbench.views.anomaly import METRICS, JobSettings, detect_for_machines

ANOMALIES_SCHEMA = pa.schema([
    ("machine_id", pa.string()),
    ("metric", pa.string()),
    ("ts", pa.timestamp("us", tz="UTC")),
    ("detector", pa.string()),
    ("rule", pa.string()),
    ("value", pa.float64()),
    ("score", pa.float64()),
    ("baseline", pa.float64()),
    ("scale", pa.float64()),
    ("details_json", pa.string()),
    ("detected_at", pa.timestamp("us", tz="UTC")),
])


def anomaly_table(found: pd.DataFrame, detected_at: datetime) -> pa.Table:
    """`detect_for_machines` rows in the anomalies table's shape (explicit types: a column that is
    all NULL in one batch must still arrive as DOUBLE, not as Arrow's null type)."""
    def col(name: str) -> list:
        return [None if pd.isna(v) else v for v in found[name]] if len(found) else []

    n = len(found)
    data = {
        "machine_id": col("machine_id"), "metric": col("metric"),
        "ts": [pd.Timestamp(t).to_pydatetime() for t in found["ts"]] if n else [],
        "detector": col("detector"), "rule": col("rule"),
        "value": col("value"), "score": col("score"), "baseline": col("baseline"), "scale": col("scale"),
        "details_json": col("details"),
        "detected_at": [detected_at.astimezone(UTC)] * n,
    }
    return pa.Table.from_pydict(data, schema=ANOMALIES_SCHEMA)


def run_anomaly_job(store: Store, now: datetime, settings: JobSettings | None = None,
                    metrics: tuple[str, ...] = METRICS) -> int:
    """Detect on the newest data as of `now` and store the rows; returns rows newly written.

    0 when nothing was anomalous, when everything found was already stored, or when the write had to
    be spooled because another process held the file (the spool writes it later; nothing is lost).
    """
    with store.reader() as con:
        found = detect_for_machines(con, now, metrics=metrics, settings=settings)
    if found.empty:
        return 0
    batch = Batch()
    batch.add_rows("anomalies", anomaly_table(found, now))
    return store.write(batch).inserted.get("anomalies", 0)

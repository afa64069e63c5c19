"""The forecast job the daemon runs after each cycle: forecast from the newest data, store the rows.

Reading and writing are two separate short units of work (a read-only connection, closed; then one
write transaction through `Store.write`), as for the anomaly job. A prediction's key is
(kind, subject, made_at) with made_at = the time of the newest observation it used, so a cycle that
brought no new data for a subject writes nothing for it, and re-running the job writes 0 rows.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pandas as pd
import pyarrow as pa

from workbench.store import Batch, Store
from workbench.views.forecast import all_forecasts

PREDICTIONS_SCHEMA = pa.schema([
    ("kind", pa.string()),
    ("subject", pa.string()),
    ("made_at", pa.timestamp("us", tz="UTC")),
    ("status", pa.string()),
    ("level", pa.float64()),
    ("limit_value", pa.float64()),
    ("slope_per_hour", pa.float64()),
    ("eta", pa.timestamp("us", tz="UTC")),
    ("eta_low", pa.timestamp("us", tz="UTC")),
    ("eta_high", pa.timestamp("us", tz="UTC")),
    ("horizon_s", pa.float64()),
    ("confidence", pa.float64()),
    ("action", pa.string()),
    ("inputs_json", pa.string()),
    ("details_json", pa.string()),
    ("computed_at", pa.timestamp("us", tz="UTC")),
])


def _value(v: object) -> object:
    if v is None or (not isinstance(v, str) and pd.isna(v)):
        return None
    if isinstance(v, pd.Timestamp):
        return v.to_pydatetime(warn=False)
    return v


def predictions_table(forecasts: pd.DataFrame, computed_at: datetime) -> pa.Table:
    """`all_forecasts` rows in the predictions table's shape (explicit types: an all-NULL column in
    one batch must still arrive as its real type)."""
    data: dict[str, list] = {}
    for name in PREDICTIONS_SCHEMA.names:
        if name == "computed_at":
            data[name] = [computed_at.astimezone(UTC)] * len(forecasts)
        else:
            data[name] = [_value(v) for v in forecasts[name]] if len(forecasts) else []
    return pa.Table.from_pydict(data, schema=PREDICTIONS_SCHEMA)


def run_forecast_job(store: Store, now: datetime) -> int:
    """Forecast every disk, rate window and build queue as of `now`; returns prediction rows newly written.

    0 when nothing had new data since the last run, or when the write had to be spooled because another
    process held the file (the spool writes it later; nothing is lost).
    """
    with store.reader() as con:
        found = all_forecasts(con, now)
    if found.empty:
        return 0
    batch = Batch()
    batch.add_rows("predictions", predictions_table(found, now))
    return store.write(batch).inserted.get("predictions", 0)

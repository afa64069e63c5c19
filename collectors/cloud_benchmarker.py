"""cloud_benchmarker: sysbench scores of the fleet's hosts over time, from the benchmarker's own API.

cloud_benchmarker runs an Ansible playbook every few hours (sysbench cpu, memory, fileio, mutex,
threads on each inventory host), min-max normalises the five metrics across hosts into one weighted
score, and serves both from a FastAPI app (README: `uvicorn ... --port 9999`):

    GET /data/raw/      -> [{id, datetime, hostname, IP_address, cpu_speed_test__events_per_second,
                             fileio_test__reads_per_second, memory_speed_test__MiB_transferred,
                             mutex_test__avg_latency, threads_test__avg_latency}, ...]
    GET /data/overall/  -> [{id, datetime, hostname, IP_address, overall_score}, ...]

Both take `?time_period=last_7_days|last_30_days|last_year` (anything else answers
`{"error": "Invalid time period"}`). The benchmarker runs on one control node, so this collector has
no tool to probe: a machine lists `cloud_benchmarker` in its `collectors` and may set
`cloud_benchmarker_url` (default http://127.0.0.1:9999). It is fetched with curl on that machine,
like rch's /metrics.

Why it matters here: an oversold VPS loses CPU or disk throughput silently; agents on it get slower
and the usual load/memory signals do not say why. A host's score falling against its own history is
the signal (see workbench/views/benchmarks.py).

`datetime` is the server's naive local time (`datetime.now()` when it ingested the run), so option
`cloud_benchmarker_timezone` (IANA name, default UTC) says which zone that is. Rows are events keyed
by (machine, host, run time): re-reading history adds nothing. The API filters only by coarse
periods, so the cursor keeps the newest run time per endpoint and asks for the narrowest period that
still covers it; a first full read too large for the byte limit narrows the period and says which
history it skipped.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from collectors.base import CollectContext, Collector, CollectResult
from collectors.cli_json import cap_rows
from collectors.http_fetch import curl_get
from collectors.tail import Budget, as_float, as_int, as_str, dumps

DEFAULT_URL = "http://127.0.0.1:9999"
# (query value, days it covers), narrowest last; None = the whole history.
PERIODS: tuple[tuple[str, int], ...] = (("last_year", 365), ("last_30_days", 30), ("last_7_days", 7))
# Server clock, server time zone and our clock may disagree by up to a day; never cut that close.
PERIOD_MARGIN = timedelta(days=1)

# upstream metric key -> our column. sysbench reports latencies in milliseconds.
METRICS = {
    "cpu_speed_test__events_per_second": "cpu_events_per_second",
    "fileio_test__reads_per_second": "fileio_reads_per_second",
    "memory_speed_test__MiB_transferred": "memory_mib_transferred",
    "mutex_test__avg_latency": "mutex_avg_latency_ms",
    "threads_test__avg_latency": "threads_avg_latency_ms",
}
_COMMON = {"id", "datetime", "hostname", "IP_address"}
ENDPOINTS = {
    # endpoint -> (table, value fields upstream -> column)
    "raw": ("benchmark_subscores", METRICS),
    "overall": ("benchmark_overall_scores", {"overall_score": "overall_score"}),
}


def parse_run_time(value: Any, zone: ZoneInfo) -> datetime | None:
    """The server's ISO datetime; naive means the server's zone. Returns aware UTC, or None."""
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        dt = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=zone)
    return dt.astimezone(UTC)


def parse_rows(payload: Any, endpoint: str, zone: ZoneInfo, since: datetime | None = None
               ) -> tuple[list[dict[str, Any]], list[str]]:
    """One endpoint's JSON list -> rows for its table (runs at or after `since`), plus warnings."""
    what = f"/data/{endpoint}/"
    if isinstance(payload, dict) and "error" in payload:
        return [], [f"{what}: the server answered an error: {str(payload['error'])[:200]}"]
    if not isinstance(payload, list):
        return [], [f"{what}: expected a JSON list of rows, got {type(payload).__name__}"]
    fields = ENDPOINTS[endpoint][1]
    rows: list[dict[str, Any]] = []
    seen: set[tuple[str, datetime]] = set()
    unkeyed = bad_values = 0
    unknown: set[str] = set()
    for item in payload:
        host = as_str(item.get("hostname")) if isinstance(item, dict) else None
        run_at = parse_run_time(item.get("datetime"), zone) if isinstance(item, dict) else None
        if not host or run_at is None or (host, run_at) in seen:
            unkeyed += 1
            continue
        seen.add((host, run_at))
        if since is not None and run_at < since:
            continue
        row: dict[str, Any] = {"host": host, "run_at": run_at, "server_row_id": as_int(item.get("id")),
                               "ip_address": as_str(item.get("IP_address"))}
        for key, col in fields.items():
            v = item.get(key)
            row[col] = as_float(v)
            if v is not None and row[col] is None:
                bad_values += 1
        unknown.update(k for k in item if k not in _COMMON and k not in fields)
        row["raw_json"] = dumps(item)
        rows.append(row)
    rows.sort(key=lambda r: r["run_at"])  # oldest first, so a row cap keeps a gap-free prefix
    warnings = []
    if unkeyed:
        warnings.append(f"{what}: {unkeyed} row(s) without hostname/datetime (or repeated) skipped")
    if bad_values:
        warnings.append(f"{what}: {bad_values} non-numeric metric value(s) stored as NULL (raw_json kept)")
    if unknown:
        warnings.append(f"{what}: fields this collector does not know, kept in raw_json only: "
                        f"{sorted(unknown)[:10]}")
    return rows, warnings


def period_for(since: datetime | None, now: datetime) -> str | None:
    """The narrowest `time_period` whose window still holds `since` (None: ask for everything)."""
    if since is None:
        return None
    for name, days in reversed(PERIODS):
        if now - since < timedelta(days=days) - PERIOD_MARGIN:
            return name
    return None


def narrower(period: str | None) -> str | None:
    """The next narrower period to try after `period` answered too much (None: none left)."""
    names = [p for p, _ in PERIODS]
    if period is None:
        return names[0]
    i = names.index(period)
    return names[i + 1] if i + 1 < len(names) else None


def _zone(ctx: CollectContext, result: CollectResult) -> ZoneInfo:
    name = ctx.options.get("cloud_benchmarker_timezone", "UTC")
    try:
        return ZoneInfo(str(name))
    except (ZoneInfoNotFoundError, ValueError):
        result.warnings.append(f"cloud_benchmarker: unknown time zone {name!r} in option "
                               f"cloud_benchmarker_timezone; reading server times as UTC")
        return ZoneInfo("UTC")


class CloudBenchmarkerCollector(Collector):
    name = "cloud_benchmarker"
    source_version = "1"
    schema_version = 1
    required_tool = None  # an HTTP API, not a CLI: runs where vc.toml lists it

    async def collect(self, ctx: CollectContext) -> CollectResult:
        result = CollectResult()
        base = ctx.options.get("cloud_benchmarker_url", DEFAULT_URL)
        if not isinstance(base, str) or not base.startswith(("http://", "https://")):
            result.warnings.append(f"cloud_benchmarker: option cloud_benchmarker_url must be an http(s) URL, "
                                   f"got {base!r}")
            return result
        zone = _zone(ctx, result)
        budget = Budget(ctx.limits.timeout_s)
        prev = ctx.cursor if isinstance(ctx.cursor, dict) else {}
        cursor: dict[str, Any] = {}
        for endpoint, (table, _) in ENDPOINTS.items():
            since = parse_run_time(prev.get(endpoint), ZoneInfo("UTC"))
            rows = await self._endpoint(ctx, base.rstrip("/"), endpoint, since, zone, budget, result)
            # Capped rows are the oldest ones kept; the cursor stops at them, so the rest comes next cycle.
            rows = cap_rows(rows, ctx.limits.max_rows, f"cloud_benchmarker {table}", result.warnings)
            newest = max((r["run_at"] for r in rows), default=since)
            if newest is not None:
                cursor[endpoint] = newest.isoformat()
            result.extend(table, [self.stamp(ctx.machine_id, **r) for r in rows])
        result.cursor = cursor
        return result

    async def _endpoint(self, ctx: CollectContext, base: str, endpoint: str, since: datetime | None,
                        zone: ZoneInfo, budget: Budget, result: CollectResult) -> list[dict[str, Any]]:
        period = period_for(since, ctx.now)
        while True:
            url = f"{base}/data/{endpoint}/" + (f"?time_period={period}" if period else "")
            got = await curl_get(ctx.executor, url, budget=budget, max_bytes=ctx.limits.max_bytes)
            if got.truncated:
                smaller = narrower(period)
                if smaller is None:
                    result.warnings.append(f"cloud_benchmarker: {got.error}; even the last 7 days do not fit "
                                           f"(raise the machine's max_bytes)")
                    return []
                result.warnings.append(f"cloud_benchmarker: {got.error}; asking for {smaller} instead "
                                       f"(older history is not collected)")
                period = smaller
                continue
            if got.text is None:
                result.warnings.append(f"cloud_benchmarker: /data/{endpoint}/: {got.error}")
                return []
            try:
                payload = json.loads(got.text)
            except json.JSONDecodeError as exc:
                snippet = got.text.strip()[:80]
                result.warnings.append(f"cloud_benchmarker: /data/{endpoint}/ is not JSON ({exc.msg} at "
                                       f"char {exc.pos}): {snippet!r}")
                return []
            rows, warns = parse_rows(payload, endpoint, zone, since)
            result.warnings.extend(f"cloud_benchmarker: {w}" for w in warns)
            return rows

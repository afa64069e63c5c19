"""`vc watch --format jsonl`: a stream of `alert`, `prediction` and `opportunity` events for agents.

One JSON object per line on stdout (schema: workbench/schemas/watch_event.schema.json), each
carrying the `cursor` to resume right after it, so an agent that restarts with `--since CURSOR`
(or simply restarts: the cursor is also kept in `<data_dir>/watch.cursor`) never sees an event twice.

What counts as an event:
- alert: every new row of `alert_events` (a transition: pending, firing, resolved, cancelled),
  ordered by (ts, event_id).
- prediction: a new `predictions` row that changes what the forecast says for its subject: the
  subject's first forecast, a different status or action, or an ETA that moved by more than
  ETA_SHIFT of the time that was left. Re-forecasts that say the same thing are skipped.
- opportunity: a triage item (workbench.robot.triage, alerts excluded: they have their own events)
  that was not open at the previous pass, fingerprinted by kind, subject and severity. One that
  goes away and comes back is emitted again.

The cursor is `w1.` + base64url(JSON): the last alert event (ts, id), the last prediction row
(computed_at, key) and the fingerprints of the open opportunities. Without a cursor the watcher
starts LOOKBACK back, so a first run does not replay the whole history.
"""

from __future__ import annotations

import base64
import hashlib
import json
import signal
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TextIO

from workbench.config import VcConfig
from workbench.robot.envelope import to_jsonable
from workbench.store import Store
from workbench.views import alerts as va

EVENT_VERSION = "vc.watch.v1"
CURSOR_PREFIX = "w1."
STATE_FILE = "watch.cursor"
LOOKBACK = timedelta(hours=24)
ETA_SHIFT = 0.25
MAX_FINGERPRINTS = 2000


class CursorError(ValueError):
    pass


@dataclass
class Cursor:
    alert_ts: str | None = None
    alert_id: str | None = None
    pred_ts: str | None = None
    pred_key: str | None = None
    opportunities: list[str] = field(default_factory=list)

    def encode(self) -> str:
        raw = json.dumps({"a": [self.alert_ts, self.alert_id], "p": [self.pred_ts, self.pred_key],
                          "o": sorted(self.opportunities)[:MAX_FINGERPRINTS]}, separators=(",", ":"))
        return CURSOR_PREFIX + base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")

    @classmethod
    def decode(cls, token: str) -> Cursor:
        token = token.strip()
        if not token.startswith(CURSOR_PREFIX):
            raise CursorError(f"not a vc watch cursor (expected it to start with {CURSOR_PREFIX!r})")
        body = token[len(CURSOR_PREFIX):]
        try:
            d = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
            a, p, o = d["a"], d["p"], d["o"]
            cur = cls(a[0], a[1], p[0], p[1], [str(x) for x in o])
            for ts in (cur.alert_ts, cur.pred_ts):
                if ts is not None:
                    datetime.fromisoformat(ts)
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            raise CursorError(f"unreadable vc watch cursor: {exc}") from exc
        return cur

    def copy(self) -> Cursor:
        return Cursor(self.alert_ts, self.alert_id, self.pred_ts, self.pred_key, list(self.opportunities))


def _ts(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value.replace("Z", "+00:00"))


def _iso(value: Any) -> str | None:
    v = to_jsonable(value)
    return v if isinstance(v, str) else None


def fingerprint(item: dict[str, Any]) -> str:
    raw = f"{item['kind']}\x1f{item['subject']}\x1f{item.get('severity') or ''}"
    return hashlib.sha256(raw.encode()).hexdigest()[:16]


def _loads(text: Any) -> Any:
    if not isinstance(text, str) or not text:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return None


def prediction_change(row: dict[str, Any]) -> list[str]:
    """Why this prediction row is news (empty: it says what the previous one said)."""
    if row.get("prev_made_at") is None:
        return ["new"]
    why = []
    if row.get("status") != row.get("prev_status"):
        why.append("status")
    if (row.get("action") or None) != (row.get("prev_action") or None):
        why.append("action")
    eta, prev, made = _ts(_iso(row.get("eta"))), _ts(_iso(row.get("prev_eta"))), _ts(_iso(row.get("made_at")))
    if (eta is None) != (prev is None):
        why.append("eta")
    elif eta is not None and prev is not None and made is not None:
        left = max((prev - made).total_seconds(), 3600.0)
        if abs((eta - prev).total_seconds()) > ETA_SHIFT * left:
            why.append("eta")
    return why


def _event(kind: str, ident: str, ts: Any, data: dict[str, Any], cursor: Cursor, now: datetime) -> dict[str, Any]:
    return {"schema_version": EVENT_VERSION, "type": kind, "id": ident, "ts": to_jsonable(ts),
            "emitted_at": to_jsonable(now), "cursor": cursor.encode(), "data": to_jsonable(data)}


def poll(cfg: VcConfig, store: Store, cursor: Cursor, now: datetime) -> tuple[list[dict[str, Any]], Cursor]:
    """One pass: the events after `cursor` (each with its own resume cursor) and the cursor after the pass."""
    from workbench.robot import triage

    cur = cursor.copy()
    events: list[dict[str, Any]] = []
    start = now - LOOKBACK
    with store.reader() as con:
        a_ts = _ts(cur.alert_ts) or start
        alert_rows = to_jsonable(va.alert_events_after(con, a_ts, cur.alert_id if cur.alert_ts else "")
                                 .execute().to_dict("records"))
        pred_rows: list[dict[str, Any]] = []
        if va.has_table(con, "predictions"):
            p_ts = _ts(cur.pred_ts) or start
            pred_rows = to_jsonable(va.predictions_after(con, p_ts, cur.pred_key if cur.pred_ts else "")
                                    .execute().to_dict("records"))
    for r in alert_rows:
        cur.alert_ts, cur.alert_id = r["ts"], r["event_id"]
        data = {"event_id": r["event_id"], "alert_id": r["alert_id"], "rule_id": r["rule_id"],
                "machine_id": r.get("machine_id"), "dedupe_key": r["dedupe_key"], "from": r["from_state"],
                "to": r["to_state"], "severity": r["severity"], "value": r.get("value"), "reason": r.get("reason"),
                "summary": r.get("summary"), "labels": _loads(r.get("labels_json")) or {},
                "evidence": _loads(r.get("evidence_json")) or {}, "snoozed_until": r.get("snoozed_until")}
        events.append(_event("alert", r["event_id"], r["ts"], data, cur, now))
    for r in pred_rows:
        cur.pred_ts, cur.pred_key = r["computed_at"], r["_key"]
        change = prediction_change(r)
        if not change:
            continue
        data = {k: r.get(k) for k in ("kind", "subject", "made_at", "status", "level", "limit_value", "eta",
                                      "eta_low", "eta_high", "confidence", "action")}
        data["change"] = change
        data["previous"] = None if "new" in change else {"status": r.get("prev_status"),
                                                          "action": r.get("prev_action"), "eta": r.get("prev_eta")}
        data["inputs"] = _loads(r.get("inputs_json"))
        data["details"] = _loads(r.get("details_json"))
        events.append(_event("prediction", f"{r['kind']}:{r['subject']}@{r['made_at']}", r["made_at"], data,
                             cur, now))
    doc = triage.build(cfg, store, now)
    open_now = [it for it in doc["data"]["items"] if it["kind"] != "alert"]
    seen = set(cur.opportunities)
    for it in open_now:
        fp = fingerprint(it)
        if fp in seen:
            continue
        seen.add(fp)
        cur.opportunities = sorted(seen)
        events.append(_event("opportunity", f"{it['kind']}:{it['subject']}:{fp}", now, {**it, "fingerprint": fp},
                             cur, now))
    cur.opportunities = sorted({fingerprint(it) for it in open_now})
    return events, cur


def state_path(cfg: VcConfig) -> Path:
    return Path(cfg.storage.data_dir) / STATE_FILE


def load_state(path: Path) -> Cursor | None:
    if not path.exists():
        return None
    try:
        return Cursor.decode(json.loads(path.read_text(encoding="utf-8"))["cursor"])
    except (ValueError, KeyError, TypeError, CursorError):
        return None  # a damaged state file restarts from the lookback, it must not stop the watcher


def save_state(path: Path, cursor: Cursor, now: datetime) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"cursor": cursor.encode(), "updated_at": to_jsonable(now)}), encoding="utf-8")
    tmp.replace(path)


@dataclass
class WatchResult:
    events: int = 0
    passes: int = 0
    errors: int = 0
    cursor: Cursor | None = None


def run(cfg: VcConfig, store: Store, cursor: Cursor, interval_s: float, once: bool = False,
        max_events: int | None = None, max_passes: int | None = None, state_file: Path | None = None,
        out: TextIO = sys.stdout, err: Callable[[str], None] = lambda m: print(m, file=sys.stderr),
        clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> WatchResult:
    """Poll until stopped (SIGINT / SIGTERM), `once`, `max_events` or `max_passes`; never unbounded on a bad pipe."""
    from workbench.store import StoreBusyError

    res = WatchResult(cursor=cursor)
    stop = {"flag": False}

    def _stop(_sig, _frame) -> None:
        stop["flag"] = True

    old = {s: signal.signal(s, _stop) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        while not stop["flag"]:
            now = clock()
            res.passes += 1
            try:
                events, after = poll(cfg, store, res.cursor, now)
            except StoreBusyError as exc:
                res.errors += 1
                err(f"vc watch: {exc}; trying again next pass")
                events, after = [], res.cursor
            for ev in events:
                try:
                    out.write(json.dumps(ev, allow_nan=False) + "\n")
                    out.flush()
                except BrokenPipeError:
                    stop["flag"] = True
                    break
                res.events += 1
                res.cursor = Cursor.decode(ev["cursor"])
                if max_events is not None and res.events >= max_events:
                    stop["flag"] = True
                    break
            else:
                res.cursor = after
            if state_file is not None:
                save_state(state_file, res.cursor, now)
            if once or (max_passes is not None and res.passes >= max_passes) or stop["flag"]:
                break
            deadline = time.monotonic() + interval_s
            while not stop["flag"] and time.monotonic() < deadline:
                time.sleep(min(0.1, max(0.0, deadline - time.monotonic())))
    finally:
        for s, h in old.items():
            signal.signal(s, h)
    return res


def iter_lines(text: str) -> Iterator[dict[str, Any]]:
    """Parse a captured stream (tests and tools): one event per non-empty line."""
    for line in text.splitlines():
        if line.strip():
            yield json.loads(line)

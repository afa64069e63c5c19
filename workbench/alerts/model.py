"""Plain data the alert engine works on: series in, states and transitions out.

Kept free of the database and of Ibis so the state machine can be tested (and replayed by the
rules test runner) on hand-made series.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

ACTIVE_STATES = ("pending", "firing")
# Episodes that ended; the next true condition starts a new episode with a new alert_id.
CLOSED_STATES = ("resolved", "cancelled")

Value = float | str | None
StateKey = tuple[str, str]  # (rule_id, dedupe_key)


def utc(dt: datetime) -> datetime:
    """Naive datetimes are taken as UTC; aware ones are converted (DuckDB hands back local zones)."""
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)


_DURATION_RE = re.compile(r"(?P<n>\d+(?:\.\d+)?)(?P<unit>ms|w|d|h|m|s)")
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(value: Any) -> timedelta:
    """'90s', '10m', '1h30m', '2d', a number of seconds, or a timedelta."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, bool):
        raise ValueError("expected a duration like 10m, got a boolean")
    if isinstance(value, int | float):
        if value < 0 or not math.isfinite(value):
            raise ValueError(f"expected a non-negative duration, got {value}")
        return timedelta(seconds=float(value))
    if not isinstance(value, str):
        raise ValueError(f"expected a duration like 10m, got {type(value).__name__}")
    text = value.strip()
    try:
        return parse_duration(float(text))  # a bare number in quotes is seconds
    except ValueError:
        pass
    pos, total = 0, 0.0
    for m in _DURATION_RE.finditer(text):
        if m.start() != pos:
            break
        total += float(m["n"]) * _UNITS[m["unit"]]
        pos = m.end()
    if pos != len(text) or not text:
        raise ValueError(f"expected a duration like 90s, 10m, 1h30m or 2d, got {value!r}")
    return timedelta(seconds=total)


def human_duration(seconds: float | None) -> str:
    """Short and exact enough for a summary line: 45s, 12m, 1h05m, 2d3h, never."""
    if seconds is None or not math.isfinite(seconds):
        return "never"
    s = int(round(abs(seconds)))
    sign = "-" if seconds < 0 else ""
    if s < 60:
        return f"{sign}{s}s"
    if s < 3600:
        return f"{sign}{s // 60}m" + (f"{s % 60:02d}s" if s % 60 and s < 600 else "")
    if s < 86400:
        return f"{sign}{s // 3600}h" + (f"{(s % 3600) // 60:02d}m" if (s % 3600) // 60 else "")
    return f"{sign}{s // 86400}d" + (f"{(s % 86400) // 3600}h" if (s % 86400) // 3600 else "")


@dataclass(frozen=True)
class Series:
    """One labelled series of a source: points sorted by time; a None value is a gap."""

    source: str
    labels: tuple[tuple[str, str], ...]
    points: tuple[tuple[datetime, Value], ...]
    table: str | None = None  # where the rows live, for evidence

    @classmethod
    def of(cls, source: str, labels: Mapping[str, Any], points: list[tuple[datetime, Value]],
           table: str | None = None) -> Series:
        pts = tuple(sorted(((utc(t), v) for t, v in points), key=lambda p: p[0]))
        return cls(source, tuple(sorted((str(k), str(v)) for k, v in labels.items())), pts, table)

    @property
    def label_map(self) -> dict[str, str]:
        return dict(self.labels)

    def between(self, start: datetime | None, end: datetime,
                include_start: bool = True) -> list[tuple[datetime, Any]]:
        """Points in [start, end] (or (start, end]) whose value is not a gap."""
        out = []
        for t, v in self.points:
            if t > end or v is None:
                continue
            if start is not None and (t < start or (t == start and not include_start)):
                continue
            out.append((t, v))
        return out


@dataclass(frozen=True)
class AlertState:
    """The engine's memory for one rule + dedupe key between evaluations."""

    rule_id: str
    dedupe_key: str
    alert_id: str
    state: str
    machine_id: str | None
    severity: str
    labels: dict[str, str]
    active_since: datetime
    last_eval_at: datetime
    fired_at: datetime | None = None
    cleared_since: datetime | None = None
    resolved_at: datetime | None = None
    value: float | None = None
    value_text: str | None = None
    summary: str | None = None
    evidence: dict[str, Any] = field(default_factory=dict)
    actions: list[str] = field(default_factory=list)

    @property
    def key(self) -> StateKey:
        return (self.rule_id, self.dedupe_key)

    @property
    def is_active(self) -> bool:
        return self.state in ACTIVE_STATES

    def evolve(self, **changes: Any) -> AlertState:
        return replace(self, **changes)

    def state_row(self) -> dict[str, Any]:
        return {
            "rule_id": self.rule_id, "dedupe_key": self.dedupe_key, "alert_id": self.alert_id,
            "state": self.state, "machine_id": self.machine_id, "severity": self.severity,
            "labels_json": dumps(self.labels), "active_since": self.active_since, "fired_at": self.fired_at,
            "cleared_since": self.cleared_since, "resolved_at": self.resolved_at,
            "last_eval_at": self.last_eval_at, "value": self.value, "value_text": self.value_text,
            "summary": self.summary, "evidence_json": dumps(self.evidence),
            "actions_json": dumps(self.actions),
        }

    def alert_row(self) -> dict[str, Any]:
        return {
            "alert_id": self.alert_id, "rule_id": self.rule_id, "machine_id": self.machine_id,
            "dedupe_key": self.dedupe_key, "severity": self.severity, "state": self.state,
            "summary": self.summary, "evidence_json": dumps(self.evidence), "started_at": self.active_since,
            "updated_at": self.last_eval_at, "resolved_at": self.resolved_at, "fired_at": self.fired_at,
            "labels_json": dumps(self.labels), "value": self.value, "actions_json": dumps(self.actions),
        }

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> AlertState:
        def ts(v: Any) -> datetime | None:
            return None if v is None else utc(v)

        return cls(
            rule_id=row["rule_id"], dedupe_key=row["dedupe_key"], alert_id=row["alert_id"],
            state=row["state"],
            machine_id=row.get("machine_id"), severity=row["severity"],
            labels=json.loads(row.get("labels_json") or "{}"), active_since=utc(row["active_since"]),
            last_eval_at=utc(row["last_eval_at"]), fired_at=ts(row.get("fired_at")),
            cleared_since=ts(row.get("cleared_since")), resolved_at=ts(row.get("resolved_at")),
            value=row.get("value"), value_text=row.get("value_text"), summary=row.get("summary"),
            evidence=json.loads(row.get("evidence_json") or "{}"),
            actions=json.loads(row.get("actions_json") or "[]"),
        )


@dataclass(frozen=True)
class Transition:
    """A change of an alert's state at one evaluation: what delivery sends and history records."""

    ts: datetime
    alert_id: str
    rule_id: str
    dedupe_key: str
    machine_id: str | None
    labels: dict[str, str]
    from_state: str  # inactive | pending | firing
    to_state: str  # pending | firing | resolved | cancelled
    severity: str
    value: float | None
    value_text: str | None
    summary: str | None
    reason: str
    evidence: dict[str, Any]
    actions: list[str]
    started_at: datetime
    snoozed_until: datetime | None = None

    @property
    def event_id(self) -> str:
        raw = f"{self.alert_id}\x1f{self.to_state}\x1f{self.ts.isoformat()}"
        return hashlib.sha256(raw.encode()).hexdigest()[:24]

    @property
    def snoozed(self) -> bool:
        return self.snoozed_until is not None and self.snoozed_until > self.ts

    def event_row(self) -> dict[str, Any]:
        return {
            "event_id": self.event_id, "ts": self.ts, "alert_id": self.alert_id, "rule_id": self.rule_id,
            "machine_id": self.machine_id, "dedupe_key": self.dedupe_key, "from_state": self.from_state,
            "to_state": self.to_state, "severity": self.severity, "value": self.value, "reason": self.reason,
            "summary": self.summary, "labels_json": dumps(self.labels), "evidence_json": dumps(self.evidence),
            "snoozed_until": self.snoozed_until,
        }

    def as_json(self) -> dict[str, Any]:
        """The shape written to alerts.jsonl and POSTed to webhooks."""
        return {
            "event_id": self.event_id, "ts": self.ts.isoformat(), "alert_id": self.alert_id,
            "rule_id": self.rule_id, "dedupe_key": self.dedupe_key, "machine_id": self.machine_id,
            "labels": self.labels, "from": self.from_state, "to": self.to_state, "severity": self.severity,
            "value": self.value, "value_text": self.value_text, "summary": self.summary,
            "reason": self.reason,
            "started_at": self.started_at.isoformat(), "evidence": self.evidence, "actions": self.actions,
            "snoozed_until": self.snoozed_until.isoformat() if self.snoozed_until else None,
        }


@dataclass
class EvalResult:
    states: dict[StateKey, AlertState]  # previous states updated by this evaluation
    changed: list[AlertState]  # states (re)written at this evaluation
    transitions: list[Transition]

    def active(self) -> list[AlertState]:
        return [s for s in self.states.values() if s.is_active]


def alert_id_for(rule_id: str, dedupe_key: str, started_at: datetime) -> str:
    """Deterministic per episode, so a re-run of the same evaluation writes the same rows."""
    raw = f"{rule_id}\x1f{dedupe_key}\x1f{utc(started_at).isoformat()}"
    return "al-" + hashlib.sha256(raw.encode()).hexdigest()[:20]


def _json_default(o: Any) -> Any:
    if isinstance(o, datetime):
        return utc(o).isoformat()
    if isinstance(o, timedelta):
        return o.total_seconds()
    return str(o)


def _finite(o: Any) -> Any:
    """JSON has no Infinity/NaN; a forecast that never reaches its target is null."""
    if isinstance(o, float) and not math.isfinite(o):
        return None
    if isinstance(o, dict):
        return {k: _finite(v) for k, v in o.items()}
    if isinstance(o, list | tuple):
        return [_finite(v) for v in o]
    return o


def dumps(o: Any) -> str:
    return json.dumps(_finite(o), sort_keys=True, default=_json_default, allow_nan=False)

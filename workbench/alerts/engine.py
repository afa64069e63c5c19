"""The alert state machine: pending → firing → resolved, with `for:` and `keep_firing_for`.

`evaluate` is a pure function of (rules, series, previous states, now), so every rule kind and
every timer can be tested (and replayed by the rules test runner) without a database. The
semantics follow Prometheus so that people who know it are not surprised:

- condition true, no active alert     → pending (or firing at once when `for:` is 0)
- pending, true for at least `for:`   → firing
- pending, condition false or no data → cancelled (never fired, nobody is told)
- firing, condition false or no data  → keeps firing until it has been false for
                                        `keep_firing_for`, then resolved; true again in between
                                        resets that timer (no flapping)
- resolved/cancelled, true again      → a new episode (new alert_id) starting at pending

Alerts are deduplicated by rule + the rule's dedupe labels (default: all of the source's labels,
e.g. machine_id + mount); when several series share a dedupe key the worst one speaks for it.

`evaluate_and_store` wires it to the store: reads the series through the source views, loads the
previous states, writes states, alerts (upserted by alert_id) and alert_events in one batch, and
returns the transitions. `ack` and `snooze` write alert_acks; a snoozed alert still evaluates
and is recorded, but delivery skips it.
"""

from __future__ import annotations

import json
import logging
import math
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from workbench.alerts.model import (
    AlertState,
    EvalResult,
    Series,
    StateKey,
    Transition,
    alert_id_for,
    human_duration,
    utc,
)
from workbench.alerts.rules import Rule, is_duration_valued, template_values

log = logging.getLogger("vc.alerts")

# Evidence keeps this many points so a reader can see the shape without the row dump.
EVIDENCE_POINTS = 12
_BIG_SCORE = 1e6


@dataclass
class Measurement:
    """What one series says for a rule at `now`: the compared value and whether the condition holds."""

    value: float | str
    active: bool
    evidence: dict[str, Any]

    @property
    def numeric(self) -> float | None:
        if isinstance(self.value, int | float) and math.isfinite(self.value):
            return float(self.value)
        return None


# ---------------------------------------------------------------- measuring one series

def compare(value: float, op: str, threshold: float) -> bool:
    if op == ">":
        return value > threshold
    if op == ">=":
        return value >= threshold
    if op == "<":
        return value < threshold
    if op == "<=":
        return value <= threshold
    if op == "==":
        return value == threshold
    if op == "!=":
        return value != threshold
    raise ValueError(f"not a numeric comparison: {op!r}")


def _num(v: Any) -> float | None:
    if isinstance(v, bool) or v is None:
        return None
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def _numeric_points(s: Series, start: datetime | None, now: datetime) -> list[tuple[datetime, float]]:
    out = []
    for t, v in s.between(start, now):
        f = _num(v)
        if f is not None:
            out.append((t, f))
    return out


def _evidence(rule: Rule, s: Series, pts: Sequence[tuple[datetime, Any]], **extra: Any) -> dict[str, Any]:
    labels = s.label_map
    return {
        "kind": rule.kind, "source": rule.source, "table": s.table, "machine_id": labels.get("machine_id"),
        "labels": labels, "ts_from": pts[0][0].isoformat() if pts else None,
        "ts_to": pts[-1][0].isoformat() if pts else None, "samples": len(pts),
        "values": [[t.isoformat(), v] for t, v in pts[-EVIDENCE_POINTS:]],
        "condition": rule.describe_condition(), **extra,
    }


def _ols(pts: Sequence[tuple[datetime, float]]) -> tuple[float, float, float]:
    """Least-squares slope (per second), intercept at the last point's time, and r²."""
    t_last = pts[-1][0]
    xs = [(t - t_last).total_seconds() for t, _ in pts]
    ys = [v for _, v in pts]
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    sxx = sum((x - mx) ** 2 for x in xs)
    if sxx == 0:
        return 0.0, ys[-1], 0.0
    sxy = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True))
    slope = sxy / sxx
    intercept = my - slope * mx
    syy = sum((y - my) ** 2 for y in ys)
    r2 = 1.0 if syy == 0 else max(0.0, 1.0 - sum((y - (intercept + slope * x)) ** 2
                                                   for x, y in zip(xs, ys, strict=True)) / syy)
    return slope, intercept, r2


def measure(rule: Rule, s: Series, now: datetime) -> Measurement | None:
    """The rule's value for one series at `now`, or None when the series has no usable data."""
    kind, cond = rule.kind, rule.condition
    if kind == "threshold":
        pts = _numeric_points(s, now - rule.stale_after_td, now)
        if not pts:
            return None
        v = pts[-1][1]
        return Measurement(v, compare(v, cond.op, cond.number), _evidence(rule, s, pts))

    if kind == "absence":
        seen = [t for t, _ in s.points if t <= now]
        if not seen:
            return None
        age = (now - seen[-1]).total_seconds()
        return Measurement(age, compare(age, cond.op, cond.number),
                           _evidence(rule, s, [(seen[-1], 0.0)], last_seen=seen[-1].isoformat(),
                                     age_seconds=age))

    if kind == "rate":
        window = rule.window or timedelta(0)
        pts = _numeric_points(s, now - window, now)
        if len(pts) < max(2, rule.min_samples_n):
            return None
        span = (pts[-1][0] - pts[0][0]).total_seconds()
        # Two points a minute apart say little about a 30-minute trend: wait for half the window.
        if span <= 0 or span < window.total_seconds() / 2:
            return None
        rate = (pts[-1][1] - pts[0][1]) / span * rule.per_td.total_seconds()
        return Measurement(rate, compare(rate, cond.op, cond.number),
                           _evidence(rule, s, pts, first=pts[0][1], last=pts[-1][1], span_seconds=span,
                                     per_seconds=rule.per_td.total_seconds(), rate=rate))

    if kind == "pattern":
        window = rule.window or timedelta(0)
        recent = [(t, str(v)) for t, v in s.between(now - window, now, include_start=False)]
        rx = rule.regex
        hits = [(t, v) for t, v in recent if rx.search(v)]
        extra: dict[str, Any] = {"pattern": str(cond.value)}
        if cond.op == "new":
            before = {str(v) for _, v in s.between(now - window - rule.history_td, now - window)}
            hits = [(t, v) for t, v in hits if v not in before]
            extra["history_seconds"] = rule.history_td.total_seconds()
        if not recent and not s.between(now - rule.lookback(), now):
            return None
        extra["matches"] = [[t.isoformat(), v] for t, v in hits[-EVIDENCE_POINTS:]]
        value = hits[-1][1] if hits else (recent[-1][1] if recent else "")
        return Measurement(value, bool(hits), _evidence(rule, s, recent, match_count=len(hits), **extra))

    if kind == "anomaly":
        pts = _numeric_points(s, now - (rule.window or timedelta(0)), now)
        if len(pts) < rule.min_samples_n + 1:
            return None
        x = pts[-1][1]
        base = [v for _, v in pts[:-1]]
        med = statistics.median(base)
        mad = statistics.median([abs(b - med) for b in base])
        scale = 1.4826 * mad
        if scale == 0:  # more than half the baseline identical: fall back to the mean deviation
            scale = 1.2533 * statistics.fmean([abs(b - med) for b in base])
        if scale == 0:
            z = 0.0 if x == med else math.copysign(_BIG_SCORE, x - med)
        else:
            z = max(-_BIG_SCORE, min(_BIG_SCORE, (x - med) / scale))
        score = z if rule.direction_s == "up" else -z if rule.direction_s == "down" else abs(z)
        return Measurement(score, compare(score, cond.op, cond.number),
                           _evidence(rule, s, pts, latest=x, median=med, mad=mad, score=score,
                                     direction=rule.direction_s))

    if kind == "forecast":
        window = rule.window or timedelta(0)
        pts = _numeric_points(s, now - window, now)
        if len(pts) < max(2, rule.min_samples_n):
            return None
        span = (pts[-1][0] - pts[0][0]).total_seconds()
        if span <= 0 or span < window.total_seconds() / 2:
            return None
        slope, _, r2 = _ols(pts)
        target = float(rule.target if rule.target is not None else 0.0)
        last = pts[-1][1]
        distance = target - last
        if distance == 0:
            eta = 0.0
        elif slope == 0 or (slope > 0) != (distance > 0):
            eta = math.inf
        else:
            # From the last sample's time, minus what has already elapsed until `now`.
            eta = max(0.0, distance / slope - (now - pts[-1][0]).total_seconds())
        return Measurement(eta, compare(eta, cond.op, cond.number),
                           _evidence(rule, s, pts, last=last, target=target, slope_per_hour=slope * 3600,
                                     r2=round(r2, 4), eta_seconds=eta if math.isfinite(eta) else None,
                                     eta_at=(now + timedelta(seconds=eta)).isoformat()
                                     if math.isfinite(eta) else None))
    raise ValueError(f"unknown rule kind {kind!r}")


# ---------------------------------------------------------------- the state machine

def dedupe_key(rule: Rule, labels: Mapping[str, str]) -> str:
    return ":".join([rule.id, *(str(labels.get(f, "")) for f in rule.dedupe_fields)])


def alert_labels(rule: Rule, labels: Mapping[str, str]) -> dict[str, str]:
    return {**{f: str(labels.get(f, "")) for f in rule.dedupe_fields}, **rule.labels}


def _worst(rule: Rule, ms: list[tuple[Series, Measurement]]) -> tuple[Series, Measurement]:
    op = rule.condition.op
    if op in (">", ">=") or (rule.kind == "anomaly"):
        return max(ms, key=lambda x: (x[1].numeric if x[1].numeric is not None else -math.inf))
    if op in ("<", "<="):
        return min(ms, key=lambda x: (x[1].value if isinstance(x[1].value, int | float) else math.inf))
    return ms[0]


def value_human(rule: Rule, value: Any) -> str:
    if isinstance(value, str):
        return value
    if is_duration_valued(rule):
        return human_duration(value)
    if isinstance(value, int | float):
        return f"{value:.3g}" if math.isfinite(value) else str(value)
    return ""


def render(rule: Rule, template: str, labels: dict[str, str], value: Any) -> str:
    try:
        return template.format_map(template_values(rule, labels, value, value_human(rule, value)))
    except (ValueError, TypeError, KeyError) as e:  # validated at load; a surprise must not kill a cycle
        log.warning("rule %s: template failed (%s); using it raw", rule.id, e)
        return template


def _reason_cleared(rule: Rule, m: Measurement | None, prefix: str = "condition cleared") -> str:
    if m is None:
        return f"no data from {rule.source}"
    return f"{prefix}: {value_human(rule, m.value)} is not {rule.describe_condition()}"


def _step(rule: Rule, key: str, prev: AlertState | None, chosen: tuple[Series, Measurement] | None,
          active: bool, also: list[dict[str, str]], now: datetime
          ) -> tuple[AlertState | None, Transition | None]:
    """One rule + dedupe key: the new state (None: nothing to write) and the transition if any."""
    m = chosen[1] if chosen else None
    labels = alert_labels(rule, chosen[0].label_map) if chosen else (prev.labels if prev else {})
    evidence = dict(m.evidence) if m else (dict(prev.evidence) if prev else {})
    if also:
        evidence["also_matching"] = also[:20]
    value = m.numeric if m else (prev.value if prev else None)
    value_text = (m.value if m and isinstance(m.value, str) else None)
    summary = render(rule, rule.summary, labels, m.value) if m else (prev.summary if prev else None)
    actions = ([render(rule, a, labels, m.value) for a in rule.actions] if m
               else (prev.actions if prev else []))
    was = prev.state if prev and prev.is_active else "inactive"

    def transition(st: AlertState, to: str, reason: str) -> Transition:
        return Transition(ts=now, alert_id=st.alert_id, rule_id=rule.id, dedupe_key=key,
                          machine_id=st.machine_id, labels=st.labels, from_state=was, to_state=to,
                          severity=st.severity, value=st.value, value_text=st.value_text, summary=st.summary,
                          reason=reason, evidence=st.evidence, actions=st.actions, started_at=st.active_since)

    common = dict(labels=labels, severity=rule.severity, last_eval_at=now, value=value, value_text=value_text,
                  summary=summary, evidence=evidence, actions=actions, machine_id=labels.get("machine_id"))

    if was == "inactive":
        if not active:
            return None, None
        st = AlertState(rule_id=rule.id, dedupe_key=key, alert_id=alert_id_for(rule.id, key, now),
                        state="pending", active_since=now, **common)
        if rule.for_ <= timedelta(0):
            st = st.evolve(state="firing", fired_at=now)
            return st, transition(st, "firing", f"{value_human(rule, m.value)} {rule.describe_condition()}")
        hold = human_duration(rule.for_.total_seconds())
        return st, transition(st, "pending", f"{value_human(rule, m.value)} {rule.describe_condition()}; "
                                             f"firing if it holds for {hold}")

    assert prev is not None
    if was == "pending":
        if active:
            held = now - prev.active_since
            if held >= rule.for_:
                st = prev.evolve(state="firing", fired_at=now, cleared_since=None, **common)
                return st, transition(st, "firing", f"{rule.describe_condition()} held for "
                                                    f"{human_duration(held.total_seconds())}")
            return prev.evolve(**common), None
        st = prev.evolve(state="cancelled", resolved_at=now, **common)
        return st, transition(st, "cancelled", _reason_cleared(rule, m, "condition cleared before `for:`"))

    # firing
    if active:
        return prev.evolve(cleared_since=None, **common), None
    since = prev.cleared_since or now
    if now - since >= rule.keep_firing_for:
        st = prev.evolve(state="resolved", resolved_at=now, cleared_since=since, **common)
        reason = _reason_cleared(rule, m)
        if rule.keep_firing_for > timedelta(0):
            reason += f" (for {human_duration((now - since).total_seconds())})"
        return st, transition(st, "resolved", reason)
    st = prev.evolve(cleared_since=since, **common)
    st.evidence["keep_firing_until"] = (since + rule.keep_firing_for).isoformat()
    return st, None


def _close_orphan(prev: AlertState, now: datetime) -> tuple[AlertState, Transition]:
    to = "cancelled" if prev.state == "pending" else "resolved"
    st = prev.evolve(state=to, resolved_at=now, last_eval_at=now)
    return st, Transition(ts=now, alert_id=st.alert_id, rule_id=st.rule_id, dedupe_key=st.dedupe_key,
                          machine_id=st.machine_id, labels=st.labels, from_state=prev.state, to_state=to,
                          severity=st.severity, value=st.value, value_text=st.value_text, summary=st.summary,
                          reason="rule removed or disabled", evidence=st.evidence, actions=st.actions,
                          started_at=st.active_since)


def evaluate(rules: Sequence[Rule], series: Mapping[str, Sequence[Series]],
             previous: Mapping[StateKey, AlertState], now: datetime) -> EvalResult:
    """Pure: the states and transitions after evaluating `rules` at `now` (disabled rules are skipped).

    `series` maps a source name to its series; an empty list means the source has no data (alerts
    on it clear), a missing key means it could not be read (alerts on it stay as they are).
    """
    now = utc(now)
    states: dict[StateKey, AlertState] = dict(previous)
    changed: list[AlertState] = []
    transitions: list[Transition] = []
    live = [r for r in rules if r.enabled]
    prev_keys_by_rule: dict[str, set[str]] = {}
    for (rid, key) in previous:
        prev_keys_by_rule.setdefault(rid, set()).add(key)

    for rule in live:
        if rule.source not in series:
            continue  # the source could not be read: keep this rule's alerts exactly as they were
        by_key: dict[str, list[tuple[Series, Measurement]]] = {}
        for s in series.get(rule.source, ()):
            m = measure(rule, s, now)
            if m is not None:
                by_key.setdefault(dedupe_key(rule, s.label_map), []).append((s, m))
        for key in sorted(set(by_key) | prev_keys_by_rule.get(rule.id, set())):
            ms = by_key.get(key, [])
            hot = [x for x in ms if x[1].active]
            chosen = _worst(rule, hot) if hot else (_latest(ms) if ms else None)
            also = [x[0].label_map for x in hot if chosen is not None and x is not chosen]
            st, tr = _step(rule, key, previous.get((rule.id, key)), chosen, bool(hot), also, now)
            if st is not None:
                states[st.key] = st
                changed.append(st)
            if tr is not None:
                transitions.append(tr)

    live_ids = {r.id for r in live}
    for k, prev in sorted(previous.items()):
        if prev.rule_id not in live_ids and prev.is_active:
            st, tr = _close_orphan(prev, now)
            states[k] = st
            changed.append(st)
            transitions.append(tr)
    return EvalResult(states=states, changed=changed, transitions=transitions)


def _latest(ms: list[tuple[Series, Measurement]]) -> tuple[Series, Measurement]:
    return max(ms, key=lambda x: x[1].evidence.get("ts_to") or "")


# ---------------------------------------------------------------- with the store

def series_needs(rules: Iterable[Rule]) -> list[tuple[str, str, timedelta]]:
    return [(r.source, r.fetch_mode, r.lookback()) for r in rules if r.enabled]


def read_series(store, rules: Sequence[Rule], now: datetime,
                errors: dict[str, str] | None = None) -> dict[str, list[Series]]:
    from workbench.alerts.sources import fetch_series

    with store.reader() as con:
        return fetch_series(con, series_needs(rules), now, errors)


def load_states(store) -> dict[StateKey, AlertState]:
    with store.reader() as con:
        rows = con.table("alert_state").to_pyarrow().to_pylist()
    return {(r["rule_id"], r["dedupe_key"]): AlertState.from_row(r) for r in rows}


def active_snoozes(store, now: datetime) -> dict[str, datetime]:
    """dedupe_key → snooze end, for snoozes still running at `now` (the newest snooze row wins)."""
    now = utc(now)
    with store.reader() as con:
        k = con.table("alert_acks")
        k = k.filter(k.snooze_until.notnull() & k.dedupe_key.notnull() & (k.acked_at <= now))
        last = k.group_by("dedupe_key").agg(until=k.snooze_until.argmax(k.acked_at))
        rows = last.to_pyarrow().to_pylist()
    return {r["dedupe_key"]: utc(r["until"]) for r in rows
            if r["until"] is not None and utc(r["until"]) > now}


def apply_snoozes(transitions: list[Transition], snoozes: Mapping[str, datetime]) -> list[Transition]:
    from dataclasses import replace

    return [replace(t, snoozed_until=snoozes[t.dedupe_key]) if t.dedupe_key in snoozes else t
            for t in transitions]


def result_batch(result: EvalResult, transitions: Sequence[Transition]):
    from workbench.store import Batch

    b = Batch()
    if result.changed:
        b.add_upserts("alert_state", [s.state_row() for s in result.changed])
        # One row per alert_id (an upsert may not touch the same key twice in one statement).
        alerts = {s.alert_id: s.alert_row() for s in result.changed}
        b.add_upserts("alerts", list(alerts.values()))
    if transitions:
        b.add_rows("alert_events", [t.event_row() for t in transitions])
    return b


@dataclass
class StoredEvaluation:
    result: EvalResult
    transitions: list[Transition]
    spooled: bool
    source_errors: dict[str, str]


def evaluate_store(store, rules: Sequence[Rule], now: datetime,
                   previous: Mapping[StateKey, AlertState] | None = None) -> StoredEvaluation:
    """Evaluate and write; `previous` overrides the stored states (the daemon's memory after a spool)."""
    now = utc(now)
    errors: dict[str, str] = {}
    series = read_series(store, rules, now, errors)
    prev = load_states(store) if previous is None else previous
    result = evaluate(rules, series, prev, now)
    transitions = apply_snoozes(result.transitions, active_snoozes(store, now)) if result.transitions else []
    outcome = store.write(result_batch(result, transitions))
    return StoredEvaluation(result, transitions, spooled=outcome.spooled is not None, source_errors=errors)


def evaluate_and_store(store, rules: Sequence[Rule], now: datetime) -> list[Transition]:
    """Read series via the source views, step every alert, write states/alerts/events; the transitions."""
    return evaluate_store(store, rules, now).transitions


# ---------------------------------------------------------------- acknowledge and snooze

class UnknownAlertError(KeyError):
    def __str__(self) -> str:
        return str(self.args[0])


def _alert_key(store, alert_id: str) -> str:
    with store.raw_reader() as con:
        row = con.execute("SELECT dedupe_key FROM alerts WHERE alert_id = ?", [alert_id]).fetchone()
    if row is None:
        raise UnknownAlertError(f"no alert with id {alert_id!r}")
    return row[0]


def ack(store, alert_id: str, who: str, note: str | None = None, now: datetime | None = None) -> None:
    """Record that `who` has seen the alert (this episode only)."""
    _write_ack(store, alert_id, who, note, None, now)


def snooze(store, alert_id: str, until: datetime, who: str, note: str | None = None,
           now: datetime | None = None) -> None:
    """Quiet the alert's rule+machine+key until `until`: still evaluated and recorded, not delivered.

    `until` at or before now ends a running snooze."""
    _write_ack(store, alert_id, who, note, utc(until), now)


def _write_ack(store, alert_id: str, who: str, note: str | None, until: datetime | None,
               now: datetime | None) -> None:
    from workbench.store import Batch

    if not who or not who.strip():
        raise ValueError("an acknowledgement needs a name (who)")
    key = _alert_key(store, alert_id)
    b = Batch()
    b.add_rows("alert_acks", [{
        "alert_id": alert_id, "acked_at": utc(now or datetime.now(UTC)), "acked_by": who.strip(),
        "note": note, "snooze_until": until, "dedupe_key": key,
    }])
    store.write(b)


def alert_history(store, alert_id: str) -> list[dict[str, Any]]:
    """The transitions of one alert, oldest first (for a detail panel or a robot command)."""
    with store.raw_reader() as con:
        cur = con.execute("SELECT ts, from_state, to_state, reason, value, summary, evidence_json "
                          "FROM alert_events WHERE alert_id = ? ORDER BY ts", [alert_id])
        cols = [d[0] for d in cur.description]
        rows = [dict(zip(cols, r, strict=True)) for r in cur.fetchall()]
    for r in rows:
        r["ts"] = utc(r["ts"])
        r["evidence"] = json.loads(r.pop("evidence_json") or "{}")
    return rows

"""The alert sources behind the rules that were waiting for them (OOM kills, inotify, dcg, agent mail,
rate-limit ETAs), read through `fetch_series` from a real migrated DuckDB file, and a few of those
rules evaluated end to end through `evaluate_and_store`.

Rows come from the real code that fills each table wherever there is one: the system sample reading
a /proc/vmstat file, the dcg and mcp_agent_mail collectors reading real SQLite files through the
LocalExecutor, the forecast job. sysmoni snapshots, usage reports and the runner's `collector_runs`
bookkeeping are written through `Store.write` as the daemon writes them.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from collectors import system
from collectors.dcg import DcgCollector
from collectors.mcp_agent_mail import McpAgentMailCollector
from collectors.system import SystemCollector
from tests.collectors.test_dcg import make_history
from tests.collectors.test_mcp_agent_mail import MailDb
from tests.toolbox import run_collector, toolbox_executor
from workbench.alerts import sources
from workbench.alerts.engine import evaluate_and_store
from workbench.alerts.rules import Rule, load_rules
from workbench.config import HealthConfig
from workbench.store import Batch, Store
from workbench.views.forecast_job import run_forecast_job

T = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)


def at(minutes: float) -> datetime:
    return T + timedelta(minutes=minutes)


def minute_of(ts: datetime) -> float:
    return (ts - T).total_seconds() / 60


def write(store: Store, **tables: list[dict[str, Any]]) -> None:
    b = Batch()
    for name, rows in tables.items():
        b.add_rows(name, rows)
    assert store.write(b).spooled is None


def write_result(store: Store, rows: dict[str, list[dict[str, Any]]]) -> None:
    write(store, **rows)


def runs(collector: str, machine: str, *minutes_status: tuple[float, str]) -> list[dict[str, Any]]:
    """collector_runs rows as the runner writes them: one per run, with its outcome."""
    return [dict(run_id=f"{collector}-{machine}-{m}", cycle_id=f"c{m}", machine_id=machine, collector=collector,
                 started_at=at(m), finished_at=at(m) + timedelta(seconds=1), duration_ms=1000.0,
                 rows_written=0, status=status, source_version="1", schema_version=1)
            for m, status in minutes_status]


def series(store: Store, name: str, now: datetime, lookback: timedelta = 2 * HOUR,
           mode: str = "window") -> dict[tuple[str, ...], list[tuple[float, Any]]]:
    """The source's series as {labels in source order: [(minute since T, value)]}."""
    errors: dict[str, str] = {}
    spec = sources.get_source(name)
    with store.reader() as con:
        got = sources.fetch_series(con, [(name, mode, lookback)], now, errors)
    assert errors == {}
    return {tuple(s.label_map[lab] for lab in spec.labels): [(minute_of(t), v) for t, v in s.points]
            for s in got[name]}


def shipped(*rule_ids: str) -> list[Rule]:
    rules = [r for r in load_rules() if r.id in rule_ids]
    assert sorted(r.id for r in rules) == sorted(rule_ids)
    return rules


# ---------------------------------------------------------------- OOM kills

def _samples(machine: str, minutes: list[int], oom: list[int | None]) -> list[dict[str, Any]]:
    return [dict(machine_id=machine, ts=at(m), source="system", schema_version=1, oom_kill_total=v)
            for m, v in zip(minutes, oom, strict=True)]


def test_oom_kills_is_the_counter_and_unknown_stays_unknown(store: Store) -> None:
    write(store, sys_samples=_samples("m1", [0, 1, 2], [2, 2, 3]) + _samples("old", [0, 1, 2], [None] * 3)
          + _samples("m3", [0, 1, 2], [None, None, 0]))
    assert series(store, "oom_kills", at(5)) == {("m1",): [(0, 2.0), (1, 2.0), (2, 3.0)], ("m3",): [(2, 0.0)]}
    assert series(store, "oom_kills", at(5), mode="latest") == {("m1",): [(2, 3.0)], ("m3",): [(2, 0.0)]}


def test_oom_kills_rule_fires_on_a_kill_sampled_by_the_system_collector(store: Store, tmp_path: Path) -> None:
    """The system collector reads the counter from a /proc/vmstat file; the shipped rule sees the kill."""
    recorded = (Path(__file__).resolve().parents[1] / "sample_data" / "probe" / "vmstat.txt").read_text()
    lines = [ln for ln in recorded.splitlines() if not ln.startswith("oom_kill ")]
    before, after, old_kernel = tmp_path / "before", tmp_path / "after", tmp_path / "old"
    before.write_text("\n".join([*lines, "oom_kill 3"]) + "\n")
    after.write_text("\n".join([*lines, "oom_kill 4"]) + "\n")
    old_kernel.write_text("\n".join(lines) + "\n")
    stamp = SystemCollector().stamp
    for minute in (0, 20, 40, 61):
        for machine, vmstat in (("m1", before if minute < 61 else after), ("old", old_kernel)):
            res = system.sample(machine, at(minute), None, 0, stamp, vmstat=vmstat)
            write(store, sys_samples=res.rows["sys_samples"])
    with store.raw_reader() as con:
        stored = con.execute("SELECT machine_id, count(*), count(oom_kill_total), max(oom_kill_total) "
                             "FROM sys_samples GROUP BY machine_id ORDER BY machine_id").fetchall()
    assert stored == [("m1", 4, 4, 4), ("old", 4, 0, None)]  # the old kernel's count is NULL, not 0
    rules = shipped("oom_kills")
    assert evaluate_and_store(store, rules, at(60)) == []
    fired = evaluate_and_store(store, rules, at(61))
    assert [(t.machine_id, t.to_state) for t in fired] == [("m1", "firing")]
    # window [1m, 61m]: 3 at 20m, 4 at 61m → one kill in 41 minutes
    assert fired[0].value == pytest.approx(60 / 41)
    assert fired[0].summary == "the OOM killer is killing processes on m1 (1.5/hour over the last 1h)"


# ---------------------------------------------------------------- inotify

def test_inotify_watches_used_pct(store: Store) -> None:
    def snap(machine: str, minute: int, nr: int | None, limit: int | None) -> dict[str, Any]:
        return dict(machine_id=machine, ts=at(minute), collected_at=at(minute) + timedelta(seconds=2),
                    source="sysmoni", schema_version=1, variant="go", inotify_nr_watches=nr,
                    inotify_max_user_watches=limit, inotify_max_user_instances=1024)

    write(store, sysmoni_snapshots=[snap("m1", 0, 40211, 524288), snap("m1", 1, 480000, 524288),
                                    snap("nolimit", 0, 10, 0), snap("bash", 0, None, 8192)])
    got = series(store, "inotify_watches_used_pct", at(5))
    assert list(got) == [("m1",)]  # a zero limit or a missing count is no reading
    assert [m for m, _ in got[("m1",)]] == [0, 1]
    assert [v for _, v in got[("m1",)]] == pytest.approx([100 * 40211 / 524288, 100 * 480000 / 524288])


# ---------------------------------------------------------------- dcg

def _cmd(minute: float, outcome: str, rule: str | None, pack: str | None = None) -> tuple:
    """A history.db `commands` row in the column order of tests.collectors.test_dcg.ROWS."""
    pattern = rule.split(":")[1] if rule else None
    pack = pack or (rule.split(":")[0] if rule else None)
    ts = at(minute).isoformat().replace("+00:00", "Z")
    return (ts, "claude_code", "/data/projects/flywheel", f"cmd at {minute}", outcome, pack, pattern, rule, 100,
            "sess-1", None, None, "m1", None, None)


@pytest.fixture
def dcg_store(store: Store, tmp_path: Path) -> Store:
    """m1: one deny 100 min before T, 24 in the last hour (22 of a high-severity rule, one critical
    force push, one legacy deny with only its pack); allows, warns and bypasses in between. m2: dcg
    with an empty history. The dcg collector reads both at T; runs: m1 at -70 (ok), -30 (error), 0."""
    m1 = [_cmd(-200, "deny", "core.git:reset-hard"), _cmd(-100, "deny", "core.git:reset-hard"),
          _cmd(-75, "allow", None)]
    m1 += [_cmd(-50 + i, "deny", "core.filesystem:rm-rf-general") for i in range(22)]
    m1 += [_cmd(-5, "deny", "core.git:push-force-long"), _cmd(-4, "warn", "core.git:stash-drop"),
           _cmd(-3, "bypass", "core.git:clean-force"), _cmd(-2, "deny", None, pack="core.git")]
    for machine, rows in (("m1", m1), ("m2", [])):
        db = make_history(tmp_path / machine / "history.db", rows)
        res = run_collector(DcgCollector(), toolbox_executor(tmp_path / machine / "box", {}, machine), now=T,
                            options={"dcg_history_db": [str(db)], "dcg_stats": False})
        assert res.warnings == []
        if res.rows:
            write_result(store, res.rows)
    # The runner names runs after the collector; another collector's runs are not dcg's readings.
    dcg, mail = DcgCollector.name, McpAgentMailCollector.name
    write(store, collector_runs=runs(dcg, "m1", (-70, "ok"), (-30, "error"), (0, "ok"))
          + runs(dcg, "m2", (0, "ok")) + runs(mail, "m3", (0, "ok")))
    return store


def test_dcg_denies_per_hour_samples_at_each_answered_collection(dcg_store: Store) -> None:
    got = series(dcg_store, "dcg_denies_per_hour", T)
    # -70: the deny at -100 is within its hour; the failed run at -30 is no reading; 0: 22 + 1 + 1 denies
    # (the warn, bypass and allow are not denies); m2 answered with no denies: 0 is a reading.
    assert got == {("m1",): [(-70, 1.0), (0, 24.0)], ("m2",): [(0, 0.0)]}
    assert series(dcg_store, "dcg_denies_per_hour", at(-60), lookback=HOUR) == {("m1",): [(-70, 1.0)]}


def test_dcg_deny_rule_id_is_each_denied_rule(dcg_store: Store) -> None:
    got = series(dcg_store, "dcg_deny_rule_id", T, lookback=4 * HOUR)
    assert list(got) == [("m1",)]
    pts = got[("m1",)]
    assert pts[:2] == [(-200, "core.git:reset-hard"), (-100, "core.git:reset-hard")]
    assert pts[2:24] == [(-50 + i, "core.filesystem:rm-rf-general") for i in range(22)]
    assert pts[24:] == [(-5, "core.git:push-force-long"), (-2, "core.git")]  # no rule id: its pack


def test_dcg_rules_fire_from_the_collected_history(dcg_store: Store) -> None:
    fired = evaluate_and_store(dcg_store, shipped("dcg_denies_high", "dcg_new_critical_rule"), T)
    got = sorted((t.rule_id, t.machine_id, t.to_state, t.value, t.value_text) for t in fired)
    # rm-rf-general is dcg severity "high": denied 22 times, never "critical"; reset-hard was denied
    # 100 minutes ago (before the 1h window, within the 7-day history), so it is not new.
    assert got == [("dcg_denies_high", "m1", "firing", 24.0, None),
                   ("dcg_new_critical_rule", "m1", "firing", None, "core.git:push-force-long")]


# ---------------------------------------------------------------- agent mail

@pytest.fixture
def mail_store(store: Store, tmp_path: Path) -> Store:
    """A Rust-server mail database on m1, collected at T and again at T+5m after agent 2 read message
    1 and agent 3 acked message 2. Runs: m1 at 0 (ok), 5 (warning), 30 (error), 51 (ok, nothing new);
    m2 answers at 0 with no mail database rows."""
    db = MailDb(tmp_path / "storage.sqlite3", "rust")
    t = db.t
    con = db.con()
    con.execute("INSERT INTO projects (id, slug, human_key, created_at) VALUES (1, 'flywheel', '/p', ?)",
                (t(at(-600)),))
    con.executemany("INSERT INTO agents (id, project_id, name, program, model, inception_ts, last_active_ts) "
                    "VALUES (?, 1, ?, 'claude-code', 'opus', ?, ?)",
                    [(i, name, t(at(-600)), t(at(0))) for i, name in ((1, "GreenCastle"), (2, "BlueLake"),
                                                                     (3, "RedFox"))])
    # (id, importance, ack required, created, recipient, read, acked)
    for mid, importance, ack, created, to, read, acked in (
            (1, "urgent", 1, -120, 2, None, None),
            (2, "normal", 1, -90, 3, -80, None),
            (3, "high", 1, -10, 2, None, None),        # high is not urgent
            (4, "urgent", 0, -30, 3, -20, None),       # urgent but read
            (5, "normal", 1, -200, 1, -190, -185)):    # acked long ago
        con.execute("INSERT INTO messages (id, project_id, sender_id, subject, body_md, importance, ack_required, "
                    "created_ts) VALUES (?, 1, 1, ?, 'body', ?, ?, ?)",
                    (mid, f"message {mid}", importance, ack, t(at(created))))
        con.execute("INSERT INTO message_recipients (message_id, agent_id, kind, read_ts, ack_ts) "
                    "VALUES (?, ?, 'to', ?, ?)",
                    (mid, to, t(at(read)) if read is not None else None,
                     t(at(acked)) if acked is not None else None))
    con.commit()
    con.close()
    ex = toolbox_executor(tmp_path / "box", {}, "m1")
    opts = {"mail_db_paths": [str(db.path)]}
    first = run_collector(McpAgentMailCollector(), ex, now=T, options=opts)
    assert first.warnings == []
    write_result(store, first.rows)
    db.run("UPDATE message_recipients SET read_ts = ? WHERE message_id = 1", t(at(2)))
    db.run("UPDATE message_recipients SET ack_ts = ? WHERE message_id = 2", t(at(3)))
    second = run_collector(McpAgentMailCollector(), ex, cursor=first.cursor, now=at(5), options=opts)
    assert second.warnings == []
    assert sorted((r["message_id"], r["state"]) for r in second.rows["mail_recipients"]) == [(1, "read"),
                                                                                          (2, "acked")]
    write_result(store, second.rows)
    mail = McpAgentMailCollector.name
    write(store, collector_runs=runs(mail, "m1", (0, "ok"), (5, "warning"), (30, "error"), (51, "ok"))
          + runs(mail, "m2", (0, "ok")) + runs(DcgCollector.name, "m3", (0, "ok")))
    return store


def test_mail_urgent_unread_follows_the_recipients_state(mail_store: Store) -> None:
    # 0: message 1 (urgent) unread; message 3 is only "high", message 4 was read. 5: message 1 read.
    assert series(mail_store, "mail_urgent_unread", at(51)) == {("m1",): [(0, 1.0), (5, 0.0), (51, 0.0)],
                                                                ("m2",): [(0, 0.0)]}


def test_mail_ack_overdue_counts_past_the_due_time(mail_store: Store) -> None:
    # 0: messages 1 (120 min old) and 2 (90 min, read, not acked) are overdue; message 3 is 10 min old.
    # 5: message 2 acked. 51: message 3 is now 61 min old and still not acked (no new rows needed).
    assert series(mail_store, "mail_ack_overdue", at(51)) == {("m1",): [(0, 2.0), (5, 1.0), (51, 2.0)],
                                                              ("m2",): [(0, 0.0)]}
    # The alert and the health factor mean the same thing by "overdue".
    assert sources.MAIL_ACK_DUE.total_seconds() == HealthConfig().mail_ack_due_seconds


# ---------------------------------------------------------------- rate-limit ETA

def _usage(machine: str, account: str, minute: float, used: float) -> dict[str, Any]:
    provider = account.split(":")[0]
    return dict(machine_id=machine, collected_at=at(minute), source="caam", account_key=account,
                window_name="primary", source_version="1", schema_version=1, provider=provider, used_pct=used,
                window_minutes=300, resets_at=at(180), reported_at=at(minute))


def _prediction(subject: str, made: float, status: str, eta: float | None, horizon_s: float,
                machines: list[str]) -> dict[str, Any]:
    return dict(kind="rate_limit", subject=subject, made_at=at(made), status=status,
                eta=at(eta) if eta is not None else None, horizon_s=horizon_s, inputs_json="{}",
                details_json=json.dumps({"machines": machines}), computed_at=at(made))


@pytest.fixture
def forecast_store(store: Store) -> Store:
    """alice's primary window rises 4 points every 5 minutes on m1 and m2 (88 % at T): the forecast job
    says it reaches the limit in about 15 minutes. dev's stays at 20 %: not rising."""
    rows = []
    for i in range(13):
        minute = -5 * (12 - i)
        rows += [_usage(m, "claude:alice@example.com", minute, 40.0 + 4.0 * i) for m in ("m1", "m2")]
        rows.append(_usage("m1", "codex:dev@example.com", minute, 20.0))
    write(store, account_usage_snapshots=rows)
    assert run_forecast_job(store, T) == 2
    return store


def test_ratelimit_eta_seconds_from_the_forecast_job(forecast_store: Store) -> None:
    with forecast_store.raw_reader() as con:
        status, eta = con.execute("SELECT status, eta FROM predictions WHERE subject = "
                                  "'claude:alice@example.com/primary'").fetchone()
        other = con.execute("SELECT status FROM predictions WHERE subject = 'codex:dev@example.com/primary'"
                            ).fetchone()[0]
    assert status == "reaches limit" and other == "not rising"
    left = (eta - T).total_seconds()
    assert 10 * 60 < left < 20 * 60
    got = series(forecast_store, "ratelimit_eta_seconds", T)
    key = ("claude:alice@example.com", "primary")
    assert got == {("m1", *key): [(0, pytest.approx(left, abs=1))], ("m2", *key): [(0, pytest.approx(left, abs=1))]}
    # Five minutes later with no new report: the same forecast, counted from the new now.
    later = series(forecast_store, "ratelimit_eta_seconds", at(5))
    assert later[("m1", *key)] == [(0, pytest.approx(left - 300, abs=1))]


def test_ratelimit_eta_newest_forecast_decides_and_horizon_ends_it(forecast_store: Store) -> None:
    subject = "claude:alice@example.com/primary"
    write(forecast_store, predictions=[
        _prediction(subject, 6, "resets first", 200, 3600.0, ["m1", "m2"]),
        # an "at limit" forecast whose window reset 10 minutes after it was made
        _prediction("claude:bob@example.com/primary", 1, "at limit", None, 600.0, ["m2"])])
    assert series(forecast_store, "ratelimit_eta_seconds", at(5)) == {
        ("m1", "claude:alice@example.com", "primary"): [(0, pytest.approx(series_left(forecast_store), abs=1))],
        ("m2", "claude:alice@example.com", "primary"): [(0, pytest.approx(series_left(forecast_store), abs=1))],
        ("m2", "claude:bob@example.com", "primary"): [(1, 0.0)]}
    # At 7m the newer "resets first" forecast replaces alice's ETA; at 12m bob's reset has passed.
    assert series(forecast_store, "ratelimit_eta_seconds", at(7)) == {
        ("m2", "claude:bob@example.com", "primary"): [(1, 0.0)]}
    assert series(forecast_store, "ratelimit_eta_seconds", at(12)) == {}


def series_left(store: Store) -> float:
    """alice's ETA as of 5 minutes after T, from the forecast job's row."""
    with store.raw_reader() as con:
        eta = con.execute("SELECT eta FROM predictions WHERE subject = 'claude:alice@example.com/primary' "
                          "AND status = 'reaches limit'").fetchone()[0]
    return (eta - at(5)).total_seconds()


def test_ratelimit_eta_low_fires_per_machine_using_the_account(forecast_store: Store) -> None:
    fired = evaluate_and_store(forecast_store, shipped("ratelimit_eta_low"), T)
    assert sorted((t.machine_id, t.labels["account_key"], t.to_state) for t in fired) == [
        ("m1", "claude:alice@example.com", "firing"), ("m2", "claude:alice@example.com", "firing")]
    assert all(t.summary.startswith("claude:alice@example.com reaches its rate limit in 1") for t in fired)

"""The Alerts page in AppTest against a real on-disk database: tabs, evidence, ack and snooze writes.

Each test builds its own database (the dashboard fixture plus alerts from the real engine with the
shipped rules), because acks and snoozes write to it.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

pytest.register_assert_rewrite("tests.ui_fixtures")

from streamlit.testing.v1 import AppTest  # noqa: E402

from tests.ui_fixtures import build_ui_db, write_config  # noqa: E402
from workbench.alerts import engine  # noqa: E402
from workbench.alerts.rules import DEFAULT_RULES, load_rules  # noqa: E402
from workbench.store import Store  # noqa: E402
from workbench.ui import errors  # noqa: E402

APP = str(Path(__file__).resolve().parents[1] / "app.py")
PAGE = "pages/alerts.py"


def _open_page() -> AppTest:
    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    at.switch_page(PAGE)
    return _run(at)


def _run(at: AppTest) -> AppTest:
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


@pytest.fixture
def db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Store:
    t0 = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=10)
    ui = build_ui_db(tmp_path, t0)
    store = ui.store()
    rules = load_rules([DEFAULT_RULES])
    engine.evaluate_and_store(store, rules, t0)
    engine.evaluate_and_store(store, rules, t0 + timedelta(minutes=6))  # disk_free_low fires
    monkeypatch.setenv("VC_CONFIG", str(ui.config_path))
    return store


def _acks(store: Store) -> list[tuple]:
    with store.raw_reader() as con:
        return con.execute("SELECT alert_id, acked_by, note, snooze_until, dedupe_key FROM alert_acks "
                           "ORDER BY acked_at").fetchall()


def _tab(at: AppTest, name: str):
    tabs = [t for t in at.tabs if t.label.startswith(name)]
    assert len(tabs) == 1, [t.label for t in at.tabs]
    return tabs[0]


def _ids(tab) -> list[str]:
    return tab.dataframe[0].value["Alert id"].tolist() if len(tab.dataframe) else []


def _firing_id(store: Store) -> str:
    with store.raw_reader() as con:
        return con.execute("SELECT alert_id FROM alerts WHERE rule_id = 'disk_free_low'").fetchone()[0]


def test_tabs_evidence_and_actions(db: Store) -> None:
    at = _open_page()
    assert [t.label for t in at.tabs] == ["Open (3)", "Acked (0)", "Resolved (1)"]
    firing = _firing_id(db)
    assert _ids(_tab(at, "Open"))[0] == firing  # critical first
    assert _ids(_tab(at, "Resolved")) == ["alert-resolved"]
    assert "No alert is acked or snoozed." in [i.value for i in _tab(at, "Acked").info]
    md = "\n".join(m.value for m in _tab(at, "Open").markdown)
    assert "/data on alpha has" in md and "See what grew: du -xh --max-depth=2 /data" in md
    caption = "\n".join(c.value for c in _tab(at, "Open").caption)
    assert "threshold on `disk_free_pct`" in caption
    assert len(_tab(at, "Open").json) == 1
    # Resolved alerts have no forms.
    assert "vc_ack_submit_resolved" not in [b.key for b in at.button]


def test_ack_writes_a_row_and_moves_the_alert_to_acked(db: Store) -> None:
    at = _open_page()
    firing = _firing_id(db)
    assert at.selectbox(key="vc_alerts_pick_open").value == firing
    at.text_input(key="vc_ack_who_open").input("ops-alice")
    at.text_input(key="vc_ack_note_open").input("cleaning target/")
    at.button(key="vc_ack_submit_open").click()
    _run(at)
    rows = _acks(db)
    assert [(r[0], r[1], r[2], r[3]) for r in rows] == [(firing, "ops-alice", "cleaning target/", None)]
    assert f"Acked {firing} as ops-alice." in [s.value for s in at.success]
    assert firing not in _ids(_tab(at, "Open")) and _ids(_tab(at, "Acked")) == [firing]
    assert [t.label for t in at.tabs] == ["Open (2)", "Acked (1)", "Resolved (1)"]
    assert "Acked by ops-alice" in "\n".join(c.value for c in _tab(at, "Acked").caption)


def test_snooze_writes_until_and_moves_the_alert(db: Store) -> None:
    at = _open_page()
    at.selectbox(key="vc_alerts_pick_open").set_value("alert-firing")
    _run(at)
    at.selectbox(key="vc_snooze_for_open").set_value("4 hours")
    at.text_input(key="vc_snooze_who_open").input("ops-bob")
    before = datetime.now(UTC)
    at.button(key="vc_snooze_submit_open").click()
    _run(at)
    rows = _acks(db)
    assert len(rows) == 1
    alert_id, who, note, until, key = rows[0]
    assert (alert_id, who, note, key) == ("alert-firing", "ops-bob", None, "disk_filling:alpha:/data")
    assert before + timedelta(hours=4) - timedelta(seconds=5) <= until <= datetime.now(UTC) + timedelta(hours=4)
    assert _ids(_tab(at, "Acked")) == ["alert-firing"]
    assert "alert-firing" not in _ids(_tab(at, "Open"))
    assert "snoozed until" in _tab(at, "Acked").dataframe[0].value["Handled"].iloc[0]

    # Ending the snooze (a snooze until now) brings it back to the open tab.
    at.text_input(key="vc_unsnooze_who_acked").input("ops-bob")
    at.button(key="vc_unsnooze_submit_acked").click()
    _run(at)
    assert len(_acks(db)) == 2 and _acks(db)[1][2] == "snooze ended"
    assert "alert-firing" in _ids(_tab(at, "Open")) and _ids(_tab(at, "Acked")) == []


def test_ack_without_a_name_writes_nothing(db: Store) -> None:
    at = _open_page()
    at.button(key="vc_ack_submit_open").click()
    _run(at)
    assert _acks(db) == []
    assert any("needs a name" in e.value for e in at.error)
    assert [t.label for t in at.tabs] == ["Open (3)", "Acked (0)", "Resolved (1)"]


def test_empty_database_says_no_data_yet(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = tmp_path / "data"
    Store(data / "vc.duckdb", writer_name="pytest").migrate()
    monkeypatch.setenv("VC_CONFIG", str(write_config(tmp_path / "vc.toml", data)))
    at = _open_page()
    assert errors.NO_DATA in [i.value for i in at.info]
    assert len(at.tabs) == 0 and len(at.dataframe) == 0


def test_busy_database_on_ack_shows_a_warning_not_a_traceback(db: Store, tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = tmp_path / "busy.toml"
    cfg.write_text(textwrap.dedent(f"""
        [storage]
        data_dir = "{db.db_path.parent}"
        lock_retry_seconds = 0.5
    """))
    monkeypatch.setenv("VC_CONFIG", str(cfg))
    at = _open_page()
    at.text_input(key="vc_ack_who_open").input("ops-alice")
    holder = subprocess.Popen(
        [sys.executable, "-c", "import duckdb, sys, time; c = duckdb.connect(sys.argv[1]);"
         " print('locked', flush=True); time.sleep(60)", str(db.db_path)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        at.button(key="vc_ack_submit_open").click()
        _run(at)
        assert any("The database is busy" in w.value for w in at.warning), [w.value for w in at.warning]
    finally:
        holder.kill()
        holder.wait(timeout=10)
    assert _acks(db) == []  # nothing half-written, nothing spooled behind the person's back
    assert not list((db.db_path.parent / "spool").glob("*"))


def test_ack_while_a_reader_blocks_writes_is_queued_and_said_so(db: Store, tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """Another process reading (a notebook) lets the page read but not write: the ack is spooled, not lost."""
    cfg = tmp_path / "busy.toml"
    cfg.write_text(textwrap.dedent(f"""
        [storage]
        data_dir = "{db.db_path.parent}"
        lock_retry_seconds = 0.5
    """))
    monkeypatch.setenv("VC_CONFIG", str(cfg))
    at = _open_page()
    firing = _firing_id(db)
    at.text_input(key="vc_ack_who_open").input("ops-carol")
    holder = subprocess.Popen(
        [sys.executable, "-c", "import duckdb, sys, time; c = duckdb.connect(sys.argv[1], read_only=True);"
         " print('reading', flush=True); time.sleep(60)", str(db.db_path)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "reading"
        at.button(key="vc_ack_submit_open").click()
        _run(at)
        assert any("your change is queued" in w.value for w in at.warning), [w.value for w in at.warning]
        assert _ids(_tab(at, "Open"))[0] == firing  # not moved: it is not written yet
    finally:
        holder.kill()
        holder.wait(timeout=10)
    assert _acks(db) == []
    assert db.drain_spool() == 1  # the next writer (the daemon) writes it
    assert [(r[0], r[1]) for r in _acks(db)] == [(firing, "ops-carol")]

"""The dashboard pages, run in-process with Streamlit's AppTest against a real populated database.

Expected numbers are computed from the same views the pages call, at the moment of the check;
they are also checked against facts the fixture fixed by construction (one firing alert, ghost
never collected, the ghost error row), so a page that drops or invents data fails.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from datetime import UTC, datetime
from pathlib import Path

import pytest

# The fixture module is imported here before pytest loads it as a plugin; have its asserts rewritten.
pytest.register_assert_rewrite("tests.ui_fixtures")

from streamlit.testing.v1 import AppTest  # noqa: E402

from tests.ui_fixtures import ALPHA, DEMO, ERROR_TEXT, GHOST, LOCK_BLOCKER, UiDb, write_config  # noqa: E402
from workbench.store import Store  # noqa: E402
from workbench.ui import errors  # noqa: E402
from workbench.ui import format as fmt  # noqa: E402
from workbench.views import health as vh  # noqa: E402
from workbench.views import machines as vm  # noqa: E402
from workbench.views import ops  # noqa: E402

pytest_plugins = ["tests.ui_fixtures"]

APP = str(Path(__file__).resolve().parents[1] / "app.py")
TIMEOUT = 60


def _app() -> AppTest:
    return AppTest.from_file(APP, default_timeout=TIMEOUT)


def _run(at: AppTest) -> AppTest:
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def _metric(at: AppTest, label: str):
    found = [m for m in at.metric if m.label == label]
    assert found, f"no metric {label!r}; have {[m.label for m in at.metric]}"
    return found[0]


def _texts(elements) -> list[str]:
    return [str(e.value) for e in elements]


def _expected(db: UiDb, tags: list[str] | None = None) -> dict:
    cfg, store, now = db.config(), db.store(), datetime.now(UTC)
    with store.reader() as con:
        return {
            "fleet": vh.fleet_health(con, cfg.health, now, tags=tags).execute(),
            "poll": ops.poll_freshness(con, now).execute(),
            "alerts": ops.active_alert_count(con).execute(),
            "machines": vh.machine_health(con, cfg.health, now, tags=tags).execute(),
        }


def _assert_poll_metric(value: str, expected_age: float) -> None:
    # The page read the clock a moment before the test did: allow a few seconds either way.
    plausible = {fmt.fmt_age(expected_age + d) for d in range(-5, 30)}
    assert value in plausible, (value, expected_age)


# ---------------------------------------------------------------- overview


def test_overview_top_metrics_match_the_views(ui_db: UiDb) -> None:
    at = _run(_app())
    exp = _expected(ui_db)
    fleet = exp["fleet"].iloc[0]
    assert int(fleet["machines"]) == 3
    assert fleet["severity"] == "critical"  # ghost was never collected: no data is not good news
    assert _metric(at, "Fleet health").value == f"{fmt.fmt_score(fleet['score'])} · {fleet['severity']}"
    poll = exp["poll"].iloc[0]
    # The session-scoped DB ages as tests run: check the age against the last run's own time.
    last_run = poll["last_run_at"].to_pydatetime()
    assert last_run <= ui_db.t0
    assert abs(float(poll["age_seconds"]) - (datetime.now(UTC) - last_run).total_seconds()) < 30
    _assert_poll_metric(_metric(at, "Last poll").value, float(poll["age_seconds"]))
    assert int(exp["alerts"].iloc[0]["active"]) == 1  # one firing, one resolved in the fixture
    assert _metric(at, "Active alerts").value == "1"


def test_overview_shows_demo_banner_and_machine_list(ui_db: UiDb) -> None:
    at = _run(_app())
    assert any("Demo data" in w for w in _texts(at.warning))
    machines = at.dataframe[0].value
    exp = _expected(ui_db)["machines"]
    assert machines["Machine"].tolist() == exp["display_name"].tolist()
    assert machines["Status"].tolist() == exp["severity"].tolist()
    assert machines["Worst factor"].tolist() == exp["worst_factor"].tolist()
    assert machines["Score"].round(4).tolist() == exp["score"].round(4).tolist()
    ghost = machines[machines["Machine"] == "ghost"].iloc[0]
    assert (ghost["Status"], ghost["Worst factor"]) == ("critical", "freshness")
    assert ghost["Last sample"] == "never"


def test_overview_details_follow_the_sidebar_machine(ui_db: UiDb) -> None:
    at = _run(_app())
    # Default focus: the first machine of the selector (ids in order).
    assert at.sidebar.selectbox[0].value == ALPHA
    assert at.subheader[1].value == "alpha.prod (alpha)"
    tables = [d.value for d in at.dataframe]
    factors, filesystems, top_cpu = tables[1], tables[2], tables[3]
    assert factors["Factor"].tolist() == list(vh.FACTORS)
    disk = factors[factors["Factor"] == "disk"].iloc[0]
    assert disk["Score"] == pytest.approx(0.5, abs=1e-3)  # /data at 91%: halfway between warn 85 and crit 97
    assert disk["Detail"] == "fullest disk /data at 91.0%"
    assert filesystems["Mount"].tolist() == ["/", "/data"]
    assert top_cpu["Name"].tolist() == ["claude", "cargo", "postgres"]
    assert _metric(at, "Memory").value == "40.0%"
    assert _metric(at, "Fullest disk").value == "91.0%"

    at.sidebar.selectbox[0].select(DEMO)
    _run(at)
    assert at.subheader[1].value == "demo-01"
    assert _metric(at, "Memory").value == "92.0%"
    assert _metric(at, "Swap").value == "0.0%"
    # demo-01 reports no top processes: both tabs say so instead of drawing an empty table.
    assert errors.NO_DATA in _texts(at.info)


def test_tag_filter_changes_view_and_persists_across_pages(ui_db: UiDb) -> None:
    at = _run(_app())
    at.sidebar.multiselect[0].select("prod")
    _run(at)
    assert not any("Demo data" in w for w in _texts(at.warning))  # only alpha and ghost carry "prod"
    exp = _expected(ui_db, tags=["prod"])
    fleet = exp["fleet"].iloc[0]
    assert int(fleet["machines"]) == 2
    assert _metric(at, "Fleet health").value == f"{fmt.fmt_score(fleet['score'])} · {fleet['severity']}"
    assert at.dataframe[0].value["Machine"].tolist() == exp["machines"]["display_name"].tolist()
    assert at.query_params.get("tag") == "prod"

    at.sidebar.radio[0].set_value("24h")
    _run(at)
    at.switch_page("pages/collectors.py")
    _run(at)
    assert at.sidebar.multiselect[0].value == ["prod"]
    assert at.sidebar.radio[0].value == "24h"
    assert at.query_params.get("window") == "24h"
    status = at.dataframe[0].value
    assert sorted(status["Machine"].unique()) == [ALPHA, GHOST]


def test_open_machine_button_switches_page(ui_db: UiDb) -> None:
    at = _run(_app())
    at.sidebar.selectbox[0].select(DEMO)
    _run(at)
    at.button(key="vc_open_machine").click()
    _run(at)
    assert at.title[0].value == "Machine — demo-01"
    assert len(at.get("plotly_chart")) == 6


# ---------------------------------------------------------------- machine


def test_machine_page_draws_every_chart(ui_db: UiDb) -> None:
    at = _run(_app())
    at.switch_page("pages/machine.py")
    _run(at)
    assert at.title[0].value == "Machine — alpha.prod (alpha)"
    charts = at.get("plotly_chart")
    assert len(charts) == 6  # cpu, load per core, memory, swap, network, disks
    assert errors.NO_DATA_WINDOW not in _texts(at.info)
    cfg, store, now = ui_db.config(), ui_db.store(), datetime.now(UTC)
    start, end = vm.window_bounds(now, cfg.dashboard.default_window)
    with store.reader() as con:
        series = vm.sample_series(con, ALPHA, start, end).execute()
    assert len(series) >= 170  # three hours of one-minute buckets


def test_machine_page_deep_link_and_empty_series(ui_db: UiDb) -> None:
    at = _app()
    at.query_params["machine"] = GHOST
    at.query_params["window"] = "1h"
    _run(at)
    at.switch_page("pages/machine.py")
    _run(at)
    assert at.title[0].value == "Machine — ghost"
    assert at.sidebar.radio[0].value == "1h"
    assert len(at.get("plotly_chart")) == 0
    assert _texts(at.info).count(errors.NO_DATA_WINDOW) == 2  # samples and disks


# ---------------------------------------------------------------- collectors


def test_collectors_page_shows_the_error_row_and_lock_contention(ui_db: UiDb) -> None:
    at = _run(_app())
    at.switch_page("pages/collectors.py")
    _run(at)
    status, runs, locks, _tools = (d.value for d in at.dataframe)  # tools: tests/test_fleet_pages.py
    ghost = status[status["Machine"] == GHOST].iloc[0]
    assert ghost["Status"] == "error" and ghost["Last error"] == ERROR_TEXT and ghost["Errors"] == 1
    assert set(status[status["Machine"] != GHOST]["Status"]) == {"ok"}
    errored = runs[runs["Status"] == "error"]
    assert errored["Error"].tolist() == [ERROR_TEXT]
    warned = runs[runs["Status"] == "warning"]
    assert warned["Warnings"].tolist() == ["load average missing from /proc/loadavg"]
    assert locks["Blocked by"].tolist() == [LOCK_BLOCKER]
    assert locks["Total wait"].tolist() == ["1.8 s"]
    with ui_db.store().reader() as con:
        poll = ops.poll_freshness(con, datetime.now(UTC)).execute().iloc[0]
    assert _metric(at, "Errors (1h)").value == str(int(poll["errors_last_hour"])) == "1"
    assert _metric(at, "Warnings (1h)").value == str(int(poll["warnings_last_hour"])) == "1"

    at.toggle(key="vc_collectors_problems_only").set_value(True)
    _run(at)
    runs = at.dataframe[1].value
    assert sorted(runs["Status"]) == ["error", "warning"]


# ---------------------------------------------------------------- empty and unavailable databases


def test_missing_database_shows_the_friendly_message(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = write_config(tmp_path / "vc.toml", tmp_path / "nothing-here")
    monkeypatch.setenv("VC_CONFIG", str(cfg))
    at = _run(_app())
    assert any(errors.NO_DATABASE in t for t in _texts(at.info))
    assert len(at.metric) == 0
    at.switch_page("pages/collectors.py")
    _run(at)
    assert any(errors.NO_DATABASE in t for t in _texts(at.info))
    assert not (tmp_path / "nothing-here").exists()  # the dashboard never creates a database


def test_empty_database_shows_no_data_instead_of_charts(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    data = tmp_path / "data"
    Store(data / "vc.duckdb", writer_name="pytest").migrate()
    monkeypatch.setenv("VC_CONFIG", str(write_config(tmp_path / "vc.toml", data)))
    at = _run(_app())
    assert _metric(at, "Fleet health").value == "no machines"
    assert _metric(at, "Last poll").value == "never"
    assert _metric(at, "Active alerts").value == "0"
    assert errors.NO_DATA in _texts(at.info)
    assert not any("Demo data" in w for w in _texts(at.warning))
    at.switch_page("pages/machine.py")
    _run(at)
    assert "no machines yet" in _texts(at.info)
    assert len(at.get("plotly_chart")) == 0
    at.switch_page("pages/collectors.py")
    _run(at)
    assert _metric(at, "Last poll").value == "never"
    assert len(at.dataframe) == 0


def test_busy_database_shows_a_warning_not_a_traceback(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    data = tmp_path / "data"
    db = data / "vc.duckdb"
    Store(db, writer_name="pytest").migrate()
    cfg = tmp_path / "vc.toml"
    cfg.write_text(textwrap.dedent(f"""
        [storage]
        data_dir = "{data}"
        lock_retry_seconds = 0.5
    """))
    monkeypatch.setenv("VC_CONFIG", str(cfg))
    # Another process holds the write lock, as the daemon does while it writes a batch.
    holder = subprocess.Popen(
        [sys.executable, "-c", "import duckdb, sys, time; c = duckdb.connect(sys.argv[1]);"
         " print('locked', flush=True); time.sleep(60)", str(db)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        at = _run(_app())
        busy = [w for w in _texts(at.warning) if "The database is busy" in w]
        assert busy, _texts(at.warning)
        assert f"PID {holder.pid}" in busy[0]
    finally:
        holder.kill()
        holder.wait(timeout=10)


# ---------------------------------------------------------------- helpers the pages rely on


def test_formatting_never_turns_missing_into_zero() -> None:
    assert fmt.fmt_pct(None) == fmt.fmt_bytes(float("nan")) == fmt.fmt_score(None) == fmt.MISSING
    assert fmt.fmt_age(None) == "never"
    assert fmt.fmt_age(42) == "42s ago" and fmt.fmt_age(3 * 3600 + 60) == "3h 1m ago"
    assert fmt.fmt_bytes(1536) == "1.5 KiB" and fmt.fmt_bytes(300 * 1024) == "300 KiB"
    assert fmt.fmt_rate(2 * 1024**2) == "2.0 MiB/s"
    assert fmt.fmt_with_unit(0.3, "x") == "0.30×" and fmt.fmt_with_unit(91, "%") == "91.0%"


def test_charts_break_lines_across_outages() -> None:
    import pandas as pd

    from workbench.ui import charts

    ts = pd.to_datetime(["2026-01-01 00:00", "2026-01-01 00:01", "2026-01-01 00:02", "2026-01-01 02:00",
                         "2026-01-01 02:01"], utc=True)
    fig = charts.time_series(pd.DataFrame({"ts": ts, "v": [1.0, 2.0, 3.0, 4.0, 5.0]}), {"v": "v"}, "t")
    assert list(fig.data[0].y) == [1.0, 2.0, 3.0, None, 4.0, 5.0]
    steady = charts.time_series(pd.DataFrame({"ts": ts[:3], "v": [1.0, 2.0, 3.0]}), {"v": "v"}, "t")
    assert list(steady.data[0].y) == [1.0, 2.0, 3.0]

"""The fleet pages (Accounts, Agents, Repos, Beads, Build farm, Events, tool availability) in AppTest.

The database is the dashboard fixture (tests/ui_fixtures.py) whose fleet rows were written by the
real collectors on the recorded upstream payloads (tests/fleet_fixtures.py). Expected numbers are
computed from the same views the pages call, and checked against what the fixture fixed by
construction (one account seen from two machines, five builds with one failure ...), so a page
that drops, duplicates or invents data fails.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest

pytest.register_assert_rewrite("tests.ui_fixtures", "tests.fleet_fixtures")

from streamlit.testing.v1 import AppTest  # noqa: E402

from tests import fleet_fixtures as ff  # noqa: E402
from tests.ui_fixtures import ALPHA, DEMO, GHOST, UiDb, write_config  # noqa: E402
from workbench.store import Store  # noqa: E402
from workbench.ui import errors  # noqa: E402
from workbench.ui import format as fmt  # noqa: E402
from workbench.views import accounts as va  # noqa: E402
from workbench.views import agents as vag  # noqa: E402
from workbench.views import beads as vb  # noqa: E402
from workbench.views import buildfarm as vbf  # noqa: E402
from workbench.views import events as ve  # noqa: E402
from workbench.views import machines as vm  # noqa: E402
from workbench.views import repos as vr  # noqa: E402

pytest_plugins = ["tests.ui_fixtures"]

APP = str(Path(__file__).resolve().parents[1] / "app.py")
TIMEOUT = 60
FLEET_PAGES = ["pages/accounts.py", "pages/agents.py", "pages/repos.py", "pages/beads.py", "pages/buildfarm.py",
               "pages/events.py", "pages/benchmarks.py"]


def _run(at: AppTest) -> AppTest:
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def _page(page: str, at: AppTest | None = None) -> AppTest:
    at = at or _run(AppTest.from_file(APP, default_timeout=TIMEOUT))
    at.switch_page(page)
    return _run(at)


def _metrics(at: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def _frame(at: AppTest, *columns: str):
    """The one table on the page that has all these columns (AppTest does not expose a table's key)."""
    found = [d.value for d in at.dataframe if set(columns) <= set(d.value.columns)]
    assert len(found) == 1, (columns, [list(d.value.columns) for d in at.dataframe])
    return found[0]


def _infos(at: AppTest) -> list[str]:
    return [str(i.value) for i in at.info]


def _views(db: UiDb, fn, *args, **kw):
    with db.store().reader() as con:
        return fn(con, *args, **kw).execute()


def test_fixture_rows_come_from_collectors_without_complaint(ui_db: UiDb) -> None:
    assert ui_db.fleet.warnings == ()
    ins = ui_db.fleet.inserted
    assert ins["account_usage_snapshots"] == 8 and ins["rch_build_events"] == len(ff.BUILDS)
    assert ins["rch_status_snapshots"] == len(ff.QUEUE_DEPTHS) and ins["net_events"] == 7 * len(ff.RANO_SHIFTS)
    assert ins["dcg_events"] == len(ff.DCG_COMMANDS) and ins["mail_messages"] == len(ff.MAIL_MESSAGES)
    assert ins["mail_file_reservations"] == len(ff.MAIL_RESERVATIONS)


# ---------------------------------------------------------------- accounts


def test_accounts_page_merges_one_account_seen_from_two_machines(ui_db: UiDb) -> None:
    at = _page("pages/accounts.py")
    assert at.title[0].value == "Accounts"
    totals = _views(ui_db, va.account_totals, datetime.now(UTC)).iloc[0]
    m = _metrics(at)
    assert m["Accounts"] == str(int(totals["accounts"])) == "2"
    assert m["Shared accounts"] == str(int(totals["shared_accounts"])) == "1"
    assert m["Fullest window"] == fmt.fmt_pct(totals["fullest_used_pct"], 0) == "57%"
    table = _frame(at, "Account", "Window")
    codex = table[table["Account"] == "user@example.com"]
    assert codex["Window"].tolist() == ["primary", "secondary"]  # once per window, not once per machine
    assert set(codex["Machines"]) == {f"{ALPHA}, {DEMO}"}
    # demo-01 reported last: its figures win; the highest current report is kept beside them.
    assert codex["Used %"].tolist() == [31.0, 57.0] and codex["Max %"].tolist() == [31.0, 59.0]
    claude = table[table["Account"] == "alice@example.com"]
    assert claude["Used %"].tolist() == [42.0, 18.0] and set(claude["Tools"]) == {"caam"}
    assert all(r.startswith("in ") for r in table["Resets"])
    assert len(at.get("plotly_chart")) == 3  # usage now, usage over time, spend per day
    # caut cost on alpha and demo-01 (the template's days moved to t0-2 .. t0): machines add up, and
    # alpha's two reports of a day count once (its latest).
    per_day = [(18.42) * 2, (16.95 + 9.87) * 2, (6.73 + 3.44) * 2]
    assert m["Average per day"] == f"${sum(per_day) / 3:,.2f}"
    logins = _frame(at, "Tool", "Logged in")
    assert logins[logins["Tool"] == "claude"]["Health"].tolist() == ["healthy"]


def test_accounts_follow_the_tag_filter_and_the_focused_machine(ui_db: UiDb) -> None:
    at = _run(AppTest.from_file(APP, default_timeout=TIMEOUT))
    at.sidebar.multiselect[0].select("prod")  # alpha and ghost: demo-01's reports leave the merge
    _run(at)
    _page("pages/accounts.py", at)
    table = _frame(at, "Account", "Window")
    codex = table[table["Account"] == "user@example.com"]
    assert set(codex["Machines"]) == {ALPHA} and codex["Used %"].tolist() == [28.0, 59.0]
    assert _metrics(at)["Shared accounts"] == "0"

    at.sidebar.multiselect[0].unselect("prod")
    _run(at)
    at.sidebar.selectbox[0].select(DEMO)
    _run(at)
    at.toggle(key="vc_accounts_only_focused").set_value(True)
    _run(at)
    table = _frame(at, "Account", "Window")
    assert table["Account"].unique().tolist() == ["user@example.com"]
    assert set(table["Machines"]) == {DEMO}


# ---------------------------------------------------------------- repos


def test_repos_page_counts_and_lists_what_needs_a_look(ui_db: UiDb) -> None:
    at = _page("pages/repos.py")
    totals = _views(ui_db, vr.fleet_repo_totals, datetime.now(UTC)).iloc[0]
    m = _metrics(at)
    for label, key in (("Repos", "repos"), ("Dirty", "dirty"), ("Behind", "behind"), ("Ahead", "ahead"),
                       ("Need a look", "needs_attention")):
        assert m[label] == str(int(totals[key])), label
    assert (m["Dirty"], m["Behind"], m["Ahead"]) == ("5", "3", "1")
    summary = _frame(at, "Repos", "Need a look")
    assert summary["Machine"].tolist() == [ALPHA, DEMO] and summary["Repos"].tolist() == [115, ff.DEMO_REPOS]
    listed = _frame(at, "Repo", "Why")
    assert len(listed) == int(totals["needs_attention"]) == 9
    demo = listed[listed["Machine"] == DEMO].iloc[0]
    assert (demo["Repo"], demo["Why"]) == (ff.DEMO_AHEAD_REPO, "uncommitted changes, ahead 3")
    assert listed[listed["Repo"] == "Dicklesworthstone/wezterm_automata"]["Behind"].tolist() == [6]

    at.toggle(key="vc_repos_show_all").set_value(True)
    _run(at)
    assert len(_frame(at, "Repo", "Why")) == 125


# ---------------------------------------------------------------- agents


def test_agents_page_shows_ntm_sessions_and_panes(ui_db: UiDb) -> None:
    at = _page("pages/agents.py")
    totals = _views(ui_db, vag.agent_totals, datetime.now(UTC)).iloc[0]
    m = _metrics(at)
    assert m["Sessions"] == str(int(totals["sessions"])) == "3"
    for state in ("active", "idle", "waiting", "error"):
        assert m[f"Agents {state}"] == str(int(totals[state]))
    sessions = _frame(at, "Session", "Agents")
    assert sessions["Session"].tolist() == ["corpus-session-0", "corpus-session-1", "corpus-session-2"]
    assert sessions["Agents"].tolist() == [4, 4, 4]
    panes = _frame(at, "Pane", "Agent")
    assert len(panes) == int(totals["agents"]) == 12
    assert sorted(panes["Agent"].unique()) == ["claude", "codex", "cursor", "gemini"]
    assert len(at.get("plotly_chart")) == 1


def test_agents_page_shows_mail_that_needs_someone_and_held_files(ui_db: UiDb) -> None:
    at = _page("pages/agents.py")
    mail = _views(ui_db, vag.mail_totals, datetime.now(UTC)).iloc[0]
    m = _metrics(at)
    # Message 1 is urgent, unread and unacked for 2h; message 2 was read 80 min ago but never acked.
    assert m["Urgent unread"] == str(int(mail["urgent_unread"])) == "1"
    assert m["Acks overdue"] == str(int(mail["ack_overdue"])) == "2"
    assert m["Acks pending"] == "3" and m["Unread"] == "2"
    inbox = _frame(at, "Agent", "Urgent unread").set_index("Agent")
    assert inbox.loc["BlueLake", ["Urgent unread", "Ack overdue", "Unread"]].tolist() == [1, 1, 2]
    assert inbox.loc["RedFox", ["Ack overdue", "Ack pending", "Unread"]].tolist() == [1, 1, 0]
    assert inbox.loc["GreenCastle", "Ack pending"] == 0  # its one ack-required message was acked
    attention = _frame(at, "Subject", "Why")
    assert attention["Why"].tolist() == ["urgent, unread, ack overdue", "ack overdue"]
    held = _frame(at, "Paths", "Expires in")
    # 2 expired 10 min ago, 3 was released: only BlueLake's lock on the API is held now.
    assert held[["Agent", "Paths"]].values.tolist() == [["BlueLake", "src/api/**"]]


# ---------------------------------------------------------------- events


def test_events_page_network_and_process_triage(ui_db: UiDb) -> None:
    at = _page("pages/events.py")
    now = datetime.now(UTC)
    start, end = vm.window_bounds(now, "6h")
    net = _views(ui_db, ve.net_totals, start, end).iloc[0]
    m = _metrics(at)
    assert m["Connections (6h)"] == str(int(net["connects"])) == "9"  # 3 connects per replay, 3 replays
    assert m["Providers"] == "3" and m["Kill recommended"] == "1" and m["Memory to free"] == "1.0 GiB"
    by_provider = _frame(at, "Domain", "Connects")
    assert sorted(by_provider["Domain"]) == ["api.anthropic.com", "api.openai.com", "gemini.google.com"]
    assert by_provider["Connects"].tolist() == [3, 3, 3]
    findings = _frame(at, "PID", "Action")
    assert findings["PID"].tolist() == [84721] and findings["Action"].tolist() == ["kill"]
    assert any("reported 3 candidates but listed 1" in c.value for c in at.caption)

    denied = _frame(at, "Rule", "Denies")
    assert denied[["Rule", "Denies"]].values.tolist() == [["core.git:reset-hard", 3], ["core.filesystem:rm-rf", 1]]
    assert denied["Last command"].tolist()[0] == "git reset --hard origin/main"
    dcg = _views(ui_db, ve.dcg_totals, start, end).iloc[0]
    assert m["Denied (6h)"] == str(int(dcg["denies"])) == "4" and m["Warned"] == "1"
    assert len(at.get("plotly_chart")) == 2  # denies per hour, connections per hour
    assert any("23 blocked" in c.value and "core.git" in c.value for c in at.caption)  # dcg.stats.example.json

    at.sidebar.radio[0].set_value("1h")  # only the replay 20 minutes ago is inside the last hour
    _run(at)
    m = _metrics(at)
    assert m["Connections (1h)"] == "3"
    assert m["Denied (1h)"] == "2"  # rm -rf 40 min ago and reset --hard 30 min ago


# ---------------------------------------------------------------- beads


def test_beads_page_ready_triage_and_blockers(ui_db: UiDb) -> None:
    at = _page("pages/beads.py")
    totals = _views(ui_db, vb.beads_totals, datetime.now(UTC)).iloc[0]
    m = _metrics(at)
    assert m["Ready"] == fmt.fmt_number(totals["ready"], 0) == "3"  # br.ready.example.json lists three
    assert m["Blocked (bv)"] == "4" and m["Waiting on another issue"] == "1"
    overview = _frame(at, "Ready", "Top pick")
    assert overview["Path"].tolist() == [ui_db.fleet.beads_repo] and overview["Repo"].tolist() == ["beads_rust"]
    assert overview["Top ready"].tolist() == ["bd-vgf"] and overview["Top pick"].tolist() == ["bd-123"]
    waiting = _frame(at, "Waits on")
    assert waiting[["Issue", "Waits on", "Blocker status"]].values.tolist() == [
        ["beads_rust-lr74.4", "beads_rust-lr74.3", "not in this export"]]
    assert _frame(at, "Unblocks", "Actionable")["Unblocks"].tolist() == [5]


# ---------------------------------------------------------------- build farm


def test_buildfarm_page_workers_queue_and_builds(ui_db: UiDb) -> None:
    at = _page("pages/buildfarm.py")
    now = datetime.now(UTC)
    farm = _views(ui_db, vbf.farm_totals, now).iloc[0]
    m = _metrics(at)
    assert m["Workers healthy"] == f"{int(farm['workers_healthy'])} / {int(farm['workers_total'])}" == "1 / 2"
    assert m["Queued builds"] == str(ff.QUEUE_DEPTHS[-1][1])
    assert m["Builds (6h)"] == str(len(ff.BUILDS))
    assert len(at.get("plotly_chart")) == 2
    start, end = vm.window_bounds(now, "6h")
    queue = _views(ui_db, vbf.queue_series, start, end)
    assert queue["queued_builds"].tolist() == [q for _, q in ff.QUEUE_DEPTHS]
    workers = _frame(at, "Worker", "Circuit")
    assert dict(zip(workers["Worker"], workers["Status"], strict=True)) == {"worker-a": "healthy",
                                                                           "worker-b": "unreachable"}
    builds = _frame(at, "Build", "Result")
    assert builds["Build"].tolist() == sorted((b[0] for b in ff.BUILDS), reverse=True)
    assert builds[builds["Result"] == "failed"]["Build"].tolist() == [103]


# ---------------------------------------------------------------- benchmarks


def test_benchmarks_page_names_the_slower_host(ui_db: UiDb) -> None:
    at = _page("pages/benchmarks.py")
    m = _metrics(at)
    assert m["Hosts benchmarked"] == "3" and m["Slower than their own baseline"] == "1"
    warnings = [str(w.value) for w in at.warning if "slower than its baseline" in str(w.value)]
    assert warnings == [f"**{ff.ALPHA}** is slower than its baseline: CPU 40% under its usual. An oversold or "
                        "noisy-neighbour host shows here before agents notice."]
    table = _frame(at, "Host", "CPU vs usual").set_index("Host")
    assert table.loc[ff.ALPHA, "State"] == "slower" and table.loc[ff.DEMO, "State"] == "as usual"
    assert table.loc[ff.BENCH_VPS, "State"] == "no baseline yet"
    assert pd.isna(table.loc[ff.BENCH_VPS, "CPU vs usual"])  # no earlier run: no ratio, not 100 %
    usual = sorted(cpu[ff.ALPHA] for _, cpu in ff.BENCH_RUNS[:-1])[1]  # median of the earlier three
    assert table.loc[ff.ALPHA, "CPU vs usual"] == pytest.approx(100 * 2400.0 / usual)
    assert table.loc[ff.ALPHA, "Baseline runs"] == 3 and bool(table.loc[ff.ALPHA, "Fleet machine"])
    assert not bool(table.loc[ff.BENCH_VPS, "Fleet machine"])
    assert len(at.get("plotly_chart")) == 2


def test_benchmarks_follow_the_focused_machine(ui_db: UiDb) -> None:
    at = _run(AppTest.from_file(APP, default_timeout=TIMEOUT))
    at.sidebar.selectbox[0].select(DEMO)
    _run(at)
    _page("pages/benchmarks.py", at)
    at.toggle(key="vc_bench_only_focused").set_value(True)
    _run(at)
    assert _metrics(at)["Hosts benchmarked"] == "1"
    assert _frame(at, "Host", "CPU vs usual")["Host"].tolist() == [ff.DEMO]


# ---------------------------------------------------------------- tool availability


def test_collectors_page_tool_grid(ui_db: UiDb) -> None:
    at = _page("pages/collectors.py")
    grid = _frame(at, "Machine", "caut").set_index("Machine")
    assert list(grid.index) == [ALPHA, DEMO]  # ghost never answered a check: no row, not "all absent"
    assert sorted(grid.columns) == sorted(ff.CAPABILITY_TOOLS)
    for tool in ff.CAPABILITY_TOOLS:
        assert grid.loc[ALPHA, tool] == ("1.2.3" if tool in ff.ALPHA_TOOLS else "no"), tool
        assert grid.loc[DEMO, tool] == ("1.2.3" if tool in ff.DEMO_TOOLS else "no"), tool
    assert GHOST not in grid.index


# ---------------------------------------------------------------- empty database


def test_fleet_pages_on_an_empty_database_say_no_data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = tmp_path / "data"
    Store(data / "vc.duckdb", writer_name="pytest").migrate()
    monkeypatch.setenv("VC_CONFIG", str(write_config(tmp_path / "vc.toml", data)))
    at = _run(AppTest.from_file(APP, default_timeout=TIMEOUT))
    for page in FLEET_PAGES + ["pages/collectors.py"]:
        _page(page, at)
        infos = _infos(at)
        assert errors.NO_DATA in infos, (page, infos)
        assert len(at.get("plotly_chart")) == 0, page
        if page != "pages/collectors.py":
            assert len(at.dataframe) == 0 and len(at.metric) == 0, page

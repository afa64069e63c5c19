"""The dashboard in a real browser: `streamlit run app.py` on loopback, driven by Chromium.

AppTest runs pages in-process; this checks what a person sees: the pages load over the
websocket, the frontend renders every element without an error box, navigation through the
sidebar keeps the filters, and a click in the machine table focuses that machine.
Screenshots of each page are written to the test's tmp dir (paths printed) for a human look.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

# The fixture module is imported here before pytest loads it as a plugin; have its asserts rewritten.
pytest.register_assert_rewrite("tests.ui_fixtures")

from playwright.sync_api import Browser, Page, expect, sync_playwright  # noqa: E402

from tests.ui_fixtures import DEMO, ERROR_TEXT, GHOST, UiDb  # noqa: E402

pytest_plugins = ["tests.ui_fixtures"]
pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"]
START_TIMEOUT_S = 60
WAIT_MS = 30_000


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
            return r.read().decode().strip() == "ok"
    except OSError:
        return False


@pytest.fixture(scope="module")
def server(ui_db: UiDb, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = _free_port()
    log = tmp_path_factory.mktemp("streamlit") / "server.log"
    env = {**os.environ, "VC_CONFIG": str(ui_db.config_path), "HF_HUB_OFFLINE": "1",
           "STREAMLIT_BROWSER_GATHER_USAGE_STATS": "false"}
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", "app.py", "--server.address", "127.0.0.1",
             "--server.port", str(port), "--server.headless", "true", "--server.fileWatcherType", "none",
             "--browser.gatherUsageStats", "false"],
            cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while not _healthy(url):
            assert proc.poll() is None, f"streamlit exited early:\n{log.read_text()}"
            assert time.monotonic() < deadline, f"not healthy after {START_TIMEOUT_S}s:\n{log.read_text()}"
            time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    assert Path(CHROMIUM).exists(), f"{CHROMIUM} is missing (installed by .ci/run from Debian packages)"
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    ctx = browser.new_context(viewport={"width": 1500, "height": 2000})
    p = ctx.new_page()
    p.set_default_timeout(WAIT_MS)
    try:
        yield p
    finally:
        ctx.close()


def _settled(page: Page) -> None:
    """Wait until the script run is over, then fail on any exception or error box on the page."""
    expect(page.locator('[data-testid="stApp"]')).to_have_attribute("data-test-script-state", "notRunning",
                                                                     timeout=WAIT_MS)
    page.wait_for_timeout(300)  # let the last deltas paint
    expect(page.locator('[data-testid="stApp"]')).to_have_attribute("data-test-script-state", "notRunning")
    exceptions = page.locator('[data-testid="stException"]')
    assert exceptions.count() == 0, exceptions.all_inner_texts()
    error_boxes = page.locator('[data-testid="stAlertContentError"]')
    assert error_boxes.count() == 0, error_boxes.all_inner_texts()


def _shot(page: Page, directory: Path, name: str) -> Path:
    path = directory / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    print(f"screenshot: {path}")
    return path


def _main_heading(page: Page, text: str) -> None:
    expect(page.get_by_role("heading", name=text, exact=True).first).to_be_visible()


def test_every_page_renders_with_data(server: str, page: Page, tmp_path: Path) -> None:
    page.goto(server + "/")
    _main_heading(page, "Fleet overview")
    metrics = page.locator('[data-testid="stMetric"]')
    for label in ("Fleet health", "Last poll", "Active alerts"):
        expect(metrics.filter(has_text=label).first).to_be_visible()
    expect(metrics.filter(has_text="Active alerts").first).to_contain_text("1")
    expect(metrics.filter(has_text="Fleet health").first).to_contain_text("critical")
    expect(page.get_by_text("Demo data", exact=False).first).to_be_visible()
    _settled(page)
    expect(page.locator('[data-testid="stDataFrame"]')).to_have_count(5)  # list, factors, fs, 2 process tabs
    _shot(page, tmp_path, "overview")

    # Navigate through the sidebar, as a person would; the filter bar must keep its values.
    page.locator('[data-testid="stSidebar"]').get_by_text("24h", exact=True).click()
    _settled(page)
    page.locator('[data-testid="stSidebarNav"]').get_by_role("link", name="Machine").click()
    _main_heading(page, "Machine — alpha.prod (alpha)")
    _settled(page)
    expect(page.locator(".js-plotly-plot")).to_have_count(6)
    expect(page.get_by_text("Last 24h", exact=False)).to_be_visible()
    assert "window=24h" in page.url
    _shot(page, tmp_path, "machine")

    page.locator('[data-testid="stSidebarNav"]').get_by_role("link", name="Collectors").click()
    _main_heading(page, "Collectors")
    _settled(page)
    expect(page.locator('[data-testid="stDataFrame"]')).to_have_count(4)  # status, runs, locks, tools
    expect(page.get_by_text("Write-lock contention")).to_be_visible()
    expect(page.get_by_text("Tool availability")).to_be_visible()
    _shot(page, tmp_path, "collectors")

    # Grids draw on a canvas; their accessible <table> mirrors the cells (and is what a screen reader reads).
    grids = page.locator('[data-testid="stDataFrame"]')
    status, runs = grids.nth(0), grids.nth(1)
    expect(status).to_contain_text(ERROR_TEXT)
    expect(runs).to_contain_text(ERROR_TEXT)
    page.get_by_text("Only runs with errors or warnings").click()
    expect(runs.locator("table")).to_have_attribute("aria-rowcount", "3")  # header + the error + the warning
    _settled(page)
    expect(runs).to_contain_text("load average missing from /proc/loadavg")


# Fleet pages: (sidebar link, main heading, tables, charts, text the fixture puts in one of the tables).
FLEET_PAGES = [
    ("Accounts", "Accounts", 2, 3, "alpha, demo-01"),
    ("Agents", "Agents", 5, 1, "corpus-session-1"),
    ("Repos", "Repos", 2, 0, "wezterm_automata"),
    ("Beads", "Beads", 4, 0, "beads_rust-lr74.3"),
    ("Build farm", "Build farm", 2, 2, "worker-b"),
    ("Events", "Events", 3, 2, "core.git:reset-hard"),
    ("Benchmarks", "Benchmarks", 1, 2, "vps-fra-1"),
]


def test_fleet_pages_render_with_data(server: str, page: Page, tmp_path: Path) -> None:
    page.goto(server + "/")
    _main_heading(page, "Fleet overview")
    _settled(page)
    nav = page.locator('[data-testid="stSidebarNav"]')
    for link, heading, tables, charts, text in FLEET_PAGES:
        nav.get_by_role("link", name=link, exact=True).click()
        _main_heading(page, heading)
        _settled(page)
        grids = page.locator('[data-testid="stDataFrame"]')
        expect(grids).to_have_count(tables)
        expect(page.locator(".js-plotly-plot")).to_have_count(charts)
        # Grids draw on a canvas; their accessible <table> mirrors the cells.
        expect(grids.filter(has_text=text).first).to_be_visible()
        _shot(page, tmp_path, link.lower().replace(" ", "_"))


def test_deep_link_to_a_machine_and_window(server: str, page: Page, tmp_path: Path) -> None:
    page.goto(f"{server}/machines?machine={GHOST}&window=1h")
    _main_heading(page, "Machine — ghost")
    _settled(page)
    expect(page.get_by_text("no data yet for this window")).to_have_count(2)
    expect(page.locator(".js-plotly-plot")).to_have_count(0)
    _shot(page, tmp_path, "machine_ghost")


def test_clicking_a_machine_row_focuses_it(server: str, page: Page, tmp_path: Path) -> None:
    page.goto(server + "/")
    _main_heading(page, "alpha.prod (alpha)")
    _settled(page)
    grid = page.locator('[data-testid="stDataFrame"]').first
    box = grid.bounding_box()
    assert box is not None
    # Rows are listed worst first: ghost, demo-01, alpha. Click the second row's selection cell.
    header_h = row_h = 35
    page.mouse.click(box["x"] + 15, box["y"] + header_h + row_h * 1 + row_h / 2)
    _main_heading(page, DEMO)
    _settled(page)
    expect(page.get_by_role("combobox", name="Machine")).to_have_value(DEMO)  # the sidebar follows the table
    assert f"machine={DEMO}" in page.url
    _shot(page, tmp_path, "overview_demo_focused")


def test_alerts_page_renders_with_data(server: str, page: Page, tmp_path: Path) -> None:
    page.goto(server + "/")
    _main_heading(page, "Fleet overview")
    _settled(page)
    page.locator('[data-testid="stSidebarNav"]').get_by_role("link", name="Alerts", exact=True).click()
    _main_heading(page, "Alerts")
    _settled(page)
    grids = page.locator('[data-testid="stDataFrame"]')
    # Grids draw on a canvas; their accessible <table> mirrors the cells.
    expect(grids.filter(has_text="/data on alpha is 91% full").first).to_be_visible()
    _shot(page, tmp_path, "alerts")

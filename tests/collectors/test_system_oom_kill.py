"""The local system collector's OOM-kill counter: /proc/vmstat of this machine, recorded vmstat files
for the kernels that have the counter and those that do not (< 4.13), and unusable files.

psutil does not expose the counter, so the collector reads the file itself; the file is the machine
edge, so the tests point the real `sample()` at recorded or derived copies of it.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from collectors import probe_parsers as pp
from collectors import system
from collectors.executors.local import LocalExecutor
from collectors.system import SystemCollector
from tests.toolbox import run_collector
from workbench.store import Batch, Store

REC = Path(__file__).resolve().parents[2] / "sample_data" / "probe" / "vmstat.txt"
TS = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def vmstat_without_oom_kill() -> str:
    """The recorded /proc/vmstat as a kernel before 4.13 prints it: no oom_kill line."""
    return "".join(ln for ln in REC.read_text().splitlines(keepends=True) if not ln.startswith("oom_kill "))


def take(tmp_path: Path, text: str | None, machine: str = "m1") -> tuple[dict, list[str]]:
    """One real system sample with /proc/vmstat replaced by `text` (None: no such file)."""
    path = tmp_path / f"vmstat-{machine}"
    if text is not None:
        path.write_text(text)
    res = system.sample(machine, TS, None, 0, SystemCollector().stamp, vmstat=path)
    return res.rows["sys_samples"][0], res.warnings


def test_this_machine_counter_matches_proc_vmstat() -> None:
    if not Path("/proc/vmstat").exists():
        pytest.skip("no /proc/vmstat on this machine")
    before = pp.parse_vmstat_oom_kill(Path("/proc/vmstat").read_text())
    res = run_collector(SystemCollector(), LocalExecutor("local"), options={"top_processes": 0})
    after = pp.parse_vmstat_oom_kill(Path("/proc/vmstat").read_text())
    got = res.rows["sys_samples"][0]["oom_kill_total"]
    if before is None:
        assert got is None
    else:
        assert isinstance(got, int) and before <= got <= after


def test_recorded_vmstat_gives_the_counter(tmp_path: Path) -> None:
    recorded = REC.read_text()
    row, warnings = take(tmp_path, recorded)
    line = next(ln for ln in recorded.splitlines() if ln.startswith("oom_kill "))
    assert row["oom_kill_total"] == int(line.split()[1]) and warnings == []
    row, _ = take(tmp_path, recorded.replace(line, "oom_kill 17"), "m2")
    assert row["oom_kill_total"] == 17


def test_kernel_without_the_counter_is_unknown_not_zero(tmp_path: Path, store: Store) -> None:
    old, warnings = take(tmp_path, vmstat_without_oom_kill(), "old")
    assert old["oom_kill_total"] is None and warnings == []  # not a problem: nothing to warn about each cycle
    new, _ = take(tmp_path, REC.read_text(), "new")
    b = Batch()
    b.add_rows("sys_samples", [old, new])
    assert store.write(b).inserted["sys_samples"] == 2
    with store.raw_reader() as con:
        rows = con.execute("SELECT machine_id, oom_kill_total FROM sys_samples ORDER BY machine_id").fetchall()
    assert rows == [("new", new["oom_kill_total"]), ("old", None)]
    assert new["oom_kill_total"] is not None


def test_no_proc_at_all_is_unknown_without_a_warning(tmp_path: Path) -> None:
    row, warnings = take(tmp_path, None)
    assert row["oom_kill_total"] is None and warnings == []


@pytest.mark.parametrize("text, why", [("oom_kill many\n", "not a count"), ("oom_kill 3 4\n", "not a count")])
def test_garbled_counter_warns_and_stays_unknown(tmp_path: Path, text: str, why: str) -> None:
    row, warnings = take(tmp_path, vmstat_without_oom_kill() + text)
    assert row["oom_kill_total"] is None
    assert len(warnings) == 1 and why in warnings[0]
    assert row["mem_total_bytes"] > 0  # the rest of the sample is unaffected


def test_unreadable_vmstat_warns(tmp_path: Path) -> None:
    (tmp_path / "vmstat-m1").mkdir()  # a directory where the file should be: reading it fails
    row, warnings = take(tmp_path, None)
    assert row["oom_kill_total"] is None
    assert len(warnings) == 1 and "vmstat-m1" in warnings[0]

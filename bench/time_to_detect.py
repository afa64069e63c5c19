"""Time to detect, end to end: a threshold crossing in the database → a firing row in `alerts`.

The real daemon (`vc daemon --interval 5`) runs as a subprocess on a temporary config: the local
machine only, and one rules file with a single rule on a metric this script controls,
`load5_per_core` of a test machine ("bench-machine", demo-tagged). This process is the second writer:
every second it writes that machine's system sample through `Store.write` (the same locked write
path as a collector), low at first, then at a known wall-clock time above the threshold. It polls
`alerts` for the rule firing on that machine and records seconds from the crossing sample to the
row. Then it drops the load, waits for the alert to resolve, and repeats.

Baseline: the rule's `for:` plus one interval (the crossing can land just after an evaluation, so the
daemon may see it up to one interval late, and `for:` is counted from that first evaluation). Cycle
time (collecting the local machine, writing, evaluating) comes on top.

    .venv/bin/python bench/time_to_detect.py             # 3 crossings, interval 5 s, for 10 s
    .venv/bin/python bench/time_to_detect.py --repeats 5 --for-seconds 15
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from workbench.store import Batch, Store  # noqa: E402

MACHINE = "bench-machine"
RULE = "bench_load_high"
CORES = 4
THRESHOLD = 1.5


def write_config(root: Path, for_s: float) -> Path:
    rules = root / "bench_rules.yaml"
    rules.write_text(f"""version: 1
rules:
  - id: {RULE}
    kind: threshold
    source: load5_per_core
    condition: {{op: ">", value: {THRESHOLD}}}
    for: {for_s:g}s
    keep_firing_for: 0s
    severity: warning
    summary: "{{machine_id}} load5 is {{value:.2f}}x its cores"
""")
    cfg = root / "vc.toml"
    cfg.write_text(f"""[storage]
data_dir = "{root / 'data'}"

[daemon]
keep_demo_alive = false

[alerts]
rule_files = ["{rules}"]

[[machines]]
id = "local"
ssh = "local"
tags = ["local"]
""")
    return cfg


def sample(now: datetime, load_per_core: float) -> dict:
    return dict(machine_id=MACHINE, ts=now, source="bench", schema_version=1, cpu_pct=10.0, cpu_count=CORES,
                load1=load_per_core * CORES, load5=load_per_core * CORES, mem_total_bytes=8 << 30,
                mem_used_bytes=2 << 30, swap_total_bytes=0, swap_used_bytes=0, is_demo=True)


def write_sample(store: Store, load_per_core: float) -> datetime:
    now = datetime.now(UTC)
    b = Batch()
    b.add_rows("sys_samples", [sample(now, load_per_core)])
    store.write(b)
    return now


def alert_state(store: Store, since: datetime) -> tuple[datetime | None, datetime | None]:
    """(fired_at, resolved_at) of the newest episode of the bench rule that started at or after `since`."""
    with store.raw_reader() as con:
        row = con.execute("SELECT fired_at, resolved_at FROM alerts WHERE rule_id = ? AND machine_id = ? "
                          "AND started_at >= ? ORDER BY started_at DESC LIMIT 1",
                          [RULE, MACHINE, since]).fetchone()
    return (None, None) if row is None else (row[0], row[1])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--interval", type=float, default=5.0)
    ap.add_argument("--for-seconds", type=float, default=10.0)
    ap.add_argument("--timeout", type=float, default=90.0, help="give up on one crossing after this long")
    args = ap.parse_args()

    root = Path(tempfile.mkdtemp(prefix="vc-ttd-"))
    cfg = write_config(root, args.for_seconds)
    store = Store(root / "data" / "vc.duckdb", lock_budget_s=10.0, writer_name="bench-ttd")
    store.migrate()
    b = Batch()
    b.add_upserts("machines", [dict(machine_id=MACHINE, display_name=MACHINE, tags=["demo", "bench"],
                                    is_demo=True, enabled=True, cpu_count=CORES)])
    store.write(b)

    log = (root / "daemon.log").open("w")
    daemon = subprocess.Popen([str(REPO / ".venv" / "bin" / "vc"), "--config", str(cfg), "daemon",
                               "--interval", f"{args.interval:g}"], stdout=log, stderr=subprocess.STDOUT,
                              cwd=root, start_new_session=True)
    delays: list[float] = []
    try:
        # Warm up: a few low samples so the series exists and the daemon has evaluated it.
        for _ in range(int(2 * args.interval)):
            write_sample(store, 0.5)
            time.sleep(1.0)
        for i in range(args.repeats):
            crossed = write_sample(store, 3.0)
            deadline = time.monotonic() + args.timeout
            fired = None
            while time.monotonic() < deadline and daemon.poll() is None:
                fired, _ = alert_state(store, crossed)
                if fired is not None:
                    break
                time.sleep(0.5)
                write_sample(store, 3.0)
            if fired is None:
                print(f"crossing {i + 1}: no firing alert within {args.timeout:g}s (see {root / 'daemon.log'})")
                break
            seen = datetime.now(UTC)
            delays.append((seen - crossed).total_seconds())
            print(f"crossing {i + 1}: sample above threshold at {crossed:%H:%M:%S.%f}"[:-3]
                  + f", alert firing (fired_at {fired:%H:%M:%S}) seen at {seen:%H:%M:%S}: {delays[-1]:.1f} s")
            # Back below the threshold until the alert resolves, so the next crossing is a new episode.
            deadline = time.monotonic() + args.timeout
            while time.monotonic() < deadline and daemon.poll() is None:
                write_sample(store, 0.5)
                if alert_state(store, crossed)[1] is not None:
                    break
                time.sleep(1.0)
            for _ in range(int(args.interval) + 1):
                write_sample(store, 0.5)
                time.sleep(1.0)
    finally:
        os.killpg(daemon.pid, signal.SIGTERM)
        try:
            daemon.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(daemon.pid, signal.SIGKILL)
            daemon.wait(timeout=5)
        log.close()

    baseline = args.for_seconds + args.interval
    print(f"\nrule {RULE}: load5_per_core > {THRESHOLD} for {args.for_seconds:g}s; daemon interval "
          f"{args.interval:g}s; baseline (for + interval) {baseline:.1f} s")
    if delays:
        print(f"time to detect over {len(delays)} crossing(s): median {statistics.median(delays):.1f} s, "
              f"max {max(delays):.1f} s, min {min(delays):.1f} s; median / baseline "
              f"{statistics.median(delays) / baseline:.2f}")
    print(f"data and daemon log: {root}")
    return 0 if len(delays) == args.repeats else 1


if __name__ == "__main__":
    raise SystemExit(main())

"""One poll cycle over many SSH machines: bounded concurrency against one machine at a time.

Starts `--hosts` (50) real OpenSSH servers on 127.0.0.1 (tests/sshd.py), each with its own HOME and a
toolbox of fake upstream tools printing the recorded payloads of every registered tool collector
(tests/contract_payloads.py), then runs whole `Runner` cycles (capabilities probe, basic probe,
every tool collector; one SSH connection per machine; rows written to a fresh migrated DuckDB file
per mode) with `machines_in_flight` = `--in-flight` (16) and = 1, in the same run on the same
servers. Prints hosts, collectors per host, cycle seconds, rows inserted, errors, and the speedup.

On loopback the "remote" side (sshd, shells, fake tools) runs on this machine's cores, and there is
no network latency: concurrency can only overlap what is not CPU. `--tool-latency S` makes every
fake tool sleep S seconds first, standing in for remote work and round trips.

Every server is stopped in `finally` (and by tests/sshd.py's atexit hook if this process dies);
starting is bounded by `--start-budget` seconds overall and each cycle by the collector timeouts.

    .venv/bin/python bench/ssh_poll.py                  # ~40 s on 2 cores
    .venv/bin/python bench/ssh_poll.py --tool-latency 0.2   # each tool answers after 200 ms
    .venv/bin/python bench/ssh_poll.py --hosts 20 --in-flight 8
"""

from __future__ import annotations

import argparse
import dataclasses
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the `tests` helpers (sshd, payloads)

import psutil  # noqa: E402

from collectors import registry  # noqa: E402
from collectors.runner import CycleReport, Runner  # noqa: E402
from tests.contract_payloads import machine_cases, machine_files, machine_options, machine_tools  # noqa: E402
from tests.sshd import SshdFleet, write_vc_toml  # noqa: E402
from workbench.config import load_config  # noqa: E402
from workbench.store import Store  # noqa: E402


def toml_value(v: object) -> str:
    import json

    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return repr(v)
    if isinstance(v, list):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    return json.dumps(str(v))


def run_mode(root: Path, blocks: list[str], in_flight: int, per_machine: int, timeout_s: float,
             label: str) -> tuple[CycleReport, int]:
    daemon = (f"[daemon]\nmachines_in_flight = {in_flight}\ncollectors_per_machine = {per_machine}\n"
              f"collector_timeout_seconds = {timeout_s}\n")
    path = write_vc_toml(root / f"vc-{label}.toml", blocks, data_dir=root / f"data-{label}", extra=daemon)
    cfg = load_config(path)
    store = Store.from_config(cfg, writer_name=f"bench-{label}")
    store.migrate()
    runner = Runner(cfg, store)
    runner.sync_machines()
    report = runner.run_cycle()
    return report, sum(report.inserted.values())


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--hosts", type=int, default=50)
    ap.add_argument("--in-flight", type=int, default=16, help="machines_in_flight of the concurrent mode")
    ap.add_argument("--per-machine", type=int, default=4, help="collectors_per_machine (both modes)")
    ap.add_argument("--timeout", type=float, default=30.0, help="collector_timeout_seconds (both modes)")
    ap.add_argument("--start-budget", type=float, default=300.0, help="seconds allowed to start all servers")
    ap.add_argument("--tool-latency", type=float, default=0.0,
                    help="seconds each fake tool sleeps first: remote work / WAN latency, which loopback lacks")
    ap.add_argument("--keep", action="store_true", help="keep the temp dir (configs, databases, sshd logs)")
    args = ap.parse_args(argv)
    if not 1 <= args.hosts <= 200:
        ap.error("--hosts must be within 1..200")

    cases = machine_cases()
    tools = machine_tools(cases)
    if args.tool_latency > 0:
        tools = {k: dataclasses.replace(t, sleep_s=args.tool_latency) for k, t in tools.items()}
    root = Path(tempfile.mkdtemp(prefix="vc-bench-ssh-"))
    fleet = SshdFleet(root / "sshd")
    try:
        t0 = time.monotonic()
        blocks = []
        for i in range(args.hosts):
            if time.monotonic() - t0 > args.start_budget:
                print(f"start budget of {args.start_budget:.0f}s used up after {i} servers", file=sys.stderr)
                break
            srv = fleet.add(f"bench-{i:03d}", tools=tools)
            machine_files(cases, srv.home)
            opts = machine_options(cases, srv.home)
            blocks.append(fleet.machine_toml(srv) + "[machines.options]\n"
                          + "".join(f"{k} = {toml_value(v)}\n" for k, v in sorted(opts.items())))
        start_s = time.monotonic() - t0
        sshd_rss = sum(p.memory_info().rss for s in fleet.servers.values() if s.proc
                       for p in [psutil.Process(s.proc.pid)])
        n = len(blocks)
        per_host = 1 + len(registry.tool_collectors())  # the basic probe + every tool collector
        print(f"{n} sshd servers started in {start_s:.1f}s ({sshd_rss / n / 2**20:.1f} MiB RSS each, idle); "
              f"{per_host} collectors per host ({', '.join(['probe', *registry.tool_collectors()])}), "
              f"plus the capabilities probe; tool latency {args.tool_latency:g}s", file=sys.stderr)

        results = []
        for label, in_flight in (("sequential", 1), ("concurrent", args.in_flight)):
            logins0 = sum(s.accepted_logins() for s in fleet.servers.values())
            cpu0 = time.process_time()
            report, rows = run_mode(root, blocks, in_flight, args.per_machine, args.timeout, label)
            cpu = time.process_time() - cpu0
            logins = sum(s.accepted_logins() for s in fleet.servers.values()) - logins0
            errors = [r for r in report.runs if r.status in ("error", "timeout")]
            results.append((label, in_flight, report, rows, errors, logins, cpu))
            for r in errors[:5]:
                print(f"  {label}: {r.machine_id} {r.collector} {r.status}: {r.error}", file=sys.stderr)

        base = results[0][2].duration_s
        print(f"\n{'mode':<11} {'in flight':>9} {'hosts':>6} {'coll/host':>9} {'runs':>6} {'cycle s':>8} "
              f"{'rows':>8} {'errors':>7} {'logins':>7} {'client cpu s':>12} {'speedup':>8}")
        for label, in_flight, report, rows, errors, logins, cpu in results:
            print(f"{label:<11} {in_flight:>9} {n:>6} {per_host:>9} {len(report.runs):>6} "
                  f"{report.duration_s:>8.2f} {rows:>8} {len(errors):>7} {logins:>7} {cpu:>12.2f} "
                  f"{base / report.duration_s:>7.2f}x")
        print(f"\n{psutil.cpu_count()} CPU(s), load average {' '.join(f'{x:.2f}' for x in psutil.getloadavg())}; "
              f"`client cpu s` is this process (asyncssh, parsing, DuckDB write): when it nears `cycle s`, "
              f"the single Python event loop is the bottleneck, not the machines.")
        return 0
    finally:
        fleet.close()
        if args.keep:
            print(f"kept {root}", file=sys.stderr)
        else:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())

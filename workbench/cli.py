"""`vc`: the command line. stdout carries data only; diagnostics and progress go to stderr."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

from workbench.config import REPO_ROOT, ConfigError, VcConfig, load_config

app = typer.Typer(help="Vibe Cockpit Workbench: watch a fleet of AI coding-agent machines.",
                  no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)
db_app = typer.Typer(help="Database schema: apply migrations, show their status.", no_args_is_help=True)
robot_app = typer.Typer(help="Stable machine-readable output for agents (JSON envelope or Markdown).",
                        no_args_is_help=True)
config_app = typer.Typer(help="Inspect and validate the configuration.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(robot_app, name="robot")
app.add_typer(config_app, name="config")



def _err(msg: str) -> None:
    typer.echo(msg, err=True)


class _State:
    config_path: str | None = None
    verbose: bool = False
    _cfg: VcConfig | None = None

    def cfg(self) -> VcConfig:
        if self._cfg is None:
            try:
                self._cfg = load_config(self.config_path)
            except ConfigError as exc:
                _err(f"error: {exc}")
                raise typer.Exit(2) from exc
        return self._cfg


state = _State()


@app.callback()
def _main(
    config: Annotated[str | None, typer.Option("--config", "-c", envvar="VC_CONFIG",
                                               help="Path to vc.toml (default ./vc.toml, else defaults).")] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Debug logging on stderr.")] = False,
) -> None:
    state.config_path = config
    state.verbose = verbose
    state._cfg = None
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if not verbose:
        logging.getLogger("asyncssh").setLevel(logging.WARNING)


def _store(writer: str):
    from workbench.store import Store

    return Store.from_config(state.cfg(), writer_name=writer)


def _ensure_schema(store, force: bool = False) -> None:
    from workbench.store.migrations import MigrationError

    try:
        store.migrate(force=force)
    except MigrationError as exc:
        _err(f"error: {exc}")
        raise typer.Exit(3) from exc


# ---------------- db ----------------
@db_app.command("migrate")
def db_migrate(
    force: Annotated[bool, typer.Option(help="Accept edited migrations (records the new checksum).")] = False,
) -> None:
    """Create the database if needed and apply pending migrations in order."""
    from workbench.store.migrations import MigrationError

    store = _store("vc db migrate")
    try:
        done = store.migrate(force=force)
    except MigrationError as exc:
        _err(f"error: {exc}")
        raise typer.Exit(3) from exc
    applied = f": {', '.join(f'{v:04d}' for v in done)}" if done else " (up to date)"
    _err(f"{store.db_path}: applied {len(done)} migration(s){applied}")


@db_app.command("status")
def db_status() -> None:
    """List migrations: applied (with time) or pending, and whether the file still matches."""
    store = _store("vc db status")
    rows = store.migration_status()
    typer.echo(f"database: {store.db_path}{'' if store.db_path.exists() else ' (not created yet)'}")
    for r in rows:
        state_s = "pending" if r.applied_at is None else f"applied {r.applied_at:%Y-%m-%d %H:%M:%S}"
        check = "" if r.checksum_ok is None else ("" if r.checksum_ok else "  CHECKSUM MISMATCH")
        typer.echo(f"{r.version:04d}  {r.description:<32} {state_s}{check}")
    if any(r.checksum_ok is False for r in rows):
        raise typer.Exit(3)


# ---------------- config ----------------
@config_app.command("check")
def config_check() -> None:
    """Validate the configuration and print what will be used."""
    cfg = state.cfg()
    src = cfg.source_path or "built-in defaults (no vc.toml found)"
    typer.echo(f"config: {src}")
    typer.echo(f"database: {cfg.db_path}")
    typer.echo(f"dashboard: http://{cfg.dashboard.host}:{cfg.dashboard.port}")
    typer.echo(f"daemon: every {cfg.daemon.interval_seconds:g}s, {cfg.daemon.machines_in_flight} machines in flight, "
               f"{cfg.daemon.collectors_per_machine} collectors per machine, "
               f"timeout {cfg.daemon.collector_timeout_seconds:g}s")
    from collectors.runner import collectors_for

    for m in cfg.machines:
        try:
            names = ", ".join(c.name for c in collectors_for(m))
        except ValueError as exc:
            _err(f"error: {cfg.source_path}: machines[{m.id}].collectors: {exc}")
            raise typer.Exit(2) from exc
        off = "" if m.enabled else " (disabled)"
        typer.echo(f"machine {m.id}: {m.ssh}{off}; tags [{', '.join(m.tags)}]; collectors {names}")
    typer.echo("ok")


# ---------------- collection ----------------
def _runner(with_demo: bool):
    from collectors.runner import Runner

    store = _store("vc daemon")
    _ensure_schema(store)
    hooks = []
    if with_demo and state.cfg().daemon.keep_demo_alive:
        from sample_data.demo_fleet import keep_alive_hook

        hooks.append(keep_alive_hook(store))
    runner = Runner(state.cfg(), store, hooks)
    runner.sync_machines()
    return runner


def _print_report(report, out=sys.stderr) -> None:
    print(f"cycle {report.cycle_id}: {len(report.runs)} run(s) in {report.duration_s:.2f}s, "
          f"{sum(report.inserted.values())} row(s) inserted"
          + (", SPOOLED (database busy)" if report.spooled else "")
          + (f", replayed {report.replayed} spooled batch(es)" if report.replayed else ""), file=out)
    for r in report.runs:
        line = f"  {r.machine_id:<20} {r.collector:<16} {r.status:<8} {r.rows:>6} rows {r.duration_ms:8.0f} ms"
        if r.error:
            line += f"  {r.error}"
        print(line, file=out)
        for w in r.warnings[:5]:
            print(f"      warning: {w}", file=out)


@app.command()
def collect(
    once: Annotated[bool, typer.Option("--once", help="Run exactly one cycle (the only mode; kept explicit).")] = True,
    machine: Annotated[list[str] | None,
                       typer.Option("--machine", "-m", help="Only this machine id (repeatable).")] = None,
    demo: Annotated[bool, typer.Option(help="Also advance the demo fleet to now.")] = False,
) -> None:
    """Collect from every configured machine once, write, and print a summary to stderr."""
    cfg = state.cfg()
    for mid in machine or []:
        try:
            cfg.machine(mid)
        except ConfigError as exc:
            _err(f"error: {exc}")
            raise typer.Exit(2) from exc
    runner = _runner(with_demo=demo)
    report = runner.run_cycle(machine or None)
    _print_report(report)
    if report.runs and all(r.status in ("error", "timeout") for r in report.runs):
        raise typer.Exit(1)


@app.command()
def daemon(
    interval: Annotated[float | None, typer.Option(help="Seconds between cycles (default from config).")] = None,
    cycles: Annotated[int | None, typer.Option(help="Stop after N cycles (default: run until stopped).")] = None,
) -> None:
    """Run the collector daemon: a cycle every interval until Ctrl-C / SIGTERM."""
    from collectors.runner import run_daemon
    from workbench.alerts.rules import RulesError
    from workbench.alerts.service import AlertService

    cfg = state.cfg()
    runner = _runner(with_demo=True)
    try:
        alerts = AlertService.from_config(cfg, runner.store)
    except RulesError as exc:
        _err(f"error: {exc}")
        raise typer.Exit(2) from exc
    every = interval or cfg.daemon.interval_seconds
    _err(f"vc daemon: {len(cfg.machines)} machine(s), every {every:g}s, database {cfg.db_path}")

    from workbench.views.anomaly_job import run_anomaly_job
    from workbench.views.forecast_job import run_forecast_job
    from workbench.views.health_job import run_health_job

    last_analysis = [0.0]
    last_health = [0.0]

    def on_cycle(r) -> None:
        # Anomaly detection works on 5-minute buckets: running it more often finds nothing new.
        if time.monotonic() - last_analysis[0] >= 300:
            last_analysis[0] = time.monotonic()
            try:
                n_anom = run_anomaly_job(runner.store, datetime.now(UTC))
                if n_anom:
                    _err(f"anomalies: {n_anom} new row(s)")
            except Exception as exc:  # analysis must never stop collection
                _err(f"anomalies: job failed: {exc.__class__.__name__}: {exc}")
        if time.monotonic() - last_health[0] >= 60:  # health history is kept per minute
            last_health[0] = time.monotonic()
            for name, job in (("health", lambda now: run_health_job(runner.store, cfg, now)),
                              ("forecasts", lambda now: run_forecast_job(runner.store, now))):
                try:
                    job(datetime.now(UTC))
                except Exception as exc:  # analysis must never stop collection
                    _err(f"{name}: job failed: {exc.__class__.__name__}: {exc}")
        if state.verbose:
            _print_report(r)
        else:
            _err(f"cycle {r.cycle_id}: {len(r.runs)} runs, {sum(r.inserted.values())} rows, {len(r.errors)} errors, "
                 f"{r.duration_s:.2f}s" + (" (spooled)" if r.spooled else ""))
        alerts.after_cycle(r)

    try:
        n = run_daemon(runner, every, max_cycles=cycles, on_cycle=on_cycle)
    finally:
        alerts.close()
    _err(f"vc daemon: stopped after {n} cycle(s)")


# ---------------- rules ----------------
rules_app = typer.Typer(help="Alert rules: unit-test them like `promtool test rules`.", no_args_is_help=True)
app.add_typer(rules_app, name="rules")


@rules_app.command("test")
def rules_test(
    path: Annotated[Path, typer.Argument(help="A *.test.yaml file, or a directory of them.")],
) -> None:
    """Run rule unit tests: input series in compact notation and the alerts expected at given times."""
    from workbench.alerts.rules_test import rules_test_cli

    raise typer.Exit(rules_test_cli(path))


# ---------------- demo ----------------
@app.command()
def demo(
    days: Annotated[int, typer.Option(min=1, max=90, help="Days of history.")] = 7,
    machines: Annotated[int, typer.Option(min=1, max=2000, help="Number of demo machines.")] = 12,
    seed: Annotated[int, typer.Option(help="Random seed (same seed → same fleet).")] = 42,
    if_missing: Annotated[bool, typer.Option("--if-missing", help="Do nothing when demo data already exists.")] = False,
) -> None:
    """Generate the demo fleet (seeded, deterministic) into the database."""
    from sample_data.demo_fleet import demo_present, generate

    store = _store("vc demo")
    _ensure_schema(store)
    if if_missing and demo_present(store):
        _err("demo fleet already present; nothing to do")
        return
    t0 = time.monotonic()
    last = [0.0]

    def progress(done: int, total: int) -> None:
        if time.monotonic() - last[0] > 0.5 or done == total:
            last[0] = time.monotonic()
            _err(f"  demo: {done}/{total} ({100 * done / max(total, 1):.0f}%)")

    summary = generate(store, days=days, machines=machines, seed=seed, progress=progress)
    _err(f"demo fleet: {summary} in {time.monotonic() - t0:.1f}s")


# ---------------- robot ----------------
def _robot_output(doc: dict, as_md: bool, md_fn) -> None:
    from workbench.robot.envelope import dumps

    sys.stdout.write(md_fn(doc) if as_md else dumps(doc) + "\n")


@robot_app.command("health")
def robot_health(
    json_out: Annotated[bool, typer.Option("--json", help="JSON envelope (default).")] = False,
    md: Annotated[bool, typer.Option("--md", help="Markdown summary.")] = False,
) -> None:
    """Fleet and per-machine health with explainable factors."""
    from workbench.robot import health as rh

    if json_out and md:
        _err("error: choose one of --json or --md")
        raise typer.Exit(2)
    doc = rh.build(state.cfg(), _robot_store(), datetime.now(UTC))
    _robot_output(doc, md, rh.to_markdown)


def _robot_store():
    store = _store("vc robot")
    if not store.db_path.exists():
        _err(f"error: {store.db_path}: no database yet; run `vc db migrate`, `vc demo` or `vc collect --once`")
        raise typer.Exit(4)
    return store


@robot_app.command("machines")
def robot_machines(
    json_out: Annotated[bool, typer.Option("--json", help="JSON envelope (default).")] = False,
    md: Annotated[bool, typer.Option("--md", help="Markdown table.")] = False,
) -> None:
    """Every known machine with its latest readings and health."""
    from workbench.robot import machines as rm

    doc = rm.build_list(state.cfg(), _robot_store(), datetime.now(UTC))
    _robot_output(doc, md, rm.list_markdown)


@robot_app.command("machine")
def robot_machine(
    machine_id: Annotated[str, typer.Argument(help="Machine id (see `vc robot machines`).")],
    json_out: Annotated[bool, typer.Option("--json", help="JSON envelope (default).")] = False,
    md: Annotated[bool, typer.Option("--md", help="Markdown summary.")] = False,
) -> None:
    """One machine in depth: readings, health factors, filesystems, top processes, collectors."""
    from workbench.robot import machines as rm

    doc = rm.build_one(state.cfg(), _robot_store(), datetime.now(UTC), machine_id)
    if doc is None:
        _err(f"error: unknown machine {machine_id!r}; `vc robot machines` lists the known ones")
        raise typer.Exit(2)
    _robot_output(doc, md, rm.one_markdown)


@robot_app.command("accounts")
def robot_accounts(
    json_out: Annotated[bool, typer.Option("--json", help="JSON envelope (default).")] = False,
    md: Annotated[bool, typer.Option("--md", help="Markdown table.")] = False,
) -> None:
    """Provider accounts once each (merged across machines): window usage, resets, who uses them."""
    from workbench.robot import accounts as ra

    doc = ra.build(_robot_store(), datetime.now(UTC))
    _robot_output(doc, md, ra.to_markdown)


@robot_app.command("repos")
def robot_repos(
    json_out: Annotated[bool, typer.Option("--json", help="JSON envelope (default).")] = False,
    md: Annotated[bool, typer.Option("--md", help="Markdown summary.")] = False,
    all_repos: Annotated[bool, typer.Option("--all", help="Every repo, not only those that need a look.")] = False,
) -> None:
    """Repo clones per machine: dirty, ahead, behind, diverged, broken."""
    from workbench.robot import repos as rr

    doc = rr.build(_robot_store(), datetime.now(UTC), include_all=all_repos)
    _robot_output(doc, md, rr.to_markdown)


@robot_app.command("alerts")
def robot_alerts(
    json_out: Annotated[bool, typer.Option("--json", help="JSON envelope (default).")] = False,
    md: Annotated[bool, typer.Option("--md", help="Markdown summary.")] = False,
    all_alerts: Annotated[bool, typer.Option("--all", help="Also resolved and cancelled episodes.")] = False,
) -> None:
    """Alerts (open, acked, resolved) with their ack / snooze, evidence and suggested actions."""
    from workbench.robot import alerts as ral

    doc = ral.build(_robot_store(), datetime.now(UTC), include_resolved=all_alerts)
    _robot_output(doc, md, ral.to_markdown)


@robot_app.command("triage")
def robot_triage(
    json_out: Annotated[bool, typer.Option("--json", help="JSON envelope (default).")] = False,
    md: Annotated[bool, typer.Option("--md", help="Markdown table.")] = False,
    limit: Annotated[int | None, typer.Option(min=1, help="Only the N highest-ranked items.")] = None,
) -> None:
    """What to do next, ranked: alerts, degraded machines, forecasts, failing collectors, dirty repos."""
    from workbench.robot import triage as rt

    doc = rt.build(state.cfg(), _robot_store(), datetime.now(UTC), limit=limit)
    _robot_output(doc, md, rt.to_markdown)


@app.command()
def watch(
    fmt: Annotated[str, typer.Option("--format", help="Output format (only jsonl: one event per line).")] = "jsonl",
    interval: Annotated[float, typer.Option(min=0.1, max=86400, help="Seconds between passes.")] = 30.0,
    since: Annotated[str | None, typer.Option(help="Resume after this cursor (printed with every event).")] = None,
    once: Annotated[bool, typer.Option("--once", help="One pass, then exit.")] = False,
    max_events: Annotated[int | None, typer.Option(min=1, help="Exit after N events.")] = None,
    max_passes: Annotated[int | None, typer.Option(min=1, help="Exit after N passes.")] = None,
    state_file: Annotated[Path | None, typer.Option(help="Cursor file (default <data_dir>/watch.cursor).")] = None,
    no_state: Annotated[bool, typer.Option("--no-state", help="Neither read nor write the cursor file.")] = False,
) -> None:
    """Stream alert, prediction and opportunity events as JSON lines; Ctrl-C / SIGTERM stops."""
    from workbench.robot import watch as rw

    if fmt != "jsonl":
        _err(f"error: unknown --format {fmt!r}; only jsonl is supported")
        raise typer.Exit(2)
    cfg = state.cfg()
    path = None if no_state else (state_file or rw.state_path(cfg))
    if since is not None:
        try:
            cursor = rw.Cursor.decode(since)
        except rw.CursorError as exc:
            _err(f"error: --since: {exc}")
            raise typer.Exit(2) from exc
    else:
        cursor = (rw.load_state(path) if path is not None else None) or rw.Cursor()
    res = rw.run(cfg, _robot_store(), cursor, interval, once=once, max_events=max_events, max_passes=max_passes,
                 state_file=path, err=_err)
    _err(f"vc watch: {res.events} event(s) in {res.passes} pass(es); cursor {res.cursor.encode()}")
    if once and res.errors:
        raise typer.Exit(1)


# ---------------- up ----------------
@app.command()
def up(
    port: Annotated[int | None, typer.Option(help="Dashboard port (default from config, 8501).")] = None,
    host: Annotated[str | None, typer.Option(help="Bind address (default 127.0.0.1).")] = None,
    no_daemon: Annotated[bool, typer.Option("--no-daemon", help="Dashboard only.")] = False,
) -> None:
    """Start the collector daemon and the dashboard together; Ctrl-C stops both."""
    cfg = state.cfg()
    store = _store("vc up")
    _ensure_schema(store)
    host = host or cfg.dashboard.host
    port = port or cfg.dashboard.port
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "STREAMLIT_BROWSER_GATHER_USAGE_STATS": "false"}
    if cfg.source_path:
        env["VC_CONFIG"] = str(cfg.source_path)
    vc_cmd = [sys.executable, "-m", "workbench.cli"]
    if cfg.source_path:
        vc_cmd += ["--config", str(cfg.source_path)]
    procs: list[subprocess.Popen] = []
    if not no_daemon:
        procs.append(subprocess.Popen([*vc_cmd, "daemon"], env=env))
    procs.append(subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", str(REPO_ROOT / "app.py"), "--server.address", host,
         "--server.port", str(port), "--server.headless", "true", "--browser.gatherUsageStats", "false",
         "--server.fileWatcherType", "none"], env=env, cwd=str(REPO_ROOT)))
    _err(f"vc up: dashboard on http://{host}:{port}" + ("" if no_daemon else ", collector daemon running")
         + " — Ctrl-C stops both")
    stopping = False

    def _stop(signum, _frame) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGTERM, _stop)
    code = 0
    try:
        while not stopping:
            for p in procs:
                if p.poll() is not None:
                    what = "dashboard" if "streamlit" in p.args else "daemon"
                    _err(f"vc up: the {what} exited with code {p.returncode}; stopping")
                    code = p.returncode or 1
                    stopping = True
            time.sleep(0.2)
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 15
        for p in procs:
            try:
                p.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        _err("vc up: stopped")
    raise typer.Exit(code)


def main() -> None:
    app()


if __name__ == "__main__":
    main()

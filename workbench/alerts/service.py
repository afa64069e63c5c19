"""The alerts engine as the daemon runs it: evaluate after each collection cycle, then deliver.

    svc = AlertService.from_config(cfg, store)
    run_daemon(runner, interval, on_cycle=svc.after_cycle)
    svc.close()

One instance lives as long as the daemon, so webhook workers and their queues persist across
cycles. Rule files are re-read when they change; a broken edit keeps the last good rules (and
says why in the log) instead of silencing every alert.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from workbench.alerts.config import AlertsConfig
from workbench.alerts.delivery import DeliveryReport, Notifier
from workbench.alerts.engine import evaluate_store
from workbench.alerts.model import AlertState, StateKey, Transition
from workbench.alerts.rules import DEFAULT_RULES, Rule, RulesError, load_rules

log = logging.getLogger("vc.alerts")


class AlertService:
    def __init__(self, store: Any, rule_files: Sequence[Path], notifier: Notifier, enabled: bool = True):
        self.store = store
        self.rule_files = [Path(p) for p in rule_files] or [DEFAULT_RULES]
        self.notifier = notifier
        self.enabled = enabled
        self.last_delivery: DeliveryReport | None = None
        self.last_error: str | None = None
        self.source_errors: dict[str, str] = {}  # source → error of the last evaluation
        self._rules: list[Rule] = load_rules(self.rule_files)  # fail fast at start on a bad file
        self._mtimes = self._stat()
        # After a spooled write the database lags; the daemon's own memory is then the truth.
        self._memory: dict[StateKey, AlertState] | None = None

    @classmethod
    def from_config(cls, cfg: Any, store: Any, alerts_cfg: AlertsConfig | None = None) -> AlertService:
        acfg = alerts_cfg or getattr(cfg, "alerts", None) or AlertsConfig()
        base = Path(cfg.source_path).parent if getattr(cfg, "source_path", None) else Path.cwd()
        files = [p if p.is_absolute() else base / p for p in acfg.rule_files]
        notifier = Notifier(cfg.storage.data_dir / acfg.jsonl_file, acfg.webhooks, acfg.queue_size)
        return cls(store, files, notifier, enabled=acfg.enabled)

    def _stat(self) -> list[float]:
        return [p.stat().st_mtime if p.exists() else -1.0 for p in self.rule_files]

    @property
    def rules(self) -> list[Rule]:
        mtimes = self._stat()
        if mtimes != self._mtimes:
            self._mtimes = mtimes
            try:
                self._rules = load_rules(self.rule_files)
                log.info("alert rules reloaded: %d enabled", len(self._rules))
            except RulesError as e:
                log.error("alert rules not reloaded, keeping the previous ones:\n%s", e)
        return self._rules

    def evaluate(self, now: datetime | None = None) -> list[Transition]:
        """Evaluate at `now` (default: the wall clock), store, deliver; the transitions."""
        now = now or datetime.now(UTC)
        ev = evaluate_store(self.store, self.rules, now, previous=self._memory)
        self._memory = ev.result.states if ev.spooled else None
        self.source_errors = ev.source_errors
        self.last_delivery = self.notifier.deliver(ev.transitions)
        return ev.transitions

    def after_cycle(self, _report: Any = None) -> None:
        """The daemon's `on_cycle` hook: never raises (alerts failing must not look like a failed cycle)."""
        if not self.enabled:
            return
        try:
            self.evaluate()
            self.last_error = None
        except Exception as exc:
            self.last_error = f"{type(exc).__name__}: {exc}"
            log.error("alert evaluation failed: %s", self.last_error)

    def close(self, flush_seconds: float = 2.0, join_seconds: float = 2.0) -> None:
        self.notifier.close(flush_seconds, join_seconds)

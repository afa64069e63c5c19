"""Delivering alert transitions: always to `<data_dir>/alerts.jsonl`, and to webhooks.

The JSONL file is the record a person (or `tail -f | jq`) can always rely on: every transition,
snoozed or not, one JSON object per line. Webhooks are best effort and must never slow the caller:
each URL has its own worker thread and bounded queue; `deliver` only enqueues (a full queue drops
the payload and counts it), and the worker POSTs with a timeout and a bounded number of retries
with exponential backoff. A dead or hanging endpoint therefore costs its own thread's time only.
"""

from __future__ import annotations

import http.client
import json
import logging
import os
import queue
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from workbench.alerts.config import WebhookConfig
from workbench.alerts.model import Transition, dumps
from workbench.alerts.rules import SEVERITY_RANK

log = logging.getLogger("vc.alerts.delivery")

PAYLOAD_VERSION = 1
_RETRY_STATUS = {408, 425, 429, 500, 502, 503, 504}


def jsonl_record(t: Transition) -> dict[str, Any]:
    rec = t.as_json()
    rec["delivery"] = {"suppressed": f"snoozed until {t.snoozed_until.isoformat()}" if t.snoozed else None}
    return rec


class JsonlSink:
    """Append-only transition log; one line per transition, written whole under a lock."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._lock = threading.Lock()

    def write(self, transitions: Sequence[Transition]) -> int:
        if not transitions:
            return 0
        data = "".join(dumps(jsonl_record(t)) + "\n" for t in transitions).encode("utf-8")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._lock:
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                view = memoryview(data)
                while view:
                    n = os.write(fd, view)
                    view = view[n:]
            finally:
                os.close(fd)
        return len(transitions)


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    p = Path(path)
    if not p.exists():
        return []
    return [json.loads(line) for line in p.read_text(encoding="utf-8").splitlines() if line.strip()]


@dataclass
class WebhookStats:
    url: str
    submitted: int = 0
    sent: int = 0
    failed: int = 0  # gave up after max_attempts or a permanent error
    dropped: int = 0  # queue full, or abandoned at close
    attempts: int = 0
    last_status: int | None = None
    last_error: str | None = None
    last_sent_at: str | None = None


@dataclass
class DeliveryReport:
    jsonl_written: int = 0
    queued: dict[str, int] = field(default_factory=dict)  # url → payloads queued
    suppressed: int = 0  # snoozed transitions kept out of webhooks


def _no_proxy_for_loopback(url: str) -> urllib.request.OpenerDirector:
    host = urllib.parse.urlsplit(url).hostname or ""
    if host in ("127.0.0.1", "localhost", "::1"):
        return urllib.request.build_opener(urllib.request.ProxyHandler({}))
    return urllib.request.build_opener()


class WebhookWorker:
    """One endpoint: a bounded queue and a daemon thread that POSTs with retries."""

    def __init__(self, cfg: WebhookConfig, queue_size: int, name: str):
        self.cfg = cfg
        self.stats = WebhookStats(url=cfg.url)
        self._q: queue.Queue[bytes] = queue.Queue(maxsize=queue_size)
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._opener = _no_proxy_for_loopback(cfg.url)
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def wants(self, t: Transition) -> bool:
        return (t.to_state in self.cfg.notify_on
                and SEVERITY_RANK.get(t.severity, 0) >= SEVERITY_RANK[self.cfg.min_severity])

    def submit(self, body: bytes) -> bool:
        """Never blocks: a full queue drops the payload."""
        with self._lock:
            self.stats.submitted += 1
        try:
            self._q.put_nowait(body)
            return True
        except queue.Full:
            with self._lock:
                self.stats.dropped += 1
                self.stats.last_error = "queue full: payload dropped"
            log.warning("webhook %s: queue full, payload dropped", self.cfg.url)
            return False

    def idle(self) -> bool:
        return self._q.unfinished_tasks == 0

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                body = self._q.get(timeout=0.1)
            except queue.Empty:
                continue
            try:
                self._send(body)
            except Exception as exc:  # the worker must outlive any single payload
                log.error("webhook %s: unexpected error: %s", self.cfg.url, exc)
                with self._lock:
                    self.stats.failed += 1
                    self.stats.last_error = repr(exc)
            finally:
                self._q.task_done()

    def _post(self, body: bytes) -> int:
        req = urllib.request.Request(self.cfg.url, data=body, method="POST", headers={
            "Content-Type": "application/json", "User-Agent": "vibe-cockpit-workbench/alerts",
            **self.cfg.headers})
        try:
            with self._opener.open(req, timeout=self.cfg.timeout_seconds) as resp:
                resp.read(65536)
                return int(resp.status)
        except urllib.error.HTTPError as e:
            return int(e.code)

    def _send(self, body: bytes) -> None:
        cfg = self.cfg
        for attempt in range(cfg.max_attempts):
            if self._stop.is_set():
                with self._lock:
                    self.stats.dropped += 1
                return
            with self._lock:
                self.stats.attempts += 1
            retry = True
            try:
                status = self._post(body)
                with self._lock:
                    self.stats.last_status = status
                if 200 <= status < 300:
                    with self._lock:
                        self.stats.sent += 1
                        self.stats.last_sent_at = datetime.now(UTC).isoformat()
                    return
                error = f"HTTP {status}"
                retry = status in _RETRY_STATUS
            except (OSError, http.client.HTTPException) as e:
                error = f"{type(e).__name__}: {e}"
            with self._lock:
                self.stats.last_error = error
            if not retry or attempt == cfg.max_attempts - 1:
                break
            delay = min(cfg.backoff_seconds * (2 ** attempt), cfg.max_backoff_seconds)
            log.info("webhook %s: %s; retry %d/%d in %.1fs", cfg.url, error, attempt + 2, cfg.max_attempts,
                     delay)
            if self._stop.wait(delay):
                with self._lock:
                    self.stats.dropped += 1
                return
        with self._lock:
            self.stats.failed += 1
        log.warning("webhook %s: giving up: %s", cfg.url, self.stats.last_error)

    def close(self, join_seconds: float) -> None:
        self._stop.set()
        self._thread.join(timeout=max(0.0, join_seconds))
        abandoned = 0
        while True:
            try:
                self._q.get_nowait()
            except queue.Empty:
                break
            self._q.task_done()
            abandoned += 1
        if abandoned:
            with self._lock:
                self.stats.dropped += abandoned


class Notifier:
    """Delivery for the daemon's lifetime: reuse one instance across cycles, close it at the end."""

    def __init__(self, jsonl_path: Path, webhooks: Iterable[WebhookConfig] = (), queue_size: int = 1000):
        self.jsonl = JsonlSink(jsonl_path)
        self.workers = [WebhookWorker(cfg, queue_size, f"vc-webhook-{i}") for i, cfg in enumerate(webhooks)]

    def deliver(self, transitions: Sequence[Transition]) -> DeliveryReport:
        """Log every transition, enqueue the unsnoozed ones each webhook wants; returns at once."""
        report = DeliveryReport()
        if not transitions:
            return report
        report.jsonl_written = self.jsonl.write(transitions)
        loud = [t for t in transitions if not t.snoozed]
        report.suppressed = len(transitions) - len(loud)
        for w in self.workers:
            chosen = [t for t in loud if w.wants(t)]
            if not chosen:
                continue
            body = dumps({"version": PAYLOAD_VERSION, "sender": "vibe-cockpit-workbench",
                          "sent_at": datetime.now(UTC).isoformat(),
                          "alerts": [t.as_json() for t in chosen]}).encode("utf-8")
            if w.submit(body):
                report.queued[w.cfg.url] = report.queued.get(w.cfg.url, 0) + 1
        return report

    def wait_idle(self, timeout: float) -> bool:
        """True when every queued payload was sent or given up on within `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all(w.idle() for w in self.workers):
                return True
            time.sleep(0.02)
        return all(w.idle() for w in self.workers)

    def stats(self) -> dict[str, dict[str, Any]]:
        out = {}
        for w in self.workers:
            with w._lock:
                out[w.cfg.url] = asdict(w.stats)
        return out

    def close(self, flush_seconds: float = 2.0, join_seconds: float = 2.0) -> None:
        """Give queued payloads up to `flush_seconds`, then stop; bounded however dead the endpoints."""
        if flush_seconds > 0:
            self.wait_idle(flush_seconds)
        for w in self.workers:
            w._stop.set()
        deadline = time.monotonic() + join_seconds
        for w in self.workers:
            w.close(deadline - time.monotonic())

    def __enter__(self) -> Notifier:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

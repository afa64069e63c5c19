"""The demo fleet's upstream tools: simulated machines that answer the collectors' own commands.

The demo must show accounts, repos, agents, builds and the rest the way a real fleet delivers them,
and it must keep doing so when a collector or a payload format changes. So nothing here writes
rows: `DemoExecutor` is a fake machine at the machine edge (the `Executor` interface), and every
command a collector sends is answered with a payload built from the REAL upstream example
(`upstream_templates/`), re-filled with values for that machine at that moment. The registered
collectors then run their real `collect()` on it, so rows come out of their own parse, stamp and
cursor code; a collector whose payload drifts from the example shows warnings here first.

Every value is a pure function of (seed, machine, time), hashed with demo_fleet's counter-based
noise: the history written by `vc demo` and the minutes the daemon's keep-alive adds later come
from the same functions, so the data has no seam. Incremental sources see consistent answers for
the cursor they send: rano's `--since` export filters a pure event stream, beads' `issues.jsonl`
is an atomically rewritten file (new inode per change, as br does), and rch's build history is an
append-only file with stable offsets; both files are served through the `stat`/`tail` command the
tail reader really sends. dcg's history.db and mcp_agent_mail's storage.sqlite3 are in-memory SQLite
databases with the tools' layouts, replaying a pure event stream up to the asked moment, and the
read-only reader's SELECTs run on them unchanged. Commands the fake machine does not know exit 127
("not found"), so a collector asking for something new is skipped or warns honestly instead of
being fed a guess.
"""

from __future__ import annotations

import asyncio
import copy
import hashlib
import json
import math
import re
import shlex
import sqlite3
from collections import OrderedDict
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from collectors import registry
from collectors.base import CollectContext, CollectResult, Limits
from collectors.capabilities import MARK as CAP_MARK
from collectors.capabilities import CapabilitiesCollector, CapabilityCache, CapabilityReport
from collectors.executors.base import CommandResult, Executor
from collectors.sqlite_reader import MARK as SQLITE_MARK
from collectors.sqlite_reader import SCRIPT as SQLITE_SCRIPT
from sample_data.demo_fleet import DemoMachine, Episode, fleet, load_demo, normal, smooth_noise, uniform
from workbench.store import Batch, CursorUpdate, Store

TEMPLATES = Path(__file__).resolve().parent / "upstream_templates"
CURSOR_KEY = "demo"
MARKER_SOURCE = "demo_sources"  # per machine: the time of the last simulated collection
CAPABILITIES_EVERY = timedelta(hours=6)  # how often the tool probe's rows are kept (the daemon's TTL)
RCH_HISTORY = "~/.local/share/rch/history.jsonl"
DCG_DB = "~/.config/dcg/history.db"
MAIL_DB = "~/.mcp_agent_mail_git_mailbox_repo/storage.sqlite3"
HOME = "/home/ubuntu"
_DUR = 0.05  # reported command duration: fixed, so the same inputs give the same rows

# Tables the demo's collectors fill: a new demo replaces their rows for the demo machines.
SOURCE_TABLES = (
    "account_usage_snapshots", "caam_status_snapshots", "repo_status_snapshots", "ntm_sessions_snapshot",
    "cass_health_snapshots", "cass_stats_snapshots", "cass_timeline_sessions", "net_events", "beads_issues",
    "beads_ready_snapshots", "beads_triage_snapshots", "rch_status_snapshots", "rch_workers_snapshots",
    "rch_build_events", "rch_metrics", "pt_plan_snapshots", "pt_findings", "afsc_status_snapshots",
    "afsc_installer_results", "sysmoni_snapshots", "sysmoni_top_processes", "machine_tool_capabilities",
    "dcg_events", "dcg_stats_snapshots", "mail_messages", "mail_recipients", "mail_file_reservations",
)

# Noise channels (demo_fleet uses < 300): one block per tool so no two values share a stream.
CH_ACCT, CH_CAUT, CH_RU, CH_NTM, CH_CASS, CH_RANO = 1000, 1100, 1200, 1300, 1400, 1500
CH_BEADS, CH_RCH, CH_PT, CH_AFSC, CH_SYSMONI, CH_DCG, CH_MAIL = 1600, 1700, 1800, 1900, 2000, 2100, 2200


# ---------------- small helpers ----------------
_MASK64 = (1 << 64) - 1


def _u(seed: int, key: int, channel: int, x: int) -> float:
    """One U[0,1) draw: exactly `demo_fleet.uniform` at a single point (x >= 0), in plain integers.

    The payload builders draw a few values at a time, where numpy's per-call cost would dominate.
    """
    k = (seed * 1_000_003 + key * 7919 + channel * 104_729) & 0xFFFFFFFFFFFF
    h = (max(0, int(x)) * 0x9E3779B97F4A7C15 + k) & _MASK64
    h ^= h >> 30
    h = (h * 0xBF58476D1CE4E5B9) & _MASK64
    h ^= h >> 27
    h = (h * 0x94D049BB133111EB) & _MASK64
    h ^= h >> 31
    return (h >> 11) / float(1 << 53)


def _minute(t: datetime) -> int:
    return int(t.timestamp() // 60)


def _at(minute: float) -> datetime:
    return datetime.fromtimestamp(float(minute) * 60, UTC)


def _iso(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _iso_ns(t: datetime, nanos: int) -> str:
    """br's timestamps: RFC 3339 with nine fraction digits."""
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S") + f".{nanos % 1_000_000_000:09d}Z"


def _compact(v: Any) -> str:
    return json.dumps(v, separators=(",", ":"), ensure_ascii=False)


def _human(seconds: float) -> str:
    s = max(0, int(seconds))
    if s >= 86400:
        return f"in {s // 86400} days" if s >= 2 * 86400 else "in 1 day"
    if s >= 3600:
        return f"in {s // 3600} hours" if s >= 7200 else "in 1 hour"
    return f"in {max(1, s // 60)} minutes"


@lru_cache(maxsize=64)
def _template_text(name: str) -> str:
    return (TEMPLATES / name).read_text(encoding="utf-8")


def template(name: str) -> Any:
    """A fresh copy of an upstream example payload (JSON)."""
    return json.loads(_template_text(name))


def template_lines(name: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in _template_text(name).splitlines() if line.strip()]


def _daily(m: DemoMachine, minute: float) -> float:
    """demo_fleet's working-hours curve for the machine's region (0 at night, 1 mid-day)."""
    hour = (minute % 1440) / 60.0
    shift = {"eu": 0.0, "us": -6.0, "ap": 7.0}[m.region]
    return max(0.0, math.sin(math.pi * (((hour + shift) % 24) - 7) / 14))


def _active(ep: Episode, t: datetime) -> bool:
    return ep.start <= t and (ep.end is None or t < ep.end)


# ---------------- accounts ----------------
@dataclass(frozen=True)
class Account:
    """One provider subscription, reported by every machine logged into it (caut) or holding it (caam)."""

    idx: int
    provider: str  # caut/caam provider name
    email: str
    plan: str
    window_minutes: int  # the session ("primary") window
    busy_ref: float  # share of the session window a fully busy agent is active in
    intensity: float  # % of the session window a fully busy window uses
    weekly_target: float  # typical weekly % used by the time the week resets (hot: % used at history end)
    reset_offset_h: float  # weekly resets at history end + this (mod 7 days)
    shift_h: float  # working-hours shift of the people behind it
    night_floor: float  # activity at night (agents keep running)
    hot: bool = False  # heading to its weekly limit as the history ends


ACCOUNTS: tuple[Account, ...] = (
    Account(0, "claude", "alice@vibe-demo.dev", "max", 300, 1.0, 72.0, 62.0, -50.0, 0.0, 0.10),
    Account(1, "claude", "bob@vibe-demo.dev", "max", 300, 1.0, 58.0, 48.0, 60.0, -6.0, 0.10),
    Account(2, "codex", "ops@vibe-demo.dev", "pro", 300, 1.0, 64.0, 55.0, -100.0, 0.0, 0.15),
    Account(3, "gemini", "carol@vibe-demo.dev", "pro", 1440, 0.45, 42.0, 35.0, 20.0, 7.0, 0.05),
    Account(4, "claude", "night-shift@vibe-demo.dev", "max", 300, 1.0, 93.0, 93.0, 30.0, -3.0, 0.55,
            hot=True),
)
_WEEK = 7 * 1440
_CLAUDE = (0, 1, 4)  # claude accounts, assigned round-robin to agent machines


def _activity(seed: int, acct: Account, minutes: np.ndarray) -> np.ndarray:
    hour = (minutes % 1440) / 60.0
    day = np.clip(np.sin(np.pi * (((hour + acct.shift_h) % 24) - 7) / 14), 0, None)
    weekday = ((minutes // 1440) + 3) % 7  # epoch day 0 was a Thursday; 0 = Monday here
    weekend = np.where(weekday >= 5, 0.45, 1.0)
    noise = 1 + 0.35 * smooth_noise(seed, 1000 + acct.idx, CH_ACCT, minutes, 60)
    return np.clip((acct.night_floor + (1 - acct.night_floor) * day) * weekend * noise, 0.0, None)


@lru_cache(maxsize=4096)
def _integral(seed: int, acct: Account, a: int, b: int) -> float:
    """Activity-minutes over [a, b) at 10-minute steps: how much of a window has been burned."""
    if b <= a:
        return 0.0
    steps = np.arange(a, b, 10, dtype=np.int64)
    widths = np.minimum(steps + 10, b) - steps
    return float((_activity(seed, acct, steps) * widths).sum())


@dataclass(frozen=True)
class Window:
    used_pct: float
    minutes: int
    resets_at: datetime
    pct_per_hour: float


@lru_cache(maxsize=16384)
def account_windows(seed: int, acct: Account, end_minute: int, minute: int) -> tuple[Window, Window]:
    """(session window, weekly window) of `acct` at `minute`: usage ramps with activity, drops at resets.

    Weekly windows are anchored to the history end, so the hot account is ~94% used as the history
    ends and reaches its limit some hours before its reset: a forecast has something to see.
    """
    p = acct.window_minutes
    anchor = acct.idx * 47
    ws = anchor + ((minute - anchor) // p) * p
    scale = acct.intensity / (p * acct.busy_ref)
    act_now = float(_activity(seed, acct, np.array([minute], np.int64))[0])
    primary = Window(round(min(100.0, scale * _integral(seed, acct, ws, minute)), 1), p, _at(ws + p),
                     round(scale * act_now * 60, 3))
    r0 = end_minute + int(acct.reset_offset_h * 60)
    k = (minute - r0) // _WEEK
    wws = r0 + k * _WEEK
    wwe = wws + _WEEK
    full = max(_integral(seed, acct, wws, wwe), 1e-9)
    if acct.hot and wws <= end_minute < wwe:
        # `weekly_target` % used exactly as the history ends, whatever the hour: the rest of the week's
        # activity then carries it past 100% before the reset.
        target = acct.weekly_target * full / max(_integral(seed, acct, wws, end_minute), 1e-9)
    else:
        target = (80.0 if acct.hot else acct.weekly_target) + 14 * (_u(seed, 1000 + acct.idx, CH_ACCT + 1,
                                                                        k + 1_000_000) - 0.5)
    weekly = Window(round(min(100.0, target * _integral(seed, acct, wws, minute) / full), 1), _WEEK, _at(wwe),
                    round(target * act_now * 60 / full, 3))
    return primary, weekly


# ---------------- the fleet's tools ----------------
@dataclass(frozen=True, repr=False)
class DemoWorld:
    """What a simulated machine may depend on: the fleet, its seed, its episodes and its history span."""

    seed: int
    machines: tuple[DemoMachine, ...]
    episodes: tuple[Episode, ...]
    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        # Hashed on every cache lookup: computed once (the fleet and episodes are tuples of dataclasses).
        key = (self.seed, self.machines, self.episodes, self.start, self.end)
        object.__setattr__(self, "_hash", hash(key))

    def __hash__(self) -> int:
        return self._hash  # type: ignore[attr-defined]

    @property
    def end_minute(self) -> int:
        return _minute(self.end)

    def silent(self, machine_id: str, t: datetime) -> bool:
        return any(e.kind == "silent" and e.machine_id == machine_id and _active(e, t) for e in self.episodes)


@dataclass(frozen=True)
class Profile:
    machine: DemoMachine
    agent_slot: int  # position among the agent machines, -1 for other roles
    tools: frozenset[str]
    accounts: tuple[Account, ...]  # logged in (caut; caam's active profiles)
    vault: tuple[Account, ...]  # caam's stored profiles (limits)
    repos: tuple[dict[str, Any], ...]  # ru list entries plus branch/mismatch from the status example
    beads_repos: tuple[str, ...]
    sysmoni: str | None  # go | bash
    cass_stale_since: datetime | None
    mail: str | None = None  # the mcp_agent_mail server on this machine: rust | python
    benchmarker: bool = False  # runs cloud_benchmarker's API (the control node)

    @property
    def mail_path(self) -> str | None:
        """The Rust server's default database; the Python one lives next to where it runs (a repo)."""
        if self.mail == "rust":
            return MAIL_DB
        if self.mail == "python" and self.repos:
            return f"{self.repos[0]['path']}/storage.sqlite3"
        return None

    @property
    def listed_sources(self) -> frozenset[str]:
        """Collectors without a CLI to probe that this machine is configured for (vc.toml `collectors`)."""
        return frozenset({"mcp_agent_mail"} if self.mail_path else set()) | (
            {"cloud_benchmarker"} if self.benchmarker else set())

    @property
    def providers(self) -> tuple[str, ...]:
        return tuple(a.provider for a in self.accounts)

    def options(self) -> dict[str, Any]:
        """What a machine's `options` in vc.toml would say for these sources."""
        opts: dict[str, Any] = {"top_processes": 10}
        if self.beads_repos:
            opts["beads_repos"] = list(self.beads_repos)
        if "rch" in self.tools:
            opts["rch_log_paths"] = [RCH_HISTORY]
        if self.mail == "python" and self.mail_path:
            opts["mail_db_paths"] = [self.mail_path]
        return opts


_BASICS = frozenset({"git", "python3", "timeout"})
_VERSIONS = {
    "caut": "caut 0.6.0", "caam": "caam version 0.9.4", "cass": "cass 0.11.2", "ntm": "ntm version 1.7.0",
    "br": "br 0.3.1", "bv": "bv v0.11.3", "ru": "ru 1.2.1", "dcg": "dcg 0.4.0", "pt": "pt 2.1.0",
    "rano": "rano 0.2.0", "rch": "rch 1.4.2", "tmux": "tmux 3.4", "git": "git version 2.43.0",
    "sqlite3": "3.45.1 2024-01-30 16:01:20", "python3": "Python 3.12.3",
}
_SYSTEM_BIN = {"git", "python3", "timeout", "tmux", "sqlite3", "docker"}


@lru_cache(maxsize=16)
def profiles(world: DemoWorld) -> dict[str, Profile]:
    """Which tools, accounts and repos each demo machine has (deterministic in the fleet and seed).

    Agent machines carry the agent tooling; build/CI machines the build farm; sysmoni, caam, bv, pt
    and the setup checker only on some, so tool availability differs across the fleet.
    """
    listed = template("ru.list.example.json")["data"]["repos"]
    status = {r["path"]: r for r in template("ru.status.example.json")["data"]["repos"]}
    pool = [{**r, "branch": status[r["path"]]["branch"], "mismatch": status[r["path"]]["mismatch"]}
            for r in listed[:36] if r["path"] in status]
    agents = [m for m in world.machines if m.role == "agents"]
    n_agents = len(agents)
    out: dict[str, Profile] = {}
    for m in world.machines:
        rng = np.random.default_rng(world.seed * 31 + m.index)
        k = agents.index(m) if m in agents else -1
        tools: set[str] = set(_BASICS)
        accounts: list[Account] = []
        vault: list[Account] = []
        sysmoni = None
        stale = None
        mail = None
        beads: tuple[str, ...] = ()
        if k >= 0:
            tools |= {"caut", "ru", "ntm", "cass", "rano", "br", "pt", "automated_flywheel_setup_checker",
                      "tmux", "sqlite3", "claude"}
            accounts.append(ACCOUNTS[_CLAUDE[k % 3]])
            if k % 2 == 0:
                accounts.append(ACCOUNTS[2])
                tools.add("codex")
            if k % 3 == 1:
                accounts.append(ACCOUNTS[3])
                tools.add("gemini")
            if k % 2 == 0:
                tools.add("caam")
                vault = [*accounts, ACCOUNTS[_CLAUDE[(k + 1) % 3]]]
            if k % 2 == 1:
                tools.add("bv")
            if k == 0:
                sysmoni = "go"
            elif k == 3:
                sysmoni = "bash"
            if k == 4:
                tools.discard("pt")
            if k == n_agents - 1 and n_agents > 1:
                tools.discard("automated_flywheel_setup_checker")
            if k == 1:
                stale = world.end - timedelta(hours=20)
            if k != 5:
                tools.add("dcg")
            mail = {0: "rust", 2: "rust", 3: "python"}.get(k)
            picks = rng.choice(len(pool), size=min(len(pool), 5 + k % 3), replace=False)
        elif m.role in ("build", "ci"):
            tools |= {"ru", "rch", "pt", "automated_flywheel_setup_checker", "docker", "tmux"}
            sysmoni = "go" if m.role == "build" else None
            picks = rng.choice(len(pool), size=min(len(pool), 3), replace=False)
        else:  # db, gpu
            tools |= {"automated_flywheel_setup_checker", "sqlite3"}
            if m.role == "gpu":
                tools |= {"pt", "docker"}
            sysmoni = "go"
            picks = np.array([], dtype=np.int64)
        if sysmoni:
            tools.add("sysmoni")
        repos = tuple(pool[int(i)] for i in sorted(picks))
        if k >= 0 and "br" in tools:
            beads = tuple(r["path"] for r in repos[: 2 if k % 3 == 0 else 1])
        out[m.machine_id] = Profile(m, k, frozenset(tools), tuple(accounts), tuple(vault), repos, beads,
                                    sysmoni, stale, mail, benchmarker=m.machine_id == bench_host(world))
    return out


# ---------------- caut / caam ----------------
_STATUS_URL = {"claude": "https://status.anthropic.com", "codex": "https://status.openai.com",
               "gemini": "https://status.cloud.google.com"}
_FETCH = {"claude": "oauth", "codex": "openai-web", "gemini": "oauth"}
_LOGIN = {"claude": "oauth", "codex": "google", "gemini": "google"}


def _caut_window(w: Window, t: datetime) -> dict[str, Any]:
    return {"usedPercent": w.used_pct, "remainingPercent": round(100.0 - w.used_pct, 1),
            "windowMinutes": w.minutes, "resetsAt": _iso(w.resets_at),
            "resetDescription": _human((w.resets_at - t).total_seconds())}


def caut_usage(world: DemoWorld, prof: Profile, t: datetime) -> str:
    """`caut usage --json`: the README example's envelope and provider payload, one per logged-in account."""
    env = template("caut.example.json")
    base = env["data"][0]
    minute = _minute(t)
    env["generatedAt"] = _iso(t)
    data = []
    for acct in prof.accounts:
        primary, weekly = account_windows(world.seed, acct, world.end_minute, minute)
        p = copy.deepcopy(base)
        p["provider"] = acct.provider
        p["account"] = acct.email
        p["source"] = _FETCH[acct.provider]
        block = minute // 360
        minor = _u(world.seed, 1000 + acct.idx, CH_CAUT, block) < 0.04
        p["status"] = {"indicator": "minor" if minor else "none",
                       "description": "Elevated error rates" if minor else "Operational",
                       "updatedAt": _iso(_at(block * 360)), "url": _STATUS_URL[acct.provider]}
        usage = p["usage"]
        usage["primary"] = _caut_window(primary, t)
        usage["secondary"] = _caut_window(weekly, t)
        usage["updatedAt"] = _iso(t - timedelta(seconds=5 + acct.idx))
        usage["identity"] = {"accountEmail": acct.email, "loginMethod": _LOGIN[acct.provider]}
        if acct.provider == "codex":
            p["credits"] = {"remaining": round(120 + 80 * math.cos(2 * math.pi * minute / (14 * 1440)), 2),
                            "events": [], "updatedAt": _iso(t)}
        else:
            p.pop("credits", None)
        data.append(p)
    env["data"] = data
    env["errors"] = []
    return _compact(env) + "\n"


# What a fully busy day of one agent costs per provider (USD), and tokens bought per dollar; caut
# adds these up from the agents' local logs, so each machine reports its own share.
_COST_PER_BUSY_DAY = {"claude": 64.0, "codex": 28.0, "gemini": 11.0}
_TOKENS_PER_USD = {"claude": 420_000, "codex": 380_000, "gemini": 900_000}
_COST_MODELS = {"claude": ["claude-sonnet-4-5"], "codex": ["gpt-5-codex"], "gemini": ["gemini-2.5-pro"]}
COST_DAYS = 7


def caut_cost(world: DemoWorld, prof: Profile, t: datetime) -> str:
    """`caut cost --json`: per provider of the machine's accounts, the last COST_DAYS days' running totals
    (today's grows through the day), following the same activity curve as the usage windows."""
    env = template("caut.cost.reconstructed.json")
    minute = _minute(t)
    today = minute - minute % 1440
    share = 0.6 + 0.4 * _u(world.seed, prof.machine.index, CH_CAUT + 7, 0)
    data = []
    for provider in sorted({a.provider for a in prof.accounts}):
        accts = [a for a in prof.accounts if a.provider == provider]
        daily = []
        for d in range(COST_DAYS - 1, -1, -1):
            lo = today - d * 1440
            if _at(lo + 1440) <= world.start:
                continue
            hi = min(lo + 1440, minute)
            busy = sum(_integral(world.seed, a, lo, hi) for a in accts) / 1440
            cost = round(busy * _COST_PER_BUSY_DAY[provider] * share, 2)
            tokens = int(cost * _TOKENS_PER_USD[provider])
            daily.append({"date": _at(lo).strftime("%Y-%m-%d"), "inputTokens": tokens // 20,
                          "outputTokens": tokens // 12, "cacheReadTokens": tokens - tokens // 20 - tokens // 12,
                          "totalTokens": tokens, "totalCost": cost, "modelsUsed": _COST_MODELS[provider]})
        total = round(sum(x["totalCost"] for x in daily), 2)
        data.append({"provider": provider, "source": "local", "updatedAt": _iso(t), "daily": daily,
                     "last30DaysCostUsd": total, "totals": {"totalCost": total,
                                                            "totalTokens": sum(x["totalTokens"] for x in daily)}})
    env["generatedAt"] = _iso(t)
    env["data"] = data
    return _compact(env) + "\n"


def _ns(minutes: int) -> int:
    return minutes * 60 * 1_000_000_000


def _caam_window(w: Window) -> dict[str, Any]:
    return {"utilization": round(w.used_pct / 100.0, 4), "used_percent": int(round(w.used_pct)),
            "resets_at": _iso(w.resets_at), "window_duration": _ns(w.minutes)}


def caam_limits(world: DemoWorld, prof: Profile, t: datetime) -> str:
    """`caam limits --format json`: one ProfileUsage per vault profile (caam.md's reconstructed example)."""
    base = template("caam.limits.reconstructed.json")[0]
    minute = _minute(t)
    out = []
    for provider in ("claude", "codex", "gemini"):  # caam loops providers in this order
        for acct in (a for a in prof.vault if a.provider == provider):
            primary, weekly = account_windows(world.seed, acct, world.end_minute, minute)
            pu = copy.deepcopy(base)
            pu["provider"] = provider
            pu["profile_name"] = acct.email
            u = pu["usage"]
            u["provider"] = provider
            u["plan_type"] = acct.plan
            u["primary_window"] = _caam_window(primary)
            u["secondary_window"] = _caam_window(weekly)
            u["fetched_at"] = _iso(t - timedelta(seconds=3))
            tpm = round(1500 * primary.pct_per_hour / max(acct.intensity / 5, 1e-9), 1)
            br = u["burn_rate"]
            br.update(tokens_per_minute=tpm, tokens_per_hour=round(tpm * 60, 1),
                      percent_per_hour=primary.pct_per_hour, total_tokens=int(tpm * 60),
                      first_entry=_iso(t - timedelta(hours=1)), last_entry=_iso(t - timedelta(minutes=1)))
            eta = None
            if primary.pct_per_hour > 0.5:
                eta = t + timedelta(hours=(100.0 - primary.used_pct) / primary.pct_per_hour)
            if eta is not None and eta < primary.resets_at:
                u["estimated_depletion"] = _iso(eta)
                u["depletion_confidence"] = 0.7
            else:
                u["estimated_depletion"] = "0001-01-01T00:00:00Z"
                u.pop("depletion_confidence", None)
            if provider == "codex":
                u["credits"] = {"has_credits": True, "unlimited": False,
                                "balance": round(120 + 80 * math.cos(2 * math.pi * minute / (14 * 1440)), 2)}
            out.append(pu)
    return json.dumps(out, indent=2, ensure_ascii=False) + "\n"


def caam_status(world: DemoWorld, prof: Profile, t: datetime) -> str:
    """`caam status --json`: who is logged in where, token health, and caam's own warnings."""
    base = template("caam.status.reconstructed.json")
    logged = next(x for x in base["tools"] if x.get("logged_in") and "identity" in x)
    minute = _minute(t)
    tools, warnings, recs = [], [], []
    for tool in ("codex", "claude", "gemini"):  # caam checks tools in this order
        acct = next((a for a in prof.accounts if a.provider == tool), None)
        if acct is None:
            tools.append({"tool": tool, "logged_in": False})
            continue
        entry = copy.deepcopy(logged)
        entry["tool"] = tool
        entry["active_profile"] = acct.email
        # Tokens are refreshed every morning at 08:00 UTC and expire a day later.
        expires = _at(((minute - 480) // 1440 + 1) * 1440 + 480)
        left = (expires - t).total_seconds()
        _, weekly = account_windows(world.seed, acct, world.end_minute, minute)
        status = "healthy"
        errors = 0
        if left < 3600:
            status = "warning"
            mins = max(1, int(left // 60))
            warnings.append(f"{tool}/{acct.email}: 🟡 Warning - Token expires in {mins} minutes")
        if weekly.used_pct >= 90:
            status, errors = "warning", 2
            warnings.append(f"{tool}/{acct.email}: 🟡 Warning - Weekly limit at {weekly.used_pct:.0f}%")
            spare = next((a for a in prof.vault if a.provider == tool and a != acct), None)
            if spare is not None:
                recs.append(f"Switch {tool} to profile '{spare.email}'\n  caam activate {tool} {spare.email}")
        entry["health"] = {"status": status, "expires_at": _iso(expires), "error_count": errors}
        ident = {"email": acct.email, "plan_type": acct.plan, "expires_at": _iso(expires), "provider": tool}
        if tool == "codex":
            ident["account_id"] = "acct-demo-" + hashlib.sha1(acct.email.encode()).hexdigest()[:8]
        entry["identity"] = ident
        tools.append(entry)
    doc: dict[str, Any] = {"tools": tools}
    if warnings:
        doc["warnings"] = warnings
    if recs:
        doc["recommendations"] = recs
    return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"


# ---------------- ru ----------------
def _repo_state(world: DemoWorld, prof: Profile, j: int, minute: int) -> dict[str, Any]:
    m = prof.machine
    s = world.seed
    sync_at = (m.index * 97 + 300) % 1440  # `ru sync` runs once a day per machine
    last_sync = ((minute - sync_at) // 1440) * 1440 + sync_at
    rate = 0.01 + 0.12 * _u(s, m.index, CH_RU, j)  # upstream commits per hour
    behind = min(40, int((minute - last_sync) / 60 * rate))
    ahead, dirty = 0, False
    if prof.agent_slot >= 0:
        block = minute // 180
        if _u(s, m.index, CH_RU + 1 + j, block) < 0.2:
            ahead = 1 + int(4 * _u(s, m.index, CH_RU + 20 + j, block))
        dirty = float(smooth_noise(s, m.index, CH_RU + 40 + j, np.array([minute]), 120)[0]) > 0.35
    status = ("diverged" if ahead and behind else "ahead" if ahead else "behind" if behind else "current")
    return {"status": status, "ahead": ahead, "behind": behind, "dirty": dirty}


def _ru_envelope(command: str, t: datetime, repos: list[dict[str, Any]]) -> str:
    """ru builds its envelope with printf: pretty at the top, one repo object per line (ru.md)."""
    version = template("ru.status.example.json")["version"]
    body = ",\n".join(_compact(r) for r in repos)
    return (f'{{\n  "generated_at": "{_iso(t)}",\n  "version": "{version}",\n  "output_format": "json",\n'
            f'  "command": "{command}",\n  "data": {{"total":{len(repos)},"repos":[\n{body}]}}\n}}\n')


def ru_list(world: DemoWorld, prof: Profile, t: datetime) -> str:
    return _ru_envelope("list", t, [{"repo": r["repo"], "url": r["url"], "path": r["path"]}
                                    for r in prof.repos])


def ru_status(world: DemoWorld, prof: Profile, t: datetime) -> str:
    minute = _minute(t)
    out = []
    for j, r in enumerate(prof.repos):
        st = _repo_state(world, prof, j, minute)
        out.append({"repo": r["repo"], "path": r["path"], "status": st["status"], "branch": r["branch"],
                    "ahead": st["ahead"], "behind": st["behind"], "dirty": st["dirty"],
                    "mismatch": r["mismatch"]})
    return _ru_envelope("status", t, out)


# ---------------- beads (br / bv) ----------------
_ASSIGNEES = ("GreenCastle", "IvoryIsland", "DustyBay", "BlueLake", "QuietFox", "AmberRidge")
_ISSUE_SLOT = 240  # minutes: at most one new issue per repo per slot
_ISSUE_HORIZON = 6 * 1440  # the export keeps issues created in the last 6 days (older ones are compacted)


def _repo_key(path: str) -> int:
    return int(hashlib.sha1(path.encode()).hexdigest()[:6], 16)


def _b36(n: int, width: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    for _ in range(width):
        n, r = divmod(n, 36)
        out = digits[r] + out
    return out


@dataclass(frozen=True)
class Issue:
    slot: int
    id: str
    created: int  # epoch seconds
    nanos: int
    in_progress_at: int | None
    closed_at: int | None
    blocker: str | None
    tpl: int
    priority: int
    assignee: str

    def status(self, now_s: int) -> str:
        if self.closed_at is not None and self.closed_at <= now_s:
            return "closed"
        if self.in_progress_at is not None and self.in_progress_at <= now_s:
            return "in_progress"
        return "open"

    def updated(self, now_s: int) -> int:
        moments = (self.created, self.in_progress_at, self.closed_at)
        return max(x for x in moments if x is not None and x <= now_s)


@lru_cache(maxsize=1)
def _issue_templates() -> tuple[dict[str, Any], ...]:
    return tuple(x for x in template_lines("br.issues.example.jsonl") if x.get("status") != "tombstone")


@lru_cache(maxsize=65536)
def _issue(seed: int, path: str, slot: int) -> Issue | None:
    rk = _repo_key(path)
    if _u(seed, rk, CH_BEADS, slot) >= 0.45:
        return None
    created_min = slot * _ISSUE_SLOT + int(_ISSUE_SLOT * _u(seed, rk, CH_BEADS + 1, slot))
    created = created_min * 60 + int(60 * _u(seed, rk, CH_BEADS + 2, slot))
    ip = closed = None
    if _u(seed, rk, CH_BEADS + 3, slot) < 0.85:
        ip = created + int(60 * (30 + 600 * _u(seed, rk, CH_BEADS + 4, slot)))
        if _u(seed, rk, CH_BEADS + 5, slot) < 0.85:
            closed = ip + int(60 * (60 + 1200 * _u(seed, rk, CH_BEADS + 6, slot)))
    blocker = None
    if _u(seed, rk, CH_BEADS + 7, slot) < 0.25:
        for back in range(1, 4):
            prev = _issue(seed, path, slot - back)
            if prev is not None:
                blocker = prev.id
                break
    tpls = _issue_templates()
    tpl = slot % len(tpls)
    prefix = path.rstrip("/").rsplit("/", 1)[-1]
    iid = f"{prefix}-{_b36(int(_u(seed, rk, CH_BEADS + 8, slot) * 36 ** 4), 4)}"
    prio = int(tpls[tpl].get("priority", 2))
    nanos = int(_u(seed, rk, CH_BEADS + 9, slot) * 1e9)
    assignee = _ASSIGNEES[int(_u(seed, rk, CH_BEADS + 10, slot) * len(_ASSIGNEES))]
    return Issue(slot, iid, created, nanos, ip, closed, blocker, tpl, prio, assignee)


def issues_at(seed: int, path: str, minute: int) -> list[Issue]:
    """The repo's issues as br's export holds them at `minute` (created and within the horizon)."""
    now_s = minute * 60
    first = (minute - _ISSUE_HORIZON) // _ISSUE_SLOT
    out = []
    for slot in range(first, minute // _ISSUE_SLOT + 1):
        it = _issue(seed, path, slot)
        if it is not None and it.created <= now_s and it.created >= (minute - _ISSUE_HORIZON) * 60:
            out.append(it)
    return out


def _ts_of(it: Issue, s: int) -> str:
    return _iso_ns(datetime.fromtimestamp(s, UTC), it.nanos + (s - it.created) * 7919)


def issue_line(it: Issue, now_s: int) -> dict[str, Any]:
    """One `.beads/issues.jsonl` object in br's serde field order, on the shape of a real exported line."""
    tpl = _issue_templates()[it.tpl]
    st = it.status(now_s)
    obj: dict[str, Any] = {"id": it.id, "title": tpl["title"]}
    if "description" in tpl:
        obj["description"] = tpl["description"]
    obj.update(status=st, priority=it.priority, issue_type=tpl["issue_type"])
    if st != "open":
        obj["assignee"] = it.assignee
    if "estimated_minutes" in tpl:
        obj["estimated_minutes"] = tpl["estimated_minutes"]
    obj.update(created_at=_ts_of(it, it.created), created_by="ubuntu",
               updated_at=_ts_of(it, it.updated(now_s)))
    if st == "closed":
        assert it.closed_at is not None
        obj["closed_at"] = _ts_of(it, it.closed_at)
        obj["close_reason"] = "Done"
    obj.update(source_repo=".", compaction_level=0, original_size=0)
    if tpl.get("labels"):
        obj["labels"] = tpl["labels"]
    if it.blocker:
        obj["dependencies"] = [{"issue_id": it.id, "depends_on_id": it.blocker, "type": "blocks",
                                "created_at": _ts_of(it, it.created), "created_by": "ubuntu"}]
    return obj


@lru_cache(maxsize=512)
def beads_export(seed: int, path: str, minute: int) -> bytes:
    """The whole `.beads/issues.jsonl` at `minute` (br rewrites it atomically on every change)."""
    now_s = minute * 60
    return "".join(_compact(issue_line(it, now_s)) + "\n" for it in issues_at(seed, path, minute)).encode()


def ready_issues(seed: int, path: str, minute: int) -> list[Issue]:
    """br's rule, as far as the demo needs it: open or in progress, and no blocker still open."""
    now_s = minute * 60
    issues = issues_at(seed, path, minute)
    open_ids = {it.id for it in issues if it.status(now_s) != "closed"}
    ready = [it for it in issues if it.status(now_s) != "closed" and it.blocker not in open_ids]
    return sorted(ready, key=lambda it: (it.priority, it.created))


def br_ready(world: DemoWorld, path: str, t: datetime) -> str:
    """`br ready --json`: a pretty top-level array of ReadyIssue, keys in alphabetical order."""
    minute = _minute(t)
    now_s = minute * 60
    out = []
    for it in ready_issues(world.seed, path, minute):
        line = issue_line(it, now_s)
        item = {k: line[k] for k in ("created_at", "created_by", "id", "issue_type", "priority", "status",
                                      "title", "updated_at")}
        for k in ("assignee", "description", "estimated_minutes"):
            if k in line:
                item[k] = line[k]
        out.append(dict(sorted(item.items())))
    return json.dumps(out, indent=2, ensure_ascii=False) + "\n"


def bv_triage(world: DemoWorld, path: str, t: datetime) -> str:
    """`bv --robot-triage`: bv.md's reconstructed envelope, filled from the same issues."""
    doc = template("bv.triage.reconstructed.json")
    minute = _minute(t)
    now_s = minute * 60
    issues = issues_at(world.seed, path, minute)
    ready = ready_issues(world.seed, path, minute)
    by_status: dict[str, int] = {}
    for it in issues:
        by_status[it.status(now_s)] = by_status.get(it.status(now_s), 0) + 1
    not_closed = sum(1 for it in issues if it.status(now_s) != "closed")
    blocked = not_closed - len(ready)
    blocks = {it.blocker for it in issues if it.blocker and it.status(now_s) != "closed"}
    titles = {it.id: _issue_templates()[it.tpl]["title"] for it in issues}
    picks = ready[:3]
    tri = doc["triage"]
    doc["generated_at"] = _iso(t)
    doc["data_hash"] = hashlib.sha256(beads_export(world.seed, path, minute)).hexdigest()[:16]
    tri["meta"].update(generated_at=_iso(t), issue_count=len(issues))
    score = [round(0.7 - 0.12 * i, 2) for i in range(len(picks))]
    tri["quick_ref"].update(
        open_count=by_status.get("open", 0), actionable_count=len(ready), blocked_count=blocked,
        in_progress_count=by_status.get("in_progress", 0), not_closed_count=not_closed,
        not_actionable_count=blocked,
        top_picks=[{"id": it.id, "title": titles[it.id], "score": sc,
                    "reasons": ["Unblocks 1 issue"] if it.id in blocks else ["High priority"],
                    "unblocks": 1 if it.id in blocks else 0} for it, sc in zip(picks, score, strict=True)])
    rec_tpl = tri["recommendations"][0]
    tri["recommendations"] = [{**copy.deepcopy(rec_tpl), "id": it.id, "title": titles[it.id],
                               "type": _issue_templates()[it.tpl]["issue_type"], "status": it.status(now_s),
                               "priority": it.priority,
                               "labels": _issue_templates()[it.tpl].get("labels", []),
                               "score": sc, "unblocks_ids": [], "reasons": ["High priority"]}
                              for it, sc in zip(picks, score, strict=True)]
    tri["blockers_to_clear"] = [{"id": b, "title": titles.get(b, b), "unblocks_count": 1, "unblocks_ids": [],
                                 "actionable": True} for b in sorted(blocks)]
    counts = tri["project_health"]["counts"]
    counts.update(total=len(issues), open=by_status.get("open", 0), closed=by_status.get("closed", 0),
                  blocked=blocked, actionable=len(ready), not_closed=not_closed, dependency_blocked=blocked,
                  by_status=by_status)
    week_ago = now_s - 7 * 86400
    tri["project_health"]["velocity"] = {
        "closed_last_7_days": sum(1 for it in issues
                                  if it.closed_at is not None and week_ago <= it.closed_at <= now_s),
        "closed_last_30_days": sum(1 for it in issues if it.closed_at is not None and it.closed_at <= now_s),
        "avg_days_to_close": 0.9}
    tri["project_health"]["staleness"] = {
        "stale_count": sum(1 for it in issues
                           if it.status(now_s) != "closed" and it.updated(now_s) < now_s - 3 * 86400),
        "threshold_days": 3}
    if picks:
        top = picks[0].id
        tri["commands"].update(claim_top=f"CI=1 br update {top} --status in_progress --json",
                               show_top=f"CI=1 br show {top} --json")
    return _compact(doc) + "\n"


# ---------------- ntm ----------------
_VARIANT = {"claude": "opus-4.1", "codex": "gpt-5-codex", "gemini": "gemini-2.5-pro"}


def _panes(prof: Profile) -> list[tuple[str, list[str]]]:
    """(session name, agent type per pane) for an agent machine."""
    k = prof.agent_slot
    types = ["claude", *(p for p in prof.providers if p != "claude"), "claude"]
    out = []
    for i in range(2 + k % 2):
        name = prof.repos[i % len(prof.repos)]["repo"].rsplit("/", 1)[-1] if prof.repos else f"work-{i}"
        if any(name == n for n, _ in out):
            name = f"{name}-{i}"
        out.append((name, [types[(i + j) % len(types)] for j in range(3 + (k + i) % 2)]))
    return out


def ntm_snapshot(world: DemoWorld, prof: Profile, t: datetime) -> str:
    """`ntm --robot-snapshot`: the token-corpus snapshot, with this machine's sessions and panes."""
    doc = template("ntm.snapshot.example.json")
    agent_tpl = doc["sessions"][0]["agents"][0]
    m, s = prof.machine, world.seed
    minute = _minute(t)
    daily = _daily(m, minute)
    beads_ids: list[str] = []
    if prof.beads_repos:
        beads_ids = [it.id for it in ready_issues(s, prof.beads_repos[0], minute)]
    sessions, alerts = [], []
    by_state: dict[str, int] = {}
    by_type: dict[str, int] = {}
    for i, (name, types) in enumerate(_panes(prof)):
        agents = []
        for j, kind in enumerate(types):
            key = m.index * 100 + i * 10 + j
            length = 150 + int(270 * _u(s, key, CH_NTM, 0))
            phase = int(length * _u(s, key, CH_NTM + 1, 0))
            context = round(6 + 88 * (((minute + phase) % length) / length), 1)
            ub = _u(s, key, CH_NTM + 2, minute // 10)
            p_active = 0.15 + 0.65 * daily
            state = ("error" if ub < 0.015 else "active" if ub < 0.015 + p_active
                     else "waiting" if ub < 0.165 + p_active else "idle")
            lo, hi = {"active": (1, 30), "waiting": (30, 600), "idle": (60, 3000),
                      "error": (300, 1800)}[state]
            ua = _u(s, key, CH_NTM + 3, minute)
            a: dict[str, Any] = {"pane": f"{i}.{j + 1}", "type": kind, "variant": _VARIANT[kind],
                                 "type_confidence": agent_tpl["type_confidence"],
                                 "type_method": agent_tpl["type_method"], "state": state,
                                 "last_output_age_sec": int(lo + ua * (hi - lo)),
                                 "output_tail_lines": agent_tpl["output_tail_lines"],
                                 "context_percent": context}
            if state in ("active", "waiting") and beads_ids:
                a["current_bead"] = beads_ids[(i + j) % len(beads_ids)]
            a["pending_mail"] = int(3 * ua) if state == "waiting" else 0
            agents.append(a)
            by_state[state] = by_state.get(state, 0) + 1
            by_type[kind] = by_type.get(kind, 0) + 1
            if context >= 85:
                alerts.append(("context_high", "warning", name, a["pane"]))
            if state == "error":
                alerts.append(("agent_stuck", "critical", name, a["pane"]))
        sessions.append({"name": name, "attached": i == 0, "agents": agents})
    doc["timestamp"] = doc["ts"] = _iso(t)
    cursor = max(1, minute - _minute(world.start) + 1000)
    doc["latest_cursor"] = cursor
    doc["replay_window"].update(oldest_cursor=max(1, cursor - 60), latest_cursor=cursor,
                                event_count=min(cursor, 60),
                                oldest_timestamp=_iso(t - timedelta(hours=1)), latest_timestamp=_iso(t))
    doc["sessions"] = sessions
    total = sum(by_type.values())
    summ = doc["summary"]
    summ.update(total_sessions=len(sessions), total_agents=total, attached_count=1,
                claude_count=by_type.get("claude", 0), codex_count=by_type.get("codex", 0),
                gemini_count=by_type.get("gemini", 0), cursor_count=0, agents_by_state=by_state,
                agents_by_type=by_type, alerts_active=len(alerts),
                health_score=round(1.0 - 0.1 * len(alerts), 2),
                health_status="healthy" if not alerts else "degraded")
    if prof.beads_repos:
        path = prof.beads_repos[0]
        issues = issues_at(s, path, minute)
        now_s = minute * 60
        ready = ready_issues(s, path, minute)
        tpls = _issue_templates()

        def item(it: Issue) -> dict[str, Any]:
            return {"id": it.id, "title": tpls[it.tpl]["title"], "priority": it.priority,
                    "type": tpls[it.tpl]["issue_type"], "labels": tpls[it.tpl].get("labels", [])}

        doc["work"] = {"ready": [item(it) for it in ready[:5]], "blocked": [],
                       "in_progress": [item(it) for it in issues if it.status(now_s) == "in_progress"][:5],
                       "available": True}
        counts = {st: sum(1 for it in issues if it.status(now_s) == st)
                  for st in ("open", "in_progress", "closed")}
        doc["beads_summary"] = {"available": True, "project": path.rsplit("/", 1)[-1], "total": len(issues),
                                "open": counts["open"], "in_progress": counts["in_progress"],
                                "blocked": len(issues) - counts["closed"] - len(ready), "ready": len(ready),
                                "closed": counts["closed"]}
        summ.update(ready_work=len(ready), in_progress=counts["in_progress"])
    else:
        doc["work"] = {"ready": [], "blocked": [], "in_progress": [], "available": False,
                       "reason": "br not found"}
        doc.pop("beads_summary", None)
        summ.update(ready_work=0, in_progress=0)
    doc["alerts_detailed"] = [
        {"id": f"alert-{n}", "type": kind, "severity": sev,
         "message": f"Agent in pane {pane} of {sess} needs attention", "session": sess, "pane": pane,
         "created_at": _iso(t), "duration_ms": 600000, "count": 1}
        for n, (kind, sev, sess, pane) in enumerate(alerts)]
    sev_counts = {"critical": 0, "info": 0, "warning": 0}
    type_counts: dict[str, int] = {}
    for kind, sev, _, _ in alerts:
        sev_counts[sev] += 1
        type_counts[kind] = type_counts.get(kind, 0) + 1
    doc["alert_summary"] = {"total_active": len(alerts), "by_severity": sev_counts, "by_type": type_counts}
    return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"


# ---------------- cass ----------------
_SESSION_SLOT = 45  # minutes: at most one new agent session per machine per slot
_AGENT_SLUG = {"claude": "claude_code", "codex": "codex", "gemini": "gemini"}
_TITLES = ("Fix flaky integration test", "Add retry to the sync client", "Refactor config loading",
           "Investigate memory growth in worker", "Implement pagination for list endpoint",
           "Write migration for new column", "Speed up cold start", "Review and tidy error messages",
           "Port parser to the new schema", "Add tracing around the build step")
_CASS_INSTALL = timedelta(days=30)  # the archive predates the demo history by this much
_PLACEHOLDERS_INT = {"[LATENCY_MS]": 14, "[AGE_SECONDS]": 0, "[LIVE_COUNTER]": 8, "[LIVE_BYTES]": 268435456}


def _fill_placeholders(value: Any, repo: str, ts: str) -> Any:
    """cass's golden files redact volatile values; put typed, plausible ones back."""
    if isinstance(value, dict):
        return {k: _fill_placeholders(v, repo, ts) for k, v in value.items()}
    if isinstance(value, list):
        return [_fill_placeholders(v, repo, ts) for v in value]
    if isinstance(value, str):
        if value in _PLACEHOLDERS_INT:
            return _PLACEHOLDERS_INT[value]
        if value == "[TIMESTAMP]":
            return ts
        return value.replace("[TEST_HOME]", HOME).replace("[REPO]", repo)
    return value


@lru_cache(maxsize=8)
def _cass_template(name: str) -> str:
    return _compact(_fill_placeholders(template(name), "/data/projects", "1970-01-01T00:00:00Z"))


@dataclass(frozen=True)
class CassSessions:
    ids: np.ndarray
    start: np.ndarray  # epoch minutes
    duration: np.ndarray  # minutes
    messages: np.ndarray
    agent: np.ndarray  # index into the machine's providers
    repo: np.ndarray


def cass_sessions(world: DemoWorld, prof: Profile, lo: int, hi: int) -> CassSessions:
    """Agent sessions started in [lo, hi] epoch minutes on this machine (busier in working hours)."""
    m, s = prof.machine, world.seed
    slots = np.arange(max(0, lo // _SESSION_SLOT - 1), hi // _SESSION_SLOT + 1, dtype=np.int64)
    hour = ((slots * _SESSION_SLOT) % 1440) / 60.0
    shift = {"eu": 0.0, "us": -6.0, "ap": 7.0}[m.region]
    daily = np.clip(np.sin(np.pi * (((hour + shift) % 24) - 7) / 14), 0, None)
    keep = uniform(s, m.index, CH_CASS, slots) < 0.04 + 0.22 * daily
    slots = slots[keep]
    start = slots * _SESSION_SLOT + (40 * uniform(s, m.index, CH_CASS + 1, slots)).astype(np.int64)
    duration = 15 + (180 * uniform(s, m.index, CH_CASS + 2, slots)).astype(np.int64)
    messages = (4 + duration * 0.8 * (0.5 + uniform(s, m.index, CH_CASS + 3, slots))).astype(np.int64)
    n_agents = max(1, len(prof.providers))
    agent = (n_agents * uniform(s, m.index, CH_CASS + 4, slots)).astype(np.int64)
    repo = (max(1, len(prof.repos)) * uniform(s, m.index, CH_CASS + 5, slots)).astype(np.int64)
    sel = (start >= lo) & (start <= hi)
    return CassSessions(slots[sel], start[sel], duration[sel], messages[sel], agent[sel], repo[sel])


def _cass_now(prof: Profile, t: datetime) -> datetime:
    """What the archive has seen: a machine whose indexer stalled stops at the stall."""
    return min(t, prof.cass_stale_since) if prof.cass_stale_since else t


@lru_cache(maxsize=256)
def _cass_before(world: DemoWorld, machine_id: str) -> tuple[int, int, tuple[int, ...], tuple[int, ...]]:
    """The archive as the history starts: (conversations, messages, per-agent and per-repo session counts)."""
    prof = profiles(world)[machine_id]
    ses = cass_sessions(world, prof, _minute(world.start - _CASS_INSTALL), _minute(world.start) - 1)
    return (len(ses.ids), int(ses.messages.sum()),
            tuple(np.bincount(ses.agent, minlength=max(1, len(prof.providers))).tolist()),
            tuple(np.bincount(ses.repo, minlength=max(1, len(prof.repos))).tolist()))


def _cass_archive(world: DemoWorld, prof: Profile, t: datetime) -> tuple[int, int, list[int], list[int]]:
    """(conversations, messages, sessions per agent, sessions per repo) in the archive at `t`."""
    conv0, msg0, agents0, repos0 = _cass_before(world, prof.machine.machine_id)
    ses = cass_sessions(world, prof, _minute(world.start), _minute(t))
    frac = np.clip((_minute(t) - ses.start) / np.maximum(ses.duration, 1), 0, 1)
    base = 150 + 40 * prof.machine.index
    agents = np.bincount(ses.agent, minlength=len(agents0)) + np.array(agents0)
    repos = np.bincount(ses.repo, minlength=len(repos0)) + np.array(repos0)
    return (base + conv0 + len(ses.ids), base * 60 + msg0 + int((ses.messages * frac).sum()),
            agents.tolist(), repos.tolist())


def _cass_counts(world: DemoWorld, prof: Profile, t: datetime) -> tuple[int, int]:
    conversations, messages, _, _ = _cass_archive(world, prof, t)
    return conversations, messages


def cass_health(world: DemoWorld, prof: Profile, t: datetime) -> tuple[str, int]:
    """`cass health --json` (the golden file, initialized); one machine's index goes stale (exit 1 then)."""
    doc = json.loads(_cass_template("cass.health.example.json"))
    minute = _minute(t)
    seen = _cass_now(prof, t)
    conversations, messages = _cass_counts(world, prof, seen)
    stale_since = prof.cass_stale_since if prof.cass_stale_since and t > prof.cass_stale_since else None
    if stale_since:
        age = int((t - stale_since).total_seconds())
    else:
        age = int(20 + 280 * _u(world.seed, prof.machine.index, CH_CASS + 10, minute))
    threshold = doc["state"]["index"]["stale_threshold_seconds"]
    stale = age > threshold
    pending = 0 if not stale else len(cass_sessions(world, prof, _minute(stale_since or t), minute).ids)
    data_dir = f"{HOME}/.local/share/coding-agent-search"
    healthy = not stale
    doc.update(status="healthy" if healthy else "degraded", healthy=healthy,
               health_level="healthy" if healthy else "degraded", initialized=True, errors=[],
               warnings=[] if healthy else [f"index is stale: last indexed {age // 3600}h ago; "
                                            f"{pending} sessions pending"],
               explanation=("Archive and lexical index are current." if healthy else
                            "The lexical index stopped updating; new sessions are not searchable."),
               recommended_action=None if healthy else "Run 'cass index' to catch the index up.",
               data_dir=data_dir,
               latency_ms=int(8 + 30 * _u(world.seed, prof.machine.index, CH_CASS + 11, minute)))
    rc = doc["recommended_commands"][1]
    doc["recommended_commands"] = [] if healthy else [{
        **rc, "id": "refresh-index", "command": f"cass index --json --data-dir {data_dir}",
        "purpose": "Index the sessions that arrived since the stall.",
        "safety": "writes-cass-archive-and-derived-index"}]
    db = {"exists": True, "opened": True, "conversations": conversations, "messages": messages}
    doc["db"].update(db)
    doc["state"]["database"].update(db)
    last = (stale_since or t) - timedelta(seconds=0 if stale_since else age)
    doc["state"]["index"].update(exists=True, status="ready", reason=None, fresh=not stale, stale=stale,
                                 last_indexed_at=_iso(last), age_seconds=age, documents=messages)
    doc["state"]["pending"].update(sessions=pending, watch_active=healthy)
    doc["state"]["_meta"]["timestamp"] = _iso(t)
    doc["coverage_risk"]["status"] = "ok"
    doc["coverage_risk"]["archive_conversation_count"] = conversations
    return _compact(doc) + "\n", 0 if healthy else 1


def cass_stats(world: DemoWorld, prof: Profile, t: datetime) -> str:
    """`cass stats --json`: the golden stats payload with this archive's counts."""
    doc = json.loads(_cass_template("cass.stats.example.json"))
    seen = _cass_now(prof, t)
    install = world.start - _CASS_INSTALL
    conversations, messages, agents, repos = _cass_archive(world, prof, seen)
    base = 150 + 40 * prof.machine.index
    by_agent: dict[str, int] = {}
    for i, n in enumerate(agents):
        name = _AGENT_SLUG[prof.providers[i]] if prof.providers else "claude_code"
        by_agent[name] = by_agent.get(name, 0) + n + (base if i == 0 else 0)
    by_repo = {prof.repos[i]["path"]: n for i, n in enumerate(repos) if n and prof.repos}
    doc.update(conversations=conversations, messages=messages,
               by_agent=[{"agent": k, "count": v}
                         for k, v in sorted(by_agent.items(), key=lambda kv: -kv[1])],
               top_workspaces=[{"workspace": k, "count": v}
                               for k, v in sorted(by_repo.items(), key=lambda kv: -kv[1])[:10]],
               date_range={"oldest": _iso(install - timedelta(days=90)), "newest": _iso(seen)},
               db_path=f"{HOME}/.local/share/coding-agent-search/agent_search.db")
    doc["raw_mirror"].update(initialized=True,
                             root_path=f"{HOME}/.local/share/coding-agent-search/raw-mirror/v1",
                             total_storage_bytes=messages * 2200, manifest_count=conversations,
                             manifest_bytes=conversations * 900, unique_blob_count=conversations,
                             total_blob_bytes=messages * 2000, largest_blob_bytes=4_800_000,
                             oldest_capture_at_ms=int(install.timestamp() * 1000),
                             newest_capture_at_ms=int(seen.timestamp() * 1000),
                             oldest_source_mtime_ms=int(install.timestamp() * 1000),
                             newest_source_mtime_ms=int(seen.timestamp() * 1000))
    return json.dumps(doc, indent=2) + "\n"


def cass_timeline(world: DemoWorld, prof: Profile, t: datetime) -> str:
    """`cass timeline --json --group-by none`: cass.md's reconstructed items, flat form, last 7 days."""
    tpl = template("cass.timeline.reconstructed.json")
    item_tpl = next(iter(tpl["groups"].values()))[0]
    seen = _cass_now(prof, t)
    lo = t - timedelta(days=7)
    ses = cass_sessions(world, prof, _minute(lo), _minute(seen))
    now = _minute(seen)
    items = []
    cols = (ses.ids, ses.start, ses.duration, ses.messages, ses.agent, ses.repo)
    for sid, st, dur, msgs, a, r in zip(*(c.tolist() for c in cols), strict=True):
        ended = st + dur if st + dur <= now else None
        agent = _AGENT_SLUG[prof.providers[a]] if prof.providers else "claude_code"
        repo = prof.repos[r]["path"].rsplit("/", 1)[-1] if prof.repos else "scratch"
        folder = {"claude_code": ".claude/projects", "codex": ".codex/sessions",
                  "gemini": ".gemini/tmp"}[agent]
        item = {**item_tpl, "id": int(sid), "agent": agent, "title": _TITLES[sid % len(_TITLES)],
                "started_at": st * 60_000, "ended_at": ended * 60_000 if ended else None,
                "source_path": f"{HOME}/{folder}/{repo}/{sid:x}.jsonl",
                "message_count": int(msgs * min(1.0, (now - st) / max(dur, 1))),
                "source_id": "local", "origin_kind": "local", "origin_host": None,
                "duration_seconds": (ended - st) * 60 if ended else None}
        items.append(item)
    doc = {"range": {"start": int(lo.timestamp() * 1000), "end": int(t.timestamp() * 1000)},
           "total_sessions": len(items), "sessions": items}
    return _compact(doc) + "\n"


# ---------------- rano ----------------
_PROVIDER_NET = {"claude": "anthropic", "codex": "openai", "gemini": "google"}


@lru_cache(maxsize=1)
def _rano_by_comm() -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for line in template_lines("rano.export.example.jsonl"):
        if line["event"] == "connect":
            out.setdefault(line["comm"], line)
    return out


def rano_events(world: DemoWorld, prof: Profile, lo_s: int, hi_s: int) -> list[dict[str, Any]]:
    """Connect/close events with lo_s <= ts <= hi_s (epoch seconds), in time order: a pure stream."""
    m, s = prof.machine, world.seed
    minutes = np.arange(max(0, lo_s // 60 - 16), hi_s // 60 + 1, dtype=np.int64)
    hour = (minutes % 1440) / 60.0
    shift = {"eu": 0.0, "us": -6.0, "ap": 7.0}[m.region]
    daily = np.clip(np.sin(np.pi * (((hour + shift) % 24) - 7) / 14), 0, None)
    minutes = minutes[uniform(s, m.index, CH_RANO, minutes) < 0.015 + 0.06 * daily]
    if not len(minutes):
        return []
    sec = (60 * uniform(s, m.index, CH_RANO + 1, minutes)).astype(np.int64)
    spread = math.log(900_000 / 500)  # half a second to a quarter of an hour, log-uniform
    dur_ms = (500 * np.exp(uniform(s, m.index, CH_RANO + 2, minutes) * spread)).astype(np.int64)
    who = uniform(s, m.index, CH_RANO + 3, minutes)
    port = 32768 + (28000 * uniform(s, m.index, CH_RANO + 4, minutes)).astype(np.int64)
    providers = list(prof.providers) or ["claude"]
    tpls = _rano_by_comm()
    out: list[tuple[int, dict[str, Any]]] = []
    for mi, sc, d, w, lp in zip(minutes.tolist(), sec.tolist(), dur_ms.tolist(), who.tolist(), port.tolist(),
                                strict=True):
        comm = providers[int(w * len(providers))]
        tpl = tpls.get(comm, tpls["claude"])
        start = mi * 60 + sc
        day = datetime.fromtimestamp(start, UTC).strftime("%Y%m%d")
        base = {**tpl, "local_ip": f"10.20.{m.index}.{10 + m.index}", "local_port": lp,
                "pid": 2000 + (mi * 7 + m.index) % 30000, "provider": _PROVIDER_NET[comm],
                "run_id": f"run-{m.machine_id}-{day}"}
        base.pop("duration_ms", None)
        close_at = start + d // 1000
        if lo_s <= start <= hi_s:
            out.append((start, {**base, "event": "connect", "ts": _iso(datetime.fromtimestamp(start, UTC))}))
        if lo_s <= close_at <= hi_s:
            out.append((close_at, {**base, "event": "close", "duration_ms": d,
                                   "ts": _iso(datetime.fromtimestamp(close_at, UTC))}))
    out.sort(key=lambda x: (x[0], x[1]["event"] != "connect", x[1]["local_port"]))
    return [e for _, e in out]


def rano_export(world: DemoWorld, prof: Profile, t: datetime, since: str | None) -> str:
    """`rano export --format jsonl [--since TS]`: keys sorted, NULLs left out (rano.md)."""
    hi = int(t.timestamp())
    if since:
        lo = int(datetime.fromisoformat(since.replace("Z", "+00:00")).timestamp())
    else:
        lo = hi - 6 * 3600  # the observer database the first export finds
    return "".join(json.dumps(e, sort_keys=True, separators=(",", ":")) + "\n"
                   for e in rano_events(world, prof, lo, hi))


# ---------------- system figures shared with demo_fleet ----------------
_SYS_COLS = ("cpu_pct", "load1", "load5", "load15", "mem_used_bytes", "mem_total_bytes", "swap_used_bytes",
             "swap_total_bytes", "net_rx_bps", "net_tx_bps", "uptime_seconds")
_SYS_CACHE: OrderedDict[tuple, dict[str, float]] = OrderedDict()


def prime_sys(world: DemoWorld, machine_ids: Sequence[str], minutes: Sequence[int]) -> None:
    """Compute demo_fleet's samples for many (machine, minute) at once: one vectorized call per machine."""
    from sample_data.demo_fleet import samples

    eps = [e for e in world.episodes if e.kind != "silent"]
    mins = np.array(sorted(set(minutes)), np.int64)
    for mid in machine_ids:
        m = next(x for x in world.machines if x.machine_id == mid)
        tab = samples(m, world.seed, mins, eps)
        cols = {k: tab.column(k).to_pylist() for k in _SYS_COLS}
        for i, minute in enumerate(mins.tolist()):
            _SYS_CACHE[(world, mid, minute)] = {k: float(cols[k][i]) for k in _SYS_COLS}
    while len(_SYS_CACHE) > 50_000:
        _SYS_CACHE.popitem(last=False)


def _sys(world: DemoWorld, machine_id: str, minute: int) -> dict[str, float]:
    """demo_fleet's sample of this machine at this minute, so sysmoni and pt agree with sys_samples."""
    hit = _SYS_CACHE.get((world, machine_id, minute))
    if hit is None:
        prime_sys(world, [machine_id], [minute])
        hit = _SYS_CACHE[(world, machine_id, minute)]
    return hit


# ---------------- rch ----------------
_BUILD_SLOT = 4  # minutes: at most one build submitted per slot
_COMMANDS = ("cargo build --release", "cargo test", "cargo clippy --all-targets", "npm run build",
             "go build ./...")
_CHUNKS: OrderedDict[tuple, dict[str, Any]] = OrderedDict()
_CHUNKS_MAX = 4096


def _storms(world: DemoWorld) -> list[Episode]:
    return [e for e in world.episodes if e.kind == "load_storm"]


def _rch_scale(world: DemoWorld, prof: Profile) -> float:
    farm = [m for m in world.machines if m.role in ("build", "ci")]
    return (1.0, 0.6, 0.4)[min(2, farm.index(prof.machine))] if prof.machine in farm else 0.0


def queue_depth(world: DemoWorld, prof: Profile, t: datetime) -> int:
    """Builds waiting: a few in working hours; the load storm floods the farm, drained 90 min after it."""
    m = prof.machine
    minute = _minute(t)
    q = int(3 * _daily(m, minute) * _u(world.seed, m.index, CH_RCH, minute // 5))
    for e in _storms(world):
        s0 = _minute(e.start)
        s1 = _minute(e.end) if e.end else minute
        peak = 28 * _rch_scale(world, prof)
        if s0 <= minute < s1:
            q += int(peak * min(1.0, (minute - s0) / max(1, s1 - s0)))
        elif s1 <= minute < s1 + 90:
            q += int(peak * (1 - (minute - s1) / 90))
    return q


def _workers(world: DemoWorld, prof: Profile, t: datetime) -> list[dict[str, Any]]:
    tpl = template("rch.status.reconstructed.json")["data"]["daemon"]["workers"]
    m = prof.machine
    minute = _minute(t)
    out = []
    outage = (world.end - timedelta(hours=40), world.end - timedelta(hours=34))
    first = _rch_scale(world, prof) == 1.0
    for j in range(3 + m.index % 2):
        down = first and j == 1 and outage[0] <= t < outage[1]
        recovering = first and j == 1 and outage[1] <= t < outage[1] + timedelta(minutes=20)
        w = copy.deepcopy(tpl[1] if down else tpl[0])
        total = 32 if j % 2 == 0 else 16
        busy = 0 if down else min(total, int(total * (0.2 + 0.7 * _daily(m, minute))
                                             * _u(world.seed, m.index * 10 + j, CH_RCH + 1, minute // 5)))
        speed = 0.0 if down else round(70 + 25 * _u(world.seed, m.index * 10 + j, CH_RCH + 2, 0), 1)
        w.update(id=f"worker-{'abcdef'[j]}", host=f"10.0.{m.index}.{j + 1}", total_slots=total,
                 used_slots=busy, speed_score=speed)
        if down:
            w.update(status="unreachable", circuit_state="open", last_error="ssh: connect timed out",
                     consecutive_failures=5 + (minute - _minute(outage[0])) // 10, recovery_in_secs=120,
                     failure_history=[False] * 5)
        elif recovering:
            w.update(status="degraded", circuit_state="half_open", failure_history=[False, True, True])
        out.append(w)
    return out


def _build_chunk(world: DemoWorld, prof: Profile, day: int) -> dict[str, Any]:
    """Build records completed during epoch day `day`, as history lines (cached: a pure function)."""
    key = (world.seed, prof.machine.machine_id, day, world.start, world.end)
    hit = _CHUNKS.get(key)
    if hit is not None:
        _CHUNKS.move_to_end(key)
        return hit
    m, s = prof.machine, world.seed
    slots = np.arange((day * 1440 - 12) // _BUILD_SLOT, (day * 1440 + 1440) // _BUILD_SLOT, dtype=np.int64)
    start = slots * _BUILD_SLOT
    hour = (start % 1440) / 60.0
    shift = {"eu": 0.0, "us": -6.0, "ap": 7.0}[m.region]
    daily = np.clip(np.sin(np.pi * (((hour + shift) % 24) - 7) / 14), 0, None)
    p = (0.05 + 0.5 * daily) * _rch_scale(world, prof)
    for e in _storms(world):
        lo, hi = _minute(e.start), _minute(e.end) if e.end else 1 << 40
        p = np.where((start >= lo) & (start < hi), 0.95, p)
    keep = uniform(s, m.index, CH_RCH + 3, slots) < p
    slots, start = slots[keep], start[keep]
    sec = (60 * uniform(s, m.index, CH_RCH + 4, slots)).astype(np.int64)
    dur = (20_000 + 460_000 * uniform(s, m.index, CH_RCH + 5, slots) ** 2).astype(np.int64)
    started = start * 60 + sec
    done = started + dur // 1000
    sel = (done >= day * 86400) & (done < (day + 1) * 86400)
    order = np.argsort(done[sel], kind="stable")
    idx = np.nonzero(sel)[0][order]
    u_exit = uniform(s, m.index, CH_RCH + 6, slots)
    u_loc = uniform(s, m.index, CH_RCH + 7, slots)
    u_cmd = uniform(s, m.index, CH_RCH + 8, slots)
    u_w = uniform(s, m.index, CH_RCH + 9, slots)
    projects = [r["repo"].rsplit("/", 1)[-1] for r in prof.repos] or ["scratch"]
    lines, done_s, recs = [], [], []
    for i in idx.tolist():
        remote = u_loc[i] < 0.85
        rec = {"id": (m.index + 1) * 10**12 + int(slots[i]), "started_at": _iso(datetime.fromtimestamp(
            int(started[i]), UTC)), "completed_at": _iso(datetime.fromtimestamp(int(done[i]), UTC)),
            "project_id": projects[int(slots[i]) % len(projects)],
            "worker_id": f"worker-{'abc'[int(u_w[i] * 3)]}" if remote else None,
            "command": _COMMANDS[int(u_cmd[i] * len(_COMMANDS))],
            "exit_code": 0 if u_exit[i] < 0.92 else 101, "duration_ms": int(dur[i]),
            "location": "remote" if remote else "local",
            "bytes_transferred": int(2e5 + 5e6 * u_w[i]) if remote else None}
        lines.append((_compact(rec) + "\n").encode())
        done_s.append(int(done[i]))
        recs.append(rec)
    chunk = {"lines": lines, "done": done_s, "recs": recs, "size": sum(len(x) for x in lines)}
    _CHUNKS[key] = chunk
    if len(_CHUNKS) > _CHUNKS_MAX:
        _CHUNKS.popitem(last=False)
    return chunk


def _history_days(world: DemoWorld, t: datetime) -> range:
    return range(int(world.start.timestamp() // 86400), int(t.timestamp() // 86400) + 1)


def rch_history(world: DemoWorld, prof: Profile, t: datetime) -> list[tuple[bytes, int, dict[str, Any]]]:
    """Every line of rchd's history file up to `t`: (line, completed epoch s, record)."""
    now_s = int(t.timestamp())
    out = []
    for day in _history_days(world, t):
        c = _build_chunk(world, prof, day)
        out += [(ln, d, r) for ln, d, r in zip(c["lines"], c["done"], c["recs"], strict=True) if d <= now_s]
    return out


def rch_history_file(world: DemoWorld, prof: Profile, t: datetime, offset: int,
                     cap: int) -> tuple[int, bytes]:
    """(file size, up to `cap` bytes from `offset`) of the append-only history at `t`."""
    now_s = int(t.timestamp())
    pos, size, parts, taken = 0, 0, [], 0
    for day in _history_days(world, t):
        c = _build_chunk(world, prof, day)
        whole = c["done"][-1] <= now_s if c["done"] else True
        if whole and pos + c["size"] <= offset:
            pos += c["size"]
            size += c["size"]
            continue
        for ln, d in zip(c["lines"], c["done"], strict=True):
            if d > now_s:
                break
            if pos >= offset and taken < cap:
                parts.append(ln)
                taken += len(ln)
            elif pos < offset < pos + len(ln):
                parts.append(ln[offset - pos:])
                taken += pos + len(ln) - offset
            pos += len(ln)
            size += len(ln)
    return size, b"".join(parts)[:cap]


def _uptime_s(world: DemoWorld, prof: Profile, minute: int) -> int:
    m = prof.machine
    return int(((minute + m.index * 2 * 1440) % (30 * 1440)) * 60)


def rch_status(world: DemoWorld, prof: Profile, t: datetime) -> str:
    """`rch status --json`: rch.md's reconstructed ApiResponse (note `data.daemon.daemon`)."""
    doc = template("rch.status.reconstructed.json")
    minute = _minute(t)
    workers = _workers(world, prof, t)
    healthy = [w for w in workers if w["status"] == "healthy"]
    hist = rch_history(world, prof, t)
    q = queue_depth(world, prof, t)
    full = doc["data"]["daemon"]
    info = full["daemon"]
    up = _uptime_s(world, prof, minute)
    slots_total = sum(w["total_slots"] for w in workers if w["status"] != "unreachable")
    used = sum(w["used_slots"] for w in workers)
    info.update(pid=4000 + prof.machine.index * 17 + (minute - up // 60) % 997, uptime_secs=up,
                version="1.4.2", started_at=_iso(t - timedelta(seconds=up)), workers_total=len(workers),
                workers_healthy=len(healthy), slots_total=slots_total,
                slots_available=max(0, slots_total - used))
    active_tpl = full["active_builds"][0]
    n_active = min(len(healthy) * 2, max(1 if used else 0, used // 8))
    projects = [r["repo"].rsplit("/", 1)[-1] for r in prof.repos] or ["scratch"]
    full["workers"] = workers
    full["active_builds"] = [{**active_tpl, "id": (prof.machine.index + 1) * 10**12 + minute * 10 + i,
                              "project_id": projects[i % len(projects)],
                              "worker_id": healthy[i % len(healthy)]["id"],
                              "command": _COMMANDS[i % len(_COMMANDS)],
                              "started_at": _iso(t - timedelta(seconds=30 + 40 * i))}
                             for i in range(n_active if healthy else 0)]
    full["queued_builds"] = [{"id": (prof.machine.index + 1) * 10**12 + minute * 10 + 5 + i,
                              "project_id": projects[i % len(projects)],
                              "command": _COMMANDS[(i + 1) % len(_COMMANDS)],
                              "queued_at": _iso(t - timedelta(seconds=15 * (q - i))), "position": i + 1,
                              "slots_needed": 4, "wait_time": f"{15 * (q - i)}s"} for i in range(q)]
    full["recent_builds"] = [r for _, _, r in hist[-5:]]
    down = [w for w in workers if w["status"] == "unreachable"]
    full["issues"] = [{"severity": "warning", "summary": f"worker {w['id']} unreachable"} for w in down]
    full["alerts"] = [{"id": f"alert-{w['id']}", "kind": "worker_offline", "severity": "warning",
                       "message": f"{w['id']} is offline", "worker_id": w["id"], "created_at": _iso(t),
                       "first_seen": _iso(t), "last_seen": _iso(t), "state": "active"} for w in down]
    recs = [r for _, _, r in hist]
    ok = sum(1 for r in recs if r["exit_code"] == 0)
    remote = sum(1 for r in recs if r["location"] == "remote")
    full["stats"] = {"total_builds": len(recs), "success_count": ok, "failure_count": len(recs) - ok,
                     "remote_count": remote, "local_count": len(recs) - remote,
                     "avg_duration_ms": round(sum(r["duration_ms"] for r in recs) / len(recs), 1)
                     if recs else 0.0}
    saved = sum(r["duration_ms"] for r in recs if r["location"] == "remote")
    full["saved_time"].update(total_remote_duration_ms=saved, estimated_local_duration_ms=saved * 3,
                              time_saved_ms=saved * 2, builds_counted=remote)
    posture = "remote_ready" if len(healthy) == len(workers) else "degraded"
    doc["timestamp"] = int(t.timestamp())
    doc["data"]["posture"] = posture
    doc["data"]["posture_description"] = ("All workers healthy" if posture == "remote_ready"
                                          else f"{len(workers) - len(healthy)} worker(s) not healthy")
    return _compact(doc) + "\n"


def rch_metrics(world: DemoWorld, prof: Profile, t: datetime) -> str:
    """rchd's /metrics in Prometheus text format, names and labels from rch.md's table (the code's)."""
    workers = _workers(world, prof, t)
    recs = [r for _, _, r in rch_history(world, prof, t)]
    minute = _minute(t)
    lines: list[str] = []

    def family(name: str, kind: str, help_: str, samples: list[tuple[str, float]]) -> None:
        lines.append(f"# HELP {name} {help_}")
        lines.append(f"# TYPE {name} {kind}")
        lines.extend(f"{name}{labels} {value:g}" for labels, value in samples)

    code = {"healthy": 1, "degraded": 1, "unreachable": 0, "draining": 2}
    family("rch_worker_status", "gauge", "Worker status (0=down, 1=up, 2=draining)",
           [(f'{{worker="{w["id"]}",status="{w["status"]}"}}', code.get(w["status"], 0)) for w in workers])
    family("rch_worker_slots_total", "gauge", "Total slots", [(f'{{worker="{w["id"]}"}}', w["total_slots"])
                                                              for w in workers])
    family("rch_worker_slots_available", "gauge", "Available slots",
           [(f'{{worker="{w["id"]}"}}', w["total_slots"] - w["used_slots"]) for w in workers])
    circuit = {"closed": 0, "half_open": 1, "open": 2}
    family("rch_circuit_state", "gauge", "Circuit (0=closed, 1=half_open, 2=open)",
           [(f'{{worker="{w["id"]}"}}', circuit[w["circuit_state"]]) for w in workers])
    totals: dict[tuple[str, str], int] = {}
    for r in recs:
        k = ("success" if r["exit_code"] == 0 else "failure", r["location"])
        totals[k] = totals.get(k, 0) + 1
    family("rch_builds_total", "counter", "Builds",
           [(f'{{result="{res}",location="{loc}"}}', n) for (res, loc), n in sorted(totals.items())])
    used = sum(w["used_slots"] for w in workers)
    family("rch_builds_active", "gauge", "Active builds", [('{location="remote"}', used // 8),
                                                           ('{location="local"}', 0)])
    family("rch_build_queue_depth", "gauge", "Queued builds", [("", queue_depth(world, prof, t))])
    lines.append("# HELP rch_build_duration_seconds Build duration")
    lines.append("# TYPE rch_build_duration_seconds histogram")
    for loc in ("remote", "local"):
        durs = [r["duration_ms"] / 1000 for r in recs if r["location"] == loc]
        for le in (10.0, 60.0, 300.0):
            lines.append(f'rch_build_duration_seconds_bucket{{location="{loc}",le="{le}"}} '
                         f"{sum(1 for d in durs if d <= le)}")
        lines.append(f'rch_build_duration_seconds_bucket{{location="{loc}",le="+Inf"}} {len(durs)}')
        lines.append(f'rch_build_duration_seconds_sum{{location="{loc}"}} {round(sum(durs), 3):g}')
        lines.append(f'rch_build_duration_seconds_count{{location="{loc}"}} {len(durs)}')
    family("rch_transfer_bytes_total", "counter", "Bytes transferred",
           [('{direction="upload"}', sum(r["bytes_transferred"] or 0 for r in recs)),
            ('{direction="download"}', sum((r["bytes_transferred"] or 0) // 3 for r in recs))])
    family("rch_daemon_uptime_seconds", "counter", "Daemon uptime", [("", _uptime_s(world, prof, minute))])
    family("rch_daemon_info", "gauge", "Daemon info", [('{version="1.4.2"}', 1)])
    family("rch_daemon_connections_active", "gauge", "Open connections",
           [("", 1 + int(4 * _daily(prof.machine, minute)))])
    return "\n".join(lines) + "\n"


# ---------------- pt ----------------
_LEFTOVERS = (
    ("node /usr/bin/jest --watch", "node", "abandoned", 900, 0.0),
    ("claude --resume 4f1c", "claude", "abandoned", 450, 0.1),
    ("cargo watch -x test", "cargo", "abandoned", 300, 0.4),
    ("python -m http.server 8000", "python", "abandoned", 60, 0.0),
    ("esbuild --serve=127.0.0.1:8080", "esbuild", "useful_bad", 1500, 88.0),
    ("[defunct] npm", "npm", "zombie", 0, 0.0),
)


def pt_candidates(world: DemoWorld, prof: Profile, t: datetime) -> list[dict[str, Any]]:
    """Processes agents left behind: they appear when sessions end and live until someone kills them."""
    m, s = prof.machine, world.seed
    now_s = int(t.timestamp())
    tpl = template("pt.plan.reconstructed.json")["candidates"][0]
    out = []
    minute = _minute(t)
    for slot in range((minute - 30 * 60) // 180, minute // 180 + 1):
        if _u(s, m.index, CH_PT, slot) >= 0.3:
            continue
        born = slot * 180 * 60 + int(10800 * _u(s, m.index, CH_PT + 1, slot))
        life = int(3600 * (4 + 26 * _u(s, m.index, CH_PT + 2, slot)))
        if not born <= now_s < born + life:
            continue
        cmd, short, cls, mem, cpu = _LEFTOVERS[int(_u(s, m.index, CH_PT + 3, slot) * len(_LEFTOVERS))]
        out.append(_candidate(tpl, 10000 + (slot * 13 + m.index) % 50000, born, now_s, cmd, short, cls,
                              mem * (0.5 + _u(s, m.index, CH_PT + 4, slot)), cpu))
    for e in world.episodes:
        if e.kind == "swap_thrash" and e.machine_id == m.machine_id and _active(e, t):
            grow = min(1.0, (t - e.start).total_seconds() / 10800)
            out.append(_candidate(tpl, 31337, int(e.start.timestamp()) - 600, now_s,
                                  "python -m pytest -n 16 --forked (leaked worker)", "python", "useful_bad",
                                  4000 + 14000 * grow, 96.0))
    return sorted(out, key=lambda c: -c["score"])


def _candidate(tpl: dict[str, Any], pid: int, born: int, now_s: int, cmd: str, short: str, cls: str,
               mem: float, cpu: float) -> dict[str, Any]:
    age = now_s - born + 1800
    post = {"useful": 0.03, "useful_bad": 0.02, "abandoned": 0.03, "zombie": 0.01}
    post[cls] = 0.0
    post[cls] = round(1.0 - sum(post.values()), 2)
    score = round(post[cls] * 100)
    kill = cls in ("abandoned", "zombie")
    c = copy.deepcopy(tpl)
    c.update(pid=pid, ppid=1, state="Z" if cls == "zombie" else "S", start_id=f"{pid}:{born - 1800}",
             command=cmd, command_short=short, type=cls, classification=cls, age_seconds=age,
             age_human=f"{age // 86400}d {age % 86400 // 3600}h {age % 3600 // 60}m", memory_mb=int(mem),
             cpu_percent=cpu, score=score, posterior=post, confidence="high" if score >= 90 else "medium",
             recommendation="KILL" if kill else "REVIEW", recommended_action="kill" if kill else "review",
             action_rationale=("Action Kill selected" if kill
                               else "Policy blocked: process is busy; review first"),
             policy_blocked=not kill)
    c["blast_radius"] = {"memory_mb": int(mem), "cpu_pct": cpu, "child_count": 0,
                         "risk_level": "low" if kill else "medium"}
    c["supervisor"] = {**c["supervisor"], "recommended_action": c["recommended_action"]}
    return c


def pt_plan(world: DemoWorld, prof: Profile, t: datetime) -> tuple[str, int]:
    """`pt robot plan --format json` (pt.md's plan_output); exit 1 = plan ready, 0 = nothing to do."""
    doc = template("pt.plan.reconstructed.json")
    m = prof.machine
    minute = _minute(t)
    sysd = _sys(world, m.machine_id, minute)
    cands = pt_candidates(world, prof, t)
    kill = [c["pid"] for c in cands if c["recommended_action"] == "kill"]
    review = [c["pid"] for c in cands if c["recommended_action"] != "kill"]
    scanned = 300 + int(200 * _daily(m, minute)) + 7 * m.index
    stamp = t.strftime("%Y%m%d-%H%M%S")
    doc.update(timestamp=t.isoformat(), generated_at=t.isoformat(),
               session_id=f"pt-{stamp}-{_b36(int(_u(world.seed, m.index, CH_PT + 5, minute) * 36**4), 4)}",
               host_id=m.machine_id, candidates=cands)
    doc["host"] = {"hostname": m.machine_id, "cores": m.cores,
                   "memory_total_gb": round(m.mem_total / 2**30, 1),
                   "memory_used_gb": round(sysd["mem_used_bytes"] / 2**30, 1),
                   "load_avg": [round(sysd["load1"], 2), round(sysd["load5"], 2), round(sysd["load15"], 2)]}
    doc["scan"] = {"total_processes": scanned, "candidates_found": len(cands),
                   "scan_duration_ms": 600 + scanned}
    doc["summary"].update(total_processes_scanned=scanned, candidates_evaluated=scanned - 37,
                          above_threshold=len(cands), candidates_returned=len(cands),
                          kill_recommendations=len(kill),
                          review_recommendations=len(review), policy_blocked=len(review),
                          signature_matches=sum(1 for c in cands if c["command_short"] == "node"))
    freed = sum(c["memory_mb"] for c in cands if c["pid"] in kill) / 1024
    doc["recommendations"] = {"kill_set": kill, "review_set": review, "spare_set": [],
                              "expected_memory_freed_gb": round(freed, 2), "fleet_fdr": 0.03}
    doc["recommended"] = {"preselected_pids": [],
                          "actions": [{"pid": p, "action": "kill", "stage": 1} for p in kill]}
    return _compact(doc) + "\n", 1 if cands else 0


# ---------------- automated_flywheel_setup_checker ----------------
_INSTALLERS = ("bun", "rust", "uv", "go", "node", "ntm", "cass", "caut", "br", "dcg")


def afsc_status(world: DemoWorld, prof: Profile, t: datetime) -> str:
    """`automated_flywheel_setup_checker status --format json`: the latest daily run's results file."""
    doc = template("afsc.status.reconstructed.json")
    passed_tpl, failed_tpl = doc["results"][0], doc["results"][1]
    m, s = prof.machine, world.seed
    minute = _minute(t)
    at = 360 + 3 * m.index  # the daily check starts at 06:00 UTC, staggered
    day = (minute - at) // 1440
    run_start = _at(day * 1440 + at)
    results = []
    clock = run_start + timedelta(seconds=12)
    broken_since = world.end - timedelta(days=2)
    for n, name in enumerate(_INSTALLERS):
        dur = int(3000 + 37000 * _u(s, m.index * 16 + n, CH_AFSC, day))
        clock += timedelta(milliseconds=dur)
        if name in ("ntm", "cass", "caut", "br") and prof.agent_slot < 0:
            r = {**passed_tpl, "installer_name": name, "status": "skipped", "exit_code": None,
                 "duration_ms": 0, "sha256_verified": False}
        elif name == "dcg" and m.role == "db" and run_start >= broken_since:
            r = {**failed_tpl, "installer_name": name, "duration_ms": dur, "exit_code": 1, "retry_count": 0,
                 "error_classification": {"category": "checksum_mismatch", "severity": "Configuration",
                                          "retryable": False, "confidence": 0.95},
                 "stderr_excerpt": "sha256 mismatch for dcg-x86_64-unknown-linux-gnu.tar.gz",
                 "sha256_verified": False}
        elif _u(s, m.index * 16 + n, CH_AFSC + 1, day) < 0.05:
            r = {**failed_tpl, "installer_name": name, "duration_ms": dur}
        else:
            r = {**passed_tpl, "installer_name": name, "duration_ms": dur}
        r["timestamp"] = _iso(clock)
        results.append(r)
    counts = {k: sum(1 for r in results if r["status"] == k) for k in ("passed", "failed", "skipped")}
    run_id = hashlib.sha1(f"{m.machine_id}-{day}".encode()).hexdigest()
    doc["results"] = results
    uuid = f"{run_id[:8]}-{run_id[8:12]}-{run_id[12:16]}-{run_id[16:20]}-{run_id[20:32]}"
    doc["summary"] = {"run_id": uuid,
                      "total": len(results), **counts,
                      "duration_total_ms": int((clock - run_start).total_seconds() * 1000),
                      "timestamp_start": _iso(run_start), "timestamp_end": _iso(clock)}
    doc["file"] = f"{HOME}/.local/share/afsc/results/results_{clock.strftime('%Y%m%d_%H%M%S')}.jsonl"
    return json.dumps(doc, indent=2) + "\n"


# ---------------- sysmoni ----------------
def sysmoni_sample(world: DemoWorld, prof: Profile, t: datetime) -> str:
    """`sysmoni --json`: one line. The Go binary's one-shot sample has zero CPU/IO deltas (sysmoni.md),
    and that is what it prints here too; the bash fallback samples /proc twice and has real figures."""
    m, s = prof.machine, world.seed
    minute = _minute(t)
    sysd = _sys(world, m.machine_id, minute)
    procs = [("claude", 0.9), ("cargo build --release", 2.5), ("node vite build", 1.4),
             ("python -m pytest", 1.1), ("rustc --crate-type lib", 1.8), ("tmux: server", 0.1),
             ("postgres: writer", 4.0)]
    load = [round(sysd[k], 2) for k in ("load1", "load5", "load15")]
    jitter = float(normal(s, m.index, CH_SYSMONI, np.array([minute]))[0])
    temp = round(38 + 0.45 * sysd["cpu_pct"] + 3 * jitter, 1)
    if prof.sysmoni == "bash":
        doc = template("sysmoni.bash.reconstructed.json")
        cpu = round(sysd["cpu_pct"], 1)
        doc.update(timestamp=int(t.timestamp()), cpu=cpu,
                   mem=round(100 * sysd["mem_used_bytes"] / sysd["mem_total_bytes"], 1))
        doc["top"] = [{"cmd": c.split()[0], "pid": 1000 + 37 * i + m.index, "nice": 0,
                       "cpu": round(cpu * w * _u(s, m.index * 10 + i, CH_SYSMONI + 1, minute), 1),
                       "mem": round(w * 2, 1)} for i, (c, w) in enumerate(procs[:5])]
        spread = [0.7 + 0.6 * _u(s, m.index * 64 + i, CH_SYSMONI + 2, minute) for i in range(m.cores)]
        doc["per_core"] = [{"core": str(i), "cpu": int(min(100, cpu * f))} for i, f in enumerate(spread)]
        doc["temps"] = [{"zone": "thermal_zone0", "temp_c": temp}]
        doc["inotify"]["nr_watches"] = 30000 + 2000 * m.index + (minute % 1440) * 5
        return _compact(doc) + "\n"
    doc = template("sysmoni.go.reconstructed.json")
    local = t.astimezone(UTC)
    nanos = int(_u(s, m.index, CH_SYSMONI + 3, minute) * 1e9)
    doc["Timestamp"] = local.strftime("%Y-%m-%dT%H:%M:%S") + f".{nanos:09d}Z"
    doc["CPU"] = {"Total": 0, "PerCore": [0] * m.cores, "Load1": load[0], "Load5": load[1], "Load15": load[2]}
    doc["Memory"] = {"UsedBytes": int(sysd["mem_used_bytes"]), "TotalBytes": int(sysd["mem_total_bytes"]),
                     "SwapUsed": int(sysd["swap_used_bytes"]), "SwapTotal": int(sysd["swap_total_bytes"]),
                     "Cached": int(sysd["mem_total_bytes"] * 0.18),
                     "Buffers": int(sysd["mem_total_bytes"] * 0.01)}
    doc["IO"] = {"DiskReadMBs": 0, "DiskWriteMBs": 0, "NetRxMbps": 0, "NetTxMbps": 0, "PerDevice": None}
    if m.role == "gpu":
        util = round(100 * _daily(m, minute) * _u(s, m.index, CH_SYSMONI + 4, minute // 5), 1)
        doc["GPUs"] = [{"Name": "NVIDIA A100-SXM4-80GB", "Util": util, "MemUsedMB": int(800 * util),
                        "MemTotalMB": 81920, "TempC": round(35 + 0.5 * util, 1)}]
    doc["Top"] = [{"PID": 1000 + 37 * i + m.index, "Nice": 0, "CPU": 0, "Memory": round(w * 2, 1),
                   "Command": c, "FDCount": 40 + 30 * i, "ReadKBs": 0, "WriteKBs": 0, "FDDiff": 0}
                  for i, (c, w) in enumerate(procs)]
    doc["Throttled"] = None
    doc["Cgroups"] = [{"Name": "user.slice", "CPU": 0}]
    doc["Inotify"] = {"MaxUserWatches": 524288, "MaxUserInstances": 1024,
                      "NrWatches": 30000 + 2000 * m.index + (minute % 1440) * 5}
    doc["Temps"] = [{"Zone": "thermal_zone0", "Temp": temp}]
    return _compact(doc) + "\n"


# ---------------- SQLite sources: dcg's history.db, mcp_agent_mail's storage.sqlite3 ----------------
Event = tuple[int, int, str, tuple[Any, ...]]  # (time µs, order, SQL, parameters)


def _us(minute: float, sec: float = 0.0) -> int:
    return int((minute * 60 + sec) * 1_000_000)


class SimDb:
    """An in-memory SQLite database with the tool's real layout, replaying a pure event stream forward.

    The collectors' reader runs its SELECTs against it exactly as against the file on a machine; the
    state at any moment is every event up to then, so cursors (ids, rowids, change marks) line up.
    """

    def __init__(self, ddl: str, setup: list[tuple[str, tuple[Any, ...]]], first_day: int,
                 events_for_day: Callable[[int], list[Event]]):
        self.con = sqlite3.connect(":memory:", check_same_thread=False)
        self.con.executescript(ddl)
        for sql, params in setup:
            self.con.execute(sql, params)
        self.first_day = first_day
        self.events_for_day = events_for_day
        self.until = first_day * 86_400_000_000 - 1

    def at(self, t_us: int) -> sqlite3.Connection:
        for day in range(max(self.first_day, self.until // 86_400_000_000), t_us // 86_400_000_000 + 1):
            for ts, _, sql, params in self.events_for_day(day):
                if self.until < ts <= t_us:
                    self.con.execute(sql, params)
        self.until = max(self.until, t_us)
        self.con.commit()
        return self.con


_DBS: OrderedDict[tuple, SimDb] = OrderedDict()
_DAY_EVENTS: OrderedDict[tuple, list[Event]] = OrderedDict()


def _day_events(key: tuple, day: int, make: Callable[[int], list[Event]]) -> list[Event]:
    hit = _DAY_EVENTS.get((key, day))
    if hit is None:
        hit = sorted(make(day), key=lambda e: (e[0], e[1]))
        _DAY_EVENTS[(key, day)] = hit
        if len(_DAY_EVENTS) > 2048:
            _DAY_EVENTS.popitem(last=False)
    return hit


def sim_db(world: DemoWorld, prof: Profile, path: str, t: datetime) -> sqlite3.Connection | None:
    """The machine's database at `path` as of `t`, or None when there is no such file there."""
    mid = prof.machine.machine_id
    if path == DCG_DB and "dcg" in prof.tools:
        kind = "dcg"
    elif prof.mail_path is not None and path == prof.mail_path:
        kind = "mail"
    else:
        return None
    key = (world, mid, path)
    t_us = int(t.timestamp() * 1_000_000)
    db = _DBS.get(key)
    if db is None or t_us < db.until:  # asked about an earlier moment: replay from the beginning
        first_day = int(world.start.timestamp() // 86400) - 1
        if kind == "dcg":
            setup = [("INSERT INTO schema_version VALUES (5, ?, 'v5: parent_command_id, bypass_code', NULL)",
                      (_iso(_at(first_day * 1440)),))]
            ddl, make = _template_text("dcg.history.schema.sql"), dcg_events
        else:
            setup = mail_setup(world, prof, first_day)
            ddl, make = _template_text(f"mcp_agent_mail.{prof.mail}.schema.sql"), mail_events

        def events(day: int, make: Callable[..., list[Event]] = make) -> list[Event]:
            return _day_events((kind, key), day, lambda d: make(world, prof, first_day, d))

        db = SimDb(ddl, setup, first_day, events)
        _DBS[key] = db
        if len(_DBS) > 64:
            _DBS.popitem(last=False)
    _DBS.move_to_end(key)
    return db.at(t_us)


_DCG_ALLOW = ("git status", "cargo test", "rg -n TODO src", "ls -la", "npm run lint", "git diff --stat",
              "pytest -q", "git commit -m 'wip'", "cargo clippy --all-targets")
_DCG_INSERT = ("INSERT INTO commands (id, timestamp, agent_type, working_dir, command, command_hash, "
               "outcome, pack_id, pattern_name, rule_id, eval_duration_us, session_id, exit_code, "
               "parent_command_id, hostname, allowlist_layer, bypass_code) "
               f"VALUES ({', '.join('?' * 17)})")
_DCG_RISKY = (  # (outcome, command, pack, pattern)
    ("deny", "git reset --hard", "core.git", "reset-hard"),
    ("deny", "git push --force origin main", "core.git", "push-force"),
    ("deny", "rm -rf ~/", "core.filesystem", "rm-rf-home"),
    ("warn", "rm -rf ./build", "core.filesystem", "rm-rf"),
    ("bypass", "psql -c 'DROP TABLE scratch'", "database.postgresql", "drop-table"),
)


def dcg_events(world: DemoWorld, prof: Profile, first_day: int, day: int) -> list[Event]:
    """Commands the agents ran through dcg's hook that day (one history row each)."""
    m, s = prof.machine, world.seed
    out: list[Event] = []
    providers = list(prof.providers) or ["claude"]
    repos = [r["path"] for r in prof.repos] or [HOME]
    for minute in range(day * 1440, day * 1440 + 1440):
        if _u(s, m.index, CH_DCG, minute) >= 0.01 + 0.2 * _daily(m, minute):
            continue
        sec = int(60 * _u(s, m.index, CH_DCG + 1, minute))
        pick = _u(s, m.index, CH_DCG + 2, minute)
        pack = pattern = rule = layer = code = None
        exit_code: int | None = 0 if _u(s, m.index, CH_DCG + 3, minute) < 0.9 else 1
        if pick < 0.88:
            outcome, cmd = "allow", _DCG_ALLOW[int(pick / 0.88 * len(_DCG_ALLOW))]
        else:
            outcome, cmd, pack, pattern = _DCG_RISKY[int((pick - 0.88) / 0.12 * len(_DCG_RISKY))]
            rule = f"{pack}:{pattern}"
            if outcome == "deny":
                exit_code = None
            if outcome == "bypass":
                layer, code = "project", _b36(minute, 6).upper()
        agent = _AGENT_SLUG[providers[int(_u(s, m.index, CH_DCG + 4, minute) * len(providers))]]
        row = (minute - first_day * 1440 + 1, _iso(_at(minute) + timedelta(seconds=sec)), agent,
               repos[minute % len(repos)], cmd, "sha256:" + hashlib.sha256(cmd.encode()).hexdigest(), outcome,
               pack, pattern, rule, int(20 + 380 * _u(s, m.index, CH_DCG + 5, minute)),
               f"ses-{m.index}-{minute // 120}", exit_code, None, m.machine_id, layer, code)
        out.append((_us(minute, sec), 0, _DCG_INSERT, row))
    return out


def dcg_stats(world: DemoWorld, prof: Profile, t: datetime) -> str:
    """`dcg stats --format json`: the schema example's shape, counted from the same decisions (30 days)."""
    doc = template("dcg.stats.example.json")
    con = sim_db(world, prof, DCG_DB, t)
    assert con is not None
    start = t - timedelta(days=30)
    rows = con.execute("SELECT coalesce(pack_id, 'unknown'), outcome, allowlist_layer IS NOT NULL, count(*) "
                       "FROM commands WHERE timestamp >= ? AND timestamp <= ? GROUP BY 1, 2, 3",
                       (_iso(start), _iso(t))).fetchall()
    packs: dict[str, dict[str, int]] = {}
    for pack, outcome, overridden, n in rows:
        key = {"deny": "bypasses" if overridden else "blocks", "allow": "allows", "warn": "warns",
               "bypass": "bypasses"}[outcome]
        packs.setdefault(pack, {"blocks": 0, "allows": 0, "bypasses": 0, "warns": 0})[key] += n
    by_pack = [{"pack_id": p, **c}
               for p, c in sorted(packs.items(), key=lambda kv: (-kv[1]["blocks"], kv[0]))]
    totals = {k: sum(p[k] for p in by_pack) for k in ("blocks", "allows", "bypasses", "warns")}
    doc.update(period_start=int(start.timestamp()), period_end=int(t.timestamp()),
               total_entries=sum(totals.values()), total_blocks=totals["blocks"],
               total_allows=totals["allows"],
               total_bypasses=totals["bypasses"], total_warns=totals["warns"], by_pack=by_pack)
    return json.dumps(doc, indent=2) + "\n"


_MAIL_SUBJECTS = ("Starting on {bead}", "Re: {bead} review please", "Build broken on main",
                  "Taking the lock on {path}", "Handoff: {bead} is ready for tests",
                  "Question about the config format", "Done with {bead}")
_MAIL_PATHS = ("src/api/**", "src/db/*.rs", "tests/integration/**", "docs/*.md", "web/components/**")


def _mail_t(prof: Profile, minute: float, sec: float = 0.0) -> int | str:
    """A timestamp the way this server stores it: Rust integer µs, Python naive-UTC ISO text."""
    if prof.mail == "rust":
        return _us(minute, sec)
    naive = (_at(minute) + timedelta(seconds=sec)).replace(tzinfo=None)
    return naive.isoformat(sep=" ", timespec="microseconds")


def _mail_agents(prof: Profile) -> list[tuple[int, int, str, str, str]]:
    """(agent id, project id, name, program, model) for each project this server knows."""
    programs = {"claude": ("claude-code", "opus-4.1"), "codex": ("codex-cli", "gpt-5-codex"),
                "gemini": ("gemini-cli", "gemini-2.5-pro")}
    kinds = list(prof.providers) or ["claude"]
    out = []
    for p in range(1, min(2, len(prof.repos)) + 1):
        for j in range(3):
            prog, model = programs[kinds[(p + j) % len(kinds)]]
            out.append((p * 10 + j, p, _ASSIGNEES[(p * 3 + j) % len(_ASSIGNEES)], prog, model))
    return out


def mail_setup(world: DemoWorld, prof: Profile, first_day: int) -> list[tuple[str, tuple[Any, ...]]]:
    t0 = _mail_t(prof, first_day * 1440)
    out: list[tuple[str, tuple[Any, ...]]] = []
    for p, r in enumerate(prof.repos[:2], start=1):
        slug = r["repo"].rsplit("/", 1)[-1].replace("_", "-")
        out.append(("INSERT INTO projects (id, slug, human_key, created_at) VALUES (?, ?, ?, ?)",
                    (p, slug, r["path"], t0)))
    for aid, pid, name, prog, model in _mail_agents(prof):
        out.append(("INSERT INTO agents (id, project_id, name, program, model, inception_ts, last_active_ts) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?)", (aid, pid, name, prog, model, t0, t0)))
    return out


def mail_events(world: DemoWorld, prof: Profile, first_day: int, day: int) -> list[Event]:
    """Messages, reads, acks and file reservations whose moment falls on `day` (from a day earlier on)."""
    m, s = prof.machine, world.seed
    agents = _mail_agents(prof)
    if not agents:
        return []
    lo, hi = _us(day * 1440), _us(day * 1440 + 1440)
    rust = prof.mail == "rust"
    out: list[Event] = []
    # On the Python server one agent stops reading its mail 16 hours before the history ends (a stuck
    # session): its acks go overdue, which the cockpit should notice.
    stuck_agent = agents[0][0] if prof.mail == "python" else None
    stuck_since = int((world.end - timedelta(hours=16)).timestamp() * 1_000_000)

    def emit(ts: int, order: int, sql: str, params: tuple[Any, ...]) -> None:
        if lo <= ts < hi:
            out.append((ts, order, sql, params))

    for minute in range(day * 1440 - 1440, day * 1440 + 1440):
        busy = _daily(m, minute)
        idx = minute - first_day * 1440 + 1
        if minute >= first_day * 1440 and _u(s, m.index, CH_MAIL, minute) < 0.004 + 0.05 * busy:
            sender = agents[int(_u(s, m.index, CH_MAIL + 1, minute) * len(agents))]
            peers = [a for a in agents if a[1] == sender[1] and a[0] != sender[0]]
            to = peers[: 1 + int(_u(s, m.index, CH_MAIL + 2, minute) < 0.3)]
            sec = int(60 * _u(s, m.index, CH_MAIL + 3, minute))
            ui = _u(s, m.index, CH_MAIL + 4, minute)
            importance = "urgent" if ui < 0.03 else "high" if ui < 0.13 else "normal"
            ack = _u(s, m.index, CH_MAIL + 5, minute) < 0.2 or importance == "urgent"
            bead = f"bd-{_b36(minute // 240, 3)}"
            subject = _MAIL_SUBJECTS[minute % len(_MAIL_SUBJECTS)].format(bead=bead,
                                                                          path=_MAIL_PATHS[minute % 5])
            body = f"{subject}.\n\nNotes from {sender[2]}: see `{bead}` for context; tests at `make test`."
            created = _us(minute, sec)
            cols = ("id, project_id, sender_id, thread_id, subject, body_md, importance, ack_required, "
                    "created_ts, attachments")
            vals: tuple[Any, ...] = (idx, sender[1], sender[0], bead if minute % 3 else None, subject, body,
                                     importance, 1 if ack else 0, _mail_t(prof, minute, sec), "[]")
            if rust:
                cols += ", recipients_json"
                vals += (_compact({"to": [a[2] for a in to]}),)
            emit(created, 0, f"INSERT INTO messages ({cols}) VALUES ({', '.join('?' * len(vals))})", vals)
            for n, a in enumerate(to):
                emit(created, 1 + n, "INSERT INTO message_recipients (message_id, agent_id, kind) "
                     "VALUES (?, ?, ?)", (idx, a[0], "to" if n == 0 else "cc"))
                # Mail that asks for an ack is read and acked (within ~2 h), other mail mostly read;
                # only the stuck agent leaves its inbox alone.
                if not ack and _u(s, m.index * 8 + n, CH_MAIL + 6, minute) >= 0.9:
                    continue
                read_s = sec + 60 * (1 + 60 * _u(s, m.index * 8 + n, CH_MAIL + 7, minute))
                if a[0] == stuck_agent and _us(minute, read_s) >= stuck_since:
                    continue
                emit(_us(minute, read_s), 3, "UPDATE message_recipients SET read_ts = ? "
                     "WHERE message_id = ? AND agent_id = ?", (_mail_t(prof, minute, read_s), idx, a[0]))
                if ack:
                    ack_s = read_s + 60 * (1 + 50 * _u(s, m.index * 8 + n, CH_MAIL + 9, minute))
                    if a[0] == stuck_agent and _us(minute, ack_s) >= stuck_since:
                        continue
                    emit(_us(minute, ack_s), 4, "UPDATE message_recipients SET ack_ts = ? "
                         "WHERE message_id = ? AND agent_id = ?",
                         (_mail_t(prof, minute, ack_s), idx, a[0]))
        if minute >= first_day * 1440 and _u(s, m.index, CH_MAIL + 10, minute) < 0.002 + 0.025 * busy:
            holder = agents[int(_u(s, m.index, CH_MAIL + 11, minute) * len(agents))]
            created = _us(minute)
            emit(created, 5, "INSERT INTO file_reservations (id, project_id, agent_id, path_pattern, "
                 "exclusive, reason, created_ts, expires_ts) VALUES (?, ?, ?, ?, 1, ?, ?, ?)",
                 (idx, holder[1], holder[0], _MAIL_PATHS[int(_u(s, m.index, CH_MAIL + 12, minute) * 5)],
                  f"bd-{_b36(minute // 240, 3)}", _mail_t(prof, minute), _mail_t(prof, minute + 120)))
            if _u(s, m.index, CH_MAIL + 13, minute) < 0.75:
                rel = minute + 10 + 100 * _u(s, m.index, CH_MAIL + 14, minute)
                if rust:
                    emit(_us(rel), 6, "INSERT INTO file_reservation_releases (reservation_id, released_ts) "
                         "VALUES (?, ?)", (idx, _mail_t(prof, rel)))
                else:
                    emit(_us(rel), 6, "UPDATE file_reservations SET released_ts = ? WHERE id = ?",
                         (_mail_t(prof, rel), idx))
    return out


_READER_HEAD = "python3 -I -c " + shlex.quote(SQLITE_SCRIPT) + " "


def _quoted_words(text: str, n: int) -> list[str]:
    """The first `n` words of a command line built with shlex.quote, without a char-by-char lexer:
    single-quoted runs, double-quoted runs (quote's `'"'"'`) and bare characters, up to whitespace."""
    out: list[str] = []
    i = 0
    while len(out) < n:
        while i < len(text) and text[i].isspace():
            i += 1
        word: list[str] = []
        while i < len(text) and not text[i].isspace() and text[i] != ";":
            if text[i] in "'\"":
                j = text.index(text[i], i + 1)
                word.append(text[i + 1:j])
                i = j + 1
            else:
                j = i
                while j < len(text) and not text[j].isspace() and text[j] not in "'\";":
                    j += 1
                word.append(text[i:j])
                i = j
        out.append("".join(word))
    return out


def _reader_args(command: str) -> tuple[str, str, int, int]:
    """(path, query spec, byte budget, max value chars) from the reader's python3 command line.

    Only the arguments after the (known, long) script are read: lexing the whole command would cost
    more than answering it.
    """
    at = command.find(_READER_HEAD)
    if at >= 0:
        path, spec, budget, vmax = _quoted_words(command[at + len(_READER_HEAD):], 4)
        return path, spec, int(budget), int(vmax)
    argv = shlex.split(command)
    i = argv.index("-c")
    return argv[i + 2], argv[i + 3], int(argv[i + 4]), int(argv[i + 5])


def sqlite_answer(world: DemoWorld, prof: Profile, t: datetime, command: str) -> Answer:
    """What the read-only reader script prints (collectors/sqlite_reader.SCRIPT), run on the demo database."""
    path, spec, budget, vmax = _reader_args(command)
    con = sim_db(world, prof, path, t)
    if con is None:
        return f"{SQLITE_MARK} missing\n", 0, ""
    out: list[str] = []
    used = 0
    for qi, (sql, params, lim) in enumerate(json.loads(spec)):
        try:
            cur = con.execute(sql, params)
            cols = [d[0] for d in cur.description or ()]
            n, more, cut = 0, False, None
            for r in cur:
                if n >= lim:
                    more = True
                    break
                row: dict[str, Any] = {}
                for k, v in zip(cols, r, strict=True):
                    if isinstance(v, bytes):
                        v = v.hex()
                    if isinstance(v, str) and len(v) > vmax:
                        v = v[:vmax]
                        row.setdefault("__vc_cut", []).append(k)
                    row[k] = v
                line = json.dumps(row) + "\n"
                if used and used + len(line) > budget:
                    more, cut = True, "bytes"
                    break
                out.append(line)
                used += len(line)
                n += 1
            out.append(f"{SQLITE_MARK} end {json.dumps({'q': qi, 'rows': n, 'more': more, 'cut': cut})}\n")
        except sqlite3.Error as e:
            info = json.dumps({"q": qi, "kind": type(e).__name__, "msg": str(e)})
            out.append(f"{SQLITE_MARK} error {info}\n")
    return "".join(out), 0, ""


# ---------------- cloud_benchmarker ----------------
BENCH_EVERY = timedelta(hours=6)  # upstream's PLAYBOOK_RUN_INTERVAL_IN_MINUTES default (360)
BENCH_URL = "http://127.0.0.1:9999"
# upstream's weights in its scoring script; latencies are lower-is-better.
_BENCH_WEIGHTS = {"cpu_speed_test__events_per_second": 2.0, "fileio_test__reads_per_second": 1.0,
                  "memory_speed_test__MiB_transferred": 2.0, "mutex_test__avg_latency": 0.5,
                  "threads_test__avg_latency": 0.5}
_BENCH_LOWER_BETTER = {"mutex_test__avg_latency", "threads_test__avg_latency"}


def bench_host(world: DemoWorld) -> str:
    """The control node that runs cloud_benchmarker: the db machine (the last machine in a tiny fleet)."""
    db = [m for m in world.machines if m.role == "db"]
    return (db[0] if db else world.machines[-1]).machine_id


def _bench_runs(world: DemoWorld, t: datetime) -> list[datetime]:
    first = world.start.replace(hour=0, minute=0, second=0, microsecond=0)
    n = int((t - first) / BENCH_EVERY)
    runs = [first + i * BENCH_EVERY + timedelta(seconds=9 + (i * 7) % 11) for i in range(n + 1)]
    return [r for r in runs if world.start <= r <= t]


def bench_subscores(world: DemoWorld, m: DemoMachine, run: datetime) -> dict[str, float]:
    """sysbench figures of one machine at one run: its hardware, noise, and what its episodes cost.

    A load storm steals CPU from the benchmark (events/s and latencies suffer); a filling disk slows
    random reads; the last agent machine is on an oversold host whose CPU share erodes over the last
    two days, which only the benchmark shows.
    """
    k = int(run.timestamp()) // 60
    quality = 0.75 + 0.5 * _u(world.seed, m.index, 40, 0)
    cpu = min(m.cores, 4) * 980.0 * quality * (0.97 + 0.06 * _u(world.seed, m.index, 41, k))
    fileio = (2600.0 if m.role in ("build", "db", "ci", "gpu") else 1500.0) * quality
    fileio *= 0.95 + 0.1 * _u(world.seed, m.index, 42, k)
    memory = 42000.0 * quality * (0.97 + 0.06 * _u(world.seed, m.index, 43, k))
    mutex = 2.2 / quality * (0.95 + 0.1 * _u(world.seed, m.index, 44, k))
    threads = 0.9 / quality * (0.95 + 0.1 * _u(world.seed, m.index, 45, k))
    for ep in world.episodes:
        if ep.machine_id != m.machine_id or not _active(ep, run):
            continue
        if ep.kind == "load_storm":
            cpu, mutex, threads = cpu * 0.55, mutex * 1.8, threads * 2.1
        elif ep.kind == "disk_filling":
            fileio *= 0.6
        elif ep.kind == "swap_thrash":
            memory, fileio = memory * 0.7, fileio * 0.8
    agents = [x for x in world.machines if x.role == "agents"]
    if agents and m is agents[-1]:
        erosion = min(1.0, max(0.0, (run - (world.end - timedelta(days=2))) / timedelta(days=2)))
        cpu, threads = cpu * (1 - 0.45 * erosion), threads * (1 + 0.9 * erosion)
    return {"cpu_speed_test__events_per_second": round(cpu, 2), "fileio_test__reads_per_second": round(fileio, 2),
            "memory_speed_test__MiB_transferred": round(memory, 2), "mutex_test__avg_latency": round(mutex, 2),
            "threads_test__avg_latency": round(threads, 2)}


def bench_overall(subscores: dict[str, dict[str, float]]) -> dict[str, float]:
    """One run's overall score per host the way the benchmarker scores: each metric min-max scaled to
    0..100 across the run's hosts (100 = best, a metric equal everywhere gives 50), weighted mean."""
    total = sum(_BENCH_WEIGHTS.values())
    out = {h: 0.0 for h in subscores}
    for metric, weight in _BENCH_WEIGHTS.items():
        vals = {h: s[metric] for h, s in subscores.items()}
        lo, hi = min(vals.values()), max(vals.values())
        for h, v in vals.items():
            if hi == lo:
                scaled = 50.0
            elif metric in _BENCH_LOWER_BETTER:
                scaled = (hi - v) / (hi - lo) * 100
            else:
                scaled = (v - lo) / (hi - lo) * 100
            out[h] += scaled * weight / total
    return {h: round(v, 4) for h, v in out.items()}


_BENCH_PERIODS = {"last_7_days": 7, "last_30_days": 30, "last_year": 365}


def cloud_benchmarker_api(world: DemoWorld, t: datetime, path: str) -> Answer:
    """The benchmarker's FastAPI answer at time `t` for `/data/raw/` or `/data/overall/` (server in UTC)."""
    endpoint, _, query = path.partition("?")
    period = query.removeprefix("time_period=") if query else None
    if endpoint not in ("/data/raw/", "/data/overall/"):
        return '{"detail":"Not Found"}', 22, "curl: (22) The requested URL returned error: 404\n"
    if period is not None and period not in _BENCH_PERIODS:
        return json.dumps({"error": "Invalid time period"}), 0, ""
    cutoff = t - timedelta(days=_BENCH_PERIODS[period]) if period else None
    rows: list[dict[str, Any]] = []
    row_id = 0
    for run in _bench_runs(world, t):
        subs = {m.machine_id: bench_subscores(world, m, run) for m in world.machines
                if not world.silent(m.machine_id, run)}
        overall = bench_overall(subs) if endpoint == "/data/overall/" else {}
        for m in world.machines:
            if m.machine_id not in subs:
                continue  # unreachable during the run: the playbook skips hosts without results
            row_id += 1
            if cutoff is not None and run < cutoff:
                continue
            stamp = run.astimezone(UTC).replace(tzinfo=None).isoformat()
            base = {"id": row_id, "datetime": stamp, "hostname": m.machine_id,
                    "IP_address": f"10.20.{m.index // 250}.{m.index % 250 + 1}"}
            rows.append({**base, **subs[m.machine_id]} if not overall
                        else {**base, "overall_score": overall[m.machine_id]})
    return json.dumps(rows, separators=(",", ":")), 0, ""


# ---------------- the simulated machine ----------------
_SIMPLE: dict[str, tuple[str, Callable[..., Any]]] = {
    "caut usage --json": ("caut", caut_usage),
    "caut cost --json": ("caut", caut_cost),
    "caam status --json": ("caam", caam_status),
    "caam limits --format json": ("caam", caam_limits),
    "ru list --json": ("ru", ru_list),
    "ru status --no-fetch --json": ("ru", ru_status),
    "ntm --robot-snapshot": ("ntm", ntm_snapshot),
    "cass health --json": ("cass", cass_health),
    "cass stats --json": ("cass", cass_stats),
    "cass timeline --json --group-by none": ("cass", cass_timeline),
    "rch status --json": ("rch", rch_status),
    "pt robot plan --format json": ("pt", pt_plan),
    "automated_flywheel_setup_checker status --format json":
        ("automated_flywheel_setup_checker", afsc_status),
    "sysmoni --json": ("sysmoni", sysmoni_sample),
    "dcg stats --format json": ("dcg", dcg_stats),
}
_METRICS_URL = "http://127.0.0.1:9100/metrics"
_TAIL_RE = re.compile(r"^f=(?P<path>.+?); if \[ ! -e \"\$f\" \]; then echo (?P<missing>\S+);.*"
                      r"stat -L -c '(?P<header>\S+) %i %s' /dev/stdin && tail -c \+(?P<start>\d+) \| "
                      r"head -c (?P<cap>\d+);", re.S)
_CD_RE = re.compile(r"^cd (?P<path>.+?) && (?P<rest>.*)$", re.S)
_CAP_LINE = re.compile(r"^vc_t (\S+) (\S+)$", re.M)
_BV_RE = re.compile(r"^if command -v bv >/dev/null 2>&1; then bv --robot-triage; else echo (\S+); fi$")
Answer = tuple[str | bytes, int, str]


def _tool_path(tool: str) -> str:
    if tool in _SYSTEM_BIN:
        return f"/usr/bin/{tool}"
    if tool == "sysmoni":
        return "/usr/local/bin/sysmoni"
    return f"{HOME}/.local/bin/{tool}"


class DemoExecutor(Executor):
    """A demo machine at (machine, time): answers the commands collectors send with generated payloads.

    Only tools in the machine's profile exist; anything else exits 127 like a shell would, so the
    capability probe, the runner's gating and the collectors see a machine, not a mock of themselves.
    """

    def __init__(self, world: DemoWorld, machine_id: str, now: datetime):
        self.world = world
        self.machine_id = machine_id
        self.now = now
        self.profile = profiles(world)[machine_id]
        self.commands: list[str] = []  # what was asked, for tests and curiosity

    async def run(self, command: str, *, timeout_s: float, max_bytes: int) -> CommandResult:
        self.commands.append(command)
        out, code, err = self.answer(command)
        data = out.encode() if isinstance(out, str) else out
        return CommandResult(command, code, data[:max_bytes], err.encode(), _DUR,
                             truncated=len(data) > max_bytes)

    def has(self, tool: str) -> bool:
        return tool in self.profile.tools

    def answer(self, command: str) -> Answer:
        w, p, t = self.world, self.profile, self.now
        if CAP_MARK in command and "vc_t " in command:
            return self._capabilities(command)
        if command.startswith("command -v ") and len(command.split()) == 3:
            tool = command.split()[2]
            return (f"{_tool_path(tool)}\n", 0, "") if self.has(tool) else ("", 1, "")
        tail = _TAIL_RE.match(command)
        if tail:
            return self._tail(tail)
        if SQLITE_MARK in command and "python3 -I -c " in command:
            if not self.has("python3"):
                return f"{SQLITE_MARK} no_reader\n", 0, ""
            return sqlite_answer(w, p, t, command)
        cd = _CD_RE.match(command)
        if cd:
            return self._in_repo(shlex.split(cd["path"])[0], cd["rest"])
        if command in _SIMPLE:
            tool, fn = _SIMPLE[command]
            if not self.has(tool):
                return self._not_found(tool)
            res = fn(w, p, t)
            return (res[0], res[1], "") if isinstance(res, tuple) else (res, 0, "")
        try:
            argv = shlex.split(command)
        except ValueError:
            argv = command.split()
        if argv[:4] == ["rano", "export", "--format", "jsonl"]:
            if not self.has("rano"):
                return self._not_found("rano")
            rest = argv[4:]
            since = rest[rest.index("--since") + 1] if "--since" in rest[:-1] else None
            if any(a not in ("--since",) and a != since for a in rest):
                return "", 2, f"rano: unsupported arguments {rest[:4]!r}"
            return rano_export(w, p, t, since), 0, ""
        if argv[:1] == ["curl"]:
            if argv[-1] == _METRICS_URL and self.has("rch"):
                return rch_metrics(w, p, t), 0, ""
            if argv[-1].startswith(BENCH_URL + "/") and p.benchmarker:
                return cloud_benchmarker_api(w, t, argv[-1][len(BENCH_URL):])
            return "", 7, ""  # nothing listening there
        return self._not_found(argv[0] if argv else command)

    @staticmethod
    def _not_found(tool: str) -> Answer:
        return "", 127, f"sh: 1: {tool}: not found\n"

    def _capabilities(self, script: str) -> Answer:
        lines = []
        for tool, flag in _CAP_LINE.findall(script):
            if not self.has(tool):
                lines.append(f"{CAP_MARK}\t{tool}\t0\t\t\n")
                continue
            version = _VERSIONS.get(tool, "") if flag != "''" and self.has("timeout") else ""
            lines.append(f"{CAP_MARK}\t{tool}\t1\t{_tool_path(tool)}\t{version}\n")
        return "".join(lines), 0, ""

    def _tail(self, m: re.Match[str]) -> Answer:
        path = shlex.split(m["path"])[0]
        if path.startswith("$HOME/"):
            path = "~/" + path[len("$HOME/"):]
        start, cap = int(m["start"]) - 1, int(m["cap"])
        w, p, t = self.world, self.profile, self.now
        repo = path[: -len("/.beads/issues.jsonl")] if path.endswith("/.beads/issues.jsonl") else None
        if repo is not None and repo in p.beads_repos:
            content = beads_export(w.seed, repo, _minute(t))
            inode = int(hashlib.sha1(content).hexdigest()[:8], 16) | 1
            size, data = len(content), content[start:start + cap]
        elif path == RCH_HISTORY and self.has("rch"):
            inode = int(hashlib.sha1(f"{self.machine_id}:rch-history".encode()).hexdigest()[:8], 16) | 1
            size, data = rch_history_file(w, p, t, start, cap)
        else:
            return f"{m['missing']}\n", 0, ""
        return f"{m['header']} {inode} {size}\n".encode() + data, 0, ""

    def _in_repo(self, path: str, rest: str) -> Answer:
        p = self.profile
        if path not in {r["path"] for r in p.repos}:
            return "", 2, f"sh: 1: cd: can't cd to {path}\n"
        if rest == "br ready --json":
            if not self.has("br"):
                return self._not_found("br")
            return br_ready(self.world, path, self.now), 0, ""
        bv = _BV_RE.match(rest)
        if bv:
            return (bv_triage(self.world, path, self.now), 0, "") if self.has("bv") else (f"{bv[1]}\n", 0, "")
        return self._not_found(rest.split()[0] if rest.split() else rest)


# ---------------- running the real collectors ----------------
@dataclass
class DemoRun:
    machine_id: str
    collector: str
    at: datetime
    rows: dict[str, int]
    warnings: list[str]


@dataclass(repr=False)  # asyncio may repr a finished task's result: this one holds every row
class DemoCollection:
    """Everything one simulated stretch produced: rows per table, every run, and the cursors after it."""

    rows: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    runs: list[DemoRun] = field(default_factory=list)
    cursors: dict[tuple[str, str], Any] = field(default_factory=dict)
    changed: set[tuple[str, str]] = field(default_factory=set)
    last_runs: dict[tuple[str, str], datetime] = field(default_factory=dict)

    def add(self, result: CollectResult) -> dict[str, int]:
        counts = {}
        for table, rows in result.rows.items():
            if rows:
                self.rows.setdefault(table, []).extend(rows)
                counts[table] = len(rows)
        return counts

    def batch(self) -> Batch:
        """Rows grouped by table and column set (one insert each), plus every cursor that moved."""
        b = Batch()
        for table, rows in self.rows.items():
            groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
            for r in rows:
                groups.setdefault(tuple(r), []).append(r)
            for part in groups.values():
                b.add_rows(table, part)
        for mid, source in sorted(self.changed):
            b.cursors.append(CursorUpdate(mid, source, CURSOR_KEY, self.cursors[(mid, source)]))
        return b


# Collectors without a CLI that some demo machines are configured for (a mail database, an HTTP API).
SIMULATED_FILE_SOURCES = ("mcp_agent_mail", "cloud_benchmarker")


def tool_collectors() -> list[str]:
    """The registered collectors the demo runs: every tool-gated one, plus the file sources it simulates."""
    return registry.tool_collectors() + [n for n in SIMULATED_FILE_SOURCES if n in registry.ALL]


async def collect(world: DemoWorld, machine_ids: Sequence[str], times: Sequence[datetime],
                  cursors: dict[tuple[str, str], Any] | None = None,
                  collectors: Sequence[str] | None = None, every: dict[str, timedelta] | None = None,
                  last_runs: dict[tuple[str, str], datetime] | None = None,
                  run_all_at: datetime | None = None) -> DemoCollection:
    """Run the real collectors against the demo machines at each time, carrying their cursors.

    Per machine and time it does what the daemon does: a capability probe (its rows kept every
    CAPABILITIES_EVERY), then every tool collector whose tool the probe found, and the file sources
    (mcp_agent_mail) where the machine has the file. Machines in a `silent` episode answer nothing,
    as if unreachable. `every` samples some collectors less often (history only).
    """
    out = DemoCollection(cursors=dict(cursors or {}), last_runs=dict(last_runs or {}))
    every = every or {}
    prime_sys(world, machine_ids, [_minute(t) for t in times])
    names = list(collectors) if collectors is not None else tool_collectors()
    classes = [registry.ALL[n] for n in names]
    limits = Limits()
    for t in sorted(times):
        for mid in machine_ids:
            if world.silent(mid, t):
                continue
            ex = DemoExecutor(world, mid, t)
            prof = ex.profile
            marker = out.cursors.get((mid, MARKER_SOURCE))
            last_run = datetime.fromisoformat(marker["at"]) if isinstance(marker, dict) else None
            cache = CapabilityCache(ttl_s=CAPABILITIES_EVERY.total_seconds())
            cap = CapabilitiesCollector(cache)
            ctx = CollectContext(mid, ex, limits=limits, now=t)
            res = await cap.collect(ctx)
            report: CapabilityReport | None = cache.peek(mid)
            prev = out.cursors.get((mid, cap.name))
            due = (not isinstance(prev, dict)
                   or t - datetime.fromisoformat(prev["checked_at"]) >= CAPABILITIES_EVERY)
            if due:
                out.runs.append(DemoRun(mid, cap.name, t, out.add(res), list(res.warnings)))
                out.cursors[(mid, cap.name)] = {"checked_at": t.isoformat()}
                out.changed.add((mid, cap.name))
            for cls in classes:
                if cls.required_tool and report is not None and report.has(cls.required_tool) is False:
                    continue  # the daemon skips it too: the tool is not on this machine
                if cls.required_tool is None and cls.name not in prof.listed_sources:
                    continue  # a source without a CLI runs where vc.toml lists it, i.e. where its file is
                c = cls()
                gap = every.get(c.name)
                seen = out.last_runs.get((mid, c.name))
                if gap is not None and seen is not None and t - seen < gap and t != run_all_at:
                    continue
                out.last_runs[(mid, c.name)] = t
                ctx = CollectContext(mid, ex, cursor=out.cursors.get((mid, c.name)), limits=limits, now=t,
                                     last_run_at=seen or last_run, options=prof.options())
                try:
                    result = await c.collect(ctx)
                except Exception as exc:  # a collector bug must not stop the demo; the run says so
                    out.runs.append(DemoRun(mid, c.name, t, {}, [f"{exc.__class__.__name__}: {exc}"]))
                    continue
                out.runs.append(DemoRun(mid, c.name, t, out.add(result), list(result.warnings)))
                if result.cursor is not None:
                    out.cursors[(mid, c.name)] = result.cursor
                    out.changed.add((mid, c.name))
            out.cursors[(mid, MARKER_SOURCE)] = {"at": t.isoformat()}
            out.changed.add((mid, MARKER_SOURCE))
    return out


def run_collection(world: DemoWorld, machine_ids: Sequence[str], times: Sequence[datetime],
                   cursors: dict[tuple[str, str], Any] | None = None, **kw: Any) -> DemoCollection:
    """`collect` from synchronous code, also from inside a running event loop (the daemon calls its
    hooks from within its cycle's coroutine): then it runs on a worker thread with its own loop."""
    def go() -> DemoCollection:
        return asyncio.run(collect(world, machine_ids, times, cursors, **kw))

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return go()
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="demo-sources") as pool:
        return pool.submit(go).result()


def world_for(store: Store | None, machines: Sequence[DemoMachine], seed: int, times: Sequence[datetime],
              episodes: Sequence[Episode] | None = None, start: datetime | None = None,
              end: datetime | None = None) -> DemoWorld:
    """The world a demo machine lives in: from the arguments, else from the demo recorded in `store`."""
    fleet_machines = tuple(machines)
    if store is not None and (episodes is None or start is None or end is None):
        loaded = load_demo(store)
        if loaded is not None:
            params, eps = loaded
            episodes = eps if episodes is None else episodes
            start = params["start"] if start is None else start
            end = params["end"] if end is None else end
            fleet_machines = tuple(fleet(params["seed"], params["machines"]))
    lo = min(times) if times else datetime.now(UTC)
    hi = max(times) if times else lo
    return DemoWorld(seed, fleet_machines, tuple(episodes or ()), (start or lo).astimezone(UTC),
                     (end or hi).astimezone(UTC))


def demo_source_batch(store: Store | None, machines: list[DemoMachine], seed: int, times: list[datetime],
                      cursors: dict[tuple[str, str], Any], *, episodes: Sequence[Episode] | None = None,
                      start: datetime | None = None, end: datetime | None = None,
                      ) -> tuple[Batch, dict[tuple[str, str], Any]]:
    """Source rows for `machines` at `times`, made by the registered collectors from simulated payloads.

    `cursors` maps (machine_id, source) to that source's cursor and is returned advanced; the
    batch carries every moved cursor for `ingestion_cursors` (cursor_key "demo"), so a restarted
    keep-alive resumes exactly. Episodes and the history span come from the arguments, else from
    the demo recorded in `store`.
    """
    world = world_for(store, machines, seed, times, episodes, start, end)
    got = run_collection(world, [m.machine_id for m in machines], times, cursors)
    return got.batch(), got.cursors


def load_cursors(store: Store, machine_ids: Sequence[str]) -> dict[tuple[str, str], Any]:
    """The demo sources' cursors as the last batch stored them."""
    with store.raw_reader() as con:
        rows = con.execute("SELECT machine_id, source, cursor_json FROM ingestion_cursors "
                           "WHERE cursor_key = ?", [CURSOR_KEY]).fetchall()
    wanted = set(machine_ids)
    return {(m, s): json.loads(c) for m, s, c in rows if m in wanted}


def clear_demo_sources(store: Store) -> None:
    """A new demo replaces the old one's source rows and cursors (demo machines only)."""
    cat = store.catalog()
    demo_ids = "SELECT machine_id FROM machines WHERE is_demo"
    stmts = [f"DELETE FROM {t} WHERE machine_id IN ({demo_ids})" for t in SOURCE_TABLES if t in cat]
    stmts.append(f"DELETE FROM ingestion_cursors WHERE cursor_key = '{CURSOR_KEY}' "
                 f"AND machine_id IN ({demo_ids})")
    store.execute_write("; ".join(stmts))


# ---------------- when to collect ----------------
HISTORY_CADENCE = timedelta(minutes=120)  # coarse over the history (12 machines; more machines, coarser)
# Slow-moving sources are sampled less often in the history (the keep-alive runs everything every time).
# Incremental ones lose nothing by it (their next read catches up); the history's last moment runs all.
HISTORY_EVERY: dict[str, timedelta] = {
    "afsc": timedelta(hours=6), "pt": timedelta(hours=4), "dcg": timedelta(hours=4),
    "mcp_agent_mail": timedelta(hours=4), "cass": timedelta(hours=4), "beads": timedelta(hours=3),
    "cloud_benchmarker": timedelta(hours=6)}
RECENT_CADENCE = timedelta(minutes=60)  # the last hours, where forecasts look
RECENT_SPAN = timedelta(hours=6)
LIVE_CADENCE = timedelta(minutes=10)  # the daemon's keep-alive
LIVE_MAX_TIMES = 12  # a keep-alive catching up after a pause thins its backlog to this many collections


def _scale(n_machines: int) -> int:
    return max(1, math.ceil(n_machines / 12))


def _aligned(lo: datetime, hi: datetime, step: timedelta) -> list[datetime]:
    """Multiples of `step` (since the epoch) in (lo, hi]."""
    s = int(step.total_seconds())
    first = (int(lo.timestamp()) // s + 1) * s
    return [datetime.fromtimestamp(x, UTC) for x in range(first, int(hi.timestamp()) + 1, s)]


def history_times(start: datetime, end: datetime, n_machines: int,
                  episodes: Sequence[Episode] = ()) -> list[datetime]:
    """When the history's simulated collections happen: coarse, denser at the end and through the storm."""
    k = _scale(n_machines)
    times = set(_aligned(start - timedelta(seconds=1), end, HISTORY_CADENCE * k))
    times |= set(_aligned(max(start, end - RECENT_SPAN), end, RECENT_CADENCE * k))
    for e in episodes:
        if e.kind == "load_storm" and e.end is not None:
            times |= {x for x in _aligned(e.start - timedelta(minutes=10), e.end + timedelta(minutes=60),
                                          2 * LIVE_CADENCE * k) if start <= x <= end}
    times.add(end)
    return sorted(times)


def live_times(last: datetime, now: datetime, n_machines: int) -> list[datetime]:
    """The keep-alive's collections after `last` up to `now` (at most LIVE_MAX_TIMES, newest kept)."""
    step = LIVE_CADENCE * _scale(n_machines)
    lo = max(last, now - timedelta(hours=24))
    times = _aligned(lo, now, step)
    if len(times) > LIVE_MAX_TIMES:
        keep = max(1, math.ceil(len(times) / LIVE_MAX_TIMES))
        times = sorted(set(times[::-1][::keep]))[-LIVE_MAX_TIMES:]
    return times


def write_history(store: Store, machines: list[DemoMachine], seed: int, episodes: Sequence[Episode],
                  start: datetime, end: datetime) -> dict[str, int]:
    """Generate and store the sources' history (one write per simulated day); rows inserted per table."""
    times = history_times(start, end, len(machines), episodes)
    world = DemoWorld(seed, tuple(machines), tuple(episodes), start, end)
    ids = [m.machine_id for m in machines]
    cursors: dict[tuple[str, str], Any] = {}
    last_runs: dict[tuple[str, str], datetime] = {}
    inserted: dict[str, int] = {}
    day = timedelta(days=1)
    lo = start
    while lo <= end:
        chunk = [t for t in times if lo <= t < lo + day]
        lo += day
        if not chunk:
            continue
        got = run_collection(world, ids, chunk, cursors, every=HISTORY_EVERY, last_runs=last_runs,
                             run_all_at=end)
        cursors, last_runs = got.cursors, got.last_runs
        for k, v in store.write(got.batch()).inserted.items():
            inserted[k] = inserted.get(k, 0) + v
    return inserted


class SourceKeepAlive:
    """The daemon side: every LIVE_CADENCE of wall time, the demo machines' tools are collected again."""

    def __init__(self, store: Store, params: dict[str, Any], episodes: Sequence[Episode],
                 machines: Sequence[DemoMachine]):
        self.store = store
        self.world = DemoWorld(params["seed"], tuple(machines), tuple(episodes),
                               params["start"].astimezone(UTC), params["end"].astimezone(UTC))
        self.ids = [m.machine_id for m in machines]
        self.cursors: dict[tuple[str, str], Any] | None = None
        self.last: datetime = self.world.end

    def advance(self, now: datetime) -> Batch | None:
        if self.cursors is None:
            self.cursors = load_cursors(self.store, self.ids)
            marks = [datetime.fromisoformat(v["at"]) for (_, s), v in self.cursors.items()
                     if s == MARKER_SOURCE and isinstance(v, dict)]
            self.last = max(marks, default=self.world.end)
        times = live_times(self.last, now, len(self.ids))
        if not times:
            return None
        got = run_collection(self.world, self.ids, times, self.cursors)
        self.cursors = got.cursors
        self.last = times[-1]
        b = got.batch()
        return None if b.is_empty() else b

"""Configuration: `vc.toml` validated by pydantic.

Resolution order for the file: `--config PATH`, then `$VC_CONFIG`, then `./vc.toml`; when none
exists the built-in defaults apply (the local machine only). Every error names the file, the key
and what was expected, because a monitoring tool that silently ignores a typo hides the fleet.
"""

from __future__ import annotations

import os
import re
import socket
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from workbench.alerts.config import AlertsConfig

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CONFIG_NAME = "vc.toml"


class ConfigError(Exception):
    """A config file that cannot be used; the message is meant for a person."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


def _expand(value: str | Path) -> Path:
    return Path(os.path.expandvars(os.path.expanduser(str(value))))


class StorageConfig(_Strict):
    data_dir: Path = Path("./data")
    db_file: str = "vc.duckdb"
    lock_retry_seconds: Annotated[float, Field(gt=0, le=600)] = 10.0

    @field_validator("data_dir", mode="before")
    @classmethod
    def _expand_dir(cls, v: str | Path) -> Path:
        return _expand(v)

    @property
    def db_path(self) -> Path:
        return self.data_dir / self.db_file

    @property
    def spool_dir(self) -> Path:
        return self.data_dir / "spool"


class DaemonConfig(_Strict):
    interval_seconds: Annotated[float, Field(gt=0, le=86400)] = 60.0
    machines_in_flight: Annotated[int, Field(ge=1, le=512)] = 8
    collectors_per_machine: Annotated[int, Field(ge=1, le=64)] = 4
    collector_timeout_seconds: Annotated[float, Field(gt=0, le=3600)] = 30.0
    max_output_bytes: Annotated[int, Field(ge=1024)] = 8 * 1024 * 1024
    max_rows: Annotated[int, Field(ge=1)] = 200_000
    top_processes: Annotated[int, Field(ge=0, le=100)] = 10
    keep_demo_alive: bool = True
    # How long a machine's detected tool list (`command -v`) is trusted before probing again.
    capabilities_ttl_seconds: Annotated[float, Field(ge=0)] = 3600.0


class DashboardConfig(_Strict):
    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=1, le=65535)] = 8501
    default_window: Literal["1h", "6h", "24h", "7d"] = "6h"


class HealthWeights(_Strict):
    cpu: Annotated[float, Field(ge=0)] = 1.0
    memory: Annotated[float, Field(ge=0)] = 1.0
    load_per_core: Annotated[float, Field(ge=0)] = 1.0
    swap: Annotated[float, Field(ge=0)] = 0.5
    disk: Annotated[float, Field(ge=0)] = 1.5
    freshness: Annotated[float, Field(ge=0)] = 2.0
    # Fleet factors (workbench/views/health_fleet.py); each is absent when its source has no data.
    dcg_denies: Annotated[float, Field(ge=0)] = 0.5
    mail_urgent_unread: Annotated[float, Field(ge=0)] = 0.5
    mail_ack_overdue: Annotated[float, Field(ge=0)] = 0.5
    net_short_conns: Annotated[float, Field(ge=0)] = 0.25
    rch_queue: Annotated[float, Field(ge=0)] = 0.75
    rch_workers: Annotated[float, Field(ge=0)] = 0.75
    cass_index: Annotated[float, Field(ge=0)] = 0.5
    accounts: Annotated[float, Field(ge=0)] = 1.0
    source_freshness: Annotated[float, Field(ge=0)] = 0.5  # per collector
    temperature: Annotated[float, Field(ge=0)] = 1.0


class Threshold(_Strict):
    """`warn` is where a factor starts losing score, `crit` where it reaches zero."""

    warn: float
    crit: float


class HealthThresholds(_Strict):
    cpu_pct: Threshold = Threshold(warn=80, crit=98)
    memory_pct: Threshold = Threshold(warn=85, crit=97)
    load_per_core: Threshold = Threshold(warn=1.0, crit=2.5)
    swap_pct: Threshold = Threshold(warn=20, crit=80)
    disk_pct: Threshold = Threshold(warn=85, crit=97)
    stale_seconds: Threshold = Threshold(warn=180, crit=900)
    dcg_denies_per_hour: Threshold = Threshold(warn=5, crit=30)
    mail_urgent_unread: Threshold = Threshold(warn=1, crit=10)
    mail_ack_overdue: Threshold = Threshold(warn=0, crit=5)
    net_short_conns_per_hour: Threshold = Threshold(warn=20, crit=200)
    rch_queue_depth: Threshold = Threshold(warn=5, crit=30)
    rch_builds_per_worker: Threshold = Threshold(warn=2, crit=6)
    cass_index_age_seconds: Threshold = Threshold(warn=21600, crit=172800)
    account_used_pct: Threshold = Threshold(warn=80, crit=98)
    # Age of a collector's last ok run, in multiples of the collection interval.
    source_age_intervals: Threshold = Threshold(warn=3, crit=10)
    temp_c: Threshold = Threshold(warn=80, crit=95)


class HealthConfig(_Strict):
    weights: HealthWeights = HealthWeights()
    thresholds: HealthThresholds = HealthThresholds()
    # Collection interval the per-source freshness factor measures against; None = daemon.interval_seconds.
    source_interval_seconds: Annotated[float, Field(gt=0)] | None = None
    # A close event shorter than this counts as a short-lived connection (rano retry loops).
    short_conn_ms: Annotated[float, Field(gt=0)] = 2000.0
    # An ack-required agent-mail message not acked this long after it was sent is overdue.
    mail_ack_due_seconds: Annotated[float, Field(gt=0)] = 3600.0


_SSH_RE = re.compile(r"^(?:(?P<user>[^@\s]+)@)?(?P<host>[^:\s@]+)(?::(?P<port>\d{1,5}))?$")


class MachineConfig(_Strict):
    id: Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.:-]+$")]
    display_name: str | None = None
    ssh: str = "local"
    tags: list[str] = []
    enabled: bool = True
    collectors: list[str] | None = None
    # Per-source settings passed to collectors, e.g. beads_repos, mail_db_paths, rch_log_paths.
    options: dict[str, Any] = {}
    proxy_jump: str | None = None
    identity_file: Path | None = None
    known_hosts: Path | None = None
    accept_unknown_host_key: bool = False

    @field_validator("ssh")
    @classmethod
    def _check_ssh(cls, v: str) -> str:
        if v != "local" and not _SSH_RE.match(v):
            raise ValueError('expected "local" or "user@host[:port]"')
        return v

    @field_validator("identity_file", "known_hosts", mode="before")
    @classmethod
    def _expand_paths(cls, v: str | Path | None) -> Path | None:
        return None if v is None else _expand(v)

    @property
    def is_local(self) -> bool:
        return self.ssh == "local"


def _default_machines() -> list[MachineConfig]:
    return [MachineConfig(id="local", display_name=socket.gethostname(), ssh="local", tags=["local"])]


class VcConfig(_Strict):
    storage: StorageConfig = StorageConfig()
    daemon: DaemonConfig = DaemonConfig()
    dashboard: DashboardConfig = DashboardConfig()
    health: HealthConfig = HealthConfig()
    alerts: AlertsConfig = AlertsConfig()
    machines: list[MachineConfig] = Field(default_factory=_default_machines)
    source_path: Path | None = Field(default=None, exclude=True)

    @field_validator("machines")
    @classmethod
    def _unique_ids(cls, v: list[MachineConfig]) -> list[MachineConfig]:
        seen: set[str] = set()
        for m in v:
            if m.id in seen:
                raise ValueError(f"duplicate machine id {m.id!r}")
            seen.add(m.id)
        return v

    @property
    def db_path(self) -> Path:
        return self.storage.db_path

    def machine(self, machine_id: str) -> MachineConfig:
        for m in self.machines:
            if m.id == machine_id:
                return m
        known = ", ".join(m.id for m in self.machines) or "none"
        raise ConfigError(f"unknown machine {machine_id!r}; configured machines: {known}")


def _format_validation(path: Path | None, err: ValidationError) -> str:
    where = str(path) if path else "built-in defaults"
    lines = [f"{where}: invalid configuration"]
    for e in err.errors():
        key = ".".join(str(p) for p in e["loc"]) or "(top level)"
        got = e.get("input")
        got_s = "" if isinstance(got, dict) else f" (got {got!r})"
        lines.append(f"  {key}: {e['msg']}{got_s}")
    return "\n".join(lines)


def resolve_config_path(explicit: str | Path | None = None) -> Path | None:
    """The file to read, or None for built-in defaults; an explicit path must exist."""
    if explicit:
        p = _expand(explicit)
        if not p.is_file():
            raise ConfigError(f"{p}: config file not found (from --config)")
        return p
    env = os.environ.get("VC_CONFIG")
    if env:
        p = _expand(env)
        if not p.is_file():
            raise ConfigError(f"{p}: config file not found (from VC_CONFIG)")
        return p
    p = Path.cwd() / DEFAULT_CONFIG_NAME
    return p if p.is_file() else None


def load_config(explicit: str | Path | None = None) -> VcConfig:
    path = resolve_config_path(explicit)
    data: dict = {}
    if path is not None:
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as e:
            raise ConfigError(f"{path}: not valid TOML: {e}") from e
        except OSError as e:
            raise ConfigError(f"{path}: cannot read: {e}") from e
    try:
        cfg = VcConfig.model_validate(data)
    except ValidationError as e:
        raise ConfigError(_format_validation(path, e)) from e
    cfg.source_path = path
    if path is not None and not cfg.storage.data_dir.is_absolute():
        # Relative data dirs are relative to the config file, so `vc --config x/vc.toml` works anywhere.
        cfg.storage.data_dir = (path.parent / cfg.storage.data_dir).resolve()
    elif not cfg.storage.data_dir.is_absolute():
        cfg.storage.data_dir = (Path.cwd() / cfg.storage.data_dir).resolve()
    return cfg

"""Real OpenSSH servers on loopback for integration tests.

Each `Sshd` is a separate `/usr/sbin/sshd -D` with its own port, host key, authorized_keys,
sshd_config, HOME and PATH (a toolbox of fake upstream tools first, then the system dirs), all in a
temp dir. sshd resets PATH for sessions, so PATH and HOME are forced with `SetEnv` in sshd_config
(OpenSSH >= 7.8), which overrides sshd's default environment and needs no per-user files: several
servers can run as the same user (root in CI) and still look like different machines.

`SshdFleet` owns a client key pair, a known_hosts file listing every server's host key, and every
server it started; it stops them all on `close()` / context exit, and an atexit hook catches the
case where a test session dies before its fixture finalizer runs.

Typical session-scoped fixture:

    @pytest.fixture(scope="session")
    def fleet(tmp_path_factory):
        with SshdFleet(tmp_path_factory.mktemp("sshd")) as f:
            yield f
"""

from __future__ import annotations

import atexit
import getpass
import json
import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from tests.toolbox import Tool, make_toolbox
from workbench.config import MachineConfig

SSHD = Path("/usr/sbin/sshd")
SSH_KEYGEN = "ssh-keygen"
SYSTEM_PATH = "/usr/local/bin:/usr/bin:/bin:/usr/local/sbin:/usr/sbin:/sbin"

_LIVE: set[Sshd] = set()


def free_port() -> int:
    """A port nobody listens on right now (the kernel's pick), for a server about to bind it."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def keygen(path: Path, comment: str = "vc-test") -> str:
    """Create an unencrypted ed25519 key pair at `path` (+ .pub); returns the public key line."""
    path.parent.mkdir(parents=True, exist_ok=True)
    for p in (path, path.with_name(path.name + ".pub")):
        p.unlink(missing_ok=True)
    subprocess.run([SSH_KEYGEN, "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)],
                   check=True, timeout=30, capture_output=True)
    return path.with_name(path.name + ".pub").read_text().strip()


def known_hosts_line(port: int, public_key_line: str, host: str = "127.0.0.1") -> str:
    """known_hosts entry as OpenSSH writes it for a non-default port: `[host]:port type key`."""
    key_type, key_b64 = public_key_line.split()[:2]
    name = host if port == 22 else f"[{host}]:{port}"
    return f"{name} {key_type} {key_b64}"


def ensure_privsep_dir() -> None:
    """Debian's sshd refuses to start without /run/sshd when run as root (created at boot normally)."""
    d = Path("/run/sshd")
    if os.geteuid() == 0 and not d.is_dir():
        d.mkdir(mode=0o755, parents=True, exist_ok=True)


def _wait_gone(procs: list[psutil.Process], within_s: float) -> list[psutil.Process]:
    """Processes still running after `within_s` (zombies count as gone: only reaping is left)."""
    deadline = time.monotonic() + within_s
    alive = list(procs)
    while alive and time.monotonic() < deadline:
        still = []
        for p in alive:
            try:
                if p.is_running() and p.status() != psutil.STATUS_ZOMBIE:
                    still.append(p)
            except psutil.NoSuchProcess:
                pass
        alive = still
        if alive:
            time.sleep(0.02)
    return alive


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


@dataclass(eq=False)
class Sshd:
    """One sshd: its files live under `root`; `start()`/`stop()` can be repeated on the same port."""

    name: str
    root: Path
    authorized_key: str
    tools: dict[str, Tool] = field(default_factory=dict)
    extra_config: str = ""
    port: int = 0
    proc: subprocess.Popen | None = None

    def __post_init__(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self.home = self.root / "home"
        self.home.mkdir(exist_ok=True)
        self.bindir = make_toolbox(self.root / "toolbox", self.tools)
        self.host_key = self.root / "ssh_host_ed25519_key"
        self.host_public_key = keygen(self.host_key, f"host-{self.name}")
        self.authorized_keys = self.root / "authorized_keys"
        self.authorized_keys.write_text(self.authorized_key + "\n")
        self.config_path = self.root / "sshd_config"
        self.log_path = self.root / "sshd.log"
        self.user = getpass.getuser()
        if not self.port:
            self.port = free_port()

    # ---------- config ----------
    @property
    def path_env(self) -> str:
        return f"{self.bindir}:{SYSTEM_PATH}"

    def write_config(self) -> None:
        lines = [
            f"Port {self.port}",
            "ListenAddress 127.0.0.1",
            "AddressFamily inet",
            f"HostKey {self.host_key}",
            f"PidFile {self.root / 'sshd.pid'}",
            f"AuthorizedKeysFile {self.authorized_keys}",
            "PermitRootLogin prohibit-password",
            "StrictModes no",
            "UsePAM no",
            "PubkeyAuthentication yes",
            "PasswordAuthentication no",
            "KbdInteractiveAuthentication no",
            "AuthenticationMethods publickey",
            "PermitUserEnvironment no",
            f"SetEnv {_quote('PATH=' + self.path_env)} {_quote('HOME=' + str(self.home))} "
            f"{_quote('VC_TEST_HOST=' + self.name)}",
            "LogLevel VERBOSE",
            "UseDNS no",
            "PrintMotd no",
            "PrintLastLog no",
            "X11Forwarding no",
            "AllowTcpForwarding yes",
            "MaxSessions 10",
            "MaxStartups 100",
            "LoginGraceTime 30",
        ]
        if self.extra_config:
            lines.append(self.extra_config)
        self.config_path.write_text("\n".join(lines) + "\n")

    # ---------- lifecycle ----------
    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self, timeout_s: float = 15.0) -> Sshd:
        """Start and wait until the server sends its SSH banner; raises with the log on failure."""
        if self.running:
            return self
        ensure_privsep_dir()
        self.write_config()
        check = subprocess.run([str(SSHD), "-t", "-f", str(self.config_path)], capture_output=True,
                               text=True, timeout=30)
        if check.returncode != 0:
            raise RuntimeError(f"sshd {self.name}: config rejected: {check.stderr.strip()}")
        self.proc = subprocess.Popen(
            [str(SSHD), "-D", "-f", str(self.config_path), "-E", str(self.log_path)],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            start_new_session=True,
        )
        _LIVE.add(self)
        deadline = time.monotonic() + timeout_s
        last: Exception | None = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                err = self.proc.stderr.read().decode(errors="replace") if self.proc.stderr else ""
                self.proc = None
                _LIVE.discard(self)
                raise RuntimeError(
                    f"sshd {self.name} exited at start: {err.strip()} {self.log_text()[-2000:]}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1.0) as s:
                    if s.recv(64).startswith(b"SSH-"):
                        return self
            except OSError as exc:
                last = exc
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"sshd {self.name} did not answer on port {self.port} within {timeout_s}s: {last}")

    def stop(self, kill: bool = False) -> None:
        """Stop the listener and every per-connection child (they outlive the listener otherwise).

        `kill=True` is a crash: SIGKILL to everything at once, so clients see the connection drop.
        """
        if self.proc is None:
            return
        try:
            parent = psutil.Process(self.proc.pid)
            procs = [*parent.children(recursive=True), parent]
        except psutil.NoSuchProcess:
            procs = []
        sig = signal.SIGKILL if kill else signal.SIGTERM
        for p in procs:
            try:
                p.send_signal(sig)
            except psutil.NoSuchProcess:
                pass
        alive = _wait_gone(procs, 5.0)
        for p in alive:
            try:
                p.kill()
            except psutil.NoSuchProcess:
                pass
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=5)
        if self.proc.stderr:
            self.proc.stderr.close()
        self.proc = None
        _LIVE.discard(self)

    def restart(self) -> Sshd:
        self.stop()
        return self.start()

    # ---------- observation ----------
    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def accepted_logins(self) -> int:
        """Successful authentications so far: one per SSH connection a client made."""
        return self.log_text().count("Accepted publickey for")

    @property
    def ssh_spec(self) -> str:
        return f"{self.user}@127.0.0.1:{self.port}"

    @property
    def known_hosts_line(self) -> str:
        return known_hosts_line(self.port, self.host_public_key)

    def __hash__(self) -> int:
        return id(self)


class SshdFleet:
    """A client identity, a known_hosts file, and the servers started for it."""

    def __init__(self, root: Path):
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True)
        self.client_key = self.root / "client" / "id_ed25519"
        self.client_public_key = keygen(self.client_key, "vc-test-client")
        self.known_hosts = self.root / "client" / "known_hosts"
        self.known_hosts.write_text("")
        self.servers: dict[str, Sshd] = {}

    def add(self, name: str, tools: dict[str, Tool] | None = None, extra_config: str = "",
            start: bool = True, in_known_hosts: bool = True) -> Sshd:
        if name in self.servers:
            raise ValueError(f"server {name!r} already exists")
        srv = Sshd(name=name, root=self.root / name, authorized_key=self.client_public_key,
                   tools=tools or {}, extra_config=extra_config)
        self.servers[name] = srv
        if in_known_hosts:
            with self.known_hosts.open("a") as f:
                f.write(srv.known_hosts_line + "\n")
        if start:
            srv.start()
        return srv

    def machine_config(self, srv: Sshd, machine_id: str | None = None, **overrides) -> MachineConfig:
        fields: dict = {"id": machine_id or srv.name, "ssh": srv.ssh_spec, "identity_file": self.client_key,
                        "known_hosts": self.known_hosts}
        fields.update(overrides)
        return MachineConfig(**fields)

    def machine_toml(self, srv: Sshd, machine_id: str | None = None, **overrides) -> str:
        """A `[[machines]]` block for vc.toml pointing at this server with the fleet's key files."""
        fields: dict = {"id": machine_id or srv.name, "ssh": srv.ssh_spec,
                        "identity_file": str(self.client_key), "known_hosts": str(self.known_hosts)}
        fields.update(overrides)
        return machines_block(fields)

    def close(self) -> None:
        for srv in self.servers.values():
            srv.stop()

    def __enter__(self) -> SshdFleet:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _toml_value(v: object) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return repr(v)
    if isinstance(v, list | tuple):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    return json.dumps(str(v))  # a JSON string is a valid TOML basic string


def machines_block(fields: dict) -> str:
    lines = ["[[machines]]"] + [f"{k} = {_toml_value(v)}" for k, v in fields.items() if v is not None]
    return "\n".join(lines) + "\n"


def write_vc_toml(path: Path, machine_blocks: list[str], data_dir: Path | None = None,
                  extra: str = "") -> Path:
    """A complete vc.toml: optional storage dir, extra top-level text, then the machine blocks."""
    parts: list[str] = []
    if data_dir is not None:
        parts.append(f"[storage]\ndata_dir = {json.dumps(str(data_dir))}\n")
    if extra:
        parts.append(extra.rstrip() + "\n")
    parts.extend(machine_blocks)
    path.write_text("\n".join(parts))
    return path


@atexit.register
def _stop_leftovers() -> None:
    for srv in list(_LIVE):
        try:
            srv.stop(kill=True)
        except Exception:  # interpreter shutdown: best effort, never mask the real exit status
            pass

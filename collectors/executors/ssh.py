"""Run commands on a remote machine over SSH (asyncssh), with the same bounds as the local executor.

Security posture, because this process talks to a whole fleet:
- Host keys are checked against known_hosts (the machine's `known_hosts`, else ~/.ssh/known_hosts).
  An unknown key is refused unless the machine sets `accept_unknown_host_key = true`; a key that
  differs from a listed one is always refused (that is what an intercepted connection looks like).
  Refusals name the host, the file and the SHA256 fingerprint, so a person can check it.
- Public-key authentication only: with `identity_file` exactly that key is offered (IdentitiesOnly),
  otherwise the ssh-agent and the default ~/.ssh/id_* keys. Never passwords or keyboard-interactive.
- ~/.ssh/config is NOT read: vc.toml alone decides where a collector connects.

Cost bounds: connecting is bounded by `connect_timeout_s` (the whole jump chain included); each
command by its own timeout, after which the channel is closed (no pty is ever requested) and a
watcher in the remote wrapper SIGKILLs the command's process group (see `wrap_command`), so a hung
command costs its timeout plus at most a short grace and leaves nothing running. Output beyond
`max_bytes` is cut the same way; at most one SSH window (~2 MB) is in flight, never the whole output.

One connection per executor is reused for all commands (the runner makes one executor per machine
per cycle and calls `close()` at the end). A connection that drops makes the command that was using
it fail with ExecutorError; the next `run()` reconnects, once: a machine that keeps dropping costs one
retry per cycle, not one per command.
"""

from __future__ import annotations

import asyncio
import getpass
import logging
import re
import shlex
import signal as _signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncssh

from collectors.executors.base import CommandResult, Executor, ExecutorError
from workbench.config import MachineConfig

log = logging.getLogger("vc.ssh")

_SPEC_RE = re.compile(r"^(?:(?P<user>[^@\s]+)@)?(?P<host>[^:\s@]+)(?::(?P<port>\d{1,5}))?$")
_STDERR_CAP = 64 * 1024
_CLOSE_GRACE_S = 1.0

# Host keys accepted under `accept_unknown_host_key`, pinned for the life of this process: once a key
# was accepted for host:port, a different key there is refused like any changed key.
_PINNED: dict[tuple[str, int], str] = {}


@dataclass(frozen=True)
class SshTarget:
    user: str
    host: str
    port: int

    @classmethod
    def parse(cls, spec: str) -> SshTarget:
        m = _SPEC_RE.match(spec.strip())
        if not m:
            raise ExecutorError(f"bad ssh target {spec!r}: expected user@host[:port]")
        port = int(m["port"] or 22)
        if not 0 < port < 65536:
            raise ExecutorError(f"bad ssh target {spec!r}: port {port} out of range")
        return cls(m["user"] or getpass.getuser(), m["host"], port)

    def __str__(self) -> str:
        return f"{self.user}@{self.host}:{self.port}"


def parse_jumps(proxy_jump: str | None) -> list[SshTarget]:
    """`proxy_jump` as OpenSSH writes it: one or more comma-separated user@host[:port] hops."""
    if not proxy_jump or not proxy_jump.strip():
        return []
    return [SshTarget.parse(h) for h in proxy_jump.split(",") if h.strip()]


# The command runs with stdin from /dev/null in the background of a small POSIX sh wrapper whose
# stdin is the SSH channel. When the channel closes (our timeout, the output cap, or this process
# dying) sshd closes that pipe, the watcher's `read` sees EOF and SIGKILLs the session's process
# group. This works where the SSH "signal" request does not: sshd refuses it for root logins (no
# privilege separation after auth) and for sshd < 7.9.
_WRAPPER = """exec 3<&0
sh -c "$1" </dev/null &
c=$!
{ while read -r _ <&3; do :; done; kill -KILL -$$ || kill -KILL $c; } >/dev/null 2>&1 &
w=$!
exec 3<&-
wait $c
s=$?
kill $w 2>/dev/null
exit $s"""


def wrap_command(command: str) -> str:
    """The remote command line: POSIX sh and a stable locale whatever the login shell (bash, zsh, fish).

    sshd makes the login shell a session leader and `exec` keeps its pid, so `$$` in the wrapper is the
    process group to kill. A command killed by a signal exits 128+N (shell convention).
    """
    return f"exec env LC_ALL=C NO_COLOR=1 sh -c {shlex.quote(_WRAPPER)} vc-run {shlex.quote(command)}"


def fingerprint(key: asyncssh.SSHKey) -> str:
    return f"{key.get_algorithm()} {key.get_fingerprint('sha256')}"


class _HostKeyPolicy:
    """known_hosts lookup plus the accept-unknown rule for one hop; remembers what the server showed."""

    def __init__(self, target: SshTarget, known_hosts: Path, accept_unknown: bool):
        self.target = target
        self.path = known_hosts
        self.accept_unknown = accept_unknown
        self.file_note = ""
        try:
            self.known = asyncssh.read_known_hosts(str(known_hosts))
        except FileNotFoundError:
            self.known = asyncssh.SSHKnownHosts()
            self.file_note = " (file does not exist)"
        except (OSError, ValueError) as exc:
            raise ExecutorError(f"ssh {target}: cannot read known_hosts {known_hosts}: {exc}") from exc
        self.listed: list[asyncssh.SSHKey] = []
        self.presented: asyncssh.SSHKey | None = None
        self.verdict = ""

    def match(self, host: str, addr: str, port: int | None) -> Any:
        """Called by asyncssh at connect time with the real peer address (known_hosts callable form)."""
        result = self.known.match(host, addr, port)
        self.listed = list(result[0]) + list(result[1])  # host keys and CA keys
        return result

    def validate(self, host: str, port: int, key: asyncssh.SSHKey) -> bool:
        """Reached only when the key is not among the listed ones."""
        self.presented = key
        if self.listed:
            self.verdict = "changed"
            return False
        if not self.accept_unknown:
            self.verdict = "unknown"
            return False
        fp = key.get_fingerprint("sha256")
        pinned = _PINNED.get((host, port))
        if pinned is not None and pinned != fp:
            self.verdict = "changed-since-accepted"
            return False
        _PINNED[(host, port)] = fp
        self.verdict = "accepted"
        log.warning("ssh %s: accepting unknown host key %s (accept_unknown_host_key = true)",
                    self.target, fingerprint(key))
        return True

    def refusal(self) -> str:
        t = self.target
        shown = fingerprint(self.presented) if self.presented is not None else "(no key received)"
        where = f"{self.path}{self.file_note}"
        if self.verdict == "changed":
            listed = ", ".join(fingerprint(k) for k in self.listed[:3])
            return (f"ssh {t}: HOST KEY CHANGED: server presented {shown} but {where} lists {listed}; "
                    f"refusing to connect (possible interception). If the change is expected, replace "
                    f"the entry for {t.host} port {t.port} in {self.path}")
        if self.verdict == "changed-since-accepted":
            return (f"ssh {t}: host key changed since it was accepted in this process: server presented "
                    f"{shown}, earlier {_PINNED.get((t.host, t.port))}; refusing to connect")
        return (f"ssh {t}: unknown host key {shown}: not listed in {where}; refusing to connect. Verify "
                f"the fingerprint and add it (e.g. `ssh-keyscan -p {t.port} {t.host} >> {self.path}`), "
                f"or set accept_unknown_host_key = true for this machine")


class _Client(asyncssh.SSHClient):
    def __init__(self, policy: _HostKeyPolicy, on_lost: Any):
        self._policy = policy
        self._on_lost = on_lost

    def validate_host_public_key(self, host: str, addr: str, port: int, key: asyncssh.SSHKey) -> bool:
        return self._policy.validate(host, port, key)

    def connection_lost(self, exc: Exception | None) -> None:
        self._on_lost(self, exc)


class _Session(asyncssh.SSHClientSession):
    """Collects bounded output; `stop` resolves when the channel ends or the output cap is hit."""

    def __init__(self, max_bytes: int, stop: asyncio.Future):
        self.max_bytes = max_bytes
        self.stop = stop
        self.out = bytearray()
        self.err = bytearray()
        self.truncated = False
        self.exit_status: int | None = None
        self.exit_signal: str | None = None
        self.lost: Exception | None = None

    def data_received(self, data: bytes, datatype: asyncssh.DataType) -> None:
        if datatype == asyncssh.EXTENDED_DATA_STDERR:
            room = _STDERR_CAP - len(self.err)
            if room > 0:
                self.err.extend(data[:room])
            return
        room = self.max_bytes - len(self.out)
        if room > 0:
            self.out.extend(data[:room])
        if len(data) > room and not self.truncated:
            self.truncated = True
            self._resolve()

    def exit_status_received(self, status: int) -> None:
        self.exit_status = status

    def exit_signal_received(self, signal: str, core_dumped: bool, msg: str, lang: str) -> None:
        self.exit_signal = signal

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = exc
        self._resolve()

    def _resolve(self) -> None:
        if not self.stop.done():
            self.stop.set_result(None)

    def exit_code(self) -> int | None:
        if self.exit_status is not None:
            return self.exit_status
        if self.exit_signal:  # same convention as asyncio subprocesses: minus the signal number
            sig = getattr(_signal, f"SIG{self.exit_signal}", None)
            return -int(sig) if sig is not None else None
        return None


class SshExecutor(Executor):
    def __init__(self, machine: MachineConfig, *, connect_timeout_s: float = 10.0,
                 keepalive_s: float = 15.0, max_sessions: int = 8, max_connects: int = 2):
        if machine.is_local:
            raise ExecutorError(f"machine {machine.id!r} is local; use LocalExecutor")
        self.machine_id = machine.id
        self.machine = machine
        self.target = SshTarget.parse(machine.ssh)
        self.jumps = parse_jumps(machine.proxy_jump)
        self.known_hosts = machine.known_hosts or Path("~/.ssh/known_hosts").expanduser()
        self.connect_timeout_s = connect_timeout_s
        self.keepalive_s = keepalive_s
        self.max_connects = max_connects
        self._sessions = asyncio.Semaphore(max_sessions)  # sshd's MaxSessions defaults to 10
        self._lock = asyncio.Lock()
        self._conns: list[asyncssh.SSHClientConnection] = []  # jump hops first, target last
        self._clients: list[_Client] = []
        self._alive = False
        self._attempts = 0
        self._last_error: str | None = None
        self._last_failure_at = -1.0
        self._client_keys: list[asyncssh.SSHKey] | None = None
        self.connects = 0  # successful connections made (observability; tests check reuse)

    @property
    def connect_attempts(self) -> int:
        """Connection attempts since construction or the last close() (bounded by max_connects)."""
        return self._attempts

    # ---------- connection ----------
    def _load_keys(self) -> list[asyncssh.SSHKey] | None:
        """The configured identity, read once; None = agent plus default keys."""
        path = self.machine.identity_file
        if path is None:
            return None
        if self._client_keys is None:
            try:
                self._client_keys = [asyncssh.read_private_key(str(path))]
            except FileNotFoundError as exc:
                raise ExecutorError(f"ssh {self.target}: identity_file {path} does not exist") from exc
            except asyncssh.KeyImportError as exc:
                if "passphrase" in str(exc).lower():
                    raise ExecutorError(
                        f"ssh {self.target}: identity_file {path} is passphrase-protected; load it into "
                        f"ssh-agent and remove identity_file from the machine's config") from exc
                raise ExecutorError(
                    f"ssh {self.target}: identity_file {path} is not a usable key: {exc}") from exc
            except OSError as exc:
                raise ExecutorError(f"ssh {self.target}: cannot read identity_file {path}: {exc}") from exc
        return self._client_keys

    def _on_lost(self, client: _Client, exc: Exception | None) -> None:
        if client in self._clients and self._alive:
            self._alive = False
            if exc is not None:
                self._last_error = f"connection lost: {exc}"
                log.info("ssh %s: connection lost: %s", self.target, exc)

    def _auth_hint(self) -> str:
        if self.machine.identity_file is not None:
            return f"identity_file {self.machine.identity_file}"
        return "ssh-agent and default ~/.ssh/id_* keys"

    async def _open_hop(self, hop: SshTarget, tunnel: asyncssh.SSHClientConnection | None,
                        keys: list[asyncssh.SSHKey] | None, timeout_s: float) -> asyncssh.SSHClientConnection:
        policy = _HostKeyPolicy(hop, self.known_hosts, self.machine.accept_unknown_host_key)
        holder: list[_Client] = []

        def factory() -> _Client:
            c = _Client(policy, self._on_lost)
            holder.append(c)
            return c

        kw: dict[str, Any] = {}
        if tunnel is not None:
            kw["tunnel"] = tunnel
        if keys is not None:
            kw["client_keys"] = keys
            kw["agent_path"] = None
        via = f" (via {', '.join(str(j) for j in self.jumps)})" if tunnel is not None else ""
        try:
            conn = await asyncio.wait_for(asyncssh.connect(
                hop.host, hop.port, username=hop.user, known_hosts=policy.match, client_factory=factory,
                config=None, preferred_auth="publickey", password=None, kbdint_auth=False,
                password_auth=False, gss_auth=False, host_based_auth=False, agent_forwarding=False,
                connect_timeout=timeout_s, login_timeout=timeout_s,
                keepalive_interval=self.keepalive_s, keepalive_count_max=3, **kw,
            ), timeout=timeout_s)
        except asyncssh.HostKeyNotVerifiable as exc:
            raise ExecutorError(policy.refusal() + via) from exc
        except asyncssh.PermissionDenied as exc:
            raise ExecutorError(
                f"ssh {hop}: authentication failed{via}: the server did not accept the public key(s) "
                f"offered ({self._auth_hint()}); public-key auth only, no passwords ({exc.reason})") from exc
        except TimeoutError as exc:
            raise ExecutorError(f"ssh {hop}: no SSH session within {timeout_s:.1f}s{via} (host down, "
                                f"firewalled, or not answering SSH)") from exc
        except ConnectionRefusedError as exc:
            raise ExecutorError(
                f"ssh {hop}: connection refused{via}: nothing listening on port {hop.port}") from exc
        except asyncssh.DisconnectError as exc:
            raise ExecutorError(f"ssh {hop}: server closed the connection{via}: {exc.reason}") from exc
        except asyncssh.ChannelOpenError as exc:
            raise ExecutorError(f"ssh {hop}: jump host refused to forward{via}: {exc.reason}") from exc
        except OSError as exc:
            raise ExecutorError(f"ssh {hop}: cannot connect{via}: {exc.strerror or exc}") from exc
        except asyncssh.Error as exc:
            raise ExecutorError(f"ssh {hop}: {exc.__class__.__name__}{via}: {exc}") from exc
        self._clients.extend(holder)
        return conn

    async def _connect(self) -> None:
        keys = self._load_keys()
        deadline = time.monotonic() + self.connect_timeout_s
        conns: list[asyncssh.SSHClientConnection] = []
        self._clients = []
        try:
            tunnel = None
            for hop in [*self.jumps, self.target]:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise ExecutorError(f"ssh {self.target}: no SSH session within "
                                        f"{self.connect_timeout_s:.1f}s (stuck at {hop})")
                tunnel = await self._open_hop(hop, tunnel, keys, remaining)
                conns.append(tunnel)
        except BaseException:
            for c in reversed(conns):
                c.abort()
            raise
        self._conns = conns
        self._alive = True
        self.connects += 1
        log.debug("ssh %s: connected (%d this cycle)", self.target, self.connects)

    async def _connection(self, requested_at: float) -> asyncssh.SSHClientConnection:
        if self._alive:
            return self._conns[-1]
        async with self._lock:
            if self._alive:
                return self._conns[-1]
            if self._last_failure_at >= requested_at and self._last_error:
                # This caller queued behind an attempt that just failed: share its outcome, don't retry.
                raise ExecutorError(self._last_error)
            if self._attempts >= self.max_connects:
                raise ExecutorError(f"ssh {self.target}: not reconnecting again this cycle ({self._attempts} "
                                    f"connection attempts); last problem: {self._last_error}")
            self._drop_conns()
            self._attempts += 1
            try:
                await self._connect()
            except ExecutorError as exc:
                self._last_error = str(exc)
                self._last_failure_at = time.monotonic()
                raise
            return self._conns[-1]

    def _drop_conns(self) -> None:
        for c in reversed(self._conns):
            c.abort()
        self._conns = []
        self._clients = []
        self._alive = False

    # ---------- commands ----------
    async def run(self, command: str, *, timeout_s: float, max_bytes: int) -> CommandResult:
        requested = time.monotonic()
        conn = await self._connection(requested)
        async with self._sessions:
            loop = asyncio.get_running_loop()
            stop: asyncio.Future = loop.create_future()
            start = time.monotonic()
            try:
                chan, session = await asyncio.wait_for(conn.create_session(
                    lambda: _Session(max_bytes, stop), wrap_command(command), encoding=None,
                    request_pty=False,
                ), timeout=timeout_s)
            except TimeoutError:
                return CommandResult(command, None, b"", b"", time.monotonic() - start, timed_out=True)
            except asyncssh.ChannelOpenError as exc:
                if not self._alive or conn.is_closed():
                    self._alive = False
                    raise ExecutorError(f"ssh {self.target}: connection lost before `{command}` started: "
                                        f"{exc.reason}") from exc
                raise ExecutorError(f"ssh {self.target}: server refused a session for `{command}`: "
                                    f"{exc.reason}") from exc
            except (asyncssh.Error, OSError) as exc:
                self._alive = False
                raise ExecutorError(
                    f"ssh {self.target}: connection lost before `{command}` started: {exc}") from exc
            session: _Session
            timed_out = False
            try:
                await asyncio.wait_for(asyncio.shield(stop), timeout=timeout_s)
            except TimeoutError:
                timed_out = True
            except BaseException:  # cancelled by the caller: the remote command must not outlive us
                chan.close()
                raise
            if timed_out or (session.truncated and session.lost is None and not chan.is_closing()):
                await self._kill(chan)
            elif session.lost is not None:
                self._alive = False
                raise ExecutorError(f"ssh {self.target}: connection lost while running `{command}` "
                                    f"after {time.monotonic() - start:.1f}s: {session.lost}")
            else:
                await self._wait_closed(chan)
            exit_code = None if (timed_out or session.truncated) else session.exit_code()
            if session.truncated and session.exit_status is not None:
                exit_code = session.exit_status
            return CommandResult(command, exit_code, bytes(session.out), bytes(session.err),
                                 time.monotonic() - start, timed_out=timed_out, truncated=session.truncated)

    async def _kill(self, chan: asyncssh.SSHClientChannel) -> None:
        """SIGKILL the remote process group (sshd >= 7.9 honours it), then close the channel."""
        try:
            chan.send_signal("KILL")
        except Exception:  # a channel that is already going away needs no signal
            pass
        chan.close()
        await self._wait_closed(chan)

    async def _wait_closed(self, chan: asyncssh.SSHClientChannel) -> None:
        try:
            await asyncio.wait_for(chan.wait_closed(), timeout=_CLOSE_GRACE_S)
        except TimeoutError:
            chan.abort()

    async def close(self) -> None:
        """Close the connection (and jump hops); the executor may be used again (it reconnects lazily)."""
        conns, self._conns = self._conns, []
        self._alive = False
        for c in reversed(conns):
            c.close()
        for c in reversed(conns):
            try:
                await asyncio.wait_for(c.wait_closed(), timeout=_CLOSE_GRACE_S)
            except (TimeoutError, asyncssh.Error, OSError):
                c.abort()
        self._clients = []
        self._attempts = 0
        self._last_error = None
        self._last_failure_at = -1.0

"""SshExecutor against real OpenSSH servers on loopback: bounds, host keys, auth, reuse, drops.

The servers are session-scoped (tests/sshd.py); tests that kill or re-key a server get their own.
"""

from __future__ import annotations

import asyncio
import socket
import subprocess
import threading
import time
import tracemalloc
import uuid
from pathlib import Path

import psutil
import pytest

from collectors.executors.base import ExecutorError
from collectors.executors.ssh import SshExecutor, SshTarget, parse_jumps, wrap_command
from tests.sshd import Sshd, SshdFleet, free_port, keygen, known_hosts_line, write_vc_toml
from tests.toolbox import Tool

pytestmark = pytest.mark.integration

CAUT_JSON = b'{"schema_version":"caut.v1","ok":true}\n'


@pytest.fixture(scope="session")
def fleet(tmp_path_factory: pytest.TempPathFactory):
    with SshdFleet(tmp_path_factory.mktemp("sshd-exec")) as f:
        f.add("alpha", tools={"caut": Tool(stdout=CAUT_JSON), "broken": Tool(stdout=b"oops\n", exit_code=4)})
        f.add("beta")
        yield f


@pytest.fixture
def alpha(fleet: SshdFleet) -> Sshd:
    return fleet.servers["alpha"]


def run(coro):
    return asyncio.run(coro)


def ssh_fingerprint(pub_line: str) -> str:
    """SHA256 fingerprint as OpenSSH prints it, computed by ssh-keygen (not by our code)."""
    out = subprocess.run(["ssh-keygen", "-lf", "-"], input=pub_line, capture_output=True, text=True,
                         check=True, timeout=30).stdout
    return out.split()[1]


def procs_with(marker: str) -> list[psutil.Process]:
    found = []
    for p in psutil.process_iter(["cmdline"]):
        try:
            if any(marker in part for part in (p.info["cmdline"] or [])):
                found.append(p)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            pass
    return found


def wait_gone(marker: str, within_s: float = 3.0) -> list[psutil.Process]:
    deadline = time.monotonic() + within_s
    left = procs_with(marker)
    while left and time.monotonic() < deadline:
        time.sleep(0.05)
        left = procs_with(marker)
    return left


# ---------- pure helpers ----------

def test_target_and_jump_parsing():
    assert SshTarget.parse("deploy@10.0.0.5:2222") == SshTarget("deploy", "10.0.0.5", 2222)
    assert SshTarget.parse("box").port == 22 and SshTarget.parse("box").user
    assert str(SshTarget.parse("a@b:23")) == "a@b:23"
    assert [str(j) for j in parse_jumps("u@j1:22, v@j2:2200")] == ["u@j1:22", "v@j2:2200"]
    assert parse_jumps(None) == [] and parse_jumps("  ") == []
    with pytest.raises(ExecutorError, match="user@host"):
        SshTarget.parse("a@b:c:d")
    with pytest.raises(ExecutorError, match="out of range"):
        SshTarget.parse("a@b:70000")


def test_wrapped_command_runs_locally_with_posix_semantics():
    """The wrapper is plain sh: exit codes, stdout/stderr and quoting survive it while stdin stays open;
    closing stdin (what sshd does when the channel closes) kills the command's process group."""
    cmd = "printf '%s|' \"it's\" $LC_ALL; echo err >&2; exit 7"
    p = subprocess.Popen(["sh", "-c", wrap_command(cmd)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, start_new_session=True)  # sshd also makes a new session
    try:
        p.wait(timeout=10)
        assert (p.returncode, p.stdout.read(), p.stderr.read()) == (7, b"it's|C|", b"err\n")
    finally:
        p.stdin.close()
        p.stdout.close()
        p.stderr.close()
    marker = f"vc-local-{uuid.uuid4().hex[:8]}"
    p = subprocess.Popen(["sh", "-c", wrap_command(f"sleep 30; echo {marker}")], stdin=subprocess.PIPE,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    time.sleep(0.3)
    assert procs_with(marker), "the command should be running while stdin is open"
    p.stdin.close()
    assert p.wait(timeout=5) == -9
    assert not wait_gone(marker)


# ---------- commands ----------

def test_output_exit_codes_and_remote_environment(fleet: SshdFleet, alpha: Sshd):
    async def go():
        ex = SshExecutor(fleet.machine_config(alpha), connect_timeout_s=5)
        try:
            ok = await ex.run("echo out; echo err >&2; exit 3", timeout_s=5, max_bytes=1000)
            tool = await ex.run("caut usage --json", timeout_s=5, max_bytes=1000)
            bad = await ex.run("broken", timeout_s=5, max_bytes=1000)
            missing = await ex.run("no_such_tool_xyz", timeout_s=5, max_bytes=1000)
            env = await ex.run("echo $HOME; echo $LC_ALL; echo $VC_TEST_HOST", timeout_s=5, max_bytes=1000)
            stdin = await ex.run("cat; echo after", timeout_s=5, max_bytes=1000)
            return ok, tool, bad, missing, env, stdin
        finally:
            await ex.close()

    ok, tool, bad, missing, env, stdin = run(go())
    assert (ok.exit_code, ok.stdout, ok.stderr) == (3, b"out\n", b"err\n")
    assert not ok.timed_out and not ok.truncated and ok.problem() is None
    assert tool.exit_code == 0 and tool.stdout == CAUT_JSON  # the per-host toolbox is on the remote PATH
    assert (bad.exit_code, bad.text) == (4, "oops\n")
    assert missing.exit_code == 127 and "not found" in missing.err_text
    assert env.text.splitlines() == [str(alpha.home), "C", "alpha"]
    assert stdin.exit_code == 0 and stdin.text == "after\n"  # stdin is empty, a command never waits on it


def test_timeout_costs_only_the_timeout_and_kills_the_remote_command(fleet: SshdFleet, alpha: Sshd):
    marker = f"vc-hang-{uuid.uuid4().hex[:8]}"

    async def go():
        ex = SshExecutor(fleet.machine_config(alpha), connect_timeout_s=5)
        try:
            await ex.run("true", timeout_s=5, max_bytes=100)  # connect outside the timed part
            t0 = time.monotonic()
            res = await ex.run(f"sleep 30; echo {marker}", timeout_s=1.5, max_bytes=1000)
            elapsed = time.monotonic() - t0
            after = await ex.run("echo still-usable", timeout_s=5, max_bytes=100)
            return res, elapsed, after, ex.connects
        finally:
            await ex.close()

    res, elapsed, after, connects = run(go())
    assert res.timed_out and res.exit_code is None
    assert "timed out" in res.problem()
    assert 1.4 <= elapsed < 3.0, elapsed
    assert not wait_gone(marker), "the remote sleep survived the timeout"
    assert after.text == "still-usable\n" and connects == 1


def test_cancelled_run_does_not_leave_the_remote_command_running(fleet: SshdFleet, alpha: Sshd):
    """The runner cancels a collector that overruns its budget; its remote command must die too."""
    marker = f"vc-cancel-{uuid.uuid4().hex[:8]}"

    async def go():
        ex = SshExecutor(fleet.machine_config(alpha), connect_timeout_s=5)
        try:
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(ex.run(f"sleep 30; echo {marker}", timeout_s=30, max_bytes=100), 1.0)
            await asyncio.sleep(0.2)
            left = await asyncio.to_thread(wait_gone, marker)
            after = await ex.run("echo next", timeout_s=5, max_bytes=100)
            return left, after
        finally:
            await ex.close()

    left, after = run(go())
    assert not left, "the cancelled command kept running on the remote side"
    assert after.text == "next\n"


def test_output_cap_truncates_50mb_without_buffering_it(fleet: SshdFleet, alpha: Sshd):
    cap = 4 * 1024 * 1024
    marker = f"vc-flood-{uuid.uuid4().hex[:8]}"

    async def go():
        ex = SshExecutor(fleet.machine_config(alpha), connect_timeout_s=5)
        try:
            await ex.run("true", timeout_s=5, max_bytes=100)
            tracemalloc.start()
            try:
                t0 = time.monotonic()
                res = await ex.run(f"head -c 52428800 /dev/zero; sleep 30; echo {marker}", timeout_s=30,
                                   max_bytes=cap)
                elapsed = time.monotonic() - t0
                _, peak = tracemalloc.get_traced_memory()
            finally:
                tracemalloc.stop()
            after = await ex.run("echo fine", timeout_s=5, max_bytes=100)
            return res, elapsed, peak, after
        finally:
            await ex.close()

    res, elapsed, peak, after = run(go())
    assert res.truncated and not res.timed_out and res.exit_code is None
    assert len(res.stdout) == cap and set(res.stdout) == {0}
    assert "byte limit" in res.problem()
    assert peak < 24 * 1024 * 1024, f"peak Python allocations {peak / 1e6:.1f} MB for a 4 MB cap"
    assert elapsed < 10  # stopped at the cap, did not wait out the `sleep 30`
    assert not wait_gone(marker), "the remote writer survived the cut"
    assert after.text == "fine\n"


def test_one_connection_for_many_commands(fleet: SshdFleet, alpha: Sshd):
    before = alpha.accepted_logins()

    async def go():
        ex = SshExecutor(fleet.machine_config(alpha), connect_timeout_s=5, max_sessions=4)
        try:
            seq = [await ex.run("echo $SSH_CONNECTION", timeout_s=5, max_bytes=200) for _ in range(4)]
            par = await asyncio.gather(*[ex.run("sleep 0.2; echo $SSH_CONNECTION", timeout_s=5, max_bytes=200)
                                         for _ in range(12)])  # more than max_sessions: they queue
            first = ex.connects
            await ex.close()
            again = await ex.run("echo $SSH_CONNECTION", timeout_s=5, max_bytes=200)  # lazy reconnect
            return seq, par, first, again, ex.connects
        finally:
            await ex.close()

    seq, par, first, again, total = run(go())
    conns = {r.text.strip() for r in [*seq, *par]}
    assert len(conns) == 1 and all(r.exit_code == 0 for r in [*seq, *par])
    client_port = next(iter(conns)).split()[1]
    assert again.text.split()[1] != client_port  # after close() a new connection
    assert (first, total) == (1, 2)
    assert alpha.accepted_logins() - before == 2


# ---------- host keys ----------

def test_unknown_host_key_is_refused_naming_host_and_fingerprint(fleet: SshdFleet, alpha: Sshd,
                                                                  tmp_path: Path):
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    before = alpha.accepted_logins()
    ex = SshExecutor(fleet.machine_config(alpha, known_hosts=empty), connect_timeout_s=5)
    with pytest.raises(ExecutorError) as err:
        run(ex.run("true", timeout_s=5, max_bytes=100))
    msg = str(err.value)
    assert "unknown host key" in msg and f"127.0.0.1:{alpha.port}" in msg and str(empty) in msg
    assert ssh_fingerprint(alpha.host_public_key) in msg
    assert "accept_unknown_host_key" in msg
    assert alpha.accepted_logins() == before  # refused before authenticating


def test_default_known_hosts_is_the_users_file(fleet: SshdFleet, alpha: Sshd, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    ex = SshExecutor(fleet.machine_config(alpha, known_hosts=None), connect_timeout_s=5)
    with pytest.raises(ExecutorError, match=r"not listed in .*\.ssh/known_hosts \(file does not exist\)"):
        run(ex.run("true", timeout_s=5, max_bytes=100))
    (tmp_path / ".ssh").mkdir()
    (tmp_path / ".ssh" / "known_hosts").write_text(alpha.known_hosts_line + "\n")

    async def go():
        ex = SshExecutor(fleet.machine_config(alpha, known_hosts=None), connect_timeout_s=5)
        try:
            return await ex.run("echo ok", timeout_s=5, max_bytes=100)
        finally:
            await ex.close()

    assert run(go()).text == "ok\n"


def test_changed_host_key_is_refused_even_with_accept_unknown(fleet: SshdFleet, alpha: Sshd, tmp_path: Path):
    other = keygen(tmp_path / "other_host_key", "impostor")
    kh = tmp_path / "known_hosts"
    kh.write_text(known_hosts_line(alpha.port, other) + "\n")
    for accept in (False, True):
        ex = SshExecutor(fleet.machine_config(alpha, known_hosts=kh, accept_unknown_host_key=accept),
                         connect_timeout_s=5)
        with pytest.raises(ExecutorError) as err:
            run(ex.run("true", timeout_s=5, max_bytes=100))
        msg = str(err.value)
        assert "HOST KEY CHANGED" in msg and f"127.0.0.1:{alpha.port}" in msg
        assert ssh_fingerprint(alpha.host_public_key) in msg  # what the server showed
        assert ssh_fingerprint(other) in msg  # what the file lists


def test_accept_unknown_host_key_connects_then_pins_the_key(fleet: SshdFleet, tmp_path: Path):
    srv = fleet.add("tofu", in_known_hosts=False)
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    cfg = fleet.machine_config(srv, known_hosts=empty, accept_unknown_host_key=True)

    async def once() -> str:
        ex = SshExecutor(cfg, connect_timeout_s=5)
        try:
            return (await ex.run("echo $VC_TEST_HOST", timeout_s=5, max_bytes=100)).text
        finally:
            await ex.close()

    assert run(once()) == "tofu\n"
    assert run(once()) == "tofu\n"  # same key again: fine
    new_pub = keygen(srv.host_key, "tofu-rekeyed")  # the server's key changes under us
    srv.restart()
    with pytest.raises(ExecutorError, match="changed since it was accepted") as err:
        run(once())
    assert ssh_fingerprint(new_pub) in str(err.value)
    srv.stop()


# ---------- auth and reachability ----------

def test_wrong_identity_is_a_clear_auth_error(fleet: SshdFleet, alpha: Sshd, tmp_path: Path):
    keygen(tmp_path / "stranger", "not-authorized")
    ex = SshExecutor(fleet.machine_config(alpha, identity_file=tmp_path / "stranger"), connect_timeout_s=5)
    with pytest.raises(ExecutorError) as err:
        run(ex.run("true", timeout_s=5, max_bytes=100))
    msg = str(err.value)
    assert "authentication failed" in msg and str(tmp_path / "stranger") in msg and "no passwords" in msg
    ex = SshExecutor(fleet.machine_config(alpha, identity_file=tmp_path / "absent"), connect_timeout_s=5)
    with pytest.raises(ExecutorError, match="identity_file .*absent does not exist"):
        run(ex.run("true", timeout_s=5, max_bytes=100))


def test_passphrase_protected_identity_is_explained(fleet: SshdFleet, alpha: Sshd, tmp_path: Path):
    key = tmp_path / "locked"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "secret-pass", "-f", str(key)], check=True,
                   timeout=30, capture_output=True)
    ex = SshExecutor(fleet.machine_config(alpha, identity_file=key), connect_timeout_s=5)
    with pytest.raises(ExecutorError, match="passphrase-protected.*ssh-agent"):
        run(ex.run("true", timeout_s=5, max_bytes=100))


def test_unreachable_port_fails_fast_and_clearly(fleet: SshdFleet, alpha: Sshd):
    port = free_port()
    cfg = fleet.machine_config(alpha, id="down", ssh=f"{alpha.user}@127.0.0.1:{port}")
    ex = SshExecutor(cfg, connect_timeout_s=3)
    t0 = time.monotonic()
    with pytest.raises(ExecutorError, match=f"127.0.0.1:{port}: connection refused"):
        run(ex.run("true", timeout_s=5, max_bytes=100))
    assert time.monotonic() - t0 < 3


def test_silent_server_costs_only_the_connect_timeout(fleet: SshdFleet, alpha: Sshd):
    """A port that accepts TCP but never speaks SSH (a hung box) must not hang the cycle."""
    lsock = socket.socket()
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(8)
    port = lsock.getsockname()[1]
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        lsock.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(lsock.accept()[0])
            except OSError:
                continue

    t = threading.Thread(target=accept, daemon=True)
    t.start()
    try:
        cfg = fleet.machine_config(alpha, id="silent", ssh=f"{alpha.user}@127.0.0.1:{port}")
        ex = SshExecutor(cfg, connect_timeout_s=1.0)
        t0 = time.monotonic()
        with pytest.raises(ExecutorError, match=r"no SSH session within 1\.0s"):
            run(ex.run("true", timeout_s=30, max_bytes=100))
        elapsed = time.monotonic() - t0
        assert 0.9 <= elapsed < 2.5, elapsed
        assert held, "the client never reached the silent server"
    finally:
        stop.set()
        t.join(5)
        for s in held:
            s.close()
        lsock.close()


def test_concurrent_runs_share_one_failed_connect(fleet: SshdFleet, alpha: Sshd):
    port = free_port()
    ex = SshExecutor(fleet.machine_config(alpha, id="down2", ssh=f"{alpha.user}@127.0.0.1:{port}"),
                     connect_timeout_s=3)

    async def go():
        return await asyncio.gather(*[ex.run("true", timeout_s=5, max_bytes=10) for _ in range(6)],
                                    return_exceptions=True)

    errors = run(go())
    assert all(isinstance(e, ExecutorError) and "connection refused" in str(e) for e in errors)
    assert ex.connect_attempts == 1  # six collectors, one connection attempt


# ---------- drops and reconnects ----------

def test_dropped_connection_errors_then_reconnects_once_per_cycle(fleet: SshdFleet):
    srv = fleet.add("flaky")
    before = srv.accepted_logins()

    async def go():
        ex = SshExecutor(fleet.machine_config(srv), connect_timeout_s=3)
        try:
            first = await ex.run("echo $SSH_CONNECTION", timeout_s=5, max_bytes=200)
            inflight = asyncio.ensure_future(ex.run("sleep 20", timeout_s=30, max_bytes=100))
            await asyncio.sleep(0.5)
            t0 = time.monotonic()
            await asyncio.to_thread(srv.stop, True)  # crash: listener and session processes die
            with pytest.raises(ExecutorError, match="connection lost while running `sleep 20`"):
                await inflight
            drop_cost = time.monotonic() - t0
            await asyncio.to_thread(srv.start)
            second = await ex.run("echo $SSH_CONNECTION", timeout_s=5, max_bytes=200)  # the one reconnect
            await asyncio.to_thread(srv.stop, True)
            await asyncio.to_thread(srv.start)
            with pytest.raises(ExecutorError, match="not reconnecting again this cycle"):
                await ex.run("true", timeout_s=5, max_bytes=100)
            await ex.close()  # end of cycle: the budget resets
            third = await ex.run("echo $SSH_CONNECTION", timeout_s=5, max_bytes=200)
            return first, drop_cost, second, third, ex.connects
        finally:
            await ex.close()

    first, drop_cost, second, third, connects = run(go())
    assert drop_cost < 5  # noticed the drop, did not wait out the 30 s timeout
    ports = [r.text.split()[1] for r in (first, second, third)]
    assert len(set(ports)) == 3 and connects == 3
    assert srv.accepted_logins() - before == 3
    srv.stop()


def test_idle_drop_reconnects_transparently(fleet: SshdFleet):
    srv = fleet.add("idle")

    async def go():
        ex = SshExecutor(fleet.machine_config(srv), connect_timeout_s=3)
        try:
            a = await ex.run("echo $SSH_CONNECTION", timeout_s=5, max_bytes=200)
            await asyncio.to_thread(srv.restart)  # drops the idle connection between commands
            await asyncio.sleep(0.3)
            b = await ex.run("echo $SSH_CONNECTION", timeout_s=5, max_bytes=200)
            return a, b
        finally:
            await ex.close()

    a, b = run(go())
    assert b.exit_code == 0 and a.text.split()[1] != b.text.split()[1]
    srv.stop()


# ---------- proxy jump and the runner ----------

def test_proxy_jump_reaches_the_target_through_the_jump_host(fleet: SshdFleet, alpha: Sshd):
    beta = fleet.servers["beta"]
    a0, b0 = alpha.accepted_logins(), beta.accepted_logins()
    cfg = fleet.machine_config(beta, proxy_jump=alpha.ssh_spec)

    async def go():
        ex = SshExecutor(cfg, connect_timeout_s=5)
        try:
            return await ex.run("echo $VC_TEST_HOST", timeout_s=5, max_bytes=100)
        finally:
            await ex.close()

    assert run(go()).text == "beta\n"
    assert (alpha.accepted_logins() - a0, beta.accepted_logins() - b0) == (1, 1)
    down = f"{alpha.user}@127.0.0.1:{free_port()}"
    ex = SshExecutor(fleet.machine_config(beta, proxy_jump=down), connect_timeout_s=3)
    with pytest.raises(ExecutorError, match=f"{down}: connection refused"):
        run(ex.run("true", timeout_s=5, max_bytes=100))


def test_runner_collects_a_remote_machine_from_vc_toml(fleet: SshdFleet, alpha: Sshd, tmp_path: Path):
    from collectors.runner import Runner
    from workbench.config import load_config
    from workbench.store import Store

    down = fleet.machine_toml(alpha, machine_id="gone", ssh=f"{alpha.user}@127.0.0.1:{free_port()}")
    path = write_vc_toml(tmp_path / "vc.toml", [fleet.machine_toml(alpha, machine_id="remote-a"), down],
                         data_dir=tmp_path / "data")
    cfg = load_config(path)
    assert cfg.machine("remote-a").identity_file == fleet.client_key
    store = Store.from_config(cfg)
    store.migrate()
    runner = Runner(cfg, store)
    runner.sync_machines()
    report = runner.run_cycle()
    by = {(r.machine_id, r.collector): r for r in report.runs}
    assert by[("remote-a", "probe")].status in ("ok", "warning") and by[("remote-a", "probe")].rows >= 1
    assert by[("gone", "probe")].status == "error" and "connection refused" in by[("gone", "probe")].error
    with store.raw_reader() as con:
        n = con.execute("SELECT count(*) FROM sys_samples WHERE machine_id = 'remote-a'").fetchone()[0]
    assert n == 1

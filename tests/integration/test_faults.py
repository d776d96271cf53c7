"""Faults around a real app process: SIGKILL mid-request, restart, stale and live sockets,
a locked or absent keychain, a full disk under the audit log.

The app is ``gui-approver app --no-gui`` started as a subprocess with the environment of
``app_env`` (a real gnome-keyring on a private bus) or ``no_keychain``. To have a request
pending when the app is killed, the test starts tests/holding_app.py instead: the same headless
app with an approver that holds a mutation for a while and denies it (it can never approve).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pyseto
import pytest
import tinyfs
from checks import json_of, present
from envtools import spawn, stop_process, wait_for
from factories import cargo_request
from fakes import MemoryKeychain
from leakscan import scan

from gui_approver.client import paths
from gui_approver.core import audit, ipc
from gui_approver.core.keys.store import KeyringKeychain, KeyStore, SigningKey

VENV_BIN = Path(sys.executable).parent
BRIDGE = str(VENV_BIN / "cargo-credential-gui-approver")
APP = [str(VENV_BIN / "gui-approver"), "app", "--no-gui"]
HOLDING_APP = [sys.executable, str(Path(__file__).resolve().parents[1] / "holding_app.py")]
LOCAL = "sparse+http://127.0.0.1:8765/index/"
READ = cargo_request(index_url=LOCAL)
PUBLISH = cargo_request("publish", name="foo", vers="1.2.3", cksum="12" * 32, index_url=LOCAL)


class App:
    """One ``gui-approver app --no-gui`` process and its log."""

    def __init__(self, env: dict[str, str], log: Path, command: list[str] = APP) -> None:
        self.env = env
        self.log = log
        self.socket_dir = paths.socket_dir(self.env)
        self.offset = log.stat().st_size if log.exists() else 0
        self.proc = spawn(command, env=self.env, log_path=log)

    def wait_ready(self) -> None:
        def ready() -> bool:
            if self.proc.poll() is not None:
                raise AssertionError(f"the app exited with {self.proc.returncode}:\n{self.text()}")
            pong = ipc.ping(self.socket_dir, timeout=0.5)
            return pong is not None and pong.get("pid") == self.proc.pid

        wait_for(ready, 20, what="the app to answer ping")

    def text(self) -> str:
        return self.log.read_bytes()[self.offset :].decode(errors="replace")

    def stop(self) -> None:
        if self.proc.poll() is None:
            stop_process(self.proc)


def bridge_env(env: dict[str, str]) -> dict[str, str]:
    return {**env, "GUI_APPROVER_NO_AUTOSTART": "1"}


def run_bridge(env: dict[str, str], request: dict[str, Any]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [BRIDGE, "--cargo-plugin"],
        input=json.dumps(request) + "\n",
        capture_output=True,
        text=True,
        env=bridge_env(env),
        timeout=60,
    )


def answer(proc: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.split("\n")
    assert lines[0] == '{"v":[1]}' and lines[2:] == [""], proc.stdout
    result: dict[str, Any] = json.loads(lines[1])
    return result


@pytest.fixture
def key(app_env) -> SigningKey:
    k = SigningKey.generate()
    KeyStore(KeyringKeychain()).add(k, registry="local", index_url=LOCAL, subject=None)
    return k


def token_claims(key: SigningKey, token: str) -> dict[str, Any]:
    decoded = pyseto.decode(pyseto.Key.from_paserk(key.public_paserk), token)
    claims: dict[str, Any] = json_of(decoded.payload)
    return claims


def test_sigkill_while_a_bridge_waits_then_restart(app_env, key, tmp_path):
    log = tmp_path / "app.log"
    app = App(app_env, log, [*HOLDING_APP, "60"])
    outputs: list[str] = []
    try:
        app.wait_ready()
        bridge = subprocess.Popen(
            [BRIDGE, "--cargo-plugin"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=bridge_env(app_env),
        )
        assert bridge.stdin is not None
        bridge.stdin.write(json.dumps(PUBLISH) + "\n")
        bridge.stdin.flush()
        wait_for(
            lambda: "test hold: holding request" in app.text(),
            20,
            what="the app to hold the publish request",
        )
        assert bridge.poll() is None  # the bridge is waiting for the decision
        killed_at = time.monotonic()
        os.kill(app.proc.pid, signal.SIGKILL)
        out, err = bridge.communicate(timeout=10)
        elapsed = time.monotonic() - killed_at
        outputs += [out, err, app.text()]
        assert app.proc.wait(5) == -signal.SIGKILL
    finally:
        app.stop()
    assert elapsed < 1.0, elapsed
    assert bridge.returncode == 0
    lines = out.split("\n")
    assert lines[0] == '{"v":[1]}' and lines[2:] == [""]
    err_body = json.loads(lines[1])["Err"]
    assert err_body["kind"] == "other"
    assert "closed the connection before answering" in err_body["message"]
    assert "nothing was signed" in err_body["message"]
    sock = Path(app.socket_dir) / paths.SOCKET_NAME
    assert sock.exists()  # SIGKILL left the socket file behind: a stale socket

    # Restarted, the app replaces the stale socket and the next request works.
    def identity(p: Path) -> tuple[int, int]:
        st = p.stat()
        return st.st_ino, st.st_ctime_ns  # tmpfs reuses inode numbers at once

    stale = identity(sock)
    again = App(app_env, log)
    try:
        again.wait_ready()
        assert identity(sock) != stale
        result = run_bridge(app_env, READ)
        outputs += [result.stdout, result.stderr]
        token = answer(result)["Ok"]["token"]
        assert set(token_claims(key, token)) == {"iat"}
    finally:
        again.stop()
        outputs.append(again.text())
    assert [r["decision"] for r in audit.read_recent(10)] == ["signed"]  # the held one: killed
    assert scan(key, paths=[app_env.dirs.root, app_env.dirs.runtime_dir], texts=outputs) == []


def test_no_environment_variable_makes_the_real_app_hold_a_request(app_env, key, tmp_path):
    # Holding a request is a test fake injected by tests/holding_app.py; the package has no
    # switch for it (the old GUI_APPROVER_TEST_HOLD_SECONDS is gone): the app denies at once.
    env = {**app_env, "GUI_APPROVER_TEST_HOLD_SECONDS": "60"}
    app = App(env, tmp_path / "app.log")
    try:
        app.wait_ready()
        result = run_bridge(env, PUBLISH)
        assert "nobody can approve" in answer(result)["Err"]["message"]
        assert "test hold" not in app.text()
    finally:
        app.stop()


def test_a_live_socket_is_never_unlinked(app_env, key, tmp_path):
    # Another live instance holding the lock: the second app leaves and the first still works.
    first = App(app_env, tmp_path / "first.log")
    try:
        first.wait_ready()
        second = App(app_env, tmp_path / "second.log")
        assert second.proc.wait(20) == 0
        assert "already running" in second.text()
        assert present(ipc.ping(first.socket_dir))["pid"] == first.proc.pid
        assert "Ok" in answer(run_bridge(app_env, READ))
    finally:
        first.stop()

    # A live socket without the lock (e.g. an older version): not touched either.
    directory = Path(paths.socket_dir(app_env))
    path = directory / paths.SOCKET_NAME
    path.unlink(missing_ok=True)
    other = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    other.bind(str(path))
    other.listen(1)
    try:
        server = ipc.UnixSocketServer(lambda m, a: ({}, None), str(directory))
        with pytest.raises(ipc.AlreadyRunning):
            server.start()
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        probe.connect(str(path))  # still the other instance's socket
        probe.close()
        # ... and the lock was released, so a real start works once it is gone
    finally:
        other.close()
    server = ipc.UnixSocketServer(lambda m, a: ({}, None), str(directory))
    server.start()  # now stale: replaced
    try:
        assert present(ipc.ping(str(directory)))["pid"] == os.getpid()
    finally:
        server.stop()


def test_locked_keychain_is_a_clear_error_and_nothing_is_signed(
    app_env, key, secret_service, tmp_path
):
    secret_service.lock()
    app = App(app_env, tmp_path / "app.log")
    try:
        app.wait_ready()
        result = run_bridge(app_env, READ)
        err = answer(result)["Err"]
        first, hint = err["message"].split("\n")
        assert first == "gui-approver: the keychain is locked; cannot read a key"
        assert hint.strip().startswith("hint: unlock your keychain")
        assert "caused-by" not in err  # a hint is advice, not a cause
        assert "v3.public" not in result.stdout
        (rec,) = audit.read_recent(10)
        assert rec["decision"] == "error" and rec["token_sha256"] is None
        secret_service.unlock()
        assert "Ok" in answer(run_bridge(app_env, READ))
    finally:
        app.stop()
    assert (
        scan(key, paths=[app_env.dirs.root], texts=[result.stdout, result.stderr, app.text()]) == []
    )


def test_no_keychain_is_a_clear_error_and_nothing_is_signed(no_keychain, tmp_path):
    # The public index exists (from an earlier session); the keychain does not.
    KeyStore(MemoryKeychain()).create(registry="local", index_url=LOCAL)
    app = App(no_keychain, tmp_path / "app.log")
    try:
        app.wait_ready()
        result = run_bridge(no_keychain, READ)
    finally:
        app.stop()
    err = answer(result)["Err"]
    assert "keychain" in err["message"] and "v3.public" not in result.stdout
    assert "never falls back to a file" in err["message"]
    assert [r["decision"] for r in audit.read_recent(10)] == ["error"]


def test_full_disk_under_the_audit_log_denies_instead_of_signing(app_env, key, tmp_path):
    reason = tinyfs.can_mount()
    if reason:
        pytest.skip(reason)
    state = app_env.dirs.state_home / "gui-approver"
    try:
        mount = tinyfs.tiny_tmpfs(state)
        mnt = mount.__enter__()
    except OSError as exc:
        pytest.skip(str(exc))
    app = None
    try:
        filler = tinyfs.fill(mnt)
        app = App(app_env, tmp_path / "app.log")
        app.wait_ready()
        for request in (READ, PUBLISH):  # a read, and a mutation (denied anyway: no GUI)
            result = run_bridge(app_env, request)
            err = answer(result)["Err"]
            assert "could not be recorded" in err["message"] or "denied" in err["message"]
            assert "v3.public" not in result.stdout
        err = answer(run_bridge(app_env, READ))["Err"]
        assert err["message"].startswith(
            "gui-approver: read was denied because the decision "
            "could not be recorded: cannot write the audit log"
        )
        assert "No space left on device" in err["message"]
        assert "releases no token it cannot record" in err["message"]
        filler.unlink()
        token = answer(run_bridge(app_env, READ))["Ok"]["token"]
        (rec,) = [r for r in audit.read_recent(10) if r["decision"] == "signed"]
        assert rec["token_sha256"] == audit.token_fingerprint(token)
    finally:
        if app is not None:
            app.stop()
        mount.__exit__(None, None, None)

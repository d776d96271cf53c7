"""Who may talk to the app: only our own uid, through a private 0700 directory.

The cross-user tests create a second user (``useradd``; CI runs as root) and run a client
as that user with ``setpriv --reuid``; without root they are skipped with the reason.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import pwd
import shutil
import socket
import stat
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from checks import present
from envtools import make_runtime_dir
from factories import cargo_request

from gui_approver.client import framing, paths, protocol
from gui_approver.core import ipc

OTHER_USER = "gat-ipc-other"
SYSTEM_PYTHON = shutil.which("python3", path="/usr/bin:/bin")
BRIDGE = str(Path(sys.executable).parent / "cargo-credential-gui-approver")
READ = cargo_request(index_url="sparse+http://127.0.0.1:1/index/", registry=None)

CLIENT = textwrap.dedent("""
    import json, socket, sys
    out = {}
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(10)
    try:
        s.connect(sys.argv[1])
    except OSError as exc:
        out["connect"] = type(exc).__name__
    else:
        out["connect"] = "ok"
        data = b""
        try:
            s.sendall(sys.argv[2].encode())
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
        except OSError as exc:  # the server may hang up before we finish sending
            out["error"] = type(exc).__name__
        out["received"] = data.decode()
    print(json.dumps(out))
""")


@pytest.fixture(scope="module")
def other_user() -> Iterator[pwd.struct_passwd]:
    if os.geteuid() != 0:
        pytest.skip("creating a second user (useradd) and switching to it needs root")
    for tool in ("useradd", "userdel", "setpriv"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed")
    if SYSTEM_PYTHON is None:
        pytest.skip("no python3 outside /root that another user could run")
    created = False
    try:
        pw = pwd.getpwnam(OTHER_USER)
    except KeyError:
        subprocess.run(
            [
                "useradd",
                "--system",
                "--no-create-home",
                "--user-group",
                "--shell",
                "/usr/sbin/nologin",
                OTHER_USER,
            ],
            check=True,
            capture_output=True,
        )
        created = True
        pw = pwd.getpwnam(OTHER_USER)
    try:
        yield pw
    finally:
        if created:
            subprocess.run(["userdel", OTHER_USER], check=False, capture_output=True)


def as_user(pw: pwd.struct_passwd, *argv: str, **kw) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["setpriv", f"--reuid={pw.pw_uid}", f"--regid={pw.pw_gid}", "--clear-groups", *argv],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
        cwd="/",
        **kw,
    )


class Recorder:
    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, message, send_ack):
        self.calls += 1
        return protocol.err_not_found(), None


@pytest.fixture
def shared_tmp() -> Iterator[Path]:
    """A short /tmp dir (reachable by another user once we open it up)."""
    d = make_runtime_dir("gat-acc-")
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def server(shared_tmp) -> Iterator[tuple[ipc.UnixSocketServer, Recorder]]:
    handler = Recorder()
    srv = ipc.UnixSocketServer(handler, str(shared_tmp / "gui-approver"))
    srv.start()
    try:
        yield srv, handler
    finally:
        srv.stop()


def credential_line() -> str:
    return framing.credential_ipc_message(READ, framing.Provenance()).decode()


# ------------------------------------------------------------------------------ layout


def test_socket_dir_is_0700_and_socket_0600_whatever_the_umask(shared_tmp):
    old = os.umask(0)
    try:
        srv = ipc.UnixSocketServer(Recorder(), str(shared_tmp / "gui-approver"))
        srv.start()
    finally:
        os.umask(old)
    try:
        assert stat.S_IMODE(os.stat(srv.directory).st_mode) == 0o700
        assert stat.S_IMODE(os.stat(srv.path).st_mode) == 0o600
    finally:
        srv.stop()


@pytest.mark.parametrize("mode", [0o770, 0o750, 0o707, 0o705, 0o711, 0o777])
def test_startup_refuses_a_dir_others_can_use(shared_tmp, mode):
    d = shared_tmp / "gui-approver"
    d.mkdir()
    d.chmod(mode)
    srv = ipc.UnixSocketServer(Recorder(), str(d))
    with pytest.raises(ipc.UnsafeDirectory, match="accessible by other users"):
        srv.start()
    assert list(d.iterdir()) == []  # not even the lock file


def test_startup_refuses_a_symlink(shared_tmp):
    real = shared_tmp / "real"
    real.mkdir(mode=0o700)
    (shared_tmp / "gui-approver").symlink_to(real)
    with pytest.raises(ipc.UnsafeDirectory, match="not a directory"):
        ipc.UnixSocketServer(Recorder(), str(shared_tmp / "gui-approver")).start()


def test_startup_refuses_a_replaceable_parent(shared_tmp):
    parent = shared_tmp / "open"
    parent.mkdir()
    parent.chmod(0o777)  # writable by all, no sticky bit: anyone could swap our dir
    with pytest.raises(ipc.UnsafeDirectory, match="without the sticky bit"):
        ipc.UnixSocketServer(Recorder(), str(parent / "gui-approver")).start()
    parent.chmod(0o1777)  # like /tmp: fine
    srv = ipc.UnixSocketServer(Recorder(), str(parent / "gui-approver"))
    srv.start()
    srv.stop()


def test_startup_refuses_a_dir_owned_by_someone_else(shared_tmp, other_user):
    d = shared_tmp / "gui-approver"
    d.mkdir(mode=0o700)
    os.chown(d, other_user.pw_uid, other_user.pw_gid)
    with pytest.raises(ipc.UnsafeDirectory, match=f"owned by uid {other_user.pw_uid}"):
        ipc.UnixSocketServer(Recorder(), str(d)).start()
    # the bridge refuses it too, before connecting
    env = {k: v for k, v in os.environ.items() if not k.startswith("GUI_APPROVER")}
    env.update(GUI_APPROVER_RUNTIME_DIR=str(d), GUI_APPROVER_NO_AUTOSTART="1")
    out = subprocess.run(
        [BRIDGE, "--cargo-plugin"],
        input=json.dumps(READ) + "\n",
        capture_output=True,
        text=True,
        env=env,
        timeout=30,
    ).stdout
    assert f"owned by uid {other_user.pw_uid}" in json.loads(out.splitlines()[1])["Err"]["message"]


def test_the_app_refuses_an_unsafe_dir_at_startup(app_env, tmp_path):
    d = Path(paths.socket_dir(app_env))
    d.mkdir(mode=0o700, exist_ok=True)
    d.chmod(0o755)
    proc = subprocess.run(
        [str(Path(sys.executable).parent / "gui-approver"), "app", "--no-gui"],
        env=app_env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 1
    assert "refusing to use the socket directory" in proc.stderr
    assert "accessible by other users (mode 755)" in proc.stderr
    assert not (d / paths.SOCKET_NAME).exists()


# ------------------------------------------------------------------------------ other uid


def test_another_user_cannot_reach_the_socket(server, other_user):
    srv, handler = server
    result = as_user(
        other_user, present(SYSTEM_PYTHON), "-I", "-c", CLIENT, srv.path, credential_line()
    )
    assert json.loads(result.stdout) == {"connect": "PermissionError"}, result.stderr
    assert handler.calls == 0
    assert ipc.ping(srv.directory) is not None  # we still can


def test_another_user_is_refused_even_if_the_permissions_break(
    server, other_user, shared_tmp, caplog
):
    """Defense in depth: with the directory and socket opened up (a broken permission layer),
    the SO_PEERCRED check still refuses the other uid without acting on its request."""
    srv, handler = server
    shared_tmp.chmod(0o711)
    os.chmod(srv.directory, 0o711)
    os.chmod(srv.path, 0o666)
    caplog.set_level(logging.WARNING, logger="gui_approver.core.ipc")
    result = as_user(
        other_user, present(SYSTEM_PYTHON), "-I", "-c", CLIENT, srv.path, credential_line()
    )
    got = json.loads(result.stdout)
    assert got["connect"] == "ok" and got["received"] == "", (got, result.stderr)
    assert got.get("error") in (None, "BrokenPipeError", "ConnectionResetError")
    assert handler.calls == 0
    assert f"refused a connection from uid {other_user.pw_uid}" in caplog.text
    # our own uid is still served
    assert ipc.ping(srv.directory) is not None


LISTENER = textwrap.dedent("""
    import socket, sys
    s = socket.socket(fileno=int(sys.argv[1]))
    s.listen(1)                      # SO_PEERCRED of clients now names this (other) user
    print("listening", flush=True)
    s.settimeout(20)
    conn, _ = s.accept()
    conn.settimeout(5)
    data = b""
    try:
        while True:
            chunk = conn.recv(65536)
            if not chunk:
                break
            data += chunk
    except OSError:
        pass
    print(len(data), flush=True)
""")


def test_the_bridge_refuses_an_app_run_by_another_user(shared_tmp, other_user):
    d = shared_tmp / "gui-approver"
    d.mkdir(mode=0o700)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(str(d / paths.SOCKET_NAME))  # our dir, our socket file ...
    fd = sock.fileno()
    os.set_inheritable(fd, True)
    listener = subprocess.Popen(  # ... but the listening process is another user
        [
            "setpriv",
            f"--reuid={other_user.pw_uid}",
            f"--regid={other_user.pw_gid}",
            "--clear-groups",
            present(SYSTEM_PYTHON),
            "-I",
            "-c",
            LISTENER,
            str(fd),
        ],
        pass_fds=(fd,),
        stdout=subprocess.PIPE,
        text=True,
        cwd="/",
    )
    try:
        assert listener.stdout is not None
        assert listener.stdout.readline().strip() == "listening"
        sock.close()
        env = {k: v for k, v in os.environ.items() if not k.startswith("GUI_APPROVER")}
        env.update(GUI_APPROVER_RUNTIME_DIR=str(d), GUI_APPROVER_NO_AUTOSTART="1")
        out = subprocess.run(
            [BRIDGE, "--cargo-plugin"],
            input=json.dumps(READ) + "\n",
            capture_output=True,
            text=True,
            env=env,
            timeout=30,
        ).stdout
        message = json.loads(out.splitlines()[1])["Err"]["message"]
        assert f"belongs to another user (uid {other_user.pw_uid}); refusing it" in message
        assert listener.stdout.readline().strip() == "0"  # the request was never sent
        assert listener.wait(10) == 0
    finally:
        if listener.poll() is None:
            listener.kill()
            listener.wait()


# ------------------------------------------------------------------------------ slowloris


def _ask(path: str, line: bytes, timeout: float) -> list[dict[str, Any]]:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        s.connect(path)
        s.sendall(line)
        buf = b""
        while chunk := s.recv(65536):
            buf += chunk
    return [json.loads(x) for x in buf.splitlines()]


def test_slow_connections_cannot_make_a_real_request_busy(server, monkeypatch):
    """Slowloris: MAX_CONNECTIONS connections that each trickle a byte now and then (never a
    newline) must not hold the slots a real request needs, and none outlives one deadline."""
    from envtools import wait_for

    srv, handler = server
    monkeypatch.setattr(ipc, "READ_TIMEOUT", 2.0)  # one deadline for the whole message
    monkeypatch.setattr(ipc, "BUSY_WAIT", 2.0)
    slow: list[socket.socket] = []
    stop = threading.Event()
    try:
        for _ in range(ipc.MAX_CONNECTIONS):
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.connect(srv.path)
            s.sendall(b"{")
            slow.append(s)

        def trickle() -> None:  # a byte every 0.5 s: each read alone is well within the timeout
            while not stop.wait(0.5):
                for s in slow:
                    with contextlib.suppress(OSError):
                        s.sendall(b" ")

        threading.Thread(target=trickle, daemon=True).start()
        wait_for(
            lambda: srv.unread_connections() >= ipc.MAX_CONNECTIONS // 4,
            10,
            what="the slow connections to be accepted",
        )
        wait_for(lambda: srv.stale_readers() > 0, 10, what="the slow readers to age")
        t0 = time.monotonic()
        replies = _ask(srv.path, credential_line().encode(), timeout=10)
        elapsed = time.monotonic() - t0
        assert [r["type"] for r in replies] == ["response"], replies
        assert "busy" not in json.dumps(replies)
        assert handler.calls == 1
        assert elapsed < 1.0, f"the real request waited {elapsed:.1f} s"
        # Every slow connection is hung up on once its message deadline has passed, even
        # though it kept sending.
        for s in slow:
            s.settimeout(10)

        def closed(s: socket.socket) -> bool:
            try:
                return s.recv(65536, socket.MSG_DONTWAIT) == b""
            except BlockingIOError:
                return False
            except OSError:
                return True

        wait_for(
            lambda: all(closed(s) for s in slow), 10, what="every slow connection to be dropped"
        )
        assert time.monotonic() - t0 < 2.0 + 3.0
    finally:
        stop.set()
        for s in slow:
            s.close()


def test_one_deadline_per_message_not_per_read(server, monkeypatch):
    """A connection that keeps sending a byte within every read timeout is still dropped
    when the message as a whole is late."""
    from envtools import wait_for

    srv, handler = server
    monkeypatch.setattr(ipc, "READ_TIMEOUT", 1.0)
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.connect(srv.path)
        t0 = time.monotonic()
        dropped: list[float] = []
        while not dropped and time.monotonic() - t0 < 6:
            try:
                s.sendall(b" ")
                s.settimeout(0.3)
                if s.recv(1) == b"":
                    dropped.append(time.monotonic() - t0)
            except TimeoutError:
                continue
            except OSError:
                dropped.append(time.monotonic() - t0)
        assert dropped, "a trickling connection was never dropped"
        assert dropped[0] < 1.0 + 1.0
    wait_for(lambda: srv.unread_connections() == 0, 5, what="the reader to be gone")
    assert handler.calls == 0


# ------------------------------------------------------------------------------ pid namespaces

NS_SERVER = textwrap.dedent("""
    import json, sys, threading
    from gui_approver.client import protocol
    from gui_approver.core import ipc
    from gui_approver.review.requester import resolve_requester

    def handler(message, send_ack):
        prov = message.provenance
        # What the service does: the provenance pid is taken as the kernel's peer pid.
        info = resolve_requester(prov, prov.pid)
        seen = {"pid": prov.pid, "ppid": prov.ppid, "verified": info.verified,
                "pid_source": info.pid_source, "summary": info.summary}
        return protocol.err_other(json.dumps(seen)), None

    srv = ipc.UnixSocketServer(handler, sys.argv[1])
    srv.start()
    print("ready", flush=True)
    sys.stdin.read()
    srv.stop()
""")


def test_pid_zero_from_another_pid_namespace_is_not_trusted(shared_tmp):
    """An app in a child PID namespace gets pid 0 from SO_PEERCRED for a peer outside it; the
    pid the bridge claims must then not be taken as the kernel's word."""
    unshare = shutil.which("unshare")
    if unshare is None:
        pytest.skip("unshare (util-linux) is not installed")
    probe = subprocess.run(
        [unshare, "--user", "--map-root-user", "--pid", "--fork", "true"],
        capture_output=True,
        check=False,
    )
    if probe.returncode != 0:
        pytest.skip(f"cannot create a PID namespace here: {probe.stderr.decode().strip()}")
    directory = str(shared_tmp / "gui-approver")
    proc = subprocess.Popen(
        [
            unshare,
            "--user",
            "--map-root-user",
            "--pid",
            "--fork",
            "--mount-proc",
            sys.executable,
            "-c",
            NS_SERVER,
            directory,
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        claimed = framing.Provenance(pid=os.getpid(), ppid=os.getppid(), cwd=os.getcwd())
        line = framing.credential_ipc_message(READ, claimed)
        replies = _ask(os.path.join(directory, paths.SOCKET_NAME), line, timeout=20)
    finally:
        if proc.stdin is not None:
            proc.stdin.close()
        proc.wait(10)
    seen = json.loads(replies[-1]["response"]["Err"]["message"])
    assert seen["verified"] is False
    assert seen["pid_source"] != "kernel"
    assert seen["pid"] != os.getpid()  # the claimed pid was not passed on as the peer's

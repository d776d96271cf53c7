"""The bridge as cargo runs it: a real subprocess, exact stdout lines."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pyseto
import pytest
from checks import json_of, present
from factories import cargo_request
from fakes import MemoryKeychain

from gui_approver.client import framing, paths, protocol
from gui_approver.core import ipc
from gui_approver.core.approval import Decision
from gui_approver.core.keys.store import KeyStore
from gui_approver.core.service import SigningService, ipc_handler

BRIDGE = str(Path(sys.executable).parent / "cargo-credential-gui-approver")
LOCAL = "sparse+http://127.0.0.1:8765/index/"
READ = json.dumps(cargo_request(index_url=LOCAL))
PUBLISH = json.dumps(
    cargo_request("publish", name="foo", vers="1.2.3", cksum="cd" * 32, index_url=LOCAL)
)


@pytest.fixture
def runtime(tmp_path):
    d = tmp_path / "run"
    d.mkdir(mode=0o700)
    return d


def bridge_env(runtime, **extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith("GUI_APPROVER")}
    env["XDG_RUNTIME_DIR"] = str(runtime)
    env.update(extra)
    return env


def run_bridge(runtime, stdin: str, *, args=("--cargo-plugin",), timeout=30, **extra):
    return subprocess.run(
        [BRIDGE, *args],
        input=stdin.encode(),
        capture_output=True,
        env=bridge_env(runtime, **extra),
        timeout=timeout,
    )


class Approve:
    def __init__(self, approved=True):
        self.approved = approved

    def decide(self, request):
        return Decision.approve() if self.approved else Decision.deny("denied in the dialog")


@pytest.fixture
def app(runtime, tmp_path):
    store = KeyStore(MemoryKeychain(), tmp_path / "keys.json")
    store.create(registry="local", index_url=LOCAL)
    svc = SigningService(store, Approve())
    server = ipc.UnixSocketServer(ipc_handler(svc), str(runtime / "gui-approver"))
    server.start()
    yield svc
    server.stop()


def lines(proc):
    return proc.stdout.decode().splitlines()


def test_read_exact_stdout(runtime, app):
    proc = run_bridge(runtime, READ + "\n")
    assert proc.returncode == 0
    out = lines(proc)
    assert out[0] == '{"v":[1]}'
    assert len(out) == 2
    answer = json.loads(out[1])
    assert list(answer["Ok"]) == ["kind", "token", "cache", "operation_independent"]
    assert answer["Ok"]["cache"] == "session"
    assert answer["Ok"]["operation_independent"] is False
    pub = pyseto.Key.from_paserk(app.store.find(LOCAL).public)
    decoded = pyseto.decode(pub, answer["Ok"]["token"])
    assert json_of(decoded.footer)["url"] == LOCAL


def test_publish_approved_and_denied(runtime, app):
    out = lines(run_bridge(runtime, PUBLISH + "\n"))
    assert json.loads(out[1])["Ok"]["cache"] == "never"
    app.approver = Approve(False)
    proc = run_bridge(runtime, PUBLISH + "\n")
    err = json.loads(lines(proc)[1])["Err"]
    assert err == {
        "kind": "other",
        "message": "publish of foo 1.2.3 was denied in gui-approver (denied in the dialog)",
    }


@pytest.mark.parametrize(
    ("stdin", "needle"),
    [
        ("garbage\n", "not valid JSON"),
        (
            '{"v":2,"registry":{"index-url":"x"},"kind":"get","operation":"read"}\n',
            "unsupported credential protocol version 2",
        ),
        (
            '{"v":1,"registry":{"index-url":"x"},"kind":"get","operation":"fly"}\n',
            "unsupported operation",
        ),
        ("", "closed stdin"),
        ("\xff\xfe\n", "not valid"),
    ],
)
def test_bad_input_gets_one_err_line_and_exit_0(runtime, stdin, needle):
    proc = run_bridge(runtime, stdin, GUI_APPROVER_NO_AUTOSTART="1")
    assert proc.returncode == 0
    out = lines(proc)
    assert out[0] == '{"v":[1]}' and len(out) == 2
    err = json.loads(out[1])["Err"]
    assert err["kind"] == "other" and needle in err["message"]


def test_not_running_and_not_startable_fails_fast(runtime):
    t0 = time.monotonic()
    proc = run_bridge(runtime, READ + "\n", GUI_APPROVER_APP_COMMAND="/bin/false")
    elapsed = time.monotonic() - t0
    err = json.loads(lines(proc)[1])["Err"]
    assert "is not running" in err["message"] and "gui-approver" in err["message"]
    assert "start it with" in err["message"]
    assert elapsed < 1.0, elapsed
    proc = run_bridge(runtime, READ + "\n", GUI_APPROVER_NO_AUTOSTART="1")
    assert "is not running" in json.loads(lines(proc)[1])["Err"]["message"]


def test_missing_app_command_is_a_clear_error(runtime):
    proc = run_bridge(runtime, READ + "\n", GUI_APPROVER_APP_COMMAND="/nonexistent/gui-approver")
    assert "could not be started" in json.loads(lines(proc)[1])["Err"]["message"]


def test_app_closing_the_connection_is_reported(runtime):
    d = runtime / "gui-approver"
    d.mkdir(mode=0o700)
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(str(d / paths.SOCKET_NAME))
    srv.listen(1)

    def accept_and_drop():
        conn, _ = srv.accept()
        conn.recv(65536)
        conn.sendall(framing.encode_ipc({"type": "ack", "timeout": 120}))
        conn.close()

    t = threading.Thread(target=accept_and_drop, daemon=True)
    t.start()
    t0 = time.monotonic()
    proc = run_bridge(runtime, PUBLISH + "\n", GUI_APPROVER_NO_AUTOSTART="1")
    assert time.monotonic() - t0 < 5
    err = json.loads(lines(proc)[1])["Err"]
    assert "closed the connection before answering" in err["message"]
    srv.close()


def test_refuses_a_shared_socket_dir(runtime):
    d = runtime / "gui-approver"
    d.mkdir(mode=0o777)
    d.chmod(0o777)
    proc = run_bridge(runtime, READ + "\n", GUI_APPROVER_NO_AUTOSTART="1")
    assert "accessible by other users" in json.loads(lines(proc)[1])["Err"]["message"]


def test_login_notice_goes_to_stderr_only(runtime, app):
    other = "sparse+http://127.0.0.1:9999/index/"
    login = json.dumps({"v": 1, "registry": {"index-url": other, "name": "other"}, "kind": "login"})
    proc = run_bridge(runtime, login + "\n")
    out = lines(proc)
    assert out == ['{"v":[1]}', '{"Ok":{"kind":"login"}}']
    rec = app.store.find(other)
    assert rec.public in proc.stderr.decode()
    assert "k3.secret" not in proc.stderr.decode() + proc.stdout.decode()


def test_not_found_for_unknown_registry(runtime, app):
    unknown = READ.replace("8765", "1111")
    assert lines(run_bridge(runtime, unknown + "\n"))[1] == '{"Err":{"kind":"not-found"}}'


def test_usage_without_cargo_plugin_flag(runtime):
    proc = run_bridge(runtime, "", args=())
    assert proc.returncode == 2 and proc.stdout == b""
    assert b"credential provider" in proc.stderr
    assert run_bridge(runtime, "", args=("--version",)).stdout.startswith(
        b"cargo-credential-gui-approver "
    )


def test_second_server_instance_is_refused(runtime, app):
    other = ipc.UnixSocketServer(lambda m, a: ({}, None), str(runtime / "gui-approver"))
    with pytest.raises(ipc.AlreadyRunning) as info:
        other.start()
    assert info.value.pid == os.getpid()
    # and the live socket still answers
    assert present(ipc.ping(str(runtime / "gui-approver")))["pid"] == os.getpid()


def test_stale_socket_is_replaced(runtime, tmp_path):
    d = runtime / "gui-approver"
    d.mkdir(mode=0o700)
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(d / paths.SOCKET_NAME))
    stale.close()  # file remains, nobody listens
    server = ipc.UnixSocketServer(lambda m, a: ({}, None), str(d))
    server.start()
    try:
        assert ipc.ping(str(d)) is not None
        assert (os.stat(d / paths.SOCKET_NAME).st_mode & 0o777) == 0o600
    finally:
        server.stop()


def test_auto_started_app_does_not_inherit_code_loading_variables():
    from gui_approver.client.bridge import app_environment

    env = app_environment(
        {
            "DISPLAY": ":5",
            "WAYLAND_DISPLAY": "w",
            "XDG_RUNTIME_DIR": "/run/u",
            "DBUS_SESSION_BUS_ADDRESS": "unix:x",
            "QT_QPA_PLATFORM": "xcb",
            "HOME": "/h",
            "LD_PRELOAD": "/tmp/evil.so",
            "LD_LIBRARY_PATH": "/tmp",
            "PYTHONPATH": "/tmp/evil",
            "PYTHONSTARTUP": "/tmp/x.py",
            "QT_PLUGIN_PATH": "/tmp/plugins",
            "QT_QPA_PLATFORM_PLUGIN_PATH": "/tmp/p",
            "GTK_MODULES": "evil",
        }
    )
    assert env == {
        "DISPLAY": ":5",
        "WAYLAND_DISPLAY": "w",
        "XDG_RUNTIME_DIR": "/run/u",
        "DBUS_SESSION_BUS_ADDRESS": "unix:x",
        "QT_QPA_PLATFORM": "xcb",
        "HOME": "/h",
    }


def test_the_installed_bridge_starts_isolated_from_cargos_python_environment(runtime, tmp_path):
    """cargo's environment may carry PYTHONPATH/PYTHONSTARTUP: the bridge (started `-I -S`
    by the launcher bootstrap writes) must not run code from there, and skips site."""
    evil = tmp_path / "evil"
    (evil / "gui_approver").mkdir(parents=True)
    marker = tmp_path / "ran"
    (evil / "gui_approver" / "__init__.py").write_text(f"open({str(marker)!r}, 'w').write('x')\n")
    (evil / "sitecustomize.py").write_text(f"open({str(marker)!r}, 'w').write('s')\n")
    first_line = Path(BRIDGE).read_text().splitlines()[0]
    assert first_line.endswith(" -IS"), first_line
    result = run_bridge(
        runtime,
        READ + "\n",
        PYTHONPATH=str(evil),
        PYTHONSTARTUP=str(evil),
        GUI_APPROVER_NO_AUTOSTART="1",
    )
    hello, answer = result.stdout.decode().splitlines()
    assert hello == protocol.HELLO
    assert "is not running" in json.loads(answer)["Err"]["message"]
    assert not marker.exists()


# -- issue 12 item 14: a secret passed to `cargo login` crosses the app's socket ------------------


@pytest.mark.parametrize(
    ("token", "command"),
    [
        ("k3.secret.SHOULDNOTAPPEARxyz", "gui-approver key import-cargo"),
        ("cio-SHOULDNOTAPPEAR-bearer", "gui-approver token add --registry other"),
    ],
)
def test_login_with_a_secret_says_how_to_store_it_without_the_socket(runtime, token, command):
    """No check of the peer can stop a same-user process that bound the socket first, so the
    bridge tells the user, on stderr, the way that does not pass the secret through it. The
    app need not be running: the note comes from the bridge itself."""
    login = json.dumps(
        {"v": 1, "registry": {"index-url": LOCAL, "name": "other"}, "kind": "login", "token": token}
    )
    proc = run_bridge(runtime, login + "\n", GUI_APPROVER_NO_AUTOSTART="1")
    err = proc.stderr.decode()
    assert "socket" in err and command in err
    assert "SHOULDNOTAPPEAR" not in err + proc.stdout.decode()
    assert lines(proc)[0] == '{"v":[1]}' and len(lines(proc)) == 2


def test_no_socket_note_without_a_secret(runtime, app):
    login = json.dumps(
        {"v": 1, "registry": {"index-url": LOCAL + "x/", "name": "x"}, "kind": "login"}
    )
    for request in (login, READ):
        proc = run_bridge(runtime, request + "\n")
        assert "import-cargo" not in proc.stderr.decode()
        assert "token add" not in proc.stderr.decode()

"""The test environment itself, proven against the real programs (no mocks)."""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import envtools
import keyring
import keyring.backend
import keyring.errors
import pytest
from checks import present

SERVICE = "gui-approver-test"
USER = "https://registry.example/index"

# -- keyring against a real gnome-keyring --------------------------------------------------


def test_keyring_round_trip_uses_real_secret_service(secret_service):
    backend = keyring.get_keyring()
    assert type(backend).__module__ == "keyring.backends.SecretService"

    assert keyring.get_password(SERVICE, USER) is None
    keyring.set_password(SERVICE, USER, "k3.secret.abc")
    assert keyring.get_password(SERVICE, USER) == "k3.secret.abc"
    keyring.set_password(SERVICE, USER, "k3.secret.def")
    assert keyring.get_password(SERVICE, USER) == "k3.secret.def"
    keyring.delete_password(SERVICE, USER)
    assert keyring.get_password(SERVICE, USER) is None
    with pytest.raises(keyring.errors.PasswordDeleteError):
        keyring.delete_password(SERVICE, USER)


def test_fresh_keychain_has_unlocked_login_default_collection(secret_service):
    import secretstorage

    conn = secretstorage.dbus_init()
    try:
        coll = secretstorage.get_default_collection(conn)
        assert not coll.is_locked()
        assert coll.get_label() == "Login"
    finally:
        conn.close()
    assert envtools.read_alias(secret_service.bus) == "/org/freedesktop/secrets/collection/login"
    # Its files are in the private home, not the developer's.
    keyrings = secret_service.keyring.home / ".local/share/keyrings"
    assert (keyrings / "login.keyring").is_file()
    assert (secret_service.runtime_dir / "bus").is_socket()
    assert (secret_service.runtime_dir / "keyring" / "control").is_socket()


def test_each_test_gets_a_fresh_keychain(secret_service):
    # test_keyring_round_trip deleted its entry, but nothing should be there anyway.
    assert keyring.get_password(SERVICE, "left-over") is None
    keyring.set_password(SERVICE, "left-over", "x")


def test_locked_keychain_raises_keyring_locked_and_unlocks_again(secret_service):
    keyring.set_password(SERVICE, USER, "k3.secret.abc")
    secret_service.lock()
    assert secret_service.is_locked()

    # keyring tries collection.unlock(); gnome-keyring wants a prompter, which the private
    # bus cannot activate, so the prompt is dismissed at once and keyring gives up.
    t0 = time.monotonic()
    with pytest.raises(keyring.errors.KeyringLocked, match="Failed to unlock the collection"):
        keyring.get_password(SERVICE, USER)
    assert time.monotonic() - t0 < 5
    with pytest.raises(keyring.errors.KeyringLocked):
        keyring.set_password(SERVICE, USER, "other")

    secret_service.unlock()
    assert not secret_service.is_locked()
    assert keyring.get_password(SERVICE, USER) == "k3.secret.abc"


def test_subprocess_with_app_env_sees_the_same_keychain(app_env, secret_service):
    keyring.set_password(SERVICE, USER, "from-test-process")
    code = (
        "import keyring, json;"
        "k = keyring.get_keyring();"
        f"print(json.dumps([type(k).__module__, keyring.get_password({SERVICE!r}, {USER!r})]))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], env=app_env, capture_output=True, text=True, check=True
    ).stdout
    assert json.loads(out) == ["keyring.backends.SecretService", "from-test-process"]


def test_secret_service_helpers_clean_up_their_processes(tmp_path):
    ss = envtools.start_secret_service(tmp_path)
    procs = [ss.bus.process, ss.keyring.process]
    runtime = ss.runtime_dir
    assert all(p.poll() is None for p in procs)
    ss.stop()
    assert all(p.poll() is not None for p in procs)
    for p in procs:
        with pytest.raises(ProcessLookupError):
            os.killpg(p.pid, signal.SIGTERM)
    assert not runtime.exists()


# -- no keychain at all ---------------------------------------------------------------------


def test_no_keychain_raises_no_keyring_error(no_keychain):
    assert importlib.util.find_spec("keyrings") is None, "keyrings.alt must not be installed"
    assert "DBUS_SESSION_BUS_ADDRESS" not in no_keychain
    assert "PYTHON_KEYRING_BACKEND" not in no_keychain
    viable = [type(k).__module__ for k in keyring.backend.get_all_keyring() if k.priority > 0]
    assert viable == []

    assert type(keyring.get_keyring()).__module__ == "keyring.backends.fail"
    with pytest.raises(keyring.errors.NoKeyringError):
        keyring.get_password(SERVICE, USER)
    with pytest.raises(keyring.errors.NoKeyringError):
        keyring.set_password(SERVICE, USER, "x")

    code = (
        "import keyring, keyring.errors\n"
        "try:\n"
        f"    keyring.set_password({SERVICE!r}, {USER!r}, 'x')\n"
        "except keyring.errors.NoKeyringError as e:\n"
        "    print('NoKeyringError', type(keyring.get_keyring()).__module__)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], env=no_keychain, capture_output=True, text=True, check=True
    ).stdout
    assert out.split() == ["NoKeyringError", "keyring.backends.fail"]


def test_no_keychain_fixture_is_not_needed_for_isolation():
    # The autouse isolation alone already hides any real keychain.
    assert "DBUS_SESSION_BUS_ADDRESS" not in os.environ
    assert type(keyring.get_keyring()).__module__ == "keyring.backends.fail"


# -- app_env ----------------------------------------------------------------------------------


def test_app_env_points_into_tmp_and_is_applied_in_process(app_env, tmp_path, secret_service):
    for var in (
        "XDG_CONFIG_HOME",
        "XDG_DATA_HOME",
        "XDG_STATE_HOME",
        "XDG_CACHE_HOME",
        "CARGO_HOME",
    ):
        assert Path(app_env[var]).is_dir()
        assert Path(app_env[var]).is_relative_to(tmp_path)
        assert os.environ[var] == app_env[var]
    runtime = Path(app_env["XDG_RUNTIME_DIR"])
    assert stat.S_IMODE(runtime.stat().st_mode) == 0o700
    assert runtime == secret_service.runtime_dir
    assert app_env["DBUS_SESSION_BUS_ADDRESS"] == secret_service.address
    assert app_env["QT_QPA_PLATFORM"] == "offscreen"
    assert "DISPLAY" not in app_env
    assert app_env["PATH"].split(os.pathsep)[0] == str(Path(sys.executable).parent)
    assert app_env["HOME"] == os.environ["HOME"]
    assert not any(k.startswith("CARGO_") and k != "CARGO_HOME" for k in app_env)


# -- Xvfb -----------------------------------------------------------------------------------


@pytest.mark.gui
def test_xvfb_display_is_reachable(xvfb_display):
    assert xvfb_display.display == f":{xvfb_display.number}"
    info = subprocess.run(
        ["xdpyinfo", "-display", xvfb_display.display],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "1280x800 pixels" in info
    assert "depth of root window:    24 planes" in info
    geometry = subprocess.run(
        ["xdotool", "getdisplaygeometry"],
        env={**os.environ, **xvfb_display.env},
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert geometry.split() == ["1280", "800"]


QT_PROBE = """
import sys
from PySide6 import QtCore, QtWidgets
app = QtWidgets.QApplication(sys.argv)
w = QtWidgets.QLabel("probe")
w.setWindowTitle(sys.argv[1])
w.resize(200, 100)
w.show()
QtCore.QTimer.singleShot(20000, app.quit)
print(app.platformName(), flush=True)
app.exec()
"""


@pytest.mark.gui
def test_gui_env_shows_a_real_qt_window_on_xvfb(gui_env, xvfb_display):
    assert gui_env["DISPLAY"] == xvfb_display.display
    assert gui_env["QT_QPA_PLATFORM"] == "xcb"
    assert os.environ["QT_QPA_PLATFORM"] == "offscreen"  # in-process Qt stays offscreen

    title = f"envtools-probe-{os.getpid()}"
    proc = subprocess.Popen(
        [sys.executable, "-c", QT_PROBE, title],
        env=gui_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:

        def window_ids():
            if proc.poll() is not None:
                err = present(proc.stderr).read()
                raise AssertionError(f"Qt probe exited {proc.returncode}: {err}")
            return subprocess.run(
                ["xdotool", "search", "--onlyvisible", "--name", title],
                env=gui_env,
                capture_output=True,
                text=True,
                check=False,
            ).stdout.split()

        (wid,) = envtools.wait_for(window_ids, 20, interval=0.02, what="the Qt probe window")
        geometry = subprocess.run(
            ["xdotool", "getwindowgeometry", wid],
            env=gui_env,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        assert "200x100" in geometry
        assert present(proc.stdout).readline().strip() == "xcb"
    finally:
        envtools.stop_process(proc)
        present(proc.stdout).close()
        present(proc.stderr).close()


# -- Node PASETO verifier ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def p384() -> tuple[bytes, str]:
    from factories import p384_pems

    return p384_pems()


CARGO_LIKE_PAYLOAD = {
    "iat": "2026-11-22T02:20:56.477768694Z",  # cargo's nanosecond timestamps
    "sub": "gui-approver",
    "mutation": "publish",
    "name": "demo-crate",
    "vers": "0.1.0",
    "cksum": "a" * 64,
}
FOOTER = json.dumps({"url": "https://registry.example/index/", "kid": "k3.pid.abc"})


def _sign(private_pem, payload=CARGO_LIKE_PAYLOAD, footer=FOOTER, implicit_assertion=b""):
    import pyseto

    key = pyseto.Key.new(version=3, purpose="public", key=private_pem)
    return pyseto.encode(
        key, payload, footer=footer.encode(), implicit_assertion=implicit_assertion
    ).decode()


def test_node_verifies_pyseto_token_with_footer(node_verifier, p384):
    private_pem, public_pem = p384
    token = _sign(private_pem)
    out = node_verifier(token, public_pem)
    assert out["payload"] == CARGO_LIKE_PAYLOAD
    assert json.loads(out["payload_raw"]) == CARGO_LIKE_PAYLOAD
    assert out["footer"] == FOOTER


def test_node_verifies_token_without_footer(node_verifier, p384):
    private_pem, public_pem = p384
    assert node_verifier(_sign(private_pem, footer=""), public_pem)["footer"] is None


def _flip_char(s: str, index: int) -> str:
    c = s[index]
    return s[:index] + ("A" if c != "A" else "B") + s[index + 1 :]


def test_node_rejects_tampered_tokens(node_verifier, p384):
    private_pem, public_pem = p384
    token = _sign(private_pem)
    header, body, footer = token[:10], token[10:].split(".")[0], token.split(".")[-1]
    assert header == "v3.public."

    tampered_body = header + _flip_char(body, 20) + "." + footer
    with pytest.raises(envtools.NodeVerifyError, match="invalid signature"):
        node_verifier(tampered_body, public_pem)

    import base64

    other_footer = base64.urlsafe_b64encode(b'{"url":"https://evil.example/"}').rstrip(b"=")
    with pytest.raises(envtools.NodeVerifyError, match="invalid signature"):
        node_verifier(header + body + "." + other_footer.decode(), public_pem)


def test_node_rejects_wrong_key_and_nonempty_implicit_assertion(node_verifier, p384):
    private_pem, public_pem = p384
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    other_pem = (
        ec.generate_private_key(ec.SECP384R1())
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    with pytest.raises(envtools.NodeVerifyError, match="invalid signature"):
        node_verifier(_sign(private_pem), other_pem)
    with pytest.raises(envtools.NodeVerifyError, match="invalid signature"):
        node_verifier(_sign(private_pem, implicit_assertion=b"x"), public_pem)


# -- small helpers ----------------------------------------------------------------------------


def test_wait_for_returns_value_and_times_out_clearly():
    start = time.monotonic()
    assert envtools.wait_for(lambda: time.monotonic() - start > 0.05 and "done", 2) == "done"

    def boom():
        raise ConnectionRefusedError("nope")

    with pytest.raises(AssertionError, match=r"waiting for the thing .*ConnectionRefusedError"):
        envtools.wait_for(boom, 0.05, what="the thing")


def test_free_port_is_bindable():
    import socket

    port = envtools.free_port()
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))
        s.listen()
        assert s.getsockname() == ("127.0.0.1", port)


def test_one_shot_node_verify_matches_the_server(node_verifier, p384):
    private_pem, public_pem = p384
    token = _sign(private_pem)
    assert envtools.node_verify(token, public_pem) == node_verifier(token, public_pem)
    with pytest.raises(envtools.NodeVerifyError, match="invalid signature"):
        envtools.node_verify(_flip_char(token, 30), public_pem.encode())
    with pytest.raises(envtools.NodeVerifyError, match="bad public key"):
        node_verifier(token, "not a pem")
    # The server survives rejections.
    assert node_verifier(token, public_pem)["footer"] == FOOTER

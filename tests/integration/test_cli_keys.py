"""The CLI and the key store against a real Secret Service (gnome-keyring), and the bridge
auto-starting the real app."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from envtools import gui_approver as cli
from factories import cargo_request

from gui_approver.client import paths
from gui_approver.core import cargo_config, ipc
from gui_approver.core.keys.store import KeyringKeychain, KeyStore
from gui_approver.errors import KeychainLocked, KeychainUnavailable
from gui_approver.registry.verify import Expected, RegisteredKey, verify_token

BIN = Path(sys.executable).parent
BRIDGE = str(BIN / "cargo-credential-gui-approver")
GOLDEN = Path(__file__).parents[1] / "golden" / "cargo-config"
LOCAL = "sparse+http://127.0.0.1:8765/index/"


def test_key_lifecycle_in_the_real_keychain(app_env):
    r = cli(app_env, "key", "new", "--registry", "local", "--index", LOCAL, "--subject", "me")
    assert r.returncode == 0, r.stderr
    assert "k3.public." in r.stdout and "k3.pid." in r.stdout
    assert "k3.secret" not in r.stdout + r.stderr
    listed = json.loads(cli(app_env, "key", "list", "--json").stdout)
    assert [k["registry"] for k in listed] == ["local"] and listed[0]["subject"] == "me"
    shown = json.loads(cli(app_env, "key", "show", "--registry", "local", "--json").stdout)
    assert shown["public"] in r.stdout
    pem = cli(app_env, "key", "show", "--registry", "local", "--pem").stdout
    assert pem.startswith("-----BEGIN PUBLIC KEY-----")
    # The secret is in the keychain, not in any file.
    secret = KeyringKeychain().get(shown["kip"])
    assert secret is not None and secret.expose().startswith("k3.secret.")
    for path in Path(app_env["XDG_CONFIG_HOME"]).rglob("*"):
        if path.is_file():
            assert secret.expose() not in path.read_text(errors="replace")
    dup = cli(app_env, "key", "new", "--registry", "local", "--index", LOCAL)
    assert dup.returncode == 1 and "already has a key" in dup.stderr
    # delete needs confirmation when not a tty
    no = cli(app_env, "key", "delete", "--registry", "local")
    assert no.returncode == 1 and "--yes" in no.stderr
    yes = cli(app_env, "key", "delete", "--registry", "local", "--yes")
    assert yes.returncode == 0, yes.stderr
    assert KeyringKeychain().get(shown["kip"]) is None
    assert json.loads(cli(app_env, "key", "list", "--json").stdout) == []


def test_key_new_reads_the_index_from_cargo_config(app_env):
    home = Path(app_env["CARGO_HOME"])
    (home / "config.toml").write_text(f'[registries.mine]\nindex = "{LOCAL}"\n')
    r = cli(app_env, "key", "new", "--registry", "mine", "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["index_url"] == LOCAL
    missing = cli(app_env, "key", "new", "--registry", "nowhere")
    assert missing.returncode == 1 and "pass --index" in missing.stderr


def test_no_keychain_is_a_clear_error_never_a_file(no_keychain):
    r = cli(no_keychain, "key", "new", "--registry", "local", "--index", LOCAL)
    assert r.returncode == 1
    assert "no system keychain" in r.stderr and "never falls back to a file" in r.stderr
    assert not any(
        p.is_file() and p.name == "keys.json"
        for p in Path(no_keychain["XDG_CONFIG_HOME"]).rglob("*")
    )
    with pytest.raises(KeychainUnavailable):
        KeyStore(KeyringKeychain()).create(registry="x", index_url=LOCAL)


def test_locked_keychain_is_a_clear_error_and_nothing_signed(app_env, secret_service):
    store = KeyStore(KeyringKeychain())
    rec = store.create(registry="local", index_url=LOCAL)
    secret_service.lock()
    fresh = KeyStore(KeyringKeychain())  # a new app: nothing cached
    with pytest.raises(KeychainLocked):
        fresh.signing_key(rec)
    r = cli(app_env, "key", "new", "--registry", "other", "--index", LOCAL.replace("8765", "1"))
    assert r.returncode == 1 and "locked" in r.stderr


def test_configure_cargo_changes_only_the_intended_lines(app_env, tmp_path):
    home = Path(app_env["CARGO_HOME"])
    (home / "config.toml").write_text((GOLDEN / "before.toml").read_text())
    bridge = "/opt/ga/bin/cargo-credential-gui-approver"
    dry = cli(
        app_env,
        "configure-cargo",
        "--registry",
        "local",
        "--index",
        LOCAL,
        "--bridge",
        bridge,
        "--dry-run",
    )
    assert dry.returncode == 0 and "+credential-provider" in dry.stdout
    assert (home / "config.toml").read_text() == (GOLDEN / "before.toml").read_text()
    # The golden file gives "local" another index: changing it needs confirmation (#14).
    refused = cli(
        app_env, "configure-cargo", "--registry", "local", "--index", LOCAL, "--bridge", bridge
    )
    assert refused.returncode == 1 and "already has the index" in refused.stderr
    assert (home / "config.toml").read_text() == (GOLDEN / "before.toml").read_text()
    r = cli(
        app_env,
        "configure-cargo",
        "--registry",
        "local",
        "--index",
        LOCAL,
        "--bridge",
        bridge,
        "--yes",
    )
    assert r.returncode == 0, r.stderr
    assert (home / "config.toml").read_text() == (GOLDEN / "after.toml").read_text()
    backups = list(home.glob("config.toml.bak-*"))
    assert len(backups) == 1 and backups[0].read_text() == (GOLDEN / "before.toml").read_text()
    again = cli(
        app_env, "configure-cargo", "--registry", "local", "--index", LOCAL, "--bridge", bridge
    )
    assert "already uses gui-approver" in again.stdout
    assert (home / "config.toml").read_text() == (GOLDEN / "after.toml").read_text()


def test_configure_cargo_warns_about_plaintext_secrets(app_env):
    home = Path(app_env["CARGO_HOME"])
    (home / "credentials.toml").write_text('[registries.local]\nsecret-key = "k3.secret.x"\n')
    change = cargo_config.plan_configure("local", LOCAL, bridge=BRIDGE, home=home)
    assert any("plaintext `secret-key`" in w for w in change.warnings)
    crates = cargo_config.plan_configure("crates-io", None, bridge=BRIDGE, home=home)
    assert '[registry]\ncredential-provider = ["' in crates.after


def test_bridge_starts_the_real_app_when_it_is_not_running(app_env):
    store = KeyStore(KeyringKeychain())
    rec = store.create(registry="local", index_url=LOCAL)
    request = json.dumps(cargo_request(index_url=LOCAL))
    assert ipc.ping() is None
    proc = subprocess.run(
        [BRIDGE, "--cargo-plugin"],
        input=request + "\n",
        env=app_env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    try:
        lines = proc.stdout.splitlines()
        assert lines[0] == '{"v":[1]}', proc.stderr
        token = json.loads(lines[1])["Ok"]["token"]
        claims = verify_token(
            token, index_url=LOCAL, keys=[RegisteredKey(public=rec.public)], expected=Expected(None)
        )
        assert set(claims) == {"iat"}
        assert "starting it" in proc.stderr
        pong = ipc.ping()
        assert pong is not None
        # a second app start reports the running one and exits 0
        second = cli(app_env, "app")
        assert second.returncode == 0 and "already running" in second.stderr
        status = cli(app_env, "status", "--json")
        assert json.loads(status.stdout)["running"] is True
    finally:
        pong = ipc.ping()
        if pong:
            pid = pong["pid"]
            assert isinstance(pid, int), pong
            os.kill(pid, signal.SIGTERM)
    from envtools import wait_for

    wait_for(lambda: ipc.ping() is None, timeout=10, what="the app to quit on SIGTERM")
    # the listener closes before the file is unlinked: wait for the clean-up, then check it
    wait_for(
        lambda: not os.path.exists(paths.socket_path()),
        timeout=10,
        what="the app to remove its socket",
    )
    assert not os.path.exists(paths.socket_path())

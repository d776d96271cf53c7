"""Key management (issue 5) against the real keychain and the real cargo."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from checks import present
from envtools import gui_approver as cli
from envtools import wait_for
from factories import request

from gui_approver.client.framing import Provenance
from gui_approver.core import ipc
from gui_approver.core.approval import Decision
from gui_approver.core.keys.store import KeyringKeychain, KeyStore
from gui_approver.core.service import SigningService
from gui_approver.registry.server import DemoRegistry
from gui_approver.registry.verify import Expected, RegisteredKey, verify_token
from gui_approver.secret import Secret

BIN = Path(sys.executable).parent
CLI = str(BIN / "gui-approver")
LOCAL = "sparse+http://127.0.0.1:8765/index/"


def read_req(url=LOCAL):
    return request("yank", name="foo", vers="1.0.0", index_url=url, registry=None)


class Yes:
    def decide(self, request):
        return Decision.approve()


def test_passphrase_key_is_wrapped_in_the_keychain(app_env, tmp_path):
    pw = tmp_path / "pw"
    pw.write_text("correct horse\n")
    r = cli(
        app_env,
        "key",
        "new",
        "--registry",
        "local",
        "--index",
        LOCAL,
        "--passphrase-file",
        str(pw),
        "--json",
    )
    assert r.returncode == 0, r.stderr
    rec = json.loads(r.stdout)
    assert rec["protection"] == "passphrase"
    item = present(KeyringKeychain().get(rec["kip"])).expose()
    assert item.startswith("k3.secret-pw.") and "k3.secret." not in item
    # stdin works too, and a non-tty without a passphrase source never prompts
    r2 = cli(
        app_env,
        "key",
        "new",
        "--registry",
        "two",
        "--index",
        LOCAL + "2",
        "--passphrase-file",
        "-",
        input="quiet orbit pepper tundra\n",
    )
    assert r2.returncode == 0, r2.stderr
    r3 = cli(app_env, "key", "new", "--registry", "three", "--index", LOCAL + "3", "--passphrase")
    assert r3.returncode == 1 and "--passphrase-file" in r3.stderr


def test_wrong_passphrase_denies_lock_asks_again_rate_limited(app_env):
    asked = []
    answers = iter(["wrong", "right", "right"])

    def unlocker(record, why):
        asked.append(why)
        return Secret(next(answers))

    store = KeyStore(KeyringKeychain(), unlocker=unlocker)
    store.create(registry="local", index_url=LOCAL, passphrase=Secret("right"))
    store.forget_cached()
    svc = SigningService(store, Yes())
    out = svc.handle(read_req(), Provenance())
    assert "wrong passphrase" in out.response["Err"]["message"]
    # immediately again: rate-limited, the user is not even asked
    out = svc.handle(read_req(), Provenance())
    assert "too many wrong passphrases" in out.response["Err"]["message"]
    assert len(asked) == 1
    store._failures.clear()  # the back-off elapsed
    assert "Ok" in svc.handle(read_req(), Provenance()).response
    assert "Ok" in svc.handle(read_req(), Provenance()).response
    assert len(asked) == 2  # unlocked: not asked again
    assert store.lock() == 1
    assert "Ok" in svc.handle(read_req(), Provenance()).response
    assert len(asked) == 3  # locked: asked again
    # cancel = nothing signed
    store.lock()
    store.unlocker = lambda r, w: None
    assert "cancelled" in svc.handle(read_req(), Provenance()).response["Err"]["message"]
    # no unlocker at all (e.g. headless): a clear error
    store.unlocker = None
    assert "locked" in svc.handle(read_req(), Provenance()).response["Err"]["message"]


def test_idle_lock(app_env):
    store = KeyStore(KeyringKeychain(), unlocker=lambda r, w: Secret("pw"))
    rec = store.create(registry="local", index_url=LOCAL, passphrase=Secret("pw"))
    store.signing_key(rec)
    assert store.is_unlocked(rec)
    assert store.lock_if_idle(3600) == 0 and store.is_unlocked(rec)
    assert store.lock_if_idle(0) == 1 and not store.is_unlocked(rec)


def test_expired_key_never_signs(app_env):
    store = KeyStore(KeyringKeychain())
    from gui_approver.core.keys.store import SigningKey

    store.add(
        SigningKey.generate(), registry="local", index_url=LOCAL, subject=None, expires="2000-01-01"
    )
    out = SigningService(store, Yes()).handle(read_req(), Provenance())
    msg = out.response["Err"]["message"]
    assert "expired on 2000-01-01" in msg and "nothing was signed" in msg
    assert "key rotate --registry local" in json.dumps(out.response)
    bad = cli(
        app_env, "key", "new", "--registry", "x", "--index", LOCAL + "x", "--expires", "1999-01-01"
    )
    assert bad.returncode == 1 and "not in the future" in bad.stderr
    ok = cli(
        app_env,
        "key",
        "new",
        "--registry",
        "x",
        "--index",
        LOCAL + "x",
        "--expires",
        "90d",
        "--json",
    )
    assert json.loads(ok.stdout)["expires"]


def test_rotate_keeps_old_until_confirmed(app_env):
    first = json.loads(
        cli(app_env, "key", "new", "--registry", "local", "--index", LOCAL, "--json").stdout
    )
    r = cli(app_env, "key", "rotate", "--registry", "local", "--json")
    assert r.returncode == 0, r.stderr
    rot = json.loads(r.stdout)
    assert rot["old"]["kip"] == first["kip"] and rot["new"]["status"] == "pending"
    store = KeyStore(KeyringKeychain())
    assert present(store.find(LOCAL)).kip == first["kip"]  # old still signs
    pending_pub = cli(app_env, "key", "export", "--registry", "local", "--pending").stdout
    assert pending_pub.strip() == rot["new"]["public"]
    done = cli(app_env, "key", "rotate", "--registry", "local", "--confirm", "--json")
    assert done.returncode == 0, done.stderr
    store = KeyStore(KeyringKeychain())
    assert present(store.find(LOCAL)).kip == rot["new"]["kip"]
    assert KeyringKeychain().get(first["kip"]) is None
    assert [r["status"] for r in json.loads(cli(app_env, "key", "list", "--json").stdout)] == [
        "active"
    ]


@pytest.mark.e2e
def test_import_from_real_cargo_login_then_publish_through_the_bridge(app_env, tmp_path):
    registry = DemoRegistry(tmp_path / "reg")
    registry.start()
    home = Path(app_env["CARGO_HOME"])
    (home / "config.toml").write_text(
        "# keep me\n[registries.local]\n"
        f'index = "{registry.index_url}"\ncredential-provider = "cargo:paseto"\n'
    )
    env = dict(app_env, RUSTC_BOOTSTRAP="1", CARGO_TERM_COLOR="never")
    app = None
    try:
        login = subprocess.run(
            ["cargo", "-Z", "asymmetric-token", "login", "--registry", "local"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            input="",
        )
        assert login.returncode == 0, login.stderr
        public = present(re.search(r"k3\.public\.[A-Za-z0-9_-]+", login.stderr)).group(0)
        creds = home / "credentials.toml"
        before = creds.read_text()
        assert "secret-key" in before
        creds.write_text("# my credentials\n" + before + '\n[registries.other]\ntoken = "t"\n')
        os.chmod(creds, 0o600)
        original = creds.read_text()
        registry.add_key(RegisteredKey(public=public))

        imp = cli(app_env, "key", "import-cargo", "--registry", "local")
        assert imp.returncode == 0, imp.stderr
        assert public in imp.stdout and "nothing to re-register" in imp.stdout
        after = creds.read_text()
        assert "secret-key" not in after and "k3.secret" not in after
        expected = (
            "\n".join(line for line in original.splitlines() if not line.startswith("secret-key"))
            + "\n"
        )
        assert after == expected
        assert (os.stat(creds).st_mode & 0o777) == 0o600
        assert present(KeyStore(KeyringKeychain()).find(registry.index_url)).public == public
        assert "cargo-credential-gui-approver" in (home / "config.toml").read_text()
        assert "# keep me" in (home / "config.toml").read_text()

        app = subprocess.Popen(
            [CLI, "app", "--no-gui", "--auto-approve-loopback"],
            env=app_env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        wait_for(lambda: ipc.ping() is not None, timeout=10, what="the headless app")
        crate = tmp_path / "imported"
        (crate / "src").mkdir(parents=True)
        (crate / "Cargo.toml").write_text(
            '[package]\nname = "imported"\nversion = "0.1.0"\n'
            'edition = "2021"\nlicense = "MIT"\n'
            'description = "x"\n'
        )
        (crate / "src" / "lib.rs").write_text("")
        pub = subprocess.run(
            ["cargo", "publish", "--registry", "local", "--no-verify", "--allow-dirty"],
            cwd=crate,
            env=app_env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert pub.returncode == 0, pub.stderr
        assert "imported" in registry.crates()
        token = registry.accepted_tokens[-1]
        claims = verify_token(
            token,
            index_url=registry.index_url,
            keys=[RegisteredKey(public=public)],
            expected=Expected(
                "publish", "imported", "0.1.0", registry.crates()["imported"][0]["cksum"]
            ),
        )
        assert claims["name"] == "imported"
    finally:
        if app is not None:
            app.send_signal(signal.SIGTERM)
            app.wait(10)
        registry.stop()


def test_key_lock_cli_locks_the_running_app(app_env, tmp_path):
    none = cli(app_env, "key", "lock", "--json")
    assert none.returncode == 0 and json.loads(none.stdout) == {"running": False, "locked": 0}
    server_store = KeyStore(KeyringKeychain())
    rec = server_store.create(registry="local", index_url=LOCAL, passphrase=Secret("pw"))
    server_store.unlock(rec, Secret("pw"))
    server = ipc.UnixSocketServer(lambda m, a: ({}, None), on_lock=server_store.lock)
    server.start()
    try:
        r = cli(app_env, "key", "lock", "--json")
        assert r.returncode == 0, r.stderr
        assert json.loads(r.stdout) == {"running": True, "locked": 1}
        assert not server_store.is_unlocked(rec)
    finally:
        server.stop()

"""The hardware-key CLI (`key new --pkcs11`, `hardware list`, `key unlock`, `key lock`) as
subprocesses against a real SoftHSM2 token, the running headless app, the real cargo publishing
to the demo registry, and a leak scan for the PIN."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pyseto
import pytest
from envtools import gui_approver, wait_for
from leakscan import scan_pin
from softhsm import PIN, WRONG_PIN

from gui_approver.core import ipc
from gui_approver.registry.server import DemoRegistry
from gui_approver.registry.verify import Expected, RegisteredKey, verify_token

BIN = Path(sys.executable).parent
CLI = str(BIN / "gui-approver")
LOCAL = "sparse+http://127.0.0.1:8765/index/"
URI = "pkcs11:token=gat-token;id=%42"


@pytest.fixture
def hw_env(app_env, softhsm):
    softhsm.init_token("gat-token")
    env = Env(app_env)
    env.update(softhsm.env)
    env["CARGO_TERM_COLOR"] = "never"
    env.dirs = app_env.dirs
    return env


class Outputs(list[str | bytes]):
    pass


class Env(dict[str, str]):
    dirs: object


def cli(env, *args, input=None, outputs=None):
    r = gui_approver(env, *args, input=input)
    if outputs is not None:
        outputs += [r.stdout, r.stderr]
    return r


def test_key_new_generates_on_the_token_and_lists(hw_env, softhsm, tmp_path):
    empty = json.loads(cli(hw_env, "hardware", "list", "--module", softhsm.module, "--json").stdout)
    (tok,) = empty["modules"][0]["tokens"]
    assert tok["label"] == "gat-token" and tok["keys"] == []
    pin_file = tmp_path / "pin"
    pin_file.write_text(PIN + "\n")
    r = cli(
        hw_env,
        "key",
        "new",
        "--registry",
        "local",
        "--index",
        LOCAL,
        "--pkcs11",
        URI,
        "--module",
        softhsm.module,
        "--pin-file",
        str(pin_file),
    )
    assert r.returncode == 0, r.stderr
    assert "ALWAYS_SENSITIVE=yes" in r.stdout and "NEVER_EXTRACTABLE=yes" in r.stdout
    assert "LOCAL=yes" in r.stdout and "protection: hardware" in r.stdout
    (rec,) = json.loads(cli(hw_env, "key", "list", "--json").stdout)
    assert rec["protection"] == "hardware"
    assert rec["hardware"]["module"] == softhsm.module
    assert rec["hardware"]["uri"].startswith("pkcs11:token=gat-token;serial=")
    assert rec["hardware"]["uri"].endswith(";id=%42;type=private")
    assert rec["hardware"]["attributes"]["never_extractable"] is True
    listed = json.loads(
        cli(hw_env, "hardware", "list", "--module", softhsm.module, "--json").stdout
    )
    (key,) = listed["modules"][0]["tokens"][0]["keys"]
    assert (key["public"], key["kip"], key["id"]) == (rec["public"], rec["kip"], "42")
    assert pyseto.Key.from_paserk(rec["public"]).to_paserk_id() == rec["kip"]
    text = cli(hw_env, "key", "list").stdout
    assert "\thardware\t" in text
    shown = cli(hw_env, "key", "show", "--registry", "local").stdout
    assert "protection: hardware" in shown and rec["hardware"]["uri"] in shown
    status = cli(hw_env, "status", "--json")
    assert json.loads(status.stdout)["key_protection"] == {"local": "hardware"}
    # The same id again: refused; --use-existing adopts it (PIN on stdin, not a tty).
    cli(hw_env, "key", "delete", "--registry", "local", "--yes")
    again = cli(
        hw_env,
        "key",
        "new",
        "--registry",
        "local",
        "--index",
        LOCAL,
        "--pkcs11",
        URI,
        "--module",
        softhsm.module,
        input=PIN + "\n",
    )
    assert again.returncode == 1 and "already holds a key" in again.stderr
    adopt = cli(
        hw_env,
        "key",
        "new",
        "--registry",
        "local",
        "--index",
        LOCAL,
        "--pkcs11",
        URI,
        "--module",
        softhsm.module,
        "--use-existing",
        "--json",
        input=PIN + "\n",
    )
    assert adopt.returncode == 0, adopt.stderr
    assert json.loads(adopt.stdout)["public"] == rec["public"]


def test_rotate_onto_the_token_and_never_off_it(hw_env, softhsm):
    # A keychain key rotated onto the token (an upgrade)...
    assert cli(hw_env, "key", "new", "--registry", "local", "--index", LOCAL).returncode == 0
    r = cli(
        hw_env,
        "key",
        "rotate",
        "--registry",
        "local",
        "--pkcs11",
        URI,
        "--module",
        softhsm.module,
        "--json",
        input=PIN + "\n",
    )
    assert r.returncode == 0, r.stderr
    new = json.loads(r.stdout)["new"]
    assert new["protection"] == "hardware" and new["status"] == "pending"
    done = cli(hw_env, "key", "rotate", "--registry", "local", "--confirm", "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["kip"] == new["kip"]
    # ...and a hardware key is never rotated into the keychain.
    back = cli(hw_env, "key", "rotate", "--registry", "local", input="")
    assert back.returncode == 1 and "hardware token" in back.stderr
    assert "key rotate --registry local --pkcs11" in back.stderr
    onto = cli(
        hw_env,
        "key",
        "rotate",
        "--registry",
        "local",
        "--pkcs11",
        "pkcs11:token=gat-token;id=%43",
        "--module",
        softhsm.module,
        input=PIN + "\n",
    )
    assert onto.returncode == 0, onto.stderr
    assert cli(hw_env, "key", "rotate", "--registry", "local", "--confirm").returncode == 0
    (rec,) = json.loads(cli(hw_env, "key", "list", "--json").stdout)
    assert rec["hardware"]["uri"].endswith(";id=%43;type=private")
    listed = json.loads(
        cli(hw_env, "hardware", "list", "--module", softhsm.module, "--json").stdout
    )
    assert sorted(k["id"] for k in listed["modules"][0]["tokens"][0]["keys"]) == ["42", "43"]


def test_key_new_refusals(hw_env, softhsm):
    pin_uri = cli(
        hw_env,
        "key",
        "new",
        "--registry",
        "r",
        "--index",
        LOCAL,
        "--pkcs11",
        "pkcs11:token=gat-token;id=%01?pin-value=" + PIN,
        "--module",
        softhsm.module,
        input=PIN + "\n",
    )
    assert pin_uri.returncode == 1 and "carries a PIN" in pin_uri.stderr
    assert PIN not in pin_uri.stderr
    wrong = cli(
        hw_env,
        "key",
        "new",
        "--registry",
        "r",
        "--index",
        LOCAL,
        "--pkcs11",
        URI,
        "--module",
        softhsm.module,
        input=WRONG_PIN + "\n",
    )
    assert wrong.returncode == 1 and "wrong PIN" in wrong.stderr
    nomod = cli(
        hw_env,
        "key",
        "new",
        "--registry",
        "r",
        "--index",
        LOCAL,
        "--pkcs11",
        URI,
        "--module",
        "/nonexistent/libnothing.so",
        input=PIN + "\n",
    )
    assert nomod.returncode == 1 and "/nonexistent/libnothing.so does not exist" in nomod.stderr
    assert "hint:" in nomod.stderr
    notok = cli(
        hw_env,
        "key",
        "new",
        "--registry",
        "r",
        "--index",
        LOCAL,
        "--pkcs11",
        "pkcs11:token=absent;id=%01",
        "--module",
        softhsm.module,
        input=PIN + "\n",
    )
    assert notok.returncode == 1 and "'absent' is not present" in notok.stderr
    empty = cli(
        hw_env,
        "key",
        "new",
        "--registry",
        "r",
        "--index",
        LOCAL,
        "--pkcs11",
        URI,
        "--module",
        softhsm.module,
        input="",
    )
    assert empty.returncode == 1 and "no PIN was given" in empty.stderr
    stray = cli(hw_env, "key", "new", "--registry", "r", "--index", LOCAL, "--use-existing")
    assert stray.returncode == 1 and "--use-existing needs --pkcs11" in stray.stderr
    assert json.loads(cli(hw_env, "key", "list", "--json").stdout) == []


@pytest.mark.e2e
def test_unlock_lock_and_cargo_publish_with_a_hardware_key(hw_env, softhsm, tmp_path):
    """Headless app: a hardware key is unlocked with `key unlock`, cargo publishes with it
    (the registry verifies the token), `key lock` logs the token out, then nothing signs.
    Nothing anywhere holds the PIN."""
    outputs = Outputs()
    registry = DemoRegistry(tmp_path / "registry-data")
    registry.start()
    app = None
    try:
        r = cli(
            hw_env,
            "key",
            "new",
            "--registry",
            "local",
            "--index",
            registry.index_url,
            "--pkcs11",
            URI,
            "--module",
            softhsm.module,
            "--json",
            input=PIN + "\n",
            outputs=outputs,
        )
        assert r.returncode == 0, r.stderr
        public = json.loads(r.stdout)["public"]
        registry.add_key(RegisteredKey(public=public))
        cc = cli(
            hw_env,
            "configure-cargo",
            "--registry",
            "local",
            "--index",
            registry.index_url,
            outputs=outputs,
        )
        assert cc.returncode == 0, cc.stderr
        not_running = cli(
            hw_env, "key", "unlock", "--registry", "local", input=PIN + "\n", outputs=outputs
        )
        assert not_running.returncode == 1 and "not running" in not_running.stderr

        app = subprocess.Popen(
            [CLI, "app", "--no-gui", "--auto-approve-loopback"],
            env=hw_env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        wait_for(lambda: ipc.ping() is not None, timeout=15, what="the headless app")
        crate = tmp_path / "hwcrate"
        (crate / "src").mkdir(parents=True)
        (crate / "Cargo.toml").write_text(
            '[package]\nname = "hwcrate"\nversion = "0.1.0"\n'
            'edition = "2021"\nlicense = "MIT"\n'
            'description = "x"\n'
        )
        (crate / "src" / "lib.rs").write_text("")
        publish = ["cargo", "publish", "--registry", "local", "--no-verify", "--allow-dirty"]

        # Not logged in, and the headless app has nobody to ask: a clear error, no PIN prompt.
        locked = subprocess.run(
            publish, cwd=crate, env=hw_env, capture_output=True, text=True, timeout=120
        )
        outputs += [locked.stdout, locked.stderr]
        assert locked.returncode != 0
        assert "gui-approver key unlock --registry local" in locked.stderr
        assert "hwcrate" not in registry.crates()

        wrong = cli(
            hw_env, "key", "unlock", "--registry", "local", input=WRONG_PIN + "\n", outputs=outputs
        )
        assert wrong.returncode == 1 and "wrong PIN" in wrong.stderr
        ok = cli(hw_env, "key", "unlock", "--registry", "local", input=PIN + "\n", outputs=outputs)
        assert ok.returncode == 0, ok.stderr
        assert "logged in" in ok.stdout

        pub = subprocess.run(
            publish, cwd=crate, env=hw_env, capture_output=True, text=True, timeout=120
        )
        outputs += [pub.stdout, pub.stderr]
        assert pub.returncode == 0, pub.stderr
        token = registry.accepted_tokens[-1]
        claims = verify_token(
            token,
            index_url=registry.index_url,
            keys=[RegisteredKey(public=public)],
            expected=Expected(
                "publish", "hwcrate", "0.1.0", registry.crates()["hwcrate"][0]["cksum"]
            ),
        )
        assert claims["name"] == "hwcrate"

        lock = cli(hw_env, "key", "lock", "--json", outputs=outputs)
        assert json.loads(lock.stdout) == {"running": True, "locked": 1}
        (crate / "Cargo.toml").write_text(
            (crate / "Cargo.toml").read_text().replace('"0.1.0"', '"0.2.0"')
        )
        after = subprocess.run(
            publish, cwd=crate, env=hw_env, capture_output=True, text=True, timeout=120
        )
        outputs += [after.stdout, after.stderr]
        assert after.returncode != 0 and "key unlock" in after.stderr
    finally:
        if app is not None:
            app.send_signal(signal.SIGTERM)
            out, err = app.communicate(timeout=10)
            outputs += [out, err]
        registry.stop()
    for pin in (PIN, WRONG_PIN):
        hits = scan_pin(
            pin, paths=[hw_env.dirs.root, hw_env.dirs.runtime_dir, tmp_path], texts=outputs
        )
        assert hits == [], hits


@pytest.mark.slow
def test_unlock_passphrase_key_through_the_app(app_env):
    from gui_approver.core.keys.store import KeyringKeychain, KeyStore
    from gui_approver.secret import Secret

    store = KeyStore(KeyringKeychain())
    rec = store.create(registry="local", index_url=LOCAL, passphrase=Secret("pass-7219-word"))
    app = subprocess.Popen(
        [CLI, "app", "--no-gui"], env=app_env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        wait_for(lambda: ipc.ping() is not None, timeout=15, what="the headless app")
        bad = cli(app_env, "key", "unlock", "--registry", "local", input="nope\n")
        assert bad.returncode == 1 and "wrong passphrase" in bad.stderr
        # (the wrong try started a short back-off)
        wait_for(
            lambda: (
                cli(
                    app_env, "key", "unlock", "--registry", "local", input="pass-7219-word\n"
                ).returncode
                == 0
            ),
            timeout=10,
            what="the unlock after the back-off",
        )
        assert json.loads(cli(app_env, "key", "lock", "--json").stdout)["locked"] == 1
    finally:
        app.send_signal(signal.SIGTERM)
        app.wait(10)
    assert rec.protection == "passphrase"

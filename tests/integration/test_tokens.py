"""Bearer tokens (issue 11): the store, the flows and the CLI against a real Secret Service
(gnome-keyring on a private D-Bus), and cargo's files as cargo writes them."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
from checks import present
from envtools import gui_approver as cli
from leakscan import scan

from gui_approver.core.keys import flows
from gui_approver.core.keys.bearer import bearer_store, fingerprint, unwrap_token
from gui_approver.core.keys.store import KeyringKeychain, KeyStore
from gui_approver.errors import ConfigError, KeyExists, KeyLocked, WrongPassphrase
from gui_approver.secret import Secret

BIN = Path(sys.executable).parent
BRIDGE = str(BIN / "cargo-credential-gui-approver")
LOCAL = "sparse+http://127.0.0.1:8765/index/"
TOKEN = "cioAbCdEfGhIjKlMnOpQrStUvWxYz0123456"
OTHER = "ciozzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz"


def test_token_add_list_show_delete_in_the_real_keychain(app_env):
    r = cli(
        app_env,
        "token",
        "add",
        "--registry",
        "local",
        "--index",
        LOCAL,
        "--expires",
        "90d",
        "--scopes",
        "publish-update; crates: foo",
        input=TOKEN + "\n",
    )
    assert r.returncode == 0, r.stderr
    assert f"sha256:{fingerprint(Secret(TOKEN))}" in r.stdout
    shown = json.loads(cli(app_env, "token", "show", "--registry", "local", "--json").stdout)
    assert shown["kind"] == "token" and shown["index_url"] == LOCAL
    assert shown["fingerprint"] == fingerprint(Secret(TOKEN))
    assert shown["scopes"] == "publish-update; crates: foo" and shown["expires"]
    assert shown["protection"] == "keychain" and shown["origin"] == "cli"
    # The token is in the keychain, in no file, in no output.
    rec = present(bearer_store(KeyStore(KeyringKeychain())).find(LOCAL))
    assert KeyringKeychain().get(rec.account) == Secret(TOKEN)
    listed = cli(app_env, "key", "list")
    assert "local\ttoken\tsha256:" in listed.stdout
    assert json.loads(cli(app_env, "key", "list", "--json").stdout)[0]["kind"] == "token"
    status = json.loads(cli(app_env, "status", "--json").stdout)
    assert status["registries"] == [{"registry": "local", "kind": "token"}]
    # One kind per registry: no asymmetric key beside the token, no second token.
    key = cli(app_env, "key", "new", "--registry", "local", "--index", LOCAL)
    assert key.returncode == 1 and "already has a bearer token" in key.stderr
    dup = cli(app_env, "token", "add", "--registry", "local", "--index", LOCAL, input=OTHER + "\n")
    assert dup.returncode == 1 and "already has a bearer token" in dup.stderr
    rot = cli(app_env, "token", "rotate", "--registry", "local", input=OTHER + "\n")
    assert rot.returncode == 0, rot.stderr
    new = present(bearer_store(KeyStore(KeyringKeychain())).find(LOCAL))
    assert new.fingerprint == fingerprint(Secret(OTHER)) and new.scopes == shown["scopes"]
    assert KeyringKeychain().get(rec.account) is None
    no = cli(app_env, "token", "delete", "--registry", "local")
    assert no.returncode == 1 and "--yes" in no.stderr
    assert cli(app_env, "token", "delete", "--registry", "local", "--yes").returncode == 0
    assert KeyringKeychain().get(new.account) is None
    assert json.loads(cli(app_env, "token", "list", "--json").stdout) == []
    outputs = [r.stdout, r.stderr, listed.stdout, key.stderr, dup.stderr, rot.stdout, no.stderr]
    for token in (TOKEN, OTHER):
        assert scan(token, paths=[app_env.dirs.root], texts=outputs) == []


def test_bad_tokens_are_refused_without_being_repeated(app_env):
    for bad in ("two words here", "k3.secret.AAAA", "tab\there"):
        r = cli(app_env, "token", "add", "--registry", "local", "--index", LOCAL, input=bad + "\n")
        assert r.returncode == 1 and "nothing was stored" in r.stderr.lower()
        assert bad not in r.stderr + r.stdout
    empty = cli(app_env, "token", "add", "--registry", "local", "--index", LOCAL, input="\n")
    assert empty.returncode == 1 and "no token" in empty.stderr
    assert bearer_store(KeyStore(KeyringKeychain())).list() == []


def test_passphrase_token_unlock_backoff_and_idle_lock(app_env, tmp_path):
    pw = tmp_path / "pw"
    pw.write_text("correct horse battery staple\n")
    r = cli(
        app_env,
        "token",
        "add",
        "--registry",
        "local",
        "--index",
        LOCAL,
        "--passphrase-file",
        str(pw),
        input=TOKEN + "\n",
    )
    assert r.returncode == 0, r.stderr
    answers: list[Secret | None] = []
    store = KeyStore(KeyringKeychain(), unlocker=lambda rec, why: answers.pop(0))
    tokens = bearer_store(store)
    rec = present(tokens.find(LOCAL))
    assert rec.protection == "passphrase"
    stored = present(KeyringKeychain().get(rec.account))
    assert TOKEN not in stored.expose()  # only the wrapped form is in the keychain
    assert unwrap_token(stored, Secret("correct horse battery staple"), rec.account) == Secret(
        TOKEN
    )
    answers.append(Secret("wrong"))
    with pytest.raises(WrongPassphrase):
        tokens.token(rec)
    with pytest.raises(KeyLocked, match="too many wrong passphrases"):
        tokens.token(rec)  # the back-off: not even asked
    store._failures[rec.account] = (1, 0.0)  # the back-off is over
    answers.append(Secret("correct horse battery staple"))
    assert tokens.token(rec) == Secret(TOKEN)
    assert tokens.is_unlocked(rec) and tokens.token(rec) == Secret(TOKEN)  # no second ask
    assert store.lock() == 1 and not tokens.is_unlocked(rec)
    answers.append(None)
    with pytest.raises(KeyLocked, match="cancelled"):
        tokens.token(rec)
    answers.append(Secret("correct horse battery staple"))
    tokens.token(rec)
    assert store.lock_if_idle(0) == 1 and not tokens.is_unlocked(rec)


CREDENTIALS = (
    "# cargo credentials, with a comment we must keep\n"
    "[registry]\n"
    f'token = "{TOKEN}"\n'
    "\n"
    "[registries.local]\n"
    f'token = "{OTHER}"\n'
    "# trailing comment\n"
)


def test_import_cargo_moves_both_tokens_and_keeps_every_other_byte(app_env):
    home = Path(app_env["CARGO_HOME"])
    creds = home / "credentials.toml"
    creds.write_text(CREDENTIALS)
    os.chmod(creds, 0o640)
    config = home / "config.toml"
    config.write_text(f'# my config\n[registries.local]\nindex = "{LOCAL}"\n')
    dry = cli(app_env, "token", "import-cargo", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "Would move the token of registry crates-io" in dry.stdout
    assert creds.read_text() == CREDENTIALS
    assert bearer_store(KeyStore(KeyringKeychain())).list() == []
    assert config.read_text() == f'# my config\n[registries.local]\nindex = "{LOCAL}"\n'

    r = cli(app_env, "token", "import-cargo")
    assert r.returncode == 0, r.stderr
    assert creds.read_text() == CREDENTIALS.replace(f'token = "{TOKEN}"\n', "").replace(
        f'token = "{OTHER}"\n', ""
    )
    assert (os.stat(creds).st_mode & 0o777) == 0o640
    tokens = bearer_store(KeyStore(KeyringKeychain()))
    crates = present(tokens.find_by_registry("crates-io"))
    assert crates.index_url == "https://github.com/rust-lang/crates.io-index"
    assert tokens.token(crates) == Secret(TOKEN)
    assert tokens.token(present(tokens.find(LOCAL))) == Secret(OTHER)
    text = config.read_text()
    assert text.startswith("# my config\n")
    assert f'[registry]\ncredential-provider = ["{BRIDGE}"]' in text
    assert f'[registries.local]\nindex = "{LOCAL}"\ncredential-provider = ["{BRIDGE}"]' in text
    for token in (TOKEN, OTHER):
        assert scan(token, paths=[home, app_env.dirs.root], texts=[r.stdout, r.stderr]) == []
    again = cli(app_env, "token", "import-cargo")
    assert again.returncode == 1 and "no token found" in again.stderr


def test_import_cargo_scrubs_a_token_from_the_config_backup_and_reads_old_credentials(app_env):
    home = Path(app_env["CARGO_HOME"])
    legacy = home / "credentials"  # older cargo: no extension
    legacy.write_text(f'[registries.local]\ntoken = "{TOKEN}"\n')
    config = home / "config.toml"
    # A user who once pasted the token into config.toml too: the backup must not keep it.
    config.write_text(f'[registries.local]\nindex = "{LOCAL}"\n# old: "{TOKEN}"\n')
    r = cli(app_env, "token", "import-cargo", "--registry", "local")
    assert r.returncode == 0, r.stderr
    assert legacy.read_text() == "[registries.local]\n"
    backups = list(home.glob("config.toml.bak-*"))
    assert len(backups) == 1 and TOKEN not in backups[0].read_text()
    assert "REMOVED-now-in-the-keychain" in backups[0].read_text()
    assert bearer_store(KeyStore(KeyringKeychain())).find(LOCAL) is not None


def test_crates_io_takes_only_a_bearer_token(app_env):
    home = Path(app_env["CARGO_HOME"])
    key = cli(app_env, "key", "new", "--registry", "crates-io")
    assert key.returncode == 1 and "crates.io does not accept asymmetric tokens" in key.stderr
    assert "token import-cargo" in key.stderr
    by_url = cli(
        app_env,
        "key",
        "new",
        "--registry",
        "cio",
        "--index",
        "https://github.com/rust-lang/crates.io-index",
    )
    assert by_url.returncode == 1 and "crates.io does not accept" in by_url.stderr
    store = KeyStore(KeyringKeychain())
    with pytest.raises(ConfigError, match=r"crates\.io does not accept"):
        store.create(registry="crates-io", index_url="https://github.com/rust-lang/crates.io-index")
    # Pointing crates.io at the bridge before its token is in the keychain would break the
    # user's publishing: refused, nothing written.
    cc = cli(app_env, "configure-cargo", "--registry", "crates-io")
    assert cc.returncode == 1 and "crates.io does not accept" in cc.stderr
    assert not (home / "config.toml").exists()
    flows.add_token(store, Secret(TOKEN), registry="crates-io", origin="cli")
    cc = cli(app_env, "configure-cargo", "--registry", "crates-io")
    assert cc.returncode == 0, cc.stderr
    assert "[registry]\ncredential-provider" in (home / "config.toml").read_text()
    with pytest.raises(KeyExists):
        flows.add_token(store, Secret(OTHER), registry="crates-io", origin="cli")

"""End to end for a bearer-token registry (issue 11): the real cargo 1.95 and its `cargo:token`,
the real bridge, a real Secret Service (gnome-keyring on a private D-Bus), the app's real
dialog (pytest-qt, offscreen), and the demo registry in token mode."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from cargo_harness import BRIDGE, CLI, answer_dialog, cargo, finish, next_dialog
from checks import present
from factories import write_crate
from leakscan import scan
from PySide6.QtWidgets import QLabel

from gui_approver.core.keys.bearer import bearer_store
from gui_approver.core.keys.store import KeyringKeychain, KeyStore
from gui_approver.core.settings import Settings
from gui_approver.registry.server import DemoRegistry
from gui_approver.ui.app import GuiApp
from gui_approver.ui.dialog import BEARER_LINE

pytestmark = pytest.mark.e2e


class TokenHarness:
    def __init__(self, qtbot, env, tmp: Path, registry: DemoRegistry, gui: GuiApp, token: str):
        self.qtbot, self.env, self.tmp = qtbot, env, tmp
        self.registry, self.gui, self.token = registry, gui, token
        self.outputs: list[bytes] = []
        self.dialogs: list[dict[str, str]] = []

    def run(self, args, cwd, decide=(), *, approve_all=False, timeout=90.0):
        """Run cargo, answering its dialogs: the ``decide`` list in order, or (approve_all)
        approve every dialog until cargo exits."""
        proc = cargo(args, cwd, self.env)
        answers = list(decide)
        while answers or approve_all:
            dialog = next_dialog(self.qtbot, self.gui, proc, timeout)
            if dialog is None:
                assert approve_all, f"cargo exited without asking: {proc.communicate()}"
                break
            seen = {k: v.text() for k, v in dialog.field_labels.items()}
            seen["intro"] = present(dialog.findChild(QLabel, "intro")).text()
            seen["heading"] = present(dialog.findChild(QLabel, "heading")).text()
            self.dialogs.append(seen)
            answer_dialog(self.qtbot, self.gui, dialog, answers.pop(0) if answers else "approve")
        rc, out, err = finish(self.qtbot, proc, timeout)
        self.outputs += [out, err]
        return rc, out.decode(), err.decode()


def _start(qtbot, gui_app, app_env, tmp_path, *, auth_required=False):
    registry = DemoRegistry(
        tmp_path / "registry-data", token_mode=True, auth_required=auth_required
    )
    registry.start()
    token = registry.issue_token()
    gui = gui_app(KeyStore(KeyringKeychain()), Settings())
    env = dict(app_env)
    env["CARGO_TERM_COLOR"] = "never"
    return TokenHarness(qtbot, env, tmp_path, registry, gui, token)


def _stop(h: TokenHarness, app_env) -> None:
    h.gui.stop()
    h.registry.stop()
    # The token is in no file the app, the bridge, cargo or the registry wrote (XDG dirs with
    # logs, audit and history, the runtime dir, CARGO_HOME incl. backups) and in no output.
    hits = scan(
        h.token,
        paths=[app_env.dirs.root, app_env.dirs.runtime_dir, Path(app_env["CARGO_HOME"]), h.tmp],
        texts=h.outputs,
    )
    assert hits == [], hits


@pytest.fixture
def token_harness(qtbot, gui_app, app_env, tmp_path):
    h = _start(qtbot, gui_app, app_env, tmp_path)
    home = Path(app_env["CARGO_HOME"])
    (home / "config.toml").write_text(
        "# my cargo config\n[registries.local]\n"
        f'index = "{h.registry.index_url}"\ncredential-provider = "cargo:token"\n'
    )
    # The user's starting point: `cargo login` with cargo:token wrote credentials.toml.
    login = subprocess.run(
        ["cargo", "login", "--registry", "local"],
        env=h.env,
        input=h.token + "\n",
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert login.returncode == 0, login.stderr
    creds = home / "credentials.toml"
    assert h.token in creds.read_text()
    h.creds_before = creds.read_text()
    h.creds_mode = os.stat(creds).st_mode & 0o777
    yield h
    _stop(h, app_env)


@pytest.mark.slow
def test_import_then_publish_yank_owner_each_approved(token_harness):
    h = token_harness
    home = Path(h.env["CARGO_HOME"])
    imp = subprocess.run(
        [CLI, "token", "import-cargo", "--registry", "local"],
        env=h.env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    h.outputs += [imp.stdout.encode(), imp.stderr.encode()]
    assert imp.returncode == 0, imp.stderr
    creds = home / "credentials.toml"
    assert (
        creds.read_text()
        == "\n".join(line for line in h.creds_before.splitlines() if not line.startswith("token"))
        + "\n"
    )
    assert os.stat(creds).st_mode & 0o777 == h.creds_mode
    config = (home / "config.toml").read_text()
    assert config.startswith("# my cargo config\n")
    assert f'credential-provider = ["{BRIDGE}"]' in config and "cargo:token" not in config
    rec = bearer_store(KeyStore(KeyringKeychain())).find(h.registry.index_url)
    assert rec is not None and rec.origin == "cli"

    crate = write_crate(h.tmp, "tokcrate")
    publish = ["publish", "--registry", "local", "--no-verify", "--allow-dirty"]
    rc, _out, err = h.run(publish, crate, decide=["approve"])
    assert rc == 0, err
    assert [e["vers"] for e in h.registry.crates()["tokcrate"]] == ["0.1.0"]
    # The registry saw exactly the stored token, and only on the approved request.
    assert h.registry.accepted_tokens == [h.token]
    (dialog,) = h.dialogs
    assert dialog["Operation"] == "publish" and dialog["Crate"] == "tokcrate"
    assert BEARER_LINE in dialog["intro"]
    assert dialog["Credential"].startswith(f"bearer token sha256:{rec.fingerprint}")
    assert dialog["Token scopes"] == "scopes unknown"

    # Denied: nothing published, cargo shows our message.
    other = write_crate(h.tmp, "denied-crate")
    rc, _out, err = h.run(publish, other, decide=["deny"])
    assert rc != 0 and "publish of denied-crate 0.1.0 was denied in gui-approver" in err
    assert "denied-crate" not in h.registry.crates()
    assert h.registry.accepted_tokens == [h.token]

    # cache never: the next publish asks again.
    (crate / "Cargo.toml").write_text(
        (crate / "Cargo.toml").read_text().replace('version = "0.1.0"', 'version = "0.2.0"')
    )
    rc, _out, err = h.run(publish, crate, decide=["approve"])
    assert rc == 0, err
    assert len(h.dialogs) == 3 and h.dialogs[-1]["Version"] == "0.2.0"

    rc, _, err = h.run(
        ["yank", "--version", "0.1.0", "--registry", "local"], crate, decide=["approve"]
    )
    assert rc == 0, err
    assert h.registry.crates()["tokcrate"][0]["yanked"] is True
    rc, _, err = h.run(["owner", "--list", "--registry", "local"], crate, decide=["approve"])
    assert rc == 0, err
    assert [d["Operation"] for d in h.dialogs] == [
        "publish",
        "publish",
        "publish",
        "yank",
        "owners",
    ]
    assert h.registry.accepted_tokens == [h.token] * 4


def test_a_read_on_an_auth_required_token_registry_asks(qtbot, gui_app, app_env, tmp_path):
    h = _start(qtbot, gui_app, app_env, tmp_path, auth_required=True)
    try:
        add = subprocess.run(
            [
                CLI,
                "token",
                "add",
                "--registry",
                "locked",
                "--index",
                h.registry.index_url,
                "--scopes",
                "publish-update",
            ],
            env=h.env,
            input=h.token + "\n",
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert add.returncode == 0, add.stderr
        cc = subprocess.run(
            [CLI, "configure-cargo", "--registry", "locked", "--index", h.registry.index_url],
            env=h.env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert cc.returncode == 0, cc.stderr
        h.outputs += [add.stdout.encode(), add.stderr.encode(), cc.stdout.encode()]
        crate = write_crate(h.tmp, "lockedcrate")
        rc, _out, err = h.run(
            ["publish", "--registry", "locked", "--no-verify", "--allow-dirty"],
            crate,
            approve_all=True,
        )
        assert rc == 0, err
        first = h.dialogs[0]
        assert first["Operation"] == "read" and "can also publish" in first["intro"]
        assert "bearer token" in first["heading"]
        assert "publish" in [d["Operation"] for d in h.dialogs]
        assert h.registry.crates()["lockedcrate"][0]["vers"] == "0.1.0"
    finally:
        _stop(h, app_env)


def test_revoke_this_token_uses_the_stored_token_and_deletes_it(qtbot, gui_app, app_env, tmp_path):
    """The watch's "Revoke this token" gets the token from the app's bearer store: the
    registry rejects it afterwards and the keychain no longer holds it."""
    import urllib.error
    import urllib.request

    from gui_approver.core.keys import flows
    from gui_approver.core.watch import Watch
    from gui_approver.secret import Secret

    h = _start(qtbot, gui_app, app_env, tmp_path)
    try:
        store = h.gui.store
        rec = flows.add_token(
            store, Secret(h.token), registry="local", index_url=h.registry.index_url, origin="cli"
        )
        stored = h.gui.token_source(h.registry.index_url)
        assert stored.fingerprint == rec.fingerprint
        token = stored.get()
        assert token == Secret(h.token)
        assert h.gui.token_source("sparse+http://127.0.0.1:9/none/") is None
        Watch(tmp_path / "watch-state").revoke_token(
            h.registry.index_url, token, on_revoked=stored.delete
        )
        assert bearer_store(store).find(h.registry.index_url) is None
        assert KeyringKeychain().get(rec.account) is None
        req = urllib.request.Request(
            f"{h.registry.api_url}/api/v1/crates/x/owners", headers={"Authorization": h.token}
        )
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(req, timeout=10)
        assert err.value.code == 403
    finally:
        _stop(h, app_env)


def test_no_welcome_window_when_only_a_bearer_token_exists(gui_app, app_env):
    from gui_approver.core.keys import flows
    from gui_approver.secret import Secret

    store = KeyStore(KeyringKeychain())
    flows.add_token(
        store, Secret("cioOnlyATokenHere0123456789"), registry="crates-io", origin="cli"
    )
    gui = gui_app(store, Settings())
    assert gui.first_run_window is None
    assert "crates-io (bearer token)" in gui.status_text()

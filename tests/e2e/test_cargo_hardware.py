"""`cargo publish` end to end with a hardware key: the real cargo, the real bridge, the app
in-process (pytest-qt, offscreen) with its approval dialog and PIN prompt, a SoftHSM2 token,
and the demo registry that verifies every token. Approval comes first, then the PIN, then the
signature; the token's login is the PIN cache; nothing anywhere holds the PIN."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from cargo_harness import BRIDGE, CLI, PUBLISH, answer_dialog, cargo, harness_pem, next_dialog
from factories import write_crate
from leakscan import scan_pin
from PySide6.QtCore import Qt
from softhsm import PIN, WRONG_PIN

from gui_approver.core.keys import pkcs11
from gui_approver.core.keys.store import KeyringKeychain, KeyStore
from gui_approver.core.settings import Settings
from gui_approver.registry.server import DemoRegistry
from gui_approver.registry.verify import RegisteredKey
from gui_approver.secret import Secret

pytestmark = pytest.mark.e2e


class HwHarness:
    def __init__(self, qtbot, env, tmp, registry, gui, record):
        self.qtbot, self.env, self.tmp = qtbot, env, tmp
        self.registry, self.gui, self.record = registry, gui, record
        self.outputs: list[bytes] = []
        self.events: list[str] = []

    def approve_next(self, proc, timeout=60):
        dialog = next_dialog(self.qtbot, self.gui, proc, timeout)
        assert dialog is not None, f"cargo exited without asking: {proc.communicate()}"
        # The PIN prompt never comes before the approval.
        assert self.gui.unlocker.dialog is None
        self.events.append("approve:" + dialog.field_labels["Operation"].text())
        answer_dialog(self.qtbot, self.gui, dialog, "approve")

    def enter_pin(self, proc, pin, timeout=30):
        self.qtbot.waitUntil(
            lambda: self.gui.unlocker.dialog is not None or proc.poll() is not None,
            timeout=timeout * 1000,
        )
        prompt = self.gui.unlocker.dialog
        assert prompt is not None, f"no PIN prompt: {proc.communicate()}"
        assert prompt.edit.placeholderText() == "PIN"
        self.events.append("pin")
        prompt.edit.setText(pin)
        self.qtbot.mouseClick(prompt.unlock_button, Qt.MouseButton.LeftButton)

    def finish(self, proc, timeout=60):
        self.qtbot.waitUntil(lambda: proc.poll() is not None, timeout=timeout * 1000)
        out, err = proc.communicate()
        self.outputs += [out, err]
        return proc.returncode, out.decode(), err.decode()


@pytest.fixture
def hw_harness(qtbot, gui_app, app_env, softhsm, tmp_path, monkeypatch):
    softhsm.init_token("gat-token")
    app_env.update(softhsm.env)
    registry = DemoRegistry(tmp_path / "registry-data")
    registry.start()
    info = pkcs11.backend().generate(
        softhsm.module, "pkcs11:token=gat-token;id=%01", Secret(PIN), label="e2e"
    )
    pkcs11.backend().logout_all()
    store = KeyStore(KeyringKeychain())
    rec = store.add_hardware(info, registry="local", index_url=registry.index_url, subject=None)
    registry.add_key(RegisteredKey(public=rec.public))
    gui = gui_app(store, Settings())
    rc = subprocess.run(
        [CLI, "configure-cargo", "--registry", "local", "--index", registry.index_url],
        env=app_env,
        capture_output=True,
        text=True,
    )
    assert rc.returncode == 0, rc.stderr
    env = dict(app_env)
    env["CARGO_TERM_COLOR"] = "never"
    h = HwHarness(qtbot, env, tmp_path, registry, gui, rec)
    yield h
    gui.stop()  # (gui_app would too, but after the leak scan below)
    registry.stop()
    for pin in (PIN, WRONG_PIN):
        hits = scan_pin(
            pin,
            paths=[
                app_env.dirs.root,
                app_env.dirs.runtime_dir,
                Path(app_env["CARGO_HOME"]),
                tmp_path,
            ],
            texts=h.outputs,
        )
        assert hits == [], hits


@pytest.mark.slow
def test_publish_with_a_hardware_key_approval_then_pin(hw_harness, node_verifier):
    h = hw_harness
    assert Path(BRIDGE).exists()
    crate = write_crate(h.tmp, "hwalpha")
    proc = cargo(PUBLISH, crate, h.env)
    # cargo reads the (auth-required) index first: the token is logged out, so even the read
    # is approved before the PIN is asked; then the publish itself is approved.
    h.approve_next(proc)
    h.enter_pin(proc, PIN)
    h.approve_next(proc)
    rc, _out, err = h.finish(proc)
    assert rc == 0, err
    assert h.events == ["approve:read", "pin", "approve:publish"]
    assert [e["vers"] for e in h.registry.crates()["hwalpha"]] == ["0.1.0"]
    token = h.registry.accepted_tokens[-1]
    payload = node_verifier(token, harness_pem(h))
    claims = json.loads(payload["payload_raw"])
    assert (claims["mutation"], claims["name"]) == ("publish", "hwalpha")
    assert json.loads(payload["footer"])["kip"] == h.record.kip
    # The login is the PIN cache: the next publish asks only for approval.
    h.events.clear()
    proc = cargo(PUBLISH, write_crate(h.tmp, "hwbeta"), h.env)
    h.approve_next(proc)
    rc, _out, err = h.finish(proc)
    assert rc == 0, err
    assert h.events == ["approve:publish"]
    # Locking logs the token out: the PIN is asked again (after approval).
    h.gui.lock_now()
    assert not h.gui.store.is_unlocked(h.record)


def test_wrong_pin_is_a_clear_error_and_not_retried(hw_harness):
    h = hw_harness
    proc = cargo(PUBLISH, write_crate(h.tmp, "hwgamma"), h.env)
    h.approve_next(proc)
    h.enter_pin(proc, WRONG_PIN)
    rc, _out, err = h.finish(proc)
    assert rc != 0
    assert "wrong PIN for the security key; nothing was signed" in err
    assert "never retried automatically" in err
    assert h.events == ["approve:read", "pin"]  # one PIN prompt only
    assert "hwgamma" not in h.registry.crates()


def test_missing_token_is_a_clear_error_before_any_pin(hw_harness, softhsm):
    h = hw_harness
    pkcs11.reset_backend()
    softhsm.delete_token("gat-token")
    proc = cargo(PUBLISH, write_crate(h.tmp, "hwdelta"), h.env)
    h.approve_next(proc)
    rc, _out, err = h.finish(proc)
    assert rc != 0
    assert "'gat-token' is not present" in err and "plug in the security key" in err
    assert h.events == ["approve:read"]

"""Issue #14, Major 4, with the real cargo: a mistyped passphrase does not kill the cargo
command; the prompt stays ("wrong passphrase, N s before the next try") and the right
passphrase then publishes."""

from __future__ import annotations

import pytest
from cargo_harness import PUBLISH, cargo
from factories import write_crate
from PySide6.QtCore import Qt

from gui_approver.registry.verify import RegisteredKey
from gui_approver.secret import Secret

pytestmark = pytest.mark.e2e

PASSPHRASE = "correct horse battery staple"


@pytest.mark.slow
def test_a_mistyped_passphrase_keeps_cargo_waiting(harness):
    gui = harness.gui
    gui.store.delete(harness.record)
    rec = gui.store.create(
        registry="local", index_url=harness.registry.index_url, passphrase=Secret(PASSPHRASE)
    )
    harness.record = rec
    harness.registry.add_key(RegisteredKey(public=rec.public))
    gui.store.lock()
    crate = write_crate(harness.tmp, "zeta")
    proc = cargo(PUBLISH, crate, harness.env)
    qtbot = harness.qtbot
    mistyped = False
    try:
        # cargo reads first (the locked key asks before that read), then publishes (the
        # approval dialog): answer whatever comes, mistyping the passphrase the first time.
        while proc.poll() is None:
            qtbot.waitUntil(
                lambda: (
                    gui.approver.dialog is not None
                    or gui.unlocker.dialog is not None
                    or proc.poll() is not None
                ),
                timeout=60000,
            )
            if gui.unlocker.dialog is not None:
                prompt = gui.unlocker.dialog
                if not mistyped:
                    assert "Unlock the key to sign" in prompt.why_label.text()
                    qtbot.keyClicks(prompt.edit, "wrong passphrase")
                    qtbot.keyClick(prompt.edit, Qt.Key.Key_Return)
                    assert prompt.isVisible() and proc.poll() is None  # cargo keeps waiting
                    assert prompt.why_label.text() == ("Wrong passphrase, 2 s before the next try.")
                    mistyped = True
                qtbot.keyClicks(prompt.edit, PASSPHRASE)
                qtbot.waitUntil(prompt.unlock_button.isEnabled, timeout=5000)
                qtbot.keyClick(prompt.edit, Qt.Key.Key_Return)
                qtbot.waitUntil(lambda p=prompt: gui.unlocker.dialog is not p, timeout=10000)
            elif gui.approver.dialog is not None:
                dialog = gui.approver.dialog
                dialog.activateWindow()
                qtbot.waitUntil(dialog.approve_button.isEnabled, timeout=5000)
                qtbot.mouseClick(dialog.approve_button, Qt.MouseButton.LeftButton)
                qtbot.waitUntil(lambda d=dialog: gui.approver.dialog is not d, timeout=5000)
    finally:
        if proc.poll() is None:
            proc.kill()
    out, err = proc.communicate()
    harness.outputs += [out, err]
    assert proc.returncode == 0, err.decode()
    assert mistyped
    assert [e["vers"] for e in harness.registry.crates()["zeta"]] == ["0.1.0"]

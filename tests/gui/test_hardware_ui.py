"""The new-key wizard's "On a hardware key" choice and the PIN / touch prompts, offscreen,
against a real SoftHSM2 token."""

from __future__ import annotations

import base64

from checks import present
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLabel, QLineEdit
from qt_tools import click, open_wizard, wizard_button
from softhsm import PIN, WRONG_PIN

from gui_approver.core.keys import pkcs11
from gui_approver.core.keys.store import KeyringKeychain, KeyStore
from gui_approver.secret import Secret
from gui_approver.ui.keys import NewKeyWizard
from gui_approver.ui.passphrase import PassphraseDialog, QtTouchNotifier

LOCAL = "sparse+http://127.0.0.1:8765/index/"


def to_options(qtbot, wizard, name="hw-reg"):
    page = wizard.registry_page
    qtbot.keyClicks(page.name_edit, name)
    qtbot.keyClicks(page.index_edit, LOCAL)
    click(qtbot, wizard_button(wizard, "NextButton"))
    assert wizard.currentId() == NewKeyWizard.PAGE_OPTIONS
    return wizard.options_page


def test_wizard_generates_a_key_on_the_token(qtbot, app_env, softhsm):
    softhsm.init_token("gat-token")
    store = KeyStore(KeyringKeychain())
    wizard = open_wizard(qtbot, store)
    opts = to_options(qtbot, wizard)
    assert opts.hardware is None  # pkcs11 is loaded only when asked for
    click(qtbot, opts.on_hardware)
    hw = opts.hardware
    assert hw is not None and opts.protection.currentWidget() is hw
    hw.module.setEditText(softhsm.module)
    click(qtbot, hw.scan_button)
    assert hw.choice.count() == 1 and "Generate" in hw.choice.itemText(0)
    assert hw.pin.echoMode() == QLineEdit.EchoMode.Password
    # Without the PIN: refused, nothing created.
    click(qtbot, wizard_button(wizard, "CommitButton"))
    assert wizard.currentId() == NewKeyWizard.PAGE_OPTIONS
    assert "PIN" in opts.error.text() and store.list() == []
    qtbot.keyClicks(hw.pin, WRONG_PIN)
    click(qtbot, wizard_button(wizard, "CommitButton"))
    assert "wrong PIN" in opts.error.text() and store.list() == []
    qtbot.keyClicks(hw.pin, PIN)
    click(qtbot, wizard_button(wizard, "CommitButton"))
    assert wizard.currentId() == NewKeyWizard.PAGE_RESULT, opts.error.text()
    assert hw.pin.text() == ""
    rec = wizard.record
    assert rec.protection == "hardware" and rec.registry == "hw-reg"
    assert KeyringKeychain().get(rec.kip) is None  # nothing in the keychain
    details = wizard.result_page.details.text()
    assert "hardware key on token 'gat-token'" in details and "never extractable yes" in details
    assert not store.is_unlocked(rec)  # the PIN is asked again after the first approval
    # Scanning again offers the new key for adoption.
    assert PIN not in "".join(lbl.text() for lbl in wizard.findChildren(QLabel))


def test_wizard_adopts_an_existing_key(qtbot, app_env, softhsm):
    softhsm.init_token("gat-token")
    info = pkcs11.backend().generate(
        softhsm.module, "pkcs11:token=gat-token;id=%09", Secret(PIN), label="made-elsewhere"
    )
    pkcs11.backend().logout_all()
    store = KeyStore(KeyringKeychain())
    wizard = open_wizard(qtbot, store)
    opts = to_options(qtbot, wizard)
    click(qtbot, opts.on_hardware)
    opts.hardware.module.setEditText(softhsm.module)
    click(qtbot, opts.hardware.scan_button)
    texts = [opts.hardware.choice.itemText(i) for i in range(opts.hardware.choice.count())]
    assert any("made-elsewhere" in t and "id 09" in t for t in texts), texts
    opts.hardware.choice.setCurrentIndex(next(i for i, t in enumerate(texts) if "Use" in t))
    qtbot.keyClicks(opts.hardware.pin, PIN)
    click(qtbot, wizard_button(wizard, "CommitButton"))
    assert wizard.currentId() == NewKeyWizard.PAGE_RESULT, opts.error.text()
    assert (
        present(wizard.record).public
        == "k3.public." + base64.urlsafe_b64encode(info.point).rstrip(b"=").decode()
    )


def test_pin_prompt_and_touch_prompt(qtbot, app_env, softhsm):
    softhsm.init_token("gat-token")
    info = pkcs11.backend().generate(
        softhsm.module, "pkcs11:token=gat-token;id=%01", Secret(PIN), label="x"
    )
    pkcs11.backend().logout_all()
    store = KeyStore(KeyringKeychain())
    rec = store.add_hardware(info, registry="hw", index_url=LOCAL, subject=None)
    dialog = PassphraseDialog(rec, "enter the PIN of the security key to sign")
    qtbot.addWidget(dialog)
    dialog.show()
    assert dialog.edit.placeholderText() == "PIN"
    assert dialog.field_labels["Token"].text() == "gat-token"
    assert "without the pin" in dialog.status_label.text() or not dialog.deadline
    touch = QtTouchNotifier()
    with qtbot.waitSignal(touch.shown, timeout=5000) as shown:
        done = touch(rec)
    prompt = shown.args[0]
    assert prompt.isVisible()
    title = prompt.findChild(QLabel, "touchTitle")
    assert title.text() == "Touch your security key now"
    assert title.textFormat() == Qt.TextFormat.PlainText
    done()
    qtbot.waitUntil(lambda: touch.prompts == {}, timeout=5000)

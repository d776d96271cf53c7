"""The key manager, the new-key wizard, rotate/delete/import and the passphrase prompt, on the
offscreen platform against the real keychain (gnome-keyring on a private bus, ``app_env``)."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import pytest
import shiboken6
from checks import present
from PySide6.QtCore import QPoint, Qt
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QLabel, QLineEdit, QWizard
from qt_tools import click, open_wizard, wizard_button

from gui_approver.core import cargo_config
from gui_approver.core.keys import flows
from gui_approver.core.keys.store import KeyringKeychain, KeyStore, SigningKey, parse_public_paserk
from gui_approver.errors import WrongPassphrase
from gui_approver.registry.server import DemoRegistry
from gui_approver.secret import Secret
from gui_approver.ui.keys import (
    COLUMNS,
    ConfigureCargoDialog,
    KeyManagerWindow,
    NewKeyWizard,
    format_when,
    short_kip,
)
from gui_approver.ui.passphrase import PassphraseDialog, QtUnlocker

LOCAL = "sparse+http://127.0.0.1:8765/index/"
LEFT = Qt.MouseButton.LeftButton


@pytest.fixture
def store(app_env):
    return KeyStore(KeyringKeychain())


@pytest.fixture
def cargo_home(app_env) -> Path:
    return Path(app_env["CARGO_HOME"])


def tick(qtbot, checkbox):
    """Click a check box on its indicator (its centre may be empty space in a wide layout)."""
    assert checkbox.isVisible() and checkbox.isEnabled()
    qtbot.mouseClick(checkbox, LEFT, pos=QPoint(8, checkbox.height() // 2))


def all_labels_plain(widget):
    # (Qt's own pixmap-only labels, e.g. the wizard's logo slots, have no text)
    labels = [lbl for lbl in widget.findChildren(QLabel) if lbl.text()]
    assert labels
    for label in labels:
        assert label.textFormat() == Qt.TextFormat.PlainText, label.text()


# ---------------------------------------------------------------------------------------------
# the wizard


def test_wizard_creates_a_keychain_key_shows_it_and_configures_cargo(
    qtbot, store, cargo_home, tmp_path
):
    config = cargo_home / "config.toml"
    config.write_text(f'# my settings\n[registries.mine]\nindex = "{LOCAL}"\n')
    data_dir = tmp_path / "demo-data"
    data_dir.mkdir()
    wizard = open_wizard(qtbot, store, demo_data_dir=data_dir)
    page = wizard.registry_page
    assert page.from_config.isChecked()
    assert page.combo.currentData() == "mine" and LOCAL in page.combo.currentText()
    click(qtbot, wizard_button(wizard, "NextButton"))
    assert wizard.currentId() == NewKeyWizard.PAGE_OPTIONS

    opts = wizard.options_page
    assert "mine" in opts.summary.text() and LOCAL in opts.summary.text()
    qtbot.keyClicks(opts.subject, "alice")
    opts.expiry.choose("90d")
    click(qtbot, wizard_button(wizard, "CommitButton"))
    assert wizard.currentId() == NewKeyWizard.PAGE_RESULT

    rec = wizard.record
    assert rec is not None and store.find(LOCAL) == rec
    assert rec.registry == "mine" and rec.subject == "alice" and rec.expires
    assert rec.protection == "keychain"
    item = KeyringKeychain().get(rec.kip)
    assert item is not None and item.expose().startswith("k3.secret.")

    result = wizard.result_page
    assert result.keys.public.value() == rec.public and rec.public.startswith("k3.public.")
    assert result.keys.public.label.text() == rec.public
    assert result.keys.kip.value() == rec.kip and rec.kip.startswith("k3.pid.")
    pem = result.keys.pem.value()
    assert pem.startswith("-----BEGIN PUBLIC KEY-----") and pem == flows.public_pem(rec.public)
    assert "Subject: alice" in result.details.text()
    assert "paste the k3.public key on your registry's key page" in result.next_steps.text()
    click(qtbot, result.keys.public.button)
    assert QGuiApplication.clipboard().text() == rec.public
    all_labels_plain(wizard)
    assert "k3.secret" not in "".join(lbl.text() for lbl in wizard.findChildren(QLabel))

    # loopback index: register the key with a demo registry's data directory
    assert result.demo.isVisible()
    assert result.demo.dir_edit.text() == str(data_dir)
    click(qtbot, result.demo.register_button)
    assert rec.kip in result.demo.status.text()
    registered = DemoRegistry(data_dir).registered_keys()
    assert [(k.public, k.subject) for k in registered] == [(rec.public, "alice")]

    # configure cargo: preview, then apply (with a backup)
    click(qtbot, wizard_button(wizard, "NextButton"))
    assert wizard.currentId() == NewKeyWizard.PAGE_CARGO
    view = wizard.cargo_page.view
    diff = view.diff.toPlainText()
    assert "+credential-provider" in diff and cargo_config.BRIDGE_NAME in diff
    assert view.diff.isReadOnly()
    assert config.read_text() == f'# my settings\n[registries.mine]\nindex = "{LOCAL}"\n'
    # Applying is the page's action: its Finish button says so, and does it (#14).
    assert view.apply_button.isHidden()
    finish = wizard_button(wizard, "FinishButton")
    assert finish.text() == "Configure cargo" and finish.isDefault()
    assert wizard_button(wizard, "CancelButton").isVisible()  # Close: leave cargo alone
    click(qtbot, finish)
    assert not wizard.isVisible()
    text = config.read_text()
    assert text.startswith("# my settings\n") and "credential-provider" in text
    assert cargo_config.BRIDGE_NAME in text
    assert "Configured registry mine" in view.status.text()
    backups = list(cargo_home.glob("config.toml.bak-*"))
    assert len(backups) == 1 and str(backups[0]) in view.status.text()
    assert not view.pending


@pytest.mark.parametrize("weak", ["a", "pw", "hunter2"])
def test_wizard_refuses_a_weak_passphrase(qtbot, store, cargo_home, weak):
    """Issue 12 item 13: the GUI's passphrase path has the CLI's minimum strength."""
    wizard = open_wizard(qtbot, store)
    page = wizard.registry_page
    qtbot.keyClicks(page.name_edit, "pw-reg")
    qtbot.keyClicks(page.index_edit, LOCAL)
    click(qtbot, wizard_button(wizard, "NextButton"))
    opts = wizard.options_page
    qtbot.keyClicks(opts.passphrase.first, weak)
    qtbot.keyClicks(opts.passphrase.second, weak)
    click(qtbot, wizard_button(wizard, "CommitButton"))
    assert wizard.currentId() == NewKeyWizard.PAGE_OPTIONS
    assert opts.error.isVisible() and "too weak" in opts.error.text()
    assert store.list() == []


def test_wizard_with_a_passphrase_stores_a_wrapped_key(qtbot, store, cargo_home):
    wizard = open_wizard(qtbot, store)
    page = wizard.registry_page
    assert not page.from_config.isEnabled()  # nothing in config.toml
    assert page.other.isChecked()
    assert not wizard_button(wizard, "NextButton").isEnabled()
    qtbot.keyClicks(page.name_edit, "pw-reg")
    qtbot.keyClicks(page.index_edit, LOCAL)
    click(qtbot, wizard_button(wizard, "NextButton"))
    opts = wizard.options_page
    assert opts.passphrase.first.echoMode() == QLineEdit.EchoMode.Password
    assert opts.passphrase.second.echoMode() == QLineEdit.EchoMode.Password
    qtbot.keyClicks(opts.passphrase.first, "correct horse")
    qtbot.keyClicks(opts.passphrase.second, "correct hose")
    click(qtbot, wizard_button(wizard, "CommitButton"))
    assert wizard.currentId() == NewKeyWizard.PAGE_OPTIONS
    assert opts.error.isVisible() and "differ" in opts.error.text()
    assert store.list() == []
    opts.passphrase.second.clear()
    qtbot.keyClicks(opts.passphrase.second, "correct horse")
    click(qtbot, wizard_button(wizard, "CommitButton"))
    assert wizard.currentId() == NewKeyWizard.PAGE_RESULT
    rec = present(wizard.record)
    assert rec.protection == "passphrase" and rec.registry == "pw-reg"
    item = present(KeyringKeychain().get(rec.kip)).expose()
    assert item.startswith("k3.secret-pw.") and "k3.secret." not in item
    assert opts.passphrase.first.text() == "" and opts.passphrase.second.text() == ""
    assert "passphrase" in wizard.result_page.details.text()
    # the passphrase really unwraps it
    assert SigningKey.from_wrapped(Secret(item), Secret("correct horse")).kip == rec.kip
    # Back is gone once the key exists; Cancel became Close
    assert not wizard_button(wizard, "BackButton").isEnabled()
    assert wizard.buttonText(QWizard.WizardButton.CancelButton) == "Close"


def test_wizard_checks_the_registry_and_handles_crates_io(qtbot, store, cargo_home):
    existing = store.create(registry="taken", index_url=LOCAL)
    wizard = open_wizard(qtbot, store)
    page = wizard.registry_page
    qtbot.keyClicks(page.name_edit, "taken")
    qtbot.keyClicks(page.index_edit, "sparse+http://127.0.0.1:9/other/")
    click(qtbot, wizard_button(wizard, "NextButton"))
    assert wizard.currentId() == NewKeyWizard.PAGE_REGISTRY
    assert existing.kip in page.error.text() and "already has a key" in page.error.text()
    page.name_edit.setText("bad name!")
    click(qtbot, wizard_button(wizard, "NextButton"))
    assert "letters, digits" in page.error.text()
    page.name_edit.setText("fresh")
    page.index_edit.setText("not a url")
    click(qtbot, wizard_button(wizard, "NextButton"))
    assert "Invalid index URL" in page.error.text()

    # crates.io takes only a bearer token (issue 11): no key, the token page instead.
    page.crates_io.setChecked(True)
    assert page.kind() == "token" and not page.kind_key.isEnabled()
    assert "does not accept asymmetric tokens" in page.kind_note.text()
    click(qtbot, wizard_button(wizard, "NextButton"))
    assert wizard.currentId() == NewKeyWizard.PAGE_TOKEN
    assert "publish-update" in wizard.token_page.advice.text()
    qtbot.keyClicks(wizard.token_page.token, "cioWizardToken0123456789")
    click(qtbot, wizard_button(wizard, "CommitButton"))
    assert wizard.record is None
    rec = present(wizard.token_record)
    assert rec.registry == "crates-io" and rec.index_url == cargo_config.CRATES_IO_INDEX
    assert rec.origin == "dialog" and store.list() == [existing]
    assert wizard.currentId() == NewKeyWizard.PAGE_CARGO
    view = wizard.cargo_page.view
    assert "+[registry]" in view.diff.toPlainText()
    click(qtbot, wizard_button(wizard, "FinishButton"))
    text = (cargo_home / "config.toml").read_text()
    assert text.startswith("[registry]\ncredential-provider = [")
    assert "Backup" not in view.status.text()  # there was no file to back up


def test_configure_preview_shows_warnings_and_refuses_a_stale_preview(qtbot, store, cargo_home):
    config = cargo_home / "config.toml"
    config.write_text(f'[registries.mine]\nindex = "{LOCAL}"\ntoken = "plaintext"\n')
    wizard = open_wizard(qtbot, store)
    click(qtbot, wizard_button(wizard, "NextButton"))
    click(qtbot, wizard_button(wizard, "CommitButton"))
    click(qtbot, wizard_button(wizard, "NextButton"))
    view = wizard.cargo_page.view
    assert view.warnings.isVisible() and "plaintext `token`" in view.warnings.text()
    # someone edits the file after the preview: apply re-plans and asks again
    config.write_text(config.read_text() + "# edited\n")
    click(qtbot, wizard_button(wizard, "FinishButton"))
    assert "changed since the preview" in view.status.text()
    assert "credential-provider" not in config.read_text()
    assert wizard.isVisible()  # Finish did not close the wizard without configuring
    click(qtbot, wizard_button(wizard, "FinishButton"))
    assert "credential-provider" in config.read_text() and "# edited" in config.read_text()


# ---------------------------------------------------------------------------------------------
# the manager


def open_manager(qtbot, store, **kw):
    window = KeyManagerWindow(store, **kw)
    qtbot.addWidget(window)
    window.show()
    qtbot.waitExposed(window)
    return window


def test_manager_lists_keys_with_their_columns_and_last_use(qtbot, store):
    hostile = "sparse+http://127.0.0.1:1/<b>bold</b>/"
    a = store.create(registry="alpha", index_url=LOCAL, subject="<i>me</i>", expires="2099-01-01")
    b = store.create(registry="beta", index_url=hostile, passphrase=Secret("pw"))
    store.signing_key(a)  # a real use: recorded in usage.json
    used = store.last_used()
    assert a.kip in used and b.kip not in used

    window = open_manager(qtbot, store)
    headers = [window.table.horizontalHeaderItem(i).text() for i in range(len(COLUMNS))]
    assert headers == [
        "Registry",
        "Kind",
        "Key id",
        "Subject",
        "Created",
        "Expires",
        "Protection",
        "Last used",
        "Status",
    ]
    assert window.table.rowCount() == 2
    ra, rb = window.row_of(a.kip), window.row_of(b.kip)
    assert window.cell_text(ra, "Registry") == "alpha"
    assert window.cell_text(ra, "Kind") == "asymmetric"
    assert window.cell_text(ra, "Key id") == short_kip(a.kip) != a.kip
    assert window.cell_text(ra, "Subject") == "<i>me</i>"
    assert window.cell_text(ra, "Created") == a.created[:10]
    assert window.cell_text(ra, "Expires").startswith("2099-01-01 (in ")
    assert window.cell_text(ra, "Protection") == "keychain"
    assert window.cell_text(ra, "Last used") == format_when(used[a.kip]) != "never"
    assert window.cell_text(ra, "Status") == "active"
    assert window.cell_text(rb, "Protection") == "passphrase"
    assert window.cell_text(rb, "Expires") == "never"
    assert window.cell_text(rb, "Last used") == "never"

    # the whole key id and public key are one click away; untrusted text stays plain
    assert window.select(b.kip)
    assert window.detail_kip.value() == b.kip and window.detail_public.value() == b.public
    assert window.detail_index.text() == hostile
    click(qtbot, window.detail_kip.button)
    assert QGuiApplication.clipboard().text() == b.kip
    window.copy_pem()
    assert QGuiApplication.clipboard().text().startswith("-----BEGIN PUBLIC KEY-----")
    parse_public_paserk(b.public)  # sanity
    all_labels_plain(window)

    # a use that happens while the window is open shows after Refresh
    window.select(a.kip)
    store.unlock(b, Secret("pw"))
    store.signing_key(b)
    click(qtbot, window.refresh_button)
    rb = window.row_of(b.kip)
    assert window.cell_text(rb, "Last used") == format_when(store.last_used()[b.kip])
    assert window.selected_record() == a  # the selection survives a refresh


def test_manager_rotate_then_confirm(qtbot, store, tmp_path):
    old = store.create(registry="local", index_url=LOCAL, subject="me")
    window = open_manager(qtbot, store, demo_data_dir=tmp_path)
    window.select(old.kip)
    dialog = window.rotate_selected()
    qtbot.waitExposed(dialog)
    assert dialog.stack.currentIndex() == 0
    dialog.expiry.choose("1y")
    click(qtbot, dialog.create_button)
    pending = store.find_pending("local")
    assert pending is not None and pending.kip != old.kip and pending.subject == "me"
    assert dialog.stack.currentIndex() == 1
    assert dialog.keys.public.value() == pending.public
    assert dialog.keys.kip.value() == pending.kip
    assert dialog.keys.pem.value() == flows.public_pem(pending.public)
    assert old.kip in dialog.old_note.text()
    assert store.find(LOCAL).kip == old.kip  # the old key still signs
    assert "successor" in window.status.text()
    # nothing switches until the user says the new key is registered
    assert not dialog.switch_button.isEnabled()
    assert dialog.later_button.isDefault()
    click(qtbot, dialog.later_button)
    qtbot.waitUntil(lambda: window.dialog is None)
    statuses = {window.cell_text(window.row_of(r.kip), "Status") for r in (old, pending)}
    assert statuses == {"active (successor pending)", "pending successor (confirm when registered)"}

    # reopening goes straight to the confirmation step
    window.select(old.kip)
    dialog = window.rotate_selected()
    qtbot.waitExposed(dialog)
    assert dialog.stack.currentIndex() == 1 and dialog.keys.kip.value() == pending.kip
    click(qtbot, dialog.demo.register_button)
    assert DemoRegistry(tmp_path).registered_keys()[0].kip == pending.kip
    tick(qtbot, dialog.registered_box)
    assert dialog.registered_box.isChecked()
    click(qtbot, dialog.switch_button)
    qtbot.waitUntil(lambda: window.dialog is None)
    now = store.find(LOCAL)
    assert now.kip == pending.kip and now.status == "active"
    assert store.find_pending("local") is None
    assert KeyringKeychain().get(old.kip) is None
    assert window.table.rowCount() == 1 and window.cell_text(0, "Status") == "active"
    assert f"now signs with {pending.kip}" in window.status.text()


def test_manager_delete_needs_the_registry_name_and_cancel_is_the_default(qtbot, store):
    rec = store.create(registry="doomed", index_url=LOCAL)
    window = open_manager(qtbot, store)
    window.select(rec.kip)
    dialog = window.delete_selected()
    qtbot.waitExposed(dialog)
    texts = " ".join(lbl.text() for lbl in dialog.findChildren(QLabel))
    assert "doomed" in texts and rec.kip in texts
    assert dialog.cancel_button.isDefault() and not dialog.delete_button.isDefault()
    assert not dialog.delete_button.autoDefault()
    assert not dialog.delete_button.isEnabled()
    qtbot.keyClicks(dialog.confirm_edit, "doome")
    assert not dialog.delete_button.isEnabled()
    # Return goes to the default button: Cancel
    qtbot.keyClick(dialog.confirm_edit, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: window.dialog is None)
    assert store.find(LOCAL) == rec and KeyringKeychain().get(rec.kip) is not None

    window.select(rec.kip)
    dialog = window.delete_selected()
    qtbot.waitExposed(dialog)
    qtbot.keyClicks(dialog.confirm_edit, "doomed")
    click(qtbot, dialog.delete_button)
    qtbot.waitUntil(lambda: window.dialog is None)
    assert store.list() == [] and KeyringKeychain().get(rec.kip) is None
    assert window.table.rowCount() == 0
    assert f"Deleted the key for registry doomed ({rec.kip})." == window.status.text()


def test_manager_imports_cargo_paseto_keys(qtbot, store, cargo_home):
    key = SigningKey.generate()
    secret = key.secret_paserk().expose()
    (cargo_home / "config.toml").write_text(f'[registries.local]\nindex = "{LOCAL}"\n')
    creds = cargo_home / "credentials.toml"
    creds.write_text(
        '# tokens\n[registries.other]\ntoken = "keep-me"\n\n'
        f'[registries.local]\nsecret-key = "{secret}"\nsecret-key-subject = "sub"\n'
    )
    creds.chmod(0o600)
    window = open_manager(qtbot, store)
    dialog = window.import_from_cargo()
    qtbot.waitExposed(dialog)
    assert dialog.table.rowCount() == 1
    cells = [dialog.table.item(0, c).text() for c in range(dialog.table.columnCount())]
    assert cells[0] == "local" and cells[1] == str(creds)
    assert cells[2] == short_kip(key.kip) and cells[3] == "ready to import"
    assert not any(secret in c or "k3.secret" in c for c in cells)
    assert dialog.close_button.isDefault()

    click(qtbot, dialog.import_button)
    rec = store.find(LOCAL)
    assert rec is not None and rec.kip == key.kip and rec.public == key.public_paserk
    assert rec.registry == "local" and rec.subject == "sub"
    assert present(KeyringKeychain().get(key.kip)).expose() == secret
    after = creds.read_text()
    assert secret not in after and "secret-key" not in after
    assert after.startswith('# tokens\n[registries.other]\ntoken = "keep-me"\n')
    assert creds.stat().st_mode & 0o777 == 0o600
    config = (cargo_home / "config.toml").read_text()
    assert "credential-provider" in config and cargo_config.BRIDGE_NAME in config
    report = dialog.results.toPlainText()
    assert f"public key (unchanged, nothing to re-register): {key.public_paserk}" in report
    assert f"key id (unchanged): {key.kip}" in report
    assert secret not in report
    assert dialog.table.rowCount() == 0 and "No cargo:paseto secret-key" in dialog.empty.text()
    click(qtbot, dialog.close_button)
    qtbot.waitUntil(lambda: window.dialog is None)
    assert window.table.rowCount() == 1 and window.cell_text(0, "Registry") == "local"


def test_import_refuses_a_different_existing_key(qtbot, store, cargo_home):
    store.create(registry="local", index_url=LOCAL)
    secret = SigningKey.generate().secret_paserk().expose()
    (cargo_home / "config.toml").write_text(f'[registries.local]\nindex = "{LOCAL}"\n')
    creds = cargo_home / "credentials.toml"
    creds.write_text(f'[registries.local]\nsecret-key = "{secret}"\n')
    window = open_manager(qtbot, store)
    dialog = window.import_from_cargo()
    assert "already has a different key" in dialog.table.item(0, 3).text()
    assert not dialog.import_button.isEnabled()
    assert secret in creds.read_text()  # untouched


# ---------------------------------------------------------------------------------------------
# the passphrase prompt


class Worker(threading.Thread):
    def __init__(self, fn):
        super().__init__(daemon=True)
        self.fn = fn
        self.result = None
        self.error = None

    def run(self):
        try:
            self.result = self.fn()
        except Exception as exc:
            self.error = exc


@pytest.fixture
def make_unlocker(qtbot):
    made = []

    def make(timeout):
        unlocker = QtUnlocker(timeout=timeout)
        made.append(unlocker)
        return unlocker

    yield make
    for unlocker in made:  # answers None to anything still waiting; drops its dialog
        unlocker.shutdown()


def gone_or_hidden(dialog):
    return not shiboken6.isValid(dialog) or not dialog.isVisible()


def shown_dialogs(unlocker):
    shown: list[object] = []
    unlocker.dialog_shown.connect(shown.append)
    return shown


def test_unlocker_from_a_worker_thread_unlocks_a_real_key(qtbot, store, caplog, make_unlocker):
    rec = store.create(registry="local", index_url=LOCAL, passphrase=Secret("hunter2"))
    store.forget_cached()
    unlocker = make_unlocker(60)
    store.unlocker = unlocker
    shown = shown_dialogs(unlocker)
    worker = Worker(lambda: store.signing_key(rec))
    worker.start()
    qtbot.waitUntil(lambda: len(shown) == 1)
    dialog: PassphraseDialog = shown[0]
    assert not dialog.isModal()
    assert dialog.field_labels["Registry"].text() == "local"
    assert dialog.field_labels["Key id"].text() == rec.kip
    assert dialog.why_label.text() == "Unlock the key to sign."
    assert dialog.edit.echoMode() == QLineEdit.EchoMode.Password
    assert "hunter2" not in dialog.windowTitle()
    all_labels_plain(dialog)
    assert not dialog.unlock_button.isEnabled()
    qtbot.keyClicks(dialog.edit, "hunter2")
    click(qtbot, dialog.unlock_button)
    qtbot.waitUntil(lambda: not worker.is_alive())
    assert worker.error is None and present(worker.result).kip == rec.kip
    qtbot.waitUntil(lambda: gone_or_hidden(dialog))
    assert "hunter2" not in caplog.text


@pytest.mark.slow
def test_unlocker_wrong_passphrase_signs_nothing(qtbot, store, make_unlocker):
    rec = store.create(registry="local", index_url=LOCAL, passphrase=Secret("right"))
    store.forget_cached()
    unlocker = make_unlocker(60)
    store.unlocker = unlocker
    shown = shown_dialogs(unlocker)
    worker = Worker(lambda: store.signing_key(rec))
    worker.start()
    qtbot.waitUntil(lambda: len(shown) == 1)
    dialog = shown[0]
    qtbot.keyClicks(dialog.edit, "wrong")
    qtbot.keyClick(dialog.edit, Qt.Key.Key_Return)  # Return unlocks
    # #14: the prompt stays, says so, and holds Unlock for the backoff; nothing is signed.
    assert dialog.isVisible() and worker.is_alive()
    assert dialog.why_label.text() == "Wrong passphrase, 2 s before the next try."
    assert dialog.edit.text() == ""
    qtbot.keyClicks(dialog.edit, "right")
    assert not dialog.unlock_button.isEnabled()
    qtbot.keyClick(dialog.edit, Qt.Key.Key_Return)  # too early: ignored
    assert worker.is_alive()
    qtbot.waitUntil(dialog.unlock_button.isEnabled, timeout=5000)
    assert dialog.why_label.text() == "Wrong passphrase; try again."
    assert dialog.edit.text() == "right"
    qtbot.keyClick(dialog.edit, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: not worker.is_alive())
    assert worker.error is None and present(worker.result).kip == rec.kip


def test_unlocker_wrong_passphrase_then_cancel_signs_nothing(qtbot, store, make_unlocker):
    from gui_approver.errors import KeyLocked

    rec = store.create(registry="local", index_url=LOCAL, passphrase=Secret("right"))
    store.forget_cached()
    unlocker = make_unlocker(60)
    store.unlocker = unlocker
    shown = shown_dialogs(unlocker)
    worker = Worker(lambda: store.signing_key(rec, purpose="to sign the publish of foo 1.0.0"))
    worker.start()
    qtbot.waitUntil(lambda: len(shown) == 1)
    dialog = shown[0]
    assert dialog.why_label.text() == "Unlock the key to sign the publish of foo 1.0.0."
    assert dialog.width() >= 560
    qtbot.keyClicks(dialog.edit, "wrong")
    qtbot.keyClick(dialog.edit, Qt.Key.Key_Return)
    assert dialog.isVisible() and "Wrong passphrase" in dialog.why_label.text()
    click(qtbot, dialog.cancel_button)
    qtbot.waitUntil(lambda: not worker.is_alive())
    assert isinstance(worker.error, KeyLocked) and not isinstance(worker.error, WrongPassphrase)


def test_unlocker_shows_why_and_returns_none_on_cancel_and_escape(qtbot, store, make_unlocker):
    rec = store.create(registry="<b>reg</b>", index_url=LOCAL)
    unlocker = make_unlocker(60)
    shown = shown_dialogs(unlocker)
    first = Worker(lambda: unlocker(rec, "wrong passphrase, try again"))
    second = Worker(lambda: unlocker(rec, "unlock the key to sign"))
    first.start()
    qtbot.waitUntil(lambda: len(shown) == 1)
    second.start()
    qtbot.waitUntil(lambda: unlocker.pending_count() == 2)
    dialog = shown[0]
    assert dialog.why_label.text() == "Wrong passphrase, try again."
    assert dialog.field_labels["Registry"].text() == "<b>reg</b>"
    all_labels_plain(dialog)
    qtbot.keyClicks(dialog.edit, "typed but cancelled")
    click(qtbot, dialog.cancel_button)
    qtbot.waitUntil(lambda: not first.is_alive())
    assert first.error is None and first.result is None
    # the queued question comes next; Escape cancels it
    qtbot.waitUntil(lambda: len(shown) == 2)
    qtbot.keyClick(shown[1].edit, Qt.Key.Key_Escape)
    qtbot.waitUntil(lambda: not second.is_alive())
    assert second.result is None and unlocker.pending_count() == 0


def test_unlocker_times_out_to_none_and_closes_its_dialog(qtbot, store, make_unlocker):
    rec = store.create(registry="local", index_url=LOCAL)
    unlocker = make_unlocker(0.5)
    shown = shown_dialogs(unlocker)
    worker = Worker(lambda: unlocker(rec, "unlock the key to sign"))
    worker.start()
    qtbot.waitUntil(lambda: len(shown) == 1)
    assert "Cancels automatically" in shown[0].status_label.text()
    qtbot.waitUntil(lambda: not worker.is_alive(), timeout=5000)
    assert worker.result is None
    qtbot.waitUntil(lambda: unlocker.dialog is None and gone_or_hidden(shown[0]))


def test_unlocker_on_the_gui_thread_and_after_shutdown(qtbot, store, make_unlocker):
    rec = store.create(registry="local", index_url=LOCAL)
    unlocker = make_unlocker(30)

    def answer(dialog):
        qtbot.keyClicks(dialog.edit, "from the gui thread")
        qtbot.mouseClick(dialog.unlock_button, LEFT)

    unlocker.dialog_shown.connect(answer)
    assert unlocker(rec, "unlock the key to sign") == Secret("from the gui thread")
    unlocker.dialog_shown.disconnect(answer)
    shown = shown_dialogs(unlocker)
    worker = Worker(lambda: unlocker(rec, "unlock the key to sign"))
    worker.start()
    qtbot.waitUntil(lambda: len(shown) == 1)
    unlocker.shutdown()
    qtbot.waitUntil(lambda: not worker.is_alive())
    assert worker.result is None
    assert unlocker(rec, "unlock the key to sign") is None  # closed: never asks again


def test_no_secret_reaches_the_key_index_files(qtbot, store, app_env):
    wizard = open_wizard(qtbot, store)
    qtbot.keyClicks(wizard.registry_page.name_edit, "local")
    qtbot.keyClicks(wizard.registry_page.index_edit, LOCAL)
    click(qtbot, wizard_button(wizard, "NextButton"))
    click(qtbot, wizard_button(wizard, "CommitButton"))
    record = present(wizard.record)
    secret = present(KeyringKeychain().get(record.kip)).expose()
    for path in Path(app_env["XDG_CONFIG_HOME"]).rglob("*"):
        if path.is_file():
            assert secret not in path.read_text(errors="replace")
    index = json.loads(store.index_path.read_text())
    assert [k["kip"] for k in index["keys"]] == [record.kip]


def test_wizard_close_on_the_last_page_leaves_cargo_alone(qtbot, store, cargo_home):
    """#14: the last page's Finish used to skip configuring cargo without a word."""
    config = cargo_home / "config.toml"
    config.write_text(f'[registries.mine]\nindex = "{LOCAL}"\n')
    wizard = open_wizard(qtbot, store)
    click(qtbot, wizard_button(wizard, "NextButton"))
    click(qtbot, wizard_button(wizard, "CommitButton"))
    click(qtbot, wizard_button(wizard, "NextButton"))
    assert wizard.currentId() == NewKeyWizard.PAGE_CARGO
    assert "Close leaves cargo's configuration as it is" in wizard.cargo_page.subTitle()
    close = wizard_button(wizard, "CancelButton")
    assert close.text() == "Close"
    click(qtbot, close)
    assert "credential-provider" not in config.read_text()


def test_manager_configures_cargo_for_an_existing_key(qtbot, store, cargo_home):
    rec = store.create(registry="mine", index_url=LOCAL)
    window = KeyManagerWindow(store, cargo_home=cargo_home)
    qtbot.addWidget(window)
    window.show()
    assert window.select(rec.kip)
    assert window.configure_button.isEnabled()
    click(qtbot, window.configure_button)
    dialog = window.dialog
    assert isinstance(dialog, ConfigureCargoDialog)
    assert dialog.windowTitle() == "Configure cargo for mine"
    assert "+credential-provider" in dialog.view.diff.toPlainText()
    click(qtbot, dialog.view.apply_button)
    text = (cargo_home / "config.toml").read_text()
    assert f'index = "{LOCAL}"' in text and cargo_config.BRIDGE_NAME in text
    assert "Configured cargo" in window.status.text()


def test_passphrase_prompt_never_wraps_the_url_or_key_id(qtbot, store):
    rec = store.create(
        registry="company-registry",
        index_url="sparse+https://crates.company.example/index/",
        passphrase=Secret("correct horse battery staple"),
    )
    d = PassphraseDialog(
        rec,
        "unlock the key to sign the read of the registry's index that "
        "cargo makes before a publish, yank or owner change",
    )
    qtbot.addWidget(d)
    d.show()
    qtbot.waitExposed(d)
    assert d.width() >= 560
    for name in ("Index URL", "Key id"):
        label = d.field_labels[name]
        assert not label.wordWrap()
        assert label.width() >= label.fontMetrics().horizontalAdvance(label.text())

"""The crates.io trap is closed (issue 11): the first-run window and the wizard offer crates.io
only with its bearer token, and nothing points crates.io at gui-approver before that token is
in the keychain (an existing crates.io token keeps working until it is imported). Offscreen Qt
against the real keychain (gnome-keyring on a private D-Bus)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from checks import present
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QWizard

from gui_approver.core import cargo_config
from gui_approver.core.keys.bearer import bearer_store
from gui_approver.core.keys.store import KeyringKeychain, KeyStore
from gui_approver.secret import Secret
from gui_approver.ui.firstrun import FirstRunWindow
from gui_approver.ui.keys import KeyManagerWindow, NewKeyWizard

TOKEN = "cioUsersRealCratesIoToken0123456789"
LEFT = Qt.MouseButton.LeftButton
# What `cargo login` (cargo:token, the default for crates.io) writes.
CREDENTIALS = f'[registry]\ntoken = "{TOKEN}"\n'


@pytest.fixture
def store(app_env):
    return KeyStore(KeyringKeychain())


@pytest.fixture
def cargo_home(app_env) -> Path:
    home = Path(app_env["CARGO_HOME"])
    (home / "credentials.toml").write_text(CREDENTIALS)
    os.chmod(home / "credentials.toml", 0o600)
    return home


def crates_io_provider(home: Path) -> object:
    import tomllib

    path = home / "config.toml"
    if not path.exists():
        return None
    return tomllib.loads(path.read_text()).get("registry", {}).get("credential-provider")


def click(qtbot, button):
    assert button.isVisible() and button.isEnabled(), button.text()
    qtbot.mouseClick(button, LEFT)


def test_wizard_offers_crates_io_only_as_a_bearer_token(qtbot, store, cargo_home):
    win = FirstRunWindow(store, cargo_home=cargo_home)
    qtbot.addWidget(win)
    win.show()
    assert "crates.io does not accept asymmetric tokens yet" in win.cargo_note.text()
    click(qtbot, win.new_key_button)
    wizard = win.wizard
    assert isinstance(wizard, NewKeyWizard) and wizard.isVisible()
    page = wizard.registry_page
    page.crates_io.setChecked(True)
    # The asymmetric kind cannot be chosen for crates.io, and the wizard says why.
    assert page.kind_token.isChecked() and not page.kind_key.isEnabled()
    assert "crates.io does not accept asymmetric tokens" in page.kind_note.text()
    page.kind_key.setChecked(True)  # even forced, the page refuses a key for crates.io
    page._update()
    assert page.kind() == "token"
    # Another registry: the wizard asks which kind, and says what asymmetric needs.
    page.other.setChecked(True)
    assert page.kind_key.isEnabled()
    assert any(
        "verifies RFC 3231" in w.text() for w in page.kind_box.findChildren(type(page.kind_note))
    )
    page.crates_io.setChecked(True)
    click(qtbot, wizard.button(QWizard.WizardButton.NextButton))
    assert wizard.currentId() == NewKeyWizard.PAGE_TOKEN
    advice = wizard.token_page.advice.text()
    assert "publish-update" in advice and "crate scopes" in advice and "expiry" in advice
    assert "token import-cargo" in advice
    # Walking the wizard up to the token page wrote nothing: the user's token still works.
    assert crates_io_provider(cargo_home) is None
    assert (cargo_home / "credentials.toml").read_text() == CREDENTIALS
    assert store.list() == [] and bearer_store(store).list() == []
    wizard.close()


def test_first_run_moves_the_crates_io_token_and_only_then_points_cargo_at_the_bridge(
    qtbot, store, cargo_home
):
    win = FirstRunWindow(store, cargo_home=cargo_home)
    qtbot.addWidget(win)
    win.show()
    assert win.needs_cargo and win.configure_button.text() == "Protect my crates.io token…"
    # Before the import nothing rewrites crates.io's provider, even when asked to configure.
    win.preview_cargo()
    assert not win.cargo_view.apply_button.isEnabled()
    assert "crates.io does not accept asymmetric tokens" in win.cargo_view.status.text()
    assert crates_io_provider(cargo_home) is None
    click(qtbot, win.configure_button)
    assert "plaintext" in win.status.text() and str(cargo_home) in win.status.text()
    assert crates_io_provider(cargo_home) is None  # still only offered
    click(qtbot, win.import_button)
    assert "now only in the keychain" in win.status.text()
    tokens = bearer_store(store)
    rec = present(tokens.find_by_registry("crates-io"))
    assert rec.index_url == cargo_config.CRATES_IO_INDEX and rec.origin == "dialog"
    assert tokens.token(rec) == Secret(TOKEN)
    assert (cargo_home / "credentials.toml").read_text() == "[registry]\n"
    assert crates_io_provider(cargo_home) == [cargo_config.bridge_path()]
    assert TOKEN not in win.status.text()

    # The key manager shows the kind.
    manager = KeyManagerWindow(store, cargo_home=cargo_home)
    qtbot.addWidget(manager)
    assert manager.cell_text(0, "Kind") == "bearer token"
    assert manager.cell_text(0, "Key id") == f"sha256:{rec.fingerprint}"
    assert not manager.token_warning.isVisible()
    tokens.set_silent_reads(rec, True)
    manager.refresh()
    manager.show()
    assert manager.token_warning.isVisible() and "crates-io" in manager.token_warning.text()


def test_key_manager_deletes_a_bearer_token_after_the_name_is_typed(qtbot, store, cargo_home):
    from gui_approver.core.keys import flows

    rec = flows.add_token(store, Secret(TOKEN), registry="crates-io", origin="cli")
    manager = KeyManagerWindow(store, cargo_home=cargo_home)
    qtbot.addWidget(manager)
    manager.show()
    manager.table.selectRow(0)
    assert manager.selected_token() == rec and manager.delete_button.isEnabled()
    dialog = present(manager.delete_selected())
    assert "bearer token" in dialog.windowTitle() or "token" in dialog.windowTitle()
    assert not dialog.delete_button.isEnabled()
    qtbot.keyClicks(dialog.confirm_edit, "crates-io")
    click(qtbot, dialog.delete_button)
    assert bearer_store(store).list() == []
    assert KeyringKeychain().get(rec.account) is None
    assert "revoke it at the registry" in manager.status.text()

"""The welcome window shown when the app starts and no key exists yet (non-modal)."""

from __future__ import annotations

import logging
import tomllib
from pathlib import Path
from typing import Any

from PySide6.QtCore import QEvent, Qt, Signal
from PySide6.QtWidgets import QHBoxLayout, QLabel, QPushButton, QVBoxLayout, QWidget

from gui_approver.core import cargo_config
from gui_approver.core.keys import flows
from gui_approver.core.keys.store import KeyStore
from gui_approver.errors import GuiApproverError
from gui_approver.ui.keys import CargoConfigView, NewKeyWizard

log = logging.getLogger(__name__)

WELCOME = (
    "gui-approver keeps the credentials cargo uses for your registries in your keychain: a "
    "bearer token (crates.io and most registries) or an asymmetric key (RFC 3231). "
    "Whenever cargo needs one for a publish, yank or owner change, a window asks you "
    "first, and nothing is released until you approve it. "
    "To start, move your crates.io token into the keychain, or add a token or key for "
    "another registry."
)

NO_KEYCHAIN = (
    "No keychain is running, so gui-approver cannot keep anything yet. It stores keys and "
    "tokens only in your system keychain (the Secret Service: GNOME Keyring or KWallet), "
    "never in a file. Most desktops start one when you log in; start yours (or log in to a "
    "desktop session), then open gui-approver again."
)

CRATES_IO_NOTE = (
    "crates.io does not accept asymmetric tokens yet, so gui-approver protects your crates.io "
    "token itself. Until you move it into the keychain, cargo keeps using it as it does now."
)


def _mentions_bridge(value: Any) -> bool:
    if isinstance(value, str):
        return cargo_config.BRIDGE_NAME in value
    if isinstance(value, list):
        return any(_mentions_bridge(v) for v in value)
    return False


def cargo_uses_bridge(home: Path | None = None) -> bool:
    """True if cargo's config sends any registry (or crates.io) to the bridge.

    An unreadable or invalid config counts as "not configured" (the preview reports why).
    """
    try:
        registries = cargo_config.configured_registries(home)
    except Exception as exc:  # noqa: BLE001 - ConfigError, OSError: not configured
        log.info("cannot read cargo's config: %s", exc)
        return False
    if any(_mentions_bridge(e.get("credential-provider")) for e in registries.values()):
        return True
    try:
        path = cargo_config.config_path(home or cargo_config.cargo_home())
        doc = tomllib.loads(path.read_text("utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return False
    registry = doc.get("registry")
    return isinstance(registry, dict) and _mentions_bridge(registry.get("credential-provider"))


def keychain_problem(store: KeyStore) -> str | None:
    """Why the store's keychain cannot be used (None: it can). Reads nothing secret."""
    describe = getattr(store.keychain, "describe", None)
    if describe is None:
        return None
    try:
        describe()
    except GuiApproverError as exc:
        return str(exc)
    return None


class FirstRunWindow(QWidget):
    """Three sentences on what the app does, a button for the new-key wizard and, when cargo
    does not use the bridge yet, an offer to configure it (a preview, applied on request)."""

    #: A key or token was stored, or cargo's configuration changed (the app refreshes).
    changed = Signal()

    def __init__(
        self, store: KeyStore, *, cargo_home: Path | None = None, parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self.store = store
        self.cargo_home = cargo_home
        self.wizard: NewKeyWizard | None = None
        self.setObjectName("firstRunWindow")
        self.setWindowTitle("Welcome to gui-approver")
        self.setWindowModality(Qt.WindowModality.NonModal)
        layout = QVBoxLayout(self)
        title = QLabel("Welcome to gui-approver")
        font = title.font()
        font.setBold(True)
        font.setPointSizeF(font.pointSizeF() * 1.3)
        title.setFont(font)
        layout.addWidget(title)
        self.text = QLabel(WELCOME)
        self.text.setObjectName("welcomeText")
        self.text.setTextFormat(Qt.TextFormat.PlainText)
        self.text.setWordWrap(True)
        layout.addWidget(self.text)

        # No keychain: say so now, in this window, not after the whole wizard.
        self.keychain_problem = keychain_problem(store)
        self.keychain_note = QLabel(NO_KEYCHAIN)
        self.keychain_note.setObjectName("keychainProblem")
        self.keychain_note.setTextFormat(Qt.TextFormat.PlainText)
        self.keychain_note.setWordWrap(True)
        self.keychain_note.setStyleSheet("color: #8a1c00; font-weight: bold;")
        self.keychain_note.setVisible(self.keychain_problem is not None)
        layout.addWidget(self.keychain_note)

        self.needs_cargo = not cargo_uses_bridge(cargo_home)
        self.cargo_note = QLabel(
            "cargo is not configured to use gui-approver for any registry yet. " + CRATES_IO_NOTE
        )
        self.cargo_note.setObjectName("cargoNote")
        self.cargo_note.setTextFormat(Qt.TextFormat.PlainText)
        self.cargo_note.setWordWrap(True)
        self.cargo_note.setVisible(self.needs_cargo)
        layout.addWidget(self.cargo_note)
        self.cargo_view = CargoConfigView(cargo_home, store=store)
        self.cargo_view.setVisible(False)
        layout.addWidget(self.cargo_view, 1)
        self.status = QLabel("")
        self.status.setObjectName("firstRunStatus")
        self.status.setTextFormat(Qt.TextFormat.PlainText)
        self.status.setWordWrap(True)
        self.status.setVisible(False)
        layout.addWidget(self.status)

        row = QHBoxLayout()
        self.configure_button = QPushButton("Protect my crates.io token…")
        self.configure_button.setObjectName("cratesIoButton")
        self.configure_button.clicked.connect(self.protect_crates_io)
        self.configure_button.setVisible(self.needs_cargo)
        self.configure_button.setDefault(self.needs_cargo)
        row.addWidget(self.configure_button)
        self.import_button = QPushButton("Move it into the keychain")
        self.import_button.setObjectName("importCratesIo")
        self.import_button.clicked.connect(self.import_crates_io)
        self.import_button.setVisible(False)
        row.addWidget(self.import_button)
        self.new_key_button = QPushButton("Another registry…")
        self.new_key_button.setDefault(not self.needs_cargo)
        self.new_key_button.clicked.connect(self.open_wizard)
        row.addWidget(self.new_key_button)
        row.addStretch(1)
        close = QPushButton("Close")
        close.clicked.connect(self.close)
        row.addWidget(close)
        layout.addLayout(row)
        if self.keychain_problem is not None:
            log.warning("welcome window: %s", self.keychain_problem)
            for b in (self.configure_button, self.new_key_button):
                b.setEnabled(False)
            close.setDefault(True)
        self.resize(560, 260)

    def shutdown(self) -> None:
        """Close this window and the wizard it opened (the app is quitting)."""
        if self.wizard is not None:
            self.wizard.close()
            self.wizard.deleteLater()
            self.wizard = None
        self.close()

    def open_wizard(self) -> NewKeyWizard:
        if self.wizard is None:
            self.wizard = NewKeyWizard(self.store, cargo_home=self.cargo_home)
            self.wizard.created.connect(self._created)
            self.wizard.cargo_page.view.applied.connect(self._cargo_changed)
        self.wizard.show()
        self.wizard.raise_()
        self.wizard.activateWindow()
        return self.wizard

    def _say(self, text: str) -> None:
        self.status.setText(text)
        self.status.setVisible(True)

    def _cargo_crates_io_token(self) -> cargo_config.CargoSecret | None:
        try:
            found = cargo_config.find_cargo_tokens(self.cargo_home)
        except GuiApproverError as exc:
            self._say(f"Cannot read cargo's credentials: {exc}")
            return None
        return next((f for f in found if f.registry == cargo_config.CRATES_IO), None)

    def protect_crates_io(self) -> None:
        """crates.io only with its bearer token: move cargo's (if it has one) or ask for it."""
        found = self._cargo_crates_io_token()
        if found is not None:
            self._say(
                f"cargo keeps your crates.io token in plaintext in {found.path}. Move it into "
                "the keychain: the file keeps every other line, and cargo then asks "
                "gui-approver, which asks you, before each publish, yank or owner change."
            )
            self.import_button.setVisible(True)
            self.import_button.setDefault(True)
            return
        wizard = self.open_wizard()
        wizard.registry_page.crates_io.setChecked(True)

    def import_crates_io(self) -> bool:
        try:
            (done,) = flows.import_cargo_tokens(
                self.store, registry=cargo_config.CRATES_IO, home=self.cargo_home, origin="dialog"
            )
        except (GuiApproverError, ValueError, OSError) as exc:
            self._say(f"Nothing was moved: {exc}")
            return False
        self._say(
            f"Your crates.io token (sha256:{done.fingerprint}) is now only in the keychain, "
            f"and cargo uses gui-approver for crates.io ({done.config_path}). Your next "
            "cargo publish shows an approval window first."
        )
        self.import_button.setVisible(False)
        self.configure_button.setEnabled(False)
        self.new_key_button.setEnabled(True)
        self._cargo_changed()
        return True

    def refresh_cargo(self) -> None:
        """Say "cargo is not configured" only while it is not (re-read on every change)."""
        self.needs_cargo = not cargo_uses_bridge(self.cargo_home)
        self.cargo_note.setVisible(self.needs_cargo)
        if not self.needs_cargo:
            self.configure_button.setVisible(False)

    def _cargo_changed(self, _backup: object = None) -> None:
        self.refresh_cargo()
        self.changed.emit()

    def changeEvent(self, e: QEvent) -> None:
        # Back to this window (cargo may have been configured elsewhere): look again.
        if e.type() == QEvent.Type.ActivationChange and self.isActiveWindow():
            self.refresh_cargo()
        super().changeEvent(e)

    def preview_cargo(self) -> None:
        """Show what configuring crates.io would change (refused until its token is in the
        keychain); written only by "Apply this change"."""
        self.cargo_view.plan(cargo_config.CRATES_IO, None)
        self.cargo_view.setVisible(True)
        self.resize(max(self.width(), 720), max(self.height(), 480))

    def _created(self, _rec: object) -> None:
        self.text.setText(
            "Your key or token is stored. Finish the wizard's steps, then close "
            "this window; gui-approver keeps running in the tray."
        )
        self.new_key_button.setEnabled(False)
        self.changed.emit()

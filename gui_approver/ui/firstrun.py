"""The welcome window shown when the app starts and no key exists yet (non-modal)."""

from __future__ import annotations

import logging
import tomllib
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QHBoxLayout, QLabel, QPushButton, QVBoxLayout, QWidget

from gui_approver.core import cargo_config
from gui_approver.core.keys.store import KeyStore
from gui_approver.ui.keys import CargoConfigView, NewKeyWizard

log = logging.getLogger(__name__)

WELCOME = (
    "gui-approver keeps the keys that cargo uses to authenticate to registries "
    "(RFC 3231 asymmetric tokens) in your keychain. "
    "Whenever cargo needs a token for a publish, yank or owner change, a window asks you "
    "first, and nothing is signed until you approve it. "
    "To start, create a key for your registry and register its public key there."
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


class FirstRunWindow(QWidget):
    """Three sentences on what the app does, a button for the new-key wizard and, when cargo
    does not use the bridge yet, an offer to configure it (a preview, applied on request)."""

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

        self.needs_cargo = not cargo_uses_bridge(cargo_home)
        self.cargo_note = QLabel(
            "cargo is not configured to use gui-approver for any registry yet. The new-key "
            "wizard offers this for the key's registry as its last step; for crates.io you "
            "can also preview the change here."
        )
        self.cargo_note.setObjectName("cargoNote")
        self.cargo_note.setTextFormat(Qt.TextFormat.PlainText)
        self.cargo_note.setWordWrap(True)
        self.cargo_note.setVisible(self.needs_cargo)
        layout.addWidget(self.cargo_note)
        self.cargo_view = CargoConfigView(cargo_home)
        self.cargo_view.setVisible(False)
        layout.addWidget(self.cargo_view, 1)

        row = QHBoxLayout()
        self.new_key_button = QPushButton("Create a key…")
        self.new_key_button.setDefault(True)
        self.new_key_button.clicked.connect(self.open_wizard)
        row.addWidget(self.new_key_button)
        self.configure_button = QPushButton("Configure cargo for crates.io…")
        self.configure_button.clicked.connect(self.preview_cargo)
        self.configure_button.setVisible(self.needs_cargo)
        row.addWidget(self.configure_button)
        row.addStretch(1)
        close = QPushButton("Close")
        close.clicked.connect(self.close)
        row.addWidget(close)
        layout.addLayout(row)
        self.resize(560, 260)

    def open_wizard(self) -> NewKeyWizard:
        if self.wizard is None:
            self.wizard = NewKeyWizard(self.store, cargo_home=self.cargo_home)
            self.wizard.created.connect(self._created)
        self.wizard.show()
        self.wizard.raise_()
        self.wizard.activateWindow()
        return self.wizard

    def preview_cargo(self) -> None:
        """Show what configuring crates.io would change; written only by "Apply this change"."""
        self.cargo_view.plan(cargo_config.CRATES_IO, None)
        self.cargo_view.setVisible(True)
        self.resize(max(self.width(), 720), max(self.height(), 480))

    def _created(self, _rec: object) -> None:
        self.text.setText("Your key is created. Finish the wizard's steps, then close this "
                          "window; gui-approver keeps running in the tray.")
        self.new_key_button.setEnabled(False)

"""The key manager's dialogs: configure cargo, rotate, delete, import from cargo."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QTextOption
from PySide6.QtWidgets import (
    QAbstractItemView,
    QApplication,
    QCheckBox,
    QDialog,
    QFormLayout,
    QHBoxLayout,
    QLineEdit,
    QPlainTextEdit,
    QPushButton,
    QStackedWidget,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from gui_approver.core import cargo_config
from gui_approver.core.approval import is_loopback_index
from gui_approver.core.keys import flows
from gui_approver.core.keys.bearer import TokenRecord
from gui_approver.core.keys.store import (
    KeyRecord,
    KeyStore,
    SigningKey,
)
from gui_approver.errors import GuiApproverError, KeyExists
from gui_approver.ui.dialog import _plain, elide_middle
from gui_approver.ui.keys.widgets import (
    CargoConfigView,
    DemoRegistryBox,
    ExpiryPicker,
    PassphraseFields,
    PublicKeyView,
    _bold,
    _err_text,
    _error_label,
    _show_error,
    mono_font,
    short_kip,
)


class ConfigureCargoDialog(QDialog):
    """The key manager's "Configure cargo…" for an existing key or token: the same preview
    and Apply as the wizard's last page."""

    def __init__(
        self,
        store: KeyStore,
        record: KeyRecord | TokenRecord,
        parent: QWidget | None = None,
        *,
        cargo_home: Path | None = None,
    ) -> None:
        super().__init__(parent)
        self.setObjectName("configureCargoDialog")
        self.setWindowTitle(f"Configure cargo for {elide_middle(record.registry, 60)}")
        layout = QVBoxLayout(self)
        self.view = CargoConfigView(cargo_home, store=store)
        layout.addWidget(self.view, 1)
        row = QHBoxLayout()
        row.addStretch(1)
        close = QPushButton("Close")
        close.setAutoDefault(False)
        close.clicked.connect(self.reject)
        row.addWidget(close)
        layout.addLayout(row)
        index = None if record.registry == cargo_config.CRATES_IO else record.index_url
        self.view.plan(record.registry, index)
        self.view.apply_button.setDefault(True)
        self.resize(720, 420)


class RotateDialog(QDialog):
    """Rotation in two steps, as ``key rotate``: create the successor (pending), then, once the
    user confirms it is registered, switch to it (``finish_rotation`` deletes the old key)."""

    rotated = Signal(object)
    started = Signal(object)

    def __init__(
        self,
        store: KeyStore,
        registry: str,
        parent: QWidget | None = None,
        *,
        demo_data_dir: Path | None = None,
    ) -> None:
        super().__init__(parent)
        self.store = store
        self.registry = registry
        self.setObjectName("rotateDialog")
        self.setWindowTitle(f"gui-approver: rotate the key for {elide_middle(registry, 60)}")
        self.old = store.find_by_registry(registry)
        self.pending = store.find_pending(registry)
        layout = QVBoxLayout(self)
        self.stack = QStackedWidget()
        layout.addWidget(self.stack)

        # step 1: create the successor
        start = QWidget()
        s = QVBoxLayout(start)
        s.setContentsMargins(0, 0, 0, 0)
        s.addWidget(_bold(_plain(f"Rotate the key for registry {registry}"), 1.2))
        old_kip = self.old.kip if self.old else "(none)"
        s.addWidget(
            _plain(
                "This creates a successor key. The current key keeps signing until you confirm "
                "that the new one is registered with the registry; then the current key is "
                "deleted."
            )
        )
        s.addWidget(_plain(f"Current key: {old_kip}", mono=True))
        form = QFormLayout()
        self.expiry = ExpiryPicker()
        form.addRow(_plain("New key expires:", selectable=False), self.expiry)
        s.addLayout(form)
        self.passphrase = PassphraseFields()
        s.addWidget(self.passphrase)
        s.addStretch(1)
        self.start_error = _error_label()
        s.addWidget(self.start_error)
        row = QHBoxLayout()
        row.addStretch(1)
        cancel = QPushButton("Cancel")
        cancel.setDefault(True)
        cancel.clicked.connect(self.reject)
        self.create_button = QPushButton("Create successor key")
        self.create_button.setAutoDefault(False)
        self.create_button.clicked.connect(self.create_successor)
        row.addWidget(cancel)
        row.addWidget(self.create_button)
        s.addLayout(row)
        self.stack.addWidget(start)

        # step 2: register it, then confirm
        confirm = QWidget()
        c = QVBoxLayout(confirm)
        c.setContentsMargins(0, 0, 0, 0)
        c.addWidget(_bold(_plain(f"Successor key for registry {registry}"), 1.2))
        c.addWidget(
            _plain(
                "Register this public key with the registry (paste it on its key page):",
                selectable=False,
            )
        )
        self.keys = PublicKeyView()
        c.addWidget(self.keys)
        self.demo = DemoRegistryBox(demo_data_dir)
        c.addWidget(self.demo)
        self.old_note = _plain("")
        c.addWidget(self.old_note)
        self.registered_box = QCheckBox(f"The new key is registered with {elide_middle(registry)}")
        c.addWidget(self.registered_box)
        c.addStretch(1)
        self.confirm_error = _error_label()
        c.addWidget(self.confirm_error)
        row2 = QHBoxLayout()
        row2.addStretch(1)
        self.later_button = QPushButton("Close (keep the current key for now)")
        self.later_button.setDefault(True)
        self.later_button.clicked.connect(self.reject)
        self.switch_button = QPushButton("Switch to the new key")
        self.switch_button.setAutoDefault(False)
        self.switch_button.setEnabled(False)
        self.switch_button.clicked.connect(self.finish)
        self.registered_box.toggled.connect(self.switch_button.setEnabled)
        row2.addWidget(self.later_button)
        row2.addWidget(self.switch_button)
        c.addLayout(row2)
        self.stack.addWidget(confirm)

        if self.pending is not None:
            self._show_pending(self.pending)
        self.setMinimumWidth(760)

    def _show_pending(self, pending: KeyRecord) -> None:
        self.pending = pending
        self.keys.set_record(pending)
        local = is_loopback_index(pending.index_url)
        self.demo.setVisible(local)
        self.demo.set_key(pending.public, pending.subject)
        old = f"The current key ({self.old.kip})" if self.old else "No current key"
        self.old_note.setText(
            f"{old} keeps signing until you confirm that the new key is "
            "registered. Switching deletes the current key."
        )
        self.stack.setCurrentIndex(1)

    def create_successor(self) -> KeyRecord | None:
        passphrase, problem = self.passphrase.result()
        if problem:
            _show_error(self.start_error, problem)
            return None
        if self.old is None:
            _show_error(self.start_error, f"No key for registry {self.registry}.")
            return None
        QApplication.setOverrideCursor(Qt.CursorShape.WaitCursor)
        try:
            pending = self.store.start_rotation(
                self.old, expires=self.expiry.value(), passphrase=passphrase
            )
        except GuiApproverError as exc:
            _show_error(self.start_error, exc.full())
            return None
        finally:
            QApplication.restoreOverrideCursor()
        self.passphrase.clear()
        self._show_pending(pending)
        self.started.emit(pending)
        return pending

    def finish(self) -> KeyRecord | None:
        if not self.registered_box.isChecked():
            return None
        try:
            new = self.store.finish_rotation(self.registry)
        except GuiApproverError as exc:
            _show_error(self.confirm_error, exc.full())
            return None
        self.rotated.emit(new)
        self.accept()
        return new


class DeleteKeyDialog(QDialog):
    """Delete one key after the user types the registry's name (as ``key delete`` asks).
    Cancel is the default button; Return never deletes."""

    deleted = Signal(object)

    def __init__(
        self, store: KeyStore, record: KeyRecord | TokenRecord, parent: QWidget | None = None
    ):
        super().__init__(parent)
        self.store = store
        self.record = record
        self.setObjectName("deleteDialog")
        token = isinstance(record, TokenRecord)
        self.setWindowTitle(
            f"gui-approver: delete the {'token' if token else 'key'} for "
            f"{elide_middle(record.registry)}"
        )
        layout = QVBoxLayout(self)
        if isinstance(record, TokenRecord):
            what = "bearer token"
        else:
            what = "pending successor key" if record.status == "pending" else "key"
        layout.addWidget(_bold(_plain(f"Delete the {what} for registry {record.registry}?"), 1.2))
        layout.addWidget(
            _plain(
                f"Token: sha256:{record.fingerprint}"
                if isinstance(record, TokenRecord)
                else f"Key id: {record.kip}",
                mono=True,
            )
        )
        layout.addWidget(_plain(f"Index URL: {record.index_url}"))
        if isinstance(record, TokenRecord):
            consequence = (
                "The token is removed from the keychain. It still works at the "
                "registry until it expires or you revoke it there."
            )
        elif record.status == "pending":
            consequence = (
                "The current key stays and keeps signing; the rotation is "
                "abandoned. The secret of the successor is removed from the "
                "keychain."
            )
        else:
            consequence = (
                "The secret is removed from the keychain and cannot be recovered. "
                f"Publishing to {record.registry} then needs a new key registered "
                "with the registry."
            )
        layout.addWidget(_plain(consequence))
        layout.addWidget(_plain("Type the registry name to confirm:", selectable=False))
        self.confirm_edit = QLineEdit()
        self.confirm_edit.setAccessibleName("Registry name")
        self.confirm_edit.setPlaceholderText(record.registry)
        self.confirm_edit.textChanged.connect(self._update)
        layout.addWidget(self.confirm_edit)
        self.error = _error_label()
        layout.addWidget(self.error)
        row = QHBoxLayout()
        row.addStretch(1)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setDefault(True)
        self.cancel_button.clicked.connect(self.reject)
        self.delete_button = QPushButton("Delete token" if token else "Delete key")
        self.delete_button.setAutoDefault(False)
        self.delete_button.clicked.connect(self.delete)
        row.addWidget(self.cancel_button)
        row.addWidget(self.delete_button)
        layout.addLayout(row)
        self._update()
        self.setMinimumWidth(560)

    def _update(self) -> None:
        self.delete_button.setEnabled(self.confirm_edit.text().strip() == self.record.registry)

    def delete(self) -> bool:
        if self.confirm_edit.text().strip() != self.record.registry:
            return False
        try:
            if isinstance(self.record, TokenRecord):
                flows.delete_token(self.store, self.record.registry)
            else:
                self.store.delete(self.record)
        except GuiApproverError as exc:
            _show_error(self.error, exc.full())
            return False
        self.deleted.emit(self.record)
        self.accept()
        return True


class _Found:
    """One secret-key found on disk, with what importing it would do (never the secret)."""

    def __init__(self, item: cargo_config.CargoSecret, store: KeyStore, home: Path | None):
        self.item = item
        self.key: SigningKey | None = None
        self.index: str | None = None
        self.problem: str | None = None
        self.note = ""
        try:
            self.key = SigningKey.from_paserk(item.secret)
        except ValueError as exc:
            self.problem = (
                f"the secret-key for {item.registry} in {item.path} is not usable ({exc})"
            )
            return
        try:
            self.index = cargo_config.registry_index(item.registry, home)
        except GuiApproverError as exc:
            self.problem = str(exc)
            return
        if not self.index:
            self.problem = (
                f"registry {item.registry} has no index in "
                f"{cargo_config.config_path(home)}; nothing can be imported"
            )
            return
        try:
            existing = store.find(self.index)
        except GuiApproverError as exc:
            self.problem = str(exc)
            return
        if existing is not None and existing.kip != self.key.kip:
            self.problem = (
                f"registry {item.registry} already has a different key "
                f"({existing.kip}); nothing can be imported"
            )
        elif existing is not None:
            self.note = "already in the keychain; only the copy on disk is removed"
        else:
            self.note = "ready to import"


class ImportCargoDialog(QDialog):
    """``key import-cargo``: move cargo:paseto ``secret-key`` entries into the keychain."""

    imported = Signal(object)

    def __init__(
        self, store: KeyStore, parent: QWidget | None = None, *, cargo_home: Path | None = None
    ) -> None:
        super().__init__(parent)
        self.store = store
        self.home = cargo_home
        self.found: list[_Found] = []
        self.setObjectName("importDialog")
        self.setWindowTitle("gui-approver: import keys from cargo")
        layout = QVBoxLayout(self)
        layout.addWidget(_bold(_plain("Import cargo:paseto keys", selectable=False), 1.2))
        layout.addWidget(
            _plain(
                "cargo:paseto keeps secret keys in plain text in cargo's files. Importing moves "
                "each selected key into the keychain, removes it from the file, and points cargo "
                "at gui-approver for that registry. The public key and key id stay the same, so "
                "there is nothing to register again.",
                selectable=False,
            )
        )
        self.table = QTableWidget(0, 4)
        self.table.setObjectName("found")
        self.table.setHorizontalHeaderLabels(["Registry", "File", "Key id", "Note"])
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.NoSelection)
        self.table.verticalHeader().setVisible(False)
        self.table.horizontalHeader().setStretchLastSection(True)
        layout.addWidget(self.table, 1)
        self.empty = _plain("")
        layout.addWidget(self.empty)
        self.results = QPlainTextEdit()
        self.results.setObjectName("results")
        self.results.setReadOnly(True)
        self.results.setFont(mono_font())
        # keys have no spaces: wrap anywhere rather than hide their ends off to the right
        self.results.setWordWrapMode(QTextOption.WrapMode.WrapAtWordBoundaryOrAnywhere)
        self.results.setVisible(False)
        layout.addWidget(self.results, 1)
        row = QHBoxLayout()
        row.addStretch(1)
        self.close_button = QPushButton("Close")
        self.close_button.setDefault(True)
        self.close_button.clicked.connect(self.accept)
        self.import_button = QPushButton("Import selected")
        self.import_button.setAutoDefault(False)
        self.import_button.clicked.connect(self.import_selected)
        row.addWidget(self.close_button)
        row.addWidget(self.import_button)
        layout.addLayout(row)
        self.setMinimumSize(820, 420)
        self.scan()

    def scan(self) -> None:
        self.table.setRowCount(0)
        self.found = []
        try:
            items = cargo_config.find_cargo_secrets(self.home)
        except GuiApproverError as exc:
            self.empty.setText(str(exc))
            self.import_button.setEnabled(False)
            return
        self.found = [_Found(item, self.store, self.home) for item in items]
        self.table.setRowCount(len(self.found))
        for row, f in enumerate(self.found):
            reg = QTableWidgetItem(f.item.registry)
            reg.setFlags(Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsUserCheckable)
            reg.setCheckState(Qt.CheckState.Unchecked if f.problem else Qt.CheckState.Checked)
            if f.problem:
                reg.setFlags(Qt.ItemFlag.NoItemFlags)
            self.table.setItem(row, 0, reg)
            self.table.setItem(row, 1, QTableWidgetItem(str(f.item.path)))
            kip = QTableWidgetItem(short_kip(f.key.kip) if f.key else "-")
            kip.setFont(mono_font())
            self.table.setItem(row, 2, kip)
            self.table.setItem(row, 3, QTableWidgetItem(f.problem or f.note))
        self.table.resizeColumnsToContents()
        if not self.found:
            where = self.home or cargo_config.cargo_home()
            self.empty.setText(
                f"No cargo:paseto secret-key found in {where}/credentials.toml or config.toml."
            )
        else:
            self.empty.setText("")
        self.empty.setVisible(not self.found)
        self.table.setVisible(bool(self.found))
        self.import_button.setEnabled(any(f.problem is None for f in self.found))

    def selected(self) -> list[_Found]:
        out = []
        for row, f in enumerate(self.found):
            item = self.table.item(row, 0)
            if (
                f.problem is None
                and item is not None
                and item.checkState() == Qt.CheckState.Checked
            ):
                out.append(f)
        return out

    def import_selected(self) -> list[str]:
        """Import the checked entries exactly as ``key import-cargo`` does; returns the report
        lines (also shown in the dialog)."""
        lines: list[str] = []
        done = []
        for f in self.selected():
            item, key, index = f.item, f.key, f.index
            assert key is not None and index is not None
            try:
                flows.import_cargo_key(
                    self.store, item, key, index, origin="dialog", home=self.home
                )
            except KeyExists as exc:
                lines.append(f"Not imported: {exc}.")
                continue
            except (GuiApproverError, OSError) as exc:
                lines.append(
                    f"Importing the key of registry {item.registry} from {item.path} "
                    f"failed: {_err_text(exc)}"
                )
                continue
            done.append(item.registry)
            lines += flows.import_report(item.registry, item.path, key)
        if not lines:
            lines.append("Nothing selected; nothing was imported.")
        self.results.setPlainText("\n".join(lines))
        self.results.setVisible(True)
        self.scan()
        if done:
            self.imported.emit(done)
        return lines

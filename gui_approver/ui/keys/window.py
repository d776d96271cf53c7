"""The key manager window: every key and token, with what can be done to each."""

from __future__ import annotations

import sys
from pathlib import Path

from PySide6.QtCore import QEvent, QPoint, Qt, Signal
from PySide6.QtGui import QCloseEvent
from PySide6.QtWidgets import (
    QAbstractItemView,
    QApplication,
    QDialog,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QMenu,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from gui_approver.core.keys import flows
from gui_approver.core.keys.bearer import TokenRecord, bearer_store
from gui_approver.core.keys.store import (
    KeyRecord,
    KeyStore,
)
from gui_approver.errors import GuiApproverError
from gui_approver.ui.dialog import _plain
from gui_approver.ui.keys.dialogs import (
    ConfigureCargoDialog,
    DeleteKeyDialog,
    ImportCargoDialog,
    RotateDialog,
)
from gui_approver.ui.keys.widgets import (
    CopyRow,
    _copy,
    expiry_text,
    format_when,
    mono_font,
    short_kip,
)
from gui_approver.ui.keys.wizard import NewKeyWizard

#: Columns of the key table, in order.
COLUMNS = (
    "Registry",
    "Kind",
    "Key id",
    "Subject",
    "Created",
    "Expires",
    "Protection",
    "Last used",
    "Status",
)


_KIP_ROLE = Qt.ItemDataRole.UserRole


class KeyManagerWindow(QWidget):
    """Lists the keys (plain text), with New key…, Rotate…, Delete…, Import from cargo… and
    Refresh. ``refresh()`` re-reads the key index and the last-used file."""

    #: The keys were re-read (after any change made here): the app refreshes its status.
    changed = Signal()

    def __init__(
        self,
        store: KeyStore,
        parent: QWidget | None = None,
        *,
        cargo_home: Path | None = None,
        demo_data_dir: Path | None = None,
    ) -> None:
        super().__init__(parent)
        self.store = store
        self.cargo_home = cargo_home
        self.demo_data_dir = demo_data_dir
        self.records: list[KeyRecord] = []
        self.tokens: list[TokenRecord] = []
        self.dialog: QDialog | None = None
        self.setObjectName("keyManager")
        self.setWindowTitle("gui-approver: keys")
        layout = QVBoxLayout(self)

        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setObjectName("keys")
        self.table.setHorizontalHeaderLabels(list(COLUMNS))
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setWordWrap(False)
        self.table.verticalHeader().setVisible(False)
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.table.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.table.customContextMenuRequested.connect(self._context_menu)
        self.table.itemSelectionChanged.connect(self._selection_changed)
        layout.addWidget(self.table, 1)
        self.empty_hint = _plain(
            "No keys yet. Create one (New key…), or import the keys "
            "cargo:paseto left in credentials.toml (Import from "
            "cargo…).",
            selectable=False,
        )
        self.empty_hint.setVisible(False)
        layout.addWidget(self.empty_hint)
        self.token_warning = _plain("", selectable=False)
        self.token_warning.setObjectName("tokenWarning")
        self.token_warning.setStyleSheet("color: #8a5300; font-weight: bold;")
        self.token_warning.setVisible(False)
        layout.addWidget(self.token_warning)

        box = QGroupBox("Selected key")
        self.details_box = box
        grid = QGridLayout(box)
        self.detail_registry = _plain("")
        self.detail_index = _plain("")
        self.detail_public = CopyRow(name="public key")
        self.detail_kip = CopyRow(name="key id")
        self.copy_pem_button = QPushButton("Copy as PEM")
        self.copy_pem_button.setAutoDefault(False)
        self.copy_pem_button.clicked.connect(self.copy_pem)
        rows: list[tuple[str, QWidget]] = [
            ("Registry:", self.detail_registry),
            ("Index URL:", self.detail_index),
            ("Public key:", self.detail_public),
            ("Key id:", self.detail_kip),
        ]
        for r, (name, widget) in enumerate(rows):
            label = _plain(name, selectable=False)
            label.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
            grid.addWidget(label, r, 0)
            grid.addWidget(widget, r, 1)
        grid.addWidget(self.copy_pem_button, 2, 2)
        grid.setColumnStretch(1, 1)
        layout.addWidget(box)

        buttons = QHBoxLayout()
        self.new_button = QPushButton("New key…")
        self.rotate_button = QPushButton("Rotate…")
        self.delete_button = QPushButton("Delete…")
        self.import_button = QPushButton("Import from cargo…")
        self.configure_button = QPushButton("Configure cargo…")
        self.configure_button.setToolTip(
            "Point cargo at gui-approver for the selected key's registry (shows the change first)"
        )
        self.refresh_button = QPushButton("Refresh")
        self.new_button.clicked.connect(self.new_key)
        self.rotate_button.clicked.connect(self.rotate_selected)
        self.delete_button.clicked.connect(self.delete_selected)
        self.import_button.clicked.connect(self.import_from_cargo)
        self.refresh_button.clicked.connect(self.refresh)
        self.configure_button.clicked.connect(self.configure_cargo_selected)
        for b in (
            self.new_button,
            self.rotate_button,
            self.delete_button,
            self.configure_button,
            self.import_button,
        ):
            b.setAutoDefault(False)
            buttons.addWidget(b)
        buttons.addStretch(1)
        self.refresh_button.setAutoDefault(False)
        buttons.addWidget(self.refresh_button)
        layout.addLayout(buttons)
        self.status = _plain("")
        self.status.setObjectName("status")
        layout.addWidget(self.status)
        self.resize(1000, 440)
        self.refresh()

    # -- data -----------------------------------------------------------------------------
    def refresh(self) -> None:
        try:
            self._refresh_table()
        finally:
            self.changed.emit()

    def _refresh_table(self) -> None:
        keep = self.selected_record()
        try:
            records = self.store.list()
            used = self.store.last_used()
        except GuiApproverError as exc:
            self.records = []
            self.table.setRowCount(0)
            self._set_status(f"Cannot read the keys: {exc.full()}")
            self._selection_changed()
            return
        order = {r.registry: i for i, r in enumerate(records) if r.status == "active"}
        records.sort(
            key=lambda r: (order.get(r.registry, len(order)), r.registry, r.status != "active")
        )
        self.records = records
        pending_for = {r.registry for r in records if r.status == "pending"}
        self.table.setRowCount(len(records))
        for row, rec in enumerate(records):
            cells = [
                rec.registry,
                "asymmetric",
                short_kip(rec.kip),
                rec.subject or "-",
                format_when(rec.created, with_time=False),
                expiry_text(rec),
                rec.protection,
                format_when(used.get(rec.kip)),
                self._key_status(rec, pending_for),
            ]
            self._set_row(row, cells, rec.kip)
        try:
            self.tokens = bearer_store(self.store).list()
        except GuiApproverError as exc:
            self.tokens = []
            self._set_status(f"Cannot read the bearer tokens: {exc.full()}")
        self.table.setRowCount(len(records) + len(self.tokens))
        for i, tok in enumerate(self.tokens):
            status = "expired" if tok.is_expired() else "active"
            if tok.silent_reads:
                status += " — reads released without a dialog"
            cells = [
                tok.registry,
                "bearer token",
                f"sha256:{tok.fingerprint}",
                tok.scopes_text(),
                format_when(tok.added, with_time=False),
                tok.expires or "unknown",
                tok.protection,
                "-",
                status,
            ]
            self._set_row(len(records) + i, cells, tok.account)
        silent = [t.registry for t in self.tokens if t.silent_reads]
        self.token_warning.setText(
            "Warning: reads of " + ", ".join(silent) + " get the bearer token without a "
            "dialog, and that token can also publish. Turn it off: gui-approver token "
            "silent-reads --registry NAME off"
            if silent
            else ""
        )
        self.token_warning.setVisible(bool(silent))
        self.empty_hint.setVisible(not records and not self.tokens)
        if keep is not None:
            self.select(keep.kip)
        elif records:
            self.table.selectRow(0)
        self._selection_changed()

    def _key_status(self, rec: KeyRecord, pending_for: set[str]) -> str:
        if rec.status == "pending":
            return "pending successor (confirm when registered)"
        if rec.is_expired():
            return "expired"
        status = "active (successor pending)" if rec.registry in pending_for else "active"
        if rec.protection in ("passphrase", "hardware"):
            # A passphrase or hardware key is "locked" until unlocked; then the next use
            # signs without asking.
            locked = not self.store.is_unlocked(rec)
            status = status.replace("active", "locked" if locked else "unlocked", 1)
        return status

    def _set_row(self, row: int, cells: list[str], ident: str) -> None:
        mono = mono_font()
        for col, text in enumerate(cells):
            item = QTableWidgetItem(text)
            item.setData(_KIP_ROLE, ident)
            if COLUMNS[col] == "Key id":
                item.setFont(mono)
            self.table.setItem(row, col, item)

    def _set_status(self, text: str) -> None:
        self.status.setText(text)

    def cell_text(self, row: int, column: str) -> str:
        item = self.table.item(row, COLUMNS.index(column))
        return item.text() if item is not None else ""

    def row_of(self, kip: str) -> int:
        for row, rec in enumerate(self.records):
            if rec.kip == kip:
                return row
        return -1

    def select(self, kip: str) -> bool:
        row = self.row_of(kip)
        if row < 0:
            return False
        self.table.selectRow(row)
        return True

    def selected_record(self) -> KeyRecord | None:
        rows = {i.row() for i in self.table.selectedItems()}
        if len(rows) != 1:
            return None
        row = rows.pop()
        return self.records[row] if 0 <= row < len(self.records) else None

    def selected_token(self) -> TokenRecord | None:
        rows = {i.row() for i in self.table.selectedItems()}
        if len(rows) != 1:
            return None
        row = rows.pop() - len(self.records)
        return self.tokens[row] if 0 <= row < len(self.tokens) else None

    def _selection_changed(self) -> None:
        tok = self.selected_token()
        self.configure_button.setEnabled(tok is not None or self.selected_record() is not None)
        if tok is not None:
            self.rotate_button.setEnabled(False)
            self.delete_button.setEnabled(True)
            self.copy_pem_button.setEnabled(False)
            self.details_box.setEnabled(True)
            self.detail_registry.setText(tok.registry)
            self.detail_index.setText(tok.index_url)
            self.detail_public.set_value("(a bearer token: nothing to register)")
            self.detail_kip.set_value(f"sha256:{tok.fingerprint}")
            self._set_status(
                f"Bearer token of {tok.registry}: replace it with "
                f"gui-approver token rotate --registry {tok.registry}"
            )
            return
        rec = self.selected_record()
        self.rotate_button.setEnabled(rec is not None)
        self.delete_button.setEnabled(rec is not None)
        self.copy_pem_button.setEnabled(rec is not None)
        self.details_box.setEnabled(rec is not None)
        self.detail_registry.setText(rec.registry if rec else "")
        self.detail_index.setText(rec.index_url if rec else "")
        self.detail_public.set_value(rec.public if rec else "")
        self.detail_kip.set_value(rec.kip if rec else "")

    def copy_kip(self) -> None:
        rec = self.selected_record()
        if rec is not None:
            _copy(rec.kip)

    def copy_public(self) -> None:
        rec = self.selected_record()
        if rec is not None:
            _copy(rec.public)

    def copy_pem(self) -> None:
        rec = self.selected_record()
        if rec is not None:
            _copy(flows.public_pem(rec.public) + "\n")

    def _context_menu(self, pos: QPoint) -> None:
        if self.selected_record() is None:
            return
        menu = QMenu(self)
        menu.addAction("Copy key id", self.copy_kip)
        menu.addAction("Copy public key", self.copy_public)
        menu.addAction("Copy public key as PEM", self.copy_pem)
        menu.exec(self.table.viewport().mapToGlobal(pos))

    # -- flows ----------------------------------------------------------------------------
    # (Signals go to bound methods, never to lambdas holding a dialog: a lambda that keeps
    # its own sender alive can be the last reference to it while Qt deletes it.)
    def _open(self, dialog: QDialog) -> QDialog:
        if self.dialog is not None:
            self.dialog.close()
        self.dialog = dialog
        dialog.finished.connect(self._dialog_finished)
        dialog.open()
        return dialog

    def _dialog_finished(self, _result: int) -> None:
        dialog, self.dialog = self.dialog, None
        if dialog is not None:
            dialog.deleteLater()
        self.refresh()

    def new_key(self) -> NewKeyWizard:
        wizard = NewKeyWizard(
            self.store, self, cargo_home=self.cargo_home, demo_data_dir=self.demo_data_dir
        )
        wizard.created.connect(self._created)
        self._open(wizard)
        return wizard

    def _created(self, rec: KeyRecord) -> None:
        self.refresh()
        self.select(rec.kip)
        self._set_status(f"Created a key for registry {rec.registry} ({rec.kip}).")

    def rotate_selected(self) -> RotateDialog | None:
        rec = self.selected_record()
        if rec is None:
            return None
        dialog = RotateDialog(self.store, rec.registry, self, demo_data_dir=self.demo_data_dir)
        dialog.started.connect(self._rotation_started)
        dialog.rotated.connect(self._rotated)
        self._open(dialog)
        return dialog

    def _rotation_started(self, p: KeyRecord) -> None:
        self.refresh()
        self._set_status(
            f"Created the successor key for registry {p.registry} ({p.kip}); the current key "
            "keeps signing until you confirm the new one is registered."
        )

    def _rotated(self, n: KeyRecord) -> None:
        self._set_status(f"Registry {n.registry} now signs with {n.kip}; the old key was deleted.")

    def delete_selected(self) -> DeleteKeyDialog | None:
        rec: KeyRecord | TokenRecord | None = self.selected_record() or self.selected_token()
        if rec is None:
            return None
        dialog = DeleteKeyDialog(self.store, rec, self)
        dialog.deleted.connect(self._deleted)
        self._open(dialog)
        return dialog

    def _deleted(self, r: KeyRecord | TokenRecord) -> None:
        if isinstance(r, TokenRecord):
            self._set_status(
                f"Deleted the bearer token for registry {r.registry} "
                f"(sha256:{r.fingerprint}); revoke it at the registry too."
            )
        else:
            self._set_status(f"Deleted the key for registry {r.registry} ({r.kip}).")

    def configure_cargo_selected(self) -> ConfigureCargoDialog | None:
        rec: KeyRecord | TokenRecord | None = self.selected_record() or self.selected_token()
        if rec is None:
            return None
        dialog = ConfigureCargoDialog(self.store, rec, self, cargo_home=self.cargo_home)
        dialog.view.applied.connect(self._configured)
        self._open(dialog)
        return dialog

    def _configured(self, _backup: object) -> None:
        self._set_status("Configured cargo to use gui-approver for the selected registry.")

    def import_from_cargo(self) -> ImportCargoDialog:
        dialog = ImportCargoDialog(self.store, self, cargo_home=self.cargo_home)
        dialog.imported.connect(self._imported)
        self._open(dialog)
        return dialog

    def _imported(self, names: list[str]) -> None:
        self.refresh()
        self._set_status(
            f"Imported the key(s) of {', '.join(names)} from cargo; public keys unchanged."
        )

    # -- events ---------------------------------------------------------------------------
    def changeEvent(self, e: QEvent) -> None:
        # Coming back to the window: last-used times may have changed meanwhile.
        if (
            e.type() == QEvent.Type.ActivationChange
            and self.isActiveWindow()
            and self.dialog is None
        ):
            self.refresh()
        super().changeEvent(e)

    def closeEvent(self, e: QCloseEvent) -> None:
        if self.dialog is not None:
            self.dialog.close()
        super().closeEvent(e)


def run_keys_window() -> int:
    """``gui-approver keys``: the key manager on its own (its own process and KeyStore)."""
    import signal

    from gui_approver.core.keys.store import KeyringKeychain
    from gui_approver.core.settings import load as load_settings

    existing = QApplication.instance()
    if isinstance(existing, QApplication):
        app = existing
    else:
        from gui_approver.ui.a11y import prepare_accessibility

        settings, _problems = load_settings()
        prepare_accessibility(settings.paranoid_accessibility)  # before the QApplication
        app = QApplication(sys.argv[:1])
    # Nothing here is half-done on Ctrl-C (every file write is atomic): let it end the window.
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    app.setApplicationName("gui-approver")
    # No display name: Qt would append " — gui-approver" to titles that already start
    # with "gui-approver: ".
    from gui_approver.ui import style

    style.install(app)  # focus rings, readable grey text
    window = KeyManagerWindow(KeyStore(KeyringKeychain()))
    window.show()
    return app.exec()

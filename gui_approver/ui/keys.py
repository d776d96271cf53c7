"""The key manager: a window listing the keys, the new-key wizard, and the rotate, delete and
import-from-cargo flows. They mirror ``gui-approver key ...`` (gui_approver/cli/main.py): same
steps, same wording.

Every string that comes from a file, a registry or the user (registry names, URLs, subjects,
paths) is rendered as plain text: labels through ``_plain``, table cells and combo entries
(always plain), and read-only plain-text editors. No tooltips carry such strings (Qt may
render tooltips as rich text).
"""

from __future__ import annotations

import sys
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from PySide6.QtCore import QDate, QEvent, QPoint, Qt, QTimer, Signal
from PySide6.QtGui import QCloseEvent, QFont, QFontDatabase, QGuiApplication, QTextOption
from PySide6.QtWidgets import (
    QAbstractItemView,
    QApplication,
    QButtonGroup,
    QCheckBox,
    QComboBox,
    QDateEdit,
    QDialog,
    QFileDialog,
    QFormLayout,
    QFrame,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QMenu,
    QPlainTextEdit,
    QPushButton,
    QRadioButton,
    QStackedWidget,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
    QWizard,
    QWizardPage,
)

from gui_approver.core import cargo_config, validate
from gui_approver.core.approval import is_loopback_index
from gui_approver.core.keys import flows
from gui_approver.core.keys.bearer import TokenRecord, bearer_store
from gui_approver.core.keys.store import (
    CRATES_IO_REFUSAL,
    KeyRecord,
    KeyStore,
    SigningKey,
)
from gui_approver.core.keys.strength import passphrase_problem
from gui_approver.errors import GuiApproverError, KeyExists
from gui_approver.secret import Secret
from gui_approver.ui.dialog import _plain, elide_middle

#: Columns of the key table, in order.
COLUMNS = ("Registry", "Kind", "Key id", "Subject", "Created", "Expires", "Protection",
           "Last used", "Status")
_KIP_ROLE = Qt.ItemDataRole.UserRole


# ---------------------------------------------------------------------------------------------
# helpers


def mono_font() -> QFont:
    f = QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont)
    f.setStyleHint(QFont.StyleHint.TypeWriter)
    return f


def short_kip(kip: str) -> str:
    """``k3.pid.AbCdEfGh…uvWxYz``: enough to tell keys apart in a table cell."""
    return kip if len(kip) <= 24 else kip[:15] + "…" + kip[-6:]


def format_when(iso: str | None, *, with_time: bool = True) -> str:
    """An ISO timestamp from the key index as ``YYYY-MM-DD HH:MM UTC`` (or just the date)."""
    if not iso:
        return "never"
    try:
        when = datetime.fromisoformat(iso)
    except ValueError:
        return iso
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    when = when.astimezone(UTC)
    return when.strftime("%Y-%m-%d %H:%M UTC" if with_time else "%Y-%m-%d")


def expiry_text(rec: KeyRecord, now: datetime | None = None) -> str:
    if not rec.expires:
        return "never"
    left = rec.days_left(now)
    if left is None:
        return rec.expires
    if left <= 0:
        return f"{rec.expires} (expired)"
    if left < 1:
        return f"{rec.expires} (today)"
    return f"{rec.expires} (in {int(left)} days)"


def default_demo_data_dir() -> Path:
    """Where ``gui-approver demo-registry`` keeps its data when not given ``--data``."""
    import platformdirs

    return Path(platformdirs.user_data_dir("gui-approver")) / "demo-registry"


def _bold(label: QLabel, scale: float = 1.0) -> QLabel:
    f = label.font()
    f.setBold(True)
    if scale != 1.0:
        f.setPointSizeF(f.pointSizeF() * scale)
    label.setFont(f)
    return label


def _error_label() -> QLabel:
    label = _plain("")
    label.setObjectName("error")
    label.setStyleSheet("color: #b00020;")
    label.setVisible(False)
    return label


def _show_error(label: QLabel, text: str | None) -> None:
    label.setText(text or "")
    label.setVisible(bool(text))


def _err_text(exc: BaseException) -> str:
    return exc.full() if isinstance(exc, GuiApproverError) else f"{type(exc).__name__}: {exc}"


def _copy(text: str) -> None:
    QGuiApplication.clipboard().setText(text)


def _key_label(text: str = "") -> QLabel:
    """A selectable monospace label that never wraps (keys have no spaces to wrap at)."""
    label = _plain(text, mono=True)
    label.setFont(mono_font())
    label.setWordWrap(False)
    return label


def _hline() -> QFrame:
    line = QFrame()
    line.setFrameShape(QFrame.Shape.HLine)
    line.setFrameShadow(QFrame.Shadow.Sunken)
    return line


def parse_index_url(url: str) -> str | None:
    """None if ``url`` looks like a cargo index URL, else why not."""
    return validate.index_url_problem(url)  # the same check as the CLI's


class CopyRow(QWidget):
    """A value in a monospace label and a Copy button that copies the whole value."""

    def __init__(self, value: str = "", *, name: str = "", parent: QWidget | None = None):
        super().__init__(parent)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        self.label = _key_label()
        self.label.setAccessibleName(name)
        self.button = QPushButton("Copy")
        self.button.setAutoDefault(False)
        self.button.setAccessibleName(f"Copy {name}".strip())
        self.button.clicked.connect(self.copy)
        layout.addWidget(self.label, 1)
        layout.addWidget(self.button, 0, Qt.AlignmentFlag.AlignTop)
        self._restore = QTimer(self)
        self._restore.setSingleShot(True)
        self._restore.setInterval(1500)
        self._restore.timeout.connect(self._restore_text)
        self._value = ""
        self.set_value(value)

    def _restore_text(self) -> None:
        self.button.setText("Copy")

    def set_value(self, value: str) -> None:
        self._value = value
        self.label.setText(value)
        self.button.setEnabled(bool(value))

    def value(self) -> str:
        return self._value

    def copy(self) -> None:
        _copy(self._value)
        self.button.setText("Copied")
        self._restore.start()


class ExpiryPicker(QWidget):
    """Never / in 90 days / in 1 year / on a date: ``value()`` is an ISO date (UTC) or None,
    computed as ``--expires 90d``/``1y`` do."""

    CHOICES = (("Never", "none"), ("In 90 days", "90d"), ("In 1 year", "1y"),
               ("On a date…", "date"))

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        self.combo = QComboBox()
        for text, data in self.CHOICES:
            self.combo.addItem(text, data)
        self.combo.setAccessibleName("Expiry")
        today = datetime.now(UTC).date()
        self.date = QDateEdit()
        self.date.setCalendarPopup(True)
        self.date.setDisplayFormat("yyyy-MM-dd")
        self.date.setMinimumDate(_qdate(today + timedelta(days=1)))
        self.date.setDate(_qdate(today + timedelta(days=365)))
        self.date.setAccessibleName("Expiry date")
        self.combo.currentIndexChanged.connect(self._update)
        layout.addWidget(self.combo)
        layout.addWidget(self.date)
        layout.addStretch(1)
        self._update()

    def _update(self) -> None:
        self.date.setVisible(self.combo.currentData() == "date")

    def choose(self, data: str) -> None:
        self.combo.setCurrentIndex(self.combo.findData(data))

    def value(self) -> str | None:
        choice = self.combo.currentData()
        today = datetime.now(UTC).date()
        if choice == "90d":
            return (today + timedelta(days=90)).isoformat()
        if choice == "1y":
            return (today + timedelta(days=365)).isoformat()
        if choice == "date":
            qd = self.date.date()
            return date(qd.year(), qd.month(), qd.day()).isoformat()
        return None


def _qdate(d: date) -> QDate:
    return QDate(d.year, d.month, d.day)


class PassphraseFields(QWidget):
    """Passphrase twice. Both empty = keychain only."""

    NOTE = ("Optional. With a passphrase the keychain holds only the key encrypted with it, "
            "and gui-approver asks for it before signing. Leave both empty to protect the "
            "key with the keychain only.")

    NOTE_BEARER = (
        "Recommended. With a passphrase the keychain holds only the token encrypted with it, "
        "and gui-approver asks for it before handing the token to cargo. Leave both empty to "
        "protect the token with the keychain only.")

    def __init__(self, parent: QWidget | None = None, *, note: str | None = None) -> None:
        super().__init__(parent)
        form = QFormLayout(self)
        form.setContentsMargins(0, 0, 0, 0)
        self.first = QLineEdit()
        self.first.setEchoMode(QLineEdit.EchoMode.Password)
        self.first.setAccessibleName("Passphrase")
        self.first.setObjectName("passphrase")
        self.second = QLineEdit()
        self.second.setEchoMode(QLineEdit.EchoMode.Password)
        self.second.setAccessibleName("Repeat the passphrase")
        self.second.setObjectName("passphrase2")
        form.addRow(_plain("Passphrase:", selectable=False), self.first)
        form.addRow(_plain("Repeat:", selectable=False), self.second)
        label = _plain(note or self.NOTE, selectable=False)
        form.addRow(label)

    def result(self) -> tuple[Secret | None, str | None]:
        """(passphrase or None, error or None)."""
        a, b = self.first.text(), self.second.text()
        if not a and not b:
            return None, None
        if a != b:
            return None, "The passphrases differ; nothing was created."
        problem = passphrase_problem(Secret(a))
        if problem is not None:
            return None, problem + " Nothing was created."
        return Secret(a), None

    def clear(self) -> None:
        self.first.clear()
        self.second.clear()


class HardwareFields(QWidget):
    """Where a hardware key comes from: module, token and key (generate or adopt), the PIN.

    Scanning lists what the module shows without a PIN (``gui-approver hardware list``). The PIN
    is typed here, in the app's own masked field, and cleared once used."""

    NOTE = ("The private key is made on (or already lives on) the token and never leaves it. "
            "The PIN is asked after you approve a request, once per session; the token may "
            "also ask for a touch.")

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        import os

        from gui_approver.core.keys import pkcs11

        form = QFormLayout(self)
        form.setContentsMargins(0, 0, 0, 0)
        self.module = QComboBox()
        self.module.setEditable(True)
        self.module.setAccessibleName("PKCS#11 module")
        self.module.setObjectName("pkcs11Module")
        for path in pkcs11.default_modules():
            if os.path.isfile(path):
                self.module.addItem(path)
        row = QHBoxLayout()
        row.addWidget(self.module, 1)
        self.scan_button = QPushButton("Scan")
        self.scan_button.setObjectName("scanTokens")
        self.scan_button.clicked.connect(self.scan)
        row.addWidget(self.scan_button)
        form.addRow(_plain("Module:", selectable=False), row)
        self.choice = QComboBox()
        self.choice.setAccessibleName("Token and key")
        self.choice.setObjectName("pkcs11Choice")
        form.addRow(_plain("Key:", selectable=False), self.choice)
        self.pin = QLineEdit()
        self.pin.setEchoMode(QLineEdit.EchoMode.Password)
        self.pin.setAccessibleName("Token PIN")
        self.pin.setObjectName("pin")
        form.addRow(_plain("PIN:", selectable=False), self.pin)
        self.status = _plain("", selectable=False)
        self.status.setObjectName("hardwareStatus")
        form.addRow(self.status)
        form.addRow(_plain(self.NOTE, selectable=False))

    def scan(self) -> int:
        """List the module's tokens and P-384 keys; returns how many choices there are."""
        from gui_approver.core.keys import pkcs11

        self.choice.clear()
        module = self.module.currentText().strip()
        if not module:
            self.status.setText("Name a PKCS#11 module first.")
            return 0
        try:
            tokens = pkcs11.backend().list_tokens(module)
        except GuiApproverError as exc:
            self.status.setText(exc.full())
            return 0
        for t in tokens:
            base = pkcs11.parse_uri(t.uri)
            new_uri = str(base.with_key(id=None, object=None))
            self.choice.addItem(f"Generate a new P-384 key on token {t.label!r}",
                                ("generate", module, new_uri))
            for k in t.keys:
                self.choice.addItem(f"Use the P-384 key {k.label or k.id!r} (id {k.id}) on "
                                    f"token {t.label!r}", ("adopt", module, k.uri))
        self.status.setText(f"{len(tokens)} token(s) found." if tokens else
                            "No token found: plug in the security key and scan again.")
        return self.choice.count()

    def make_key(self) -> Any:
        """Generate or adopt the chosen key (a pkcs11.KeyInfo); raises GuiApproverError."""
        from gui_approver.core.keys import pkcs11

        data = self.choice.currentData()
        if not data:
            raise GuiApproverError("choose a token and key first (press Scan)")
        action, module, uri = data
        if not self.pin.text():
            raise GuiApproverError("enter the token's PIN")
        pin = Secret(self.pin.text())
        self.pin.clear()
        b = pkcs11.backend()
        try:
            if action == "adopt":
                return b.adopt(module, uri, pin)
            return b.generate(module, uri, pin, label="gui-approver")
        finally:
            b.logout(module, uri)  # the PIN is asked again after the first approval


class PublicKeyView(QWidget):
    """A key's public halves: ``k3.public`` and ``k3.pid`` with Copy, and the same as PEM."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        grid = QGridLayout(self)
        grid.setContentsMargins(0, 0, 0, 0)
        self.public = CopyRow(name="public key")
        self.public.setObjectName("publicKey")
        self.kip = CopyRow(name="key id")
        self.kip.setObjectName("keyId")
        self.pem = CopyRow(name="PEM")
        self.pem.setObjectName("pem")
        pem_note = _plain("The same key as PEM (SubjectPublicKeyInfo), for registries that "
                          "want a standard public key:", selectable=False)
        rows: list[tuple[str, QWidget]] = [("Public key:", self.public), ("Key id:", self.kip)]
        for r, (name, widget) in enumerate(rows):
            label = _plain(name, selectable=False)
            label.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
            grid.addWidget(label, r, 0)
            grid.addWidget(widget, r, 1)
        grid.addWidget(pem_note, 2, 0, 1, 2)
        grid.addWidget(self.pem, 3, 1)
        grid.setColumnStretch(1, 1)

    def set_record(self, rec: KeyRecord) -> None:
        self.public.set_value(rec.public)
        self.kip.set_value(rec.kip)
        self.pem.set_value(flows.public_pem(rec.public))


class DemoRegistryBox(QGroupBox):
    """For a loopback index: register the public key in a demo registry's data directory
    (``registry.add_key_to_file``, what ``gui-approver demo-registry-key`` does)."""

    registered = Signal(object)

    def __init__(self, data_dir: Path | None = None, parent: QWidget | None = None) -> None:
        super().__init__("Local demo registry", parent)
        self.setObjectName("demoRegistry")
        layout = QVBoxLayout(self)
        layout.addWidget(_plain(
            "This index URL is on this computer. If it is a gui-approver demo registry "
            "(gui-approver demo-registry --data DIR), register the key in its data directory "
            "now; the running registry accepts it at once.", selectable=False))
        row = QHBoxLayout()
        self.dir_edit = QLineEdit(str(data_dir or default_demo_data_dir()))
        self.dir_edit.setAccessibleName("Demo registry data directory")
        choose = QPushButton("Choose…")
        choose.setAutoDefault(False)
        choose.clicked.connect(self._choose)
        self.register_button = QPushButton("Register with the demo registry")
        self.register_button.setAutoDefault(False)
        self.register_button.clicked.connect(self.register)
        row.addWidget(_plain("Data directory:", selectable=False))
        row.addWidget(self.dir_edit, 1)
        row.addWidget(choose)
        layout.addLayout(row)
        bottom = QHBoxLayout()
        bottom.addStretch(1)
        bottom.addWidget(self.register_button)
        layout.addLayout(bottom)
        self.status = _plain("")
        self.status.setObjectName("demoStatus")
        layout.addWidget(self.status)
        self._public = ""
        self._subject: str | None = None

    def set_key(self, public: str, subject: str | None) -> None:
        self._public = public
        self._subject = subject
        self.status.setText("")

    def _choose(self) -> None:
        chosen = QFileDialog.getExistingDirectory(
            self, "The demo registry's data directory", self.dir_edit.text()
        )
        if chosen:
            self.dir_edit.setText(chosen)

    def register(self) -> bool:
        from gui_approver.core.demo_registry import register_public_key

        text = self.dir_edit.text().strip()
        if not text or not self._public:
            self.status.setText("Choose the demo registry's data directory first.")
            return False
        data_dir = Path(text).expanduser()
        try:
            kip, path = register_public_key(data_dir, self._public, self._subject)
        except GuiApproverError as exc:
            self.status.setText(str(exc))
            return False
        self.status.setText(f"Registered {kip} in {path}.")
        self.registered.emit(data_dir)
        return True


# ---------------------------------------------------------------------------------------------
# the new-key wizard


class RegistryPage(QWizardPage):
    def __init__(self, store: KeyStore, home: Path | None) -> None:
        super().__init__()
        self.store = store
        self.home = home
        self.setTitle("Registry")
        self.setSubTitle("Which registry is it for, and which kind of credential does it take?")
        layout = QVBoxLayout(self)
        self.group = QButtonGroup(self)

        try:
            configured = cargo_config.configured_registries(home)
            config_problem = None
        except GuiApproverError as exc:
            configured, config_problem = {}, str(exc)
        self.from_config = QRadioButton("A registry from cargo's configuration")
        self.combo = QComboBox()
        self.combo.setAccessibleName("Configured registry")
        first_free = -1
        for name, entry in sorted(configured.items()):
            index = entry.get("index")
            if isinstance(index, str) and name != cargo_config.CRATES_IO:
                try:
                    has_key = store.find_by_registry(name) is not None
                except GuiApproverError:
                    has_key = False
                if not has_key and first_free < 0:
                    first_free = self.combo.count()
                self.combo.addItem(f"{name}  ({index})" + ("  — has a key" if has_key else ""),
                                   name)
        if first_free >= 0:
            self.combo.setCurrentIndex(first_free)
        where = cargo_config.config_path(home)
        note = f"from {where}" if self.combo.count() else f"{where} names no registries"
        self.config_note = _plain(config_problem or note, selectable=False)
        self.crates_io = QRadioButton("crates.io (its bearer token)")
        self.other = QRadioButton("Another registry:")
        # The kind of credential (issue 11): crates.io takes only bearer tokens.
        self.kind_box = QGroupBox("Which kind of credential does this registry take?")
        self.kind_box.setObjectName("kindBox")
        kind_layout = QVBoxLayout(self.kind_box)
        self.kind_token = QRadioButton("Bearer token")
        self.kind_token.setObjectName("kindToken")
        token_text = _plain(
            "What crates.io, kellnr, Gitea/Forgejo, Artifactory and Cloudsmith take. "
            "gui-approver keeps it in the keychain and hands it to cargo only when you "
            "approve.", selectable=False)
        self.kind_key = QRadioButton("Asymmetric key (RFC 3231)")
        self.kind_key.setObjectName("kindKey")
        key_text = _plain(
            "Works only with a registry that verifies RFC 3231 tokens (today: gui-approver's "
            "own demo registry). The secret never leaves this machine; each approval signs a "
            "token for exactly that request.", selectable=False)
        self.kind_group = QButtonGroup(self)
        self.kind_group.addButton(self.kind_token, 0)
        self.kind_group.addButton(self.kind_key, 1)
        self.kind_note = _plain("", selectable=False)
        self.kind_note.setObjectName("kindNote")
        self.kind_note.setStyleSheet("color: #8a5300;")
        for button, text in ((self.kind_token, token_text), (self.kind_key, key_text)):
            kind_layout.addWidget(button)
            text.setWordWrap(True)
            text.setContentsMargins(24, 0, 0, 4)
            kind_layout.addWidget(text)
        kind_layout.addWidget(self.kind_note)
        self.kind_token.setChecked(True)
        self.name_edit = QLineEdit()
        self.name_edit.setPlaceholderText("name, as in cargo --registry NAME")
        self.name_edit.setAccessibleName("Registry name")
        self.index_edit = QLineEdit()
        self.index_edit.setPlaceholderText("sparse+https://my.registry/index/")
        self.index_edit.setAccessibleName("Index URL")
        for i, b in enumerate((self.from_config, self.crates_io, self.other)):
            self.group.addButton(b, i)

        layout.addWidget(self.from_config)
        indent = QVBoxLayout()
        indent.setContentsMargins(24, 0, 0, 8)
        indent.addWidget(self.combo)
        indent.addWidget(self.config_note)
        layout.addLayout(indent)
        layout.addWidget(self.crates_io)
        layout.addWidget(self.other)
        form = QFormLayout()
        form.setContentsMargins(24, 0, 0, 0)
        form.addRow(_plain("Name:", selectable=False), self.name_edit)
        form.addRow(_plain("Index URL:", selectable=False), self.index_edit)
        layout.addLayout(form)
        layout.addWidget(self.kind_box)
        layout.addStretch(1)
        self.error = _error_label()
        layout.addWidget(self.error)

        if self.combo.count():
            self.from_config.setChecked(True)
        else:
            self.from_config.setEnabled(False)
            self.combo.setEnabled(False)
            self.other.setChecked(True)
        self._kind_chosen = False
        self.kind_group.idClicked.connect(self._kind_clicked)
        self.combo.currentIndexChanged.connect(lambda _i: self._update())
        self.group.idToggled.connect(self._update)
        self.name_edit.textChanged.connect(self._update)
        self.index_edit.textChanged.connect(self._update)
        self.name_edit.textEdited.connect(self._typed)
        self.index_edit.textEdited.connect(self._typed)
        self._update()

    def _typed(self, _text: str) -> None:
        self.other.setChecked(True)

    def _update(self) -> None:
        self.combo.setEnabled(self.from_config.isChecked())
        crates_io = self.crates_io.isChecked()
        if not self._kind_chosen and not crates_io:
            # Until the user picks: asymmetric only for a loopback registry (the demo registry
            # verifies RFC 3231 tokens); production registries take bearer tokens.
            try:
                index = self.selection()[1]
            except GuiApproverError:
                index = None
            local = bool(index) and is_loopback_index(index or "")
            (self.kind_key if local else self.kind_token).setChecked(True)
        if crates_io:
            self.kind_token.setChecked(True)
            self.kind_note.setText(CRATES_IO_REFUSAL + ". gui-approver protects your "
                                   "crates.io token instead.")
        else:
            self.kind_note.setText("Not sure? Ask the registry: if it gave you a token to "
                                   "paste into cargo login, it takes a bearer token.")
        self.kind_key.setEnabled(not crates_io)
        _show_error(self.error, None)
        self.completeChanged.emit()

    def _kind_clicked(self, _id: int) -> None:
        self._kind_chosen = True

    def kind(self) -> str:
        """``token`` or ``asymmetric``; crates.io is always ``token``."""
        if self.crates_io.isChecked() or not self.kind_key.isChecked():
            return "token"
        return "asymmetric"

    def selection(self) -> tuple[str, str | None]:
        """(registry name, index URL or None if unknown)."""
        if self.crates_io.isChecked():
            return cargo_config.CRATES_IO, cargo_config.CRATES_IO_INDEX
        if self.from_config.isChecked():
            name = str(self.combo.currentData() or "")
            return name, cargo_config.registry_index(name, self.home) if name else None
        return self.name_edit.text().strip(), self.index_edit.text().strip() or None

    def isComplete(self) -> bool:
        if self.other.isChecked():
            return bool(self.name_edit.text().strip() and self.index_edit.text().strip())
        if self.from_config.isChecked():
            return self.combo.currentIndex() >= 0
        return self.crates_io.isChecked()

    def validatePage(self) -> bool:
        try:
            name, index = self.selection()
        except GuiApproverError as exc:
            _show_error(self.error, str(exc))
            return False
        problem = None
        name_problem = validate.registry_name_problem(name)  # the same check as the CLI's
        if name_problem is not None:
            problem = name_problem[:1].upper() + name_problem[1:] + "."
        elif not index:
            problem = (f"Registry {name} is not in {cargo_config.config_path(self.home)}; "
                       "enter its index URL.")
        elif self.other.isChecked():
            why = parse_index_url(index)
            problem = f"Invalid index URL: {why}." if why else None
        if problem is None and self.kind() == "asymmetric":
            try:
                flows.refuse_crates_io_key(name, index)
            except GuiApproverError as exc:
                problem = exc.full()
        if problem is None and index:
            try:
                existing = self.store.find_by_registry(name) or self.store.find(index)
                tokens = bearer_store(self.store)
                held = tokens.find_by_registry(name) or tokens.find(index)
            except GuiApproverError as exc:
                existing, held, problem = None, None, str(exc)
            if existing is not None:
                problem = (f"Registry {existing.registry} ({existing.index_url}) already has a "
                           f"key ({existing.kip}). Rotate it, or delete it first.")
            elif held is not None:
                problem = (f"Registry {held.registry} ({held.index_url}) already has a bearer "
                           f"token (sha256:{held.fingerprint}). Delete it first.")
        _show_error(self.error, problem)
        return problem is None


class OptionsPage(QWizardPage):
    def __init__(self, wizard: NewKeyWizard) -> None:
        super().__init__()
        self._wizard = wizard
        self.setTitle("Options")
        self.setSubTitle("All optional. The key is created when you press Create key.")
        layout = QVBoxLayout(self)
        self.summary = _plain("")
        layout.addWidget(self.summary)
        form = QFormLayout()
        self.subject = QLineEdit()
        self.subject.setPlaceholderText("only if the registry asks for one")
        self.subject.setAccessibleName("Subject")
        self.expiry = ExpiryPicker()
        form.addRow(_plain("Subject:", selectable=False), self.subject)
        form.addRow(_plain("Expires:", selectable=False), self.expiry)
        layout.addLayout(form)
        layout.addWidget(_hline())
        where = QHBoxLayout()
        self.in_keychain = QRadioButton("In the keychain")
        self.in_keychain.setObjectName("inKeychain")
        self.on_hardware = QRadioButton("On a hardware key (YubiKey, smart card, TPM)")
        self.on_hardware.setObjectName("onHardware")
        self.in_keychain.setChecked(True)
        where.addWidget(self.in_keychain)
        where.addWidget(self.on_hardware)
        where.addStretch(1)
        layout.addLayout(where)
        self.protection = QStackedWidget()
        self.passphrase = PassphraseFields()
        self.protection.addWidget(self.passphrase)
        self.hardware: HardwareFields | None = None
        layout.addWidget(self.protection)
        self.on_hardware.toggled.connect(self._where_changed)
        layout.addStretch(1)
        self.error = _error_label()
        layout.addWidget(self.error)
        self.setCommitPage(True)
        self.setButtonText(QWizard.WizardButton.CommitButton, "Create key")

    def initializePage(self) -> None:
        name, index = self._wizard.registry_page.selection()
        self.summary.setText(f"A new P-384 key for registry {name} ({index}).")
        _show_error(self.error, None)

    def _where_changed(self, hardware: bool) -> None:
        if hardware and self.hardware is None:  # built (and pkcs11 imported) when asked for
            self.hardware = HardwareFields()
            self.protection.addWidget(self.hardware)
        self.protection.setCurrentWidget(self.hardware if hardware and self.hardware
                                         else self.passphrase)

    def _create_hardware(self, name: str, index: str, subject: str | None) -> KeyRecord:
        assert self.hardware is not None
        self._wizard.store.check_free(name, index)
        info = self.hardware.make_key()
        return self._wizard.store.add_hardware(info, registry=name, index_url=index,
                                               subject=subject, expires=self.expiry.value(),
                                               origin="dialog")

    def validatePage(self) -> bool:
        passphrase, problem = self.passphrase.result()
        if self.on_hardware.isChecked():
            passphrase, problem = None, None
        if problem:
            _show_error(self.error, problem)
            return False
        try:
            name, index = self._wizard.registry_page.selection()
        except GuiApproverError as exc:
            name, index = "", None
            _show_error(self.error, str(exc))
        if not index:
            if not self.error.isVisible():
                _show_error(self.error, f"Registry {name} has no index URL any more; go back "
                                        "and choose the registry again.")
            return False
        subject = self.subject.text().strip() or None
        QApplication.setOverrideCursor(Qt.CursorShape.WaitCursor)
        try:
            if self.on_hardware.isChecked():
                rec = self._create_hardware(name, index, subject)
            else:
                rec = flows.create_key(self._wizard.store, registry=name, index_url=index,
                                       subject=subject, expires=self.expiry.value(),
                                       passphrase=passphrase, origin="dialog")
        except GuiApproverError as exc:
            _show_error(self.error, exc.full())
            return False
        finally:
            QApplication.restoreOverrideCursor()
        self.passphrase.clear()
        self._wizard.set_created(rec)
        return True


class TokenPage(QWizardPage):
    """A bearer token: how to make a narrow one, the token (hidden), what it is, protection."""

    def __init__(self, wizard: NewKeyWizard) -> None:
        super().__init__()
        self._wizard = wizard
        self.setTitle("Bearer token")
        self.setSubTitle("Stored only in your keychain; handed to cargo only when you approve.")
        layout = QVBoxLayout(self)
        self.advice = _plain("")
        self.advice.setObjectName("tokenAdvice")
        self.advice.setWordWrap(True)
        layout.addWidget(self.advice)
        form = QFormLayout()
        self.token = QLineEdit()
        self.token.setEchoMode(QLineEdit.EchoMode.Password)
        self.token.setObjectName("tokenEdit")
        self.token.setAccessibleName("Token")
        self.token.setPlaceholderText("paste the token (it is not shown)")
        self.scopes = QLineEdit()
        self.scopes.setAccessibleName("Scopes")
        self.scopes.setPlaceholderText("e.g. publish-update; crates: mycrate, mycrate-*")
        self.expiry = ExpiryPicker()
        self.expiry.choose("90d")
        form.addRow(_plain("Token:", selectable=False), self.token)
        form.addRow(_plain("Its scopes:", selectable=False), self.scopes)
        form.addRow(_plain("It expires:", selectable=False), self.expiry)
        layout.addLayout(form)
        layout.addWidget(_hline())
        self.passphrase = PassphraseFields(note=PassphraseFields.NOTE_BEARER)
        layout.addWidget(self.passphrase)
        layout.addStretch(1)
        self.error = _error_label()
        layout.addWidget(self.error)
        self.setCommitPage(True)
        self.setButtonText(QWizard.WizardButton.CommitButton, "Store token")
        self.token.textChanged.connect(lambda _t: self.completeChanged.emit())

    def initializePage(self) -> None:
        name, index = self._wizard.registry_page.selection()
        if name == cargo_config.CRATES_IO:
            self.advice.setText(CRATES_IO_REFUSAL + ". " + flows.CRATES_IO_ADVICE + "\n\n"
                                "Already have a token in ~/.cargo/credentials.toml? Close this "
                                "and run `gui-approver token import-cargo`: it moves it here.")
        else:
            self.advice.setText(
                f"The bearer token registry {name} ({index}) gave you. Prefer a token limited "
                "to publishing your crates, with an expiry. Say what it allows: gui-approver "
                "shows it in every approval.")
        _show_error(self.error, None)

    def isComplete(self) -> bool:
        return bool(self.token.text().strip())

    def validatePage(self) -> bool:
        passphrase, problem = self.passphrase.result()
        if problem:
            _show_error(self.error, problem)
            return False
        name, index = self._wizard.registry_page.selection()
        token = Secret(self.token.text())
        try:
            rec = flows.add_token(self._wizard.store, token, registry=name, index_url=index,
                                  expires=self.expiry.value(),
                                  scopes=self.scopes.text().strip() or None,
                                  passphrase=passphrase, origin="dialog")
        except GuiApproverError as exc:
            _show_error(self.error, exc.full())
            return False
        finally:
            del token
        self.token.clear()
        self.passphrase.clear()
        self._wizard.set_token(rec)
        return True


class ResultPage(QWizardPage):
    def __init__(self, wizard: NewKeyWizard, demo_data_dir: Path | None) -> None:
        super().__init__()
        self._wizard = wizard
        self.setTitle("Your new key")
        self.setSubTitle("The secret half is in the keychain. Register the public half with the "
                         "registry.")
        layout = QVBoxLayout(self)
        self.heading = _bold(_plain(""))
        layout.addWidget(self.heading)
        layout.addWidget(_plain("Register this public key with the registry (paste it on its "
                                "key page):", selectable=False))
        self.keys = PublicKeyView()
        layout.addWidget(self.keys)
        self.details = _plain("")
        self.details.setObjectName("details")
        layout.addWidget(self.details)
        self.demo = DemoRegistryBox(demo_data_dir)
        layout.addWidget(self.demo)
        self.next_steps = _plain("")
        self.next_steps.setObjectName("nextSteps")
        layout.addWidget(self.next_steps)
        layout.addStretch(1)

    def initializePage(self) -> None:
        rec = self._wizard.record
        if rec is None:
            return
        self.heading.setText(f"Created a key for registry {rec.registry} ({rec.index_url}).")
        self.keys.set_record(rec)
        bits = [f"Subject: {rec.subject}"] if rec.subject else []
        bits.append(f"Expires: {rec.expires or 'never'}")
        if rec.protection == "hardware" and rec.hardware is not None:
            attrs = dict(rec.hardware.attributes)
            bits.append(f"Protection: hardware key on token {rec.hardware.token!r} (PIN asked "
                        "after approval)")
            bits.append("As the token reports it: " + ", ".join(
                f"{n.replace('_', ' ')} {'yes' if attrs[n] else 'no'}"
                for n in ("always_sensitive", "never_extractable", "local") if n in attrs))
            if rec.hardware.touch_policy:
                bits.append(f"Touch policy: {rec.hardware.touch_policy}")
            self.setSubTitle("The private key never leaves the token. Register the public "
                             "half with the registry.")
        else:
            bits.append("Protection: " + ("passphrase (asked before signing)"
                                          if rec.protection == "passphrase" else "keychain"))
        self.details.setText(" · ".join(bits))
        local = is_loopback_index(rec.index_url)
        self.demo.setVisible(local)
        self.demo.set_key(rec.public, rec.subject)
        step = ("Next: paste the k3.public key on your registry's key page"
                + (", or register it with the local demo registry above" if local else "")
                + ". Then press Next to let gui-approver configure cargo for this registry.")
        self.next_steps.setText(step)


class CargoConfigView(QWidget):
    """The ``configure-cargo`` diff as a preview, its warnings, and Apply."""

    applied = Signal(object)

    def __init__(self, home: Path | None = None, parent: QWidget | None = None, *,
                 store: KeyStore | None = None) -> None:
        super().__init__(parent)
        self.home = home
        self.store = store
        self.registry = ""
        self.index: str | None = None
        self.change: cargo_config.ConfigChange | None = None
        self.done = False
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        self.intro = _plain("")
        layout.addWidget(self.intro)
        self.diff = QPlainTextEdit()
        self.diff.setObjectName("diff")
        self.diff.setReadOnly(True)
        self.diff.setFont(mono_font())
        self.diff.setLineWrapMode(QPlainTextEdit.LineWrapMode.NoWrap)
        self.diff.setAccessibleName("Changes to cargo's configuration")
        layout.addWidget(self.diff, 1)
        self.warnings = _plain("")
        self.warnings.setObjectName("warnings")
        self.warnings.setStyleSheet("color: #8a5300;")
        layout.addWidget(self.warnings)
        row = QHBoxLayout()
        self.status = _plain("")
        self.status.setObjectName("configStatus")
        row.addWidget(self.status, 1)
        self.apply_button = QPushButton("Apply this change")
        self.apply_button.setAutoDefault(False)
        self.apply_button.clicked.connect(self.apply)
        row.addWidget(self.apply_button, 0, Qt.AlignmentFlag.AlignTop)
        layout.addLayout(row)

    @property
    def pending(self) -> bool:
        """A change is shown and was not applied yet."""
        return self.change is not None and self.change.changed and not self.done

    def plan(self, registry: str, index: str | None) -> None:
        self.registry, self.index = registry, index
        self.done = False
        self.status.setText("")
        try:
            change = self._plan(registry, index)
        except GuiApproverError as exc:
            self.change = None
            self.intro.setText(f"Cannot configure cargo for registry {registry}.")
            self.diff.setPlainText("")
            self.warnings.setText("")
            self.status.setText(exc.full())
            self.apply_button.setEnabled(False)
            return
        self._show(change)

    def _plan(self, registry: str, index: str | None) -> cargo_config.ConfigChange:
        if self.store is not None:
            return flows.plan_configure(self.store, registry, index, home=self.home)
        if registry == cargo_config.CRATES_IO:
            raise GuiApproverError(CRATES_IO_REFUSAL, hint=flows.CRATES_IO_HINT)
        return cargo_config.plan_configure(registry, index, home=self.home)

    def _show(self, change: cargo_config.ConfigChange) -> None:
        self.change = change
        self.warnings.setText("\n".join(f"warning: {w}" for w in change.warnings))
        self.warnings.setVisible(bool(change.warnings))
        if not change.changed:
            self.intro.setText(f"{change.path} already uses gui-approver for registry "
                               f"{self.registry}.")
            self.diff.setPlainText("")
            self.diff.setVisible(False)
            self.apply_button.setEnabled(False)
            return
        self.intro.setText(f"To use gui-approver for registry {self.registry}, cargo's "
                           f"configuration {change.path} changes like this (a backup of the "
                           "current file is written first):")
        self.diff.setVisible(True)
        self.diff.setPlainText(change.diff())
        self.apply_button.setEnabled(True)

    def apply(self) -> bool:
        if self.change is None or not self.change.changed:
            return False
        try:
            fresh = self._plan(self.registry, self.index)
            if fresh.before != self.change.before or fresh.after != self.change.after:
                self._show(fresh)
                self.status.setText(f"{fresh.path} changed since the preview; review the new "
                                    "change above and apply again.")
                return False
            backup = cargo_config.apply(fresh)
        except (GuiApproverError, OSError) as exc:
            self.status.setText(f"Nothing was written: {_err_text(exc)}")
            return False
        text = f"Configured registry {self.registry} in {fresh.path} to use gui-approver."
        if backup:
            text += f"\nBackup of the previous file: {backup}"
        self.status.setText(text)
        self.done = True
        self.apply_button.setEnabled(False)
        self.applied.emit(backup)
        return True


class ConfigureCargoDialog(QDialog):
    """The key manager's "Configure cargo…" for an existing key or token: the same preview
    and Apply as the wizard's last page."""

    def __init__(self, store: KeyStore, record: KeyRecord | TokenRecord,
                 parent: QWidget | None = None, *, cargo_home: Path | None = None) -> None:
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


class CargoPage(QWizardPage):
    def __init__(self, wizard: NewKeyWizard, home: Path | None) -> None:
        super().__init__()
        self._wizard = wizard
        self.setTitle("Configure cargo")
        self.setSubTitle("Configure cargo writes this change, so cargo asks gui-approver for "
                         "this registry. Close leaves cargo's configuration as it is (the key "
                         "manager can configure it later).")
        layout = QVBoxLayout(self)
        self.view = CargoConfigView(home, store=wizard.store)
        # Applying is this page's action (its Finish button), not a second button (#14).
        self.view.apply_button.hide()
        layout.addWidget(self.view)

    def initializePage(self) -> None:
        rec: KeyRecord | TokenRecord | None = self._wizard.record or self._wizard.token_record
        if rec is not None:
            index = None if rec.registry == cargo_config.CRATES_IO else rec.index_url
            self.view.plan(rec.registry, index)
        self._wizard.setButtonText(QWizard.WizardButton.FinishButton,
                                   "Configure cargo" if self.view.pending else "Finish")

    def validatePage(self) -> bool:
        """Finish applies the change; if that fails the page stays, saying why."""
        return self.view.apply() if self.view.pending else True


class NewKeyWizard(QWizard):
    """Registry and kind → options (creates the key) → the public key → configure cargo; or,
    for a bearer token (always for crates.io), registry → the token (stores it) → configure
    cargo."""

    created = Signal(object)

    PAGE_REGISTRY, PAGE_OPTIONS, PAGE_RESULT, PAGE_CARGO, PAGE_TOKEN = range(5)

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
        self.record: KeyRecord | None = None
        self.token_record: TokenRecord | None = None
        self.setObjectName("newKeyWizard")
        self.setWindowTitle("gui-approver: new key or token")
        self.setWizardStyle(QWizard.WizardStyle.ClassicStyle)
        self.setTitleFormat(Qt.TextFormat.PlainText)
        self.setSubTitleFormat(Qt.TextFormat.PlainText)
        self.setOption(QWizard.WizardOption.NoBackButtonOnStartPage, True)
        # The last page keeps Close: the way to finish without configuring cargo.
        self.setOption(QWizard.WizardOption.NoCancelButtonOnLastPage, False)
        self.registry_page = RegistryPage(store, cargo_home)
        self.options_page = OptionsPage(self)
        self.result_page = ResultPage(self, demo_data_dir)
        self.cargo_page = CargoPage(self, cargo_home)
        self.token_page = TokenPage(self)
        self.setPage(self.PAGE_TOKEN, self.token_page)
        self.setPage(self.PAGE_REGISTRY, self.registry_page)
        self.setPage(self.PAGE_OPTIONS, self.options_page)
        self.setPage(self.PAGE_RESULT, self.result_page)
        self.setPage(self.PAGE_CARGO, self.cargo_page)
        self.setMinimumSize(760, 560)

    def nextId(self) -> int:
        current = self.currentId()
        if current == self.PAGE_REGISTRY:
            return (self.PAGE_TOKEN if self.registry_page.kind() == "token"
                    else self.PAGE_OPTIONS)
        if current == self.PAGE_TOKEN:
            return self.PAGE_CARGO
        if current == self.PAGE_CARGO:
            return -1
        return super().nextId()

    def set_token(self, rec: TokenRecord) -> None:
        self.token_record = rec
        self.setButtonText(QWizard.WizardButton.CancelButton, "Close")
        self.created.emit(rec)

    def set_created(self, rec: KeyRecord) -> None:
        self.record = rec
        # The key exists now: leaving the wizard no longer "cancels" anything.
        self.setButtonText(QWizard.WizardButton.CancelButton, "Close")
        self.created.emit(rec)


# ---------------------------------------------------------------------------------------------
# rotate, delete, import


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
        s.addWidget(_plain(
            "This creates a successor key. The current key keeps signing until you confirm "
            "that the new one is registered with the registry; then the current key is "
            "deleted."))
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
        c.addWidget(_plain("Register this public key with the registry (paste it on its key "
                           "page):", selectable=False))
        self.keys = PublicKeyView()
        c.addWidget(self.keys)
        self.demo = DemoRegistryBox(demo_data_dir)
        c.addWidget(self.demo)
        self.old_note = _plain("")
        c.addWidget(self.old_note)
        self.registered_box = QCheckBox(
            f"The new key is registered with {elide_middle(registry)}")
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
        self.old_note.setText(f"{old} keeps signing until you confirm that the new key is "
                              "registered. Switching deletes the current key.")
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
            pending = self.store.start_rotation(self.old, expires=self.expiry.value(),
                                                passphrase=passphrase)
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

    def __init__(self, store: KeyStore, record: KeyRecord | TokenRecord,
                 parent: QWidget | None = None):
        super().__init__(parent)
        self.store = store
        self.record = record
        self.setObjectName("deleteDialog")
        token = isinstance(record, TokenRecord)
        self.setWindowTitle(f"gui-approver: delete the {'token' if token else 'key'} for "
                            f"{elide_middle(record.registry)}")
        layout = QVBoxLayout(self)
        if isinstance(record, TokenRecord):
            what = "bearer token"
        else:
            what = "pending successor key" if record.status == "pending" else "key"
        layout.addWidget(_bold(_plain(f"Delete the {what} for registry {record.registry}?"),
                               1.2))
        layout.addWidget(_plain(f"Token: sha256:{record.fingerprint}" if isinstance(
            record, TokenRecord) else f"Key id: {record.kip}", mono=True))
        layout.addWidget(_plain(f"Index URL: {record.index_url}"))
        if isinstance(record, TokenRecord):
            consequence = ("The token is removed from the keychain. It still works at the "
                           "registry until it expires or you revoke it there.")
        elif record.status == "pending":
            consequence = ("The current key stays and keeps signing; the rotation is "
                           "abandoned. The secret of the successor is removed from the "
                           "keychain.")
        else:
            consequence = ("The secret is removed from the keychain and cannot be recovered. "
                           f"Publishing to {record.registry} then needs a new key registered "
                           "with the registry.")
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
            self.problem = (f"the secret-key for {item.registry} in {item.path} is not usable "
                            f"({exc})")
            return
        try:
            self.index = cargo_config.registry_index(item.registry, home)
        except GuiApproverError as exc:
            self.problem = str(exc)
            return
        if not self.index:
            self.problem = (f"registry {item.registry} has no index in "
                            f"{cargo_config.config_path(home)}; nothing can be imported")
            return
        try:
            existing = store.find(self.index)
        except GuiApproverError as exc:
            self.problem = str(exc)
            return
        if existing is not None and existing.kip != self.key.kip:
            self.problem = (f"registry {item.registry} already has a different key "
                            f"({existing.kip}); nothing can be imported")
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
        layout.addWidget(_plain(
            "cargo:paseto keeps secret keys in plain text in cargo's files. Importing moves "
            "each selected key into the keychain, removes it from the file, and points cargo "
            "at gui-approver for that registry. The public key and key id stay the same, so "
            "there is nothing to register again.", selectable=False))
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
            self.empty.setText(f"No cargo:paseto secret-key found in {where}/credentials.toml "
                               "or config.toml.")
        else:
            self.empty.setText("")
        self.empty.setVisible(not self.found)
        self.table.setVisible(bool(self.found))
        self.import_button.setEnabled(any(f.problem is None for f in self.found))

    def selected(self) -> list[_Found]:
        out = []
        for row, f in enumerate(self.found):
            item = self.table.item(row, 0)
            if f.problem is None and item is not None and \
                    item.checkState() == Qt.CheckState.Checked:
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
                flows.import_cargo_key(self.store, item, key, index, origin="dialog",
                                       home=self.home)
            except KeyExists as exc:
                lines.append(f"Not imported: {exc}.")
                continue
            except (GuiApproverError, OSError) as exc:
                lines.append(f"Importing the key of registry {item.registry} from {item.path} "
                             f"failed: {_err_text(exc)}")
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


# ---------------------------------------------------------------------------------------------
# the window


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
        self.table.horizontalHeader().setSectionResizeMode(
            QHeaderView.ResizeMode.ResizeToContents)
        self.table.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.table.customContextMenuRequested.connect(self._context_menu)
        self.table.itemSelectionChanged.connect(self._selection_changed)
        layout.addWidget(self.table, 1)
        self.empty_hint = _plain("No keys yet. Create one (New key…), or import the keys "
                                 "cargo:paseto left in credentials.toml (Import from "
                                 "cargo…).", selectable=False)
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
            ("Registry:", self.detail_registry), ("Index URL:", self.detail_index),
            ("Public key:", self.detail_public), ("Key id:", self.detail_kip)]
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
        self.configure_button.setToolTip("Point cargo at gui-approver for the selected key's "
                                         "registry (shows the change first)")
        self.refresh_button = QPushButton("Refresh")
        self.new_button.clicked.connect(self.new_key)
        self.rotate_button.clicked.connect(self.rotate_selected)
        self.delete_button.clicked.connect(self.delete_selected)
        self.import_button.clicked.connect(self.import_from_cargo)
        self.refresh_button.clicked.connect(self.refresh)
        self.configure_button.clicked.connect(self.configure_cargo_selected)
        for b in (self.new_button, self.rotate_button, self.delete_button,
                  self.configure_button, self.import_button):
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
        records.sort(key=lambda r: (order.get(r.registry, len(order)), r.registry,
                                    r.status != "active"))
        self.records = records
        pending_for = {r.registry for r in records if r.status == "pending"}
        self.table.setRowCount(len(records))
        mono = mono_font()
        for row, rec in enumerate(records):
            if rec.status == "pending":
                status = "pending successor (confirm when registered)"
            elif rec.is_expired():
                status = "expired"
            elif rec.registry in pending_for:
                status = "active (successor pending)"
            else:
                status = "active"
            if (rec.status != "pending" and not rec.is_expired()
                    and rec.protection in ("passphrase", "hardware")):
                # A passphrase key is "locked" until unlocked (#14); then the next use
                # signs without asking.
                locked = not self.store.is_unlocked(rec)
                status = status.replace("active", "locked" if locked else "unlocked", 1)
            cells = [rec.registry, "asymmetric", short_kip(rec.kip), rec.subject or "-",
                     format_when(rec.created, with_time=False), expiry_text(rec),
                     rec.protection, format_when(used.get(rec.kip)), status]
            for col, text in enumerate(cells):
                item = QTableWidgetItem(text)
                item.setData(_KIP_ROLE, rec.kip)
                if COLUMNS[col] == "Key id":
                    item.setFont(mono)
                self.table.setItem(row, col, item)
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
            cells = [tok.registry, "bearer token", f"sha256:{tok.fingerprint}",
                     tok.scopes_text(), format_when(tok.added, with_time=False),
                     tok.expires or "unknown", tok.protection, "-", status]
            for col, text in enumerate(cells):
                item = QTableWidgetItem(text)
                item.setData(_KIP_ROLE, tok.account)
                if COLUMNS[col] == "Key id":
                    item.setFont(mono)
                self.table.setItem(len(records) + i, col, item)
        silent = [t.registry for t in self.tokens if t.silent_reads]
        self.token_warning.setText(
            "Warning: reads of " + ", ".join(silent) + " get the bearer token without a "
            "dialog, and that token can also publish. Turn it off: gui-approver token "
            "silent-reads --registry NAME off" if silent else "")
        self.token_warning.setVisible(bool(silent))
        self.empty_hint.setVisible(not records and not self.tokens)
        if keep is not None:
            self.select(keep.kip)
        elif records:
            self.table.selectRow(0)
        self._selection_changed()

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
            self._set_status(f"Bearer token of {tok.registry}: replace it with "
                             f"gui-approver token rotate --registry {tok.registry}")
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
        wizard = NewKeyWizard(self.store, self, cargo_home=self.cargo_home,
                              demo_data_dir=self.demo_data_dir)
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
            "keeps signing until you confirm the new one is registered.")

    def _rotated(self, n: KeyRecord) -> None:
        self._set_status(f"Registry {n.registry} now signs with {n.kip}; the old key was "
                         "deleted.")

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
            self._set_status(f"Deleted the bearer token for registry {r.registry} "
                             f"(sha256:{r.fingerprint}); revoke it at the registry too.")
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
        self._set_status(f"Imported the key(s) of {', '.join(names)} from cargo; public keys "
                         "unchanged.")

    # -- events ---------------------------------------------------------------------------
    def changeEvent(self, e: QEvent) -> None:
        # Coming back to the window: last-used times may have changed meanwhile.
        if e.type() == QEvent.Type.ActivationChange and self.isActiveWindow() and \
                self.dialog is None:
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
    # with "gui-approver: " (#14).
    from gui_approver.ui import style

    style.install(app)  # focus rings, readable grey text (#14)
    window = KeyManagerWindow(KeyStore(KeyringKeychain()))
    window.show()
    return app.exec()

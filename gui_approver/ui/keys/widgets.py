"""Small widgets the key windows share: copy rows, the expiry picker, passphrase and
hardware-key fields, the public key view, the demo registry box, the cargo config preview."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from PySide6.QtCore import QDate, Qt, QTimer, Signal
from PySide6.QtGui import QFont, QFontDatabase, QGuiApplication
from PySide6.QtWidgets import (
    QComboBox,
    QDateEdit,
    QFileDialog,
    QFormLayout,
    QFrame,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from gui_approver.core import cargo_config, validate
from gui_approver.core.keys import flows
from gui_approver.core.keys.store import (
    CRATES_IO_REFUSAL,
    KeyRecord,
    KeyStore,
)
from gui_approver.core.keys.strength import passphrase_problem
from gui_approver.errors import GuiApproverError
from gui_approver.secret import Secret
from gui_approver.ui.dialog import _plain


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

    CHOICES = (
        ("Never", "none"),
        ("In 90 days", "90d"),
        ("In 1 year", "1y"),
        ("On a date…", "date"),
    )

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

    NOTE = (
        "Optional. With a passphrase the keychain holds only the key encrypted with it, "
        "and gui-approver asks for it before signing. Leave both empty to protect the "
        "key with the keychain only."
    )

    NOTE_BEARER = (
        "Recommended. With a passphrase the keychain holds only the token encrypted with it, "
        "and gui-approver asks for it before handing the token to cargo. Leave both empty to "
        "protect the token with the keychain only."
    )

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

    NOTE = (
        "The private key is made on (or already lives on) the token and never leaves it. "
        "The PIN is asked after you approve a request, once per session; the token may "
        "also ask for a touch."
    )

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
            self.choice.addItem(
                f"Generate a new P-384 key on token {t.label!r}", ("generate", module, new_uri)
            )
            for k in t.keys:
                self.choice.addItem(
                    f"Use the P-384 key {k.label or k.id!r} (id {k.id}) on token {t.label!r}",
                    ("adopt", module, k.uri),
                )
        self.status.setText(
            f"{len(tokens)} token(s) found."
            if tokens
            else "No token found: plug in the security key and scan again."
        )
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
        pem_note = _plain(
            "The same key as PEM (SubjectPublicKeyInfo), for registries that "
            "want a standard public key:",
            selectable=False,
        )
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
        layout.addWidget(
            _plain(
                "This index URL is on this computer. If it is a gui-approver demo registry "
                "(gui-approver demo-registry --data DIR), register the key in its data directory "
                "now; the running registry accepts it at once.",
                selectable=False,
            )
        )
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


class CargoConfigView(QWidget):
    """The ``configure-cargo`` diff as a preview, its warnings, and Apply."""

    applied = Signal(object)

    def __init__(
        self,
        home: Path | None = None,
        parent: QWidget | None = None,
        *,
        store: KeyStore | None = None,
    ) -> None:
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
            self.intro.setText(
                f"{change.path} already uses gui-approver for registry {self.registry}."
            )
            self.diff.setPlainText("")
            self.diff.setVisible(False)
            self.apply_button.setEnabled(False)
            return
        self.intro.setText(
            f"To use gui-approver for registry {self.registry}, cargo's "
            f"configuration {change.path} changes like this (a backup of the "
            "current file is written first):"
        )
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
                self.status.setText(
                    f"{fresh.path} changed since the preview; review the new "
                    "change above and apply again."
                )
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

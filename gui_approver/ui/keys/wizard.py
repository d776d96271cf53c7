"""The new-key wizard: the registry and its kind, options (protection, expiry, hardware), a
bearer token, the result and configuring cargo."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QApplication,
    QButtonGroup,
    QComboBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLineEdit,
    QRadioButton,
    QStackedWidget,
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
)
from gui_approver.errors import GuiApproverError
from gui_approver.secret import Secret
from gui_approver.ui.dialog import _plain
from gui_approver.ui.keys.widgets import (
    CargoConfigView,
    DemoRegistryBox,
    ExpiryPicker,
    HardwareFields,
    PassphraseFields,
    PublicKeyView,
    _bold,
    _error_label,
    _hline,
    _show_error,
    parse_index_url,
)


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
                self.combo.addItem(
                    f"{name}  ({index})" + ("  — has a key" if has_key else ""), name
                )
        if first_free >= 0:
            self.combo.setCurrentIndex(first_free)
        where = cargo_config.config_path(home)
        note = f"from {where}" if self.combo.count() else f"{where} names no registries"
        self.config_note = _plain(config_problem or note, selectable=False)
        self.crates_io = QRadioButton("crates.io (its bearer token)")
        self.other = QRadioButton("Another registry:")
        # The kind of credential: crates.io takes only bearer tokens.
        self.kind_box = QGroupBox("Which kind of credential does this registry take?")
        self.kind_box.setObjectName("kindBox")
        kind_layout = QVBoxLayout(self.kind_box)
        self.kind_token = QRadioButton("Bearer token")
        self.kind_token.setObjectName("kindToken")
        token_text = _plain(
            "What crates.io, kellnr, Gitea/Forgejo, Artifactory and Cloudsmith take. "
            "gui-approver keeps it in the keychain and hands it to cargo only when you "
            "approve.",
            selectable=False,
        )
        self.kind_key = QRadioButton("Asymmetric key (RFC 3231)")
        self.kind_key.setObjectName("kindKey")
        key_text = _plain(
            "Works only with a registry that verifies RFC 3231 tokens (today: gui-approver's "
            "own demo registry). The secret never leaves this machine; each approval signs a "
            "token for exactly that request.",
            selectable=False,
        )
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
            self.kind_note.setText(
                CRATES_IO_REFUSAL + ". gui-approver protects your crates.io token instead."
            )
        else:
            self.kind_note.setText(
                "Not sure? Ask the registry: if it gave you a token to "
                "paste into cargo login, it takes a bearer token."
            )
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
            problem = (
                f"Registry {name} is not in {cargo_config.config_path(self.home)}; "
                "enter its index URL."
            )
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
                problem = (
                    f"Registry {existing.registry} ({existing.index_url}) already has a "
                    f"key ({existing.kip}). Rotate it, or delete it first."
                )
            elif held is not None:
                problem = (
                    f"Registry {held.registry} ({held.index_url}) already has a bearer "
                    f"token (sha256:{held.fingerprint}). Delete it first."
                )
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
        self.protection.setCurrentWidget(
            self.hardware if hardware and self.hardware else self.passphrase
        )

    def _create_hardware(self, name: str, index: str, subject: str | None) -> KeyRecord:
        assert self.hardware is not None
        self._wizard.store.check_free(name, index)
        info = self.hardware.make_key()
        return self._wizard.store.add_hardware(
            info,
            registry=name,
            index_url=index,
            subject=subject,
            expires=self.expiry.value(),
            origin="dialog",
        )

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
                _show_error(
                    self.error,
                    f"Registry {name} has no index URL any more; go back "
                    "and choose the registry again.",
                )
            return False
        subject = self.subject.text().strip() or None
        QApplication.setOverrideCursor(Qt.CursorShape.WaitCursor)
        try:
            if self.on_hardware.isChecked():
                rec = self._create_hardware(name, index, subject)
            else:
                rec = flows.create_key(
                    self._wizard.store,
                    registry=name,
                    index_url=index,
                    subject=subject,
                    expires=self.expiry.value(),
                    passphrase=passphrase,
                    origin="dialog",
                )
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
            self.advice.setText(
                CRATES_IO_REFUSAL + ". " + flows.CRATES_IO_ADVICE + "\n\n"
                "Already have a token in ~/.cargo/credentials.toml? Close this "
                "and run `gui-approver token import-cargo`: it moves it here."
            )
        else:
            self.advice.setText(
                f"The bearer token registry {name} ({index}) gave you. Prefer a token limited "
                "to publishing your crates, with an expiry. Say what it allows: gui-approver "
                "shows it in every approval."
            )
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
            rec = flows.add_token(
                self._wizard.store,
                token,
                registry=name,
                index_url=index,
                expires=self.expiry.value(),
                scopes=self.scopes.text().strip() or None,
                passphrase=passphrase,
                origin="dialog",
            )
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
        self.setSubTitle(
            "The secret half is in the keychain. Register the public half with the registry."
        )
        layout = QVBoxLayout(self)
        self.heading = _bold(_plain(""))
        layout.addWidget(self.heading)
        layout.addWidget(
            _plain(
                "Register this public key with the registry (paste it on its key page):",
                selectable=False,
            )
        )
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
            bits.append(
                f"Protection: hardware key on token {rec.hardware.token!r} (PIN asked "
                "after approval)"
            )
            bits.append(
                "As the token reports it: "
                + ", ".join(
                    f"{n.replace('_', ' ')} {'yes' if attrs[n] else 'no'}"
                    for n in ("always_sensitive", "never_extractable", "local")
                    if n in attrs
                )
            )
            if rec.hardware.touch_policy:
                bits.append(f"Touch policy: {rec.hardware.touch_policy}")
            self.setSubTitle(
                "The private key never leaves the token. Register the public "
                "half with the registry."
            )
        else:
            bits.append(
                "Protection: "
                + (
                    "passphrase (asked before signing)"
                    if rec.protection == "passphrase"
                    else "keychain"
                )
            )
        self.details.setText(" · ".join(bits))
        local = is_loopback_index(rec.index_url)
        self.demo.setVisible(local)
        self.demo.set_key(rec.public, rec.subject)
        step = (
            "Next: paste the k3.public key on your registry's key page"
            + (", or register it with the local demo registry above" if local else "")
            + ". Then press Next to let gui-approver configure cargo for this registry."
        )
        self.next_steps.setText(step)


class CargoPage(QWizardPage):
    def __init__(self, wizard: NewKeyWizard, home: Path | None) -> None:
        super().__init__()
        self._wizard = wizard
        self.setTitle("Configure cargo")
        self.setSubTitle(
            "Configure cargo writes this change, so cargo asks gui-approver for "
            "this registry. Close leaves cargo's configuration as it is (the key "
            "manager can configure it later)."
        )
        layout = QVBoxLayout(self)
        self.view = CargoConfigView(home, store=wizard.store)
        # Applying is this page's action (its Finish button), not a second button.
        self.view.apply_button.hide()
        layout.addWidget(self.view)

    def initializePage(self) -> None:
        rec: KeyRecord | TokenRecord | None = self._wizard.record or self._wizard.token_record
        if rec is not None:
            index = None if rec.registry == cargo_config.CRATES_IO else rec.index_url
            self.view.plan(rec.registry, index)
        self._wizard.setButtonText(
            QWizard.WizardButton.FinishButton, "Configure cargo" if self.view.pending else "Finish"
        )

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
            return self.PAGE_TOKEN if self.registry_page.kind() == "token" else self.PAGE_OPTIONS
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

"""The Settings window: edit the user settings, validate them, write the TOML file on Save."""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QDoubleSpinBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from gui_approver.core import settings as settings_mod
from gui_approver.core.settings import Settings

log = logging.getLogger(__name__)

#: Settings read only at start-up: a change needs a restart of the app.
RESTART_NEEDED = ("paranoid_accessibility", "history_size_mb")


def _spin(suffix: str, decimals: int = 1, maximum: float = 1_000_000.0) -> QDoubleSpinBox:
    # Deliberately wide ranges: Settings.validate() is the one place that decides what is
    # allowed, and the window says why a value is refused.
    box = QDoubleSpinBox()
    box.setRange(-1_000_000.0, maximum)
    box.setDecimals(decimals)
    box.setSuffix(suffix)
    box.setKeyboardTracking(False)
    return box


class SettingsWindow(QWidget):
    """Edits the settings; Save validates them and writes ``path`` (default: the user file)."""

    saved = Signal(object)  # the new Settings

    def __init__(
        self, current: Settings, path: Path | None = None, parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self.current = current
        self.path = path
        self.setObjectName("settingsWindow")
        self.setWindowTitle("gui-approver: settings")
        layout = QVBoxLayout(self)
        form = QFormLayout()
        self.approval_timeout = _spin(" s", 0)
        self.approval_timeout.setToolTip(
            "How long a request waits for you before it is denied (30–3600 seconds)."
        )
        form.addRow("Approval timeout:", self.approval_timeout)
        self.reads_need_approval = QCheckBox("Ask before signing read-only requests too")
        form.addRow("", self.reads_need_approval)
        self.arming_delay = _spin(" s", 1)
        self.arming_delay.setSingleStep(0.5)
        self.arming_delay.setToolTip(
            "How long Approve stays disabled after the dialog appears (1–10 seconds)."
        )
        form.addRow("Approve arms after:", self.arming_delay)
        self.paranoid_accessibility = QCheckBox(
            "Hide gui-approver from accessibility tools, screen readers too (after a restart)"
        )
        self.paranoid_accessibility.setToolTip(
            "Detaches the whole app from the accessibility bus: no screen reader can read any "
            "of its windows then. Approve never accepts accessibility actions anyway; this "
            "only also hides what the dialog shows."
        )
        form.addRow("", self.paranoid_accessibility)
        self.idle_lock_minutes = _spin(" min", 0)
        self.idle_lock_minutes.setToolTip(
            "Forget unlocked passphrase keys after this many "
            "idle minutes (0: never; at most 10080, a week)."
        )
        form.addRow("Lock keys when idle for:", self.idle_lock_minutes)
        self.history_size_mb = _spin(" MB", 0)
        self.history_size_mb.setToolTip(
            "Disk space for copies of the crates you approved, so that the dialog can show "
            "what changed since the last approved version (applies after a restart)."
        )
        form.addRow("History size:", self.history_size_mb)
        self.watch_interval_minutes = _spin(" min", 0)
        self.watch_interval_minutes.setToolTip(
            "How often the registries' indexes are checked for versions of your crates that "
            "nobody approved here (1–1440 minutes; 0: never)."
        )
        form.addRow("Check for unapproved versions every:", self.watch_interval_minutes)
        for name, widget in (
            ("Approval timeout", self.approval_timeout),
            ("Approve arms after", self.arming_delay),
            ("Lock keys when idle for", self.idle_lock_minutes),
            ("History size", self.history_size_mb),
            ("Check for unapproved versions every", self.watch_interval_minutes),
        ):
            widget.setAccessibleName(name)
        layout.addLayout(form)

        self.note = QLabel(
            "Settings marked “after a restart” apply the next time "
            "gui-approver starts; the others apply when you press Save."
        )
        self.note.setWordWrap(True)
        self.note.setTextFormat(Qt.TextFormat.PlainText)
        layout.addWidget(self.note)
        self.message = QLabel("")
        self.message.setObjectName("settingsMessage")
        self.message.setWordWrap(True)
        self.message.setTextFormat(Qt.TextFormat.PlainText)
        self.message.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        layout.addWidget(self.message)

        row = QHBoxLayout()
        row.addStretch(1)
        self.revert_button = QPushButton("Revert")
        self.revert_button.clicked.connect(lambda: self.load(self.current))
        self.save_button = QPushButton("Save")
        self.save_button.setDefault(True)
        self.save_button.clicked.connect(self.save)
        close = QPushButton("Close")
        close.clicked.connect(self.close)
        row.addWidget(self.revert_button)
        row.addWidget(self.save_button)
        row.addWidget(close)
        layout.addLayout(row)
        self.load(current)

    def load(self, s: Settings) -> None:
        self.approval_timeout.setValue(s.approval_timeout)
        self.reads_need_approval.setChecked(s.reads_need_approval)
        self.arming_delay.setValue(s.arming_delay)
        self.paranoid_accessibility.setChecked(s.paranoid_accessibility)
        self.idle_lock_minutes.setValue(s.idle_lock_minutes)
        self.history_size_mb.setValue(s.history_size_mb)
        self.watch_interval_minutes.setValue(s.watch_interval_minutes)
        self.message.setText("")

    def edited(self) -> Settings:
        """The settings as edited (max_pending and anything not shown: kept as they are)."""
        for box in (
            self.approval_timeout,
            self.arming_delay,
            self.idle_lock_minutes,
            self.history_size_mb,
            self.watch_interval_minutes,
        ):
            box.interpretText()
        return replace(
            self.current,
            approval_timeout=float(self.approval_timeout.value()),
            reads_need_approval=self.reads_need_approval.isChecked(),
            arming_delay=float(self.arming_delay.value()),
            paranoid_accessibility=self.paranoid_accessibility.isChecked(),
            idle_lock_minutes=float(self.idle_lock_minutes.value()),
            history_size_mb=float(self.history_size_mb.value()),
            watch_interval_minutes=float(self.watch_interval_minutes.value()),
        )

    def save(self) -> bool:
        new = self.edited()
        problems = new.validate()
        if problems:
            self.message.setStyleSheet("color: #b00020;")
            self.message.setText("Not saved: " + "; ".join(problems) + ".")
            return False
        try:
            where = settings_mod.save(new, self.path)
        except (OSError, ValueError) as exc:
            self.message.setStyleSheet("color: #b00020;")
            self.message.setText(f"Not saved: {exc}")
            return False
        old = self.current
        self.current = new
        later = [n for n in RESTART_NEEDED if getattr(old, n) != getattr(new, n)]
        text = f"Saved to {where}."
        if later:
            text += f" {', '.join(later)} will apply after gui-approver restarts."
        self.message.setStyleSheet("")
        self.message.setText(text)
        log.info("settings saved to %s", where)
        self.saved.emit(new)
        return True

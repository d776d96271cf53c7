"""The approval dialog: shows exactly what would be signed; Deny is the default.

Hardening built in here (the full attack suite is a separate piece of work):
- Approve is disarmed until the dialog has been the active window for ``arming_delay``
  seconds (a precise timer), and disarmed again whenever it loses activation.
- Approve has no mnemonic, is never the default/auto-default button; Return and Escape deny.
- Approve acts only while a real mouse release on it, or a Space release while it has focus,
  is being handled; ``clicked()`` from anywhere else (accessibility, ``click()``,
  ``animateClick()``) is ignored.
- Every untrusted string is shown as plain text.
"""

from __future__ import annotations

import time

from PySide6.QtCore import QEvent, Qt, QTimer, Signal
from PySide6.QtGui import QCloseEvent, QFont, QKeyEvent, QMouseEvent, QShowEvent
from PySide6.QtWidgets import (
    QDialog,
    QFrame,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from gui_approver.approval import ApprovalRequest

OWNERS_NOTE = (
    "Cargo does not tell gui-approver who is being added or removed, or whether this is only "
    "a listing of the owners. Approve only if you just ran `cargo owner` yourself."
)


def _plain(text: str, *, mono: bool = False, selectable: bool = True) -> QLabel:
    label = QLabel()
    label.setTextFormat(Qt.TextFormat.PlainText)
    label.setText(text)
    label.setWordWrap(True)
    if selectable:
        label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
    if mono:
        f = QFont("monospace")
        f.setStyleHint(QFont.StyleHint.TypeWriter)
        label.setFont(f)
    return label


def elide_middle(text: str, limit: int = 120) -> str:
    if len(text) <= limit:
        return text
    half = (limit - 1) // 2
    return text[:half] + "…" + text[-half:]


def format_cksum(cksum: str) -> str:
    """Groups of 8 hex digits, two lines of 32, so a person can compare them."""
    groups = [cksum[i: i + 8] for i in range(0, len(cksum), 8)]
    return " ".join(groups[:4]) + "\n" + " ".join(groups[4:])


class ApproveButton(QPushButton):
    """A push button that reports ``approved`` only for a genuine release on it."""

    approved = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("Approve", parent)
        self.setAutoDefault(False)
        self.setDefault(False)
        self._armed = False
        self._genuine = False
        self.clicked.connect(self._on_clicked)

    # arming ------------------------------------------------------------------------------
    def set_armed(self, armed: bool) -> None:
        self._armed = armed
        self.setEnabled(armed)
        self.setText("Approve" if armed else "Approve (arming…)")

    @property
    def armed(self) -> bool:
        return self._armed

    # genuine input only -------------------------------------------------------------------
    def mouseReleaseEvent(self, e: QMouseEvent) -> None:
        genuine = (
            self._armed
            and e.button() == Qt.MouseButton.LeftButton
            and self.rect().contains(e.position().toPoint())
            and self.accept_input_event(e)
        )
        self._genuine = genuine
        try:
            super().mouseReleaseEvent(e)
        finally:
            self._genuine = False

    def keyReleaseEvent(self, e: QKeyEvent) -> None:
        genuine = (
            self._armed and e.key() == Qt.Key.Key_Space and not e.isAutoRepeat()
            and self.accept_input_event(e)
        )
        self._genuine = genuine
        try:
            super().keyReleaseEvent(e)
        finally:
            self._genuine = False

    def keyPressEvent(self, e: QKeyEvent) -> None:
        # Return/Enter never press Approve: hand them to the dialog (which denies).
        if e.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter):
            e.ignore()
            return
        super().keyPressEvent(e)

    def accept_input_event(self, e: QEvent) -> bool:
        """Hook for the input-provenance guard; plain Qt input is accepted."""
        return True

    def _on_clicked(self) -> None:
        if self._genuine and self._armed:
            self._genuine = False
            self.approved.emit()


class ApprovalDialog(QDialog):
    """``decided(bool)`` fires exactly once: True only for a genuine Approve."""

    decided = Signal(bool)

    def __init__(
        self,
        approval: ApprovalRequest,
        *,
        arming_delay: float = 1.0,
        waiting: int = 0,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.approval = approval
        self.arming_delay = max(1.0, arming_delay)
        self._done = False
        self.shown_at: float | None = None
        req = approval.request
        self.setWindowTitle(f"gui-approver: {approval.summary()}")
        self.setWindowFlag(Qt.WindowType.WindowStaysOnTopHint, True)
        self.setModal(False)
        self.setObjectName("approvalDialog")

        layout = QVBoxLayout(self)
        if approval.action == "logout":
            heading = f"Delete the key for registry {req.registry.label()}?"
        else:
            heading = f"Sign a token for this {req.operation or req.kind}?"
        title = _plain(heading, selectable=False)
        f = title.font()
        f.setPointSizeF(f.pointSizeF() * 1.3)
        f.setBold(True)
        title.setFont(f)
        layout.addWidget(title)

        grid = QGridLayout()
        rows: list[tuple[str, str, bool]] = [
            ("Operation", req.operation or req.kind, False),
            ("Registry", elide_middle(req.registry.name or "(unnamed)", 80), False),
            ("Index URL", elide_middle(req.registry.index_url), True),
        ]
        if req.name:
            rows.append(("Crate", req.name, True))
        if req.vers:
            rows.append(("Version", req.vers, True))
        if req.cksum:
            rows.append(("Checksum (sha256)", format_cksum(req.cksum), True))
        if approval.key is not None:
            rows.append(("Signing key", approval.key.kip, True))
        prov = approval.provenance
        who = []
        if prov.pid is not None:
            who.append(f"bridge pid {prov.pid}")
        if prov.ppid is not None:
            who.append(f"started by pid {prov.ppid}")
        if prov.cwd:
            who.append(f"in {elide_middle(prov.cwd, 100)}")
        rows.append(("Requested by", ", ".join(who) or "unknown (not reported)", False))
        self.field_labels: dict[str, QLabel] = {}
        for r, (name, value, mono) in enumerate(rows):
            key = _plain(name + ":", selectable=False)
            key.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignTop)
            val = _plain(value, mono=mono)
            val.setAccessibleName(name)
            grid.addWidget(key, r, 0)
            grid.addWidget(val, r, 1)
            self.field_labels[name] = val
        layout.addLayout(grid)

        if req.operation == "owners":
            note = _plain(OWNERS_NOTE, selectable=False)
            note.setObjectName("ownersNote")
            layout.addWidget(note)

        line = QFrame()
        line.setFrameShape(QFrame.Shape.HLine)
        layout.addWidget(line)
        self.status_label = _plain("", selectable=False)
        self.waiting_label = _plain("", selectable=False)
        layout.addWidget(self.status_label)
        layout.addWidget(self.waiting_label)
        self.set_waiting(waiting)

        buttons = QHBoxLayout()
        buttons.addStretch(1)
        self.deny_button = QPushButton("Deny")
        self.deny_button.setDefault(True)
        self.deny_button.setAutoDefault(True)
        self.deny_button.clicked.connect(lambda: self._finish(False))
        self.approve_button = ApproveButton()
        self.approve_button.set_armed(False)
        self.approve_button.approved.connect(lambda: self._finish(True))
        buttons.addWidget(self.deny_button)
        buttons.addWidget(self.approve_button)
        layout.addLayout(buttons)
        self.deny_button.setFocus()

        self._arm_timer = QTimer(self)
        self._arm_timer.setSingleShot(True)
        self._arm_timer.setTimerType(Qt.TimerType.PreciseTimer)
        self._arm_timer.timeout.connect(self._arm)
        self._tick = QTimer(self)
        self._tick.setInterval(1000)
        self._tick.timeout.connect(self._update_status)
        self._tick.start()
        self._update_status()

    # state -------------------------------------------------------------------------------
    def set_waiting(self, n: int) -> None:
        self.waiting_label.setText(f"{n} more request(s) waiting" if n else "")
        self.waiting_label.setVisible(bool(n))

    def _remaining(self) -> float:
        return max(0.0, self.approval.timeout - (time.monotonic() - self.approval.received))

    def _update_status(self) -> None:
        armed = self.approve_button.armed
        state = "" if armed else "Approve is arming; it works once this window has been " \
            "active for a moment. "
        self.status_label.setText(f"{state}Denies automatically in {self._remaining():.0f} s.")

    def _arm(self) -> None:
        if self.isActiveWindow() and not self._done:
            self.approve_button.set_armed(True)
            self._update_status()

    def _disarm(self) -> None:
        self._arm_timer.stop()
        self.approve_button.set_armed(False)
        self._update_status()

    def changeEvent(self, e: QEvent) -> None:
        if e.type() == QEvent.Type.ActivationChange:
            if self.isActiveWindow():
                self._arm_timer.start(int(self.arming_delay * 1000))
            else:
                self._disarm()
        super().changeEvent(e)

    def showEvent(self, e: QShowEvent) -> None:
        if self.shown_at is None:
            self.shown_at = time.monotonic()
        super().showEvent(e)
        self.raise_()
        self.activateWindow()

    def keyPressEvent(self, e: QKeyEvent) -> None:
        if e.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter, Qt.Key.Key_Escape):
            self._finish(False)
            return
        super().keyPressEvent(e)

    def _finish(self, approved: bool) -> None:
        if self._done:
            return
        self._done = True
        self._arm_timer.stop()
        self._tick.stop()
        self.decided.emit(approved)
        self.hide()

    def dismiss(self) -> None:
        """Close without a decision (the request was decided elsewhere, e.g. timed out)."""
        self._done = True
        self._arm_timer.stop()
        self._tick.stop()
        self.hide()

    def reject(self) -> None:
        self._finish(False)

    def closeEvent(self, e: QCloseEvent) -> None:
        self._finish(False)
        super().closeEvent(e)


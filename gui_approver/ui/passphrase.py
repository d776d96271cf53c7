"""The passphrase prompt for passphrase-protected keys, and :class:`QtUnlocker`.

``QtUnlocker`` implements :data:`gui_approver.core.keys.store.Unlocker` (``(record, why) -> Secret |
None``). The signing service calls it from a worker thread; like ``QtApprover`` it hands the
question to the GUI thread through a queued signal and waits on a ``threading.Event`` with a
timeout (no answer = None = nothing is signed). Called on the GUI thread itself it runs a
local event loop instead of blocking it.

The passphrase is never logged, never put in a window title or a label, and the line edit is
cleared as soon as it has been read.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable

from PySide6.QtCore import QObject, Qt, QTimer, Signal
from PySide6.QtGui import QCloseEvent, QShowEvent
from PySide6.QtWidgets import (
    QDialog,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from gui_approver.core.keys.store import KeyRecord
from gui_approver.review.text import escape_text
from gui_approver.secret import Secret
from gui_approver.ui.dialog import _plain, elide_middle
from gui_approver.ui.prompts import PromptQueue, Question

#: How long a worker waits for the passphrase before giving up (the bridge's own limit).
DEFAULT_TIMEOUT = 120.0


#: Checks a passphrase while the prompt stays open: the unlocked key, or the seconds to wait
#: before the next try (the passphrase was wrong). See KeyStore._unlock_in_prompt.
Attempt = Callable[[Secret], object]


class PassphraseDialog(QDialog):
    """Asks for one key's passphrase. ``answered(Secret | None)`` fires exactly once; with
    ``verify``, ``answered`` carries what ``verify`` returned for the right passphrase, and a
    wrong one keeps the dialog open with "wrong passphrase, N s before the next try"."""

    answered = Signal(object)

    def __init__(
        self,
        record: KeyRecord,
        why: str,
        *,
        deadline: float | None = None,
        parent: QWidget | None = None,
        verify: Attempt | None = None,
    ) -> None:
        super().__init__(parent)
        self.record = record
        self.deadline = deadline
        self.verify = verify
        self.retry_at = 0.0
        self.wrong_tries = 0
        self._done = False
        self.setObjectName("passphraseDialog")
        hardware = record.protection == "hardware"
        self.secret_name = "PIN" if hardware else "Passphrase"
        shown_name = escape_text(record.registry, 200)  # keys.json is user-writable
        self.setWindowTitle(f"gui-approver: unlock the key for {elide_middle(shown_name, 60)}")
        self.setWindowFlag(Qt.WindowType.WindowStaysOnTopHint, True)
        self.setModal(False)

        layout = QVBoxLayout(self)
        title = _plain(
            (
                f"Enter the PIN of the security key for registry "
                f"{elide_middle(escape_text(record.registry, 200), 80)}"
            )
            if hardware
            else "Unlock the key for registry "
            f"{elide_middle(escape_text(record.registry, 200), 80)}",
            selectable=False,
        )
        f = title.font()
        f.setPointSizeF(f.pointSizeF() * 1.2)
        f.setBold(True)
        title.setFont(f)
        layout.addWidget(title)

        grid = QGridLayout()
        rows = [
            ("Registry", elide_middle(escape_text(record.registry, 200), 80), False),
            ("Index URL", elide_middle(escape_text(record.index_url, 2048)), True),
            ("Key id", record.kip, True),
        ]
        if record.subject:
            rows.append(("Subject", elide_middle(record.subject, 80), True))
        if hardware and record.hardware is not None:
            rows.append(("Token", elide_middle(record.hardware.token or "?", 80), False))
        self.field_labels: dict[str, QLabel] = {}
        for r, (name, value, mono) in enumerate(rows):
            key = _plain(name + ":", selectable=False)
            key.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignTop)
            val = _plain(value, mono=mono)
            val.setAccessibleName(name)
            if mono:
                val.setWordWrap(False)  # URLs and key ids: never broken mid-word
            grid.addWidget(key, r, 0)
            grid.addWidget(val, r, 1)
            self.field_labels[name] = val
        grid.setColumnStretch(1, 1)
        layout.addLayout(grid)

        why = why.strip().rstrip(".")
        self.why_label = _plain(why[:1].upper() + why[1:] + "." if why else "", selectable=False)
        self.why_label.setObjectName("why")
        self.why_label.setVisible(bool(why))
        if "wrong" in why.lower():
            wf = self.why_label.font()
            wf.setBold(True)
            self.why_label.setFont(wf)
        layout.addWidget(self.why_label)

        self.edit = QLineEdit()
        self.edit.setObjectName("passphrase")
        self.edit.setEchoMode(QLineEdit.EchoMode.Password)
        self.edit.setPlaceholderText(self.secret_name)
        self.edit.setAccessibleName(self.secret_name)
        self.edit.textChanged.connect(self._update_buttons)
        layout.addWidget(self.edit)

        self.status_label = _plain("", selectable=False)
        layout.addWidget(self.status_label)

        buttons = QHBoxLayout()
        buttons.addStretch(1)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setAutoDefault(False)
        self.cancel_button.clicked.connect(self.reject)
        self.unlock_button = QPushButton("Unlock")
        self.unlock_button.setDefault(True)
        self.unlock_button.clicked.connect(self._unlock)
        buttons.addWidget(self.cancel_button)
        buttons.addWidget(self.unlock_button)
        layout.addLayout(buttons)
        self._update_buttons()
        # Wide enough that the heading and the index URL do not wrap mid-word.
        self.setMinimumWidth(560)
        self._retry_timer = QTimer(self)
        self._retry_timer.setSingleShot(True)
        self._retry_timer.setTimerType(Qt.TimerType.PreciseTimer)
        self._retry_timer.timeout.connect(self._retry_ready)

        self._tick = QTimer(self)
        self._tick.setInterval(1000)
        self._tick.timeout.connect(self._update_status)
        self._tick.start()
        self._update_status()
        self.edit.setFocus()

    def _update_buttons(self) -> None:
        self.unlock_button.setEnabled(bool(self.edit.text()) and time.monotonic() >= self.retry_at)

    def _wrong(self, wait: float) -> None:
        """A wrong passphrase: keep the prompt, say so, and hold Unlock for ``wait`` s."""
        self.wrong_tries += 1
        self.retry_at = time.monotonic() + wait
        wf = self.why_label.font()
        wf.setBold(True)
        self.why_label.setFont(wf)
        self.why_label.setVisible(True)
        self._retry_timer.start(max(0, int(wait * 1000)) + 20)  # never early
        self._show_retry()
        self._update_buttons()
        self.edit.setFocus()

    def _show_retry(self) -> None:
        left = self.retry_at - time.monotonic()
        if left > 0:
            self.why_label.setText(
                f"Wrong {self.secret_name.lower()}, {math.ceil(left):.0f} s before the next try."
            )
        else:
            self.why_label.setText(f"Wrong {self.secret_name.lower()}; try again.")

    def _retry_ready(self) -> None:
        self._show_retry()
        self._update_buttons()

    def _update_status(self) -> None:
        if self.wrong_tries:
            self._show_retry()
            self._update_buttons()
        if self.deadline is None:
            self.status_label.setVisible(False)
            return
        left = max(0.0, self.deadline - time.monotonic())
        self.status_label.setText(
            f"Cancels automatically in {left:.0f} s; nothing is signed "
            f"without the {self.secret_name.lower()}."
        )

    def _unlock(self) -> None:
        text = self.edit.text()
        if not text or time.monotonic() < self.retry_at:
            return
        self.edit.clear()
        if self.verify is None:
            self._finish(Secret(text))
            return
        result = self.verify(Secret(text))
        if isinstance(result, float | int):
            self._wrong(float(result))
            return
        self._finish(result)

    def _finish(self, answer: object) -> None:
        if self._done:
            return
        self._done = True
        self._tick.stop()
        self._retry_timer.stop()
        self.edit.clear()
        self.answered.emit(answer)
        self.hide()

    def dismiss(self) -> None:
        """Close without an answer (the question was settled elsewhere, e.g. timed out)."""
        self._done = True
        self._tick.stop()
        self.edit.clear()
        self.hide()

    def reject(self) -> None:
        self._finish(None)

    def closeEvent(self, e: QCloseEvent) -> None:
        self._finish(None)
        super().closeEvent(e)

    def showEvent(self, e: QShowEvent) -> None:
        super().showEvent(e)
        self.raise_()
        self.activateWindow()
        self.edit.setFocus()


class QtUnlocker(PromptQueue):
    """A :data:`~gui_approver.core.keys.store.Unlocker` asking in a dialog (GUI thread only).

    Install it with ``store.unlocker = QtUnlocker()`` (or ``KeyStore(..., unlocker=...)``).
    One dialog at a time; further questions queue. Cancel, closing the dialog, the timeout
    and :meth:`shutdown` all answer None.
    """

    def __init__(self, timeout: float = DEFAULT_TIMEOUT, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.timeout = timeout

    # any thread ------------------------------------------------------------------------------
    def __call__(self, record: KeyRecord, why: str) -> Secret | None:
        answer = self.ask(Question(_Unlock(record, why, None), None, self.timeout))
        return answer if isinstance(answer, Secret) else None

    def ask_verified(self, record: KeyRecord, why: str, verify: Attempt) -> object:
        """Like calling it, but each passphrase is checked with ``verify`` while the prompt
        stays open (a wrong one says so and waits); returns what ``verify`` returned for the
        right one, or None (cancelled, timed out)."""
        return self.ask(Question(_Unlock(record, why, verify), None, self.timeout))

    # GUI thread --------------------------------------------------------------------------
    def make_dialog(self, question: Question) -> PassphraseDialog:
        ask = question.subject
        assert isinstance(ask, _Unlock)
        dialog = PassphraseDialog(
            ask.record, ask.why, deadline=question.deadline, verify=ask.verify
        )
        dialog.answered.connect(self._on_answered)
        return dialog

    def dismiss_dialog(self, dialog: QWidget) -> None:
        assert isinstance(dialog, PassphraseDialog)
        dialog.dismiss()

    def _on_answered(self, answer: object) -> None:
        self.answer_from(self.sender(), answer)


class _Unlock:
    """What an unlock question is about."""

    def __init__(self, record: KeyRecord, why: str, verify: Attempt | None) -> None:
        self.record = record
        self.why = why
        self.verify = verify


class TouchPrompt(QDialog):
    """ "Touch your security key now": shown while a hardware key may wait for a touch."""

    def __init__(self, record: KeyRecord, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("touchPrompt")
        self.setWindowTitle("gui-approver: touch your security key")
        self.setWindowFlag(Qt.WindowType.WindowStaysOnTopHint, True)
        self.setModal(False)
        self.setMinimumWidth(460)
        layout = QVBoxLayout(self)
        title = _plain("Touch your security key now", selectable=False)
        f = title.font()
        f.setPointSizeF(f.pointSizeF() * 1.3)
        f.setBold(True)
        title.setFont(f)
        title.setObjectName("touchTitle")
        layout.addWidget(title)
        token = record.hardware.token if record.hardware is not None else ""
        layout.addWidget(
            _plain(
                f"The request for registry {elide_middle(escape_text(record.registry, 200), 60)} "
                "is approved; the "
                f"security key{' ' + repr(token) if token else ''} signs it when you touch it.",
                selectable=False,
            )
        )


class QtTouchNotifier(QObject):
    """A :data:`~gui_approver.core.keys.store.TouchNotifier` showing :class:`TouchPrompt`
    (called from the PKCS#11 waiting thread; the prompt lives on the GUI thread)."""

    _show = Signal(object, object)
    _hide = Signal(object)
    #: The prompt that was just shown (tests).
    shown = Signal(object)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.prompts: dict[int, TouchPrompt] = {}
        self._next = 0
        self._ids = threading.Lock()
        self._show.connect(self._on_show, Qt.ConnectionType.QueuedConnection)
        self._hide.connect(self._on_hide, Qt.ConnectionType.QueuedConnection)

    def __call__(self, record: KeyRecord) -> Callable[[], None]:
        with self._ids:
            self._next += 1
            ident = self._next
        self._show.emit(ident, record)
        return lambda: self._hide.emit(ident)

    def _on_show(self, ident: int, record: KeyRecord) -> None:
        prompt = TouchPrompt(record)
        self.prompts[ident] = prompt
        prompt.show()
        prompt.raise_()
        self.shown.emit(prompt)

    def _on_hide(self, ident: int) -> None:
        prompt = self.prompts.pop(ident, None)
        if prompt is not None:
            prompt.hide()
            prompt.deleteLater()

    def shutdown(self) -> None:
        for ident in list(self.prompts):
            self._on_hide(ident)

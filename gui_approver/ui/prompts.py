"""One dialog at a time, first answer wins: the queue behind every question the app asks a
person from a worker thread (approve this request, unlock this key).

A worker thread calls :meth:`PromptQueue.ask` and blocks; the question travels to the GUI
thread through a queued signal, waits its turn, gets its dialog, and is answered by that
dialog, by its deadline, by the requester going away, or by :meth:`PromptQueue.shutdown`:
whichever comes first, once. Called on the GUI thread itself, ``ask`` runs a local event loop
instead of blocking it.

Subclasses say what a dialog is (:meth:`PromptQueue.make_dialog`) and what an unanswered
question means (the ``default`` answer, e.g. a denial).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections import deque

from PySide6.QtCore import QEventLoop, QObject, Qt, QTimer, Signal
from PySide6.QtWidgets import QWidget

from gui_approver.ui.winutil import bring_forward

log = logging.getLogger(__name__)


class Question:
    """One question waiting for a person. The first answer wins; later ones are ignored."""

    def __init__(
        self, subject: object, default: object, timeout: float, gone: threading.Event | None = None
    ) -> None:
        self.subject = subject
        self.default = default
        self.timeout = timeout
        self.deadline = time.monotonic() + timeout
        #: set by the transport when the requester goes away (cargo interrupted)
        self.gone = gone
        self.event = threading.Event()
        self.answer: object = None
        self._answered = False
        self._lock = threading.Lock()

    @property
    def done(self) -> bool:
        with self._lock:
            return self._answered

    def resolve(self, answer: object) -> bool:
        with self._lock:
            if self._answered:
                return False
            self._answered = True
            self.answer = answer
        self.event.set()
        return True


class PromptQueue(QObject):
    """The queue and its one visible dialog. ``make_dialog`` returns the dialog for a
    question; the dialog answers through :meth:`answer_from` (only the dialog on screen for
    the current question counts); ``dismiss_dialog`` closes one without an answer."""

    _submit = Signal(object)
    _cancel = Signal(object)
    _resolved = Signal(object)
    #: the number of questions waiting or shown
    queue_changed = Signal(int)
    #: the dialog that was just shown (tests, and the app if it wants to raise it)
    dialog_shown = Signal(object)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.queue: deque[Question] = deque()
        self.current: Question | None = None
        self.dialog: QWidget | None = None
        self._closed = False
        self._gui_thread = threading.get_ident()
        self._submit.connect(self._on_submit, Qt.ConnectionType.QueuedConnection)
        self._cancel.connect(self._on_cancel, Qt.ConnectionType.QueuedConnection)

    # what a subclass provides --------------------------------------------------------------
    def make_dialog(self, question: Question) -> QWidget:
        raise NotImplementedError

    def dismiss_dialog(self, dialog: QWidget) -> None:
        """Close ``dialog`` without an answer (withdrawn, timed out, quitting)."""
        dialog.close()

    def on_queue_changed(self) -> None:
        """Called on the GUI thread whenever the queue or the shown dialog changed."""

    def timeout_answer(self, question: Question) -> object:
        return question.default

    def gone_answer(self, question: Question) -> object:
        return question.default

    def closed_answer(self, question: Question) -> object:
        return question.default

    # any thread --------------------------------------------------------------------------
    def ask(self, question: Question) -> object:
        """Block until ``question`` is answered (or its time is up); returns the answer."""
        if self._closed:
            return self.closed_answer(question)
        if threading.get_ident() == self._gui_thread:
            return self._ask_on_gui_thread(question)
        self._submit.emit(question)
        if question.gone is not None:
            threading.Thread(
                target=self._withdraw_when_gone, args=(question,), name="prompt-gone", daemon=True
            ).start()
        if not question.event.wait(question.timeout) and question.resolve(
            self.timeout_answer(question)
        ):
            self._cancel.emit(question)
        return question.answer

    def _withdraw_when_gone(self, question: Question) -> None:
        gone = question.gone
        assert gone is not None
        while not question.event.is_set():
            if self._closed:
                return  # shutdown() answers every question itself
            if gone.wait(0.5) and question.resolve(self.gone_answer(question)):
                with contextlib.suppress(RuntimeError):  # the queue is being deleted
                    self._cancel.emit(question)
                return

    # GUI thread --------------------------------------------------------------------------
    def _ask_on_gui_thread(self, question: Question) -> object:
        loop = QEventLoop()

        def finished(done: Question) -> None:
            if done is question:
                loop.quit()

        def expire() -> None:
            if question.resolve(self.timeout_answer(question)):
                self._on_cancel(question)
            loop.quit()

        self._resolved.connect(finished)
        timer = QTimer()
        timer.setSingleShot(True)
        timer.timeout.connect(expire)
        timer.start(int(question.timeout * 1000))
        try:
            self._on_submit(question)
            if not question.done:
                loop.exec()
        finally:
            timer.stop()
            self._resolved.disconnect(finished)
        return question.answer

    def pending_count(self) -> int:
        return len(self.queue) + (1 if self.current is not None else 0)

    def answer_from(self, dialog: QObject | None, answer: object) -> None:
        """The answer of ``dialog``: counts only if it is the dialog on screen for the
        current question (a withdrawn dialog's late signal changes nothing)."""
        question = self.current
        if question is None or dialog is None or dialog is not self.dialog:
            return
        question.resolve(answer)
        self._drop_dialog(dismiss=False)
        self._resolved.emit(question)
        self._show_next()
        self._changed()

    def _on_submit(self, question: Question) -> None:
        if self._closed:
            question.resolve(self.closed_answer(question))
            self._resolved.emit(question)
            return
        self.queue.append(question)
        self._show_next()
        self._changed()

    def _on_cancel(self, question: Question) -> None:
        if self.current is question:
            self._drop_dialog(dismiss=True)
            self._show_next()
        elif question in self.queue:
            self.queue.remove(question)
        self._resolved.emit(question)
        self._changed()

    def _drop_dialog(self, *, dismiss: bool) -> None:
        if self.dialog is not None:
            if dismiss:
                self.dismiss_dialog(self.dialog)
            self.dialog.deleteLater()
        self.dialog = None
        self.current = None

    def _show_next(self) -> None:
        while self.current is None and self.queue:
            question = self.queue.popleft()
            if question.done:
                continue
            self.current = question
            dialog = self.make_dialog(question)
            self.dialog = dialog
            dialog.show()
            dialog.raise_()
            dialog.activateWindow()
            self.dialog_shown.emit(dialog)

    def _changed(self) -> None:
        self.on_queue_changed()
        self.queue_changed.emit(self.pending_count())

    def show_current(self) -> None:
        """Bring the dialog forward (un-minimized); the only thing the tray can do with it."""
        if self.dialog is not None:
            bring_forward(self.dialog)

    def shutdown(self) -> None:
        """Answer everything waiting with its ``closed_answer`` (the app is quitting)."""
        self._closed = True
        for question in [*self.queue, *([self.current] if self.current else [])]:
            question.resolve(self.closed_answer(question))
            self._resolved.emit(question)
        self.queue.clear()
        self._drop_dialog(dismiss=True)

"""The "Alerts" window and the watch's runner in the app.

:class:`WatchRunner` runs :meth:`Watch.run_once` on a worker thread every
``watch_interval_minutes`` while the app runs, and tells the app about alerts it has not shown
yet (one desktop notification per alert, ever). :class:`AlertsWindow` lists the open alerts with
their three actions: **It was me / my CI**, **Yank it** (``cargo yank``, which asks for approval
in the usual dialog) and **Revoke this token** (bearer-token registries only).
"""

from __future__ import annotations

import contextlib
import logging
import subprocess
import threading
from collections.abc import Callable

from PySide6.QtCore import QObject, Qt, QTimer, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QFrame,
    QHBoxLayout,
    QLabel,
    QMessageBox,
    QPushButton,
    QScrollArea,
    QVBoxLayout,
    QWidget,
)

from gui_approver.core.watch import Alert, PassResult, StoredToken, TokenLookup, Watch
from gui_approver.errors import GuiApproverError

log = logging.getLogger(__name__)

#: The first pass, this long after the app starts (ms); then every watch_interval_minutes.
FIRST_PASS_DELAY_MS = 60_000

#: For a registry's index URL: its stored bearer token, or None (asymmetric key, or none).
TokenSource = TokenLookup


class WatchRunner(QObject):
    """Runs the watch in the background; emits ``passed`` (in the GUI thread) after each pass
    and ``new_alerts`` with the alerts not notified before (then marks them notified)."""

    passed = Signal(object)  # PassResult
    new_alerts = Signal(list)  # [Alert]
    action_done = Signal(str, bool)  # message, ok
    _finished = Signal(object)
    _action = Signal(str, bool)

    def __init__(self, watch: Watch, interval_minutes: float, parent: QObject | None = None):
        super().__init__(parent)
        self.watch = watch
        self.last: PassResult | None = None
        self._busy = threading.Lock()
        self._stopped = False
        self._first = QTimer(self)
        self._first.setSingleShot(True)
        self._first.setInterval(FIRST_PASS_DELAY_MS)
        self._first.timeout.connect(self.run_now)
        self._timer = QTimer(self)
        self._timer.timeout.connect(self.run_now)
        self.set_interval(interval_minutes)
        self._finished.connect(self._on_finished, Qt.ConnectionType.QueuedConnection)
        self._action.connect(self.action_done, Qt.ConnectionType.QueuedConnection)

    def set_interval(self, minutes: float) -> None:
        self.interval_minutes = minutes
        if minutes > 0:
            self._timer.setInterval(int(minutes * 60_000))
        elif self._timer.isActive():
            self._timer.stop()

    def start(self) -> None:
        if self.interval_minutes > 0:
            self._first.start()
            self._timer.start()

    def stop(self) -> None:
        self._stopped = True
        self._first.stop()
        self._timer.stop()

    def running(self) -> bool:
        return self._busy.locked()

    def run_now(self) -> bool:
        """Start a pass on a worker thread; False when one is already running."""
        if self._stopped or not self._busy.acquire(blocking=False):
            return False

        def work() -> None:
            try:
                result = self.watch.run_once()
            except GuiApproverError as exc:
                result = PassResult(errors=[exc.full()])
            except Exception as exc:
                log.exception("the watch failed")
                result = PassResult(errors=[f"internal error ({type(exc).__name__})"])
            finally:
                self._busy.release()
            if not self._stopped:
                with contextlib.suppress(RuntimeError):  # the QObject is gone (app quit)
                    self._finished.emit(result)

        threading.Thread(target=work, name="watch-pass", daemon=True).start()
        return True

    def _on_finished(self, result: PassResult) -> None:
        self.last = result
        for err in result.errors:
            log.warning("watch: %s", err)
        fresh = [a for a in result.open_alerts if not a.notified]
        if fresh:
            try:
                self.watch.mark_notified(a.id for a in fresh)
            except (GuiApproverError, OSError) as exc:
                log.warning("cannot record that alerts were shown: %s", exc)
            self.new_alerts.emit(fresh)
        self.passed.emit(result)

    def in_background(self, what: str, job: Callable[[], str]) -> None:
        """Run an alert action off the GUI thread; ``action_done(message, ok)`` afterwards."""

        def work() -> None:
            try:
                message, ok = job(), True
            except GuiApproverError as exc:
                message, ok = f"{what} failed: {exc.full()}", False
            except Exception as exc:
                log.exception("%s failed", what)
                message, ok = f"{what} failed: internal error ({type(exc).__name__})", False
            if not self._stopped:
                with contextlib.suppress(RuntimeError):
                    self._action.emit(message, ok)

        threading.Thread(target=work, name="watch-action", daemon=True).start()


def _plain(text: str, *, bold: bool = False) -> QLabel:
    label = QLabel(text)
    label.setTextFormat(Qt.TextFormat.PlainText)  # registry data is never rich text
    label.setWordWrap(True)
    label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
    if bold:
        font = label.font()
        font.setBold(True)
        label.setFont(font)
    return label


class AlertCard(QFrame):
    """One alert: what happened, and the three buttons."""

    def __init__(self, alert: Alert, window: AlertsWindow) -> None:
        super().__init__()
        self.alert = alert
        self.setObjectName("alertCard")
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.setStyleSheet(
            "#alertCard { border: 1px solid #c9a227; border-radius: 4px; background: #fff8e1; }"
        )
        layout = QVBoxLayout(self)
        self.message = _plain(alert.message, bold=True)
        layout.addWidget(self.message)
        details = [f"registry {alert.label}", f"kind: {alert.kind}"]
        if alert.cksum:
            details.append(f"sha256 {alert.cksum[:16]}…")
        if alert.yanked:
            details.append("yanked now")
        self.details = _plain(" · ".join(details))
        self.details.setStyleSheet("color: #555;")
        layout.addWidget(self.details)
        self.elsewhere = QCheckBox(
            f"{alert.crate} is also published from elsewhere (e.g. CI): "
            "no more alerts for this crate"
        )
        layout.addWidget(self.elsewhere)
        row = QHBoxLayout()
        self.expected_button = QPushButton("It was me / my CI")
        self.expected_button.setToolTip("Mark this as expected: no more alerts for it.")
        self.expected_button.clicked.connect(lambda: window.mark_expected(self))
        self.yank_button = QPushButton("Yank it")
        self.yank_button.setToolTip(
            f"Run cargo yank --version {alert.version} {alert.crate}; gui-approver asks you "
            "to approve the yank as usual."
        )
        self.yank_button.clicked.connect(lambda: window.yank(self))
        if alert.yanked:
            self.yank_button.setEnabled(False)
            self.yank_button.setToolTip(f"{alert.crate} {alert.version} is already yanked.")
        self.revoke_button = QPushButton("Revoke this token")
        stored = window.token_for(alert.index_url)
        self.revoke_button.setEnabled(stored is not None)
        self.revoke_button.setToolTip(
            f"Revoke the bearer token sha256:{stored.fingerprint} of {stored.registry} at the "
            "registry (DELETE /api/v1/tokens/current), then delete it from the keychain."
            if stored is not None
            else "No bearer token is stored for this registry (only bearer tokens can be revoked "
            "from here)."
        )
        self.revoke_button.clicked.connect(lambda: window.revoke(self))
        for b in (self.expected_button, self.yank_button, self.revoke_button):
            b.setAccessibleName(f"{b.text()}: {alert.crate} {alert.version}")
            row.addWidget(b)
        row.addStretch(1)
        layout.addLayout(row)

    def set_busy(self, busy: bool) -> None:
        self.expected_button.setEnabled(not busy)
        self.yank_button.setEnabled(not busy and not self.alert.yanked)


class AlertsWindow(QWidget):
    """The open alerts, newest first, with their actions."""

    def __init__(
        self,
        runner: WatchRunner,
        token_source: TokenSource | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.runner = runner
        self.watch = runner.watch
        self.token_source = token_source
        #: Asks the user to confirm (title, text) -> bool; replaced in tests.
        self.confirm: Callable[[str, str], bool] = self._confirm
        self.cards: list[AlertCard] = []
        self.setObjectName("alertsWindow")
        self.setWindowTitle("gui-approver: alerts")
        layout = QVBoxLayout(self)
        self.summary = _plain("")
        self.summary.setObjectName("alertsSummary")
        layout.addWidget(self.summary)
        self.status = _plain("")
        self.status.setObjectName("alertsStatus")
        layout.addWidget(self.status)
        self.scroll_area = QScrollArea()
        self.scroll_area.setWidgetResizable(True)
        self.scroll_area.setFrameShape(QFrame.Shape.NoFrame)
        self.body = QWidget()
        self.body_layout = QVBoxLayout(self.body)
        self.body_layout.addStretch(1)
        self.scroll_area.setWidget(self.body)
        layout.addWidget(self.scroll_area, 1)
        row = QHBoxLayout()
        self.explain = _plain(
            "gui-approver checks the registries' indexes for versions of your crates that "
            "were never approved on this machine."
        )
        self.explain.setStyleSheet("color: #555;")
        row.addWidget(self.explain, 1)
        self.check_button = QPushButton("Check now")
        self.check_button.clicked.connect(self.check_now)
        close = QPushButton("Close")
        close.clicked.connect(self.close)
        row.addWidget(self.check_button)
        row.addWidget(close)
        layout.addLayout(row)
        runner.passed.connect(self._on_passed)
        runner.action_done.connect(self._on_action_done)
        self.resize(720, 460)
        self.refresh()

    # -- content -----------------------------------------------------------------------------

    def token_for(self, index_url: str) -> StoredToken | None:
        if self.token_source is None:
            return None
        try:
            return self.token_source(index_url)
        except GuiApproverError as exc:
            log.warning("cannot look up the token of %s: %s", index_url, exc)
            return None

    def refresh(self) -> None:
        for card in self.cards:
            self.body_layout.removeWidget(card)
            card.deleteLater()
        self.cards = []
        try:
            alerts = self.watch.alerts()
        except GuiApproverError as exc:
            self.summary.setText(f"Cannot read the alerts: {exc.full()}")
            return
        for alert in sorted(alerts, key=lambda a: a.seen_at, reverse=True):
            card = AlertCard(alert, self)
            self.cards.append(card)
            self.body_layout.insertWidget(self.body_layout.count() - 1, card)
        n = len(alerts)
        lines = [
            f"{n} open alert{'s' if n != 1 else ''}: versions nobody approved on this machine."
            if n
            else "No open alerts."
        ]
        lines += [
            f"The token of {label} was revoked: store a new one to publish there "
            "(gui-approver token add)."
            for label in self._revoked_registries()
        ]
        self.summary.setText("\n".join(lines))
        self._show_last()

    def _revoked_registries(self) -> list[str]:
        out = []
        try:
            for w in self.watch.watched():
                if self.watch.needs_new_token(w.index_url, self.token_for(w.index_url)):
                    out.append(w.label)
        except GuiApproverError as exc:
            log.warning("cannot list the watched registries: %s", exc)
        return out

    def _show_last(self) -> None:
        last = self.runner.last
        if self.runner.running():
            self.status.setText("Checking the registries…")
        elif last is None:
            self.status.setText("Not checked yet since gui-approver started.")
        elif last.errors:
            self.status.setStyleSheet("color: #b00020;")
            self.status.setText(
                "The last check failed (no alert was raised for it):\n" + "\n".join(last.errors)
            )
            return
        else:
            self.status.setText(
                f"Last check: {last.crates} crate(s) on {last.registries} "
                f"registr{'y' if last.registries == 1 else 'ies'}, "
                f"{last.requests} request(s)."
            )
        self.status.setStyleSheet("")

    def check_now(self) -> None:
        self.runner.run_now()
        self._show_last()

    def _on_passed(self, _result: PassResult) -> None:
        self.refresh()

    def _on_action_done(self, message: str, ok: bool) -> None:
        self.refresh()
        self.status.setStyleSheet("" if ok else "color: #b00020;")
        self.status.setText(message)

    # -- actions -----------------------------------------------------------------------------

    def _confirm(self, title: str, text: str) -> bool:
        answer = QMessageBox.question(self, title, text)
        return answer == QMessageBox.StandardButton.Yes

    def mark_expected(self, card: AlertCard) -> None:
        try:
            self.watch.mark_expected(card.alert.id, elsewhere=card.elsewhere.isChecked())
        except GuiApproverError as exc:
            self._on_action_done(f"Could not mark it as expected: {exc.full()}", False)
            return
        self._on_action_done(f"Marked as expected: {card.alert.crate} {card.alert.version}.", True)

    def yank(self, card: AlertCard) -> None:
        alert = card.alert
        try:
            cmd = self.watch.yank_command(alert)
        except GuiApproverError as exc:
            self._on_action_done(exc.full(), False)
            return
        card.set_busy(True)
        self.status.setStyleSheet("")
        self.status.setText(f"Running {' '.join(cmd)}: approve the yank in the dialog…")

        def job() -> str:
            proc: subprocess.CompletedProcess[str] = self.watch.yank(alert.id)
            if proc.returncode != 0:
                tail = (proc.stderr or "").strip().splitlines()[-3:]
                raise GuiApproverError(
                    f"cargo yank exited with {proc.returncode}: " + " / ".join(tail)
                )
            return f"Yanked {alert.crate} {alert.version}."

        self.runner.in_background("Yank", job)

    def revoke(self, card: AlertCard) -> None:
        alert = card.alert
        stored = self.token_for(alert.index_url)
        if stored is None:
            self._on_action_done("No bearer token is stored for this registry.", False)
            return
        if not self.confirm(
            "Revoke this token?",
            f"Revoke the bearer token sha256:{stored.fingerprint} of {stored.registry} at the "
            "registry and delete it from the keychain? Nothing can publish with it afterwards "
            "(neither an attacker nor you): you will need a new token.",
        ):
            return

        def job() -> str:
            self.watch.revoke_stored(alert.index_url, stored)
            return (
                f"The token sha256:{stored.fingerprint} of {stored.registry} was revoked "
                f"and deleted; store a new one to publish again (gui-approver token add "
                f"--registry {stored.registry})."
            )

        self.runner.in_background("Revoke", job)

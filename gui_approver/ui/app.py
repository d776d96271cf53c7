"""The Qt app: tray icon (or a status window), the approval queue, the IPC server."""

from __future__ import annotations

import contextlib
import logging
import math
import signal
import socket
import sys
from pathlib import Path

from PySide6.QtCore import QObject, QSize, QSocketNotifier, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QCloseEvent, QIcon
from PySide6.QtWidgets import (
    QApplication,
    QHBoxLayout,
    QLabel,
    QMenu,
    QPushButton,
    QSystemTrayIcon,
    QVBoxLayout,
    QWidget,
)

from gui_approver import __version__
from gui_approver.core import ipc
from gui_approver.core.approval import ApprovalRequest, Decision
from gui_approver.core.hardening import harden_process
from gui_approver.core.keys.bearer import bearer_store
from gui_approver.core.keys.store import KeyringKeychain, KeyStore, unlock_registry
from gui_approver.core.service import SignEvent, SigningService, ipc_handler
from gui_approver.core.sessionlock import SessionLockWatcher
from gui_approver.core.settings import Settings
from gui_approver.core.settings import default_path as default_settings_path
from gui_approver.core.settings import load as load_settings
from gui_approver.core.watch import Alert, Watch, keychain_tokens
from gui_approver.errors import GuiApproverError
from gui_approver.review.text import escape_text
from gui_approver.secret import Secret
from gui_approver.ui import style
from gui_approver.ui.a11y import install_accessibility_factory, prepare_accessibility
from gui_approver.ui.activity import ActivityWindow
from gui_approver.ui.alerts import AlertsWindow, TokenSource, WatchRunner
from gui_approver.ui.dialog import ApprovalDialog
from gui_approver.ui.firstrun import FirstRunWindow
from gui_approver.ui.guard import InputGuard, default_guard
from gui_approver.ui.keys import KeyManagerWindow
from gui_approver.ui.passphrase import QtTouchNotifier, QtUnlocker
from gui_approver.ui.prompts import PromptQueue, Question
from gui_approver.ui.settings_window import SettingsWindow
from gui_approver.ui.winutil import bring_forward

log = logging.getLogger(__name__)

#: Desktop notifications for alerts found by one pass; the rest are counted in one more.
MAX_ALERT_NOTIFICATIONS = 5
#: How often the app looks for a tray host when it started without one (ms).
TRAY_RECHECK_MS = 5_000
#: How often key expiry is checked again after start-up (ms): once a day.
EXPIRY_CHECK_MS = 24 * 60 * 60 * 1000
#: Keys expiring within this many days get a warning.
EXPIRY_WARN_DAYS = 14


class QtApprover(PromptQueue):
    """Implements :class:`gui_approver.core.approval.Approver` with one dialog at a time."""

    def __init__(self, settings: Settings, guard: InputGuard | None = None) -> None:
        super().__init__()
        self.settings = settings
        self._guard = guard

    # worker threads ----------------------------------------------------------------------
    def decide(self, request: ApprovalRequest) -> Decision:
        answer = self.ask(
            Question(request, Decision.deny("gui-approver quit"), request.timeout, request.gone)
        )
        return answer if isinstance(answer, Decision) else Decision.deny("no decision")

    def timeout_answer(self, question: Question) -> Decision:
        return Decision.deny(f"no decision within {question.timeout:.0f} s")

    def gone_answer(self, question: Question) -> Decision:
        return Decision.deny("cargo stopped waiting (interrupted?) before a decision")

    # GUI thread --------------------------------------------------------------------------
    @property
    def guard(self) -> InputGuard:
        if self._guard is None:
            self._guard = default_guard()
        return self._guard

    def make_dialog(self, question: Question) -> ApprovalDialog:
        approval = question.subject
        assert isinstance(approval, ApprovalRequest)
        dialog = ApprovalDialog(
            approval,
            arming_delay=self.settings.arming_delay,
            waiting=len(self.queue),
            guard=self.guard,
        )
        log.info(
            "dialog %d: showing %s (%d more waiting)",
            approval.id,
            approval.summary(),
            len(self.queue),
        )
        dialog.decided.connect(self._on_dialog_decided)  # no lambda: see ApprovalDialog
        return dialog

    def dismiss_dialog(self, dialog: QWidget) -> None:
        assert isinstance(dialog, ApprovalDialog)
        dialog.dismiss()

    def _on_dialog_decided(self, approved: bool) -> None:
        dialog = self.sender()
        if not isinstance(dialog, ApprovalDialog):
            return
        if approved and dialog.approve_all_chosen is True:
            decision = Decision(
                True, "approved in the dialog, with all listed crates", approve_all=True
            )
        elif approved:
            decision = Decision.approve("approved in the dialog")
        else:
            decision = Decision.deny("denied in the dialog")
        self.answer_from(dialog, decision)

    def on_queue_changed(self) -> None:
        if isinstance(self.dialog, ApprovalDialog):
            self.dialog.set_waiting(len(self.queue))


def make_icon(state: str = "idle") -> QIcon:
    """The tray icon for ``state`` (idle, pending, locked, auto): distinct shapes, not colours."""
    from gui_approver.desktop.integration import icon_path

    icon = QIcon()
    for size in (16, 22, 24, 32, 48, 64):
        path = icon_path(state, size)
        if path.exists():
            icon.addFile(str(path), QSize(size, size))
    if icon.isNull():
        icon = QIcon(str(icon_path(state)))
    return icon


class StatusWindow(QWidget):
    """Shown where no tray host exists."""

    def __init__(self, controller: GuiApp) -> None:
        super().__init__()
        self.setWindowTitle("gui-approver")
        self.setObjectName("statusWindow")
        layout = QVBoxLayout(self)
        self.state = QLabel()
        self.state.setTextFormat(Qt.TextFormat.PlainText)
        self.state.setWordWrap(True)
        layout.addWidget(self.state)
        # Problems found in the settings file at start-up (the file was not used).
        self.problems = QLabel()
        self.problems.setObjectName("settingsProblems")
        self.problems.setTextFormat(Qt.TextFormat.PlainText)
        self.problems.setWordWrap(True)
        self.problems.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.problems.setStyleSheet("color: #8a5300;")
        if controller.problems:
            self.problems.setText(
                "Settings problems (gui-approver started with the default settings):\n"
                + "\n".join(f"• {p}" for p in controller.problems)
            )
            layout.addWidget(self.problems)
            fix = QHBoxLayout()
            fix.addStretch(1)
            settings_button = QPushButton("Settings…")
            settings_button.clicked.connect(controller.show_settings)
            fix.addWidget(settings_button)
            layout.addLayout(fix)
        else:
            self.problems.hide()
        row = QHBoxLayout()
        self.show_pending = QPushButton("Show pending request")
        self.show_pending.clicked.connect(controller.approver.show_current)
        keys_button = QPushButton("Keys…")
        keys_button.clicked.connect(controller.show_keys)
        activity_button = QPushButton("Recent activity…")
        activity_button.clicked.connect(controller.show_activity)
        self.alerts_button = QPushButton("Alerts…")
        self.alerts_button.clicked.connect(controller.show_alerts)
        main_settings_button = QPushButton("Settings…")
        main_settings_button.clicked.connect(controller.show_settings)
        lock_button = QPushButton("Lock now")
        lock_button.clicked.connect(controller.lock_now)
        quit_button = QPushButton("Quit")
        quit_button.clicked.connect(controller.quit)
        row.addWidget(self.show_pending)
        row.addWidget(keys_button)
        row.addWidget(activity_button)
        row.addWidget(self.alerts_button)
        row.addWidget(main_settings_button)
        row.addWidget(lock_button)
        row.addWidget(quit_button)
        layout.addLayout(row)
        # What the last action did ("Lock now": how many keys were locked).
        self.feedback = QLabel()
        self.feedback.setObjectName("feedback")
        self.feedback.setTextFormat(Qt.TextFormat.PlainText)
        self.feedback.setWordWrap(True)
        self.feedback.hide()
        layout.addWidget(self.feedback)
        self.setMinimumWidth(560)

    def fit(self) -> None:
        """Grow (never shrink) to show every wrapped line of the status and the problems."""
        layout = self.layout()
        if layout is None:
            return
        layout.activate()
        need = layout.heightForWidth(self.width()) if layout.hasHeightForWidth() else -1
        need = max(need, layout.minimumSize().height())
        if need > self.height():
            self.resize(self.width(), need)

    def closeEvent(self, e: QCloseEvent) -> None:
        # Keep running: without a tray this window is the only way back in; minimise it.
        e.ignore()
        self.showMinimized()


class GuiApp(QObject):
    """Owns the approver, the signing service and the IPC server. Testable in-process."""

    _event = Signal(object)

    def __init__(
        self,
        store: KeyStore,
        settings: Settings,
        *,
        auto_approve_loopback: bool = False,
        socket_dir: str | None = None,
        problems: list[str] | None = None,
        first_run: bool = True,
        settings_path: Path | None = None,
        cargo_home: Path | None = None,
        watch: Watch | None = None,
    ) -> None:
        super().__init__()
        self._stopped = False
        self.settings = settings
        self.first_run = first_run
        self.settings_path = settings_path
        self.cargo_home = cargo_home
        self.first_run_window: FirstRunWindow | None = None
        self.settings_window: SettingsWindow | None = None
        self._tray_timer = QTimer(self)
        self._tray_timer.setInterval(TRAY_RECHECK_MS)
        self._tray_timer.timeout.connect(self._recheck_tray)
        self._expiry_timer = QTimer(self)
        self._expiry_timer.setInterval(EXPIRY_CHECK_MS)
        self._expiry_timer.timeout.connect(self.check_expiry)
        self.store = store
        # Passphrase-protected keys are unlocked through a dialog of their own.
        self.unlocker = QtUnlocker(parent=self)
        store.unlocker = self.unlocker
        # Hardware keys: "Touch your security key now" while the token waits.
        self.touch = QtTouchNotifier(parent=self)
        store.touch_notifier = self.touch
        self.session_lock = SessionLockWatcher(lambda _reason: self._lock_from_ipc())
        self.keys_window: KeyManagerWindow | None = None
        self.activity_window: ActivityWindow | None = None
        # The watch: versions of the user's crates nobody approved here (background passes).
        self.watch_runner = WatchRunner(watch or Watch(), settings.watch_interval_minutes, self)
        self.watch_runner.new_alerts.connect(self._on_new_alerts)
        self.watch_runner.passed.connect(lambda _r: self._refresh())
        #: index URL -> the registry's stored bearer token, for "Revoke this token".
        self.token_source: TokenSource | None = keychain_tokens(store)
        self.alerts_window: AlertsWindow | None = None
        self._idle_timer = QTimer(self)
        self._idle_timer.setInterval(30_000)
        self._idle_timer.timeout.connect(self._lock_if_idle)
        self.auto_approve_loopback = auto_approve_loopback
        self.approver = QtApprover(settings)
        self.service = SigningService(
            store,
            self.approver,
            settings,
            auto_approve_loopback=auto_approve_loopback,
            on_event=self._emit_event,
        )
        self.server = ipc.UnixSocketServer(
            ipc_handler(self.service),
            socket_dir,
            on_lock=self._lock_from_ipc,
            on_unlock=self._unlock_from_ipc,
            on_show=self._show_from_ipc,
        )
        self.problems = problems or []
        self.tray: QSystemTrayIcon | None = None
        self.status_window: StatusWindow | None = None
        self._status_action: QAction | None = None
        self._show_action: QAction | None = None
        self._event.connect(self._on_event, Qt.ConnectionType.QueuedConnection)
        self._locked.connect(self._refresh, Qt.ConnectionType.QueuedConnection)
        self._show_requested.connect(self.show_main, Qt.ConnectionType.QueuedConnection)
        self.approver.queue_changed.connect(self._on_queue_changed)
        install_accessibility_factory()

    def start(self) -> None:
        _ = self.approver.guard  # create it now, so a problem is logged at start-up
        self.server.start()
        # Session lock, screen saver, suspend: every unlocked key is locked.
        self.session_lock.start()
        if self.settings.idle_lock_minutes > 0:
            self._idle_timer.start()
        if QSystemTrayIcon.isSystemTrayAvailable():
            self._make_tray()
        else:
            self.status_window = StatusWindow(self)
            self.status_window.show()
            self._tray_timer.start()  # a tray host may still appear (panel started later)
        self._refresh()
        for p in self.problems:
            self.notify("Settings problem", p, warning=True)
        if self.auto_approve_loopback:
            self.notify(
                "Auto-approve is on",
                "Mutations for loopback registries are signed without a dialog.",
            )
        self.check_expiry()
        self._expiry_timer.start()
        self.watch_runner.start()
        if self.first_run:
            self._maybe_first_run()

    def _maybe_first_run(self) -> None:
        """The welcome window, when no key exists yet. Non-modal: start-up goes on."""
        try:
            if self.store.list() or bearer_store(self.store).list():
                return
        except Exception as exc:  # noqa: BLE001 - a damaged index is reported elsewhere
            log.warning("not showing the welcome window: %s", exc)
            return
        self.first_run_window = FirstRunWindow(self.store, cargo_home=self.cargo_home)
        self.first_run_window.changed.connect(self._refresh)  # "Keys: none yet" no more
        self.first_run_window.show()

    def _recheck_tray(self) -> None:
        """Started without a tray host: switch to the tray once one appears."""
        if self._stopped or self.tray is not None:
            self._tray_timer.stop()
            return
        if not QSystemTrayIcon.isSystemTrayAvailable():
            return
        log.info("a system tray appeared; moving from the status window to the tray")
        self._tray_timer.stop()
        self._make_tray()
        if self.status_window is not None:
            self.status_window.hide()
            self.status_window.deleteLater()
            self.status_window = None
        self._refresh()

    def check_expiry(self) -> list[str]:
        """Warn about keys that expired or expire within EXPIRY_WARN_DAYS; returns the texts."""
        try:
            records = self.store.list(include_pending=False)
        except Exception as exc:  # noqa: BLE001
            log.warning("cannot check key expiry: %s", exc)
            return []
        texts = []
        for rec in records:
            left = rec.days_left()
            if left is None:
                continue
            if rec.is_expired():
                texts.append(
                    f"The key for {rec.registry} expired on {rec.expires}; it is no "
                    "longer used. Rotate it (Keys…) to keep publishing."
                )
            elif left <= EXPIRY_WARN_DAYS:
                days = max(1, math.ceil(left))
                texts.append(
                    f"The key for {rec.registry} expires in {days} "
                    f"day{'s' if days != 1 else ''}; rotate it."
                )
        for text in texts:
            self.notify("Key expiry", text, warning=True)
        return texts

    def _make_tray(self) -> None:
        tray = QSystemTrayIcon(make_icon(), self)
        menu = QMenu()
        self._status_action = menu.addAction("gui-approver")
        self._status_action.setEnabled(False)
        menu.addSeparator()
        show = menu.addAction("Show pending request")
        show.triggered.connect(self.approver.show_current)
        show.setEnabled(self.approver.pending_count() > 0)
        self._show_action = show
        menu.addSeparator()
        keys_action = menu.addAction("Keys…")
        keys_action.triggered.connect(self.show_keys)
        activity_action = menu.addAction("Recent activity…")
        activity_action.triggered.connect(self.show_activity)
        self._alerts_action = menu.addAction("Alerts…")
        self._alerts_action.triggered.connect(self.show_alerts)
        settings_action = menu.addAction("Settings…")
        settings_action.triggered.connect(self.show_settings)
        lock_action = menu.addAction("Lock now")
        lock_action.triggered.connect(self.lock_now)
        menu.addSeparator()
        quit_action = menu.addAction("Quit")
        quit_action.triggered.connect(self.quit)
        tray.setContextMenu(menu)
        # Any same-user process can trigger tray actions over D-Bus (StatusNotifierItem):
        # the tray can only *show* the pending dialog, never decide anything.
        tray.activated.connect(self._on_tray_activated)
        self._menu = menu
        tray.show()
        self.tray = tray

    def show_keys(self) -> None:
        if self.keys_window is None:
            self.keys_window = KeyManagerWindow(self.store)  # the app's store: shared cache
            self.keys_window.changed.connect(self._refresh)
        self.keys_window.refresh()
        bring_forward(self.keys_window)

    def show_settings(self) -> None:
        if self.settings_window is None:
            self.settings_window = SettingsWindow(self.settings, self.settings_path)
            self.settings_window.saved.connect(self.apply_settings)
        bring_forward(self.settings_window)

    def show_alerts(self) -> None:
        if self.alerts_window is None:
            self.alerts_window = AlertsWindow(self.watch_runner, self.token_source)
        self.alerts_window.token_source = self.token_source
        self.alerts_window.refresh()
        self.alerts_window.show()
        self.alerts_window.raise_()
        self.alerts_window.activateWindow()

    def _on_new_alerts(self, alerts: list[Alert]) -> None:
        """One desktop notification per alert, the first time the app sees it (beyond
        MAX_ALERT_NOTIFICATIONS at once: one more that counts the rest)."""
        for alert in alerts[:MAX_ALERT_NOTIFICATIONS]:
            self.notify("Version nobody approved", alert.message, warning=True)
        rest = len(alerts) - MAX_ALERT_NOTIFICATIONS
        if rest > 0:
            self.notify(
                "Versions nobody approved",
                f"…and {rest} more: see Alerts… in the gui-approver menu.",
                warning=True,
            )
        if self.alerts_window is not None and self.alerts_window.isVisible():
            self.alerts_window.refresh()
        self._refresh()

    def open_alert_count(self) -> int:
        try:
            return len(self.watch_runner.watch.alerts())
        except GuiApproverError:
            return 0

    def apply_settings(self, new: Settings) -> None:
        """Use saved settings from now on (those read only at start-up wait for a restart)."""
        self.settings = new
        self.approver.settings = new
        self.service.settings = new
        if new.watch_interval_minutes != self.watch_runner.interval_minutes:
            self.watch_runner.set_interval(new.watch_interval_minutes)
            self.watch_runner.start()
        if new.idle_lock_minutes > 0:
            if not self._idle_timer.isActive():
                self._idle_timer.start()
        else:
            self._idle_timer.stop()
        self._refresh()

    def show_activity(self) -> None:
        if self.activity_window is None:
            self.activity_window = ActivityWindow()
        self.activity_window.refresh()
        bring_forward(self.activity_window)

    _locked = Signal()
    _show_requested = Signal()

    def _show_from_ipc(self) -> None:
        """A second launch (an IPC thread): bring this app's window forward."""
        if not self._stopped:
            self._show_requested.emit()

    def show_main(self) -> None:
        """The window a second launch brings forward: the pending dialog if there is one
        (and then nothing that could cover it), else the welcome or status window, else
        the key manager (with a tray icon there is no main window)."""
        if self.approver.dialog is not None:
            self.approver.show_current()
        elif self.first_run_window is not None and self.first_run_window.isVisible():
            bring_forward(self.first_run_window)
        elif self.status_window is not None:
            bring_forward(self.status_window)
        else:
            self.show_keys()

    def _lock_from_ipc(self) -> int:
        """`gui-approver key lock` (an IPC thread): forget keys; the tray refreshes later."""
        n = self.store.lock()
        self.service.end_batches()
        if not self._stopped:
            self._locked.emit()
        return n

    def _unlock_from_ipc(self, registry: str, secret: Secret) -> str:
        """`gui-approver key unlock` (an IPC thread): unlock one key with what the user typed."""
        text = unlock_registry(self.store, registry, secret)
        if not self._stopped:
            self._locked.emit()
        return text

    def lock_now(self) -> str:
        """Forget unlocked keys; says what happened (tray message, status window, key
        manager) and returns that text."""
        self.service.end_batches()
        n = self.store.lock()
        log.info("locked %d unlocked key(s) on request", n)
        text = (
            f"Locked {n} key{'' if n == 1 else 's'}: the next use asks for the passphrase again."
            if n
            else "No key was unlocked: nothing to lock."
        )
        self.notify("Lock now", text)
        if self.status_window is not None:
            self.status_window.feedback.setText(text)
            self.status_window.feedback.show()
        if self.keys_window is not None and self.keys_window.isVisible():
            self.keys_window.refresh()
        self._refresh()
        return text

    def _lock_if_idle(self) -> None:
        n = self.store.lock_if_idle(self.settings.idle_lock_minutes * 60)
        if n:
            log.info("locked %d key(s) after %.0f idle minutes", n, self.settings.idle_lock_minutes)
            self._refresh()

    def _on_queue_changed(self, _n: int) -> None:
        self._refresh()

    def _on_tray_activated(self, _reason: QSystemTrayIcon.ActivationReason) -> None:
        self.approver.show_current()

    def status_text(self) -> str:
        n = self.approver.pending_count()
        parts = [f"gui-approver {__version__} is running."]
        parts.append(f"{n} request(s) waiting for you." if n else "No requests waiting.")
        try:
            keys = self.store.list()
            tokens = bearer_store(self.store).list()
            parts.append(
                "Keys: "
                + (
                    ", ".join(
                        [f"{r.registry} (asymmetric)" for r in keys]
                        + [f"{t.registry} (bearer token)" for t in tokens]
                    )
                    or "none yet"
                )
                + "."
            )
        except Exception as exc:  # noqa: BLE001
            parts.append(f"Keys unavailable: {exc}")
        if self.auto_approve_loopback:
            parts.append("AUTO-APPROVE is ON for loopback registries.")
        alerts = self.open_alert_count()
        if alerts:
            parts.append(f"{alerts} open alert(s): versions nobody approved here (Alerts…).")
        return "\n".join(parts)

    def _refresh(self) -> None:
        text = self.status_text()
        n = self.approver.pending_count()
        state = (
            "pending"
            if n
            else (
                "auto"
                if self.auto_approve_loopback
                else ("locked" if self._all_locked() else "idle")
            )
        )
        if self.tray is not None:
            self.tray.setToolTip(text)
            self.tray.setIcon(make_icon(state))
            if self._status_action is not None:
                self._status_action.setText(text.splitlines()[1])
            if self._show_action is not None:
                self._show_action.setEnabled(bool(n))
        alerts = self.open_alert_count()
        alerts_label = f"Alerts ({alerts})…" if alerts else "Alerts…"
        if self.tray is not None:
            self._alerts_action.setText(alerts_label)
        if self.status_window is not None:
            self.status_window.state.setText(text)
            self.status_window.show_pending.setEnabled(bool(n))
            self.status_window.alerts_button.setText(alerts_label)
            self.status_window.setWindowIcon(make_icon(state))
            self.status_window.fit()

    def _all_locked(self) -> bool:
        """True when every key needs a passphrase and none is unlocked."""
        try:
            records = self.store.list()
        except Exception:  # noqa: BLE001 - a damaged index shows as idle, logged elsewhere
            return False
        return bool(records) and all(
            r.protection in ("passphrase", "hardware") and not self.store.is_unlocked(r)
            for r in records
        )

    def notify(self, title: str, message: str, *, warning: bool = False) -> None:
        (log.warning if warning else log.info)("%s: %s", title, message)
        if self.tray is not None and QSystemTrayIcon.supportsMessages():
            icon = (
                QSystemTrayIcon.MessageIcon.Warning
                if warning
                else QSystemTrayIcon.MessageIcon.Information
            )
            self.tray.showMessage(title, message, icon, 10000 if warning else 5000)

    def _on_event(self, event: SignEvent) -> None:
        if event.decision == "signed" and event.request.is_mutation:
            self.notify(
                "Signed",
                escape_text(
                    f"Signed {event.request.describe()} for registry "
                    f"{event.request.registry.label()}",
                    300,
                ),
            )
        if self.keys_window is not None and self.keys_window.isVisible():
            self.keys_window.refresh()
        if self.activity_window is not None and self.activity_window.isVisible():
            self.activity_window.refresh()
        self._refresh()

    def quit(self) -> None:
        app = QApplication.instance()
        if app is not None:
            app.exit(0)  # not quit(): see _quit_on_signals

    def _emit_event(self, event: SignEvent) -> None:
        """Called from worker threads; after stop() the Qt side may already be gone."""
        if self._stopped:
            return
        try:
            self._event.emit(event)
        except RuntimeError:  # the QObject was deleted while a worker finished
            log.debug("event after shutdown dropped")

    #: The windows the app may have opened; each is closed when the app stops.
    _WINDOWS = (
        "alerts_window",
        "keys_window",
        "first_run_window",
        "settings_window",
        "activity_window",
    )

    def stop(self) -> None:
        self._stopped = True
        self.watch_runner.stop()
        for timer in (self._idle_timer, self._tray_timer, self._expiry_timer):
            timer.stop()
        # Anyone waiting for a person gets "no" at once; then nothing new can arrive.
        for component in (self.unlocker, self.touch):
            component.shutdown()
        self.session_lock.stop()
        for name in self._WINDOWS:
            window = getattr(self, name)
            if window is not None:
                # a window that owns others closes them too (FirstRunWindow: its wizard)
                getattr(window, "shutdown", window.close)()
                window.deleteLater()
                setattr(self, name, None)
        self.store.lock()
        self.service.end_batches()
        self.approver.shutdown()
        self.server.stop()
        if self.tray is not None:
            self.tray.hide()
        if self.status_window is not None:
            self.status_window.hide()
            self.status_window.deleteLater()


def _quit_on_signals(app: QApplication) -> QSocketNotifier:
    rsock, wsock = socket.socketpair()
    rsock.setblocking(False)
    wsock.setblocking(False)
    signal.set_wakeup_fd(wsock.fileno())
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: None)
    notifier = QSocketNotifier(rsock.fileno(), QSocketNotifier.Type.Read, app)

    def _drain() -> None:
        with contextlib.suppress(OSError):
            rsock.recv(64)
        log.info("quitting on a signal")
        # exit(), not quit(): Qt 6's quit() first closes windows, and the status window
        # refuses to close (it minimises), which would cancel the quit.
        app.exit(0)

    notifier.activated.connect(_drain)
    notifier._socks = (rsock, wsock)  # type: ignore[attr-defined]  # keep them alive
    return notifier


def run_app(*, auto_approve_loopback: bool = False, first_run: bool = True) -> int:
    """Run the app. ``first_run=False`` (started by the bridge) skips the welcome window."""
    harden_process()  # no-op if the CLI already did it
    settings, problems = load_settings()
    for p in problems:
        log.warning("%s", p)
    prepare_accessibility(settings.paranoid_accessibility)  # must precede the QApplication
    app = QApplication(sys.argv[:1])
    app.setApplicationName("gui-approver")
    # No display name: Qt would append " — gui-approver" to titles that already start
    # with "gui-approver: ".
    app.setQuitOnLastWindowClosed(False)
    style.install(app)  # focus rings, readable grey text
    gui = GuiApp(
        KeyStore(KeyringKeychain()),
        settings,
        auto_approve_loopback=auto_approve_loopback,
        problems=problems,
        first_run=first_run,
        settings_path=default_settings_path(),
    )
    try:
        gui.start()
    except ipc.AlreadyRunning as exc:
        shown = ipc.request_show() is not None
        print(
            f"gui-approver: {exc}; "
            + ("brought its window forward." if shown else "use its tray icon or window."),
            file=sys.stderr,
        )
        return 0
    except ipc.UnsafeDirectory as exc:
        print(f"gui-approver: {exc}", file=sys.stderr)
        return 1
    # SIGTERM/SIGINT: Python's handler only sets a flag, so wake Qt's loop through a socket.
    _notifier = _quit_on_signals(app)  # must stay referenced while the loop runs
    print(f"gui-approver: listening on {gui.server.path}", file=sys.stderr, flush=True)
    try:
        return app.exec()
    finally:
        gui.stop()

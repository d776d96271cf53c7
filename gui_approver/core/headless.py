"""The app without Qt: for servers, benchmarks and smoke tests.

Reads are signed; mutations are signed only with ``--auto-approve-loopback`` for a loopback
registry; everything else is denied because no human can be asked.

Test hook (fault-injection tests only): with ``GUI_APPROVER_TEST_HOLD_SECONDS=N`` set, a
request that would be denied is instead *held* for up to N seconds and then denied, so a
test can kill the app while a bridge is waiting. It can only delay a denial: it never
approves anything.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading

from gui_approver.core import ipc
from gui_approver.core.approval import ApprovalRequest, Approver, Decision, DenyAll
from gui_approver.core.hardening import harden_process
from gui_approver.core.keys.store import KeyringKeychain, KeyStore, unlock_registry
from gui_approver.core.service import SigningService, ipc_handler
from gui_approver.core.sessionlock import SessionLockWatcher
from gui_approver.core.settings import load as load_settings

log = logging.getLogger(__name__)

NO_GUI_REASON = "gui-approver runs without a GUI (--no-gui), so nobody can approve"
TEST_HOLD_ENV = "GUI_APPROVER_TEST_HOLD_SECONDS"


class HoldThenDeny:
    """Test-only: wait (up to ``seconds`` or the request's timeout), then deny. Never approves."""

    def __init__(self, seconds: float, reason: str = NO_GUI_REASON) -> None:
        self.seconds = seconds
        self.reason = reason
        self._stop = threading.Event()

    def decide(self, request: ApprovalRequest) -> Decision:
        wait = max(0.0, min(self.seconds, request.timeout))
        # A line tests wait for (the request is now pending): not a sleep, a condition.
        log.warning("test hold: holding request %d (%s) for %.1f s, then denying it",
                    request.id, request.summary(), wait)
        self._stop.wait(wait)
        return Decision.deny(f"{self.reason} (held {wait:.0f} s by {TEST_HOLD_ENV})")

    def release(self) -> None:
        self._stop.set()


def _approver() -> Approver:
    raw = os.environ.get(TEST_HOLD_ENV)
    if raw:
        try:
            seconds = float(raw)
        except ValueError:
            log.warning("ignoring %s=%r (not a number of seconds)", TEST_HOLD_ENV, raw)
        else:
            if seconds > 0:
                return HoldThenDeny(seconds)
    return DenyAll(NO_GUI_REASON)


def run_headless(*, auto_approve_loopback: bool) -> int:
    harden_process()  # no-op if the CLI already did it
    settings, problems = load_settings()
    for p in problems:
        log.warning("%s", p)
    approver = _approver()
    service = SigningService(
        KeyStore(KeyringKeychain()),
        approver,
        settings,
        auto_approve_loopback=auto_approve_loopback,
        inspector=None,  # nobody sees a dialog here: inspecting would only delay the denial
    )
    store = service.store
    server = ipc.UnixSocketServer(
        ipc_handler(service), on_lock=store.lock,
        on_unlock=lambda registry, secret: unlock_registry(store, registry, secret))
    watcher = SessionLockWatcher(lambda _reason: store.lock())
    try:
        server.start()
    except ipc.AlreadyRunning as exc:
        print(f"gui-approver: {exc}", file=sys.stderr)
        return 0
    except ipc.UnsafeDirectory as exc:
        print(f"gui-approver: {exc}", file=sys.stderr)
        return 1
    watcher.start()
    stop = threading.Event()

    def _stop(_sig: int, _frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    print(f"gui-approver: listening on {server.path} (no GUI)", file=sys.stderr, flush=True)
    stop.wait()
    if isinstance(approver, HoldThenDeny):
        approver.release()
    watcher.stop()
    store.lock()
    server.stop()
    return 0

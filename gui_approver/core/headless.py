"""The app without Qt: for servers, benchmarks and smoke tests.

Reads are signed; mutations are signed only with ``--auto-approve-loopback`` for a loopback
registry; everything else is denied because no human can be asked.
"""

from __future__ import annotations

import logging
import signal
import sys
import threading

from gui_approver.core import ipc
from gui_approver.core.approval import Approver, DenyAll
from gui_approver.core.hardening import harden_process
from gui_approver.core.keys.store import KeyringKeychain, KeyStore, unlock_registry
from gui_approver.core.service import SigningService, ipc_handler
from gui_approver.core.sessionlock import SessionLockWatcher
from gui_approver.core.settings import load as load_settings

log = logging.getLogger(__name__)

NO_GUI_REASON = "gui-approver runs without a GUI (--no-gui), so nobody can approve"


def run_headless(*, auto_approve_loopback: bool, approver: Approver | None = None) -> int:
    """Serve until SIGTERM/SIGINT; ``approver`` (tests inject one) defaults to denying."""
    harden_process()  # no-op if the CLI already did it
    settings, problems = load_settings()
    for p in problems:
        log.warning("%s", p)
    if approver is None:
        approver = DenyAll(NO_GUI_REASON)
    service = SigningService(
        KeyStore(KeyringKeychain()),
        approver,
        settings,
        auto_approve_loopback=auto_approve_loopback,
        inspector=None,  # nobody sees a dialog here: inspecting would only delay the denial
    )
    store = service.store
    server = ipc.UnixSocketServer(
        ipc_handler(service),
        on_lock=store.lock,
        on_unlock=lambda registry, secret: unlock_registry(store, registry, secret),
    )
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
    watcher.stop()
    store.lock()
    server.stop()
    return 0

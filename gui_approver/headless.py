"""The app without Qt: for servers, benchmarks and smoke tests.

Reads are signed; mutations are signed only with ``--auto-approve-loopback`` for a loopback
registry; everything else is denied because no human can be asked.
"""

from __future__ import annotations

import logging
import signal
import sys
import threading

from gui_approver import ipc
from gui_approver.approval import DenyAll
from gui_approver.keys import KeyringKeychain, KeyStore
from gui_approver.service import SigningService, ipc_handler
from gui_approver.settings import load as load_settings

log = logging.getLogger(__name__)


def run_headless(*, auto_approve_loopback: bool) -> int:
    settings, problems = load_settings()
    for p in problems:
        log.warning("%s", p)
    service = SigningService(
        KeyStore(KeyringKeychain()),
        DenyAll("gui-approver runs without a GUI (--no-gui), so nobody can approve"),
        settings,
        auto_approve_loopback=auto_approve_loopback,
    )
    server = ipc.UnixSocketServer(ipc_handler(service))
    try:
        server.start()
    except ipc.AlreadyRunning as exc:
        print(f"gui-approver: {exc}", file=sys.stderr)
        return 0
    except ipc.UnsafeDirectory as exc:
        print(f"gui-approver: {exc}", file=sys.stderr)
        return 1
    stop = threading.Event()

    def _stop(_sig: int, _frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    print(f"gui-approver: listening on {server.path} (no GUI)", file=sys.stderr, flush=True)
    stop.wait()
    server.stop()
    return 0

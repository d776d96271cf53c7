"""Fakes for tests, kept out of the package: an in-memory keychain and a holding approver.

Prefer the real components (the ``secret_service`` fixture, the app in a subprocess); a fake is
for unit tests of the code above storage, or to hold a request open while a test breaks
something around it."""

from __future__ import annotations

import logging
import threading

from gui_approver.core.approval import ApprovalRequest, Decision
from gui_approver.errors import KeyNotFound
from gui_approver.secret import Secret

# Under the app's logger, so the app's log handlers (stderr, the log file) show it.
log = logging.getLogger("gui_approver.tests")


class MemoryKeychain:
    """An in-memory keychain (the ``Keychain`` protocol of core/keys/store.py)."""

    def __init__(self) -> None:
        self.items: dict[str, Secret] = {}

    def get(self, account: str) -> Secret | None:
        return self.items.get(account)

    def set(self, account: str, secret: Secret) -> None:
        self.items[account] = secret

    def delete(self, account: str) -> None:
        if account not in self.items:
            raise KeyNotFound("the keychain has no such item")
        del self.items[account]

    def describe(self) -> str:
        return "memory (tests only)"


class HoldThenDeny:
    """An approver that holds a request (up to ``seconds`` or the request's timeout), then
    denies it: it never approves. Logs ``test hold: holding request N`` when the request is
    pending, a line tests wait for. tests/holding_app.py runs the headless app with it."""

    def __init__(self, seconds: float, reason: str = "held by a test, then denied") -> None:
        self.seconds = seconds
        self.reason = reason
        self._stop = threading.Event()

    def decide(self, request: ApprovalRequest) -> Decision:
        wait = max(0.0, min(self.seconds, request.timeout))
        log.warning(
            "test hold: holding request %d (%s) for %.1f s, then denying it",
            request.id,
            request.summary(),
            wait,
        )
        self._stop.wait(wait)
        return Decision.deny(f"{self.reason} (after {wait:.0f} s)")

    def release(self) -> None:
        self._stop.set()

"""The key that authenticates the history of approved publishes.

History entries are plain files in the data directory, which any same-user process can
write. Each entry carries an HMAC-SHA256 whose key lives only in the keychain (account
:data:`HISTORY_MAC_ACCOUNT`, 32 random bytes, created on first use). ``review/`` never sees
the keychain: :class:`HistoryMac` is handed to :class:`~gui_approver.review.history.History`
as a plain ``bytes -> bytes`` callable by the service.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import threading
from typing import Final

from gui_approver.core.keys.store import Keychain
from gui_approver.secret import Secret

HISTORY_MAC_ACCOUNT: Final = "history-hmac-v1"


class HistoryMac:
    """``mac(data) -> 32 bytes``; fetches (or creates) the key on first use, then keeps it.
    Raises whatever the keychain raises when it cannot be used (the history then records
    nothing and trusts nothing)."""

    def __init__(self, keychain: Keychain) -> None:
        self._keychain = keychain
        self._key: bytes | None = None
        self._lock = threading.Lock()

    def _get_key(self) -> bytes:
        with self._lock:
            if self._key is None:
                stored = self._keychain.get(HISTORY_MAC_ACCOUNT)
                key: bytes | None = None
                if stored is not None:
                    try:
                        key = base64.b64decode(stored.expose(), validate=True)
                    except ValueError:
                        key = None
                if key is None or len(key) != 32:
                    # absent or unusable: a new key (entries made with the old one no longer
                    # verify, which fails closed)
                    key = secrets.token_bytes(32)
                    self._keychain.set(
                        HISTORY_MAC_ACCOUNT, Secret(base64.b64encode(key).decode("ascii"))
                    )
                self._key = key
            return self._key

    def __call__(self, data: bytes) -> bytes:
        return hmac.new(self._get_key(), data, hashlib.sha256).digest()

    def __repr__(self) -> str:
        return "HistoryMac(REDACTED)"


__all__ = ["HISTORY_MAC_ACCOUNT", "HistoryMac"]

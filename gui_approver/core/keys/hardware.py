"""A PASETO v3.public signer whose private key stays in a PKCS#11 token.

Signs like :class:`gui_approver.core.keys.store.SigningKey`: same ``kip``, ``public_paserk`` and
``sign(payload, footer)``, so :func:`gui_approver.core.paseto.sign_request` builds the token
exactly as cargo's ``cargo:paseto`` does. The message signed is PAE(compressed public key,
header, payload, footer, implicit) hashed with SHA-384 here and signed on the token with
``CKM_ECDSA`` (raw ``r||s``).
"""

from __future__ import annotations

import base64
from typing import TYPE_CHECKING, Any

from gui_approver.core.keys.pkcs11 import Pkcs11Backend, v3_public_digest
from gui_approver.secret import Secret

if TYPE_CHECKING:
    from gui_approver.core.keys.store import KeyRecord, TouchNotifier


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


class HardwareSigningKey:
    """One approved use of a hardware key. Holds no secret except, for a key that asks the
    PIN per signature, that PIN until its one signature is made."""

    __slots__ = ("_backend", "_notifier", "_pin", "_point", "kip", "public_paserk", "record")

    def __init__(
        self,
        record: KeyRecord,
        point: bytes,
        backend: Pkcs11Backend,
        *,
        pin: Secret | None = None,
        notifier: TouchNotifier | None = None,
    ) -> None:
        self.record = record
        self.kip = record.kip
        self.public_paserk = record.public
        self._point = point
        self._backend = backend
        self._pin = pin
        self._notifier = notifier

    def sign(self, payload: bytes, footer: bytes) -> str:
        hw = self.record.hardware
        assert hw is not None
        digest = v3_public_digest(self._point, payload, footer)
        pin, self._pin = self._pin, None
        notifier = self._notifier
        record = self.record

        def on_touch() -> Any:
            return notifier(record) if notifier is not None else None

        sig = self._backend.sign_digest(
            hw.module,
            hw.uri,
            digest,
            expected_point=self._point,
            pin=pin,
            touch_known=hw.touch_policy in ("always", "cached"),
            on_touch=on_touch if notifier is not None else None,
        )
        token = "v3.public." + _b64(payload + sig)
        if footer:
            token += "." + _b64(footer)
        return token

    def __repr__(self) -> str:
        return f"HardwareSigningKey(kip={self.kip!r})"

    __str__ = __repr__

    def __reduce__(self) -> Any:
        raise TypeError("signing keys cannot be pickled")

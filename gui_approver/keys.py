"""P-384 signing keys, PASERK encodings, and their storage.

The secret half of every key lives only in the OS keychain (through ``keyring``), as the
PASERK string ``k3.secret...``. A small index file in the config dir holds what is public:
registry name, index URL, ``k3.public``, ``k3.pid``, subject and creation time, so keys can
be listed without touching the keychain.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from gui_approver.errors import (
    ConfigError,
    KeychainLocked,
    KeychainUnavailable,
    KeyExists,
    KeyNotFound,
)
from gui_approver.protocol import Secret

KEYCHAIN_SERVICE = "gui-approver"
_SECRET_PREFIX = "k3.secret."  # noqa: S105 - a PASERK header, not a secret
_PUBLIC_PREFIX = "k3.public."


def _b64e(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64d(text: str) -> bytes:
    if not text or any(c not in "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
                       for c in text):
        raise ValueError("not base64url")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def public_paserk_from_key(public: ec.EllipticCurvePublicKey) -> str:
    point = public.public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.CompressedPoint
    )
    return _PUBLIC_PREFIX + _b64e(point)


def paserk_pid(public_paserk: str) -> str:
    """``k3.pid`` of a ``k3.public`` PASERK (PASERK spec: SHA-384 over header + data, 33 bytes)."""
    import hashlib

    if not public_paserk.startswith(_PUBLIC_PREFIX):
        raise ValueError("not a k3.public PASERK")
    digest = hashlib.sha384(b"k3.pid." + public_paserk.encode("ascii")).digest()
    return "k3.pid." + _b64e(digest[:33])


def parse_public_paserk(text: str) -> ec.EllipticCurvePublicKey:
    text = text.strip()
    if not text.startswith(_PUBLIC_PREFIX):
        raise ValueError("a public key must start with 'k3.public.'")
    point = _b64d(text[len(_PUBLIC_PREFIX):])
    if len(point) != 49:
        raise ValueError("a k3.public key holds a 49-byte compressed P-384 point")
    return ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP384R1(), point)


class SigningKey:
    """A P-384 private key. Its ``repr`` names only the key id."""

    __slots__ = ("_paseto", "_private", "kip", "public_paserk")

    def __init__(self, private: ec.EllipticCurvePrivateKey) -> None:
        if not isinstance(private.curve, ec.SECP384R1):
            raise ValueError("RFC 3231 keys are P-384")
        self._private = private
        self.public_paserk = public_paserk_from_key(private.public_key())
        self.kip = paserk_pid(self.public_paserk)
        self._paseto: Any = None

    @classmethod
    def generate(cls) -> SigningKey:
        return cls(ec.generate_private_key(ec.SECP384R1()))

    @classmethod
    def from_paserk(cls, secret: Secret | str) -> SigningKey:
        text = secret.expose() if isinstance(secret, Secret) else secret
        text = text.strip()
        if not text.startswith(_SECRET_PREFIX):
            raise ValueError("a secret key must be a PASERK starting with 'k3.secret.'")
        try:
            raw = _b64d(text[len(_SECRET_PREFIX):])
        except ValueError:
            raise ValueError("the secret key is not valid base64url") from None
        if len(raw) != 48:
            raise ValueError("a k3.secret key holds a 48-byte P-384 scalar")
        scalar = int.from_bytes(raw, "big")
        try:
            return cls(ec.derive_private_key(scalar, ec.SECP384R1()))
        except ValueError:
            raise ValueError("the secret key is not a valid P-384 scalar") from None

    def secret_paserk(self) -> Secret:
        scalar = self._private.private_numbers().private_value.to_bytes(48, "big")
        return Secret(_SECRET_PREFIX + _b64e(scalar))

    @property
    def public_pem(self) -> str:
        return self._private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ).decode("ascii")

    def sign(self, payload: bytes, footer: bytes) -> str:
        import pyseto

        if self._paseto is None:
            pem = self._private.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
            self._paseto = pyseto.Key.new(version=3, purpose="public", key=pem)
        token: bytes = pyseto.encode(self._paseto, payload, footer=footer)
        return token.decode("ascii")

    def __repr__(self) -> str:
        return f"SigningKey(kip={self.kip!r})"

    __str__ = __repr__

    def __reduce__(self) -> Any:
        raise TypeError("signing keys cannot be pickled")


# ---------------------------------------------------------------------------------------------
# Keychain


class Keychain(Protocol):
    def get(self, account: str) -> Secret | None: ...
    def set(self, account: str, secret: Secret) -> None: ...
    def delete(self, account: str) -> None: ...
    def describe(self) -> str: ...


_ALLOWED_BACKENDS = (
    "keyring.backends.SecretService",
    "keyring.backends.kwallet",
    "keyring.backends.macOS",
    "keyring.backends.Windows",
    "keyring.backends.libsecret",
)


class KeyringKeychain:
    """The OS keychain through ``keyring``; refuses plaintext or absent backends."""

    def __init__(self, service: str = KEYCHAIN_SERVICE) -> None:
        self.service = service
        self._backend: Any = None

    def _kr(self) -> Any:
        if self._backend is not None:
            return self._backend
        import keyring
        import keyring.errors

        try:
            backend = keyring.get_keyring()
        except Exception as exc:  # noqa: BLE001 - any backend failure means no keychain
            raise KeychainUnavailable(f"no usable keychain ({type(exc).__name__})") from None
        backends = getattr(backend, "backends", [backend])
        if not backends:
            raise KeychainUnavailable("no system keychain is available")
        for b in backends:
            mod = type(b).__module__
            if not mod.startswith(_ALLOWED_BACKENDS):
                if mod.startswith("keyring.backends.fail") or mod.startswith(
                    "keyring.backends.null"
                ):
                    raise KeychainUnavailable("no system keychain is available")
                raise KeychainUnavailable(
                    f"the keyring backend {mod}.{type(b).__name__} is not a system keychain; "
                    "gui-approver refuses to store keys with it"
                )
        self._backend = backend
        return backend

    def _call(self, what: str, fn: Any, *args: Any) -> Any:
        import keyring.errors

        try:
            return fn(*args)
        except keyring.errors.KeyringLocked:
            raise KeychainLocked(f"the keychain is locked; cannot {what}") from None
        except keyring.errors.NoKeyringError:
            raise KeychainUnavailable("no system keychain is available") from None
        except keyring.errors.PasswordDeleteError:
            raise KeyNotFound(f"the keychain has no such item; cannot {what}") from None
        except keyring.errors.KeyringError as exc:
            raise KeychainUnavailable(
                f"the keychain failed to {what} ({type(exc).__name__})"
            ) from None
        except Exception as exc:  # noqa: BLE001 - D-Bus errors and the like
            # D-Bus errors and the like; never include exception text that could echo data.
            name = type(exc).__name__
            if "Locked" in name:
                raise KeychainLocked(f"the keychain is locked; cannot {what}") from None
            raise KeychainUnavailable(f"the keychain failed to {what} ({name})") from None

    def get(self, account: str) -> Secret | None:
        kr = self._kr()
        value = self._call("read a key", kr.get_password, self.service, account)
        return Secret(value) if value is not None else None

    def set(self, account: str, secret: Secret) -> None:
        kr = self._kr()
        self._call("store a key", kr.set_password, self.service, account, secret.expose())

    def delete(self, account: str) -> None:
        kr = self._kr()
        self._call("delete a key", kr.delete_password, self.service, account)

    def describe(self) -> str:
        b = self._kr()
        return f"{type(b).__module__}.{type(b).__name__}"


class MemoryKeychain:
    """In-memory keychain for unit tests of the code above storage; never used by the app."""

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


# ---------------------------------------------------------------------------------------------
# Records and the store


def normalize_index_url(url: str) -> str:
    return url.strip().rstrip("/")


@dataclass(frozen=True)
class KeyRecord:
    registry: str
    index_url: str
    public: str
    kip: str
    subject: str | None
    created: str

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, obj: Any) -> KeyRecord:
        if not isinstance(obj, dict):
            raise ValueError("key record must be an object")
        fields = ("registry", "index_url", "public", "kip", "created")
        for f in fields:
            if not isinstance(obj.get(f), str):
                raise ValueError(f"key record field {f!r} missing")
        sub = obj.get("subject")
        if sub is not None and not isinstance(sub, str):
            raise ValueError("key record field 'subject' must be a string")
        return cls(
            registry=obj["registry"], index_url=obj["index_url"], public=obj["public"],
            kip=obj["kip"], subject=sub, created=obj["created"],
        )


def default_index_path() -> Path:
    import platformdirs

    return Path(platformdirs.user_config_dir("gui-approver")) / "keys.json"


class KeyStore:
    """Keys per registry: public metadata in ``keys.json``, secrets in the keychain."""

    def __init__(self, keychain: Keychain, index_path: Path | None = None) -> None:
        self.keychain = keychain
        self.index_path = index_path or default_index_path()
        self._lock = threading.RLock()
        self._cache: dict[str, SigningKey] = {}

    # -- index file ------------------------------------------------------------------------
    def _read(self) -> list[KeyRecord]:
        try:
            raw = self.index_path.read_text("utf-8")
        except FileNotFoundError:
            return []
        try:
            obj = json.loads(raw)
            if not isinstance(obj, dict) or obj.get("version") != 1:
                raise ValueError("unknown version")
            return [KeyRecord.from_json(r) for r in obj.get("keys", [])]
        except ValueError as exc:
            raise ConfigError(f"the key index {self.index_path} is damaged ({exc})") from None

    def _write(self, records: list[KeyRecord]) -> None:
        self.index_path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        data = json.dumps(
            {"version": 1, "keys": [r.to_json() for r in records]}, indent=2
        ).encode()
        fd, tmp = tempfile.mkstemp(dir=self.index_path.parent, prefix=".keys-", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data + b"\n")
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.index_path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    # -- queries ---------------------------------------------------------------------------
    def list(self) -> list[KeyRecord]:
        with self._lock:
            return self._read()

    def __iter__(self) -> Iterator[KeyRecord]:
        return iter(self.list())

    def find(self, index_url: str) -> KeyRecord | None:
        want = normalize_index_url(index_url)
        for rec in self.list():
            if normalize_index_url(rec.index_url) == want:
                return rec
        return None

    def find_by_registry(self, registry: str) -> KeyRecord | None:
        for rec in self.list():
            if rec.registry == registry:
                return rec
        return None

    # -- mutations -------------------------------------------------------------------------
    def add(
        self, key: SigningKey, *, registry: str, index_url: str, subject: str | None
    ) -> KeyRecord:
        if not registry or not index_url:
            raise ConfigError("a key needs a registry name and an index URL")
        with self._lock:
            records = self._read()
            for rec in records:
                if rec.registry == registry or normalize_index_url(
                    rec.index_url
                ) == normalize_index_url(index_url):
                    raise KeyExists(
                        f"registry {rec.registry} ({rec.index_url}) already has a key "
                        f"({rec.kip})",
                        hint=f"delete it first: gui-approver key delete --registry {rec.registry}",
                    )
            # Keychain first: if it fails, nothing is recorded.
            self.keychain.set(key.kip, key.secret_paserk())
            record = KeyRecord(
                registry=registry,
                index_url=index_url,
                public=key.public_paserk,
                kip=key.kip,
                subject=subject,
                created=datetime.now(UTC).replace(microsecond=0).isoformat(),
            )
            try:
                self._write([*records, record])
            except BaseException:
                self.keychain.delete(key.kip)
                raise
            self._cache[key.kip] = key
            return record

    def create(self, *, registry: str, index_url: str, subject: str | None = None) -> KeyRecord:
        return self.add(SigningKey.generate(), registry=registry, index_url=index_url,
                        subject=subject)

    def delete(self, record: KeyRecord) -> None:
        with self._lock:
            records = [r for r in self._read() if r.kip != record.kip]
            # Already gone from the keychain: still drop the record.
            with contextlib.suppress(KeyNotFound):
                self.keychain.delete(record.kip)
            self._write(records)
            self._cache.pop(record.kip, None)

    def signing_key(self, record: KeyRecord) -> SigningKey:
        """Load (once) the secret for ``record`` from the keychain."""
        with self._lock:
            cached = self._cache.get(record.kip)
            if cached is not None:
                return cached
        secret = self.keychain.get(record.kip)
        if secret is None:
            raise KeyNotFound(
                f"the keychain has no secret for the key of registry {record.registry} "
                f"({record.kip})",
                hint="the keychain item was removed; create a new key and register it",
            )
        try:
            key = SigningKey.from_paserk(secret)
        except ValueError as exc:
            raise KeyNotFound(f"the keychain item for {record.registry} is not a key ({exc})") \
                from None
        if key.kip != record.kip:
            raise KeyNotFound(
                f"the keychain item for {record.registry} does not match its recorded key id"
            )
        with self._lock:
            self._cache[record.kip] = key
        return key

    def forget_cached(self) -> None:
        with self._lock:
            self._cache.clear()

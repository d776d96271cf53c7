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
import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol, cast

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from gui_approver.errors import (
    ConfigError,
    GuiApproverError,
    KeychainLocked,
    KeychainUnavailable,
    KeyExists,
    KeyExpired,
    KeyLocked,
    KeyNotFound,
    WrongPassphrase,
)
from gui_approver.fsutil import atomic_write as _atomic_write
from gui_approver.fsutil import read_index, write_index
from gui_approver.secret import Secret

log = logging.getLogger(__name__)

KEYCHAIN_SERVICE = "gui-approver"
_SECRET_PREFIX = "k3.secret."  # noqa: S105 - a PASERK header, not a secret
_WRAPPED_PREFIX = "k3.secret-pw."
#: PBKDF2-HMAC-SHA384 count for ``k3.secret-pw`` (PASERK PBKW records it in the wrapped item,
#: so older items stay readable). Measured on the 2-core test machine (2026-11, unwrap,
#: `SigningKey.from_wrapped`): 350,000 took 0.20-0.26 s, 1,000,000 took 0.48-0.69 s; so
#: 1,000,000, which is also the most pyseto accepts when unwrapping (its bound against a
#: crafted item that would tie up the CPU). Items wrapped with fewer (100,000 before) are
#: re-wrapped on their next unlock.
WRAP_ITERATIONS = 1_000_000
#: Wrong passphrases: the n-th consecutive failure blocks further attempts for 2**n s (max 5 min).
_MAX_BACKOFF = 300.0
_PUBLIC_PREFIX = "k3.public."


def _b64e(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64d(text: str) -> bytes:
    if not text or any(
        c not in "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_" for c in text
    ):
        raise ValueError("not base64url")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _pae(pieces: list[bytes]) -> bytes:
    """PASETO's pre-authentication encoding: LE64 count, then LE64 length + bytes each."""
    out = len(pieces).to_bytes(8, "little")
    for piece in pieces:
        out += len(piece).to_bytes(8, "little") + piece
    return out


def wrapped_iterations(wrapped: Secret) -> int | None:
    """The PBKDF2 count a ``k3.secret-pw`` item records (salt 32 bytes, then a big-endian
    u32); None when the item is not one."""
    text = wrapped.expose()
    if not text.startswith(_WRAPPED_PREFIX):
        return None
    try:
        raw = _b64d(text[len(_WRAPPED_PREFIX) :])
    except ValueError:
        return None
    return int.from_bytes(raw[32:36], "big") if len(raw) >= 36 else None


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
    point = _b64d(text[len(_PUBLIC_PREFIX) :])
    if len(point) != 49:
        raise ValueError("a k3.public key holds a 49-byte compressed P-384 point")
    return ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP384R1(), point)


class SigningKey:
    """A P-384 private key. Its ``repr`` names only the key id."""

    __slots__ = ("_private", "kip", "public_paserk")

    def __init__(self, private: ec.EllipticCurvePrivateKey) -> None:
        if not isinstance(private.curve, ec.SECP384R1):
            raise ValueError("RFC 3231 keys are P-384")
        self._private = private
        self.public_paserk = public_paserk_from_key(private.public_key())
        self.kip = paserk_pid(self.public_paserk)

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
            raw = _b64d(text[len(_SECRET_PREFIX) :])
        except ValueError:
            raise ValueError("the secret key is not valid base64url") from None
        if len(raw) != 48:
            raise ValueError("a k3.secret key holds a 48-byte P-384 scalar")
        scalar = int.from_bytes(raw, "big")
        try:
            return cls(ec.derive_private_key(scalar, ec.SECP384R1()))
        except ValueError:
            raise ValueError("the secret key is not a valid P-384 scalar") from None

    @classmethod
    def from_wrapped(cls, wrapped: Secret, passphrase: Secret) -> SigningKey:
        """Unwrap a ``k3.secret-pw`` PASERK; raises WrongPassphrase."""
        import pyseto

        try:
            key = pyseto.Key.from_paserk(wrapped.expose(), password=passphrase.expose())
        except Exception:  # noqa: BLE001 - pyseto raises DecryptError and friends
            raise WrongPassphrase("wrong passphrase") from None
        return cls.from_paserk(Secret(key.to_paserk()))

    def wrap(self, passphrase: Secret, *, iterations: int | None = None) -> Secret:
        """This key as a password-wrapped ``k3.secret-pw`` PASERK (PBKDF2 count recorded
        in it; :data:`WRAP_ITERATIONS` unless given)."""
        import pyseto

        key = pyseto.Key.from_paserk(self.secret_paserk().expose())
        count = WRAP_ITERATIONS if iterations is None else iterations
        return Secret(key.to_paserk(password=passphrase.expose(), iteration=count))

    def secret_paserk(self) -> Secret:
        scalar = self._private.private_numbers().private_value.to_bytes(48, "big")
        return Secret(_SECRET_PREFIX + _b64e(scalar))

    @property
    def public_pem(self) -> str:
        return (
            self._private.public_key()
            .public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            .decode("ascii")
        )

    def sign(self, payload: bytes, footer: bytes) -> str:
        """A ``v3.public`` PASETO token, signed here with the one key object (no PEM or
        second key is ever made from it). PASETO v3: ``m2 = PAE(pk, h, m, f, i)`` with the
        compressed public key, ECDSA P-384 / SHA-384, signature ``r || s`` (96 bytes)."""
        header = b"v3.public."
        point = _b64d(self.public_paserk[len(_PUBLIC_PREFIX) :])
        m2 = _pae([point, header, payload, footer, b""])
        der = self._private.sign(m2, ec.ECDSA(hashes.SHA384()))
        r, s = decode_dss_signature(der)
        sig = r.to_bytes(48, "big") + s.to_bytes(48, "big")
        token = header + _b64e(payload + sig).encode("ascii")
        if footer:
            token += b"." + _b64e(footer).encode("ascii")
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


# ---------------------------------------------------------------------------------------------
# Records and the store


def normalize_index_url(url: str) -> str:
    return url.strip().rstrip("/")


#: Origins of a key or token that the user created knowingly (see ``KeyRecord.origin``).
TRUSTED_ORIGINS = ("cli", "dialog")

CRATES_IO = "crates-io"
#: How cargo names crates.io to a provider, and the sparse index it actually fetches.
CRATES_IO_INDEXES = (
    "https://github.com/rust-lang/crates.io-index",
    "sparse+https://index.crates.io",
)
CRATES_IO_REFUSAL = (
    "crates.io does not accept asymmetric tokens (RFC 3231) yet: it takes only bearer tokens, "
    "so a key made here would be rejected by crates.io"
)
CRATES_IO_HINT = (
    "keep your crates.io token in the keychain instead: "
    "gui-approver token import-cargo (or: gui-approver token add --registry "
    "crates-io)"
)


def is_crates_io(registry: str | None, index_url: str | None) -> bool:
    """True for crates.io, named or by either of its index URLs."""
    if registry == CRATES_IO:
        return True
    return index_url is not None and normalize_index_url(index_url) in CRATES_IO_INDEXES


@dataclass(frozen=True)
class HardwareRef:
    """Where a ``hardware`` key lives: nothing secret (module, URI, what the token said)."""

    module: str
    uri: str
    token: str = ""
    #: Attributes of the private key as read back from the token (sensitive, local, ...).
    attributes: tuple[tuple[str, bool], ...] = field(default=())
    #: ``always``/``cached``/``never`` when the token reports a touch policy, else None.
    touch_policy: str | None = None

    @property
    def always_authenticate(self) -> bool:
        return dict(self.attributes).get("always_authenticate", False)

    def to_json(self) -> dict[str, Any]:
        return {
            "module": self.module,
            "uri": self.uri,
            "token": self.token,
            "attributes": dict(self.attributes),
            "touch_policy": self.touch_policy,
        }

    @classmethod
    def from_json(cls, obj: Any) -> HardwareRef:
        if not isinstance(obj, dict):
            raise ValueError("key record field 'hardware' must be an object")
        module, uri = obj.get("module"), obj.get("uri")
        if not isinstance(module, str) or not isinstance(uri, str):
            raise ValueError("a hardware key record needs 'module' and 'uri' strings")
        from gui_approver.core.keys.pkcs11 import parse_uri

        try:
            parse_uri(uri)
        except GuiApproverError as exc:
            raise ValueError(f"bad pkcs11 URI ({exc})") from None
        attrs = obj.get("attributes") or {}
        if not isinstance(attrs, dict) or not all(
            isinstance(k, str) and isinstance(v, bool) for k, v in attrs.items()
        ):
            raise ValueError("hardware 'attributes' must map names to booleans")
        touch = obj.get("touch_policy")
        if touch not in (None, "always", "cached", "never"):
            raise ValueError(f"unknown touch policy {touch!r}")
        token = obj.get("token", "")
        return cls(
            module=module,
            uri=uri,
            token=token if isinstance(token, str) else "",
            attributes=tuple(sorted(attrs.items())),
            touch_policy=touch,
        )


@dataclass(frozen=True)
class KeyRecord:
    registry: str
    index_url: str
    public: str
    kip: str
    subject: str | None
    created: str
    #: UTC date (``YYYY-MM-DD``) after which the key is not used, chosen by the user.
    expires: str | None = None
    #: ``keychain`` (a ``k3.secret`` item), ``passphrase`` (a ``k3.secret-pw`` item) or
    #: ``hardware`` (a PKCS#11 token holds it; see :attr:`hardware`).
    protection: str = "keychain"
    #: ``active``, or ``pending`` for a rotation successor not yet confirmed as registered.
    status: str = "active"
    hardware: HardwareRef | None = None
    #: How the key came to be: ``cli`` (the CLI's own interactive command), ``dialog`` (the
    #: app's wizard or a login the user approved in a dialog); anything else (``unknown``:
    #: keys from before this was recorded) is untrusted and never offered as "already has
    #: a key".
    origin: str = "unknown"

    @property
    def trusted(self) -> bool:
        return self.origin in TRUSTED_ORIGINS

    def to_json(self) -> dict[str, Any]:
        obj = asdict(self)
        if self.hardware is None:
            obj.pop("hardware")
        else:
            obj["hardware"] = self.hardware.to_json()
        return obj

    def expiry(self) -> datetime | None:
        if not self.expires:
            return None
        day = datetime.fromisoformat(self.expires)
        if day.tzinfo is None:
            day = day.replace(tzinfo=UTC)
        return day

    def is_expired(self, now: datetime | None = None) -> bool:
        exp = self.expiry()
        return exp is not None and (now or datetime.now(UTC)) >= exp

    def days_left(self, now: datetime | None = None) -> float | None:
        exp = self.expiry()
        if exp is None:
            return None
        return (exp - (now or datetime.now(UTC))).total_seconds() / 86400

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
        expires = obj.get("expires")
        if expires is not None:
            if not isinstance(expires, str):
                raise ValueError("key record field 'expires' must be a date string")
            datetime.fromisoformat(expires)
        protection = obj.get("protection", "keychain")
        if protection not in ("keychain", "passphrase", "hardware"):
            raise ValueError(f"unknown protection {protection!r}")
        hardware = None
        if protection == "hardware":
            hardware = HardwareRef.from_json(obj.get("hardware"))
        status = obj.get("status", "active")
        if status not in ("active", "pending"):
            raise ValueError(f"unknown status {status!r}")
        origin = obj.get("origin", "unknown")
        if not isinstance(origin, str):
            raise ValueError("key record field 'origin' must be a string")
        return cls(
            registry=obj["registry"],
            index_url=obj["index_url"],
            public=obj["public"],
            kip=obj["kip"],
            subject=sub,
            created=obj["created"],
            expires=expires,
            protection=protection,
            status=status,
            hardware=hardware,
            origin=origin,
        )


def default_index_path() -> Path:
    import platformdirs

    return Path(platformdirs.user_config_dir("gui-approver")) / "keys.json"


#: Asked for a passphrase (or a hardware key's PIN): (record, why) -> it, or None on cancel.
Unlocker = Callable[[KeyRecord, str], Secret | None]
#: Called while a hardware key may wait for a touch: (record) -> a function taking the hint
#: down (or None).
TouchNotifier = Callable[[KeyRecord], Callable[[], None] | None]


class KeyStore:
    """Keys per registry: public metadata in ``keys.json``, secrets in the keychain."""

    def __init__(
        self,
        keychain: Keychain,
        index_path: Path | None = None,
        *,
        unlocker: Unlocker | None = None,
    ) -> None:
        self.keychain = keychain
        self.index_path = index_path or default_index_path()
        self.usage_path = self.index_path.with_name("usage.json")
        self.unlocker = unlocker
        self.touch_notifier: TouchNotifier | None = None
        self._lock = threading.RLock()
        #: hardware keys whose token is logged in: kip -> (last use, module, uri)
        self._hw_unlocked: dict[str, tuple[float, str, str]] = {}
        self._cache: dict[str, SigningKey] = {}
        self._unlocked_at: dict[str, float] = {}
        self._failures: dict[str, tuple[int, float]] = {}
        #: Called with an id when it is locked/forgotten (bearer tokens share the idle lock).
        self.forget_hooks: list[Callable[[str], None]] = []

    # -- index file ------------------------------------------------------------------------
    def _read(self) -> list[KeyRecord]:
        try:
            items = read_index(self.index_path, "keys")
            return [KeyRecord.from_json(r) for r in items or ()]
        except ValueError as exc:
            raise ConfigError(f"the key index {self.index_path} is damaged ({exc})") from None

    def _write(self, records: list[KeyRecord]) -> None:
        write_index(self.index_path, "keys", [r.to_json() for r in records])

    # -- queries ---------------------------------------------------------------------------
    def list(self, *, include_pending: bool = True) -> list[KeyRecord]:
        with self._lock:
            records = self._read()
        return [r for r in records if include_pending or r.status == "active"]

    def __iter__(self) -> Iterator[KeyRecord]:
        return iter(self.list())

    def find(self, index_url: str) -> KeyRecord | None:
        """The active key for ``index_url`` (trailing slashes ignored)."""
        want = normalize_index_url(index_url)
        for rec in self.list(include_pending=False):
            if normalize_index_url(rec.index_url) == want:
                return rec
        return None

    def find_by_registry(self, registry: str) -> KeyRecord | None:
        for rec in self.list(include_pending=False):
            if rec.registry == registry:
                return rec
        return None

    def find_pending(self, registry: str) -> KeyRecord | None:
        for rec in self.list():
            if rec.registry == registry and rec.status == "pending":
                return rec
        return None

    def last_used(self) -> dict[str, str]:
        try:
            obj = json.loads(self.usage_path.read_text("utf-8"))
        except (FileNotFoundError, ValueError):
            return {}
        return {str(k): str(v) for k, v in obj.items()} if isinstance(obj, dict) else {}

    # -- mutations -------------------------------------------------------------------------
    def add(
        self,
        key: SigningKey,
        *,
        registry: str,
        index_url: str,
        subject: str | None,
        expires: str | None = None,
        passphrase: Secret | None = None,
        status: str = "active",
        origin: str = "unknown",
    ) -> KeyRecord:
        if not registry or not index_url:
            raise ConfigError("a key needs a registry name and an index URL")
        if is_crates_io(registry, index_url):
            raise ConfigError(CRATES_IO_REFUSAL + "; nothing was created", hint=CRATES_IO_HINT)
        if expires is not None:
            try:
                datetime.fromisoformat(expires)
            except ValueError:
                raise ConfigError(f"invalid expiry date {expires!r} (use YYYY-MM-DD)") from None
        if passphrase is not None and not passphrase.expose():
            raise ConfigError("an empty passphrase protects nothing")
        with self._lock:
            records = self._read()
            _check_free(records, registry, index_url, status)
            secret = key.wrap(passphrase) if passphrase is not None else key.secret_paserk()
            # Keychain first: if it fails, nothing is recorded.
            self.keychain.set(key.kip, secret)
            record = KeyRecord(
                registry=registry,
                index_url=index_url,
                public=key.public_paserk,
                kip=key.kip,
                subject=subject,
                created=datetime.now(UTC).replace(microsecond=0).isoformat(),
                expires=expires,
                protection="passphrase" if passphrase is not None else "keychain",
                status=status,
                origin=origin,
            )
            try:
                self._write([*records, record])
            except BaseException:
                self.keychain.delete(key.kip)
                raise
            if passphrase is None:
                self._cache[key.kip] = key
            return record

    def check_free(self, registry: str, index_url: str) -> None:
        """Raise KeyExists when ``registry``/``index_url`` already has an active key."""
        with self._lock:
            _check_free(self._read(), registry, index_url, "active")

    def add_hardware(
        self,
        info: Any,
        *,
        registry: str,
        index_url: str,
        subject: str | None,
        expires: str | None = None,
        status: str = "active",
        origin: str = "unknown",
    ) -> KeyRecord:
        """Record a key held by a PKCS#11 token (``info``: a pkcs11.KeyInfo). Nothing secret
        is stored anywhere."""
        if not registry or not index_url:
            raise ConfigError("a key needs a registry name and an index URL")
        if is_crates_io(registry, index_url):
            raise ConfigError(CRATES_IO_REFUSAL + "; nothing was created", hint=CRATES_IO_HINT)
        if expires is not None:
            try:
                datetime.fromisoformat(expires)
            except ValueError:
                raise ConfigError(f"invalid expiry date {expires!r} (use YYYY-MM-DD)") from None
        public = _PUBLIC_PREFIX + _b64e(info.point)
        with self._lock:
            records = self._read()
            _check_free(records, registry, index_url, status)
            record = KeyRecord(
                registry=registry,
                index_url=index_url,
                public=public,
                kip=paserk_pid(public),
                subject=subject,
                created=datetime.now(UTC).replace(microsecond=0).isoformat(),
                expires=expires,
                protection="hardware",
                status=status,
                hardware=HardwareRef(
                    module=info.module,
                    uri=info.uri,
                    token=info.token_label,
                    attributes=tuple(sorted(info.attributes.items())),
                    touch_policy=info.touch_policy,
                ),
                origin=origin,
            )
            self._write([*records, record])
            return record

    def create(
        self,
        *,
        registry: str,
        index_url: str,
        subject: str | None = None,
        expires: str | None = None,
        passphrase: Secret | None = None,
        origin: str = "unknown",
    ) -> KeyRecord:
        return self.add(
            SigningKey.generate(),
            registry=registry,
            index_url=index_url,
            subject=subject,
            expires=expires,
            passphrase=passphrase,
            origin=origin,
        )

    def start_rotation(
        self,
        record: KeyRecord,
        *,
        expires: str | None = None,
        passphrase: Secret | None = None,
        hardware: Any = None,
    ) -> KeyRecord:
        """Create the successor of ``record`` (pending until :meth:`finish_rotation`);
        ``hardware``: a pkcs11.KeyInfo made on a token for it."""
        if hardware is not None:
            return self.add_hardware(
                hardware,
                registry=record.registry,
                index_url=record.index_url,
                subject=record.subject,
                expires=expires,
                status="pending",
                origin=record.origin,
            )
        if record.protection == "hardware":
            # The successor would be a keychain key: that silently weakens the protection.
            raise ConfigError(
                f"the key of registry {record.registry} is on a hardware token; rotating it "
                "would put its successor in the keychain, so gui-approver does not",
                hint=f"make the successor on a token: gui-approver key rotate --registry "
                f"{record.registry} --pkcs11 URI",
            )
        return self.add(
            SigningKey.generate(),
            registry=record.registry,
            index_url=record.index_url,
            subject=record.subject,
            expires=expires,
            passphrase=passphrase,
            status="pending",
            origin=record.origin,
        )

    def finish_rotation(self, registry: str) -> KeyRecord:
        """The user confirmed the successor is registered: make it active, delete the old."""
        with self._lock:
            pending = self.find_pending(registry)
            if pending is None:
                raise KeyNotFound(
                    f"registry {registry} has no pending successor key",
                    hint=f"start one: gui-approver key rotate --registry {registry}",
                )
            old = self.find_by_registry(registry)
            records = [
                r
                for r in self._read()
                if r.kip not in (pending.kip,) and (old is None or r.kip != old.kip)
            ]
            promoted = replace(pending, status="active")
            self._write([*records, promoted])
            if old is not None:
                if old.protection != "hardware":
                    with contextlib.suppress(KeyNotFound):
                        self.keychain.delete(old.kip)
                self._forget(old.kip)
        if old is not None and old.protection == "hardware":
            self._hw_logout(old.kip)
        return promoted

    def delete(self, record: KeyRecord) -> None:
        """Delete the record (and the keychain item). A hardware key stays on its token."""
        with self._lock:
            records = [r for r in self._read() if r.kip != record.kip]
            if record.protection != "hardware":
                # Already gone from the keychain: still drop the record.
                with contextlib.suppress(KeyNotFound):
                    self.keychain.delete(record.kip)
            self._write(records)
            self._forget(record.kip)
        if record.protection == "hardware":
            self._hw_logout(record.kip)

    # -- secrets ---------------------------------------------------------------------------
    def _forget(self, kip: str) -> None:
        self._cache.pop(kip, None)
        self._unlocked_at.pop(kip, None)
        for hook in self.forget_hooks:
            hook(kip)

    def signing_key(
        self,
        record: KeyRecord,
        *,
        approved: bool = False,
        may_ask: bool = True,
        purpose: str | None = None,
    ) -> SigningKey:
        """The key to sign with now: checks expiry, loads the secret from the keychain once,
        asks for the passphrase of a protected key, and records the use.

        ``approved``: a human approved this use. Only such a use (or the unlock itself)
        restarts the idle lock's clock; a silent read signature never does, so a process
        that keeps reading cannot keep a passphrase key unlocked.

        ``may_ask``: False for a use nobody approved (a silent read): a hardware key whose
        token is not logged in then fails instead of asking for its PIN. ``purpose`` ("to
        sign the read cargo makes before a publish") is shown in the passphrase prompt."""
        if record.is_expired():
            raise KeyExpired(
                f"the key for registry {record.registry} expired on {record.expires}; "
                "nothing was signed",
                hint=f"rotate it: gui-approver key rotate --registry {record.registry}",
            )
        if record.protection == "hardware":
            hw = self._hardware_key(record, may_ask=may_ask)
            self._note_used(record, approved=approved)
            return cast(SigningKey, hw)  # signs like one: kip, public_paserk, sign()
        with self._lock:
            key = self._cache.get(record.kip)
        if key is None:
            key = self._load(record, purpose)
        self._note_used(record, approved=approved)
        return key

    # -- hardware keys -----------------------------------------------------------------------
    def _hardware_key(self, record: KeyRecord, *, may_ask: bool = True) -> Any:
        """Check the token still holds the recorded key (no PIN needed), log in with the PIN
        if the token is not logged in (asked now: the request is already approved), and
        return the signer. A wrong PIN raises WrongPin and is never retried."""
        from gui_approver.core.keys import pkcs11
        from gui_approver.core.keys.hardware import HardwareSigningKey

        hw = record.hardware
        if hw is None:
            raise ConfigError(f"the hardware key record of {record.registry} is incomplete")
        point = _b64d(record.public[len(_PUBLIC_PREFIX) :])
        b = pkcs11.backend()
        if b.read_public(hw.module, hw.uri) != point:
            raise pkcs11.KeyMismatch(
                f"the token no longer holds the key recorded for registry {record.registry} "
                f"({record.kip}); nothing was signed"
            )
        pin_for_signature: Secret | None = None
        if not b.is_logged_in(hw.module, hw.uri):
            if not may_ask:  # e.g. logged out (idle lock) since the request came in
                raise KeyLocked(
                    f"the security key for registry {record.registry} is not logged in and "
                    "this request was not approved, so no PIN is asked; nothing was signed",
                    hint="run the cargo command again (it will be shown for approval), or: "
                    f"gui-approver key unlock --registry {record.registry}",
                )
            pin = self._ask_pin(record, "enter the PIN of the security key to sign")
            b.login(hw.module, hw.uri, pin)
            if hw.always_authenticate:
                pin_for_signature = pin
        elif hw.always_authenticate:
            if not may_ask:
                raise KeyLocked(
                    f"the security key for registry {record.registry} asks for its PIN for "
                    "every signature and this request was not approved; nothing was signed"
                )
            pin_for_signature = self._ask_pin(
                record, "this key asks for its PIN for every signature"
            )
        with self._lock:
            # The login starts the idle clock; only approved uses restart it (_note_used).
            self._hw_unlocked.setdefault(record.kip, (time.monotonic(), hw.module, hw.uri))
        return HardwareSigningKey(
            record, point, b, pin=pin_for_signature, notifier=self.touch_notifier
        )

    def _ask_pin(self, record: KeyRecord, why: str) -> Secret:
        if self.unlocker is None:
            raise KeyLocked(
                f"the key for registry {record.registry} is on a security key that is not "
                "unlocked; nothing was signed",
                hint=f"unlock it: gui-approver key unlock --registry {record.registry}",
            )
        pin = self.unlocker(record, why)
        if pin is None or not pin.expose():
            raise KeyLocked(
                f"no PIN was given for the key of {record.registry}; nothing was signed"
            )
        return pin

    def _hw_logout(self, kip: str) -> bool:
        from gui_approver.core.keys import pkcs11

        with self._lock:
            entry = self._hw_unlocked.pop(kip, None)
            if entry is None:
                return False
            # Other keys on the same token lose the login too.
            for other, (_t, mod, uri) in list(self._hw_unlocked.items()):
                if mod == entry[1] and _same_token(uri, entry[2]):
                    self._hw_unlocked.pop(other, None)
        b = pkcs11.backend_if_started()
        return b.logout(entry[1], entry[2]) if b is not None else False

    def _load(self, record: KeyRecord, purpose: str | None = None) -> SigningKey:
        secret = self.keychain.get(record.kip)
        if secret is None:
            raise KeyNotFound(
                f"the keychain has no secret for the key of registry {record.registry} "
                f"({record.kip})",
                hint="the keychain item was removed; create a new key and register it",
            )
        # Locked or not is decided by the item itself, never by keys.json (user-writable).
        wrapped = secret.expose().startswith(_WRAPPED_PREFIX)
        if wrapped:
            key = self._unlock(record, secret, purpose)
        else:
            try:
                key = SigningKey.from_paserk(secret)
            except ValueError as exc:
                raise KeyNotFound(
                    f"the keychain item for {record.registry} is not a key ({exc})"
                ) from None
        if key.kip != record.kip:
            raise KeyNotFound(
                f"the keychain item for {record.registry} does not match its recorded key id"
            )
        with self._lock:
            self._cache[record.kip] = key
            if wrapped:
                self._unlocked_at[record.kip] = time.monotonic()
        return key

    def _unlock(self, record: KeyRecord, wrapped: Secret, purpose: str | None = None) -> SigningKey:
        now = time.monotonic()
        with self._lock:
            count, until = self._failures.get(record.kip, (0, 0.0))
        if now < until:
            raise KeyLocked(
                f"too many wrong passphrases for the key of {record.registry}; try again in "
                f"{until - now:.0f} s. Nothing was signed."
            )
        if self.unlocker is None:
            raise KeyLocked(
                f"the key for registry {record.registry} is protected by a passphrase and is "
                "locked; unlock it in the gui-approver app. Nothing was signed."
            )
        why = (
            "wrong passphrase, try again"
            if count
            else (f"unlock the key {purpose}" if purpose else "unlock the key to sign")
        )
        asker = getattr(self.unlocker, "ask_verified", None)
        if callable(asker):
            return self._unlock_in_prompt(record, wrapped, why, asker)
        passphrase = self.unlocker(record, why)
        if passphrase is None:
            raise KeyLocked(
                f"unlocking the key for {record.registry} was cancelled; nothing was signed"
            )
        try:
            key = SigningKey.from_wrapped(wrapped, passphrase)
        except WrongPassphrase:
            count += 1
            with self._lock:
                self._failures[record.kip] = (
                    count,
                    time.monotonic() + min(2.0**count, _MAX_BACKOFF),
                )
            raise WrongPassphrase(
                f"wrong passphrase for the key of registry {record.registry}; nothing was signed"
            ) from None
        with self._lock:
            self._failures.pop(record.kip, None)
        if key.kip == record.kip:
            self._rewrap_if_weak(record, key, wrapped, passphrase)
        return key

    def _unlock_in_prompt(
        self, record: KeyRecord, wrapped: Secret, why: str, asker: Any
    ) -> SigningKey:
        """An unlocker that checks each passphrase while its prompt stays open: a wrong one
        keeps the prompt ("wrong passphrase, N s before the next try"), within its deadline.
        The backoff is the same as between separate prompts."""

        def attempt(passphrase: Secret) -> SigningKey | float:
            with self._lock:
                count, until = self._failures.get(record.kip, (0, 0.0))
            if time.monotonic() < until:
                return until - time.monotonic()
            try:
                key = SigningKey.from_wrapped(wrapped, passphrase)
            except WrongPassphrase:
                count += 1
                wait = min(2.0**count, _MAX_BACKOFF)
                with self._lock:
                    self._failures[record.kip] = (count, time.monotonic() + wait)
                return wait
            with self._lock:
                self._failures.pop(record.kip, None)
            if key.kip == record.kip:
                self._rewrap_if_weak(record, key, wrapped, passphrase)
            return key

        key = asker(record, why, attempt)
        if not isinstance(key, SigningKey):
            raise KeyLocked(
                f"unlocking the key for {record.registry} was cancelled; nothing was signed"
            )
        return key

    def _rewrap_if_weak(
        self, record: KeyRecord, key: SigningKey, wrapped: Secret, passphrase: Secret
    ) -> None:
        """An item wrapped with fewer PBKDF2 rounds than :data:`WRAP_ITERATIONS` is wrapped
        again with the passphrase just proven right. A failure keeps the old item."""
        count = wrapped_iterations(wrapped)
        if count is None or count >= WRAP_ITERATIONS:
            return
        try:
            self.keychain.set(record.kip, key.wrap(passphrase))
        except Exception as exc:  # noqa: BLE001 - the old item still works
            log.warning(
                "could not re-wrap the key of %s with %d iterations (%s)",
                record.registry,
                WRAP_ITERATIONS,
                type(exc).__name__,
            )
            return
        log.info(
            "re-wrapped the key of %s: %d -> %d PBKDF2 iterations",
            record.registry,
            count,
            WRAP_ITERATIONS,
        )

    def unlock(self, record: KeyRecord, passphrase: Secret) -> None:
        """Unlock a passphrase-protected key, or log in to a hardware key's token with its
        PIN, ahead of use (`gui-approver key unlock`, tests)."""
        if record.protection == "hardware":
            from gui_approver.core.keys import pkcs11

            hw = record.hardware
            if hw is None:
                raise ConfigError(f"the hardware key record of {record.registry} is incomplete")
            b = pkcs11.backend()
            if b.read_public(hw.module, hw.uri) != _b64d(record.public[len(_PUBLIC_PREFIX) :]):
                raise pkcs11.KeyMismatch(
                    f"the token no longer holds the key recorded for registry "
                    f"{record.registry} ({record.kip})"
                )
            b.login(hw.module, hw.uri, passphrase)
            with self._lock:
                self._hw_unlocked[record.kip] = (time.monotonic(), hw.module, hw.uri)
            return
        saved = self.unlocker
        self.unlocker = lambda _r, _w: passphrase
        try:
            with self._lock:
                self._forget(record.kip)
            self._load(record)
        finally:
            self.unlocker = saved

    def is_unlocked(self, record: KeyRecord) -> bool:
        if record.protection == "hardware":
            from gui_approver.core.keys import pkcs11

            b = pkcs11.backend_if_started()
            hw = record.hardware
            return b is not None and hw is not None and b.is_logged_in(hw.module, hw.uri)
        with self._lock:
            return record.kip in self._cache

    def needs_login(self, record: KeyRecord) -> bool:
        """A hardware key that will ask for its PIN when used: its token is not logged in,
        or it asks the PIN for every signature (CKA_ALWAYS_AUTHENTICATE)."""
        if record.protection != "hardware":
            return False
        hw = record.hardware
        return (hw is not None and hw.always_authenticate) or not self.is_unlocked(record)

    def lock(self) -> int:
        """Forget every unwrapped passphrase-protected key and log out of every token.
        Returns how many keys (or token logins) were locked."""
        from gui_approver.core.keys import pkcs11

        with self._lock:
            kips = list(self._unlocked_at)
            for kip in kips:
                self._forget(kip)
            self._hw_unlocked.clear()
        b = pkcs11.backend_if_started()
        return len(kips) + (b.logout_all() if b is not None else 0)

    def lock_if_idle(self, idle_seconds: float) -> int:
        now = time.monotonic()
        with self._lock:
            idle = [k for k, t in self._unlocked_at.items() if now - t >= idle_seconds]
            for kip in idle:
                self._forget(kip)
            hw_idle = [k for k, (t, _m, _u) in self._hw_unlocked.items() if now - t >= idle_seconds]
        locked = len(idle)
        for kip in hw_idle:
            if self._hw_logout(kip):
                locked += 1
        return locked

    def _note_used(self, record: KeyRecord, *, approved: bool) -> None:
        with self._lock:
            if approved and record.kip in self._unlocked_at:
                self._unlocked_at[record.kip] = time.monotonic()
            if approved and record.kip in self._hw_unlocked:
                _t, mod, uri = self._hw_unlocked[record.kip]
                self._hw_unlocked[record.kip] = (time.monotonic(), mod, uri)
            usage = self.last_used()
            usage[record.kip] = datetime.now(UTC).replace(microsecond=0).isoformat()
            try:
                _atomic_write(self.usage_path, json.dumps(usage, indent=1).encode(), fsync=False)
            except OSError:
                log.warning("could not record the key's last use in %s", self.usage_path)

    def forget_cached(self) -> None:
        with self._lock:
            self._cache.clear()
            for kip in list(self._unlocked_at):
                for hook in self.forget_hooks:
                    hook(kip)
            self._unlocked_at.clear()


def _check_free(records: list[KeyRecord], registry: str, index_url: str, status: str) -> None:
    for rec in records:
        same = rec.registry == registry or normalize_index_url(
            rec.index_url
        ) == normalize_index_url(index_url)
        if same and rec.status == status:
            raise KeyExists(
                f"registry {rec.registry} ({rec.index_url}) already has "
                f"{'a pending successor key' if status == 'pending' else 'a key'} "
                f"({rec.kip})",
                hint=f"delete it first: gui-approver key delete --registry {rec.registry}",
            )


def _same_token(uri_a: str, uri_b: str) -> bool:
    from gui_approver.core.keys.pkcs11 import parse_uri

    a, b = parse_uri(uri_a), parse_uri(uri_b)
    return (a.token, a.serial) == (b.token, b.serial)


def unlock_registry(store: KeyStore, registry: str, secret: Secret) -> str:
    """Unlock ``registry``'s key with a passphrase or token PIN (`gui-approver key unlock`
    through the running app). Returns a sentence for the user; raises GuiApproverError."""
    record = store.find_by_registry(registry) or store.find(registry)
    if record is None:
        raise KeyNotFound(f"no key for registry {registry}")
    if record.protection == "keychain":
        return f"The key for registry {record.registry} needs no unlocking."
    store.unlock(record, secret)
    what = "security key is logged in" if record.protection == "hardware" else "key is unlocked"
    return (
        f"The {what} for registry {record.registry} ({record.kip}) until it is locked "
        "(gui-approver key lock, the idle lock, or the screen lock)."
    )

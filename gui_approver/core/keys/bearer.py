"""Bearer tokens (crates.io and every other registry that does not verify RFC 3231 tokens),
kept in the OS keychain.

A registry the app knows is either ``asymmetric`` (a P-384 key: :mod:`.store`) or ``token``
(a bearer token: here). The token itself lives only in the keychain, either as is
(protection ``keychain``) or encrypted under a key derived from a passphrase (protection
``passphrase``: scrypt + AES-256-GCM). A small index file beside ``keys.json``,
``tokens.json``, holds what is not secret: registry, index URL, a fingerprint (the first 8 hex
digits of the token's SHA-256), when it was added, the expiry and scopes the user declared,
the protection, where it came from, and whether reads may release it without a dialog.

Passphrase-protected tokens share the key store's unlock prompt (its ``unlocker``), its
back-off after wrong passphrases and its idle lock (:meth:`KeyStore.lock`,
:meth:`KeyStore.lock_if_idle` forget unlocked tokens too).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import os
import threading
import time
import weakref
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from typing import Any

from gui_approver.errors import (
    ConfigError,
    KeyExists,
    KeyExpired,
    KeyLocked,
    KeyNotFound,
    WrongPassphrase,
)
from gui_approver.fsutil import read_index, write_index
from gui_approver.secret import Secret

from .store import (
    _MAX_BACKOFF,
    TRUSTED_ORIGINS,
    KeyRecord,
    KeyStore,
    normalize_index_url,
)

#: Keychain account prefix of bearer tokens (keys use their ``k3.pid``).
ACCOUNT_PREFIX = "bearer:"
_WRAPPED_PREFIX = "gat-bearer-pw.1."
_MAX_TOKEN = 4096
#: scrypt cost: about 0.1 s here; the unlock prompt's back-off does the rest.
_SCRYPT_N = 2**15
#: What a read is answered with when the registry does not need authentication: cargo asks
#: for a read before every publish and sends the answer nowhere (cargo-facts.md).
READ_PLACEHOLDER = "gui-approver-read-placeholder-not-a-token"


def fingerprint(token: Secret) -> str:
    """First 8 hex digits of the token's SHA-256 (what the user can compare, never enough
    to find the token)."""
    return hashlib.sha256(token.expose().encode("utf-8")).hexdigest()[:8]


def check_token(token: Secret) -> Secret:
    """The token, stripped of surrounding whitespace; ConfigError for anything that cannot
    be a bearer token (the message never repeats it)."""
    text = token.expose().strip()
    if not text:
        raise ConfigError("the token is empty; nothing was stored")
    if len(text) > _MAX_TOKEN:
        raise ConfigError(f"the token is longer than {_MAX_TOKEN} characters; nothing was stored")
    if any(not (0x21 <= ord(c) <= 0x7E) for c in text):
        raise ConfigError(
            "the token contains spaces, control or non-ASCII characters; a bearer token is "
            "one word of printable ASCII. Nothing was stored."
        )
    if text.startswith(("k3.secret", "k3.public")):
        raise ConfigError(
            "this is an asymmetric (PASERK) key, not a bearer token; nothing was stored",
            hint="import cargo:paseto keys with: gui-approver key import-cargo",
        )
    return Secret(text)


def _b64e(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64d(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _derive(passphrase: Secret, salt: bytes) -> bytes:
    from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

    return Scrypt(salt=salt, length=32, n=_SCRYPT_N, r=8, p=1).derive(
        passphrase.expose().encode("utf-8")
    )


def wrap_token(token: Secret, passphrase: Secret, aad: str) -> Secret:
    """``gat-bearer-pw.1.`` + b64url(salt | nonce | AES-256-GCM(token)); ``aad`` binds it to
    its keychain account."""
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    salt, nonce = os.urandom(16), os.urandom(12)
    ct = AESGCM(_derive(passphrase, salt)).encrypt(
        nonce, token.expose().encode("utf-8"), aad.encode("utf-8")
    )
    return Secret(_WRAPPED_PREFIX + _b64e(salt + nonce + ct))


def unwrap_token(wrapped: Secret, passphrase: Secret, aad: str) -> Secret:
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    try:
        raw = _b64d(wrapped.expose()[len(_WRAPPED_PREFIX) :])
        salt, nonce, ct = raw[:16], raw[16:28], raw[28:]
        plain = AESGCM(_derive(passphrase, salt)).decrypt(nonce, ct, aad.encode("utf-8"))
    except (InvalidTag, ValueError):
        raise WrongPassphrase("wrong passphrase") from None
    return Secret(plain.decode("utf-8"))


@dataclass(frozen=True)
class TokenRecord:
    """What is known about a stored bearer token, without the token."""

    registry: str
    index_url: str
    fingerprint: str
    added: str
    #: UTC date (``YYYY-MM-DD``) the user says the token expires; None: unknown/never.
    expires: str | None = None
    #: The scopes the user says it has (crates.io cannot be asked); None: unknown.
    scopes: str | None = None
    #: ``keychain`` or ``passphrase``.
    protection: str = "keychain"
    #: ``cli``, ``dialog`` (trusted), or anything else (untrusted; see KeyRecord.origin).
    origin: str = "unknown"
    #: For a registry that requires authentication for downloads: release the token for
    #: ``read`` requests without a dialog (a warning in the key manager).
    silent_reads: bool = False

    kind = "token"

    @property
    def account(self) -> str:
        return f"{ACCOUNT_PREFIX}{self.registry}:{self.fingerprint}"

    @property
    def trusted(self) -> bool:
        return self.origin in TRUSTED_ORIGINS

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def expiry(self) -> datetime | None:
        if not self.expires:
            return None
        day = datetime.fromisoformat(self.expires)
        return day if day.tzinfo is not None else day.replace(tzinfo=UTC)

    def is_expired(self, now: datetime | None = None) -> bool:
        exp = self.expiry()
        return exp is not None and (now or datetime.now(UTC)) >= exp

    def scopes_text(self) -> str:
        return self.scopes if self.scopes else "scopes unknown"

    def expiry_text(self) -> str:
        return f"expires {self.expires}" if self.expires else "expiry unknown"

    def as_key_record(self) -> KeyRecord:
        """A stand-in for the unlock prompt, which shows a key's registry and id."""
        return KeyRecord(
            registry=self.registry,
            index_url=self.index_url,
            public="(bearer token)",
            kip=f"bearer token {self.fingerprint}",
            subject=None,
            created=self.added,
            expires=self.expires,
            protection=self.protection,
            origin=self.origin,
        )

    @classmethod
    def from_json(cls, obj: Any) -> TokenRecord:
        if not isinstance(obj, dict):
            raise ValueError("token record must be an object")
        for f in ("registry", "index_url", "fingerprint", "added"):
            if not isinstance(obj.get(f), str):
                raise ValueError(f"token record field {f!r} missing")
        for f in ("expires", "scopes"):
            if obj.get(f) is not None and not isinstance(obj.get(f), str):
                raise ValueError(f"token record field {f!r} must be a string")
        if obj.get("expires"):
            datetime.fromisoformat(obj["expires"])
        protection = obj.get("protection", "keychain")
        if protection not in ("keychain", "passphrase"):
            raise ValueError(f"unknown protection {protection!r}")
        origin = obj.get("origin", "unknown")
        return cls(
            registry=obj["registry"],
            index_url=obj["index_url"],
            fingerprint=obj["fingerprint"],
            added=obj["added"],
            expires=obj.get("expires"),
            scopes=obj.get("scopes"),
            protection=protection,
            origin=origin if isinstance(origin, str) else "unknown",
            silent_reads=obj.get("silent_reads") is True,
        )


class BearerStore:
    """Bearer tokens per registry: metadata in ``tokens.json``, tokens in the keychain.

    Shares the keychain, lock, unlock prompt, back-off and idle lock of its :class:`KeyStore`
    (get the one for a key store with :func:`bearer_store`)."""

    def __init__(self, keys: KeyStore) -> None:
        self.keys = keys
        self.keychain = keys.keychain
        self.index_path = keys.index_path.with_name("tokens.json")
        self._lock = threading.RLock()
        self._cache: dict[str, Secret] = {}
        keys.forget_hooks.append(self._forget)

    # -- index file ----------------------------------------------------------------------
    def _read(self) -> list[TokenRecord]:
        try:
            items = read_index(self.index_path, "tokens")
            return [TokenRecord.from_json(r) for r in items or ()]
        except ValueError as exc:
            raise ConfigError(f"the token index {self.index_path} is damaged ({exc})") from None

    def _write(self, records: list[TokenRecord]) -> None:
        write_index(self.index_path, "tokens", [r.to_json() for r in records])

    # -- queries -------------------------------------------------------------------------
    def list(self) -> list[TokenRecord]:
        with self._lock:
            return self._read()

    def find(self, index_url: str) -> TokenRecord | None:
        want = normalize_index_url(index_url)
        for rec in self.list():
            if normalize_index_url(rec.index_url) == want:
                return rec
        return None

    def find_by_registry(self, registry: str) -> TokenRecord | None:
        for rec in self.list():
            if rec.registry == registry:
                return rec
        return None

    # -- mutations -----------------------------------------------------------------------
    def add(
        self,
        token: Secret,
        *,
        registry: str,
        index_url: str,
        expires: str | None = None,
        scopes: str | None = None,
        passphrase: Secret | None = None,
        origin: str = "unknown",
        replacing: TokenRecord | None = None,
    ) -> TokenRecord:
        """Store ``token`` (keychain first; the record only once the keychain has it).
        ``replacing``: the record this one replaces (rotation); deleted afterwards."""
        token = check_token(token)
        if not registry or not index_url:
            raise ConfigError("a token needs a registry name and an index URL")
        if expires is not None:
            try:
                datetime.fromisoformat(expires)
            except ValueError:
                raise ConfigError(f"invalid expiry date {expires!r} (use YYYY-MM-DD)") from None
        if passphrase is not None and not passphrase.expose():
            raise ConfigError("an empty passphrase protects nothing")
        with self._lock, self.keys._lock:
            records = self._read()
            for rec in records:
                if rec is replacing or rec == replacing:
                    continue
                if rec.registry == registry or normalize_index_url(
                    rec.index_url
                ) == normalize_index_url(index_url):
                    raise KeyExists(
                        f"registry {rec.registry} ({rec.index_url}) already has a bearer "
                        f"token ({rec.fingerprint})",
                        hint=f"replace it: gui-approver token rotate --registry {rec.registry}",
                    )
            for key in self.keys.list():
                if key.registry == registry or normalize_index_url(
                    key.index_url
                ) == normalize_index_url(index_url):
                    raise KeyExists(
                        f"registry {key.registry} already has an asymmetric key ({key.kip}); "
                        "a registry takes either a key or a bearer token",
                        hint=f"delete the key first: gui-approver key delete --registry "
                        f"{key.registry}",
                    )
            record = TokenRecord(
                registry=registry,
                index_url=index_url,
                fingerprint=fingerprint(token),
                added=datetime.now(UTC).replace(microsecond=0).isoformat(),
                expires=expires,
                scopes=scopes.strip() if scopes and scopes.strip() else None,
                protection="passphrase" if passphrase is not None else "keychain",
                origin=origin,
                silent_reads=replacing.silent_reads if replacing is not None else False,
            )
            if replacing is not None and record.account == replacing.account:
                raise KeyExists(
                    f"registry {registry} already holds this very token "
                    f"({record.fingerprint}); nothing changed"
                )
            stored = (
                wrap_token(token, passphrase, record.account) if passphrase is not None else token
            )
            self.keychain.set(record.account, stored)
            kept = [r for r in records if replacing is None or r != replacing]
            try:
                self._write([*kept, record])
            except BaseException:
                self.keychain.delete(record.account)
                raise
            if replacing is not None:
                with contextlib.suppress(KeyNotFound):
                    self.keychain.delete(replacing.account)
                self._forget_record(replacing)
            if passphrase is None:
                self._cache[record.account] = token
            return record

    def delete(self, record: TokenRecord) -> None:
        with self._lock:
            records = [r for r in self._read() if r.account != record.account]
            with contextlib.suppress(KeyNotFound):
                self.keychain.delete(record.account)
            self._write(records)
            self._forget_record(record)

    def set_silent_reads(self, record: TokenRecord, allow: bool) -> TokenRecord:
        with self._lock:
            records = self._read()
            new = replace(record, silent_reads=allow)
            if not any(r.account == record.account for r in records):
                raise KeyNotFound(f"no bearer token for registry {record.registry}")
            self._write([new if r.account == record.account else r for r in records])
            return new

    # -- the token -----------------------------------------------------------------------
    def _forget(self, account: str) -> None:
        self._cache.pop(account, None)

    def _forget_record(self, record: TokenRecord) -> None:
        with self.keys._lock:
            self._cache.pop(record.account, None)
            self.keys._unlocked_at.pop(record.account, None)
            self.keys._failures.pop(record.account, None)

    def is_unlocked(self, record: TokenRecord) -> bool:
        return record.account in self._cache

    def token(self, record: TokenRecord, *, approved_use: bool = True) -> Secret:
        """The token to hand to cargo now: checks the expiry, reads the keychain, asks for the
        passphrase of a protected token. ``approved_use`` restarts the idle lock's clock."""
        if record.is_expired():
            raise KeyExpired(
                f"the bearer token for registry {record.registry} expired on "
                f"{record.expires}; nothing was released",
                hint=f"store its successor: gui-approver token rotate --registry {record.registry}",
            )
        with self.keys._lock:
            cached = self._cache.get(record.account)
            if cached is not None:
                if approved_use and record.account in self.keys._unlocked_at:
                    self.keys._unlocked_at[record.account] = time.monotonic()
                return cached
        stored = self.keychain.get(record.account)
        if stored is None:
            raise KeyNotFound(
                f"the keychain has no bearer token for registry {record.registry} "
                f"({record.fingerprint})",
                hint=f"store it again: gui-approver token add --registry {record.registry}",
            )
        wrapped = stored.expose().startswith(_WRAPPED_PREFIX)
        token = self._unlock(record, stored) if wrapped else stored
        if fingerprint(token) != record.fingerprint:
            raise KeyNotFound(
                f"the keychain item for {record.registry} does not match its "
                f"recorded fingerprint {record.fingerprint}; nothing was released"
            )
        with self.keys._lock:
            self._cache[record.account] = token
            if wrapped:
                self.keys._unlocked_at[record.account] = time.monotonic()
        return token

    def _unlock(self, record: TokenRecord, wrapped: Secret) -> Secret:
        keys = self.keys
        now = time.monotonic()
        with keys._lock:
            count, until = keys._failures.get(record.account, (0, 0.0))
        if now < until:
            raise KeyLocked(
                f"too many wrong passphrases for the bearer token of {record.registry}; try "
                f"again in {until - now:.0f} s. Nothing was released."
            )
        if keys.unlocker is None:
            raise KeyLocked(
                f"the bearer token for registry {record.registry} is protected by a "
                "passphrase and is locked; unlock it in the gui-approver app. Nothing was "
                "released."
            )
        why = "wrong passphrase, try again" if count else "unlock the bearer token"
        passphrase = keys.unlocker(record.as_key_record(), why)
        if passphrase is None:
            raise KeyLocked(
                f"unlocking the bearer token for {record.registry} was cancelled; "
                "nothing was released"
            )
        try:
            token = unwrap_token(wrapped, passphrase, record.account)
        except WrongPassphrase:
            count += 1
            with keys._lock:
                keys._failures[record.account] = (
                    count,
                    time.monotonic() + min(2.0**count, _MAX_BACKOFF),
                )
            raise WrongPassphrase(
                f"wrong passphrase for the bearer token of registry {record.registry}; "
                "nothing was released"
            ) from None
        with keys._lock:
            keys._failures.pop(record.account, None)
        return token

    def unlock(self, record: TokenRecord, passphrase: Secret) -> None:
        """Unlock a passphrase-protected token ahead of use (CLI, tests)."""
        saved = self.keys.unlocker
        self.keys.unlocker = lambda _r, _w: passphrase
        try:
            self._forget_record(record)
            self.token(record)
        finally:
            self.keys.unlocker = saved


_stores: weakref.WeakKeyDictionary[KeyStore, BearerStore] = weakref.WeakKeyDictionary()
_stores_lock = threading.Lock()


def bearer_store(keys: KeyStore) -> BearerStore:
    """The one BearerStore of ``keys`` (sharing its keychain, unlock prompt and idle lock)."""
    with _stores_lock:
        found = _stores.get(keys)
        if found is None:
            found = BearerStore(keys)
            _stores[keys] = found
        return found


def kind_of(keys: KeyStore, index_url: str) -> str | None:
    """``asymmetric``, ``token`` or None: what the app keeps for this registry."""
    if keys.find(index_url) is not None:
        return "asymmetric"
    if bearer_store(keys).find(index_url) is not None:
        return "token"
    return None


__all__ = [
    "READ_PLACEHOLDER",
    "BearerStore",
    "TokenRecord",
    "bearer_store",
    "check_token",
    "fingerprint",
    "kind_of",
]

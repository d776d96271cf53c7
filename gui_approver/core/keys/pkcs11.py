"""Signing keys held in a PKCS#11 token (YubiKey PIV, smart card, TPM, SoftHSM2).

Nothing secret is stored: a hardware key record holds the module path, an RFC 7512 ``pkcs11:``
URI naming the private key (never with a PIN in it) and the public key. Every PKCS#11 call runs
on ONE worker thread (python-pkcs11 initialises modules without threading callbacks). One
long-lived session per token holds the login: that login is the PIN cache, and locking (or the
idle lock) closes it. Signatures are made in short sessions that share the login, so a failed
signature never disturbs it. PASETO v3.public wants ECDSA P-384 with SHA-384 and a raw ``r||s``
signature: the digest is computed here and signed with ``CKM_ECDSA``.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import hashlib
import logging
import os
import platform
import queue
import secrets
import threading
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar, cast

from gui_approver.errors import GuiApproverError, KeyLocked, WrongPassphrase
from gui_approver.secret import Secret

log = logging.getLogger(__name__)

T = TypeVar("T")

#: DER of the named curve secp384r1 (OID 1.3.132.0.34), as CKA_EC_PARAMS holds it.
P384_PARAMS = bytes.fromhex("06052b81040022")
#: Yubico's vendor attribute for a PIV key's touch policy (ykcs11).
CKA_YUBICO_TOUCH_POLICY = 0xD9554201
#: How long a signature may block (a touch included) before the app gives up waiting.
SIGN_TIMEOUT = 60.0
#: When the touch policy is unknown, "Touch your security key now" appears after this long.
TOUCH_HINT_DELAY = 0.5


def _multiarch() -> str:
    machine = platform.machine()
    return {
        "x86_64": "x86_64-linux-gnu",
        "aarch64": "aarch64-linux-gnu",
        "armv7l": "arm-linux-gnueabihf",
    }.get(machine, f"{machine}-linux-gnu")


def default_modules() -> list[str]:
    """Modules searched when none is named, at their Debian paths: p11-kit's proxy (every
    module p11-kit knows), OpenSC (smart cards), Yubico's ykcs11 (YubiKey PIV), SoftHSM2."""
    lib = f"/usr/lib/{_multiarch()}"
    paths = [
        f"{lib}/p11-kit-proxy.so",
        f"{lib}/opensc-pkcs11.so",
        f"{lib}/libykcs11.so",
        f"{lib}/softhsm/libsofthsm2.so",
        "/usr/lib/softhsm/libsofthsm2.so",
    ]
    out: list[str] = []
    seen: set[str] = set()
    for p in paths:  # the same library under two names (symlinks) is listed once
        real = os.path.realpath(p)
        if real not in seen:
            seen.add(real)
            out.append(p)
    return out


# ---------------------------------------------------------------------------------------------
# Errors: each names the cause and the fix.


class HardwareKeyError(GuiApproverError):
    """A hardware key cannot be used."""


class ModuleMissing(HardwareKeyError):
    hint = (
        "install the token's PKCS#11 module (ykcs11: package ykcs11; smart cards: "
        "opensc-pkcs11; TPM: libtpm2-pkcs11-1) or name it with --module PATH"
    )


class TokenMissing(HardwareKeyError):
    hint = (
        "plug in the security key (or insert the card) and try again; "
        "`gui-approver hardware list` shows the tokens the module sees"
    )


class TokenRemoved(HardwareKeyError):
    hint = "plug the security key back in and run the cargo command again"


class KeyMismatch(HardwareKeyError):
    hint = (
        "the token no longer holds the recorded key (another token, or the key was "
        "replaced); plug in the right token, or create a new key and register it"
    )


class WrongPin(WrongPassphrase):
    """The token refused the PIN. Never retried automatically."""


class PinBlocked(HardwareKeyError):
    hint = (
        "the PIN is blocked after too many wrong tries; unblock it with the token's PUK "
        "or admin tool (YubiKey: ykman piv access unblock-pin)"
    )


class TouchTimeout(HardwareKeyError):
    hint = "run the cargo command again and touch the security key when it blinks"


class UnsafeUri(HardwareKeyError):
    hint = "give the PIN at the prompt (or with --pin-file), never inside the pkcs11: URI"


class BadUri(HardwareKeyError):
    hint = (
        "a key URI looks like pkcs11:token=LABEL;id=%01;type=private (RFC 7512); "
        "`gui-approver hardware list` prints the URI of every key"
    )


# ---------------------------------------------------------------------------------------------
# RFC 7512 URIs

_PATH_ATTRS = (
    "token",
    "manufacturer",
    "serial",
    "model",
    "library-manufacturer",
    "library-description",
    "library-version",
    "object",
    "type",
    "id",
    "slot-description",
    "slot-manufacturer",
    "slot-id",
)
_QUERY_ATTRS = ("module-name", "module-path")
_UNRESERVED = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~"


@dataclass(frozen=True)
class Pkcs11Uri:
    """A parsed ``pkcs11:`` URI (RFC 7512) naming a token and, optionally, one key."""

    token: str | None = None
    manufacturer: str | None = None
    serial: str | None = None
    model: str | None = None
    slot_id: int | None = None
    object: str | None = None
    id: bytes | None = None
    type: str | None = None
    module_path: str | None = None
    extra: tuple[tuple[str, str], ...] = field(default=())

    def with_key(self, *, id: bytes | None, object: str | None) -> Pkcs11Uri:
        return Pkcs11Uri(
            self.token,
            self.manufacturer,
            self.serial,
            self.model,
            self.slot_id,
            object,
            id,
            "private",
            self.module_path,
            self.extra,
        )

    def __str__(self) -> str:
        def enc(text: str) -> str:
            return urllib.parse.quote(text, safe=_UNRESERVED)

        parts: list[str] = []
        for name, value in (
            ("token", self.token),
            ("manufacturer", self.manufacturer),
            ("serial", self.serial),
            ("model", self.model),
        ):
            if value is not None:
                parts.append(f"{name}={enc(value)}")
        if self.slot_id is not None:
            parts.append(f"slot-id={self.slot_id}")
        if self.object is not None:
            parts.append(f"object={enc(self.object)}")
        if self.id is not None:
            parts.append("id=" + "".join(f"%{b:02x}" for b in self.id))
        if self.type is not None:
            parts.append(f"type={self.type}")
        parts.extend(f"{k}={enc(v)}" for k, v in self.extra)
        text = "pkcs11:" + ";".join(parts)
        if self.module_path:
            text += "?module-path=" + enc(self.module_path)
        return text


def parse_uri(text: str) -> Pkcs11Uri:
    """Parse a ``pkcs11:`` URI; refuses ``pin-value``/``pin-source`` and unknown attributes."""
    text = text.strip()
    if not text.lower().startswith("pkcs11:"):
        raise BadUri(f"not a pkcs11: URI: {text[:80]!r}")
    body = text[len("pkcs11:") :]
    path, _, query = body.partition("?")
    values: dict[str, str] = {}
    extra: list[tuple[str, str]] = []
    for item in path.split(";"):
        _take_attr(item, _PATH_ATTRS, "path", values, extra)
    for item in query.split("&") if query else ():
        _take_attr(item, _QUERY_ATTRS, "query", values, extra)
    kind = values.get("type")
    if kind is not None and kind not in ("private", "public"):
        raise BadUri(f"the pkcs11: URI names a {kind!r} object; a signing key is type=private")
    return Pkcs11Uri(
        token=values.get("token"),
        manufacturer=values.get("manufacturer"),
        serial=values.get("serial"),
        model=values.get("model"),
        slot_id=_slot_id(values.get("slot-id")),
        object=values.get("object"),
        id=_key_id(values.get("id")),
        type=kind,
        module_path=values.get("module-path"),
        extra=tuple(extra),
    )


def _take_attr(
    item: str,
    allowed: tuple[str, ...],
    where: str,
    values: dict[str, str],
    extra: list[tuple[str, str]],
) -> None:
    """One ``name=value`` of a pkcs11: URI into ``values`` (vendor ``x-`` ones into
    ``extra``, kept and never interpreted)."""
    if not item:
        return
    name, eq, raw = item.partition("=")
    name = name.strip().lower()
    if name in ("pin-value", "pin-source"):
        raise UnsafeUri("the pkcs11: URI carries a PIN (pin-value/pin-source); refused")
    if not eq:
        raise BadUri(f"the pkcs11: URI attribute {name[:40]!r} has no value")
    try:
        value = urllib.parse.unquote(raw, errors="strict") if name != "id" else raw
    except UnicodeDecodeError:
        raise BadUri(f"the pkcs11: URI attribute {name!r} is not UTF-8") from None
    if name not in allowed:
        if name.startswith("x-"):
            extra.append((name, value))
            return
        raise BadUri(f"unknown {where} attribute {name[:40]!r} in the pkcs11: URI")
    if name in values:
        raise BadUri(f"the pkcs11: URI names {name!r} twice")
    values[name] = value


def _key_id(raw: str | None) -> bytes | None:
    if raw is None:
        return None
    try:
        return urllib.parse.unquote_to_bytes(raw)
    except ValueError:
        raise BadUri("the id in the pkcs11: URI is not percent-encoded bytes") from None


def _slot_id(raw: str | None) -> int | None:
    if raw is None:
        return None
    if not raw.isdigit():
        raise BadUri("slot-id in the pkcs11: URI must be a number")
    return int(raw)


# ---------------------------------------------------------------------------------------------
# EC points


def compress_point(ec_point: bytes) -> bytes:
    """CKA_EC_POINT (DER-wrapped ``04 61 04||X||Y`` or the raw point) -> the 49-byte
    compressed P-384 point. Raises HardwareKeyError on anything else."""
    raw = ec_point
    if len(raw) in (99, 51) and raw[0] == 0x04 and raw[1] == len(raw) - 2:  # DER OCTET STRING
        raw = raw[2:]
    if len(raw) == 97 and raw[0] == 0x04:
        x, y = raw[1:49], raw[49:]
        point = bytes([0x02 | (y[-1] & 1)]) + x
    elif len(raw) == 49 and raw[0] in (2, 3):
        point = raw
    else:
        raise HardwareKeyError("the token's public key is not a P-384 point")
    from cryptography.hazmat.primitives.asymmetric import ec

    try:
        ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP384R1(), point)
    except ValueError:
        raise HardwareKeyError("the token's public key is not a valid P-384 point") from None
    return point


# ---------------------------------------------------------------------------------------------
# What the app knows about a hardware key (nothing secret)


@dataclass(frozen=True)
class KeyInfo:
    module: str
    uri: str
    point: bytes  # compressed P-384 public key
    token_label: str
    token_serial: str
    label: str
    attributes: dict[str, bool]
    touch_policy: str | None = None

    @property
    def always_authenticate(self) -> bool:
        return bool(self.attributes.get("always_authenticate"))


@dataclass(frozen=True)
class TokenKey:
    uri: str
    id: str
    label: str
    point: bytes


@dataclass(frozen=True)
class TokenInfo:
    module: str
    slot_id: int
    label: str
    manufacturer: str
    model: str
    serial: str
    flags: list[str]
    keys: list[TokenKey]
    other_keys: int
    uri: str


# ---------------------------------------------------------------------------------------------
# The worker thread


class _Worker:
    """Runs callables one at a time on a single daemon thread."""

    def __init__(self) -> None:
        self._q: queue.Queue[tuple[Callable[[], Any], concurrent.futures.Future[Any]]] = (
            queue.Queue()
        )
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def submit(self, fn: Callable[[], T]) -> concurrent.futures.Future[T]:
        fut: concurrent.futures.Future[T] = concurrent.futures.Future()
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="pkcs11", daemon=True)
                self._thread.start()
            self._q.put((fn, fut))
        return fut

    def call(self, fn: Callable[[], T], timeout: float = 30.0) -> T:
        if threading.current_thread() is self._thread:
            return fn()
        fut = self.submit(fn)
        try:
            return fut.result(timeout)
        except concurrent.futures.TimeoutError:
            raise HardwareKeyError(
                "the security key did not answer in time; nothing was signed",
                hint="unplug and replug it; if it stays stuck, restart gui-approver",
            ) from None

    def _run(self) -> None:
        while True:
            fn, fut = self._q.get()
            if not fut.set_running_or_notify_cancel():
                continue
            try:
                fut.set_result(fn())
            except BaseException as exc:  # noqa: BLE001 - handed to the caller
                fut.set_exception(exc)


# ---------------------------------------------------------------------------------------------
# The backend


def _serial(token: Any) -> str:
    raw = token.serial
    if isinstance(raw, bytes):
        return raw.decode("ascii", "replace").strip()
    return str(raw).strip()


_TOKEN_FLAG_NAMES = (
    "LOGIN_REQUIRED",
    "PROTECTED_AUTHENTICATION_PATH",
    "USER_PIN_COUNT_LOW",
    "USER_PIN_FINAL_TRY",
    "USER_PIN_LOCKED",
    "USER_PIN_TO_BE_CHANGED",
    "TOKEN_INITIALIZED",
)


class Pkcs11Backend:
    """Every PKCS#11 operation the app performs; thread-safe (all work on one thread)."""

    def __init__(self) -> None:
        self._worker = _Worker()
        self._libs: dict[str, Any] = {}
        #: (module, token serial, token label) -> the session that holds the login
        self._logins: dict[tuple[str, str, str], Any] = {}
        self._state = threading.Lock()

    # -- modules and tokens (worker thread) -------------------------------------------------
    def _lib(self, module: str) -> Any:
        lib = self._libs.get(module)
        if lib is not None:
            return lib
        if not os.path.isfile(module):
            raise ModuleMissing(f"the PKCS#11 module {module} does not exist")
        import pkcs11

        try:
            lib = pkcs11.lib(module)
        except Exception as exc:  # noqa: BLE001 - dlopen/C_Initialize failures
            loading = "while loading" in str(exc)
            raise ModuleMissing(
                f"the PKCS#11 module {module} could not be "
                f"{'loaded' if loading else 'initialised'} ({type(exc).__name__})"
                + ("" if loading else "; for SoftHSM2 check SOFTHSM2_CONF and its tokendir")
            ) from None
        self._libs[module] = lib
        return lib

    def _tokens(self, module: str, uri: Pkcs11Uri) -> list[tuple[Any, Any]]:
        import pkcs11

        lib = self._lib(module)
        try:
            slots = lib.get_slots(token_present=True)
        except pkcs11.PKCS11Error as exc:
            raise HardwareKeyError(
                f"the PKCS#11 module {module} failed to list its slots ({type(exc).__name__})"
            ) from None
        found = []
        for slot in slots:
            try:
                token = slot.get_token()
            except pkcs11.PKCS11Error:
                continue
            if uri.slot_id is not None and slot.slot_id != uri.slot_id:
                continue
            if uri.token is not None and token.label.strip() != uri.token:
                continue
            if uri.serial is not None and _serial(token) != uri.serial:
                continue
            if uri.manufacturer is not None and token.manufacturer_id.strip() != uri.manufacturer:
                continue
            if uri.model is not None and token.model.strip() != uri.model:
                continue
            found.append((slot, token))
        return found

    def _token(self, module: str, uri: Pkcs11Uri) -> Any:
        found = self._tokens(module, uri)
        if not found:
            # A token that went away takes its login with it (plugged in again, it asks the
            # PIN again).
            self._logout_matching(module, uri)
            what = f"token {uri.token!r}" if uri.token else "a token matching the URI"
            raise TokenMissing(f"{what} is not present in {module}; nothing was signed")
        if len(found) > 1:
            raise BadUri(
                f"{len(found)} tokens in {module} match the URI; add serial= or token= to it"
            )
        return found[0][1]

    def _login_key(self, module: str, token: Any) -> tuple[str, str, str]:
        return (module, _serial(token), token.label.strip())

    @staticmethod
    def _find_one(session: Any, cls: Any, uri: Pkcs11Uri) -> Any:
        from pkcs11 import Attribute

        attrs: dict[Any, Any] = {Attribute.CLASS: cls}
        if uri.id is not None:
            attrs[Attribute.ID] = uri.id
        if uri.object is not None:
            attrs[Attribute.LABEL] = uri.object
        objs = list(session.get_objects(attrs))
        if len(objs) > 1:
            raise BadUri(f"{len(objs)} keys on the token match the URI; add id= to it")
        return objs[0] if objs else None

    def _public_point(self, session: Any, uri: Pkcs11Uri) -> bytes:
        from pkcs11 import Attribute, ObjectClass

        if uri.id is None and uri.object is None:
            raise BadUri("the pkcs11: URI names no key (give id= or object=)")
        pub = self._find_one(session, ObjectClass.PUBLIC_KEY, uri)
        if pub is None:
            raise KeyMismatch(
                "the token has no public key matching the recorded URI; nothing was signed"
            )
        params = pub[Attribute.EC_PARAMS]
        if bytes(params) != P384_PARAMS:
            raise HardwareKeyError(
                "the key on the token is not on the P-384 curve; RFC 3231 (PASETO v3) needs P-384",
                hint="generate an ECCP384 key (ykman piv keys generate --algorithm "
                "ECCP384) or let gui-approver generate one",
            )
        return compress_point(bytes(pub[Attribute.EC_POINT]))

    # -- operations (any thread) ------------------------------------------------------------
    def list_tokens(self, module: str) -> list[TokenInfo]:
        return self._worker.call(lambda: self._list_tokens(module))

    def _list_tokens(self, module: str) -> list[TokenInfo]:
        import pkcs11
        from pkcs11 import Attribute, KeyType, ObjectClass

        out = []
        for slot, token in self._tokens(module, Pkcs11Uri()):
            flags = [n for n in _TOKEN_FLAG_NAMES if token.flags & getattr(pkcs11.TokenFlag, n)]
            if "TOKEN_INITIALIZED" not in flags:
                continue  # an empty slot (SoftHSM2 always offers one)
            base = Pkcs11Uri(token=token.label.strip(), serial=_serial(token) or None)
            keys: list[TokenKey] = []
            others = 0
            try:
                with token.open() as session:
                    for pub in session.get_objects({Attribute.CLASS: ObjectClass.PUBLIC_KEY}):
                        try:
                            if pub.key_type != KeyType.EC:
                                others += 1
                                continue
                            if bytes(pub[Attribute.EC_PARAMS]) != P384_PARAMS:
                                others += 1
                                continue
                            point = compress_point(bytes(pub[Attribute.EC_POINT]))
                        except (pkcs11.PKCS11Error, HardwareKeyError):
                            others += 1
                            continue
                        kid = bytes(pub[Attribute.ID] or b"")
                        label = str(pub[Attribute.LABEL] or "")
                        keys.append(
                            TokenKey(
                                str(base.with_key(id=kid or None, object=None if kid else label)),
                                kid.hex(),
                                label,
                                point,
                            )
                        )
            except pkcs11.PKCS11Error as exc:
                flags.append(f"cannot-open-session:{type(exc).__name__}")
            out.append(
                TokenInfo(
                    module,
                    slot.slot_id,
                    token.label.strip(),
                    token.manufacturer_id.strip(),
                    token.model.strip(),
                    _serial(token),
                    flags,
                    keys,
                    others,
                    str(base),
                )
            )
        return out

    def read_public(self, module: str, uri: str) -> bytes:
        """The compressed public key the token holds under ``uri`` (no PIN needed)."""
        parsed = parse_uri(uri)
        return self._worker.call(lambda: self._read_public(module, parsed))

    def _read_public(self, module: str, uri: Pkcs11Uri) -> bytes:
        token = self._token(module, uri)
        with self._guard(module, token), token.open() as session:
            return self._public_point(session, uri)

    def is_logged_in(self, module: str, uri: str) -> bool:
        parsed = parse_uri(uri)
        with self._state:
            for mod, serial, label in self._logins:
                if (
                    mod == module
                    and (parsed.token is None or parsed.token == label)
                    and (parsed.serial is None or parsed.serial == serial)
                ):
                    return True
        return False

    def login(self, module: str, uri: str, pin: Secret) -> None:
        parsed = parse_uri(uri)
        self._worker.call(lambda: self._login(module, parsed, pin))

    def _login(self, module: str, uri: Pkcs11Uri, pin: Secret) -> Any:
        import pkcs11

        token = self._token(module, uri)
        key = self._login_key(module, token)
        with self._state:
            existing = self._logins.get(key)
        if existing is not None:
            return existing
        try:
            session = token.open(user_pin=pin.expose())
        except pkcs11.PinIncorrect:
            raise self._wrong_pin(module, uri) from None
        except pkcs11.PinLocked:
            raise PinBlocked(
                f"the PIN of token {token.label.strip()!r} is blocked; nothing was signed"
            ) from None
        except pkcs11.UserAlreadyLoggedIn:
            # Logged in by this process some other way: a session without a PIN shares it.
            session = token.open()
        except (pkcs11.PinLenRange, pkcs11.PinInvalid):
            raise WrongPin(
                f"the token {token.label.strip()!r} refused the PIN (wrong length "
                "or characters); nothing was signed"
            ) from None
        except (pkcs11.DeviceRemoved, pkcs11.TokenNotPresent):
            raise TokenRemoved("the security key was removed; nothing was signed") from None
        except pkcs11.PKCS11Error as exc:
            raise HardwareKeyError(
                f"logging in to token {token.label.strip()!r} failed "
                f"({type(exc).__name__}); nothing was signed"
            ) from None
        with self._state:
            self._logins[key] = session
        return session

    def _wrong_pin(self, module: str, uri: Pkcs11Uri) -> GuiApproverError:
        import pkcs11

        left = ""
        try:
            flags = self._token(module, uri).flags
            if flags & pkcs11.TokenFlag.USER_PIN_LOCKED:
                return PinBlocked(
                    "wrong PIN: the token has now blocked its PIN; nothing was signed"
                )
            if flags & pkcs11.TokenFlag.USER_PIN_FINAL_TRY:
                left = " One try left before the PIN is blocked."
            elif flags & pkcs11.TokenFlag.USER_PIN_COUNT_LOW:
                left = " Few tries left before the PIN is blocked."
        except GuiApproverError:
            pass
        return WrongPin(
            f"wrong PIN for the security key; nothing was signed.{left}",
            hint="the PIN is never retried automatically; run the command again "
            "and type it carefully",
        )

    def logout(self, module: str, uri: str) -> bool:
        parsed = parse_uri(uri)
        return self._worker.call(lambda: self._logout_matching(module, parsed))

    def _logout_matching(self, module: str, uri: Pkcs11Uri) -> bool:
        with self._state:
            keys = [
                k
                for k in self._logins
                if k[0] == module
                and (uri.token is None or uri.token == k[2])
                and (uri.serial is None or uri.serial == k[1])
            ]
            sessions = [self._logins.pop(k) for k in keys]
        for s in sessions:
            with contextlib.suppress(Exception):
                s.close()  # C_Logout + C_CloseSession
        return bool(sessions)

    def logout_all(self) -> int:
        with self._state:
            if not self._logins:
                return 0
        return self._worker.call(self._logout_all)

    def _logout_all(self) -> int:
        with self._state:
            sessions = list(self._logins.values())
            self._logins.clear()
        for s in sessions:
            with contextlib.suppress(Exception):
                s.close()
        return len(sessions)

    def close(self) -> None:
        """Log out everywhere and unload every module (tests; the app at exit)."""

        def work() -> None:
            self._logout_all()
            import pkcs11

            for module in list(self._libs):
                with contextlib.suppress(Exception):
                    pkcs11.unload(module)
            self._libs.clear()

        self._worker.call(work)

    @contextlib.contextmanager
    def _guard(self, module: str, token: Any) -> Any:
        """Map a token that went away to TokenRemoved and forget its login."""
        import pkcs11

        try:
            yield
        except (
            pkcs11.DeviceRemoved,
            pkcs11.TokenNotPresent,
            pkcs11.SessionHandleInvalid,
            pkcs11.SessionClosed,
            pkcs11.DeviceError,
        ):
            with self._state:
                stale = self._logins.pop(self._login_key(module, token), None)
            if stale is not None:
                with contextlib.suppress(Exception):
                    stale.close()
            raise TokenRemoved(
                "the security key was removed or stopped answering; nothing was signed"
            ) from None

    # -- creating keys ----------------------------------------------------------------------
    def generate(
        self, module: str, uri: str, pin: Secret, *, label: str, always_authenticate: bool = False
    ) -> KeyInfo:
        parsed = parse_uri(uri)
        return self._worker.call(
            lambda: self._generate(module, parsed, pin, label, always_authenticate), 60.0
        )

    def _generate(
        self, module: str, uri: Pkcs11Uri, pin: Secret, label: str, always_authenticate: bool
    ) -> KeyInfo:
        import pkcs11
        from pkcs11 import Attribute, KeyType, MechanismFlag

        token = self._token(module, uri)
        self._login(module, uri, pin)
        kid = uri.id if uri.id is not None else secrets.token_bytes(8)
        obj_label = uri.object if uri.object is not None else label
        target = uri.with_key(id=kid, object=None)
        try:
            with token.open(rw=True) as session:
                if self._find_one(
                    session, pkcs11.ObjectClass.PRIVATE_KEY, target
                ) or self._find_one(session, pkcs11.ObjectClass.PUBLIC_KEY, target):
                    raise HardwareKeyError(
                        "the token already holds a key with that id; nothing was generated",
                        hint="pass --use-existing to use it, or another id= in the URI",
                    )
                private_template: dict[Any, Any] = {
                    Attribute.TOKEN: True,
                    Attribute.PRIVATE: True,
                    Attribute.SENSITIVE: True,
                    Attribute.EXTRACTABLE: False,
                    Attribute.SIGN: True,
                    Attribute.ID: kid,
                    Attribute.LABEL: obj_label,
                }
                if always_authenticate:
                    private_template[Attribute.ALWAYS_AUTHENTICATE] = True
                session.generate_keypair(
                    KeyType.EC,
                    capabilities=MechanismFlag.SIGN | MechanismFlag.VERIFY,
                    public_template={
                        Attribute.EC_PARAMS: P384_PARAMS,
                        Attribute.VERIFY: True,
                        Attribute.PRIVATE: False,
                        Attribute.TOKEN: True,
                        Attribute.ID: kid,
                        Attribute.LABEL: obj_label,
                    },
                    private_template=private_template,
                    store=True,
                )
        except pkcs11.PKCS11Error as exc:
            raise HardwareKeyError(
                f"the token refused to generate a P-384 key ({type(exc).__name__})",
                hint="some tokens generate keys only with their own tool (YubiKey: ykman piv "
                "keys generate --algorithm ECCP384 …); then pass --use-existing",
            ) from None
        return self._describe(module, token, target)

    def adopt(self, module: str, uri: str, pin: Secret) -> KeyInfo:
        parsed = parse_uri(uri)
        return self._worker.call(lambda: self._adopt(module, parsed, pin))

    def _adopt(self, module: str, uri: Pkcs11Uri, pin: Secret) -> KeyInfo:
        token = self._token(module, uri)
        self._login(module, uri, pin)
        return self._describe(module, token, uri.with_key(id=uri.id, object=uri.object))

    def _describe(self, module: str, token: Any, uri: Pkcs11Uri) -> KeyInfo:
        """After login: the key's public point and its attributes as the token reports them."""
        import pkcs11
        from pkcs11 import Attribute, ObjectClass

        with token.open(attribute_mapper=_vendor_mapper()) as session:
            point = self._public_point(session, uri)
            priv = self._find_one(session, ObjectClass.PRIVATE_KEY, uri)
            if priv is None:
                raise KeyMismatch("the token has no private key matching the URI (after login)")
            attrs: dict[str, bool] = {}
            for name, attr in (
                ("sensitive", Attribute.SENSITIVE),
                ("extractable", Attribute.EXTRACTABLE),
                ("always_sensitive", Attribute.ALWAYS_SENSITIVE),
                ("never_extractable", Attribute.NEVER_EXTRACTABLE),
                ("local", Attribute.LOCAL),
                ("always_authenticate", Attribute.ALWAYS_AUTHENTICATE),
            ):
                try:
                    attrs[name] = bool(priv[attr])
                except pkcs11.PKCS11Error:
                    continue
            if attrs.get("extractable") or attrs.get("sensitive") is False:
                raise HardwareKeyError(
                    "the private key on the token can be exported (not sensitive or "
                    "extractable); gui-approver only uses keys that never leave the token"
                )
            kid = bytes(priv[Attribute.ID] or b"")
            label = str(priv[Attribute.LABEL] or "")
            touch = _touch_policy(priv)
        serial = _serial(token)
        full = Pkcs11Uri(
            token=token.label.strip(),
            serial=serial or None,
            id=kid or None,
            object=None if kid else label,
            type="private",
        )
        return KeyInfo(
            module=module,
            uri=str(full),
            point=point,
            token_label=token.label.strip(),
            token_serial=serial,
            label=label,
            attributes=attrs,
            touch_policy=touch,
        )

    # -- signing ----------------------------------------------------------------------------
    def sign_digest(
        self,
        module: str,
        uri: str,
        digest: bytes,
        *,
        expected_point: bytes,
        pin: Secret | None = None,
        touch_known: bool = False,
        on_touch: Callable[[], Callable[[], None] | None] | None = None,
    ) -> bytes:
        """Sign a SHA-384 digest with CKM_ECDSA (raw ``r||s``) in a fresh session that shares
        the login, after checking that the token still holds ``expected_point``. ``pin``: the
        per-signature PIN of a CKA_ALWAYS_AUTHENTICATE key. ``on_touch()`` is called (from
        this thread) at once when ``touch_known``, else when the signature has blocked for
        TOUCH_HINT_DELAY; it returns a function that takes the hint down."""
        if len(digest) != 48:
            raise ValueError("CKM_ECDSA signs a SHA-384 digest only")
        parsed = parse_uri(uri)
        fut = self._worker.submit(lambda: self._sign(module, parsed, digest, expected_point, pin))
        done: Callable[[], None] | None = None
        try:
            if on_touch is not None and not touch_known:
                with contextlib.suppress(concurrent.futures.TimeoutError):
                    return fut.result(TOUCH_HINT_DELAY)
            if on_touch is not None:
                done = on_touch()
            try:
                return fut.result(SIGN_TIMEOUT)
            except concurrent.futures.TimeoutError:
                raise TouchTimeout(
                    "the security key did not sign within "
                    f"{SIGN_TIMEOUT:.0f} s (not touched?); nothing was "
                    "signed"
                ) from None
        finally:
            if done is not None:
                with contextlib.suppress(Exception):
                    done()

    def _sign(
        self, module: str, uri: Pkcs11Uri, digest: bytes, expected: bytes, pin: Secret | None
    ) -> bytes:
        import pkcs11
        from pkcs11 import Mechanism, ObjectClass

        token = self._token(module, uri)
        key = self._login_key(module, token)
        with self._state:
            logged_in = key in self._logins
        if not logged_in:
            raise KeyLocked(
                "the security key is not unlocked (no PIN given); nothing was signed",
                hint="unlock it in the app, or: gui-approver key unlock --registry NAME",
            )
        with self._guard(module, token):
            # A fresh session per signature: after a failed per-signature login the session
            # is stuck (OperationActive), so it is thrown away with any error.
            session = token.open()
            try:
                point = self._public_point(session, uri)
                if point != expected:
                    raise KeyMismatch(
                        "the key on the token differs from the recorded public "
                        "key; nothing was signed"
                    )
                priv = self._find_one(session, ObjectClass.PRIVATE_KEY, uri)
                if priv is None:
                    raise KeyMismatch(
                        "the token has no private key for the recorded URI "
                        "(logged in); nothing was signed"
                    )
                signer = cast(Any, priv)
                try:
                    if pin is not None:
                        sig = signer.sign(digest, mechanism=Mechanism.ECDSA, pin=pin.expose())
                    else:
                        sig = signer.sign(digest, mechanism=Mechanism.ECDSA)
                except pkcs11.PinIncorrect:
                    raise self._wrong_pin(module, uri) from None
                except pkcs11.PinLocked:
                    raise PinBlocked(
                        "the PIN of the security key is blocked; nothing was signed"
                    ) from None
                except pkcs11.UserNotLoggedIn:
                    raise KeyLocked(
                        "the key asks for its PIN for every signature and none "
                        "was given; nothing was signed"
                    ) from None
                except (
                    pkcs11.FunctionFailed,
                    pkcs11.FunctionCancelled,
                    pkcs11.FunctionRejected,
                ) as exc:
                    raise TouchTimeout(
                        f"the security key refused to sign "
                        f"({type(exc).__name__}: not touched in time, or "
                        "the request was cancelled); nothing was signed"
                    ) from None
            finally:
                with contextlib.suppress(Exception):
                    session.close()
        sig = bytes(sig)
        if len(sig) != 96:
            raise HardwareKeyError(
                f"the token returned a {len(sig)}-byte signature, not a raw "
                "P-384 r||s; nothing was signed"
            )
        return sig


def _vendor_mapper() -> Any:
    """python-pkcs11's attribute mapper plus ykcs11's touch-policy attribute (raw bytes)."""
    from pkcs11.attributes import AttributeMapper

    mapper = AttributeMapper()
    mapper.register_handler(cast(Any, CKA_YUBICO_TOUCH_POLICY), bytes, bytes)
    return mapper


def _touch_policy(priv: Any) -> str | None:
    """The YubiKey touch policy when ykcs11 reports it (vendor attribute), else None."""
    try:
        raw = priv[CKA_YUBICO_TOUCH_POLICY]
    except Exception:  # noqa: BLE001 - not a YubiKey, or not readable: unknown
        return None
    if not isinstance(raw, bytes | bytearray) or not raw:
        return None
    return {1: "never", 2: "always", 3: "cached"}.get(raw[0])


_backend: list[Pkcs11Backend] = []
_backend_lock = threading.Lock()


def backend() -> Pkcs11Backend:
    """The process's one backend (one worker thread, one login per token)."""
    with _backend_lock:
        if not _backend:
            _backend.append(Pkcs11Backend())
        return _backend[0]


def backend_if_started() -> Pkcs11Backend | None:
    return _backend[0] if _backend else None


def reset_backend() -> None:
    """Log out, unload every module and forget the backend (tests switch SOFTHSM2_CONF)."""
    with _backend_lock:
        b = _backend.pop() if _backend else None
    if b is not None:
        b.close()


def find_module(uri: str, module: str | None) -> str:
    """The module to use: ``module``, the URI's module-path, else the first default module
    that holds a token matching the URI."""
    if module:
        return module
    parsed = parse_uri(uri)
    if parsed.module_path:
        return parsed.module_path
    b = backend()
    candidates = [m for m in default_modules() if os.path.isfile(m)]
    for m in candidates:
        try:
            if b._worker.call(lambda m=m: b._tokens(m, parsed)):  # type: ignore[misc]
                return m
        except GuiApproverError:
            continue
    if not candidates:
        raise ModuleMissing(
            "no PKCS#11 module is installed at the default paths ("
            + ", ".join(default_modules())
            + ")"
        )
    raise TokenMissing(
        "no default PKCS#11 module sees a token matching the URI "
        f"(searched {', '.join(candidates)})"
    )


def pae(pieces: list[bytes]) -> bytes:
    """PASETO's pre-authentication encoding."""
    out = len(pieces).to_bytes(8, "little")
    for p in pieces:
        out += (len(p) & 0x7FFFFFFFFFFFFFFF).to_bytes(8, "little") + p
    return out


def v3_public_digest(point: bytes, payload: bytes, footer: bytes) -> bytes:
    """SHA-384 of PAE(compressed public key, header, payload, footer, implicit="")."""
    return hashlib.sha384(pae([point, b"v3.public.", payload, footer, b""])).digest()

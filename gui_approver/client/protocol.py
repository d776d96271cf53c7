"""Cargo's credential-provider protocol v1 and gui-approver's local IPC framing.

Standard library only: the bridge imports this on cargo's hot path. Everything here is a pure
function of its input; nothing touches a socket or a file except the path helpers at the end.

Cargo's messages are modelled literally (see docs: cargo's ``credential`` crate and
``../shared/docs/cargo-facts.md``): one JSON object per line, requests with ``v``, ``registry``,
``kind`` and kind-specific fields; answers wrapped in ``{"Ok": ...}`` / ``{"Err": ...}``.

Start-up cost matters here: cargo starts the bridge for every request, and the bridge's
imports were most of its run time. So this module imports neither ``typing`` nor
``dataclasses`` (the value classes are small hand-written immutable records,
:class:`_Record`, with what ``@dataclass(frozen=True)`` gave them), nor ``json`` and ``re``
(which pull in ``enum``): JSON goes through the C accelerator ``_json`` that ``json`` itself
uses, with identical results, and the few field checks are plain string tests.
"""

from __future__ import annotations

import _json as _cjson
import os
import stat

from gui_approver.errors import GuiApproverError
from gui_approver.errors import ProtocolError as ProtocolError  # noqa: PLC0414 - re-exported
from gui_approver.secret import Secret

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (mypy knows the name)
if TYPE_CHECKING:
    from typing import Any, ClassVar, Final, NoReturn, TypeVar

    _R = TypeVar("_R", bound="_Record")

PROTOCOL_VERSION: Final = 1
HELLO: Final = '{"v":[1]}'

#: Largest request line we accept from cargo (cargo's are well under 2 KiB).
MAX_REQUEST_BYTES: Final = 64 * 1024
#: Largest IPC message (one line of JSON) in either direction.
MAX_IPC_BYTES: Final = 64 * 1024
IPC_VERSION: Final = 1

MUTATIONS: Final = ("publish", "yank", "unyank", "owners")
OPERATIONS: Final = ("read", *MUTATIONS)
KINDS: Final = ("get", "login", "logout")

_MAX_FIELD = 4096

# Field checks (whole-string, ASCII only; they replace the regular expressions
#   crate name  [A-Za-z0-9][A-Za-z0-9_-]{0,63}
#   cksum       [0-9a-f]{64}
#   version     [0-9]+\.[0-9]+\.[0-9]+(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?  (semver-shaped;
#               cargo has already validated it)
# without the trailing newline their ``$`` used to let through).
_ALNUM = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789")
_NAME_CHARS = _ALNUM | {"_", "-"}
_IDENT_CHARS = _ALNUM | {".", "-"}
_HEX = frozenset("0123456789abcdef")
_DIGITS = frozenset("0123456789")


def valid_crate_name(text: str) -> bool:
    return 0 < len(text) <= 64 and text[0] in _ALNUM and set(text) <= _NAME_CHARS


def valid_cksum(text: str) -> bool:
    return len(text) == 64 and set(text) <= _HEX


def valid_vers(text: str) -> bool:
    if len(text) > 128:
        return False
    rest, plus, build = text.partition("+")
    if plus and not (build and set(build) <= _IDENT_CHARS):
        return False
    core, dash, pre = rest.partition("-")
    if dash and not (pre and set(pre) <= _IDENT_CHARS):
        return False
    numbers = core.split(".")
    return len(numbers) == 3 and all(n and set(n) <= _DIGITS for n in numbers)


# ---------------------------------------------------------------------------------------------
# JSON through ``_json`` (the C half of the ``json`` module): the same scanner and encoder
# ``json.loads``/``json.dumps`` use, without importing ``json`` (and ``re``, ``enum``).


class _ScanContext:
    """The settings ``json.JSONDecoder()`` passes its C scanner (all defaults)."""

    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    parse_constant = {
        "NaN": float("nan"), "Infinity": float("inf"), "-Infinity": float("-inf"),
    }.__getitem__


_scan = _cjson.make_scanner(_ScanContext())  # type: ignore[arg-type]
_JSON_WS = " \t\n\r"


class _JSONError(ValueError):
    """Like ``json.JSONDecodeError`` (``.msg``), for the errors raised here."""

    def __init__(self, msg: str, pos: int) -> None:
        super().__init__(f"{msg}: char {pos}")
        self.msg = msg
        self.pos = pos


def _json_loads(text: str) -> Any:
    """``json.loads(text)`` for a str. The C scanner raises ``json.JSONDecodeError`` itself
    for most malformed input (importing ``json.decoder`` then: errors only)."""
    if text.startswith("\ufeff"):
        raise _JSONError("Unexpected UTF-8 BOM (decode using utf-8-sig)", 0)
    start = len(text) - len(text.lstrip(_JSON_WS))
    try:
        obj, end = _scan(text, start)
    except StopIteration as err:
        raise _JSONError("Expecting value", err.value) from None
    end = len(text) - len(text[end:].lstrip(_JSON_WS))
    if end != len(text):
        raise _JSONError("Extra data", end)
    return obj


def _not_serializable(obj: object) -> NoReturn:
    raise TypeError(f"Object of type {type(obj).__name__} is not JSON serializable")


def _json_dumps(obj: Any, *, ensure_ascii: bool) -> str:
    """``json.dumps(obj, separators=(",", ":"), ensure_ascii=ensure_ascii)``."""
    encode_str = _cjson.encode_basestring_ascii if ensure_ascii else _cjson.encode_basestring
    if isinstance(obj, str):
        return encode_str(obj)
    encoder = _cjson.make_encoder({}, _not_serializable, encode_str, None, ":", ",", False,
                                  False, True)
    return "".join(encoder(obj, 0))




class _Record:
    """An immutable value object: fields are the ``__slots__``, in order; compared, hashed,
    copied and shown by value (fields named in ``_hidden`` are left out of ``repr``)."""

    __slots__: tuple[str, ...] = ()  # in subclasses: the fields, in order (not sorted)
    _hidden: tuple[str, ...] = ()

    def _init(self, *values: object) -> None:
        for name, value in zip(self.__slots__, values, strict=True):
            object.__setattr__(self, name, value)

    def _values(self) -> tuple[object, ...]:
        return tuple(getattr(self, name) for name in self.__slots__)

    def replace(self: _R, **changes: Any) -> _R:
        """A copy with some fields changed (like ``dataclasses.replace``)."""
        unknown = set(changes) - set(self.__slots__)
        if unknown:
            raise TypeError(f"{type(self).__name__} has no field(s) {sorted(unknown)}")
        values = [changes.get(n, v) for n, v in zip(self.__slots__, self._values(), strict=True)]
        return type(self)(*values)

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        assert isinstance(other, _Record)
        return self._values() == other._values()

    def __hash__(self) -> int:
        return hash(self._values())

    def __repr__(self) -> str:
        shown = ", ".join(
            f"{n}={getattr(self, n)!r}" for n in self.__slots__ if n not in self._hidden
        )
        return f"{type(self).__name__}({shown})"

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"cannot assign to field {name!r} of a frozen {type(self).__name__}")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"cannot delete field {name!r} of a frozen {type(self).__name__}")

    def __reduce__(self) -> tuple[Any, tuple[object, ...]]:
        return type(self), self._values()


class RegistryInfo(_Record):
    __slots__ = ("index_url", "name", "headers")  # noqa: RUF023 - field order
    index_url: str
    name: str | None
    headers: tuple[str, ...]

    def __init__(
        self, index_url: str, name: str | None = None, headers: tuple[str, ...] = ()
    ) -> None:
        self._init(index_url, name, headers)

    def label(self) -> str:
        return self.name if self.name else self.index_url

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"index-url": self.index_url}
        if self.name is not None:
            out["name"] = self.name
        if self.headers:
            out["headers"] = list(self.headers)
        return out


class _Operation(_Record):
    """What a ``get`` asks a token for. One class per operation, so a publish without a
    checksum or a read with a crate name cannot be built; handle them with ``match``."""

    #: cargo's name for the operation (``"read"``, ``"publish"``, ...).
    op: ClassVar[str] = ""
    is_mutation: ClassVar[bool] = True

    def describe(self) -> str:
        name = getattr(self, "name", None)
        vers = getattr(self, "vers", None)
        parts = [self.op]
        if name:
            parts.append("of " + name)
            if vers:
                parts.append(vers)
        return " ".join(parts)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"operation": self.op}
        for field in self.__slots__:
            out[field] = getattr(self, field)
        return out


class Read(_Operation):
    """A token for reading the index or downloading (asked before every publish, too)."""

    __slots__ = ()
    op: ClassVar[str] = "read"
    is_mutation: ClassVar[bool] = False

    def __init__(self) -> None:
        self._init()


class Publish(_Operation):
    __slots__ = ("name", "vers", "cksum")  # noqa: RUF023 - field order
    __match_args__ = ("name", "vers", "cksum")
    op: ClassVar[str] = "publish"
    name: str
    vers: str
    cksum: str

    def __init__(self, name: str, vers: str, cksum: str) -> None:
        self._init(name, vers, cksum)


class Yank(_Operation):
    __slots__ = ("name", "vers")
    __match_args__ = ("name", "vers")
    op: ClassVar[str] = "yank"
    name: str
    vers: str

    def __init__(self, name: str, vers: str) -> None:
        self._init(name, vers)


class Unyank(_Operation):
    __slots__ = ("name", "vers")
    __match_args__ = ("name", "vers")
    op: ClassVar[str] = "unyank"
    name: str
    vers: str

    def __init__(self, name: str, vers: str) -> None:
        self._init(name, vers)


class Owners(_Operation):
    """``cargo owner --list/--add/--remove``: cargo does not say which."""

    __slots__ = ("name",)
    __match_args__ = ("name",)
    op: ClassVar[str] = "owners"
    name: str

    def __init__(self, name: str) -> None:
        self._init(name)


Operation = Read | Publish | Yank | Unyank | Owners
Mutation = Publish | Yank | Unyank | Owners


class Get(_Record):
    """``kind: get``: a token for one operation."""

    __slots__ = ("registry", "operation", "args")  # noqa: RUF023 - field order
    kind: ClassVar[str] = "get"
    registry: RegistryInfo
    operation: Operation
    args: tuple[str, ...]

    def __init__(
        self, registry: RegistryInfo, operation: Operation, args: tuple[str, ...] = ()
    ) -> None:
        self._init(registry, operation, args)

    @property
    def is_mutation(self) -> bool:
        return self.operation.is_mutation

    # Read-only views of the operation's fields (None where the operation has none).
    @property
    def name(self) -> str | None:
        return getattr(self.operation, "name", None)

    @property
    def vers(self) -> str | None:
        return getattr(self.operation, "vers", None)

    @property
    def cksum(self) -> str | None:
        return getattr(self.operation, "cksum", None)

    def describe(self) -> str:
        """Short plain-text description, e.g. ``publish of foo 1.2.3``."""
        return self.operation.describe()

    def to_json(self) -> dict[str, Any]:
        """The request as cargo sends it."""
        out: dict[str, Any] = {"v": PROTOCOL_VERSION, "registry": self.registry.to_json()}
        out["kind"] = self.kind
        out.update(self.operation.to_json())
        if self.args:
            out["args"] = list(self.args)
        return out


class Login(_Record):
    """``kind: login``. ``token`` (only when the user gave one) is a :class:`Secret`."""

    __slots__ = ("registry", "token", "login_url", "args")  # noqa: RUF023 - field order
    _hidden = ("token",)
    kind: ClassVar[str] = "login"
    is_mutation: ClassVar[bool] = False
    registry: RegistryInfo
    token: Secret | None
    login_url: str | None
    args: tuple[str, ...]

    def __init__(
        self,
        registry: RegistryInfo,
        token: Secret | None = None,
        login_url: str | None = None,
        args: tuple[str, ...] = (),
    ) -> None:
        self._init(registry, token, login_url, args)

    def describe(self) -> str:
        return f"login for registry {self.registry.label()}"

    def to_json(self) -> dict[str, Any]:
        """The request as cargo sent it, the token left out."""
        out: dict[str, Any] = {"v": PROTOCOL_VERSION, "registry": self.registry.to_json()}
        out["kind"] = self.kind
        if self.login_url is not None:
            out["login-url"] = self.login_url
        if self.args:
            out["args"] = list(self.args)
        return out


class Logout(_Record):
    __slots__ = ("registry", "args")  # noqa: RUF023 - field order
    kind: ClassVar[str] = "logout"
    is_mutation: ClassVar[bool] = False
    registry: RegistryInfo
    args: tuple[str, ...]

    def __init__(self, registry: RegistryInfo, args: tuple[str, ...] = ()) -> None:
        self._init(registry, args)

    def describe(self) -> str:
        return f"logout for registry {self.registry.label()}"

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"v": PROTOCOL_VERSION, "registry": self.registry.to_json()}
        out["kind"] = self.kind
        if self.args:
            out["args"] = list(self.args)
        return out


CredentialRequest = Get | Login | Logout


def _str_field(obj: dict[str, Any], key: str, *, required: bool, where: str) -> str | None:
    value = obj.get(key)
    if value is None:
        if required:
            raise ProtocolError(f"{where} is missing the field {key!r}")
        return None
    if not isinstance(value, str):
        raise ProtocolError(f"{where} field {key!r} must be a string")
    if len(value) > _MAX_FIELD:
        raise ProtocolError(f"{where} field {key!r} is too long")
    return value


def _loads_object(data: bytes | str, limit: int, what: str) -> dict[str, Any]:
    if isinstance(data, str):
        data = data.encode("utf-8", "surrogatepass")
    if len(data) > limit:
        raise ProtocolError(f"{what} is too large ({len(data)} bytes, limit {limit})")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise ProtocolError(f"{what} is not valid UTF-8") from None
    text = text.strip()
    if not text:
        raise ProtocolError(f"{what} is empty")
    try:
        obj = _json_loads(text)
    except RecursionError:
        raise ProtocolError(f"{what} is nested too deeply") from None
    except ValueError as exc:  # json.JSONDecodeError, _JSONError, int() over 4300 digits
        msg = getattr(exc, "msg", None)
        detail = f" ({msg})" if isinstance(msg, str) else ""
        raise ProtocolError(f"{what} is not valid JSON{detail}") from None
    if not isinstance(obj, dict):
        raise ProtocolError(f"{what} must be a JSON object")
    return obj


def parse_request(data: bytes | str) -> CredentialRequest:
    """Parse one request line from cargo. Unknown fields are ignored.

    Raises :class:`ProtocolError` with a user-facing sentence for anything else.
    """
    return request_from_json(load_request(data))


def load_request(data: bytes | str) -> dict[str, Any]:
    """The JSON object of one request line from cargo (size, UTF-8 and JSON checked only)."""
    return _loads_object(data, MAX_REQUEST_BYTES, "the request from cargo")


def request_from_json(obj: dict[str, Any]) -> CredentialRequest:
    where = "the request from cargo"
    if "v" not in obj:
        raise ProtocolError(f"{where} has no protocol version 'v'")
    v = obj["v"]
    if type(v) is not int or v != PROTOCOL_VERSION:
        raise ProtocolError(
            f"unsupported credential protocol version {v!r}; gui-approver speaks version 1"
        )
    reg = obj.get("registry")
    if not isinstance(reg, dict):
        raise ProtocolError(f"{where} has no 'registry' object")
    index_url = _str_field(reg, "index-url", required=True, where="registry")
    assert index_url is not None
    if not index_url:
        raise ProtocolError("registry field 'index-url' is empty")
    name = _str_field(reg, "name", required=False, where="registry")
    headers_raw = reg.get("headers", [])
    if not isinstance(headers_raw, list) or not all(isinstance(h, str) for h in headers_raw):
        raise ProtocolError("registry field 'headers' must be a list of strings")
    registry = RegistryInfo(index_url=index_url, name=name, headers=tuple(headers_raw[:64]))

    kind = _str_field(obj, "kind", required=True, where=where)
    args_raw = obj.get("args", [])
    if not isinstance(args_raw, list) or not all(isinstance(a, str) for a in args_raw):
        raise ProtocolError(f"{where} field 'args' must be a list of strings")
    args = tuple(args_raw[:64])

    match kind:
        case "get":
            return Get(registry, _operation(obj), args)
        case "login":
            token = _str_field(obj, "token", required=False, where="the login request")
            login_url = _str_field(obj, "login-url", required=False, where="the login request")
            return Login(registry, Secret(token) if token else None, login_url, args)
        case "logout":
            return Logout(registry, args)
    raise ProtocolError(f"unsupported request kind {kind!r}; expected get, login or logout")


def _operation(obj: dict[str, Any]) -> Operation:
    where = "the request from cargo"
    operation = _str_field(obj, "operation", required=True, where=where)
    if operation == "read":
        return Read()
    if operation not in MUTATIONS:
        raise ProtocolError(
            f"unsupported operation {operation!r}; expected one of {', '.join(OPERATIONS)}"
        )
    where = f"the {operation} request"
    crate = _str_field(obj, "name", required=True, where=where)
    assert crate is not None
    if not valid_crate_name(crate):
        raise ProtocolError(_crate_name_problem(crate))
    if operation == "owners":
        return Owners(crate)
    vers = _str_field(obj, "vers", required=True, where=where)
    assert vers is not None
    if not valid_vers(vers):
        raise ProtocolError(f"invalid version {vers[:80]!r}")
    if operation == "yank":
        return Yank(crate, vers)
    if operation == "unyank":
        return Unyank(crate, vers)
    cksum = _str_field(obj, "cksum", required=True, where=where)
    assert cksum is not None
    if not valid_cksum(cksum):
        raise ProtocolError("invalid cksum: expected 64 lowercase hex digits")
    return Publish(crate, vers, cksum)


def _crate_name_problem(crate: str) -> str:
    if len(crate) > 64:
        return f"invalid crate name {crate[:80]!r}: longer than 64 characters"
    return f"invalid crate name {crate[:80]!r}"


# ---------------------------------------------------------------------------------------------
# Responses (always wrapped, exactly as cargo expects)


def ok_get(token: str, cache: str, *, expiration: int | None = None) -> dict[str, Any]:
    if cache not in ("never", "session", "expires"):
        raise ValueError(f"bad cache control {cache!r}")
    body: dict[str, Any] = {"kind": "get", "token": token, "cache": cache}
    if cache == "expires":
        if expiration is None:
            raise ValueError("cache 'expires' needs an expiration")
        body["expiration"] = expiration
    body["operation_independent"] = False
    return {"Ok": body}


def ok_login() -> dict[str, Any]:
    return {"Ok": {"kind": "login"}}


def ok_logout() -> dict[str, Any]:
    return {"Ok": {"kind": "logout"}}


def err_not_found() -> dict[str, Any]:
    return {"Err": {"kind": "not-found"}}


def err_url_not_supported() -> dict[str, Any]:
    return {"Err": {"kind": "url-not-supported"}}


def err_operation_not_supported() -> dict[str, Any]:
    return {"Err": {"kind": "operation-not-supported"}}


def cargo_error(exc: GuiApproverError) -> dict[str, Any]:
    """The one conversion of an error to cargo's answer: the hint goes into the message
    (cargo shows ``caused-by`` entries as causes, not as advice)."""
    return err_other(f"gui-approver: {exc.full()}")


def err_other(message: str, caused_by: list[str] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"kind": "other", "message": message}
    if caused_by:
        body["caused-by"] = list(caused_by)
    return {"Err": body}


def encode(obj: dict[str, Any]) -> str:
    """Compact one-line JSON, as cargo writes it."""
    return _json_dumps(obj, ensure_ascii=False)


def validate_response(obj: Any) -> dict[str, Any]:
    """Check that ``obj`` is a well-formed cargo response; raise ProtocolError otherwise."""
    if not isinstance(obj, dict) or len(obj) != 1:
        raise ProtocolError("the app's answer is not a credential response")
    (tag, body), = obj.items()
    if not isinstance(body, dict) or not isinstance(body.get("kind"), str):
        raise ProtocolError("the app's answer is not a credential response")
    kind = body["kind"]
    if tag == "Ok":
        if kind == "get":
            if not isinstance(body.get("token"), str) or body.get("cache") not in (
                "never", "session", "expires"
            ) or body.get("operation_independent") is not False:
                raise ProtocolError("the app's token answer is malformed")
            if body["cache"] == "expires" and type(body.get("expiration")) is not int:
                raise ProtocolError("the app's token answer is malformed")
        elif kind not in ("login", "logout"):
            raise ProtocolError("the app's answer has an unknown kind")
    elif tag == "Err":
        if kind == "other":
            if not isinstance(body.get("message"), str):
                raise ProtocolError("the app's error answer has no message")
            caused = body.get("caused-by", [])
            if not isinstance(caused, list) or not all(isinstance(c, str) for c in caused):
                raise ProtocolError("the app's error answer is malformed")
        elif kind not in ("not-found", "url-not-supported", "operation-not-supported"):
            raise ProtocolError("the app's answer has an unknown error kind")
    else:
        raise ProtocolError("the app's answer is neither Ok nor Err")
    return obj


# ---------------------------------------------------------------------------------------------
# IPC between the bridge and the app: one versioned JSON object per line, both ways.
#
#   bridge -> app   {"ipc":1,"type":"credential","request":{...cargo request...},
#                    "provenance":{"pid":N,"ppid":N,"cwd":"..."}}
#                   {"ipc":1,"type":"ping"}
#                   {"ipc":1,"type":"lock"}       (forget unlocked keys; never approves)
#                   {"ipc":1,"type":"unlock","registry":"NAME","secret":"..."}
#                                 (a passphrase or token PIN for one key; never approves)
#                   {"ipc":1,"type":"show"}       (bring the app's window forward; nothing else)
#   app -> bridge   {"ipc":1,"type":"ack","timeout":120}     (request queued; deadline in s)
#                   {"ipc":1,"type":"response","response":{...cargo response...},"notice":"..."}
#                   {"ipc":1,"type":"pong","pid":N,"version":"..."}
#                   {"ipc":1,"type":"unlocked","ok":true|false,"message":"..."}


class Provenance(_Record):
    __slots__ = ("pid", "ppid", "cwd")  # noqa: RUF023 - field order
    pid: int | None
    ppid: int | None
    cwd: str | None

    def __init__(
        self, pid: int | None = None, ppid: int | None = None, cwd: str | None = None
    ) -> None:
        self._init(pid, ppid, cwd)

    def to_json(self) -> dict[str, Any]:
        return {"pid": self.pid, "ppid": self.ppid, "cwd": self.cwd}


class IpcRequest(_Record):
    __slots__ = ("type", "request", "provenance", "registry", "secret")  # noqa: RUF023
    type: str  # "credential" | "ping" | "lock" | "unlock"
    request: CredentialRequest | None
    provenance: Provenance
    registry: str | None  # "unlock": the registry whose key to unlock
    secret: Secret | None  # "unlock": its passphrase or PIN (never shown by repr)

    def __init__(
        self,
        type: str,
        request: CredentialRequest | None = None,
        provenance: Provenance | None = None,
        registry: str | None = None,
        secret: Secret | None = None,
    ) -> None:
        self._init(type, request, provenance if provenance is not None else Provenance(),
                   registry, secret)


#: Longest passphrase or PIN an "unlock" message may carry.
MAX_UNLOCK_SECRET = 1024


def encode_ipc(obj: dict[str, Any]) -> bytes:
    line = _json_dumps({"ipc": IPC_VERSION, **obj}, ensure_ascii=True).encode() + b"\n"
    if len(line) > MAX_IPC_BYTES:
        raise ProtocolError("IPC message too large")
    return line


def credential_ipc_message(raw_request: dict[str, Any], provenance: Provenance) -> bytes:
    return encode_ipc(
        {"type": "credential", "request": raw_request, "provenance": provenance.to_json()}
    )


def _int_or_none(value: Any) -> int | None:
    return value if type(value) is int and 0 <= value < 2**31 else None


def parse_ipc_request(data: bytes) -> IpcRequest:
    """Parse one message from a bridge. Pure; raises ProtocolError on anything odd."""
    obj = _loads_object(data, MAX_IPC_BYTES, "IPC message")
    if obj.get("ipc") != IPC_VERSION or type(obj.get("ipc")) is not int:
        raise ProtocolError(f"unsupported IPC version {obj.get('ipc')!r}")
    typ = obj.get("type")
    if typ == "ping":
        return IpcRequest(type="ping")
    if typ == "lock":  # only ever reduces what the app can do: forget unlocked keys
        return IpcRequest(type="lock")
    if typ == "unlock":  # a secret for one key; approves nothing
        registry, secret = obj.get("registry"), obj.get("secret")
        if not isinstance(registry, str) or not 0 < len(registry) <= _MAX_FIELD:
            raise ProtocolError("IPC unlock message has no registry name")
        if not isinstance(secret, str) or not 0 < len(secret) <= MAX_UNLOCK_SECRET:
            # Never echo the value.
            raise ProtocolError("IPC unlock message has no usable secret")
        return IpcRequest(type="unlock", registry=registry, secret=Secret(secret))
    if typ == "show":  # a second launch: raise the running app's window, decide nothing
        return IpcRequest(type="show")
    if typ != "credential":
        raise ProtocolError(f"unknown IPC message type {typ!r}")
    raw = obj.get("request")
    if not isinstance(raw, dict):
        raise ProtocolError("IPC credential message has no request object")
    request = request_from_json(raw)
    prov_raw = obj.get("provenance")
    prov = Provenance()
    if isinstance(prov_raw, dict):
        cwd = prov_raw.get("cwd")
        prov = Provenance(
            pid=_int_or_none(prov_raw.get("pid")),
            ppid=_int_or_none(prov_raw.get("ppid")),
            cwd=cwd if isinstance(cwd, str) and len(cwd) <= _MAX_FIELD else None,
        )
    return IpcRequest(type="credential", request=request, provenance=prov)


def parse_ipc_reply(data: bytes) -> dict[str, Any]:
    """Parse one message from the app (for the bridge)."""
    obj = _loads_object(data, MAX_IPC_BYTES, "the app's reply")
    if obj.get("ipc") != IPC_VERSION or type(obj.get("ipc")) is not int:
        raise ProtocolError(f"the app speaks IPC version {obj.get('ipc')!r}, expected 1")
    typ = obj.get("type")
    if typ == "ack":
        timeout = obj.get("timeout")
        if not isinstance(timeout, int | float) or isinstance(timeout, bool) or not (
            0 < timeout <= 86400
        ):
            raise ProtocolError("the app's acknowledgement is malformed")
        return obj
    if typ == "response":
        validate_response(obj.get("response"))
        notice = obj.get("notice")
        if notice is not None and not isinstance(notice, str):
            raise ProtocolError("the app's notice is malformed")
        return obj
    if typ in ("pong", "locked", "shown"):
        return obj
    if typ == "unlocked":
        message = obj.get("message")
        if type(obj.get("ok")) is not bool or (message is not None
                                               and not isinstance(message, str)):
            raise ProtocolError("the app's unlock answer is malformed")
        return obj
    raise ProtocolError(f"unknown reply type {typ!r} from the app")


# ---------------------------------------------------------------------------------------------
# Where the socket lives.

SOCKET_NAME: Final = "ipc.sock"


def socket_dir(env: dict[str, str] | None = None) -> str:
    """``$XDG_RUNTIME_DIR/gui-approver``, else a per-user dir under the cache dir."""
    env = dict(os.environ) if env is None else env
    override = env.get("GUI_APPROVER_RUNTIME_DIR")
    if override:
        return override
    runtime = env.get("XDG_RUNTIME_DIR")
    if runtime and os.path.isabs(runtime) and os.path.isdir(runtime):
        return os.path.join(runtime, "gui-approver")
    cache = env.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(cache, "gui-approver", f"run-{os.getuid()}")


def socket_path(env: dict[str, str] | None = None) -> str:
    return os.path.join(socket_dir(env), SOCKET_NAME)


def check_private_dir(path: str) -> str | None:
    """Return why ``path`` is unsafe for our socket, or None when it is ours and 0700."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return f"{path} does not exist"
    if not stat.S_ISDIR(st.st_mode):
        return f"{path} is not a directory"
    if st.st_uid != os.getuid():
        return f"{path} is owned by uid {st.st_uid}, not by you (uid {os.getuid()})"
    if st.st_mode & 0o077:
        return f"{path} is accessible by other users (mode {stat.S_IMODE(st.st_mode):o})"
    return None

"""Cargo's credential-provider protocol v1, modelled as cargo models it.

Standard library only: the bridge imports this on cargo's hot path. Everything here is a pure
function of its input. The IPC framing is in :mod:`framing`, the socket's place in
:mod:`paths`, the record and JSON machinery in :mod:`records`.

Cargo's messages are modelled literally (cargo's ``credential`` crate): one JSON object per
line, requests with ``v``, ``registry``, ``kind`` and kind-specific fields, parsed into a closed
union (``Get(Read | Publish | Yank | Unyank | Owners) | Login | Logout``) handled with
``match``; answers wrapped in ``{"Ok": ...}`` / ``{"Err": ...}``.

Start-up cost matters here: cargo starts the bridge for every request, so nothing here imports
``typing``, ``dataclasses``, ``json`` or ``re`` (see :mod:`records`), and the few field checks
are plain string tests.
"""

from __future__ import annotations

from gui_approver.client.records import Record, json_dumps, load_object
from gui_approver.errors import GuiApproverError
from gui_approver.errors import ProtocolError as ProtocolError  # noqa: PLC0414 - re-exported
from gui_approver.secret import Secret

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (mypy knows the name)
if TYPE_CHECKING:
    from typing import Any, ClassVar, Final

PROTOCOL_VERSION: Final = 1
HELLO: Final = '{"v":[1]}'

#: Largest request line we accept from cargo (cargo's are well under 2 KiB).
MAX_REQUEST_BYTES: Final = 64 * 1024

MUTATIONS: Final = ("publish", "yank", "unyank", "owners")
OPERATIONS: Final = ("read", *MUTATIONS)
KINDS: Final = ("get", "login", "logout")

MAX_FIELD = 4096

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


class RegistryInfo(Record):
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


class _Operation(Record):
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


class Get(Record):
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


class Login(Record):
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


class Logout(Record):
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
    if len(value) > MAX_FIELD:
        raise ProtocolError(f"{where} field {key!r} is too long")
    return value


def parse_request(data: bytes | str) -> CredentialRequest:
    """Parse one request line from cargo. Unknown fields are ignored.

    Raises :class:`ProtocolError` with a user-facing sentence for anything else.
    """
    return request_from_json(load_request(data))


def load_request(data: bytes | str) -> dict[str, Any]:
    """The JSON object of one request line from cargo (size, UTF-8 and JSON checked only)."""
    return load_object(data, MAX_REQUEST_BYTES, "the request from cargo")


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
    return json_dumps(obj, ensure_ascii=False)


def validate_response(obj: Any) -> dict[str, Any]:
    """Check that ``obj`` is a well-formed cargo response; raise ProtocolError otherwise."""
    if not isinstance(obj, dict) or len(obj) != 1:
        raise ProtocolError("the app's answer is not a credential response")
    ((tag, body),) = obj.items()
    if not isinstance(body, dict) or not isinstance(body.get("kind"), str):
        raise ProtocolError("the app's answer is not a credential response")
    kind = body["kind"]
    if tag == "Ok":
        if kind == "get":
            if (
                not isinstance(body.get("token"), str)
                or body.get("cache") not in ("never", "session", "expires")
                or body.get("operation_independent") is not False
            ):
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

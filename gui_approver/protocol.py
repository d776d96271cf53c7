"""Cargo's credential-provider protocol v1 and gui-approver's local IPC framing.

Standard library only: the bridge imports this on cargo's hot path. Everything here is a pure
function of its input; nothing touches a socket or a file except the path helpers at the end.

Cargo's messages are modelled literally (see docs: cargo's ``credential`` crate and
``../shared/docs/cargo-facts.md``): one JSON object per line, requests with ``v``, ``registry``,
``kind`` and kind-specific fields; answers wrapped in ``{"Ok": ...}`` / ``{"Err": ...}``.
"""

from __future__ import annotations

import json
import os
import re
import stat
from dataclasses import dataclass, field
from typing import Any, Final

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

_CRATE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
_CKSUM = re.compile(r"^[0-9a-f]{64}$")
# semver with optional pre-release and build metadata; cargo has already validated it.
_VERS = re.compile(r"^[0-9]+\.[0-9]+\.[0-9]+(?:-[0-9A-Za-z.-]+)?(?:\+[0-9A-Za-z.-]+)?$")
_MAX_FIELD = 4096


class ProtocolError(ValueError):
    """Input that does not follow the protocol. ``str()`` is a sentence for the user."""


class Secret:
    """A string that never shows itself in ``repr``/``str``/logs; ``.expose()`` to use it."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def expose(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret(REDACTED)"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(("Secret", self._value))


@dataclass(frozen=True)
class RegistryInfo:
    index_url: str
    name: str | None = None
    headers: tuple[str, ...] = ()

    def label(self) -> str:
        return self.name if self.name else self.index_url

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"index-url": self.index_url}
        if self.name is not None:
            out["name"] = self.name
        if self.headers:
            out["headers"] = list(self.headers)
        return out


@dataclass(frozen=True)
class CredentialRequest:
    """One request from cargo. ``token`` (login only) is a :class:`Secret`."""

    registry: RegistryInfo
    kind: str
    operation: str | None = None
    name: str | None = None
    vers: str | None = None
    cksum: str | None = None
    args: tuple[str, ...] = ()
    token: Secret | None = field(default=None, repr=False)
    login_url: str | None = None

    @property
    def is_mutation(self) -> bool:
        return self.kind == "get" and self.operation in MUTATIONS

    def describe(self) -> str:
        """Short plain-text description, e.g. ``publish of foo 1.2.3``."""
        if self.kind != "get":
            return f"{self.kind} for registry {self.registry.label()}"
        parts = [self.operation or "?"]
        if self.name:
            parts.append("of " + self.name)
            if self.vers:
                parts.append(self.vers)
        return " ".join(parts)

    def to_json(self) -> dict[str, Any]:
        """The request as cargo would send it (the login token is left out)."""
        out: dict[str, Any] = {"v": PROTOCOL_VERSION, "registry": self.registry.to_json()}
        out["kind"] = self.kind
        for key, value in (
            ("operation", self.operation),
            ("name", self.name),
            ("vers", self.vers),
            ("cksum", self.cksum),
            ("login-url", self.login_url),
        ):
            if value is not None:
                out[key] = value
        if self.args:
            out["args"] = list(self.args)
        return out


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
        obj = json.loads(text)
    except RecursionError:
        raise ProtocolError(f"{what} is nested too deeply") from None
    except json.JSONDecodeError as exc:
        raise ProtocolError(f"{what} is not valid JSON ({exc.msg})") from None
    except ValueError:
        raise ProtocolError(f"{what} is not valid JSON") from None
    if not isinstance(obj, dict):
        raise ProtocolError(f"{what} must be a JSON object")
    return obj


def parse_request(data: bytes | str) -> CredentialRequest:
    """Parse one request line from cargo. Unknown fields are ignored.

    Raises :class:`ProtocolError` with a user-facing sentence for anything else.
    """
    obj = _loads_object(data, MAX_REQUEST_BYTES, "the request from cargo")
    return request_from_json(obj)


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

    if kind == "get":
        operation = _str_field(obj, "operation", required=True, where=where)
        if operation not in OPERATIONS:
            raise ProtocolError(
                f"unsupported operation {operation!r}; expected one of {', '.join(OPERATIONS)}"
            )
        crate = vers = cksum = None
        if operation in MUTATIONS:
            crate = _str_field(obj, "name", required=True, where=f"the {operation} request")
            assert crate is not None
            if not _CRATE_NAME.match(crate):
                raise ProtocolError(f"invalid crate name {crate[:80]!r}")
            if operation != "owners":
                vers = _str_field(obj, "vers", required=True, where=f"the {operation} request")
                assert vers is not None
                if not _VERS.match(vers) or len(vers) > 128:
                    raise ProtocolError(f"invalid version {vers[:80]!r}")
            if operation == "publish":
                cksum = _str_field(obj, "cksum", required=True, where="the publish request")
                assert cksum is not None
                if not _CKSUM.match(cksum):
                    raise ProtocolError("invalid cksum: expected 64 lowercase hex digits")
        return CredentialRequest(
            registry=registry, kind=kind, operation=operation, name=crate, vers=vers,
            cksum=cksum, args=args,
        )
    if kind == "login":
        token = _str_field(obj, "token", required=False, where="the login request")
        login_url = _str_field(obj, "login-url", required=False, where="the login request")
        return CredentialRequest(
            registry=registry, kind=kind, args=args,
            token=Secret(token) if token else None, login_url=login_url,
        )
    if kind == "logout":
        return CredentialRequest(registry=registry, kind=kind, args=args)
    raise ProtocolError(f"unsupported request kind {kind!r}; expected get, login or logout")


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


def err_other(message: str, caused_by: list[str] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"kind": "other", "message": message}
    if caused_by:
        body["caused-by"] = list(caused_by)
    return {"Err": body}


def encode(obj: dict[str, Any]) -> str:
    """Compact one-line JSON, as cargo writes it."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


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
#   app -> bridge   {"ipc":1,"type":"ack","timeout":120}     (request queued; deadline in s)
#                   {"ipc":1,"type":"response","response":{...cargo response...},"notice":"..."}
#                   {"ipc":1,"type":"pong","pid":N,"version":"..."}


@dataclass(frozen=True)
class Provenance:
    pid: int | None = None
    ppid: int | None = None
    cwd: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"pid": self.pid, "ppid": self.ppid, "cwd": self.cwd}


@dataclass(frozen=True)
class IpcRequest:
    type: str  # "credential" | "ping"
    request: CredentialRequest | None = None
    provenance: Provenance = Provenance()


def encode_ipc(obj: dict[str, Any]) -> bytes:
    line = json.dumps({"ipc": IPC_VERSION, **obj}, separators=(",", ":")).encode() + b"\n"
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
    if typ == "pong":
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

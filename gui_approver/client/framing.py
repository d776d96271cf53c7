"""The IPC between the bridge and the app: one versioned JSON object per line, both ways.

Standard library only (the bridge imports it); pure functions of their input.
"""

from __future__ import annotations

from gui_approver.client.protocol import (
    MAX_FIELD,
    CredentialRequest,
    request_from_json,
    validate_response,
)
from gui_approver.client.records import Record, json_dumps, load_object
from gui_approver.errors import ProtocolError
from gui_approver.secret import Secret

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (mypy knows the name)
if TYPE_CHECKING:
    from typing import Any, Final

#: Largest IPC message (one line of JSON) in either direction.
MAX_IPC_BYTES: Final = 64 * 1024
IPC_VERSION: Final = 1

# Messages:
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


class Provenance(Record):
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


class IpcRequest(Record):
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
        self._init(
            type, request, provenance if provenance is not None else Provenance(), registry, secret
        )


#: Longest passphrase or PIN an "unlock" message may carry.
MAX_UNLOCK_SECRET = 1024


def encode_ipc(obj: dict[str, Any]) -> bytes:
    line = json_dumps({"ipc": IPC_VERSION, **obj}, ensure_ascii=True).encode() + b"\n"
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
    obj = load_object(data, MAX_IPC_BYTES, "IPC message")
    if obj.get("ipc") != IPC_VERSION or type(obj.get("ipc")) is not int:
        raise ProtocolError(f"unsupported IPC version {obj.get('ipc')!r}")
    typ = obj.get("type")
    if typ == "ping":
        return IpcRequest(type="ping")
    if typ == "lock":  # only ever reduces what the app can do: forget unlocked keys
        return IpcRequest(type="lock")
    if typ == "unlock":  # a secret for one key; approves nothing
        registry, secret = obj.get("registry"), obj.get("secret")
        if not isinstance(registry, str) or not 0 < len(registry) <= MAX_FIELD:
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
            cwd=cwd if isinstance(cwd, str) and len(cwd) <= MAX_FIELD else None,
        )
    return IpcRequest(type="credential", request=request, provenance=prov)


def parse_ipc_reply(data: bytes) -> dict[str, Any]:
    """Parse one message from the app (for the bridge)."""
    obj = load_object(data, MAX_IPC_BYTES, "the app's reply")
    if obj.get("ipc") != IPC_VERSION or type(obj.get("ipc")) is not int:
        raise ProtocolError(f"the app speaks IPC version {obj.get('ipc')!r}, expected 1")
    typ = obj.get("type")
    if typ == "ack":
        timeout = obj.get("timeout")
        if (
            not isinstance(timeout, int | float)
            or isinstance(timeout, bool)
            or not (0 < timeout <= 86400)
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
        if type(obj.get("ok")) is not bool or (
            message is not None and not isinstance(message, str)
        ):
            raise ProtocolError("the app's unlock answer is malformed")
        return obj
    raise ProtocolError(f"unknown reply type {typ!r} from the app")

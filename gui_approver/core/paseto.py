"""RFC 3231 tokens, built exactly as cargo's own ``cargo:paseto`` builds them.

PASETO ``v3.public``; payload is compact JSON with the keys in the order
``iat, sub, mutation, name, vers, cksum`` (absent ones omitted); footer is
``{"url":<index-url as received>,"kip":<k3.pid>}``; no implicit assertion.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from gui_approver.client.protocol import MUTATIONS, Get, Owners, Publish, Read, Unyank, Yank

if TYPE_CHECKING:
    from gui_approver.core.keys.store import SigningKey


def format_iat(now_ns: int | None = None) -> str:
    """RFC 3339 UTC with ``Z`` and up to 9 fraction digits, trailing zeros trimmed."""
    ns = time.time_ns() if now_ns is None else now_ns
    secs, frac = divmod(ns, 1_000_000_000)
    base = datetime.fromtimestamp(secs, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S")
    if frac:
        base += "." + f"{frac:09d}".rstrip("0")
    return base + "Z"


def _compact(obj: dict[str, Any]) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def build_claims(
    *,
    iat: str,
    subject: str | None = None,
    mutation: str | None = None,
    name: str | None = None,
    vers: str | None = None,
    cksum: str | None = None,
) -> bytes:
    if mutation is not None and mutation not in MUTATIONS:
        raise ValueError(f"unknown mutation {mutation!r}")
    claims: dict[str, Any] = {"iat": iat}
    if subject is not None:
        claims["sub"] = subject
    if mutation is not None:
        claims["mutation"] = mutation
        if name is not None:
            claims["name"] = name
        if vers is not None:
            claims["vers"] = vers
        if cksum is not None:
            claims["cksum"] = cksum
    return _compact(claims)


def build_footer(index_url: str, kip: str) -> bytes:
    return _compact({"url": index_url, "kip": kip})


def claims_for_request(request: Get, *, subject: str | None, now_ns: int | None = None) -> bytes:
    iat = format_iat(now_ns)
    match request.operation:
        case Read():
            return build_claims(iat=iat, subject=subject)
        case Publish(name, vers, cksum):
            return build_claims(
                iat=iat, subject=subject, mutation="publish", name=name, vers=vers, cksum=cksum
            )
        case Yank(name, vers) | Unyank(name, vers):
            return build_claims(
                iat=iat, subject=subject, mutation=request.operation.op, name=name, vers=vers
            )
        case Owners(name):
            return build_claims(iat=iat, subject=subject, mutation="owners", name=name)
    raise ValueError(f"cannot sign {request.describe()}")  # unreachable: the union is closed


def sign_request(
    key: SigningKey, request: Get, *, subject: str | None, now_ns: int | None = None
) -> str:
    """The ``v3.public`` token for ``request``, bound to the index URL as cargo sent it."""
    payload = claims_for_request(request, subject=subject, now_ns=now_ns)
    footer = build_footer(request.registry.index_url, key.kip)
    return key.sign(payload, footer)

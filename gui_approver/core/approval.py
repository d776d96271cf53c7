"""The approval interface and the policies around it. Qt-free.

An :class:`Approver` is asked before every signature of a mutation. It is called from a
worker thread and blocks until a decision or its timeout. Anything but an explicit
approval -- an exception, a timeout, a closed dialog, the app quitting -- is a denial.
"""

from __future__ import annotations

import ipaddress
import itertools
import logging
import threading
import time
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Protocol
from urllib.parse import urlsplit

from gui_approver.client.framing import Provenance
from gui_approver.client.protocol import CredentialRequest
from gui_approver.core.keys.bearer import TokenRecord
from gui_approver.core.keys.store import KeyRecord

if TYPE_CHECKING:
    from gui_approver.review.request import RequestReview

log = logging.getLogger(__name__)
_ids = itertools.count(1)


class Action(StrEnum):
    """What approving a request does: sign/release a token, store a credential (login), or
    delete one (logout)."""

    SIGN = "sign"
    LOGIN = "login"
    LOGOUT = "logout"


@dataclass(frozen=True)
class ApprovalRequest:
    request: CredentialRequest
    provenance: Provenance
    key: KeyRecord | None
    action: Action = Action.SIGN
    timeout: float = 120.0
    received: float = field(default_factory=time.monotonic)
    id: int = field(default_factory=lambda: next(_ids))
    #: what the dialog can show about the request (who asked, the verified contents, the
    #: changes since the last approved version, the workspace list); None: not inspected
    review: RequestReview | None = None
    #: set when the requester went away (cargo interrupted): the approver stops asking
    gone: threading.Event | None = None
    #: the registry takes a bearer token: approving hands cargo the token itself
    bearer: TokenRecord | None = None
    #: for ``login``/``logout``: what approving will do, in one sentence
    detail: str | None = None

    def summary(self) -> str:
        if self.detail is not None:
            return self.detail
        if self.action is Action.LOGOUT:
            return f"delete the key for registry {self.request.registry.label()}"
        return self.request.describe()


@dataclass(frozen=True)
class Decision:
    approved: bool
    reason: str
    #: the user chose "Approve all listed" (the review's workspace list); only meaningful
    #: together with ``approved``
    approve_all: bool = False

    @classmethod
    def approve(cls, reason: str = "approved") -> Decision:
        return cls(True, reason)

    @classmethod
    def deny(cls, reason: str) -> Decision:
        return cls(False, reason)


class Approver(Protocol):
    def decide(self, request: ApprovalRequest) -> Decision:
        """Block until the user decides or ``request.timeout`` passes. Called off the GUI
        thread. Must never approve without a human (or an explicit policy) saying so."""
        ...


def decide_safely(approver: Approver, request: ApprovalRequest) -> Decision:
    """Ask ``approver``; anything but a well-formed approval is a denial."""
    try:
        decision = approver.decide(request)
    except Exception as exc:  # noqa: BLE001 - fail closed on any error
        log.warning("approver failed (%s); denying request %d", type(exc).__name__, request.id)
        return Decision.deny(f"the approval failed ({type(exc).__name__})")
    if not isinstance(decision, Decision):
        return Decision.deny("the approval gave no decision")
    if decision.approved is not True:  # only True approves: not 1, not "yes"
        reason = decision.reason if isinstance(decision.reason, str) else "denied"
        return Decision.deny(reason)
    return decision


class DenyAll:
    """An approver that denies everything (used when no UI is available)."""

    def __init__(self, reason: str = "no approval dialog is available") -> None:
        self.reason = reason

    def decide(self, request: ApprovalRequest) -> Decision:
        return Decision.deny(self.reason)


def registry_host(index_url: str) -> str | None:
    url = index_url
    for prefix in ("sparse+", "registry+"):
        if url.startswith(prefix):
            url = url[len(prefix) :]
    try:
        host = urlsplit(url).hostname
    except ValueError:
        return None
    return host


def is_loopback_index(index_url: str) -> bool:
    """True only when the index URL's host is a loopback address or ``localhost``."""
    host = registry_host(index_url)
    return bool(host) and is_loopback_host(host or "")


def is_loopback_host(host: str) -> bool:
    """``localhost`` or a loopback IP address (IPv6 in brackets or not)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False

"""Does the registry accept a key? Asked before ``key rotate --confirm`` deletes the old one.

The only question a registry answers without side effects is a read: a sparse index's
``config.json`` fetched with a read token (RFC 3231, no mutation) signed by the key. A
registry that checks tokens on reads (the demo registry always does when one is sent;
``auth-required`` registries must) answers 401/403 for a key it does not know. To tell "it
knows the key" from "it ignores tokens on reads", a token from a throwaway key is sent too:
if that one is also accepted, the registry cannot tell us anything.
"""

from __future__ import annotations

import urllib.error
import urllib.request
from dataclasses import dataclass

from gui_approver.core import paseto
from gui_approver.errors import GuiApproverError

from .store import KeyRecord, KeyStore, SigningKey

TIMEOUT = 10.0


@dataclass(frozen=True)
class Acceptance:
    """``accepted``: True (the registry knows the key), False (it refused it), None (it
    cannot be asked); ``why`` says what happened, as a sentence fragment."""

    accepted: bool | None
    why: str


def _read_token(key: SigningKey, index_url: str, subject: str | None) -> str:
    payload = paseto.build_claims(iat=paseto.format_iat(), subject=subject)
    return key.sign(payload, paseto.build_footer(index_url, key.kip))


def _status(url: str, token: str) -> int:
    req = urllib.request.Request(  # noqa: S310 - the registry's http(s) index URL
        url,
        headers={
            "Authorization": token,
            "User-Agent": "gui-approver",
        },
    )
    try:
        with urllib.request.urlopen(req, timeout=TIMEOUT) as resp:  # noqa: S310 - http(s) only
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


def check_accepted(store: KeyStore, record: KeyRecord) -> Acceptance:
    index = record.index_url
    if not index.startswith(("sparse+http://", "sparse+https://")):
        return Acceptance(
            None, "its index is not a sparse (HTTP) index, so gui-approver cannot ask it"
        )
    url = index.removeprefix("sparse+").rstrip("/") + "/config.json"
    try:
        key = store.signing_key(record)
    except GuiApproverError as exc:
        return Acceptance(None, f"the new key cannot sign here ({exc})")
    try:
        status = _status(url, _read_token(key, index, record.subject))
        if status in (401, 403):
            return Acceptance(
                False, f"the registry refused a read signed with the new key (HTTP {status})"
            )
        if status != 200:
            return Acceptance(None, f"the registry answered HTTP {status}")
        stranger = _status(url, _read_token(SigningKey.generate(), index, record.subject))
    except (OSError, ValueError) as exc:
        reason = getattr(exc, "reason", None) or exc
        return Acceptance(None, f"the registry could not be reached ({reason})")
    if stranger in (401, 403):
        return Acceptance(True, "the registry accepted a read signed with the new key")
    return Acceptance(
        None, "the registry does not check tokens on reads, so it cannot confirm the new key"
    )

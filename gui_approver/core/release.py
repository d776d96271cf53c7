"""How a credential is released once a request is approved (or needs no approval): the
strategy the signing service uses per registry kind. Qt-free.

* ``asymmetric``: a PASETO token signed for exactly this request (:mod:`.tokens`); reads are
  signed without asking (unless ``Settings.reads_need_approval``), mutations need approval.
* ``token``: the stored bearer token itself. Every mutation needs approval; the answer is
  never cached. A ``read`` never releases it silently: when the registry does not require
  authentication (its ``config.json`` has no ``"auth-required": true`` and cargo sent no
  ``registry.headers``), cargo gets a fixed placeholder that is not the token (cargo asks for a
  read before every publish and sends that answer nowhere); for an ``auth-required`` registry
  the read needs the real token, so it needs an approval too, unless the user allowed such
  reads for that registry (``TokenRecord.silent_reads``).
"""

from __future__ import annotations

import json
import logging
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass

from gui_approver.client.protocol import Get
from gui_approver.core import paseto
from gui_approver.core.keys.bearer import READ_PLACEHOLDER, BearerStore, TokenRecord
from gui_approver.core.keys.store import KeyRecord, KeyStore, is_crates_io
from gui_approver.core.settings import Settings

log = logging.getLogger(__name__)

#: How long an answer about a registry's ``auth-required`` is reused.
_PROBE_TTL = 300.0
_PROBE_TIMEOUT = 5.0
_PROBE_MAX_BYTES = 64 * 1024


class AuthProbe:
    """Does a registry require authentication for reads? From cargo's ``registry.headers``
    (sent only after a 401) or the index's ``config.json``. Anything unclear answers False:
    the read then gets the placeholder, never the token (fail closed)."""

    def __init__(self, ttl: float = _PROBE_TTL, timeout: float = _PROBE_TIMEOUT) -> None:
        self.ttl = ttl
        self.timeout = timeout
        self._cache: dict[str, tuple[float, bool]] = {}
        self._lock = threading.Lock()

    def auth_required(self, request: Get) -> bool:
        if request.registry.headers:
            return True
        url = request.registry.index_url
        if is_crates_io(request.registry.name, url) or not url.startswith("sparse+"):
            return False  # crates.io does not; git indexes cannot
        now = time.monotonic()
        with self._lock:
            hit = self._cache.get(url)
        if hit is not None and now - hit[0] < self.ttl:
            return hit[1]
        answer = self._fetch(url)
        with self._lock:
            self._cache[url] = (now, answer)
        return answer

    def _fetch(self, index_url: str) -> bool:
        base = index_url[len("sparse+") :]
        if not base.endswith("/"):
            base += "/"
        if not base.startswith(("http://", "https://")):
            return False
        req = urllib.request.Request(  # noqa: S310 - http(s) checked above
            base + "config.json",
            headers={"User-Agent": "gui-approver"},
        )
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:  # noqa: S310
                data = resp.read(_PROBE_MAX_BYTES)
        except urllib.error.HTTPError as exc:
            return exc.code in (401, 403)  # the index itself wants a token
        except (OSError, ValueError) as exc:
            log.info(
                "cannot read %sconfig.json (%s); reads get the placeholder",
                base,
                type(exc).__name__,
            )
            return False
        try:
            obj = json.loads(data)
        except ValueError:
            return False
        return isinstance(obj, dict) and obj.get("auth-required") is True


@dataclass(frozen=True)
class Credential:
    """One registry's credential, as the service needs it."""

    kind: str  # "asymmetric" | "token"
    key: KeyRecord | None = None
    bearer: TokenRecord | None = None

    @property
    def kid(self) -> str:
        """What the audit log and events call it (never the secret)."""
        if self.key is not None:
            return self.key.kip
        assert self.bearer is not None
        return f"bearer:sha256:{self.bearer.fingerprint}"

    @property
    def record(self) -> KeyRecord:
        """The record the approval shows (a stand-in for a bearer token)."""
        if self.key is not None:
            return self.key
        assert self.bearer is not None
        return self.bearer.as_key_record()


class ReleasePolicy:
    """Finds a registry's credential and releases it; the service decides about approval."""

    def __init__(
        self, store: KeyStore, tokens_store: BearerStore, probe: AuthProbe | None = None
    ) -> None:
        self.store = store
        self.tokens = tokens_store
        self.probe = probe or AuthProbe()

    def find(self, index_url: str) -> Credential | None:
        key = self.store.find(index_url)
        if key is not None:
            return Credential("asymmetric", key=key)
        bearer = self.tokens.find(index_url)
        if bearer is not None:
            return Credential("token", bearer=bearer)
        return None

    def placeholder_read(self, cred: Credential, request: Get) -> bool:
        """True: answer this read with :data:`READ_PLACEHOLDER` (never the token)."""
        return (
            cred.kind == "token"
            and not request.is_mutation
            and not self.probe.auth_required(request)
        )

    def read_needs_approval(self, cred: Credential, settings: Settings) -> bool:
        if cred.kind == "token":
            assert cred.bearer is not None
            return not cred.bearer.silent_reads
        return settings.reads_need_approval

    def release(
        self, cred: Credential, request: Get, *, approved: bool, may_ask: bool = True
    ) -> str:
        """The token for cargo. ``approved``: a human said yes (only that restarts a
        passphrase key's or token's idle clock). ``may_ask``: the request went through
        approval, so a hardware key may ask for its PIN now."""
        if cred.kind == "token":
            assert cred.bearer is not None
            return self.tokens.token(cred.bearer, approved_use=approved).expose()
        assert cred.key is not None
        purpose = (
            f"to sign the {request.describe()}"
            if request.is_mutation
            else "to sign the read of the registry's index that cargo makes before a "
            "publish, yank or owner change"
        )
        key = self.store.signing_key(cred.key, approved=approved, may_ask=may_ask, purpose=purpose)
        return paseto.sign_request(key, request, subject=cred.key.subject)

    @staticmethod
    def cache(cred: Credential, mutation: bool) -> str:
        return "never" if mutation else "session"


def placeholder() -> str:
    return READ_PLACEHOLDER


__all__ = ["AuthProbe", "Credential", "ReleasePolicy", "placeholder"]

"""The watch: notice versions of your crates that nobody approved on this machine. Qt-free.

The watched crates, per registry, are every crate the audit log shows an approved publish,
yank or unyank for, plus those the user added by hand (minus those removed by hand). A pass
fetches each crate's file of the registry's sparse index (``config.json`` at the index root
first), with ``If-None-Match`` / ``If-Modified-Since`` and bounded timeouts, and compares every
version's ``cksum`` and ``yanked`` flag with what it saw last time and with the audit log:

* the first pass for a crate records what exists as its baseline (no alerts);
* a new version whose checksum was never approved here, a checksum that changed, or a yank
  state that differs from the last approved yank/unyank raises an :class:`Alert`;
* an alert is raised once per version and state, and stays open until it is marked expected
  ("It was me / my CI") or the version is yanked through ``cargo yank``.

Nothing is fetched when nothing is watched. The files, in the state dir next to the audit
log, are replaced atomically (0600) under a lock shared by the app and the CLI::

    watch.json        the user's choices per registry (crates added/removed by hand, crates
                      published elsewhere on purpose, "needs a new token")
    watch-state.json  what the index showed last time: versions, ETag, Last-Modified
    alerts.json       the alerts, open or handled
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import json
import logging
import os
import re
import ssl
import subprocess
import threading
import time
import urllib.parse
import urllib.request
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

from gui_approver import __version__
from gui_approver.core import audit
from gui_approver.core.approval import is_loopback_host
from gui_approver.core.cargo_config import CRATES_IO, CRATES_IO_INDEX
from gui_approver.errors import GuiApproverError
from gui_approver.fsutil import atomic_write
from gui_approver.secret import Secret

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

__all__ = [
    "CRATES_IO_SPARSE",
    "Alert",
    "PassResult",
    "StoredToken",
    "TokenLookup",
    "Watch",
    "WatchError",
    "Watched",
    "canonical_index",
    "fetch_base",
    "index_path",
    "keychain_tokens",
]

log = logging.getLogger(__name__)

#: Where cargo really reads crates.io's index (it names it CRATES_IO_INDEX to providers).
CRATES_IO_SPARSE = "https://index.crates.io/"
#: Environment variable that replaces CRATES_IO_SPARSE (tests, mirrors).
CRATES_IO_ENV = "GUI_APPROVER_CRATES_IO_INDEX"
#: Seconds for connecting and for each read of one request.
DEFAULT_TIMEOUT = 10.0
#: Largest index file accepted (crates.io's biggest are a few MB).
MAX_INDEX_BYTES = 32 * 1024 * 1024
MAX_CONFIG_BYTES = 64 * 1024
#: Audit decisions that released a credential after an approval.
APPROVED_DECISIONS = frozenset({"signed", "released"})
_MUTATIONS = ("publish", "yank", "unyank")

PREFS_FILE = "watch.json"
STATE_FILE = "watch-state.json"
ALERTS_FILE = "alerts.json"
LOCK_FILE = ".watch.lock"

_CKSUM_RE = re.compile(r"[0-9a-f]{64}")
_CRATE_RE = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,63}")
_IDENT = r"[0-9A-Za-z-]+"
#: SemVer, as cargo requires it: nothing else reaches a notification or the Alerts window.
_VERS_RE = re.compile(
    r"(?:0|[1-9][0-9]*)\.(?:0|[1-9][0-9]*)\.(?:0|[1-9][0-9]*)"
    rf"(?:-{_IDENT}(?:\.{_IDENT})*)?(?:\+{_IDENT}(?:\.{_IDENT})*)?"
)


class AlertKind(StrEnum):
    """What nobody approved here."""

    UNAPPROVED_VERSION = "unapproved-version"
    CHECKSUM_MISMATCH = "checksum-mismatch"
    CHECKSUM_CHANGED = "checksum-changed"
    UNAPPROVED_YANK = "unapproved-yank"
    UNAPPROVED_UNYANK = "unapproved-unyank"


class AlertStatus(StrEnum):
    OPEN = "open"
    EXPECTED = "expected"  # "It was me / my CI"
    YANKED = "yanked"  # yanked from the Alerts window


class WatchError(GuiApproverError):
    """A pass could not check something (network, a bad index file); no alert was raised."""

    exit_code = 2


def default_state_dir() -> Path:
    return audit.default_path().parent


def valid_crate(name: str) -> bool:
    return _CRATE_RE.fullmatch(name) is not None


def index_path(name: str) -> str:
    """A crate's file in a sparse index, relative to the index root (cargo's layout)."""
    n = name.lower()
    if len(n) <= 2:
        return f"{len(n)}/{n}"
    if len(n) == 3:
        return f"3/{n[0]}/{n}"
    return f"{n[0:2]}/{n[2:4]}/{n}"


def fetch_base(index_url: str, crates_io: str | None = None) -> str:
    """The http(s) URL of the sparse index root for the index URL cargo names, ending in ``/``.

    crates.io is named ``https://github.com/rust-lang/crates.io-index`` to providers; its sparse
    index is :data:`CRATES_IO_SPARSE` (or ``crates_io``, or ``$GUI_APPROVER_CRATES_IO_INDEX``).
    """
    if index_url.rstrip("/") == CRATES_IO_INDEX.rstrip("/") or index_url.rstrip("/") in (
        "sparse+https://index.crates.io",
        "https://index.crates.io",
    ):
        base = crates_io or os.environ.get(CRATES_IO_ENV) or CRATES_IO_SPARSE
        base = base.removeprefix("sparse+")
    elif index_url.startswith("sparse+"):
        base = index_url.removeprefix("sparse+")
    else:
        raise WatchError(
            f"the registry {index_url} has a git index; the watch reads sparse indexes only",
            hint="use the registry's sparse index (sparse+https://...) in cargo's config",
        )
    parts = urllib.parse.urlsplit(base)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise WatchError(f"{base!r} is not an http(s) URL of a sparse index")
    return base if base.endswith("/") else base + "/"


_CRATES_IO_NAMES = {
    CRATES_IO_INDEX.rstrip("/"),
    "sparse+https://index.crates.io",
    "https://index.crates.io",
}


def canonical_index(index_url: str) -> str:
    """One spelling per registry: crates.io's names become cargo's ``CRATES_IO_INDEX``, a
    sparse URL ends in ``/``, anything else loses trailing slashes."""
    url = index_url.strip()
    if url.rstrip("/") in _CRATES_IO_NAMES:
        return CRATES_IO_INDEX
    if url.startswith("sparse+"):
        return url.rstrip("/") + "/"
    return url.rstrip("/")


def _now() -> datetime:
    return datetime.now(UTC)


# ------------------------------------------------------------------------------ data


@dataclass(frozen=True)
class Watched:
    """One registry's watched crates."""

    index_url: str
    name: str | None
    crates: tuple[str, ...]

    @property
    def label(self) -> str:
        return self.name or self.index_url


@dataclass
class Alert:
    """A change nobody approved here. ``status``: open, expected or yanked."""

    id: str
    registry: str | None
    index_url: str
    crate: str
    version: str
    kind: AlertKind
    cksum: str | None
    yanked: bool
    seen_at: str
    message: str
    status: AlertStatus = AlertStatus.OPEN
    notified: bool = False
    handled_at: str | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> Alert:
        names = set(cls.__dataclass_fields__)
        fields = {k: v for k, v in doc.items() if k in names}
        fields["kind"] = AlertKind(fields["kind"])
        fields["status"] = AlertStatus(fields.get("status", AlertStatus.OPEN))
        return cls(**fields)

    @property
    def is_open(self) -> bool:
        return self.status is AlertStatus.OPEN

    @property
    def label(self) -> str:
        return self.registry or self.index_url


def _alert_id(index_url: str, crate: str, version: str, kind: str, state: str) -> str:
    raw = "\0".join((index_url, crate.lower(), version, kind, state))
    return hashlib.sha256(raw.encode()).hexdigest()[:16]


def _message(kind: AlertKind, crate: str, vers: str, label: str, when: datetime) -> str:
    at = when.astimezone().strftime("%H:%M")
    what = {
        "unapproved-version": f"appeared on {label} at {at} but was never approved on this machine",
        "checksum-mismatch": f"appeared on {label} at {at} with a checksum other than the one "
        "approved on this machine",
        "checksum-changed": f"changed its checksum on {label} at {at} (a registry never should)",
        "unapproved-yank": f"was yanked on {label} at {at} but that yank was never approved "
        "on this machine",
        "unapproved-unyank": f"was un-yanked on {label} at {at} but that was never approved "
        "on this machine",
    }[kind]
    return f"{crate} {vers} {what}"


@dataclass
class Approvals:
    """What the audit log says was approved for one registry."""

    name: str | None = None
    crates: dict[str, str] = field(default_factory=dict)  # lower -> name as approved
    published: dict[tuple[str, str], set[str]] = field(default_factory=dict)
    yanked: dict[tuple[str, str], bool] = field(default_factory=dict)  # last approved state


def approvals_from(records: Iterable[dict[str, Any]]) -> dict[str, Approvals]:
    """Approved publish/yank/unyank records (oldest first) -> per index URL."""
    out: dict[str, Approvals] = {}
    for rec in records:
        if rec.get("event") != "get" or rec.get("decision") not in APPROVED_DECISIONS:
            continue
        op, index_url = rec.get("operation"), rec.get("index_url")
        crate, vers = rec.get("crate"), rec.get("version")
        if op not in _MUTATIONS or not isinstance(index_url, str) or not isinstance(crate, str):
            continue
        appr = out.setdefault(canonical_index(index_url), Approvals())
        if isinstance(rec.get("registry"), str):
            appr.name = rec["registry"]
        appr.crates.setdefault(crate.lower(), crate)
        if not isinstance(vers, str):
            continue
        key = (crate.lower(), vers)
        if op == "publish" and isinstance(rec.get("cksum"), str):
            appr.published.setdefault(key, set()).add(rec["cksum"])
        elif op in ("yank", "unyank"):
            appr.yanked[key] = op == "yank"
    return out


@dataclass
class PassResult:
    """What one pass found. ``exit_code``: 2 on any error, else 1 with open alerts, else 0."""

    new_alerts: list[Alert] = field(default_factory=list)
    open_alerts: list[Alert] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    registries: int = 0
    crates: int = 0
    requests: int = 0
    bytes: int = 0
    not_modified: int = 0

    @property
    def exit_code(self) -> int:
        if self.errors:
            return 2
        return 1 if self.open_alerts else 0

    def to_json(self) -> dict[str, Any]:
        return {
            "alerts": [a.to_json() for a in self.open_alerts],
            "new": [a.id for a in self.new_alerts],
            "errors": list(self.errors),
            "checked": {
                "registries": self.registries,
                "crates": self.crates,
                "requests": self.requests,
                "bytes": self.bytes,
                "not_modified": self.not_modified,
            },
        }


@dataclass(frozen=True)
class StoredToken:
    """A bearer token the app keeps for a registry, as "Revoke this token" needs it: ``get``
    reads it from the keychain (asking for its passphrase if it has one), ``delete`` removes
    it from the keychain and the token list."""

    registry: str
    fingerprint: str
    get: Callable[[], Secret]
    delete: Callable[[], None]


#: index URL -> the registry's stored bearer token, or None (asymmetric key, or nothing).
TokenLookup = Callable[[str], "StoredToken | None"]


def keychain_tokens(keys: Any) -> TokenLookup:
    """The bearer tokens of the app's key store (a :class:`KeyStore`). Looking one up reads
    only the token list; the keychain is read when the token is needed (``get``)."""
    from gui_approver.core.keys.bearer import bearer_store

    def lookup(index_url: str) -> StoredToken | None:
        store = bearer_store(keys)
        rec = store.find(index_url)
        if rec is None:
            return None
        return StoredToken(
            registry=rec.registry,
            fingerprint=rec.fingerprint,
            get=lambda: store.token(rec, approved_use=False),
            delete=lambda: store.delete(rec),
        )

    return lookup


def app_registries(keys: Any) -> dict[str, str]:
    """Registry name -> index URL for every asymmetric key and bearer token of ``keys`` (a
    :class:`KeyStore`); reads only their lists, never the keychain."""
    from gui_approver.core.keys.bearer import bearer_store

    out: dict[str, str] = {}
    for rec in [*keys.list(include_pending=False), *bearer_store(keys).list()]:
        out.setdefault(rec.registry, rec.index_url)
    return out


# ------------------------------------------------------------------------------ HTTP


@dataclass
class _Fetched:
    status: int  # 200, 304 or 404
    body: bytes = b""
    etag: str | None = None
    last_modified: str | None = None


def _error_detail(body: bytes) -> str:
    """crates.io's ``{"errors":[{"detail": ...}]}``, or the start of the body."""
    try:
        doc = json.loads(body)
        details = [e["detail"] for e in doc["errors"] if isinstance(e.get("detail"), str)]
        if details:
            return "; ".join(details)[:300]
    except (ValueError, KeyError, TypeError, AttributeError):
        pass
    return body[:200].decode("utf-8", "replace").strip()


class Fetcher:
    """Bounded HTTP for the watch: one kept-alive connection per host for a whole pass (100
    crates on crates.io cost one TLS handshake, not 100), no redirects followed, a timeout
    on every socket operation and a deadline for each whole request. Counts requests and
    bytes received. Honours ``https_proxy``/``http_proxy``/``no_proxy``; never proxies
    loopback."""

    def __init__(self, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.timeout = timeout
        self.requests = 0
        self.bytes = 0
        self.not_modified = 0
        self._conns: dict[tuple[str, str, int], http.client.HTTPConnection] = {}
        self._via_http_proxy: set[tuple[str, str, int]] = set()

    def close(self) -> None:
        for conn in self._conns.values():
            conn.close()
        self._conns.clear()

    def __enter__(self) -> Fetcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _connection(
        self, parts: urllib.parse.SplitResult
    ) -> tuple[http.client.HTTPConnection, bool]:
        host = parts.hostname or ""
        port = parts.port or (443 if parts.scheme == "https" else 80)
        key = (parts.scheme, host, port)
        conn = self._conns.get(key)
        if conn is not None:
            return conn, True
        proxy = None
        if not is_loopback_host(host) and not urllib.request.proxy_bypass(host):
            proxy = urllib.request.getproxies().get(parts.scheme)
        target = (host, port)
        if proxy:
            p = urllib.parse.urlsplit(proxy if "://" in proxy else f"http://{proxy}")
            target = (p.hostname or "", p.port or 80)
        if parts.scheme == "https":
            conn = http.client.HTTPSConnection(
                *target, timeout=self.timeout, context=ssl.create_default_context()
            )
            if proxy:
                conn.set_tunnel(host, port)
        else:
            conn = http.client.HTTPConnection(*target, timeout=self.timeout)
            if proxy:  # a plain-HTTP proxy gets the absolute URL (see request)
                self._via_http_proxy.add(key)
        self._conns[key] = conn
        return conn, False

    def _drop(self, parts: urllib.parse.SplitResult) -> None:
        port = parts.port or (443 if parts.scheme == "https" else 80)
        conn = self._conns.pop((parts.scheme, parts.hostname or "", port), None)
        if conn is not None:
            conn.close()

    def request(
        self,
        url: str,
        *,
        method: str = "GET",
        headers: dict[str, str] | None = None,
        limit: int = MAX_INDEX_BYTES,
        what: str = "",
    ) -> tuple[int, bytes, http.client.HTTPMessage]:
        """(status, body, headers); WatchError on network trouble. HTTP errors are returned."""
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise WatchError(f"{url!r} is not an http(s) URL")
        path = parts.path or "/"
        if parts.query:
            path += "?" + parts.query
        send = {
            "User-Agent": f"gui-approver-watch/{__version__}",
            "Accept-Encoding": "gzip",
            **(headers or {}),
        }
        self.requests += 1
        for attempt in (1, 2):
            conn, reused = self._connection(parts)
            port = parts.port or (443 if parts.scheme == "https" else 80)
            absolute = (parts.scheme, parts.hostname, port) in self._via_http_proxy
            try:
                conn.request(method, url if absolute else path, headers=send)
                resp = conn.getresponse()
                body = self._read(resp, limit, time.monotonic() + 6 * self.timeout, what or url)
            except (
                http.client.RemoteDisconnected,
                ConnectionResetError,
                BrokenPipeError,
                http.client.CannotSendRequest,
            ) as exc:
                self._drop(parts)
                if reused and attempt == 1:
                    continue  # the server closed an idle kept-alive connection: once more
                raise self._network_error(what or url, exc) from None
            except (OSError, http.client.HTTPException) as exc:
                self._drop(parts)
                raise self._network_error(what or url, exc) from None
            if resp.will_close:
                self._drop(parts)
            self.bytes += len(body)
            encoding = (resp.headers.get("Content-Encoding") or "identity").strip().lower()
            if encoding == "gzip":
                body = _gunzip(body, limit, what or url)
            elif encoding != "identity":
                raise WatchError(f"{what or url} came with an unknown encoding {encoding!r}")
            return resp.status, body, resp.headers
        raise AssertionError("unreachable")  # pragma: no cover

    def _read(
        self, resp: http.client.HTTPResponse, limit: int, deadline: float, what: str
    ) -> bytes:
        chunks: list[bytes] = []
        size = 0
        while True:
            chunk = resp.read(64 * 1024)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
            if size > limit:
                raise WatchError(f"{what} is larger than {limit} bytes; not read")
            if time.monotonic() > deadline:
                raise WatchError(f"{what} took too long to send ({size} bytes so far)")
        return b"".join(chunks)

    @staticmethod
    def _network_error(what: str, exc: BaseException) -> WatchError:
        reason = str(exc) or type(exc).__name__
        if isinstance(exc, TimeoutError):
            reason = "timed out"
        return WatchError(
            f"cannot reach {what}: {reason}",
            hint="check the network (the watch tries again at its next pass)",
        )

    def get_conditional(
        self, url: str, etag: str | None, last_modified: str | None, *, what: str
    ) -> _Fetched:
        headers = {}
        if etag:
            headers["If-None-Match"] = etag
        if last_modified:
            headers["If-Modified-Since"] = last_modified
        status, body, h = self.request(url, headers=headers, what=what)
        if status == 304:
            self.not_modified += 1
            return _Fetched(304, etag=etag, last_modified=last_modified)
        if status == 404:
            return _Fetched(404)
        if status != 200:
            detail = _error_detail(body)
            raise WatchError(
                f"{what} answered HTTP {status}" + (f": {detail}" if detail else ""),
                hint="an auth-required registry cannot be watched yet"
                if status in (401, 403)
                else None,
            )
        return _Fetched(200, body, h.get("ETag"), h.get("Last-Modified"))


def _gunzip(data: bytes, limit: int, what: str) -> bytes:
    """Decompress a gzip body, never to more than ``limit`` bytes (a bomb stops early)."""
    d = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        out = d.decompress(data, limit + 1)
        if len(out) > limit or d.unconsumed_tail:
            raise WatchError(f"{what} is larger than {limit} bytes once decompressed; not read")
        out += d.flush()
    except zlib.error as exc:
        raise WatchError(f"{what}: bad gzip data ({exc})") from None
    if not d.eof:
        raise WatchError(f"{what}: truncated gzip data")
    return out


def parse_index_file(data: bytes, crate: str, url: str) -> dict[str, tuple[str, bool]]:
    """Version -> (cksum, yanked) from one sparse-index file; WatchError when malformed."""
    out: dict[str, tuple[str, bool]] = {}
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise WatchError(f"bad index file {url}: not UTF-8") from None
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
        except ValueError as exc:
            raise WatchError(f"bad index file {url}: line {n} is not JSON ({exc})") from None
        if not isinstance(entry, dict):
            raise WatchError(f"bad index file {url}: line {n} is not a JSON object")
        name, vers = entry.get("name"), entry.get("vers")
        cksum, yanked = entry.get("cksum"), entry.get("yanked", False)
        if not isinstance(name, str) or name.lower() != crate.lower():
            raise WatchError(f"bad index file {url}: line {n} is for crate {name!r}")
        if not isinstance(vers, str) or len(vers) > 128 or not _VERS_RE.fullmatch(vers):
            raise WatchError(f"bad index file {url}: line {n} has no valid version")
        if not isinstance(cksum, str) or not _CKSUM_RE.fullmatch(cksum):
            raise WatchError(f"bad index file {url}: line {n} ({vers}) has no valid cksum")
        if not isinstance(yanked, bool):
            raise WatchError(f"bad index file {url}: line {n} ({vers}) has a non-boolean yanked")
        out[vers] = (cksum, yanked)
    return out


# ------------------------------------------------------------------------------ the watch

_thread_lock = threading.RLock()


class Watch:
    """The watch's state and actions (used by ``gui-approver watch`` and the app)."""

    def __init__(
        self,
        state_dir: Path | None = None,
        audit_path: Path | None = None,
        *,
        crates_io_index: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        cargo: str = "cargo",
        registries: Callable[[], dict[str, str]] | None = None,
    ) -> None:
        self.state_dir = Path(state_dir) if state_dir is not None else default_state_dir()
        self.audit_path = (
            Path(audit_path) if audit_path is not None else (self.state_dir / audit.FILE_NAME)
        )
        self.crates_io_index = crates_io_index
        self.timeout = timeout
        self.cargo = cargo
        #: Registry names the app knows (name -> index URL), for ``add``/``remove``/revoke.
        self.registries = registries

    # -- files -------------------------------------------------------------------------------

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        with _thread_lock:
            self.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
            with open(self.state_dir / LOCK_FILE, "a+b") as fh:
                if fcntl is not None:
                    fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
                yield

    def _read(self, name: str) -> dict[str, Any]:
        path = self.state_dir / name
        try:
            doc = json.loads(path.read_bytes())
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            raise WatchError(
                f"{path} is damaged ({exc})",
                hint="move it away; the watch then starts over with a new baseline",
            ) from None
        if not isinstance(doc, dict):
            raise WatchError(f"{path} is damaged (not a JSON object)")
        return doc

    def _write(self, name: str, doc: dict[str, Any]) -> None:
        data = json.dumps(doc, indent=1, sort_keys=True) + "\n"
        atomic_write(self.state_dir / name, data.encode("utf-8"))

    def _prefs(self) -> dict[str, dict[str, Any]]:
        regs = self._read(PREFS_FILE).get("registries", {})
        if not isinstance(regs, dict):
            return {}
        return {canonical_index(k): v for k, v in regs.items() if isinstance(v, dict)}

    def _save_prefs(self, regs: dict[str, dict[str, Any]]) -> None:
        self._write(PREFS_FILE, {"registries": regs})

    def _load_alerts(self) -> list[Alert]:
        items = self._read(ALERTS_FILE).get("alerts", [])
        try:
            return [Alert.from_json(a) for a in items if isinstance(a, dict)]
        except TypeError as exc:
            raise WatchError(f"{self.state_dir / ALERTS_FILE} is damaged ({exc})") from None

    def _save_alerts(self, alerts: list[Alert]) -> None:
        self._write(ALERTS_FILE, {"alerts": [a.to_json() for a in alerts]})

    # -- what is watched ---------------------------------------------------------------------

    def _approvals(self) -> dict[str, Approvals]:
        return approvals_from(audit.read_recent(10**9, self.audit_path))

    def watched(
        self, registry: str | None = None, approvals: dict[str, Approvals] | None = None
    ) -> list[Watched]:
        """The watched registries and crates (only those matching ``registry``, a name or URL)."""
        if approvals is None:
            approvals = self._approvals()
        prefs = self._prefs()
        out = []
        for index_url in sorted(set(approvals) | set(prefs)):
            appr = approvals.get(index_url, Approvals())
            pref = prefs.get(index_url, {})
            name = appr.name or pref.get("name")
            crates = dict(appr.crates)
            for c in pref.get("added", []):
                crates.setdefault(c.lower(), c)
            for c in pref.get("removed", []):
                crates.pop(c.lower(), None)
            if (
                registry is not None
                and registry != name
                and (canonical_index(registry) != index_url)
            ):
                continue
            if crates:
                out.append(Watched(index_url, name, tuple(sorted(crates.values()))))
        return out

    def resolve_registry(self, name: str, index_url: str | None = None) -> str:
        """The index URL of registry ``name``: given, known to the watch or the audit log, or
        from cargo's config."""
        return canonical_index(self._resolve_registry(name, index_url))

    def _resolve_registry(self, name: str, index_url: str | None = None) -> str:
        if index_url:
            return index_url
        if name == CRATES_IO:
            return CRATES_IO_INDEX
        approvals = self._approvals()
        for url, appr in approvals.items():
            if appr.name == name:
                return url
        for url, pref in self._prefs().items():
            if pref.get("name") == name:
                return url
        if self.registries is not None:
            try:
                known = self.registries().get(name)
            except GuiApproverError as exc:
                log.warning("cannot read the app's registries: %s", exc)
                known = None
            if known:
                return known
        from gui_approver.core.cargo_config import registry_index

        found = registry_index(name)
        if found:
            return found
        raise WatchError(
            f"no registry named {name!r} is known", hint="give its index URL with --index URL"
        )

    def add(self, name: str, crates: Iterable[str], index_url: str | None = None) -> str:
        """Watch ``crates`` of registry ``name`` (by hand); returns its index URL."""
        crates = list(crates)
        for c in crates:
            if not valid_crate(c):
                raise WatchError(f"{c!r} is not a crate name")
        url = self.resolve_registry(name, index_url)
        fetch_base(url, self.crates_io_index)  # refuses git indexes now, not at the next pass
        with self._locked():
            regs = self._prefs()
            pref = regs.setdefault(url, {})
            pref["name"] = name
            added = {c.lower(): c for c in pref.get("added", [])}
            removed = [
                c for c in pref.get("removed", []) if c.lower() not in {x.lower() for x in crates}
            ]
            for c in crates:
                added[c.lower()] = c
            pref["added"] = sorted(added.values())
            pref["removed"] = removed
            self._save_prefs(regs)
        return url

    def remove(self, name: str, crates: Iterable[str]) -> str:
        """Stop watching ``crates`` of registry ``name`` (even those the audit log names)."""
        crates = list(crates)
        url = self.resolve_registry(name)
        with self._locked():
            regs = self._prefs()
            pref = regs.setdefault(url, {"name": name})
            lower = {c.lower() for c in crates}
            pref["added"] = [c for c in pref.get("added", []) if c.lower() not in lower]
            removed = {c.lower(): c for c in pref.get("removed", [])}
            for c in crates:
                removed[c.lower()] = c
            pref["removed"] = sorted(removed.values())
            self._save_prefs(regs)
        return url

    def elsewhere(self, index_url: str) -> set[str]:
        """Crates (lower case) whose new versions and yanks are expected from elsewhere."""
        index_url = canonical_index(index_url)
        pref = self._prefs().get(index_url, {})
        return {c.lower() for c in pref.get("elsewhere", [])}

    def set_elsewhere(self, index_url: str, crate: str, expected: bool) -> None:
        """The per-crate "published elsewhere is expected" switch."""
        index_url = canonical_index(index_url)
        with self._locked():
            regs = self._prefs()
            pref = regs.setdefault(index_url, {})
            current = {c.lower(): c for c in pref.get("elsewhere", [])}
            if expected:
                current[crate.lower()] = crate
            else:
                current.pop(crate.lower(), None)
            pref["elsewhere"] = sorted(current.values())
            self._save_prefs(regs)

    def needs_new_token(self, index_url: str, current: StoredToken | None = None) -> bool:
        """True after "Revoke this token", until a token other than the revoked one is
        stored for the registry (``current``: what is stored now)."""
        revoked = self._prefs().get(canonical_index(index_url), {}).get("needs_new_token")
        if not revoked:
            return False
        return current is None or current.fingerprint == revoked

    # -- alerts ------------------------------------------------------------------------------

    def alerts(self, *, include_handled: bool = False, registry: str | None = None) -> list[Alert]:
        out = [a for a in self._load_alerts() if include_handled or a.is_open]
        if registry is not None:
            out = [
                a for a in out if registry == a.registry or canonical_index(registry) == a.index_url
            ]
        return out

    def _update_alert(self, alert_id: str, change: Callable[[Alert], None]) -> Alert:
        with self._locked():
            alerts = self._load_alerts()
            for a in alerts:
                if a.id == alert_id:
                    change(a)
                    self._save_alerts(alerts)
                    return a
        raise WatchError(f"no alert {alert_id!r}", hint="gui-approver watch --once lists them")

    def mark_expected(self, alert_id: str, *, elsewhere: bool = False) -> Alert:
        """ "It was me / my CI": close the alert; ``elsewhere`` also sets the crate's switch."""

        def change(a: Alert) -> None:
            a.status = AlertStatus.EXPECTED
            a.handled_at = audit.now_rfc3339()

        alert = self._update_alert(alert_id, change)
        if elsewhere:
            self.set_elsewhere(alert.index_url, alert.crate, True)
        return alert

    def mark_notified(self, alert_ids: Iterable[str]) -> None:
        ids = set(alert_ids)
        with self._locked():
            alerts = self._load_alerts()
            for a in alerts:
                if a.id in ids:
                    a.notified = True
            self._save_alerts(alerts)

    def yank_command(self, alert: Alert) -> list[str]:
        name = alert.registry or (CRATES_IO if alert.index_url == CRATES_IO_INDEX else None)
        if name is None:
            raise WatchError(
                f"cargo knows the registry of {alert.crate} only by name, and none is recorded",
                hint="yank it yourself: cargo yank --registry NAME --version "
                f"{alert.version} {alert.crate}",
            )
        return [self.cargo, "yank", "--registry", name, "--version", alert.version, alert.crate]

    def yank(
        self,
        alert_id: str,
        run: Callable[[list[str]], subprocess.CompletedProcess[str]] | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run ``cargo yank`` for the alert's version (cargo asks gui-approver, so the approval
        dialog decides); on success the alert is closed as ``yanked``."""
        alert = next((a for a in self._load_alerts() if a.id == alert_id), None)
        if alert is None:
            raise WatchError(f"no alert {alert_id!r}")
        cmd = self.yank_command(alert)
        runner = run or _run_cargo
        proc = runner(cmd)
        if proc.returncode == 0:

            def change(a: Alert) -> None:
                a.status = AlertStatus.YANKED
                a.handled_at = audit.now_rfc3339()

            self._update_alert(alert_id, change)
        return proc

    def revoke_token(self, index_url: str, token: Secret, on_revoked: Callable[[], None]) -> None:
        """crates.io's ``DELETE /api/v1/tokens/current`` with ``token`` against the registry's
        ``api`` (from its ``config.json``); then ``on_revoked()`` (delete the token from the
        keychain) and mark the registry as needing a new token. WatchError when refused."""
        base = fetch_base(index_url, self.crates_io_index)
        with Fetcher(self.timeout) as fetcher:
            self._revoke(index_url, base, token, fetcher)
        on_revoked()
        revoked = hashlib.sha256(token.expose().encode("utf-8")).hexdigest()[:8]
        with self._locked():
            regs = self._prefs()
            regs.setdefault(canonical_index(index_url), {})["needs_new_token"] = revoked
            self._save_prefs(regs)

    def revoke_stored(self, index_url: str, stored: StoredToken) -> None:
        """ "Revoke this token" for the token the app keeps (see :func:`keychain_tokens`)."""
        self.revoke_token(index_url, stored.get(), on_revoked=stored.delete)

    def _revoke(self, index_url: str, base: str, token: Secret, fetcher: Fetcher) -> None:
        status, body, _ = fetcher.request(
            base + "config.json", limit=MAX_CONFIG_BYTES, what=f"{base}config.json"
        )
        if status != 200:
            raise WatchError(f"{base}config.json answered HTTP {status}: {_error_detail(body)}")
        api = _config_api(body, base)
        parts = urllib.parse.urlsplit(api)
        if parts.scheme != "https" and not is_loopback_host(parts.hostname or ""):
            raise WatchError(
                f"refusing to send the token to {api} over plain HTTP",
                hint="revoke it on the registry's web site",
            )
        url = api.rstrip("/") + "/api/v1/tokens/current"
        status, body, _ = fetcher.request(
            url,
            method="DELETE",
            headers={"Authorization": token.expose()},
            limit=MAX_CONFIG_BYTES,
            what=url,
        )
        if status not in (200, 204):
            raise WatchError(
                f"the registry refused to revoke the token (HTTP {status}: {_error_detail(body)})",
                hint="revoke it on the registry's web site",
            )
        log.warning("revoked the bearer token of %s at the registry", index_url)

    # -- a pass ------------------------------------------------------------------------------

    def run_once(self, registry: str | None = None) -> PassResult:
        """Check every watched crate once; raise new alerts; return every open alert."""
        result = PassResult()
        watched = self.watched(registry)
        if registry is not None and not watched:
            result.errors.append(
                f"no watched registry is named {registry!r} (gui-approver watch list shows them)"
            )
        with Fetcher(self.timeout) as fetcher:
            for w in watched:
                result.registries += 1
                try:
                    self._check_registry(w, fetcher, result)
                except WatchError as exc:
                    result.errors.append(exc.full())
        result.requests, result.bytes = fetcher.requests, fetcher.bytes
        result.not_modified = fetcher.not_modified
        result.open_alerts = self.alerts(registry=registry)
        return result

    def _check_registry(self, w: Watched, fetcher: Fetcher, result: PassResult) -> None:
        base = fetch_base(w.index_url, self.crates_io_index)
        with self._locked():
            state = self._read(STATE_FILE)
        reg_state = state.get(w.index_url, {})
        cfg = reg_state.get("config", {})
        got = fetcher.get_conditional(
            base + "config.json",
            cfg.get("etag"),
            cfg.get("last_modified"),
            what=f"{base}config.json",
        )
        if got.status == 404:
            raise WatchError(f"{base}config.json does not exist: is {base} a sparse index?")
        new_config: dict[str, Any] | None = None
        if got.status == 200:
            _config_api(got.body, base)  # a sparse index root must have a valid config.json
            new_config = {"etag": got.etag, "last_modified": got.last_modified}
        fetched: dict[str, tuple[_Fetched, dict[str, tuple[str, bool]]]] = {}
        for crate in w.crates:
            result.crates += 1
            known = reg_state.get("crates", {}).get(crate.lower(), {})
            url = base + index_path(crate)
            try:
                f = fetcher.get_conditional(
                    url, known.get("etag"), known.get("last_modified"), what=url
                )
                versions = {} if f.status != 200 else parse_index_file(f.body, crate, url)
            except WatchError as exc:
                result.errors.append(exc.full())
                continue
            if f.status != 304:
                fetched[crate] = (f, versions)
        if not fetched and new_config is None:
            return
        # Read the approvals only now, after the index: an approval is on record before its
        # token leaves the app, so a publish approved while this pass was fetching is in it.
        approvals = self._approvals().get(w.index_url, Approvals())
        elsewhere = self.elsewhere(w.index_url)
        with self._locked():
            state = self._read(STATE_FILE)
            reg_state = state.setdefault(w.index_url, {})
            if new_config is not None:
                reg_state["config"] = new_config
            crates_state = reg_state.setdefault("crates", {})
            alerts = self._load_alerts()
            ids = {a.id for a in alerts}
            now = _now()
            for crate, (f, versions) in fetched.items():
                previous = crates_state.get(crate.lower())
                if previous is not None and crate.lower() not in elsewhere:
                    for alert in _compare(
                        w,
                        crate,
                        known_raw=previous.get("versions", {}),
                        current=versions,
                        approvals=approvals,
                        now=now,
                    ):
                        if alert.id not in ids:
                            ids.add(alert.id)
                            alerts.append(alert)
                            result.new_alerts.append(alert)
                            log.info("watch: %s", alert.message)
                crates_state[crate.lower()] = {
                    "name": crate,
                    "etag": f.etag,
                    "last_modified": f.last_modified,
                    "versions": {v: [ck, y] for v, (ck, y) in versions.items()},
                    "checked_at": audit.now_rfc3339(),
                }
            self._write(STATE_FILE, state)
            if result.new_alerts:
                self._save_alerts(alerts)


def _config_api(body: bytes, base: str) -> str:
    try:
        doc = json.loads(body)
    except ValueError:
        raise WatchError(f"bad {base}config.json: not JSON") from None
    api = doc.get("api") if isinstance(doc, dict) else None
    if not isinstance(doc, dict) or not isinstance(doc.get("dl"), str):
        raise WatchError(f'bad {base}config.json: no "dl"; is {base} a sparse index?')
    return api if isinstance(api, str) else ""


def _compare(
    w: Watched,
    crate: str,
    *,
    known_raw: dict[str, Any],
    current: dict[str, tuple[str, bool]],
    approvals: Approvals,
    now: datetime,
) -> list[Alert]:
    known: dict[str, tuple[str, bool]] = {}
    for vers, value in known_raw.items():
        if isinstance(value, list) and len(value) == 2:
            known[vers] = (str(value[0]), bool(value[1]))
    out = []

    def alert(kind: AlertKind, vers: str, cksum: str, yanked: bool, state: str) -> None:
        out.append(
            Alert(
                id=_alert_id(w.index_url, crate, vers, kind, state),
                registry=w.name,
                index_url=w.index_url,
                crate=crate,
                version=vers,
                kind=kind,
                cksum=cksum,
                yanked=yanked,
                seen_at=now.isoformat(timespec="seconds").replace("+00:00", "Z"),
                message=_message(kind, crate, vers, w.label, now),
            )
        )

    for vers, (cksum, yanked) in current.items():
        key = (crate.lower(), vers)
        approved = approvals.published.get(key, set())
        if vers not in known:
            if cksum not in approved:
                kind = AlertKind.CHECKSUM_MISMATCH if approved else AlertKind.UNAPPROVED_VERSION
                alert(kind, vers, cksum, yanked, cksum)
            continue
        old_cksum, old_yanked = known[vers]
        if cksum != old_cksum:
            alert(AlertKind.CHECKSUM_CHANGED, vers, cksum, yanked, cksum)
        if yanked != old_yanked and approvals.yanked.get(key) is not yanked:
            kind = AlertKind.UNAPPROVED_YANK if yanked else AlertKind.UNAPPROVED_UNYANK
            alert(kind, vers, cksum, yanked, f"{cksum}:{'yanked' if yanked else 'unyanked'}")
    return out


def _run_cargo(cmd: list[str]) -> subprocess.CompletedProcess[str]:
    # cargo asks gui-approver for the yank token, which waits for the approval dialog.
    return subprocess.run(
        cmd,
        check=False,
        capture_output=True,
        text=True,
        timeout=3600,
        stdin=subprocess.DEVNULL,
    )

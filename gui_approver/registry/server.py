"""A small but real sparse-HTTP cargo registry that verifies RFC 3231 asymmetric tokens.

It exists to demonstrate (and test, with the real ``cargo``) that the tokens this app signs
are accepted by a registry doing every check cargo's own test registry does. It stores its
state in a data directory (survives restarts)::

    keys.json                       registered public keys, {"keys": [{"public", "subject"}]}
    index/<cargo index path>        sparse index files, one JSON entry per line
    crates/<lowercase name>/<vers>.crate
    owners.json                     {"<lowercase name>": ["login", ...]}
    tokens.json                     bearer tokens (token mode), only their SHA-256 (mode 0600)

``keys.json`` is re-read whenever it changes, so ``gui-approver demo-registry-key`` can
register keys while the server runs. Any registered key may publish any crate: this is a demo,
not crates.io.

In **token mode** (``token_mode=True``, ``demo-registry --token-mode``) the registry takes
crates.io-style bearer tokens instead: ``demo-registry-key --token`` issues one (printed once;
only its SHA-256 is stored), an unknown or revoked token gets 403 with crates.io's error shape
``{"errors":[{"detail":"..."}]}``, and ``DELETE /api/v1/tokens/current`` revokes the token it is
sent with. ``auth_required`` makes every read need a valid token too (``config.json`` says
``"auth-required": true``; an anonymous request gets 401 so cargo retries with a token).

Index files and ``config.json`` carry ``ETag`` and ``Last-Modified`` and answer
``If-None-Match`` / ``If-Modified-Since`` with 304. Qt-free.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import email.utils
import hashlib
import hmac
import ipaddress
import json
import logging
import os
import re
import secrets
import signal
import socket
import sys
import threading
import time
import urllib.parse
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import platformdirs

from gui_approver.fsutil import atomic_write as _atomic_write
from gui_approver.registry.verify import (
    Expected,
    RegisteredKey,
    VerificationError,
    verify_token_detailed,
)

__all__ = [
    "DemoRegistry",
    "add_key_to_file",
    "add_registry_parsers",
    "index_path",
    "is_loopback",
    "issue_token",
    "load_keys_file",
    "load_tokens_file",
    "token_digest",
]

logger = logging.getLogger(__name__)

MAX_PUBLISH_BODY = 10 * 1024 * 1024
MAX_SMALL_BODY = 64 * 1024
KEYS_FILE = "keys.json"
OWNERS_FILE = "owners.json"
TOKENS_FILE = "tokens.json"
TOKEN_PREFIX = "gad_"  # noqa: S105 - not a secret; like crates.io's "cio", so a leaked token is recognisable

_NAME_RE = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,63}")
_IDENT = r"[0-9A-Za-z-]+"
_VERS_RE = re.compile(
    r"(?:0|[1-9][0-9]*)\.(?:0|[1-9][0-9]*)\.(?:0|[1-9][0-9]*)"
    rf"(?:-{_IDENT}(?:\.{_IDENT})*)?(?:\+{_IDENT}(?:\.{_IDENT})*)?"
)
_MAX_VERS_LEN = 128
_DEP_KINDS = frozenset({"normal", "dev", "build"})


# --------------------------------------------------------------------------- helpers


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback IP addresses."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def valid_name(name: object) -> bool:
    return isinstance(name, str) and _NAME_RE.fullmatch(name) is not None


def valid_vers(vers: object) -> bool:
    return (
        isinstance(vers, str)
        and len(vers) <= _MAX_VERS_LEN
        and _VERS_RE.fullmatch(vers) is not None
    )


def index_path(name: str) -> str:
    """The path of a crate's file in a sparse index, relative to the index root."""
    n = name.lower()
    if len(n) == 1:
        return f"1/{n}"
    if len(n) == 2:
        return f"2/{n}"
    if len(n) == 3:
        return f"3/{n[0]}/{n}"
    return f"{n[0:2]}/{n[2:4]}/{n}"


def _semver_core(vers: str) -> str:
    """The version without build metadata: ``1.0.0+a`` and ``1.0.0+b`` are the same version."""
    return vers.split("+", 1)[0]


def load_keys_file(path: Path) -> list[RegisteredKey]:
    """Read ``keys.json``; a missing file means no keys. Raises ValueError when malformed."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return []
    try:
        doc = json.loads(raw)
    except ValueError as err:
        raise ValueError(f"{path} is not valid JSON: {err}") from None
    items = doc.get("keys") if isinstance(doc, dict) else None
    if not isinstance(items, list):
        raise ValueError(f'{path} must be an object with a "keys" list')
    keys = []
    for item in items:
        if not isinstance(item, dict) or not isinstance(item.get("public"), str):
            raise ValueError(f'{path}: every key needs a "public" string')
        subject = item.get("subject")
        if subject is not None and not isinstance(subject, str):
            raise ValueError(f'{path}: "subject" must be a string or null')
        keys.append(RegisteredKey(public=item["public"], subject=subject))
    return keys


try:  # cross-process lock for keys.json writers (POSIX); readers never need it
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

_keys_file_lock = threading.Lock()


@contextlib.contextmanager
def _locked(lock_path: Path) -> Iterator[None]:
    with _keys_file_lock:
        lock_path.parent.mkdir(parents=True, exist_ok=True)
        with open(lock_path, "a+b") as f:
            if fcntl is not None:
                fcntl.flock(f.fileno(), fcntl.LOCK_EX)
            yield


def add_key_to_file(data_dir: Path, key: RegisteredKey) -> None:
    """Register ``key`` in ``data_dir/keys.json`` (replacing an entry with the same kip)."""
    data_dir = Path(data_dir)
    path = data_dir / KEYS_FILE
    with _locked(data_dir / ".keys.lock"):
        keys = [k for k in load_keys_file(path) if k.kip != key.kip]
        keys.append(key)
        doc = {"keys": [{"public": k.public, "subject": k.subject, "kip": k.kip} for k in keys]}
        _atomic_write(path, (json.dumps(doc, indent=2) + "\n").encode())


def token_digest(token: str) -> str:
    """The SHA-256 (hex) of a bearer token: all the registry ever stores of it."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def load_tokens_file(path: Path) -> list[dict[str, Any]]:
    """Read ``tokens.json``; a missing file means no tokens. Raises ValueError when malformed."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return []
    try:
        doc = json.loads(raw)
    except ValueError as err:
        raise ValueError(f"{path} is not valid JSON: {err}") from None
    items = doc.get("tokens") if isinstance(doc, dict) else None
    if not isinstance(items, list) or not all(
        isinstance(i, dict) and isinstance(i.get("sha256"), str) for i in items
    ):
        raise ValueError(f'{path} must be an object with a "tokens" list of {{"sha256": ...}}')
    return items


def _write_tokens_file(path: Path, items: list[dict[str, Any]]) -> None:
    data = json.dumps({"tokens": items}, indent=2) + "\n"
    _atomic_write(path, data.encode(), mode=0o600)


def issue_token(data_dir: Path, login: str = "demo", name: str | None = None) -> str:
    """Make a fresh bearer token for ``login``; store only its SHA-256; return the token."""
    data_dir = Path(data_dir)
    if not login or not valid_name(login):
        raise ValueError(f"invalid login {login!r} (letters, digits, - and _)")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    with _locked(data_dir / ".tokens.lock"):
        items = load_tokens_file(data_dir / TOKENS_FILE)
        items.append(
            {
                "sha256": token_digest(token),
                "login": login,
                "name": name,
                "created_at": now,
                "revoked_at": None,
            }
        )
        _write_tokens_file(data_dir / TOKENS_FILE, items)
    return token


def _revoke_token_digest(data_dir: Path, digest: str) -> bool:
    """Mark the token with this digest revoked; False when no unrevoked token has it."""
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    with _locked(data_dir / ".tokens.lock"):
        items = load_tokens_file(data_dir / TOKENS_FILE)
        found = False
        for item in items:
            if hmac.compare_digest(item["sha256"], digest) and item.get("revoked_at") is None:
                item["revoked_at"] = now
                found = True
        if found:
            _write_tokens_file(data_dir / TOKENS_FILE, items)
        return found


def _http_date(ts: float) -> str:
    return email.utils.formatdate(ts, usegmt=True)


def _parse_http_date(value: str) -> float | None:
    try:
        parsed = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()


def _etag_matches(header: str, etag: str) -> bool:
    """``If-None-Match``: ``*`` or a list of (possibly weak) entity tags."""
    if header.strip() == "*":
        return True
    bare = etag.removeprefix("W/")
    return any(t.strip().removeprefix("W/") == bare for t in header.split(","))


def _conditional(headers: Any, body: bytes, mtime: int, content_type: str) -> _Response:
    """A 200 with ETag and Last-Modified, or a 304 when the client already has it."""
    etag = '"' + hashlib.sha256(body).hexdigest() + '"'
    validators = {"ETag": etag, "Last-Modified": _http_date(mtime)}
    inm = headers.get("If-None-Match")
    if inm is not None:  # RFC 9110: If-None-Match wins over If-Modified-Since
        if _etag_matches(inm, etag):
            return _Response(304, headers=validators)
    else:
        ims = headers.get("If-Modified-Since")
        since = _parse_http_date(ims) if ims is not None else None
        if since is not None and mtime <= since:
            return _Response(304, headers=validators)
    return _Response(200, body, content_type, validators)


class _HTTPError(Exception):
    def __init__(self, status: int, detail: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.headers = headers or {}


@dataclass
class _Response:
    status: int
    body: bytes = b""
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)


def _json_response(obj: Any, status: int = 200) -> _Response:
    return _Response(status, json.dumps(obj, separators=(",", ":")).encode())


def _str_list(value: object, what: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise _HTTPError(400, f"{what} must be a list of strings")
    return list(value)


def _opt_str(value: object, what: str) -> str | None:
    if value is not None and not isinstance(value, str):
        raise _HTTPError(400, f"{what} must be a string")
    return value


def _index_dep(dep: object) -> dict[str, Any]:
    """Convert a dependency of cargo's publish metadata into a sparse-index dependency."""
    if not isinstance(dep, dict):
        raise _HTTPError(400, "every dependency must be an object")
    name = dep.get("name")
    if not valid_name(name):
        raise _HTTPError(400, f"invalid dependency name {name!r}")
    assert isinstance(name, str)
    req = dep.get("version_req")
    if not isinstance(req, str) or not req:
        raise _HTTPError(400, f"dependency {name} has no version requirement")
    explicit = _opt_str(dep.get("explicit_name_in_toml"), "explicit_name_in_toml")
    if explicit is not None and not valid_name(explicit):
        raise _HTTPError(400, f"invalid dependency rename {explicit!r}")
    kind = dep.get("kind", "normal") or "normal"
    if kind not in _DEP_KINDS:
        raise _HTTPError(400, f"dependency {name} has unknown kind {kind!r}")
    out: dict[str, Any] = {
        "name": explicit or name,
        "req": req,
        "features": _str_list(dep.get("features", []), f"features of dependency {name}"),
        "optional": bool(dep.get("optional", False)),
        "default_features": bool(dep.get("default_features", True)),
        "target": _opt_str(dep.get("target"), "target"),
        "kind": kind,
        "registry": _opt_str(dep.get("registry"), "registry"),
        "package": name if explicit else None,
    }
    for extra in ("artifact", "bindep_target", "lib"):
        if dep.get(extra) is not None:
            out[extra] = dep[extra]
    return out


def _index_entry(meta: dict[str, Any], name: str, vers: str, cksum: str) -> dict[str, Any]:
    deps_raw = meta.get("deps", [])
    if not isinstance(deps_raw, list):
        raise _HTTPError(400, "deps must be a list")
    deps = [_index_dep(d) for d in deps_raw]
    features_raw = meta.get("features", {})
    if not isinstance(features_raw, dict):
        raise _HTTPError(400, "features must be an object")
    features: dict[str, list[str]] = {}
    features2: dict[str, list[str]] = {}
    for fname, values in features_raw.items():
        vals = _str_list(values, f"feature {fname}")
        # Newer feature syntax goes to features2 so that old cargos skip only those.
        new_syntax = any(v.startswith("dep:") or "?/" in v for v in vals)
        (features2 if new_syntax else features)[fname] = vals
    entry: dict[str, Any] = {
        "name": name,
        "vers": vers,
        "deps": deps,
        "cksum": cksum,
        "features": features,
        "yanked": False,
        "links": _opt_str(meta.get("links"), "links"),
    }
    if features2:
        entry["features2"] = features2
        entry["v"] = 2
    else:
        entry["v"] = 1
    rust_version = _opt_str(meta.get("rust_version"), "rust_version")
    if rust_version is not None:
        entry["rust_version"] = rust_version
    return entry


def _parse_publish_body(body: bytes) -> tuple[dict[str, Any], bytes]:
    if len(body) < 4:
        raise _HTTPError(400, "the publish request body is too short")
    json_len = int.from_bytes(body[0:4], "little")
    json_end = 4 + json_len
    if json_end + 4 > len(body):
        raise _HTTPError(400, "the publish request body is truncated (metadata)")
    crate_len = int.from_bytes(body[json_end : json_end + 4], "little")
    crate_end = json_end + 4 + crate_len
    if crate_end != len(body):
        raise _HTTPError(400, "the publish request body's .crate length does not match")
    try:
        meta = json.loads(body[4:json_end].decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as err:
        raise _HTTPError(400, f"the publish metadata is not valid JSON: {err}") from None
    if not isinstance(meta, dict):
        raise _HTTPError(400, "the publish metadata must be a JSON object")
    return meta, body[json_end + 4 : crate_end]


# --------------------------------------------------------------------------- server


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    registry: DemoRegistry

    def handle_error(self, request: Any, client_address: Any) -> None:
        # socketserver prints tracebacks to stderr; clients hanging up are routine here.
        exc = sys.exc_info()[1]
        if isinstance(exc, (ConnectionError, TimeoutError)):
            logger.debug("connection from %s ended: %s", client_address, exc)
        else:
            logger.exception("error serving %s", client_address)


class _Server6(_Server):
    address_family = socket.AF_INET6


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "gui-approver-demo-registry/1"
    sys_version = ""
    timeout = 30
    # Headers and body go out in two writes; with Nagle on, a kept-alive client waits for the
    # delayed ACK (~40 ms) before it sees the body.
    disable_nagle_algorithm = True
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("%s %s", self.address_string(), format % args)

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def _read_body(self, limit: int) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            self.close_connection = True
            raise _HTTPError(411, "chunked request bodies are not supported; send Content-Length")
        raw = self.headers.get("Content-Length")
        if raw is None:
            return b""
        try:
            length = int(raw)
        except ValueError:
            self.close_connection = True
            raise _HTTPError(400, "invalid Content-Length") from None
        if length < 0:
            self.close_connection = True
            raise _HTTPError(400, "invalid Content-Length")
        if length > limit:
            self.close_connection = True
            raise _HTTPError(413, f"request body of {length} bytes exceeds the {limit} byte limit")
        body = self.rfile.read(length)
        if len(body) != length:
            self.close_connection = True
            raise _HTTPError(400, "request body ended early")
        return body

    def _dispatch(self, method: str) -> None:
        registry = self.server.registry
        try:
            path = urllib.parse.urlsplit(self.path).path
            segments = [urllib.parse.unquote(s) for s in path.split("/")[1:]]
            is_publish = method == "PUT" and segments == ["api", "v1", "crates", "new"]
            body = self._read_body(MAX_PUBLISH_BODY if is_publish else MAX_SMALL_BODY)
            response = registry._route(method, segments, self.headers, body)
        except _HTTPError as err:
            response = _json_response({"errors": [{"detail": err.detail}]}, err.status)
            response.headers.update(err.headers)
            if err.status >= 500:
                logger.error("%s %s: %s", method, self.path, err.detail)
            else:
                logger.info("%s %s -> %d: %s", method, self.path, err.status, err.detail)
        except Exception:
            logger.exception("internal error handling %s %s", method, self.path)
            response = _json_response({"errors": [{"detail": "internal server error"}]}, 500)
        self._send(response)

    def _send(self, response: _Response) -> None:
        no_body = response.status in (204, 304)
        self.send_response(response.status)
        if not no_body:
            self.send_header("Content-Type", response.content_type)
        if response.status != 204:
            self.send_header("Content-Length", str(len(response.body)))
        for name, value in response.headers.items():
            self.send_header(name, value)
        if self.close_connection:
            self.send_header("Connection", "close")
        # Logged before the client can see the answer, so that a test reading the log right
        # after its request returned finds it there.
        header_bytes = sum(len(h) for h in getattr(self, "_headers_buffer", [])) + 2
        request_line: bytes = getattr(self, "raw_requestline", b"")
        request_bytes = (
            len(request_line)
            + len(self.headers.as_bytes())
            + int(self.headers.get("Content-Length") or 0)
        )
        self.server.registry.served.append(
            Served(
                self.command,
                urllib.parse.urlsplit(self.path).path,
                response.status,
                0 if no_body else len(response.body),
                dict(self.headers.items()),
                f"{self.client_address[0]}:{self.client_address[1]}",
                request_bytes,
                header_bytes,
            )
        )
        self.end_headers()
        if not no_body:
            self.wfile.write(response.body)


@dataclass(frozen=True)
class Served:
    """One answered request (kept in memory for tests and the benchmark)."""

    method: str
    path: str
    status: int
    body_bytes: int
    request_headers: dict[str, str]
    peer: str = ""  # the client's address:port (one per TCP connection)
    request_bytes: int = 0  # request line, headers and body as received
    response_header_bytes: int = 0  # status line and headers as sent

    @property
    def wire_bytes(self) -> int:
        """HTTP bytes both ways (no TCP/TLS overhead)."""
        return self.request_bytes + self.response_header_bytes + self.body_bytes


class DemoRegistry:
    """A sparse-HTTP cargo registry that accepts valid RFC 3231 asymmetric tokens, or, in
    token mode, bearer tokens issued by :func:`issue_token`."""

    def __init__(
        self,
        data_dir: Path,
        host: str = "127.0.0.1",
        port: int = 0,
        keys: Iterable[RegisteredKey] = (),
        max_age: float = 60.0,
        *,
        allow_remote: bool = False,
        max_skew: float = 5.0,
        token_mode: bool = False,
        auth_required: bool = False,
    ) -> None:
        if auth_required and not token_mode:
            raise ValueError("auth-required is only supported in token mode (--token-mode)")
        if not allow_remote and not is_loopback(host):
            raise ValueError(
                f"refusing to serve on non-loopback host {host!r}: "
                "the demo registry is for local testing (pass allow_remote/--allow-remote)"
            )
        self.data_dir = Path(data_dir)
        self.host = host
        self.port = port
        self.max_age = max_age
        self.max_skew = max_skew
        self._static_keys = list(keys)
        self._file_keys: list[RegisteredKey] = []
        self._keys_sig: tuple[int, int, int] | None = None
        self._keys_lock = threading.Lock()
        self._lock = threading.RLock()  # serialises every change to the stored data
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        #: Tokens that passed verification and reasons of those that did not, in arrival
        #: order (in memory only; for tests and the benchmark).
        self.accepted_tokens: list[str] = []
        self.rejections: list[str] = []
        #: Every answered request, newest last (bounded).
        self.served: collections.deque[Served] = collections.deque(maxlen=100_000)
        self.token_mode = token_mode
        self.auth_required = auth_required
        self._started_at = int(time.time())
        self.data_dir.mkdir(parents=True, exist_ok=True)

    # ---- lifecycle

    @property
    def index_url(self) -> str:
        return f"sparse+{self.api_url}/index/"

    @property
    def api_url(self) -> str:
        if self._server is None:
            raise RuntimeError("the registry has not been started")
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self._server.server_address[1]}"

    def start(self) -> None:
        if self._server is not None:
            raise RuntimeError("the registry is already running")
        cls = _Server6 if ":" in self.host else _Server
        server = cls((self.host.strip("[]"), self.port), _Handler)
        server.registry = self
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.05},  # how quickly stop() takes effect
            name="demo-registry",
            daemon=True,
        )
        self._thread.start()
        logger.info("demo registry serving %s from %s", self.index_url, self.data_dir)

    def stop(self) -> None:
        server, thread = self._server, self._thread
        if server is None:
            return
        server.shutdown()
        server.server_close()
        if thread is not None:
            thread.join()
        self._server = None
        self._thread = None

    def __enter__(self) -> DemoRegistry:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ---- keys

    def add_key(self, key: RegisteredKey) -> None:
        """Register ``key`` persistently (in ``keys.json``)."""
        add_key_to_file(self.data_dir, key)

    def issue_token(self, login: str = "demo", name: str | None = None) -> str:
        """Issue a bearer token (token mode); only its SHA-256 is stored."""
        return issue_token(self.data_dir, login, name)

    def _token_record(self, token: str) -> dict[str, Any] | None:
        try:
            items = load_tokens_file(self.data_dir / TOKENS_FILE)
        except (OSError, ValueError) as err:
            logger.error("cannot read the tokens file: %s", err)
            raise _HTTPError(500, "the registry's token file is unreadable") from None
        digest = token_digest(token)
        for item in items:
            if hmac.compare_digest(item["sha256"], digest):
                return item
        return None

    def registered_keys(self) -> list[RegisteredKey]:
        """Keys given to the constructor, then those in ``keys.json`` (re-read on change)."""
        path = self.data_dir / KEYS_FILE
        try:
            st = path.stat()
            sig: tuple[int, int, int] | None = (st.st_mtime_ns, st.st_size, st.st_ino)
        except FileNotFoundError:
            sig = None
        with self._keys_lock:
            if sig != self._keys_sig:
                try:
                    self._file_keys = load_keys_file(path)
                except (OSError, ValueError) as err:
                    logger.error("ignoring broken %s (keeping the previous keys): %s", path, err)
                self._keys_sig = sig
            return [*self._static_keys, *self._file_keys]

    # ---- storage

    def _index_file(self, name: str) -> Path:
        return self.data_dir / "index" / index_path(name)

    def _crate_file(self, name: str, vers: str) -> Path:
        return self.data_dir / "crates" / name.lower() / f"{vers}.crate"

    def _read_entries(self, name: str) -> list[dict[str, Any]]:
        try:
            text = self._index_file(name).read_text("utf-8")
        except FileNotFoundError:
            return []
        return [json.loads(line) for line in text.splitlines() if line.strip()]

    def _write_entries(self, name: str, entries: list[dict[str, Any]]) -> None:
        path = self._index_file(name)
        try:
            previous = int(path.stat().st_mtime)
        except FileNotFoundError:
            previous = 0
        text = "".join(json.dumps(e, separators=(",", ":")) + "\n" for e in entries)
        _atomic_write(path, text.encode("utf-8"))
        # Last-Modified has one-second resolution: every change moves it to a later second,
        # so If-Modified-Since never hides a change made in the same second.
        stamp = max(int(time.time()), previous + 1)
        os.utime(path, (stamp, stamp))

    def _read_owners(self) -> dict[str, list[str]]:
        try:
            doc = json.loads((self.data_dir / OWNERS_FILE).read_bytes())
        except FileNotFoundError:
            return {}
        return doc if isinstance(doc, dict) else {}

    def _write_owners(self, owners: dict[str, list[str]]) -> None:
        data = json.dumps(owners, indent=2, sort_keys=True) + "\n"
        _atomic_write(self.data_dir / OWNERS_FILE, data.encode())

    def crates(self) -> dict[str, list[dict[str, Any]]]:
        """Every crate in the index: name -> its index entries, oldest first."""
        out: dict[str, list[dict[str, Any]]] = {}
        root = self.data_dir / "index"
        with self._lock:
            for path in sorted(root.rglob("*")) if root.is_dir() else []:
                if not path.is_file() or path.name.startswith("."):
                    continue
                lines = path.read_text("utf-8").splitlines()
                entries = [json.loads(line) for line in lines if line.strip()]
                if entries:
                    out[entries[0]["name"]] = entries
        return out

    def owners(self, name: str) -> list[str]:
        with self._lock:
            return list(self._read_owners().get(name.lower(), []))

    # ---- auth

    def _unauthorized(self, detail: str) -> _HTTPError:
        return _HTTPError(401, detail, {"WWW-Authenticate": f'Cargo login_url="{self.api_url}/me"'})

    def _authorize(self, headers: Any, expected: Expected) -> str | None:
        """Check the request's credential; the login/subject it acts as (None: anonymous)."""
        if self.token_mode:
            return self._authorize_bearer(headers, expected)
        key = self._authorize_asymmetric(headers, expected)
        return None if key is None else (key.subject or key.kip)

    def _forbidden(self, reason: str, detail: str) -> _HTTPError:
        logger.warning("rejected bearer token: %s", reason)
        self.rejections.append(reason)
        return _HTTPError(403, detail)

    def _presented_token(self, headers: Any) -> str | None:
        raw = headers.get("Authorization")
        if raw is None:
            return None
        token: str = raw.strip()
        if token[:7].lower() == "bearer ":  # crates.io takes both forms
            token = token[7:].strip()
        return token

    def _authorize_bearer(self, headers: Any, expected: Expected) -> str | None:
        token = self._presented_token(headers)
        if token is None:
            if expected.mutation is None and not self.auth_required:
                return None  # anonymous reads are fine
            if expected.mutation is None:
                raise self._unauthorized(
                    "this registry requires authentication: send a token in the "
                    "Authorization header"
                )
            raise self._forbidden("missing", "this action requires authentication")
        return self._bearer_login(token)

    def _bearer_login(self, token: str) -> str:
        """The login a known, unrevoked token acts as; 403 otherwise."""
        record = self._token_record(token)
        if record is None:
            raise self._forbidden(
                "unknown", "authentication failed: the token is not known to this registry"
            )
        if record.get("revoked_at") is not None:
            raise self._forbidden("revoked", "authentication failed: the token has been revoked")
        self.accepted_tokens.append(token)
        login = record.get("login")
        return login if isinstance(login, str) else "demo"

    def _revoke_current(self, headers: Any) -> _Response:
        """crates.io's ``DELETE /api/v1/tokens/current``: revoke the token sent (204)."""
        token = self._presented_token(headers)
        if token is None:
            raise self._forbidden("missing", "this action requires authentication")
        login = self._bearer_login(token)
        if not _revoke_token_digest(self.data_dir, token_digest(token)):
            raise self._forbidden("revoked", "authentication failed: the token has been revoked")
        logger.info("revoked a token of %s", login)
        return _Response(204)

    def _authorize_asymmetric(self, headers: Any, expected: Expected) -> RegisteredKey | None:
        token = headers.get("Authorization")
        if token is None:
            if expected.mutation is None:
                return None  # anonymous reads are fine
            raise self._unauthorized(
                f"the {expected.mutation} operation needs an asymmetric token (RFC 3231) "
                "in the Authorization header"
            )
        try:
            verified = verify_token_detailed(
                token.strip(),
                index_url=self.index_url,
                keys=self.registered_keys(),
                expected=expected,
                max_age=self.max_age,
                max_skew=self.max_skew,
            )
        except VerificationError as err:
            logger.warning("rejected token (%s): %s", err.reason, err)
            self.rejections.append(err.reason)
            raise self._unauthorized(str(err)) from None
        self.accepted_tokens.append(token.strip())
        return verified.key

    # ---- routing

    def _route(self, method: str, seg: list[str], headers: Any, body: bytes) -> _Response:
        if seg and seg[0] == "index":
            self._allow(method, "GET")
            self._authorize(headers, Expected(None))
            if seg == ["index", "config.json"]:
                api = self.api_url
                config: dict[str, Any] = {"dl": f"{api}/api/v1/crates", "api": api}
                if self.auth_required:
                    config["auth-required"] = True
                body = json.dumps(config, separators=(",", ":")).encode()
                return _conditional(headers, body, self._started_at, "application/json")
            return self._serve_index(seg[1:], headers)
        if seg == ["me"]:
            self._allow(method, "GET")
            if self.token_mode:
                text = (
                    "This demo registry takes bearer tokens (like crates.io).\n"
                    "Issue one with:\n"
                    "  gui-approver demo-registry-key --data DIR --token [--subject LOGIN]\n"
                )
            else:
                text = (
                    "This demo registry accepts cargo asymmetric tokens (RFC 3231).\n"
                    "Register your k3.public key with:\n"
                    "  gui-approver demo-registry-key --data DIR --key k3.public... [--subject S]\n"
                )
            return _Response(200, text.encode(), "text/plain; charset=utf-8")
        if self.token_mode and seg == ["api", "v1", "tokens", "current"]:
            self._allow(method, "DELETE")
            return self._revoke_current(headers)
        if seg[:3] != ["api", "v1", "crates"]:
            raise _HTTPError(404, f"no such endpoint: /{'/'.join(seg)}")
        rest = seg[3:]
        if rest == ["new"]:
            self._allow(method, "PUT")
            return self._publish(headers, body)
        if len(rest) == 2 and rest[1] == "owners":
            self._allow(method, "GET", "PUT", "DELETE")
            return self._owners(method, self._check_name(rest[0]), headers, body)
        if len(rest) == 3 and rest[2] in ("download", "yank", "unyank"):
            name = self._check_name(rest[0])
            vers = self._check_vers(rest[1])
            if rest[2] == "download":
                self._allow(method, "GET")
                self._authorize(headers, Expected(None))
                return self._download(name, vers)
            if rest[2] == "yank":
                self._allow(method, "DELETE")
            else:
                self._allow(method, "PUT")
            return self._set_yanked(name, vers, rest[2] == "yank", headers)
        raise _HTTPError(404, f"no such endpoint: /{'/'.join(seg)}")

    @staticmethod
    def _allow(method: str, *allowed: str) -> None:
        if method not in allowed:
            raise _HTTPError(
                405, f"method {method} is not allowed here", {"Allow": ", ".join(allowed)}
            )

    @staticmethod
    def _check_name(name: str) -> str:
        if not valid_name(name):
            raise _HTTPError(404, f"invalid crate name {name!r}")
        return name

    @staticmethod
    def _check_vers(vers: str) -> str:
        if not valid_vers(vers):
            raise _HTTPError(404, f"invalid version {vers!r}")
        return vers

    def _serve_index(self, rel: list[str], headers: Any) -> _Response:
        name = rel[-1] if rel else ""
        if not valid_name(name) or "/".join(rel) != index_path(name):
            raise _HTTPError(404, f"not in the index: {'/'.join(rel)}")
        path = self._index_file(name)
        with self._lock:  # content and mtime of the same version of the file
            try:
                data = path.read_bytes()
                mtime = int(path.stat().st_mtime)
            except FileNotFoundError:
                raise _HTTPError(404, f"crate {name} is not in this registry") from None
        return _conditional(headers, data, mtime, "text/plain; charset=utf-8")

    def _download(self, name: str, vers: str) -> _Response:
        try:
            data = self._crate_file(name, vers).read_bytes()
        except FileNotFoundError:
            raise _HTTPError(404, f"crate {name} has no version {vers}") from None
        return _Response(200, data, "application/gzip")

    def _publish(self, headers: Any, body: bytes) -> _Response:
        meta, crate = _parse_publish_body(body)
        name, vers = meta.get("name"), meta.get("vers")
        if not valid_name(name):
            raise _HTTPError(400, f"invalid crate name {name!r}")
        if not valid_vers(vers):
            raise _HTTPError(400, f"invalid version {vers!r}")
        assert isinstance(name, str)
        assert isinstance(vers, str)
        cksum = hashlib.sha256(crate).hexdigest()
        entry = _index_entry(meta, name, vers, cksum)  # 400 on bad metadata, before auth
        owner = self._authorize(headers, Expected("publish", name, vers, cksum))
        assert owner is not None
        with self._lock:
            entries = self._read_entries(name)
            if entries and entries[0]["name"] != name:
                raise _HTTPError(
                    409, f"crate {name} conflicts with the existing crate {entries[0]['name']}"
                )
            if any(_semver_core(e["vers"]) == _semver_core(vers) for e in entries):
                raise _HTTPError(409, f"crate version `{name}@{vers}` is already uploaded")
            _atomic_write(self._crate_file(name, vers), crate)
            self._write_entries(name, [*entries, entry])
            if not entries:
                owners = self._read_owners()
                owners[name.lower()] = [owner]
                self._write_owners(owners)
        logger.info("published %s@%s (%d bytes) as %s", name, vers, len(crate), owner)
        warnings: dict[str, list[str]] = {
            "invalid_categories": [],
            "invalid_badges": [],
            "other": [],
        }
        return _json_response({"warnings": warnings})

    def _set_yanked(self, name: str, vers: str, yanked: bool, headers: Any) -> _Response:
        op = "yank" if yanked else "unyank"
        self._authorize(headers, Expected(op, name, vers))
        with self._lock:
            entries = self._read_entries(name)
            matches = [e for e in entries if e["vers"] == vers]
            if not matches:
                raise _HTTPError(404, f"crate {name} has no version {vers}")
            for e in matches:
                e["yanked"] = yanked
            self._write_entries(name, entries)
        logger.info("%sed %s@%s", op, name, vers)
        return _json_response({"ok": True})

    def _owners(self, method: str, name: str, headers: Any, body: bytes) -> _Response:
        self._authorize(headers, Expected("owners", name))
        with self._lock:
            if not self._read_entries(name):
                raise _HTTPError(404, f"crate {name} is not in this registry")
            owners = self._read_owners()
            current = owners.get(name.lower(), [])
            if method == "GET":
                users = [
                    {"id": i, "login": login, "name": None} for i, login in enumerate(current, 1)
                ]
                return _json_response({"users": users})
            try:
                doc = json.loads(body)
            except ValueError:
                raise _HTTPError(400, 'expected a JSON body {"users": [...]}') from None
            users_in = _str_list(doc.get("users") if isinstance(doc, dict) else None, "users")
            if method == "PUT":
                updated = current + [u for u in users_in if u not in current]
                msg = f"user(s) {', '.join(users_in)} added as owner(s) of crate {name}"
            else:
                updated = [u for u in current if u not in users_in]
                if not updated:
                    raise _HTTPError(400, f"cannot remove every owner of crate {name}")
                msg = f"user(s) {', '.join(users_in)} removed as owner(s) of crate {name}"
            owners[name.lower()] = updated
            self._write_owners(owners)
        return _json_response({"ok": True, "msg": msg})


# --------------------------------------------------------------------------- CLI


def _default_data_dir() -> Path:
    return Path(platformdirs.user_data_dir("gui-approver")) / "demo-registry"


def _run_demo_registry(args: argparse.Namespace) -> int:
    try:
        keys = [RegisteredKey(public=k, subject=args.subject) for k in args.key or ()]
        registry = DemoRegistry(
            Path(args.data) if args.data else _default_data_dir(),
            host=args.host,
            port=args.port,
            keys=keys,
            max_age=args.max_age,
            allow_remote=args.allow_remote,
            token_mode=args.token_mode,
            auth_required=args.auth_required,
        )
        registry.start()
    except (ValueError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    stop = threading.Event()

    def on_signal(_signum: int, _frame: object) -> None:
        stop.set()

    previous: dict[signal.Signals, Any] = {}
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(ValueError):  # not the main thread: rely on the caller
            previous[sig] = signal.signal(sig, on_signal)
    try:
        print(f"index: {registry.index_url}", flush=True)
        print(f"api: {registry.api_url}", flush=True)
        print(f"data: {registry.data_dir}", flush=True)
        while not stop.wait(1.0):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        registry.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0


def _run_demo_registry_key(args: argparse.Namespace) -> int:
    if args.token:
        data = Path(args.data)
        try:
            token = issue_token(data, args.subject or "demo", args.name)
        except (ValueError, OSError) as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
        # The token goes to stdout alone (TOKEN=$(...)); it is shown this once only.
        print(token, flush=True)
        print(
            f"issued a bearer token for {args.subject or 'demo'} (fingerprint "
            f"{token_digest(token)[:8]}); only its SHA-256 is kept in {data / TOKENS_FILE}",
            file=sys.stderr,
        )
        return 0
    try:
        key = RegisteredKey(public=args.key, subject=args.subject)
        add_key_to_file(Path(args.data), key)
    except (ValueError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    subject = f" with subject {key.subject!r}" if key.subject is not None else ""
    print(f"registered {key.kip}{subject} in {Path(args.data) / KEYS_FILE}")
    return 0


def add_registry_parsers(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add ``demo-registry`` and ``demo-registry-key``; each sets ``func`` (returns exit code)."""
    p = subparsers.add_parser(
        "demo-registry",
        help="serve a local sparse cargo registry that verifies asymmetric tokens",
        description=(
            "Serve a sparse-HTTP cargo registry that requires RFC 3231 asymmetric tokens. "
            "The first line on stdout is 'index: <index URL>'. Stops on SIGINT/SIGTERM."
        ),
    )
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=0, help="port (default: any free port)")
    p.add_argument("--data", default=None, metavar="DIR", help="data directory")
    p.add_argument(
        "--key",
        action="append",
        default=[],
        metavar="K3_PUBLIC",
        help="accept this k3.public... key (repeatable; not written to keys.json)",
    )
    p.add_argument("--subject", default=None, help="the subject of the --key key(s)")
    p.add_argument(
        "--max-age", type=float, default=60.0, metavar="SECONDS", help="oldest token accepted"
    )
    p.add_argument(
        "--allow-remote",
        action="store_true",
        help="allow binding a non-loopback address (tokens and crates travel over plain HTTP)",
    )
    p.add_argument(
        "--token-mode",
        action="store_true",
        help="take crates.io-style bearer tokens (issue them with demo-registry-key --token) "
        "instead of asymmetric tokens",
    )
    p.add_argument(
        "--auth-required",
        action="store_true",
        help="token mode: every request, reads included, needs a valid token",
    )
    p.set_defaults(func=_run_demo_registry)

    k = subparsers.add_parser(
        "demo-registry-key",
        help="register a public key, or issue a bearer token, for a demo registry",
        description=(
            "Add a k3.public key to DIR/keys.json, or (--token) issue a bearer token for a "
            "registry in token mode: the token is printed once on stdout and only its SHA-256 "
            "is stored. A running demo registry picks either up."
        ),
    )
    k.add_argument("--data", required=True, metavar="DIR", help="the registry's data directory")
    what = k.add_mutually_exclusive_group(required=True)
    what.add_argument("--key", metavar="K3_PUBLIC", help="the k3.public... key")
    what.add_argument("--token", action="store_true", help="issue a fresh bearer token")
    k.add_argument(
        "--subject",
        default=None,
        help="the key's subject, if cargo sends one; with --token the login (default demo)",
    )
    k.add_argument("--name", default=None, help="with --token: a name for the token")
    k.set_defaults(func=_run_demo_registry_key)


def main(argv: list[str] | None = None) -> int:
    """``python -m gui_approver.registry.server demo-registry ...`` (the CLI: gui_approver.cli)."""
    logging.basicConfig(level=logging.WARNING)
    parser = argparse.ArgumentParser(prog="gui-approver")
    sub = parser.add_subparsers(dest="command", required=True)
    add_registry_parsers(sub)
    args = parser.parse_args(argv)
    result: int = args.func(args)
    return result


if __name__ == "__main__":
    sys.exit(main())

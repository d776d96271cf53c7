"""The audit log: one JSON line per decision, durable before any token leaves the app. Qt-free.

Every decision of the signing service (a token signed, a request denied, a request that
failed, a key created or deleted) is appended to ``audit.jsonl`` in the user state dir
(``$XDG_STATE_HOME/gui-approver`` on Linux) as one compact JSON object per line, and the
file is ``fsync``-ed before :meth:`AuditLog.append` returns. The signing service releases a
token only after its record is on disk: if the write fails (a full disk, a read-only or
vanished directory), the request is denied instead.

What a record holds (absent values are ``null``)::

    {"time": "2026-11-22T02:20:56.477768Z", "event": "get", "registry": "local",
     "index_url": "sparse+http://127.0.0.1:8765/index/", "operation": "publish",
     "crate": "foo", "version": "1.2.3", "cksum": "<64 hex>", "decision": "signed",
     "reason": "approved in the dialog", "requester": {"pid": 4242, "ppid": 4241,
     "cwd": "/home/me/foo"}, "key_id": "k3.pid....", "token_sha256": "<16 hex>"}

Never a secret: no key material, no token. ``token_sha256`` is the first 16 hex digits of
the SHA-256 of the token, enough to match a registry's log line, useless to an attacker.

The reader (:func:`read_recent`) skips any line that is not a complete JSON object, so a
line torn by a crash (SIGKILL, power loss) in the middle of a write costs only that line;
the writer starts its next record on a fresh line after such a fragment.

When the file would grow past ``max_bytes`` it is renamed to ``audit.jsonl.1`` (replacing
an older one) and a new file is started; :func:`read_recent` reads across both.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import logging
import os
import stat
import threading
from collections import deque
from collections.abc import Iterator
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

from gui_approver.errors import GuiApproverError

log = logging.getLogger(__name__)

FILE_NAME = "audit.jsonl"
#: Size at which the log is rotated (one previous file is kept).
DEFAULT_MAX_BYTES = 20 * 1000 * 1000
#: Longest record written; longer free-text fields are shortened to keep lines bounded.
MAX_RECORD_BYTES = 16 * 1024
_MAX_TEXT = 2048
_READ_BLOCK = 64 * 1024

#: The fields of a record, in the order they are written.
FIELDS = (
    "time",
    "event",
    "registry",
    "index_url",
    "operation",
    "crate",
    "version",
    "cksum",
    "decision",
    "reason",
    "requester",
    "key_id",
    "token_sha256",
)


class Verdict(StrEnum):
    """What an audit record says happened (its ``decision`` field)."""

    SIGNED = "signed"  # a token was signed or a bearer token released
    DENIED = "denied"
    ERROR = "error"
    KEY_CREATED = "key-created"
    KEY_DELETED = "key-deleted"
    TOKEN_STORED = "token-stored"  # noqa: S105 - an audit verdict, not a secret


class AuditError(GuiApproverError):
    """The audit log cannot be written; nothing may be signed until it can."""

    hint = (
        "gui-approver releases no token it cannot record; free some disk space (or fix the "
        "permissions) of the audit log's directory and run the cargo command again"
    )


def default_path() -> Path:
    import platformdirs

    return Path(platformdirs.user_state_dir("gui-approver")) / FILE_NAME


def token_fingerprint(token: str) -> str:
    """The first 16 hex digits of SHA-256 over the token: identifies it, reveals nothing."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()[:16]


def now_rfc3339() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def _short(value: Any) -> Any:
    if isinstance(value, str) and len(value) > _MAX_TEXT:
        return value[:_MAX_TEXT] + "…"
    return value


def make_record(**fields: Any) -> dict[str, Any]:
    """A record with every field of :data:`FIELDS` (missing ones ``None``), in order."""
    unknown = set(fields) - set(FIELDS)
    if unknown:
        raise ValueError(f"unknown audit fields {sorted(unknown)}")
    record: dict[str, Any] = {name: _short(fields.get(name)) for name in FIELDS}
    if record["time"] is None:
        record["time"] = now_rfc3339()
    requester = record["requester"]
    if isinstance(requester, dict):
        record["requester"] = {k: _short(v) for k, v in requester.items()}
    return record


def _encode(record: dict[str, Any]) -> bytes:
    line = json.dumps(record, separators=(",", ":"), ensure_ascii=False).encode(
        "utf-8", "backslashreplace"
    )
    if len(line) >= MAX_RECORD_BYTES:
        # Only free text can be this long; keep the decision, drop the detail.
        record = {**record, "reason": "(too long)", "requester": None}
        line = json.dumps(record, separators=(",", ":"), ensure_ascii=False).encode(
            "utf-8", "backslashreplace"
        )
    return line + b"\n"


def _describe_oserror(exc: OSError) -> str:
    name = errno.errorcode.get(exc.errno or 0, "")
    text = exc.strerror or type(exc).__name__
    return f"{text} ({name})" if name else text


class AuditLog:
    """Append-only, fsync-ed JSON-lines log. Thread-safe; one instance per file per process.

    Writes are serialised; ``fsync`` is shared between threads that append at the same time
    (group commit), so many concurrent requests cost about one disk flush, and yet no
    :meth:`append` returns before its own record is durable.
    """

    def __init__(
        self, path: Path | str | None = None, *, max_bytes: int = DEFAULT_MAX_BYTES
    ) -> None:
        self.path = Path(path) if path is not None else default_path()
        #: Rotate when the file would grow past this many bytes (0: never rotate).
        self.max_bytes = max_bytes
        self._fd: int | None = None
        self._ino: tuple[int, int] | None = None
        self._size = 0
        self._torn = False
        self._lock = threading.Lock()  # the fd, the file size, writes, rotation
        self._sync_lock = threading.Lock()  # fsync; taken inside _lock only by rotation/close
        self._written = 0  # sequence number of the last write
        self._synced = 0  # ... of the last write known to be durable
        self._failed_upto = 0  # writes up to here are of unknown durability

    # -- writing ---------------------------------------------------------------------------
    def append(self, record: dict[str, Any]) -> None:
        """Write ``record`` as one line and make it durable; raise :class:`AuditError`."""
        line = _encode(record)
        with self._lock:
            try:
                fd = self._writable_fd(len(line))
                seq = self._write(fd, line)
            except OSError as exc:
                raise AuditError(
                    f"cannot write the audit log {self.path}: {_describe_oserror(exc)}"
                ) from None
        self._sync(seq)

    def record(self, **fields: Any) -> dict[str, Any]:
        """Build a record with :func:`make_record`, append it, and return it."""
        rec = make_record(**fields)
        self.append(rec)
        return rec

    def _writable_fd(self, incoming: int) -> int:
        if self._fd is not None and not self._still_ours():
            self._close_locked()
        if (
            self._fd is not None
            and self.max_bytes > 0
            and self._size > 0
            and self._size + incoming > self.max_bytes
        ):
            self._rotate_locked()
        if self._fd is None:
            self._open_locked()
        assert self._fd is not None
        return self._fd

    def _still_ours(self) -> bool:
        """False when the file was removed or replaced behind our back (reopen then)."""
        try:
            st = os.stat(self.path)
        except OSError:
            return False
        return (st.st_dev, st.st_ino) == self._ino

    def _open_locked(self) -> None:
        directory = self.path.parent
        created_dir = not directory.exists()
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW
        existed = self.path.exists()
        fd = os.open(self.path, flags, 0o600)
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode) or st.st_uid != os.getuid():
                raise OSError(errno.EPERM, "the audit log is not a regular file of yours")
            if not existed or created_dir:
                _fsync_dir(directory)
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        self._ino = (st.st_dev, st.st_ino)
        self._size = st.st_size
        self._torn = st.st_size > 0 and not _ends_with_newline(self.path)

    def _write(self, fd: int, line: bytes) -> int:
        before = self._size
        if self._torn:
            # The last record was torn by a crash: start ours on a line of its own.
            line = b"\n" + line
        view = memoryview(line)
        written = 0
        try:
            while written < len(view):
                n = os.write(fd, view[written:])
                if n <= 0:
                    raise OSError(errno.EIO, "short write")
                written += n
        except OSError:
            if written:
                # Do not leave half a record for the next one to be glued to.
                with contextlib.suppress(OSError):
                    os.ftruncate(fd, before)
                with contextlib.suppress(OSError):
                    self._size = os.fstat(fd).st_size
                    self._torn = self._torn or self._size != before
            raise
        self._size = before + written
        self._torn = False
        self._written += 1
        return self._written

    def _sync(self, seq: int) -> None:
        with self._sync_lock:
            if seq <= self._failed_upto:
                raise AuditError(
                    f"cannot write the audit log {self.path}: flushing it to disk failed"
                )
            if self._synced >= seq:
                return  # another thread's fsync covered our write
            target = self._written
            fd = self._fd
            if fd is None:  # pragma: no cover - close() flushed it (and set _synced)
                return
            try:
                os.fsync(fd)
            except OSError as exc:
                self._failed_upto = target
                raise AuditError(
                    f"cannot write the audit log {self.path}: {_describe_oserror(exc)}"
                ) from None
            self._synced = target

    def _rotate_locked(self) -> None:
        self._close_locked()
        rotated = self.path.with_name(self.path.name + ".1")
        try:
            os.replace(self.path, rotated)
        except OSError as exc:  # keep appending to the big file rather than stop signing
            log.warning("cannot rotate the audit log %s (%s)", self.path, exc.strerror)
            return
        _fsync_dir(self.path.parent)

    def _close_locked(self) -> None:
        with self._sync_lock:
            if self._fd is None:
                return
            try:
                if self._synced < self._written:
                    try:
                        os.fsync(self._fd)
                    except OSError:
                        self._failed_upto = self._written
                    else:
                        self._synced = self._written
            finally:
                os.close(self._fd)
                self._fd = None
                self._ino = None

    def close(self) -> None:
        with self._lock:
            self._close_locked()

    # -- reading ---------------------------------------------------------------------------
    def read_recent(self, n: int) -> list[dict[str, Any]]:
        return read_recent(n, self.path)


def _ends_with_newline(path: Path) -> bool:
    try:
        with open(path, "rb") as fh:
            fh.seek(-1, os.SEEK_END)
            return fh.read(1) == b"\n"
    except OSError:
        return True


def _fsync_dir(directory: Path) -> None:
    try:
        dfd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return
    try:
        with contextlib.suppress(OSError):
            os.fsync(dfd)
    finally:
        os.close(dfd)


def _lines_backwards(path: Path) -> Iterator[bytes]:
    """The lines of ``path``, last first, reading blocks from the end (no line endings)."""
    try:
        fh = open(path, "rb")  # noqa: SIM115 - closed in finally, generator
    except OSError:
        return
    try:
        fh.seek(0, os.SEEK_END)
        pos = fh.tell()
        tail = b""
        while pos > 0:
            step = min(_READ_BLOCK, pos)
            pos -= step
            fh.seek(pos)
            chunk = fh.read(step) + tail
            parts = chunk.split(b"\n")
            tail = parts[0]
            yield from reversed(parts[1:])
        yield tail
    finally:
        fh.close()


def _parse_line(raw: bytes) -> dict[str, Any] | None:
    raw = raw.strip()
    if not raw or len(raw) > MAX_RECORD_BYTES * 2:
        return None
    try:
        obj = json.loads(raw)
    except (ValueError, RecursionError):
        return None
    if not isinstance(obj, dict) or not isinstance(obj.get("decision"), str):
        return None
    return obj


def read_recent(n: int, path: Path | str | None = None) -> list[dict[str, Any]]:
    """The last ``n`` complete records, oldest first (newest last), from the log and its
    rotated predecessor. Torn or damaged lines are skipped; a missing log gives ``[]``."""
    if n <= 0:
        return []
    path = Path(path) if path is not None else default_path()
    out: deque[dict[str, Any]] = deque()
    for candidate in (path, path.with_name(path.name + ".1")):
        for raw in _lines_backwards(candidate):
            rec = _parse_line(raw)
            if rec is None:
                continue
            out.appendleft(rec)
            if len(out) >= n:
                return list(out)
    return list(out)

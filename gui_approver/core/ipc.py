"""The app's side of the local IPC: a Unix-domain socket in a private 0700 directory.

Only connections from our own uid (``SO_PEERCRED``) are served. One JSON message per line,
bounded in size, with a timeout on every read; anything malformed is logged and dropped
without being acted on. The parsing is :func:`gui_approver.client.framing.parse_ipc_request`, a
pure function. A ``flock`` on ``app.lock`` makes the app a single instance and lets the
lock holder replace a stale socket without ever unlinking a live one.

The socket directory is created 0700 and checked at every start: it must be a real
directory (not a symlink) owned by us with no group/other access, inside a parent that
nobody else can rename it out of. The requester's pid, parent pid and working directory in
each request are replaced by what the kernel says about the connected peer (``SO_PEERCRED``
and ``/proc``) where it can tell; a pid of 0 (the peer lives outside our PID namespace) is
no answer, and the claimed pid is then dropped rather than trusted. At most
:data:`MAX_CONNECTIONS` requests are served at once; one that waits too long for a slot gets
a clear "busy" answer rather than silence.

Slow senders (slowloris) cannot hold those slots: a connection takes a slot only once its
whole message has arrived, the message has one deadline (:data:`READ_TIMEOUT`) however the
bytes trickle in, and at most :data:`MAX_UNREAD` connections may be still sending; beyond
that the oldest one that has had :data:`UNREAD_GRACE` seconds is hung up on. A real bridge
sends its message as soon as it connects, so it is never the one dropped.

"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
import socket
import stat
import struct
import threading
import time
from collections.abc import Callable
from typing import Protocol

from gui_approver import __version__, errors
from gui_approver.client import framing, paths, protocol
from gui_approver.client.framing import IpcRequest
from gui_approver.errors import GuiApproverError
from gui_approver.secret import Secret

log = logging.getLogger(__name__)

#: The whole message must arrive within this many seconds of the connection being accepted.
READ_TIMEOUT = 5.0
MAX_CONNECTIONS = 128
#: Connections that have not yet sent a full message; beyond this the oldest is dropped.
MAX_UNREAD = 32
#: A connection still sending after this long may be dropped to make room for a new one.
UNREAD_GRACE = 0.5
#: How long a new connection may wait for a free slot before it is told the app is busy.
BUSY_WAIT = 5.0
LISTEN_BACKLOG = 512


class AlreadyRunning(errors.AlreadyRunning):
    def __init__(self, pid: int | None) -> None:
        super().__init__(
            f"gui-approver is already running (pid {pid})"
            if pid
            else "gui-approver is already running"
        )
        self.pid = pid


UnsafeDirectory = errors.UnsafeDirectory


class Ack(Protocol):
    """What a handler gets beside the request: ``ack(timeout)`` tells the bridge how long
    to wait; ``ack.watch()`` (only for requests that wait for a human) returns an event set
    when the bridge hangs up."""

    def __call__(self, timeout: float) -> None: ...
    def watch(self) -> threading.Event: ...


#: handler(request, ack) -> (response, notice)
Handler = Callable[[IpcRequest, Ack], tuple[dict[str, object], str | None]]


def peer_credentials(sock: socket.socket) -> tuple[int, int, int]:
    raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    pid, uid, gid = struct.unpack("3i", raw)
    return pid, uid, gid


def prepare_private_dir(path: str) -> None:
    """Create ``path`` 0700 or check an existing one; raise UnsafeDirectory if it is not ours.

    Refused: a path that is not a directory (a symlink included), one owned by another user,
    one with any group/other permission bits, or one whose parent lets another user replace
    it (group/world-writable without the sticky bit, or owned by someone but us or root).
    """
    path = os.path.abspath(path)
    parent = os.path.dirname(path)
    os.makedirs(parent, mode=0o700, exist_ok=True)
    with contextlib.suppress(FileExistsError):
        os.mkdir(path, 0o700)
    problem = paths.check_private_dir(path) or _parent_problem(parent)
    if problem:
        raise UnsafeDirectory(f"refusing to use the socket directory: {problem}")


def _parent_problem(parent: str) -> str | None:
    try:
        st = os.stat(parent)
    except OSError as exc:
        return f"cannot inspect {parent} ({exc.strerror})"
    if st.st_uid not in (os.getuid(), 0):
        return f"its parent {parent} is owned by uid {st.st_uid}, not by you or root"
    if st.st_mode & 0o022 and not st.st_mode & stat.S_ISVTX:
        return (
            f"its parent {parent} is writable by other users without the sticky bit "
            f"(mode {stat.S_IMODE(st.st_mode):o}), so they could replace it"
        )
    return None


class UnixSocketServer:
    def __init__(
        self,
        handler: Handler,
        directory: str | None = None,
        *,
        on_lock: Callable[[], int] | None = None,
        on_unlock: Callable[[str, Secret], str] | None = None,
        on_show: Callable[[], None] | None = None,
    ) -> None:
        """``on_unlock(registry, secret)`` unlocks one key and returns a short message; it
        raises GuiApproverError (shown to the caller) when it cannot."""
        self.handler = handler
        self.on_lock = on_lock
        self.on_unlock = on_unlock
        self.on_show = on_show
        self.directory = directory or paths.socket_dir()
        self.path = os.path.join(self.directory, paths.SOCKET_NAME)
        self._lock_fd: int | None = None
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._slots = threading.BoundedSemaphore(MAX_CONNECTIONS)
        self._conns: set[socket.socket] = set()
        self._conns_lock = threading.Lock()
        #: connections still sending their message -> when they were accepted
        self._unread: dict[socket.socket, float] = {}

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> None:
        prepare_private_dir(self.directory)
        lock_path = os.path.join(self.directory, "app.lock")
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pid = _read_pid(fd)
            os.close(fd)
            raise AlreadyRunning(pid) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._lock_fd = fd
        # We hold the lock, so any socket file here should belong to a dead instance. Make
        # sure: a socket that still accepts connections is live (an instance that does not
        # take the lock, e.g. an older version) and is never unlinked.
        try:
            st = os.lstat(self.path)
        except FileNotFoundError:
            pass
        else:
            if not stat.S_ISSOCK(st.st_mode) or st.st_uid != os.getuid():
                self._release_lock()
                raise UnsafeDirectory(f"{self.path} exists and is not our socket; not touching it")
            if _socket_is_live(self.path):
                self._release_lock()
                raise AlreadyRunning(None)
            log.info("replacing the stale socket of a previous instance")
            os.unlink(self.path)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old_umask = os.umask(0o177)
        try:
            sock.bind(self.path)
        except BaseException:
            sock.close()
            self._release_lock()
            raise
        finally:
            os.umask(old_umask)
        sock.listen(LISTEN_BACKLOG)
        self._sock = sock
        self._thread = threading.Thread(target=self._accept_loop, name="ipc-accept", daemon=True)
        self._thread.start()
        log.info("listening on %s", self.path)

    def stop(self) -> None:
        self._stopping.set()
        if self._sock is not None:
            with contextlib.suppress(OSError):
                self._sock.shutdown(socket.SHUT_RDWR)
            self._sock.close()
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.path)
            self._sock = None
        with self._conns_lock:
            for conn in list(self._conns):
                with contextlib.suppress(OSError):
                    conn.shutdown(socket.SHUT_RDWR)
        if self._thread is not None:
            self._thread.join(timeout=2)
        self._release_lock()

    def _release_lock(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    # -- serving ---------------------------------------------------------------------------
    def _accept_loop(self) -> None:
        assert self._sock is not None
        sock = self._sock
        while not self._stopping.is_set():
            try:
                conn, _ = sock.accept()
            except OSError:
                if self._stopping.is_set():
                    return
                continue
            self._admit(conn)
            threading.Thread(target=self._serve, args=(conn,), name="ipc-conn", daemon=True).start()

    def _admit(self, conn: socket.socket) -> None:
        """Count ``conn`` as unread; over :data:`MAX_UNREAD`, drop the oldest stale sender."""
        now = time.monotonic()
        with self._conns_lock:
            self._conns.add(conn)
            if len(self._unread) >= MAX_UNREAD:
                oldest = min(self._unread, key=self._unread.__getitem__)
                if now - self._unread[oldest] >= UNREAD_GRACE:
                    log.warning("too many connections still sending; dropping the oldest")
                    del self._unread[oldest]
                    with contextlib.suppress(OSError):
                        oldest.shutdown(socket.SHUT_RDWR)
            self._unread[conn] = now

    def unread_connections(self) -> int:
        """How many connections have not yet sent a full message."""
        with self._conns_lock:
            return len(self._unread)

    def stale_readers(self) -> int:
        """How many of those have been sending for :data:`UNREAD_GRACE` seconds or more."""
        now = time.monotonic()
        with self._conns_lock:
            return sum(now - t >= UNREAD_GRACE for t in self._unread.values())

    def _serve(self, conn: socket.socket) -> None:
        slot = False
        try:
            with conn:
                line = self._receive(conn)
                if line is None:
                    return
                slot = self._slots.acquire(timeout=BUSY_WAIT)
                if not slot:
                    log.warning("too many connections; telling one that the app is busy")
                    _answer_busy(conn)
                    return
                self._serve_one(conn, line)
        except OSError as exc:
            log.info("connection ended early (%s)", type(exc).__name__)
        finally:
            with self._conns_lock:
                self._conns.discard(conn)
                self._unread.pop(conn, None)
            if slot:
                self._slots.release()

    def _receive(self, conn: socket.socket) -> tuple[int, bytes] | None:
        """The peer's pid and its one message line, or None (wrong uid, late, too long)."""
        with self._conns_lock:
            accepted = self._unread.get(conn, time.monotonic())
        peer_pid, uid, _gid = peer_credentials(conn)
        if uid != os.getuid():
            log.warning("refused a connection from uid %d (pid %d)", uid, peer_pid)
            return None
        line = _read_line(conn, deadline=accepted + READ_TIMEOUT)
        with self._conns_lock:
            self._unread.pop(conn, None)
        if line is None:
            log.warning("dropped a connection: no complete message within the limits")
            return None
        return peer_pid, line

    def _serve_one(self, conn: socket.socket, received: tuple[int, bytes]) -> None:
        peer_pid, line = received
        conn.settimeout(READ_TIMEOUT)
        try:
            message = framing.parse_ipc_request(line)
        except protocol.ProtocolError as exc:
            log.warning("dropped a malformed IPC message: %s", exc)
            return
        if message.type == "ping":
            conn.sendall(
                framing.encode_ipc({"type": "pong", "pid": os.getpid(), "version": __version__})
            )
            return
        if message.type == "lock":
            count = self.on_lock() if self.on_lock is not None else 0
            conn.sendall(framing.encode_ipc({"type": "locked", "count": count}))
            return
        if message.type == "unlock":
            conn.sendall(framing.encode_ipc(self._unlock(message)))
            return
        if message.type == "show":
            if self.on_show is not None:
                self.on_show()
            conn.sendall(framing.encode_ipc({"type": "shown"}))
            return

        message = _with_kernel_provenance(message, peer_pid)
        send_ack = _Ack(conn)
        try:
            response, notice = self.handler(message, send_ack)
        finally:
            send_ack.done.set()
        payload: dict[str, object] = {"type": "response", "response": response}
        if notice:
            payload["notice"] = notice
        conn.settimeout(READ_TIMEOUT)
        conn.sendall(framing.encode_ipc(payload))

    def _unlock(self, message: IpcRequest) -> dict[str, object]:
        assert message.registry is not None and message.secret is not None
        if self.on_unlock is None:
            return {
                "type": "unlocked",
                "ok": False,
                "message": "this gui-approver cannot unlock keys",
            }
        try:
            text = self.on_unlock(message.registry, message.secret)
        except GuiApproverError as exc:
            return {"type": "unlocked", "ok": False, "message": exc.full()}
        except Exception as exc:
            log.exception("unlocking a key failed")
            return {
                "type": "unlocked",
                "ok": False,
                "message": f"unlocking failed ({type(exc).__name__})",
            }
        return {"type": "unlocked", "ok": True, "message": text}


class _Ack:
    """Sends the acknowledgement. ``watch()`` (called only for requests that wait for a
    human, so reads never pay for a thread) returns an event set if the bridge hangs up
    while waiting (cargo interrupted), so a pending dialog can be withdrawn."""

    def __init__(self, conn: socket.socket) -> None:
        self.conn = conn
        self.gone = threading.Event()
        self.done = threading.Event()
        self._watching = False

    def __call__(self, timeout: float) -> None:
        self.conn.sendall(framing.encode_ipc({"type": "ack", "timeout": timeout}))

    def watch(self) -> threading.Event:
        if not self._watching:
            self._watching = True
            threading.Thread(
                target=_watch_hangup, args=(self.conn, self), name="ipc-hangup", daemon=True
            ).start()
        return self.gone


def _watch_hangup(conn: socket.socket, ack: _Ack) -> None:
    """The bridge sends nothing after its request: EOF means it is gone."""
    while not ack.done.is_set():
        try:
            data = conn.recv(1, socket.MSG_PEEK)
        except TimeoutError:
            continue
        except OSError:
            data = b""
        if not data:
            if not ack.done.is_set():
                log.info("the requester hung up before a decision")
                ack.gone.set()
            return
        # Unexpected extra bytes: ignore them (never acted on) and keep watching.
        with contextlib.suppress(OSError):
            conn.recv(65536)


def _read_line(conn: socket.socket, deadline: float | None = None) -> bytes | None:
    """One line; None when it is too long, the peer hangs up, or ``deadline`` (monotonic)
    passes. The deadline covers the whole line, not each read."""
    buf = bytearray()
    while True:
        nl = buf.find(b"\n")
        if nl >= 0:
            return bytes(buf[: nl + 1])
        if len(buf) > framing.MAX_IPC_BYTES:
            return None
        if deadline is not None:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            conn.settimeout(remaining)
        try:
            chunk = conn.recv(65536)
        except TimeoutError:
            return None
        if not chunk:
            return None
        buf += chunk


def _answer_busy(conn: socket.socket) -> None:
    reply = framing.encode_ipc(
        {
            "type": "response",
            "response": protocol.err_other(
                f"gui-approver is busy ({MAX_CONNECTIONS} requests are in progress); nothing was "
                "signed; run the cargo command again in a moment"
            ),
        }
    )
    with contextlib.suppress(OSError), conn:
        conn.settimeout(1.0)
        conn.sendall(reply)


def _socket_is_live(path: str) -> bool:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.settimeout(1.0)
        try:
            probe.connect(path)
        except OSError as exc:
            # ECONNREFUSED: nobody listens (stale). Anything else: do not guess "stale".
            return exc.errno not in (errno.ECONNREFUSED, errno.ENOENT)
        return True


def _proc_ppid(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            data = fh.read()
        # "pid (comm) state ppid ...": comm may hold spaces and parentheses.
        return int(data[data.rindex(b")") + 2 :].split()[1])
    except (OSError, ValueError, IndexError):
        return None


def _with_kernel_provenance(message: IpcRequest, peer_pid: int) -> IpcRequest:
    """Replace what the bridge says about itself by what the kernel says, where it can.

    Pid 0 means the kernel could not name the peer (it lives outside our PID namespace): the
    pid and parent the bridge claims are then dropped, so the request is never taken as
    coming from a process the kernel vouched for."""
    if message.type != "credential":
        return message
    claimed = message.provenance
    if peer_pid <= 0:
        log.warning(
            "the kernel did not name the requesting process (pid %d); its claimed "
            "pid %s is not trusted",
            peer_pid,
            claimed.pid,
        )
        return message.replace(provenance=claimed.replace(pid=None, ppid=None))
    if claimed.pid is not None and claimed.pid != peer_pid:
        log.warning("a requester claimed pid %s but is pid %d", claimed.pid, peer_pid)
    ppid = _proc_ppid(peer_pid)
    try:
        cwd: str | None = os.readlink(f"/proc/{peer_pid}/cwd")
    except OSError:
        cwd = claimed.cwd
    provenance = claimed.replace(
        pid=peer_pid, ppid=ppid if ppid is not None else claimed.ppid, cwd=cwd
    )
    return message.replace(provenance=provenance)


def _read_pid(fd: int) -> int | None:
    try:
        data = os.pread(fd, 32, 0)
        return int(data.decode().strip() or "0") or None
    except (OSError, ValueError):
        return None


def ping(directory: str | None = None, timeout: float = 2.0) -> dict[str, object] | None:
    """Ask a running app for its pid; None when none answers."""
    return _simple_request("ping", directory, timeout)


def request_lock(directory: str | None = None, timeout: float = 5.0) -> dict[str, object] | None:
    """Ask a running app to lock its unlocked keys; None when no app answers."""
    return _simple_request("lock", directory, timeout)


def request_unlock(
    registry: str, secret: Secret, directory: str | None = None, timeout: float = 60.0
) -> dict[str, object] | None:
    """Hand a passphrase or PIN for ``registry``'s key to the running app; None when no app
    answers. The reply: ``{"ok": bool, "message": str}``."""
    return _simple_request(
        "unlock", directory, timeout, {"registry": registry, "secret": secret.expose()}
    )


def request_show(directory: str | None = None, timeout: float = 5.0) -> dict[str, object] | None:
    """Ask a running app to bring its window forward; None when no app answers."""
    return _simple_request("show", directory, timeout)


def _simple_request(
    typ: str, directory: str | None, timeout: float, extra: dict[str, object] | None = None
) -> dict[str, object] | None:
    path = os.path.join(directory or paths.socket_dir(), paths.SOCKET_NAME)
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout)
            sock.connect(path)
            sock.sendall(framing.encode_ipc({"type": typ, **(extra or {})}))
            line = _read_line(sock)
    except OSError:
        return None
    if line is None:
        return None
    try:
        return framing.parse_ipc_reply(line)
    except protocol.ProtocolError:
        return None

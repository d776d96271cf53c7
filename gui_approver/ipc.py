"""The app's side of the local IPC: a Unix-domain socket in a private 0700 directory.

Only connections from our own uid (``SO_PEERCRED``) are served. One JSON message per line,
bounded in size, with a timeout on every read; anything malformed is logged and dropped
without being acted on. The parsing is :func:`gui_approver.protocol.parse_ipc_request`, a
pure function. A ``flock`` on ``app.lock`` makes the app a single instance and lets the
lock holder replace a stale socket without ever unlinking a live one.

The transport sits behind :class:`Transport` so a named pipe can replace it elsewhere.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import socket
import stat
import struct
import threading
from collections.abc import Callable
from typing import Protocol

from gui_approver import __version__, protocol
from gui_approver.protocol import IpcRequest

log = logging.getLogger(__name__)

READ_TIMEOUT = 5.0
MAX_CONNECTIONS = 128


class AlreadyRunning(Exception):
    def __init__(self, pid: int | None) -> None:
        super().__init__(f"gui-approver is already running (pid {pid})" if pid else
                         "gui-approver is already running")
        self.pid = pid


class UnsafeDirectory(Exception):
    pass


#: handler(request, send_ack) -> (response, notice)
Handler = Callable[[IpcRequest, Callable[[float], None]], tuple[dict[str, object], str | None]]


class Transport(Protocol):
    def start(self) -> None: ...
    def stop(self) -> None: ...


def peer_credentials(sock: socket.socket) -> tuple[int, int, int]:
    raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    pid, uid, gid = struct.unpack("3i", raw)
    return pid, uid, gid


def prepare_private_dir(path: str) -> None:
    """Create ``path`` 0700 or check an existing one; raise UnsafeDirectory if it is not ours."""
    parent = os.path.dirname(path)
    os.makedirs(parent, exist_ok=True)
    with contextlib.suppress(FileExistsError):
        os.mkdir(path, 0o700)
    problem = protocol.check_private_dir(path)
    if problem:
        raise UnsafeDirectory(f"refusing to use the socket directory: {problem}")


class UnixSocketServer:
    def __init__(self, handler: Handler, directory: str | None = None) -> None:
        self.handler = handler
        self.directory = directory or protocol.socket_dir()
        self.path = os.path.join(self.directory, protocol.SOCKET_NAME)
        self._lock_fd: int | None = None
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._slots = threading.BoundedSemaphore(MAX_CONNECTIONS)
        self._conns: set[socket.socket] = set()
        self._conns_lock = threading.Lock()

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
        # We hold the lock, so any socket file here belongs to a dead instance.
        try:
            st = os.lstat(self.path)
        except FileNotFoundError:
            pass
        else:
            if not stat.S_ISSOCK(st.st_mode) or st.st_uid != os.getuid():
                self._release_lock()
                raise UnsafeDirectory(f"{self.path} exists and is not our socket; not touching it")
            log.info("replacing the stale socket of a previous instance")
            os.unlink(self.path)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old_umask = os.umask(0o177)
        try:
            sock.bind(self.path)
        finally:
            os.umask(old_umask)
        sock.listen(64)
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
            if not self._slots.acquire(blocking=False):
                log.warning("too many connections; dropping one")
                conn.close()
                continue
            threading.Thread(
                target=self._serve, args=(conn,), name="ipc-conn", daemon=True
            ).start()

    def _serve(self, conn: socket.socket) -> None:
        with self._conns_lock:
            self._conns.add(conn)
        try:
            with conn:
                self._serve_one(conn)
        except OSError as exc:
            log.info("connection ended early (%s)", type(exc).__name__)
        finally:
            with self._conns_lock:
                self._conns.discard(conn)
            self._slots.release()

    def _serve_one(self, conn: socket.socket) -> None:
        _pid, uid, _gid = peer_credentials(conn)
        if uid != os.getuid():
            log.warning("refused a connection from uid %d", uid)
            return
        conn.settimeout(READ_TIMEOUT)
        line = _read_line(conn)
        if line is None:
            log.warning("dropped a connection: no complete message within the limits")
            return
        try:
            message = protocol.parse_ipc_request(line)
        except protocol.ProtocolError as exc:
            log.warning("dropped a malformed IPC message: %s", exc)
            return
        if message.type == "ping":
            conn.sendall(protocol.encode_ipc(
                {"type": "pong", "pid": os.getpid(), "version": __version__}
            ))
            return

        def send_ack(timeout: float) -> None:
            conn.sendall(protocol.encode_ipc({"type": "ack", "timeout": timeout}))

        response, notice = self.handler(message, send_ack)
        payload: dict[str, object] = {"type": "response", "response": response}
        if notice:
            payload["notice"] = notice
        conn.settimeout(READ_TIMEOUT)
        conn.sendall(protocol.encode_ipc(payload))


def _read_line(conn: socket.socket) -> bytes | None:
    buf = bytearray()
    while True:
        nl = buf.find(b"\n")
        if nl >= 0:
            return bytes(buf[: nl + 1])
        if len(buf) > protocol.MAX_IPC_BYTES:
            return None
        try:
            chunk = conn.recv(65536)
        except TimeoutError:
            return None
        if not chunk:
            return None
        buf += chunk


def _read_pid(fd: int) -> int | None:
    try:
        data = os.pread(fd, 32, 0)
        return int(data.decode().strip() or "0") or None
    except (OSError, ValueError):
        return None


def ping(directory: str | None = None, timeout: float = 2.0) -> dict[str, object] | None:
    """Ask a running app for its pid; None when none answers."""
    path = os.path.join(directory or protocol.socket_dir(), protocol.SOCKET_NAME)
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout)
            sock.connect(path)
            sock.sendall(protocol.encode_ipc({"type": "ping"}))
            line = _read_line(sock)
    except OSError:
        return None
    if line is None:
        return None
    try:
        return protocol.parse_ipc_reply(line)
    except protocol.ProtocolError:
        return None

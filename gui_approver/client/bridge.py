"""``cargo-credential-gui-approver``: the tiny credential provider cargo launches.

It speaks cargo's protocol on stdin/stdout (hello, one request, one answer, exit 0) and
forwards the request to the running gui-approver app over its private Unix socket. It
imports only the standard library and :mod:`gui_approver.client.protocol` so that it starts fast;
it never holds a key. stdout carries the protocol only; diagnostics go to stderr.
"""

from __future__ import annotations

# The C module, not ``socket``: socket.py builds enums and imports selectors at start-up,
# which is a good part of a bridge's whole run; the bridge needs only these few calls.
import _socket as socket
import posix
import select
import sys
import time

from gui_approver import __version__
from gui_approver.client import framing, paths, protocol
from gui_approver.errors import BridgeError, GuiApproverError, ProtocolError

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (mypy knows the name)
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any, BinaryIO, TextIO

#: How long to wait for cargo's request line.
STDIN_TIMEOUT = 30.0
#: How long an auto-started app may take to open its socket.
STARTUP_TIMEOUT = 8.0
#: How long the app may take to acknowledge a request.
ACK_TIMEOUT = 10.0
#: Extra time on top of the app's own approval deadline before we give up on it.
DEADLINE_MARGIN = 10.0
_START_HINT = (
    "start it with `gui-approver` (or from your desktop's application menu) and run the "
    "cargo command again"
)


def _err_line(message: str) -> str:
    return protocol.encode(protocol.err_other(message))


def _read_request_line(stdin: BinaryIO, timeout: float) -> bytes:
    fileno: int | None
    try:
        fileno = stdin.fileno()
    except (AttributeError, OSError, ValueError):
        fileno = None
    if fileno is not None:
        ready, _, _ = select.select([fileno], [], [], timeout)
        if not ready:
            raise ProtocolError(f"cargo sent no request within {timeout:.0f} s")
    line = stdin.readline(protocol.MAX_REQUEST_BYTES + 1)
    if len(line) > protocol.MAX_REQUEST_BYTES:
        raise ProtocolError("the request from cargo is too large")
    if not line:
        raise ProtocolError("cargo closed stdin without sending a request")
    return line


def _peer_uid(sock: socket.socket) -> int | None:
    so_peercred = getattr(socket, "SO_PEERCRED", None)
    if so_peercred is None:
        return None
    raw = sock.getsockopt(socket.SOL_SOCKET, so_peercred, 12)  # struct ucred: 3 ints
    return int.from_bytes(raw[4:8], sys.byteorder, signed=True)


def _connect(path: str) -> socket.socket | None:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(2.0)
    try:
        sock.connect(path)
    except OSError:
        sock.close()
        return None
    uid = _peer_uid(sock)
    if uid is not None and uid != posix.getuid():
        sock.close()
        raise BridgeError(f"the socket {path} belongs to another user (uid {uid}); refusing it")
    return sock


def _app_command() -> list[str]:
    import os  # only when starting the app (the rare path)

    override = os.environ.get("GUI_APPROVER_APP_COMMAND")
    if override:
        import shlex

        return shlex.split(override)
    here = os.path.dirname(os.path.abspath(sys.argv[0] or ""))
    sibling = os.path.join(here, "gui-approver")
    if os.path.isfile(sibling) and os.access(sibling, os.X_OK):
        return [sibling, "app", "--started-by-bridge"]
    return [sys.executable, "-m", "gui_approver", "app", "--started-by-bridge"]


#: Variables cargo's environment may carry that would change what code the app runs.
_UNSAFE_ENV_PREFIXES = ("LD_", "PYTHON", "QT_PLUGIN", "QT_QPA_PLATFORM_PLUGIN", "QML", "GCONV_")
_UNSAFE_ENV = frozenset(
    {"QT_DEBUG_PLUGINS", "MALLOC_CHECK_", "GIO_EXTRA_MODULES", "GTK_MODULES", "GTK_PATH"}
)


def app_environment(env: Mapping[str, str]) -> dict[str, str]:
    """The environment for an app started by the bridge: cargo's, minus anything that
    would load other code into the process that holds the keys (LD_PRELOAD, PYTHONPATH,
    Qt plugin paths, ...). The display variables stay: the dialog must reach the user."""
    return {
        k: v
        for k, v in env.items()
        if k not in _UNSAFE_ENV
        and not k.startswith(_UNSAFE_ENV_PREFIXES)
        and k != "PYTHONUNBUFFERED"
    }


def _start_app_and_connect(path: str, err: TextIO) -> socket.socket:
    import os  # only when starting the app (the rare path)

    if os.environ.get("GUI_APPROVER_NO_AUTOSTART"):
        raise BridgeError("gui-approver is not running; " + _START_HINT)
    import subprocess

    from gui_approver.client.display import display_problem

    env = app_environment(os.environ)
    problem = display_problem(env)
    if problem is not None:
        raise BridgeError(
            f"gui-approver is not running and cannot start here: {problem}; nothing was signed"
        )
    cmd = _app_command()
    err.write("gui-approver: the app is not running; starting it\n")
    err.flush()
    try:
        proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
            close_fds=True,
            env=env,
        )
    except OSError as exc:
        raise BridgeError(
            f"gui-approver is not running and could not be started ({exc.strerror}); " + _START_HINT
        ) from None
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while time.monotonic() < deadline:
        sock = _connect(path)
        if sock is not None:
            return sock
        code = proc.poll()
        if code is not None:
            raise BridgeError(
                f"gui-approver is not running and exited with code {code} when started; "
                + _START_HINT
            )
        time.sleep(0.02)
    raise BridgeError(
        f"gui-approver did not open its socket within {STARTUP_TIMEOUT:.0f} s; " + _START_HINT
    )


def _recv_line(sock: socket.socket, buf: bytearray, timeout: float) -> bytes:
    """Read one line, honouring an overall deadline and the size bound."""
    deadline = time.monotonic() + timeout
    while True:
        nl = buf.find(b"\n")
        if nl >= 0:
            line = bytes(buf[: nl + 1])
            del buf[: nl + 1]
            return line
        if len(buf) > framing.MAX_IPC_BYTES:
            raise BridgeError("the app sent an oversized reply")
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise BridgeError("the app did not answer in time; nothing was signed")
        sock.settimeout(remaining)
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            raise BridgeError("the app did not answer in time; nothing was signed") from None
        except OSError as exc:
            raise BridgeError(f"lost the connection to the app ({exc.strerror})") from None
        if not chunk:
            raise BridgeError(
                "the gui-approver app closed the connection before answering (did it quit "
                "or crash?); nothing was signed"
            )
        buf += chunk


def exchange(raw_request: dict[str, Any], err: TextIO) -> dict[str, Any]:
    """Send one credential request to the app and return its reply message."""
    directory = paths.socket_dir()
    path = directory.rstrip("/") + "/" + paths.SOCKET_NAME
    if paths.exists(directory):
        problem = paths.check_private_dir(directory)
        if problem:
            raise BridgeError(f"refusing to use the socket directory: {problem}")
    sock = _connect(path)
    if sock is None:
        sock = _start_app_and_connect(path, err)
    provenance = framing.Provenance(pid=posix.getpid(), ppid=posix.getppid(), cwd=_cwd())
    try:
        sock.settimeout(5.0)
        try:
            sock.sendall(framing.credential_ipc_message(raw_request, provenance))
        except OSError as exc:
            raise BridgeError(f"could not talk to the app ({exc.strerror})") from None
        buf = bytearray()
        timeout = ACK_TIMEOUT
        while True:
            try:
                reply = framing.parse_ipc_reply(_recv_line(sock, buf, timeout))
            except ProtocolError as exc:
                raise BridgeError(f"the app's reply was not understood: {exc}") from None
            if reply["type"] == "ack":
                timeout = float(reply["timeout"]) + DEADLINE_MARGIN
                continue
            if reply["type"] != "response":
                raise BridgeError("the app sent an unexpected reply")
            return reply
    finally:
        sock.close()


def _cwd() -> str | None:
    try:
        return posix.getcwd()
    except OSError:
        return None


def socket_note(request: object) -> str | None:
    """For ``cargo login`` with a secret: where else it can be stored. The secret crosses the
    app's socket, and a process running as the user that bound the socket before the app
    would get it; no check of the peer can stop that. Never quotes the secret."""
    if not isinstance(request, protocol.Login) or request.token is None:
        return None
    name = request.registry.name or ""
    safe = (
        bool(name)
        and len(name) <= 64
        and all(c.isascii() and (c.isalnum() or c in "-_") for c in name)
    )
    registry = f"--registry {name}" if safe else "--registry NAME"
    if request.token.expose().startswith("k3.secret."):
        how = (
            "put it in cargo's credentials.toml as `secret-key` and run "
            "`gui-approver key import-cargo`, which moves it into the keychain directly"
        )
    else:
        how = f"run `gui-approver token add {registry}` and paste it at the no-echo prompt"
    return (
        "gui-approver: note: the secret you gave `cargo login` goes to the gui-approver "
        "app over its local socket; a program running as you that took that socket "
        "before the app would receive it. To store a secret without that hop, " + how + "."
    )


def run(stdin: BinaryIO, stdout: TextIO, stderr: TextIO) -> int:
    """One protocol exchange. Always writes exactly one answer line; returns 0."""
    stdout.write(protocol.HELLO + "\n")
    stdout.flush()
    try:
        line = _read_request_line(stdin, STDIN_TIMEOUT)
        raw = protocol.load_request(line)
        request = protocol.request_from_json(raw)  # validate here: a clear error at once
        note = socket_note(request)
        if note:
            stderr.write(note + "\n")
            stderr.flush()
        reply = exchange(raw, stderr)  # the request as cargo sent it (the app validates again)
        notice = reply.get("notice")
        if notice:
            stderr.write(notice.rstrip("\n") + "\n")
            stderr.flush()
        answer = protocol.encode(reply["response"])
    except GuiApproverError as exc:  # ProtocolError, BridgeError
        answer = protocol.encode(protocol.cargo_error(exc))
    except Exception as exc:  # noqa: BLE001 - cargo must always get one answer
        answer = _err_line(f"gui-approver: internal error in the bridge ({type(exc).__name__})")
    stdout.write(answer + "\n")
    stdout.flush()
    return 0


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if "--version" in args:
        print(f"cargo-credential-gui-approver {__version__}")
        return 0
    if "--cargo-plugin" not in args:
        sys.stderr.write(
            "cargo-credential-gui-approver is a cargo credential provider; cargo runs it.\n"
            "Configure it with:  gui-approver configure-cargo --registry NAME --index URL\n"
        )
        return 2
    try:
        code = run(sys.stdin.buffer, sys.stdout, sys.stderr)
    except BrokenPipeError:
        code = 0
    if argv is None:
        _exit_now(code)
    return code


def _exit_now(code: int) -> None:
    """End the process without the interpreter's teardown (~2 ms, a tenth of a bridge's
    whole run). Safe here: the answer is flushed, the socket closed, nothing else is open."""
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except (OSError, ValueError):
        pass
    posix._exit(code)


if __name__ == "__main__":
    sys.exit(main())

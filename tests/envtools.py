"""A real, isolated test environment: private D-Bus + gnome-keyring, Xvfb, a Node verifier.

Plain helpers with no pytest dependency, so standalone scripts (a screenshot script, a manual
smoke test) can use them exactly as the fixtures in ``tests/conftest.py`` do. ``tests`` is not
a package: pytest imports this as ``envtools`` (tests/ is on sys.path); a script does
``sys.path.insert(0, "<repo>/tests")`` and then::

    from envtools import start_secret_service, start_xvfb, make_app_env

    with start_secret_service(tmp) as ss, start_xvfb(tmp) as xvfb:
        env = make_app_env(tmp / "app", keychain_env=ss.env, display=xvfb.display)
        subprocess.run([...], env=env)

Nothing here mocks anything: every helper starts the real program (``dbus-daemon``,
``gnome-keyring-daemon``, ``Xvfb``, ``node``) in its own process group, points it at
directories under the caller's temporary directory and waits, with a deadline and no fixed
sleeps, until it really answers. ``stop()`` (or leaving the ``with`` block) kills the whole
process group and removes the short-lived runtime directory.

Every started process also gets ``PR_SET_PDEATHSIG`` (through util-linux ``setpriv``) so it
dies with the Python process that started it even if that process is killed with SIGKILL.
(Linux ties this to the *thread* that forked: start these from a long-lived thread, e.g. the
main one.)
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

REPO_ROOT = Path(__file__).resolve().parent.parent
NODE_DIR = REPO_ROOT / "tests" / "node"
NODE_VERIFY_JS = NODE_DIR / "verify.js"
# The venv's bin directory, from the running interpreter (not resolved: .venv/bin/python is
# a symlink to the base interpreter, and we want .venv/bin).
VENV_BIN = Path(sys.executable).parent

KEYRING_PASSWORD = "gui-approver-test-keyring"
SECRETS_BUS_NAME = "org.freedesktop.secrets"
SECRETS_PATH = "/org/freedesktop/secrets"
DEFAULT_ALIAS_PATH = "/org/freedesktop/secrets/aliases/default"
XVFB_SCREEN = "1280x800x24"

# Environment variables that would connect a child to the developer's real session (keychain,
# display, cargo configuration). They are never inherited by the environments built here.
LEAKY_ENV_VARS = (
    "DBUS_SESSION_BUS_ADDRESS",
    "DBUS_STARTER_ADDRESS",
    "DBUS_STARTER_BUS_TYPE",
    "PYTHON_KEYRING_BACKEND",
    "GNOME_KEYRING_CONTROL",
    "GNOME_KEYRING_PID",
    "SSH_AUTH_SOCK",
    "DISPLAY",
    "WAYLAND_DISPLAY",
    "XAUTHORITY",
    "XDG_SESSION_TYPE",
    "QT_QPA_PLATFORM",
    "QT_QPA_PLATFORMTHEME",
)
LEAKY_ENV_PREFIXES = ("CARGO_", "KDE_")


class EnvToolError(RuntimeError):
    """The test environment could not be set up (missing program, daemon died, timeout)."""


class NodeVerifyError(Exception):
    """The independent Node verifier rejected a token (bad signature, bad format, ...)."""


# --------------------------------------------------------------------------------------------
# Generic real-process helpers
# --------------------------------------------------------------------------------------------


def wait_for(
    predicate: Callable[[], T | None],
    timeout: float,
    interval: float = 0.01,
    what: str = "condition",
) -> T:
    """Poll ``predicate`` until it returns something truthy, and return that value.

    Exceptions raised by the predicate count as "not yet" (the last one is quoted in the
    error). Raises ``AssertionError`` naming ``what`` once ``timeout`` seconds have passed.
    """
    deadline = time.monotonic() + timeout
    last_exc: BaseException | None = None
    while True:
        try:
            value = predicate()
        except Exception as exc:
            last_exc = exc
        else:
            if value:
                return value
            last_exc = None
        if time.monotonic() >= deadline:
            msg = f"timed out after {timeout:g}s waiting for {what}"
            if last_exc is not None:
                msg += f" (last error: {type(last_exc).__name__}: {last_exc})"
            raise AssertionError(msg)
        time.sleep(interval)


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port on ``host`` that was free a moment ago (bind to port 0 and release it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def require_program(name: str, debian_package: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise EnvToolError(
            f"{name!r} is not installed: it comes from the Debian package {debian_package!r} "
            "(packaging/bootstrap.sh test installs it)"
        )
    return path


def make_runtime_dir(prefix: str = "gat-") -> Path:
    """A fresh 0700 directory with a *short* path, for Unix sockets (108-byte limit).

    pytest's tmp_path can be ~80 characters long, too long for ``<dir>/keyring/control`` or
    an app socket, so runtime directories live directly in /tmp. Callers remove them.
    """
    base = "/tmp" if os.path.isdir("/tmp") else None
    path = Path(tempfile.mkdtemp(prefix=prefix, dir=base))
    path.chmod(0o700)
    return path


def _pdeathsig_prefix() -> list[str]:
    setpriv = shutil.which("setpriv")
    return [setpriv, "--pdeathsig", "TERM"] if setpriv else []


def spawn(
    argv: list[str],
    *,
    env: Mapping[str, str],
    log_path: Path,
    stdin: int | None = subprocess.DEVNULL,
    pass_fds: tuple[int, ...] = (),
    cwd: Path | None = None,
) -> subprocess.Popen[bytes]:
    """Start ``argv`` in a new session/process group, stdout+stderr appended to ``log_path``."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        return subprocess.Popen(
            [*_pdeathsig_prefix(), *argv],
            env=dict(env),
            stdin=stdin,
            stdout=log,
            stderr=subprocess.STDOUT,
            pass_fds=pass_fds,
            cwd=cwd,
            start_new_session=True,
        )


def stop_process(proc: subprocess.Popen[Any], timeout: float = 3.0) -> None:
    """SIGTERM the process group of ``proc`` (started with ``spawn``), SIGKILL after timeout."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, sig)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            continue
        break
    # Anything else left in the group (a helper the daemon started) goes too.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)


def _log_tail(path: Path, limit: int = 2000) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no log)"
    return text[-limit:] or "(empty log)"


def _read_line_from_fd(
    fd: int, proc: subprocess.Popen[Any], deadline: float, what: str, log_path: Path
) -> str:
    """Read one newline-terminated line that ``proc`` writes on the pipe ``fd``."""
    buf = b""
    while not buf.endswith(b"\n"):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise EnvToolError(f"timed out waiting for {what}; log:\n{_log_tail(log_path)}")
        ready, _, _ = select.select([fd], [], [], min(remaining, 0.1))
        if ready:
            chunk = os.read(fd, 256)
            if not chunk:
                break
            buf += chunk
        elif proc.poll() is not None:
            break
    if not buf.endswith(b"\n"):
        raise EnvToolError(
            f"{what}: process exited with {proc.poll()} before answering; "
            f"log:\n{_log_tail(log_path)}"
        )
    return buf.decode().strip()


class _Managed:
    """Shared stop / context-manager behaviour."""

    process: subprocess.Popen[bytes]

    def stop(self) -> None:
        stop_process(self.process)
        self._cleanup()

    def _cleanup(self) -> None:
        pass

    @property
    def running(self) -> bool:
        return self.process.poll() is None

    def __enter__(self: T) -> T:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


# --------------------------------------------------------------------------------------------
# Private D-Bus session bus
# --------------------------------------------------------------------------------------------

_BUS_CONFIG = """<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <keep_umask/>
  <listen>unix:path={socket}</listen>
  <auth>EXTERNAL</auth>
  <!-- Deliberately no <standard_session_servicedirs/>: nothing is D-Bus-activatable here, so
       a call to org.freedesktop.secrets can never start a second (locked) gnome-keyring and
       a locked collection can never pop up gcr-prompter. -->
  <servicedir>{servicedir}</servicedir>
  <policy context="default">
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
</busconfig>
"""


@dataclass
class SessionBus(_Managed):
    address: str
    process: subprocess.Popen[bytes]
    runtime_dir: Path  # short 0700 dir holding the socket; removed by stop()
    tmpdir: Path
    log_path: Path

    @property
    def env(self) -> dict[str, str]:
        return {"DBUS_SESSION_BUS_ADDRESS": self.address}

    def connect(self) -> Any:
        """A blocking jeepney connection to this bus (close it, or use it in ``with``)."""
        from jeepney.io.blocking import open_dbus_connection

        return open_dbus_connection(bus=self.address)

    def name_has_owner(self, name: str) -> bool:
        from jeepney.bus_messages import message_bus

        with self.connect() as conn:
            return bool(_call(conn, message_bus.NameHasOwner(name))[0])

    def _cleanup(self) -> None:
        shutil.rmtree(self.runtime_dir, ignore_errors=True)


def start_session_bus(tmpdir: Path | str, *, timeout: float = 10.0) -> SessionBus:
    """Start a private ``dbus-daemon --session`` listening on a unix:path socket.

    ``tmpdir`` holds the config and the log; the socket lives in a short runtime directory
    (``bus.runtime_dir``, also usable as XDG_RUNTIME_DIR) that ``stop()`` removes.
    """
    daemon = require_program("dbus-daemon", "dbus")
    tmpdir = Path(tmpdir)
    tmpdir.mkdir(parents=True, exist_ok=True)
    runtime_dir = make_runtime_dir("gat-bus-")
    servicedir = tmpdir / "dbus-services"
    servicedir.mkdir(exist_ok=True)
    config = tmpdir / "dbus-session.conf"
    config.write_text(_BUS_CONFIG.format(socket=runtime_dir / "bus", servicedir=servicedir))
    log_path = tmpdir / "dbus-daemon.log"
    read_fd, write_fd = os.pipe()
    try:
        proc = spawn(
            [
                daemon,
                f"--config-file={config}",
                "--nofork",
                "--nopidfile",
                "--nosyslog",
                f"--print-address={write_fd}",
            ],
            env=_minimal_env(),
            log_path=log_path,
            pass_fds=(write_fd,),
        )
    except BaseException:
        os.close(read_fd)
        os.close(write_fd)
        shutil.rmtree(runtime_dir, ignore_errors=True)
        raise
    os.close(write_fd)
    try:
        address = _read_line_from_fd(
            read_fd, proc, time.monotonic() + timeout, "dbus-daemon's address", log_path
        )
    except BaseException:
        stop_process(proc)
        shutil.rmtree(runtime_dir, ignore_errors=True)
        raise
    finally:
        os.close(read_fd)
    return SessionBus(address, proc, runtime_dir, tmpdir, log_path)


def _minimal_env(**extra: str) -> dict[str, str]:
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
    }
    env.update(extra)
    return env


def _call(conn: Any, msg: Any, timeout: float = 5.0) -> tuple[Any, ...]:
    from jeepney.wrappers import unwrap_msg

    return tuple(unwrap_msg(conn.send_and_get_reply(msg, timeout=timeout)))


# --------------------------------------------------------------------------------------------
# gnome-keyring (a real Secret Service)
# --------------------------------------------------------------------------------------------


def _secrets_service() -> Any:
    from jeepney import DBusAddress

    return DBusAddress(SECRETS_PATH, SECRETS_BUS_NAME, "org.freedesktop.Secret.Service")


def _read_alias(conn: Any, alias: str = "default") -> str:
    from jeepney import new_method_call

    return str(_call(conn, new_method_call(_secrets_service(), "ReadAlias", "s", (alias,)))[0])


def _collection_locked(conn: Any, path: str) -> bool:
    from jeepney import DBusAddress, Properties

    coll = DBusAddress(path, SECRETS_BUS_NAME, "org.freedesktop.Secret.Collection")
    return bool(_call(conn, Properties(coll).get("Locked"))[0][1])


def lock_keyring(bus: SessionBus, collection: str = DEFAULT_ALIAS_PATH) -> None:
    """Lock a collection (default: the default alias) through Secret Service ``Lock``."""
    from jeepney import new_method_call

    with bus.connect() as conn:
        locked, prompt = _call(
            conn, new_method_call(_secrets_service(), "Lock", "ao", ([collection],))
        )
        if prompt != "/":
            raise EnvToolError(f"Lock wanted a prompt ({prompt}); cannot lock non-interactively")
        if not _collection_locked(conn, collection):
            raise EnvToolError(f"{collection} still unlocked after Lock (returned {locked})")


def unlock_keyring(
    bus: SessionBus, password: str = KEYRING_PASSWORD, collection: str = DEFAULT_ALIAS_PATH
) -> None:
    """Unlock a collection without a prompt, as a user typing the password would.

    Uses gnome-keyring's own ``UnlockWithMasterPassword`` (the standard ``Unlock`` needs a
    graphical prompter, which the private bus deliberately cannot start).
    """
    from jeepney import DBusAddress, new_method_call

    with bus.connect() as conn:
        if collection.startswith("/org/freedesktop/secrets/aliases/"):
            collection = _read_alias(conn, collection.rsplit("/", 1)[1])
        _output, session = _call(
            conn,
            new_method_call(_secrets_service(), "OpenSession", "sv", ("plain", ("s", ""))),
        )
        internal = DBusAddress(
            SECRETS_PATH,
            SECRETS_BUS_NAME,
            "org.gnome.keyring.InternalUnsupportedGuiltRiddenInterface",
        )
        secret = (session, b"", password.encode(), "text/plain")
        _call(
            conn,
            new_method_call(
                internal, "UnlockWithMasterPassword", "o(oayays)", (collection, secret)
            ),
        )
        if _collection_locked(conn, collection):
            raise EnvToolError(f"{collection} is still locked (wrong password?)")


def read_alias(bus: SessionBus, alias: str = "default") -> str:
    """The collection path an alias points at ("/" when unset)."""
    with bus.connect() as conn:
        return _read_alias(conn, alias)


def keyring_is_locked(bus: SessionBus, collection: str = DEFAULT_ALIAS_PATH) -> bool:
    with bus.connect() as conn:
        return _collection_locked(conn, collection)


@dataclass
class GnomeKeyring(_Managed):
    bus: SessionBus
    process: subprocess.Popen[bytes]
    home: Path
    runtime_dir: Path
    password: str
    log_path: Path

    def lock(self) -> None:
        lock_keyring(self.bus)

    def unlock(self) -> None:
        unlock_keyring(self.bus, self.password)

    def is_locked(self) -> bool:
        return keyring_is_locked(self.bus)


def start_gnome_keyring(
    bus: SessionBus,
    home: Path | str,
    *,
    password: str = KEYRING_PASSWORD,
    runtime_dir: Path | None = None,
    timeout: float = 10.0,
) -> GnomeKeyring:
    """Run ``gnome-keyring-daemon --foreground --unlock --components=secrets`` on ``bus``.

    The daemon sees only ``home`` (HOME, XDG_DATA_HOME=home/.local/share where its
    ``keyrings/login.keyring`` is created with ``password``, XDG_CONFIG_HOME, XDG_CACHE_HOME)
    and ``runtime_dir`` (default: the bus's runtime dir; its control socket goes in
    ``keyring/``), never the real user's keyrings. No DISPLAY, so it can never prompt.

    Returns once ``org.freedesktop.secrets`` is owned on the bus and the default alias points
    at an unlocked collection (``login``).
    """
    daemon = require_program("gnome-keyring-daemon", "gnome-keyring")
    home = Path(home)
    data_home = home / ".local" / "share"
    for d in (data_home, home / ".config", home / ".cache"):
        d.mkdir(parents=True, exist_ok=True)
    runtime_dir = runtime_dir or bus.runtime_dir
    env = _minimal_env(
        HOME=str(home),
        XDG_DATA_HOME=str(data_home),
        XDG_CONFIG_HOME=str(home / ".config"),
        XDG_CACHE_HOME=str(home / ".cache"),
        XDG_RUNTIME_DIR=str(runtime_dir),
        DBUS_SESSION_BUS_ADDRESS=bus.address,
    )
    log_path = bus.tmpdir / "gnome-keyring.log"
    proc = spawn(
        [daemon, "--foreground", "--unlock", "--components=secrets"],
        env=env,
        log_path=log_path,
        stdin=subprocess.PIPE,
        cwd=home,
    )
    kr = GnomeKeyring(bus, proc, home, runtime_dir, password, log_path)
    try:
        assert proc.stdin is not None
        proc.stdin.write(password.encode())
        proc.stdin.close()
        _wait_for_secret_service(bus, proc, timeout, log_path)
    except BaseException:
        stop_process(proc)
        raise
    return kr


def _wait_for_secret_service(
    bus: SessionBus, proc: subprocess.Popen[bytes], timeout: float, log_path: Path
) -> None:
    from jeepney.bus_messages import message_bus
    from jeepney.wrappers import DBusErrorResponse

    deadline = time.monotonic() + timeout

    def check(ok: bool, what: str) -> bool:
        if ok:
            return True
        if proc.poll() is not None:
            raise EnvToolError(
                f"gnome-keyring-daemon exited with {proc.returncode} while waiting for {what}; "
                f"log:\n{_log_tail(log_path)}"
            )
        if time.monotonic() > deadline:
            raise EnvToolError(
                f"timed out after {timeout:g}s waiting for {what}; log:\n{_log_tail(log_path)}"
            )
        time.sleep(0.002)
        return False

    with bus.connect() as conn:
        what = f"{SECRETS_BUS_NAME} to be owned on {bus.address}"
        while not check(bool(_call(conn, message_bus.NameHasOwner(SECRETS_BUS_NAME))[0]), what):
            pass
        what = "an unlocked default collection"
        while True:
            try:
                path = _read_alias(conn)
                ready = path != "/" and not _collection_locked(conn, path)
            except DBusErrorResponse:
                ready = False
            if check(ready, what):
                break


@dataclass
class SecretService:
    """A private session bus with gnome-keyring on it: what ``secret_service`` yields."""

    bus: SessionBus
    keyring: GnomeKeyring
    tmpdir: Path

    @property
    def address(self) -> str:
        return self.bus.address

    @property
    def runtime_dir(self) -> Path:
        return self.bus.runtime_dir

    @property
    def env(self) -> dict[str, str]:
        """Variables a subprocess needs to use this keychain (merge into its env)."""
        return {
            "DBUS_SESSION_BUS_ADDRESS": self.bus.address,
            "XDG_RUNTIME_DIR": str(self.bus.runtime_dir),
        }

    def lock(self) -> None:
        self.keyring.lock()

    def unlock(self) -> None:
        self.keyring.unlock()

    def is_locked(self) -> bool:
        return self.keyring.is_locked()

    def stop(self) -> None:
        try:
            self.keyring.stop()
        finally:
            self.bus.stop()

    def __enter__(self) -> SecretService:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_secret_service(
    tmpdir: Path | str, *, password: str = KEYRING_PASSWORD, timeout: float = 10.0
) -> SecretService:
    """Private bus + unlocked gnome-keyring whose files live under ``tmpdir``."""
    tmpdir = Path(tmpdir)
    bus = start_session_bus(tmpdir, timeout=timeout)
    try:
        kr = start_gnome_keyring(bus, tmpdir / "keyring-home", password=password, timeout=timeout)
    except BaseException:
        bus.stop()
        raise
    return SecretService(bus, kr, tmpdir)


# --------------------------------------------------------------------------------------------
# keyring (the Python package) in *this* process
# --------------------------------------------------------------------------------------------

SECRET_SERVICE_BACKEND_MODULE = "keyring.backends.SecretService"


def redetect_keyring() -> Any:
    """Forget keyring's caches and detect the backend again from the current os.environ."""
    import keyring.core

    forget_keyring_backend()
    keyring.core.init_backend()
    return keyring.core.get_keyring()


def forget_keyring_backend() -> None:
    """Drop keyring's cached state (if keyring was imported) so the next use re-detects.

    keyring caches twice: the chosen backend (``keyring.core._keyring_backend``) and, for the
    life of the process, the list of backends that were *viable* the first time anything
    asked (``keyring.backend.get_all_keyring``, a jaraco ``@once``). Without resetting the
    latter, a process that first looked with no bus never sees SecretService again, and one
    that first looked with a bus keeps a SecretService instance whose ``priority`` raises
    RuntimeError once the bus is gone (so detection crashes instead of falling back).
    """
    core = sys.modules.get("keyring.core")
    if core is not None:
        core._keyring_backend = None  # type: ignore[attr-defined]
    backend = sys.modules.get("keyring.backend")
    if backend is not None:
        with contextlib.suppress(KeyError, AttributeError):
            backend.get_all_keyring.reset()


# --------------------------------------------------------------------------------------------
# Xvfb
# --------------------------------------------------------------------------------------------


@dataclass
class Display(_Managed):
    display: str  # ":N"
    number: int
    process: subprocess.Popen[bytes]
    log_path: Path

    @property
    def env(self) -> dict[str, str]:
        return {"DISPLAY": self.display}


def display_accepts_connections(display: str) -> bool:
    xdpyinfo = require_program("xdpyinfo", "x11-utils")
    result = subprocess.run(
        [xdpyinfo, "-display", display],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        check=False,
        timeout=10,
    )
    return result.returncode == 0


def start_xvfb(tmpdir: Path | str, *, screen: str = XVFB_SCREEN, timeout: float = 15.0) -> Display:
    """Start Xvfb on a free display (``-displayfd``), return once a client can connect.

    Local connections only (``-nolisten tcp``), no authorization file (any local client may
    connect, like xvfb-run without -a), ``-noreset`` so the server does not reset (and
    briefly refuse clients) each time the last client disconnects.
    """
    xvfb = require_program("Xvfb", "xvfb")
    tmpdir = Path(tmpdir)
    tmpdir.mkdir(parents=True, exist_ok=True)
    log_path = tmpdir / "xvfb.log"
    read_fd, write_fd = os.pipe()
    try:
        proc = spawn(
            [
                xvfb,
                "-displayfd",
                str(write_fd),
                "-screen",
                "0",
                screen,
                "-nolisten",
                "tcp",
                "-noreset",
            ],
            env=_minimal_env(),
            log_path=log_path,
            pass_fds=(write_fd,),
        )
    except BaseException:
        os.close(read_fd)
        raise
    finally:
        os.close(write_fd)
    deadline = time.monotonic() + timeout
    try:
        number = int(_read_line_from_fd(read_fd, proc, deadline, "Xvfb's display", log_path))
        display = f":{number}"
        wait_for(
            lambda: display_accepts_connections(display),
            max(deadline - time.monotonic(), 0.1),
            what=f"Xvfb {display} to accept connections",
        )
    except BaseException:
        stop_process(proc)
        raise
    finally:
        os.close(read_fd)
    return Display(display, number, proc, log_path)


# --------------------------------------------------------------------------------------------
# Environments for the app / bridge subprocesses
# --------------------------------------------------------------------------------------------


def clean_base_env(base: Mapping[str, str] | None = None) -> dict[str, str]:
    """``base`` (default os.environ) minus everything that reaches the real session."""
    base = os.environ if base is None else base
    return {
        k: v
        for k, v in base.items()
        if k not in LEAKY_ENV_VARS and not k.startswith(LEAKY_ENV_PREFIXES)
    }


@dataclass
class AppDirs:
    root: Path
    runtime_dir: Path
    config_home: Path
    data_home: Path
    state_home: Path
    cache_home: Path
    cargo_home: Path
    own_runtime_dir: bool = field(default=False)

    def cleanup(self) -> None:
        if self.own_runtime_dir:
            shutil.rmtree(self.runtime_dir, ignore_errors=True)


def make_app_dirs(root: Path | str, *, runtime_dir: Path | None = None) -> AppDirs:
    """Create the per-test XDG / CARGO_HOME tree under ``root``.

    ``runtime_dir`` None: a fresh short 0700 dir is made (``AppDirs.cleanup`` removes it).
    """
    root = Path(root)
    dirs = AppDirs(
        root=root,
        runtime_dir=runtime_dir or make_runtime_dir("gat-run-"),
        config_home=root / "xdg-config",
        data_home=root / "xdg-data",
        state_home=root / "xdg-state",
        cache_home=root / "xdg-cache",
        cargo_home=root / "cargo-home",
        own_runtime_dir=runtime_dir is None,
    )
    for d in (dirs.config_home, dirs.data_home, dirs.state_home, dirs.cache_home, dirs.cargo_home):
        d.mkdir(parents=True, exist_ok=True)
    dirs.runtime_dir.chmod(0o700)
    return dirs


def app_env_for(
    dirs: AppDirs,
    *,
    keychain_env: Mapping[str, str] | None = None,
    display: str | None = None,
    base: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The environment to launch the app / bridge with.

    HOME stays the real one (rustup's ~/.rustup is needed by cargo; nothing of ours writes to
    HOME because every XDG dir and CARGO_HOME point into ``dirs``). ``keychain_env`` None
    means no keychain at all. ``display`` None means QT_QPA_PLATFORM=offscreen, otherwise
    DISPLAY=display with QT_QPA_PLATFORM=xcb.
    """
    env = clean_base_env(base)
    path = env.get("PATH", "/usr/bin:/bin").split(os.pathsep)
    venv_bin = str(VENV_BIN)
    env["PATH"] = os.pathsep.join([venv_bin, *(p for p in path if p and p != venv_bin)])
    env["VIRTUAL_ENV"] = str(VENV_BIN.parent)
    env.pop("PYTHONHOME", None)
    env.update(
        XDG_RUNTIME_DIR=str(dirs.runtime_dir),
        XDG_CONFIG_HOME=str(dirs.config_home),
        XDG_DATA_HOME=str(dirs.data_home),
        XDG_STATE_HOME=str(dirs.state_home),
        XDG_CACHE_HOME=str(dirs.cache_home),
        CARGO_HOME=str(dirs.cargo_home),
        PYTHONUNBUFFERED="1",
    )
    if display is None:
        env["QT_QPA_PLATFORM"] = "offscreen"
    else:
        env["QT_QPA_PLATFORM"] = "xcb"
        env["DISPLAY"] = display
    if keychain_env:
        env.update(keychain_env)
    return env


def make_app_env(
    root: Path | str,
    *,
    keychain_env: Mapping[str, str] | None = None,
    display: str | None = None,
) -> dict[str, str]:
    """Shortcut for scripts: dirs under ``root`` (+ the keychain's runtime dir if given).

    Without a keychain this makes a /tmp/gat-run-* runtime dir that nobody removes; use
    ``make_app_dirs`` + ``app_env_for`` + ``AppDirs.cleanup`` when that matters.
    """
    runtime = (keychain_env or {}).get("XDG_RUNTIME_DIR")
    dirs = make_app_dirs(root, runtime_dir=Path(runtime) if runtime else None)
    return app_env_for(dirs, keychain_env=keychain_env, display=display)


# --------------------------------------------------------------------------------------------
# The independent Node PASETO verifier
# --------------------------------------------------------------------------------------------


def node_verifier_available() -> None:
    """Raise EnvToolError unless node and tests/node/node_modules/paseto are there."""
    require_program("node", "nodejs")
    if not (NODE_DIR / "node_modules" / "paseto" / "package.json").is_file():
        raise EnvToolError(
            f"{NODE_DIR}/node_modules/paseto is missing: run packaging/bootstrap.sh test "
            "(or `npm install` in tests/node)"
        )


def node_verify(token: str, public_pem: str | bytes, *, timeout: float = 30.0) -> dict[str, Any]:
    """Verify a v3.public token with npm ``paseto`` (implicit assertion empty, no claim checks).

    Returns ``{"payload": <dict>, "payload_raw": <str>, "footer": <str or None>}``.
    Raises NodeVerifyError with the verifier's message when the token is rejected.
    """
    node = require_program("node", "nodejs")
    if isinstance(public_pem, bytes):
        public_pem = public_pem.decode()
    result = subprocess.run(
        [node, str(NODE_VERIFY_JS)],
        input=json.dumps({"token": token, "public_pem": public_pem}),
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=NODE_DIR,
        check=False,
    )
    if result.returncode != 0:
        raise NodeVerifyError(
            (result.stderr or result.stdout).strip() or f"exit {result.returncode}"
        )
    out: dict[str, Any] = json.loads(result.stdout)
    return out


class NodeVerifier:
    """A long-running ``node verify.js --lines``: ~1 ms a token instead of ~110 ms.

    ``verify(token, public_pem)`` has the same contract as ``node_verify``. Thread-safe;
    ``close()`` (or ``with``) ends the node process.
    """

    def __init__(self, *, timeout: float = 30.0) -> None:
        node_verifier_available()
        node = require_program("node", "nodejs")
        self._timeout = timeout
        self._lock = threading.Lock()
        self._buf = b""
        self.process = subprocess.Popen(
            [*_pdeathsig_prefix(), node, str(NODE_VERIFY_JS), "--lines"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=NODE_DIR,
            start_new_session=True,
        )

    def verify(self, token: str, public_pem: str | bytes) -> dict[str, Any]:
        if isinstance(public_pem, bytes):
            public_pem = public_pem.decode()
        request = json.dumps({"token": token, "public_pem": public_pem}) + "\n"
        with self._lock:
            proc = self.process
            assert proc.stdin is not None and proc.stdout is not None
            try:
                proc.stdin.write(request.encode())
                proc.stdin.flush()
            except BrokenPipeError as exc:
                raise EnvToolError(f"node verifier died: {self._stderr()}") from exc
            line = self._read_line(time.monotonic() + self._timeout)
        answer: dict[str, Any] = json.loads(line)
        if not answer.pop("ok"):
            raise NodeVerifyError(f"verify.js: {answer['error']}")
        return answer

    __call__ = verify

    def _read_line(self, deadline: float) -> bytes:
        assert self.process.stdout is not None
        fd = self.process.stdout.fileno()
        while b"\n" not in self._buf:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise EnvToolError("node verifier did not answer in time")
            ready, _, _ = select.select([fd], [], [], remaining)
            if ready:
                chunk = os.read(fd, 65536)
                if not chunk:
                    raise EnvToolError(f"node verifier exited: {self._stderr()}")
                self._buf += chunk
        line, _, self._buf = self._buf.partition(b"\n")
        return line

    def _stderr(self) -> str:
        stop_process(self.process)
        assert self.process.stderr is not None
        return self.process.stderr.read().decode(errors="replace").strip()

    def close(self) -> None:
        if self.process.stdin is not None:
            with contextlib.suppress(OSError):
                self.process.stdin.close()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=5)
        stop_process(self.process)
        for stream in (self.process.stdout, self.process.stderr):
            if stream is not None:
                stream.close()

    def __enter__(self) -> NodeVerifier:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

"""A throwaway keychain: a ``dbus-daemon`` session bus of our own with ``gnome-keyring-daemon``
on it, a real Secret Service that is not the user's. The demo runs on one; the test suite's
``secret_service`` fixture (tests/envtools.py) is this same code.

Nothing here can reach the user's session: the bus has no standard service directories (so
nothing is D-Bus-activated, no second keyring and no password prompter), the daemon sees only
the HOME/XDG directories and the runtime directory given to it, and every process is started
in its own process group with ``setpriv --pdeathsig`` (it dies with us, even on SIGKILL).
Linux only; jeepney (keyring's Secret Service dependency) is imported only when used.
"""

from __future__ import annotations

import contextlib
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Self, TypeVar

from gui_approver.errors import GuiApproverError

T = TypeVar("T")

SECRETS_BUS_NAME = "org.freedesktop.secrets"
SECRETS_PATH = "/org/freedesktop/secrets"
DEFAULT_ALIAS_PATH = "/org/freedesktop/secrets/aliases/default"

_BUS_CONFIG = """<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <keep_umask/>
  <listen>unix:path={socket}</listen>
  <auth>EXTERNAL</auth>
  <!-- No standard service dirs: nothing can be D-Bus-activated on this bus, so a second,
       locked gnome-keyring (or a password prompter) can never start here. -->
  <servicedir>{servicedir}</servicedir>
  <policy context="default">
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
</busconfig>
"""


class DemoError(GuiApproverError):
    """The demo (or its throwaway keychain) could not run; nothing of the user's was touched."""


# -- processes -----------------------------------------------------------------------------


def _pdeathsig_prefix() -> list[str]:
    # util-linux setpriv: the child gets SIGTERM if we die, even by SIGKILL.
    setpriv = shutil.which("setpriv") if sys.platform.startswith("linux") else None
    return [setpriv, "--pdeathsig", "TERM"] if setpriv else []


@dataclass
class Child:
    """A process started by :func:`spawn`: its own process group, output in ``log``."""

    name: str
    proc: subprocess.Popen[bytes]
    log: Path

    def tail(self, limit: int = 3000) -> str:
        try:
            text = self.log.read_text("utf-8", errors="replace")
        except OSError:
            return "(no log)"
        return text[-limit:].strip() or "(empty log)"

    def stop(self, timeout: float = 5.0) -> None:
        """SIGTERM the process group, SIGKILL after ``timeout``; then anything left in it."""
        for sig in (signal.SIGTERM, signal.SIGKILL):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.proc.pid, sig)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                continue
            break
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        if self.proc.stdin is not None:
            with contextlib.suppress(OSError):
                self.proc.stdin.close()


def spawn(
    name: str,
    argv: list[str],
    env: Mapping[str, str],
    logs: Path,
    *,
    stdin: int | None = subprocess.DEVNULL,
    pass_fds: tuple[int, ...] = (),
    cwd: Path | None = None,
) -> Child:
    """Start ``argv`` in a new session, stdout and stderr appended to ``logs``/NAME.log."""
    logs.mkdir(parents=True, exist_ok=True)
    log = logs / f"{name}.log"
    with open(log, "ab") as fh:
        proc = subprocess.Popen(
            [*_pdeathsig_prefix(), *argv],
            env=dict(env),
            stdin=stdin,
            stdout=fh,
            stderr=subprocess.STDOUT,
            pass_fds=pass_fds,
            cwd=cwd,
            start_new_session=True,
        )
    return Child(name, proc, log)


def wait_until(
    predicate: Callable[[], T | None], timeout: float, what: str, child: Child | None = None
) -> T:
    """Poll ``predicate`` until it returns a truthy value; fail early if ``child`` exits."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if child is not None and child.proc.poll() is not None:
            raise DemoError(
                f"{child.name} exited with code {child.proc.returncode} while "
                f"waiting for {what}; its log:\n{child.tail()}"
            )
        if time.monotonic() >= deadline:
            extra = f"; {child.name}'s log:\n{child.tail()}" if child else ""
            raise DemoError(f"timed out after {timeout:g} s waiting for {what}{extra}")
        time.sleep(0.005)


def read_line(fd: int, child: Child, timeout: float, what: str) -> str:
    """One newline-terminated line ``child`` writes on the pipe ``fd``."""
    deadline = time.monotonic() + timeout
    buf = b""
    while not buf.endswith(b"\n"):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise DemoError(f"timed out waiting for {what}; log:\n{child.tail()}")
        ready, _, _ = select.select([fd], [], [], min(remaining, 0.2))
        if ready:
            chunk = os.read(fd, 512)
            if not chunk:
                break
            buf += chunk
        elif child.proc.poll() is not None:
            break
    if not buf.strip():
        raise DemoError(f"{child.name} gave no {what}; log:\n{child.tail()}")
    return buf.decode().strip()


def make_runtime_dir(prefix: str = "gat-") -> Path:
    """A fresh 0700 directory with a *short* path, for Unix sockets (~107-byte limit)."""
    base = "/tmp" if os.path.isdir("/tmp") else None  # noqa: S108 - mkdtemp: private, unique
    path = Path(tempfile.mkdtemp(prefix=prefix, dir=base))
    path.chmod(0o700)
    return path


def minimal_env(**extra: str) -> dict[str, str]:
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8"}
    env.update(extra)
    return env


def _require(program: str, package: str) -> str:
    path = shutil.which(program)
    if not sys.platform.startswith("linux") or path is None:
        raise DemoError(
            f"a throwaway keychain needs {program} (it never uses your own keychain)",
            hint=f"on Debian/Ubuntu: sudo apt-get install {package}",
        )
    return path


class _Daemon:
    """A daemon we started: its process, its log, stop() and ``with``."""

    child: Child

    @property
    def process(self) -> subprocess.Popen[bytes]:
        return self.child.proc

    @property
    def log_path(self) -> Path:
        return self.child.log

    @property
    def running(self) -> bool:
        return self.child.proc.poll() is None

    def stop(self) -> None:
        self.child.stop()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


# -- the session bus -----------------------------------------------------------------------


@dataclass
class SessionBus(_Daemon):
    """A private ``dbus-daemon --session``; its socket is in ``runtime_dir``."""

    address: str
    child: Child
    runtime_dir: Path
    tmpdir: Path
    owns_runtime_dir: bool

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

    def stop(self) -> None:
        self.child.stop()
        if self.owns_runtime_dir:
            shutil.rmtree(self.runtime_dir, ignore_errors=True)


def start_session_bus(
    tmpdir: Path | str, *, runtime_dir: Path | None = None, timeout: float = 10.0
) -> SessionBus:
    """Start a private session bus. ``tmpdir`` holds its config and log; the socket goes in
    ``runtime_dir`` (default: a new short directory in /tmp that ``stop()`` removes)."""
    daemon = _require("dbus-daemon", "dbus")
    tmpdir = Path(tmpdir)
    tmpdir.mkdir(parents=True, exist_ok=True)
    owns = runtime_dir is None
    runtime = make_runtime_dir("gat-bus-") if runtime_dir is None else runtime_dir
    servicedir = tmpdir / "dbus-services"
    servicedir.mkdir(exist_ok=True)
    config = tmpdir / "dbus-session.conf"
    config.write_text(_BUS_CONFIG.format(socket=runtime / "bus", servicedir=servicedir))
    read_fd, write_fd = os.pipe()
    try:
        child = spawn(
            "dbus-daemon",
            [
                daemon,
                f"--config-file={config}",
                "--nofork",
                "--nopidfile",
                "--nosyslog",
                f"--print-address={write_fd}",
            ],
            minimal_env(),
            tmpdir,
            pass_fds=(write_fd,),
        )
    except BaseException:
        os.close(read_fd)
        if owns:
            shutil.rmtree(runtime, ignore_errors=True)
        raise
    finally:
        os.close(write_fd)
    try:
        address = read_line(read_fd, child, timeout, "the D-Bus address")
    except BaseException:
        child.stop()
        if owns:
            shutil.rmtree(runtime, ignore_errors=True)
        raise
    finally:
        os.close(read_fd)
    return SessionBus(address, child, runtime, tmpdir, owns)


def _call(conn: Any, msg: Any, timeout: float = 5.0) -> tuple[Any, ...]:
    from jeepney.wrappers import unwrap_msg

    return tuple(unwrap_msg(conn.send_and_get_reply(msg, timeout=timeout)))


# -- gnome-keyring ---------------------------------------------------------------------------


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


def read_alias(bus: SessionBus, alias: str = "default") -> str:
    """The collection path an alias points at ("/" when unset)."""
    with bus.connect() as conn:
        return _read_alias(conn, alias)


def keyring_is_locked(bus: SessionBus, collection: str = DEFAULT_ALIAS_PATH) -> bool:
    with bus.connect() as conn:
        return _collection_locked(conn, collection)


def lock_keyring(bus: SessionBus, collection: str = DEFAULT_ALIAS_PATH) -> None:
    """Lock a collection (default: the default alias) through Secret Service ``Lock``."""
    from jeepney import new_method_call

    with bus.connect() as conn:
        locked, prompt = _call(
            conn, new_method_call(_secrets_service(), "Lock", "ao", ([collection],))
        )
        if prompt != "/":
            raise DemoError(f"Lock wanted a prompt ({prompt}); cannot lock non-interactively")
        if not _collection_locked(conn, collection):
            raise DemoError(f"{collection} still unlocked after Lock (returned {locked})")


def unlock_keyring(bus: SessionBus, password: str, collection: str = DEFAULT_ALIAS_PATH) -> None:
    """Unlock a collection without a prompt, as a user typing the password would (with
    gnome-keyring's ``UnlockWithMasterPassword``: the standard ``Unlock`` needs a graphical
    prompter, which this bus deliberately cannot start)."""
    from jeepney import DBusAddress, new_method_call

    with bus.connect() as conn:
        if collection.startswith("/org/freedesktop/secrets/aliases/"):
            collection = _read_alias(conn, collection.rsplit("/", 1)[1])
        _output, session = _call(
            conn, new_method_call(_secrets_service(), "OpenSession", "sv", ("plain", ("s", "")))
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
            raise DemoError(f"{collection} is still locked (wrong password?)")


@dataclass
class GnomeKeyring(_Daemon):
    """``gnome-keyring-daemon --components=secrets`` on a :class:`SessionBus`."""

    bus: SessionBus
    child: Child
    home: Path
    runtime_dir: Path
    password: str

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
    password: str,
    runtime_dir: Path | None = None,
    timeout: float = 10.0,
) -> GnomeKeyring:
    """Run ``gnome-keyring-daemon --foreground --unlock --components=secrets`` on ``bus``.

    The daemon sees only ``home`` (HOME and XDG_DATA/CONFIG/CACHE_HOME under it; its
    ``login.keyring`` is created there with ``password``) and ``runtime_dir`` (default: the
    bus's), never the user's keyrings. No DISPLAY, so it can never prompt. Returns once the
    Secret Service name is owned on the bus and the default collection is unlocked.
    """
    daemon = _require("gnome-keyring-daemon", "gnome-keyring")
    try:
        import jeepney  # noqa: F401  (keyring's Secret Service backend brings it)
    except ImportError:
        raise DemoError(
            "a throwaway keychain needs the jeepney package (a keyring dependency on Linux)"
        ) from None
    home = Path(home)
    data_home = home / ".local" / "share"
    for d in (data_home, home / ".config", home / ".cache"):
        d.mkdir(parents=True, exist_ok=True)
    runtime = runtime_dir or bus.runtime_dir
    env = minimal_env(
        HOME=str(home),
        XDG_DATA_HOME=str(data_home),
        XDG_CONFIG_HOME=str(home / ".config"),
        XDG_CACHE_HOME=str(home / ".cache"),
        XDG_RUNTIME_DIR=str(runtime),
        DBUS_SESSION_BUS_ADDRESS=bus.address,
    )
    child = spawn(
        "gnome-keyring",
        [daemon, "--foreground", "--unlock", "--components=secrets"],
        env,
        bus.tmpdir,
        stdin=subprocess.PIPE,
        cwd=home,
    )
    try:
        assert child.proc.stdin is not None
        # --unlock reads the new login keyring's password from stdin (until EOF).
        child.proc.stdin.write(password.encode())
        child.proc.stdin.close()
        _wait_ready(bus, child, timeout)
    except BaseException:
        child.stop()
        raise
    return GnomeKeyring(bus, child, home, runtime, password)


def _wait_ready(bus: SessionBus, child: Child, timeout: float) -> None:
    """Wait for the bus name, then for the default collection to exist and be unlocked.

    Using the keychain before its name is owned would make D-Bus try to activate a second
    daemon; before the collection exists, keyring would ask for a prompt.
    """
    from jeepney.bus_messages import message_bus
    from jeepney.wrappers import DBusErrorResponse

    deadline = time.monotonic() + timeout
    with bus.connect() as conn:
        wait_until(
            lambda: bool(_call(conn, message_bus.NameHasOwner(SECRETS_BUS_NAME))[0]),
            timeout,
            f"{SECRETS_BUS_NAME} on the private bus",
            child,
        )

        def unlocked() -> bool:
            try:
                path = _read_alias(conn)
                return path != "/" and not _collection_locked(conn, path)
            except DBusErrorResponse:
                return False

        wait_until(
            unlocked, max(0.0, deadline - time.monotonic()), "an unlocked default collection", child
        )


# -- both ------------------------------------------------------------------------------------


@dataclass
class PrivateKeychain:
    """A private session bus with gnome-keyring on it."""

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
        """What a process needs to use this keychain (merge into its environment)."""
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

    def __enter__(self) -> PrivateKeychain:
        return self

    def __exit__(
        self,
        _exc_type: type[BaseException] | None,
        _exc: BaseException | None,
        _tb: TracebackType | None,
    ) -> None:
        self.stop()


def start_private_keychain(
    tmpdir: Path | str, *, password: str, runtime_dir: Path | None = None, timeout: float = 15.0
) -> PrivateKeychain:
    """A private bus and an unlocked gnome-keyring whose files live under ``tmpdir``; the
    bus socket goes in ``runtime_dir`` (default: a new short directory, removed by stop)."""
    tmpdir = Path(tmpdir)
    bus = start_session_bus(tmpdir, runtime_dir=runtime_dir, timeout=timeout)
    try:
        keyring = start_gnome_keyring(
            bus, tmpdir / "keyring-home", password=password, timeout=timeout
        )
    except BaseException:
        bus.stop()
        raise
    return PrivateKeychain(bus, keyring, tmpdir)

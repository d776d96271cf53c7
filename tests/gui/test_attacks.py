"""Real attacks on the approval dialog (issue #3): a same-user program tries to answer it.

Every test runs the real app (``gui-approver app``, a subprocess on the xcb platform under
Xvfb, with a private session bus, gnome-keyring and a arena AT-SPI accessibility bus),
sends a real publish request through the real bridge, waits until Approve is armed, and then
attacks the dialog from other processes with the tools in tests/attack_tools/. The request
must end denied or still pending, and the bridge must never receive a token.

What the tests observe is what any same-user process can observe anyway, never an "approve"
channel: the bridge's answer, the app's log file, the window title (xdotool), and what a
screen reader reads over AT-SPI. Each attack also leaves evidence that it reached the app
(the guard's "dropped ..." log lines, or AT-SPI refusing), so a test cannot pass because
an attack missed. A dialog is ended by WM_DELETE_WINDOW (the window manager's close
button: a deny) or by Deny pressed through AT-SPI.

Xvfb has no hardware. The only way to make input that the X server attributes to a real
device (the "Xvfb mouse"/"Xvfb keyboard" slaves) is XTEST aimed at that device -- which is
also the hole the dialog cannot close on X11. The positive tests use exactly that, so they
both prove that a person can approve through the full guard and document the hole.

Only Approve ignores input from software (issue #14): XTEST input (on-screen keyboards,
voice control, remote desktop, Barrier/Input Leap) reaches the dialog and can deny; on
Approve it is refused and the dialog says so; a Tab from it never leaves Approve focused.

The matrix (attack -> expected result):

  XTEST on the real devices (stand-in for a person)   approved  (the known X11 hole)
  xdotool click on Approve                            refused and said so, pending
  xdotool key Return / space / Tab space              Deny (Tab never lands on Approve)
  xdotool key Tab, then the user's real space         Deny (the worm's Tab went to Deny)
  xdotool click on Deny, key Escape                   denied (software may always deny)
  xdotool click --window (XSendEvent)                 dropped (send_event), pending
  xdotool key --window Tab space (focused: XTEST)     Deny
  python-xlib XSendEvent click, keys, FocusIn+keys    dropped (send_event), pending
  AT-SPI DoAction(0..2) + GrabFocus on Approve        no action exists, pending
  AT-SPI generateMouseEvent / generateKeyboardEvent   XTEST underneath: refused on Approve
  real-device click + keys within 100 ms of mapping   not armed yet: pending or denied
  pointer warped onto Approve, then a real click      refused (no raw motion), pending
  a window kept over the dialog, then a real click    disarmed while covered, pending
  keyboard remapped (a -> Tab) while open, typing     disarmed, re-armed from scratch
  StatusNotifierItem / dbusmenu actions over D-Bus    only "show"; Quit -> nothing signed
  app without XInput2 (QT_XCB_NO_XI2=1)               refused with a message, even the
                                                      real-device path; pending
  paranoid_accessibility = true                       app absent from the AT-SPI bus
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import select
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import envtools
import pyseto
import pytest
from checks import json_of
from factories import cargo_request

pytestmark = pytest.mark.gui

TOOLS = Path(__file__).resolve().parents[1] / "attack_tools"
SYSTEM_PYTHON = "/usr/bin/python3"  # Debian's, with python3-pyatspi and python3-xlib
BIN = Path(sys.executable).parent
LOCAL = "sparse+http://127.0.0.1:8765/index/"
TITLE = "gui-approver: publish of "
#: Approve's centre, from the dialog's bottom-right corner (checked against AT-SPI below).
APPROVE_FROM_CORNER = (51, 22)


def publish_line(name: str, vers: str = "1.0.0") -> str:
    request = cargo_request("publish", name=name, vers=vers, cksum="ab" * 32, index_url=LOCAL)
    return json.dumps(request) + "\n"


class Bridge:
    """``cargo-credential-gui-approver`` as cargo runs it, with one publish request."""

    def __init__(self, env: dict[str, str], name: str) -> None:
        self.name = name
        self.proc = subprocess.Popen(
            [str(BIN / "cargo-credential-gui-approver"), "--cargo-plugin"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env={**env, "GUI_APPROVER_NO_AUTOSTART": "1"},
        )
        self._buf = b""
        assert self.proc.stdin is not None
        self.proc.stdin.write(publish_line(name).encode())
        self.proc.stdin.flush()
        assert self._line(10) == '{"v":[1]}'

    def _line(self, timeout: float) -> str:
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        deadline = time.monotonic() + timeout
        while b"\n" not in self._buf:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"bridge for {self.name}: no answer in {timeout} s")
            if select.select([fd], [], [], remaining)[0]:
                chunk = os.read(fd, 65536)
                if not chunk:
                    raise AssertionError(f"bridge for {self.name} exited without an answer")
                self._buf += chunk
        line, _, self._buf = self._buf.partition(b"\n")
        return line.decode()

    @property
    def pending(self) -> bool:
        """No answer yet (and so certainly no token)."""
        assert self.proc.stdout is not None
        if self._buf:
            return False
        return not select.select([self.proc.stdout.fileno()], [], [], 0)[0]

    def answer(self, timeout: float = 10) -> dict[str, Any]:
        out: dict[str, Any] = json.loads(self._line(timeout))
        self.proc.wait(5)
        return out

    def close(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            self.proc.kill()
        self.proc.wait(5)
        for stream in (self.proc.stdin, self.proc.stdout):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()


class App:
    """One ``gui-approver app`` process, with its own runtime dir (socket) and log file."""

    def __init__(self, env: dict[str, str], out: Path) -> None:
        self.env = env
        self.log_path = Path(env["XDG_STATE_HOME"]) / "gui-approver" / "log" / "gui-approver.log"
        self.proc = envtools.spawn([str(BIN / "gui-approver"), "app"], env=env, log_path=out)

        def listening() -> bool:
            if self.proc.poll() is not None:
                raise AssertionError(f"the app exited {self.proc.returncode}: {out.read_text()}")
            return "listening on" in out.read_text()

        envtools.wait_for(listening, 30, what="the app to listen")

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def mark(self) -> int:
        return len(self.log())

    def wait_log(self, pattern: str, since: int = 0, timeout: float = 15) -> re.Match[str]:
        rx = re.compile(pattern)
        try:
            return envtools.wait_for(
                lambda: rx.search(self.log()[since:]), timeout, what=f"log line /{pattern}/"
            )
        except AssertionError as exc:
            raise AssertionError(
                f"{exc}; the app's log since then:\n{self.log()[since:]}"
            ) from None

    def wait_armed(self, dialog: int, since: int = 0) -> None:
        self.wait_log(rf"dialog {dialog}: Approve armed", since)

    def stop(self) -> None:
        envtools.stop_process(self.proc)


class Arena:
    """The apps under attack plus the attacker's tools, in one isolated X/D-Bus session.

    Module-scoped: one keychain, one AT-SPI bus and one app serve the plain tests (each
    with its own request); tests that need a differently configured app start their own
    with :meth:`new_app`. :meth:`end_test` denies whatever a test left open.
    """

    def __init__(self, env: dict[str, str], tmp: Path, public: str) -> None:
        self.env = env
        self.tmp = tmp
        self.public = public
        self.helpers: list[subprocess.Popen[bytes]] = []
        self.bridges: list[Bridge] = []
        self.extra_apps: list[App] = []
        self.cleanup_dirs: list[Path] = []
        self.app = self._start_app(env)
        self.log, self.mark, self.wait_log = self.app.log, self.app.mark, self.app.wait_log

    # -- apps and requests -----------------------------------------------------------------
    def _start_app(self, env: dict[str, str]) -> App:
        return App(env, self.tmp / f"app-{time.monotonic_ns()}.out")

    def new_app(self, settings: str = "", **extra_env: str) -> App:
        """Another app with its own socket, log and settings (same keychain and keys)."""
        root = Path(tempfile.mkdtemp(prefix="app-", dir=self.tmp))
        runtime = envtools.make_runtime_dir("gat-x-")
        self.cleanup_dirs.append(runtime)
        env = {
            **self.env,
            "XDG_RUNTIME_DIR": str(runtime),
            "XDG_STATE_HOME": str(root / "state"),
            "XDG_CONFIG_HOME": str(root / "config"),
            **extra_env,
        }
        config = root / "config" / "gui-approver"
        shutil.copytree(Path(self.env["XDG_CONFIG_HOME"]) / "gui-approver", config)  # keys
        (config / "settings.toml").write_text(settings)
        app = App(env, root / "app.out")
        self.extra_apps.append(app)
        return app

    def publish(
        self,
        name: str,
        *,
        armed: bool = True,
        app: App | None = None,
    ) -> tuple[Bridge, int]:
        app = app or self.app
        since = app.mark()
        bridge = Bridge(app.env, name)
        self.bridges.append(bridge)
        m = app.wait_log(rf"dialog (\d+): showing publish of {name} ", since)
        dialog = int(m.group(1))
        if armed:
            app.wait_armed(dialog, since)
        return bridge, dialog

    def wait_armed(self, dialog: int, since: int = 0) -> None:
        self.app.wait_armed(dialog, since)

    # -- the screen ------------------------------------------------------------------------
    def window(self, name: str, timeout: float = 10) -> int:
        def find() -> int | None:
            ids = self.find_windows(TITLE + name)
            return ids[0] if ids else None

        return envtools.wait_for(find, timeout, what=f"the dialog window for {name}")

    def find_windows(self, title: str) -> list[int]:
        out = subprocess.run(
            ["xdotool", "search", "--onlyvisible", "--name", title],
            env=self.env,
            capture_output=True,
            text=True,
            check=False,
        )
        return [int(w) for w in out.stdout.split()]

    def geometry(self, wid: int) -> tuple[int, int, int, int]:
        out = self.run(["xdotool", "getwindowgeometry", "--shell", str(wid)])
        g = dict(line.split("=", 1) for line in out.split())
        return int(g["X"]), int(g["Y"]), int(g["WIDTH"]), int(g["HEIGHT"])

    def approve_point(self, name: str) -> tuple[int, int]:
        x, y, w, h = self.geometry(self.window(name))
        return x + w - APPROVE_FROM_CORNER[0], y + h - APPROVE_FROM_CORNER[1]

    def deny_by_closing(self, bridge: Bridge, name: str) -> dict[str, Any]:
        """WM_DELETE_WINDOW, as a window manager's close button: the dialog denies."""
        self.tool("xsend.py", "close", str(self.window(name)), system=True)
        return bridge.answer()

    # -- tools -----------------------------------------------------------------------------
    def run(self, argv: list[str], timeout: float = 20) -> str:
        proc = subprocess.run(
            argv, env=self.env, capture_output=True, text=True, timeout=timeout, check=False
        )
        if proc.returncode != 0:
            raise AssertionError(f"{argv} failed ({proc.returncode}): {proc.stderr}")
        return proc.stdout

    def tool(self, script: str, *args: str, system: bool = False) -> dict[str, Any]:
        python = SYSTEM_PYTHON if system else sys.executable
        out = self.run([python, str(TOOLS / script), *args])
        return dict(json.loads(out.strip().splitlines()[-1]))

    def atspi(self, *args: str) -> dict[str, Any]:
        return self.tool("atspi_tool.py", *args, system=True)

    def spawn_tool(
        self, script: str, *args: str, system: bool = False, stdin: int | None = subprocess.PIPE
    ) -> subprocess.Popen[bytes]:
        python = SYSTEM_PYTHON if system else sys.executable
        return self.spawn([python, str(TOOLS / script), *args], stdin=stdin)

    def spawn(
        self,
        argv: list[str],
        stdin: int | None = subprocess.DEVNULL,
    ) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(
            argv,
            env=self.env,
            stdin=stdin,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        self.helpers.append(proc)
        return proc

    # -- per test --------------------------------------------------------------------------
    def end_test(self) -> None:
        """Deny whatever the test left open and stop its helpers, so the next test starts
        from a quiet screen."""
        for proc in self.helpers:
            envtools.stop_process(proc)
            for stream in (proc.stdin, proc.stdout, proc.stderr):
                if stream is not None:
                    with contextlib.suppress(OSError):
                        stream.close()
        self.helpers.clear()
        for app in self.extra_apps:
            app.stop()
        self.extra_apps.clear()
        for wid in self.find_windows(TITLE):
            with contextlib.suppress(AssertionError):
                self.tool("xsend.py", "close", str(wid), system=True)
        for bridge in self.bridges:
            with contextlib.suppress(AssertionError):
                bridge.answer(5)
            bridge.close()
        self.bridges.clear()
        envtools.wait_for(lambda: not self.find_windows(TITLE), 10, what="every dialog to be gone")
        if not self.app.alive:
            self.app = self._start_app(self.env)
            self.log, self.mark, self.wait_log = self.app.log, self.app.mark, self.app.wait_log

    def stop(self) -> None:
        self.end_test()
        self.app.stop()
        for d in self.cleanup_dirs:
            shutil.rmtree(d, ignore_errors=True)


def read_json_line(proc: subprocess.Popen[bytes], timeout: float = 10) -> dict[str, Any]:
    assert proc.stdout is not None
    if not select.select([proc.stdout.fileno()], [], [], timeout)[0]:
        raise AssertionError("the tool printed nothing")
    return dict(json.loads(proc.stdout.readline()))


# -- fixtures -------------------------------------------------------------------------------


def start_a11y_bus(env: dict[str, str], tmp: Path) -> subprocess.Popen[bytes]:
    """A arena AT-SPI stack on the session bus, announced on the X root window as in every
    X11 desktop session (so Qt exposes the app without being asked to)."""
    launcher = envtools.require_program("/usr/libexec/at-spi-bus-launcher", "at-spi2-core")
    log = tmp / "at-spi.log"
    proc = envtools.spawn([launcher, "--launch-immediately"], env=env, log_path=log)

    def announced() -> bool:
        if proc.poll() is not None:
            raise AssertionError(log.read_text())
        out = subprocess.run(
            ["xprop", "-root", "AT_SPI_BUS"], env=env, capture_output=True, text=True, check=False
        ).stdout
        return env["XDG_RUNTIME_DIR"] in out

    try:
        envtools.wait_for(announced, 10, what="the AT-SPI bus to be announced")
    except BaseException:
        envtools.stop_process(proc)
        raise
    return proc


def require_system_python() -> None:
    """The AT-SPI and python-xlib attackers run on Debian's python3 (packaging/bootstrap.sh
    installs python3-pyatspi and python3-xlib); fail loudly, never skip, without them."""
    probe = subprocess.run(
        [SYSTEM_PYTHON, "-c", "import pyatspi, Xlib"], capture_output=True, text=True, check=False
    )
    if probe.returncode != 0:
        raise envtools.EnvToolError(
            f"{SYSTEM_PYTHON} cannot import pyatspi and Xlib ({probe.stderr.strip()}): "
            "install the Debian packages python3-pyatspi and python3-xlib "
            "(packaging/bootstrap.sh test does)"
        )


@pytest.fixture(scope="module")
def session(tmp_path_factory, xvfb_display) -> Iterator[Arena]:
    require_system_python()
    tmp = tmp_path_factory.mktemp("attacks")
    keychain = envtools.start_secret_service(tmp / "keychain")
    dirs = envtools.make_app_dirs(tmp / "app", runtime_dir=keychain.runtime_dir)
    env = envtools.app_env_for(dirs, keychain_env=keychain.env, display=xvfb_display.display)
    a11y = None
    arena = None
    try:
        a11y = start_a11y_bus(env, tmp)
        key = subprocess.run(
            [
                str(BIN / "gui-approver"),
                "key",
                "new",
                "--registry",
                "local",
                "--index",
                LOCAL,
                "--json",
            ],
            env=env,
            capture_output=True,
            text=True,
            check=True,
            timeout=30,
        )
        arena = Arena(env, tmp, json.loads(key.stdout)["public"])
        yield arena
    finally:
        if arena is not None:
            arena.stop()
        if a11y is not None:
            envtools.stop_process(a11y)
            subprocess.run(
                ["xprop", "-root", "-remove", "AT_SPI_BUS"],
                env=env,
                check=False,
                capture_output=True,
            )
        keychain.stop()


@pytest.fixture
def arena(session) -> Iterator[Arena]:
    try:
        yield session
    finally:
        session.end_test()


def assert_denied(answer: dict[str, Any]) -> None:
    assert "Ok" not in answer, answer
    assert "denied" in answer["Err"]["message"], answer


def assert_token(arena: Arena, answer: dict[str, Any]) -> None:
    token = answer["Ok"]["token"]
    decoded = pyseto.decode(pyseto.Key.from_paserk(arena.public), token)
    assert json_of(decoded.footer)["url"] == LOCAL


# -- the genuine path (and the X11 hole it shares) -------------------------------------------


def test_real_device_click_approves__the_xtest_on_real_device_hole(arena):
    bridge, _ = arena.publish("genuine")
    x, y = arena.approve_point("genuine")
    arena.tool("xinject.py", "device-click", str(x), str(y))
    assert_token(arena, bridge.answer())


def use_real_keyboard(arena: Arena) -> None:
    """Make the real keyboard the one the X server last used *before* the dialog opens.
    Switching keyboards while a dialog is open (XkbNewKeyboardNotify) restarts its arming,
    because the new keyboard may map keys differently."""
    arena.tool("xinject.py", "device-keys", "Shift_L")


def test_real_device_tab_space_approves(arena):
    use_real_keyboard(arena)
    bridge, _ = arena.publish("genuinekeys")
    arena.tool("xinject.py", "device-keys", "Tab", "space")
    assert_token(arena, bridge.answer())


def test_queue_one_dialog_at_a_time_each_decided(arena):
    first, d1 = arena.publish("first")
    second = Bridge(arena.env, "second")
    arena.bridges.append(second)
    shown = arena.atspi("dump", TITLE + "first")
    assert any(n["name"].startswith("1 more request waiting") for n in shown["nodes"])
    x, y = arena.approve_point("first")
    since = arena.mark()
    arena.tool("xinject.py", "device-click", str(x), str(y))
    assert_token(arena, first.answer())
    m = arena.wait_log(r"dialog (\d+): showing publish of second ", since)
    assert int(m.group(1)) != d1
    assert second.pending
    assert_denied(arena.deny_by_closing(second, "second"))


# -- accessibility ---------------------------------------------------------------------------


def test_screen_reader_reads_everything_but_approve_has_no_action(arena):
    bridge, _ = arena.publish("readable")
    nodes = arena.atspi("dump", TITLE + "readable")["nodes"]
    names = [n["name"] for n in nodes]
    for value in ("publish", "local", LOCAL, "readable", "1.0.0", "Deny", "Approve"):
        assert value in names, (value, names)
    assert any("abababab" in n for n in names)
    approve = next(n for n in nodes if n["role"] == "push button" and n["name"] == "Approve")
    deny = next(n for n in nodes if n["role"] == "push button" and n["name"] == "Deny")
    assert approve["actions"] == [] and "enabled" in approve["states"]
    assert "Press" in deny["actions"]
    # The accessible geometry matches the constant the other tests click at.
    ax, ay, aw, ah = approve["extents"]
    px, py = arena.approve_point("readable")
    assert ax < px < ax + aw and ay < py < ay + ah
    assert_denied(arena.deny_by_closing(bridge, "readable"))


def test_atspi_do_action_and_grab_focus_on_approve(arena):
    bridge, _ = arena.publish("a11ypress")
    result = arena.atspi("press", TITLE + "a11ypress", "Approve")
    assert result["found"]
    assert result["button"]["actions"] == []
    assert [a for a in result["attempts"] if a[1] is True] == [], result
    assert bridge.pending
    # Deny, the safe answer, stays pressable for assistive technology.
    assert ["DoAction(0)", True] in arena.atspi("press", TITLE + "a11ypress", "Deny")["attempts"]
    assert_denied(bridge.answer())


def test_atspi_generated_mouse_and_key_events(arena):
    bridge, dialog = arena.publish("a11yevents")
    x, y = arena.approve_point("a11yevents")
    since = arena.mark()
    arena.atspi("mouse", str(x), str(y), "b1c")
    arena.wait_log(r"untrusted button-press from XTEST device", since)
    arena.wait_log(rf"dialog {dialog}: Approve refused input \(input from software\)", since)
    assert bridge.pending
    names = [n["name"] for n in arena.atspi("dump", TITLE + "a11yevents")["nodes"]]
    assert any("that input came from software" in n for n in names), names
    since = arena.mark()
    # Tab from software skips Approve, so the space lands on Deny: software can deny.
    arena.atspi("keys", "Tab", "space", "Return")
    arena.wait_log(r"untrusted key-press from XTEST device", since)
    assert_denied(bridge.answer())
    assert "approved" not in arena.log()[since:]


def test_paranoid_accessibility_detaches_from_the_bus(arena):
    app = arena.new_app(settings="paranoid_accessibility = true\n")
    bridge, _ = arena.publish("paranoid", app=app)
    # A control Qt app in the same session does show up on the bus ...
    arena.spawn([sys.executable, "-c", QT_PROBE])
    envtools.wait_for(
        lambda: "attack-probe" in arena.atspi("apps")["apps"],
        15,
        what="the control app on the accessibility bus",
    )
    # ... and so does the ordinary gui-approver, but not the paranoid one: its dialog
    # cannot be found there at all.
    assert arena.atspi("press", TITLE + "paranoid", "Approve") == {"found": False}
    assert arena.atspi("dump", TITLE + "paranoid") == {"found": False}
    assert_denied(arena.deny_by_closing(bridge, "paranoid"))


QT_PROBE = """
import sys
from PySide6 import QtCore, QtWidgets
app = QtWidgets.QApplication(["attack-probe"])
app.setApplicationName("attack-probe")
w = QtWidgets.QPushButton("probe")
w.show()
QtCore.QTimer.singleShot(30000, app.quit)
app.exec()
"""


# -- X11 injection ---------------------------------------------------------------------------

#: What each attack may end in: "pending" (Approve refused it) or "denied" (it reached Deny,
#: which any input may press). Never a token.
XDOTOOL_OUTCOME = {
    "xdotool click": "pending",
    "xdotool key Return": "denied",
    "xdotool key space": "denied",
    "xdotool key Tab space": "denied",
    "xdotool click --window (XSendEvent)": "pending",
    # xdotool uses XTEST, not XSendEvent, when --window is the focused window (the dialog).
    "xdotool key --window Tab space": "denied",
}
XDOTOOL_ATTACKS = {
    "xdotool click": lambda a, w, x, y: [["xdotool", "mousemove", str(x), str(y), "click", "1"]],
    "xdotool key Return": lambda a, w, x, y: [["xdotool", "key", "Return"]],
    "xdotool key space": lambda a, w, x, y: [["xdotool", "key", "space"]],
    "xdotool key Tab space": lambda a, w, x, y: [["xdotool", "key", "Tab", "space"]],
    "xdotool click --window (XSendEvent)": lambda a, w, x, y: [
        ["xdotool", "mousemove", str(x), str(y)],
        ["xdotool", "click", "--window", str(w), "1"],
    ],
    "xdotool key --window Tab space": lambda a, w, x, y: [
        ["xdotool", "key", "--window", str(w), "Tab", "space"]
    ],
}


@pytest.mark.parametrize("attack", list(XDOTOOL_ATTACKS))
def test_xdotool(arena, attack):
    name = "xdo" + re.sub(r"[^a-z]", "", attack.lower())[:40]
    bridge, _ = arena.publish(name)
    wid = arena.window(name)
    x, y = arena.approve_point(name)
    since = arena.mark()
    for argv in XDOTOOL_ATTACKS[attack](arena, wid, x, y):
        arena.run(argv)
    arena.wait_log(
        r"input guard: (dropped a (synthetic )?(button|key|mouse)|untrusted "
        r"(button|key))",
        since,
    )
    outcome = XDOTOOL_OUTCOME[attack]
    if outcome == "pending":
        if attack == "xdotool click":
            arena.wait_log(r"Approve refused input \(input from software\)", since)
        assert bridge.pending
        assert_denied(arena.deny_by_closing(bridge, name))
    else:
        assert_denied(bridge.answer())
    assert "approved" not in arena.log()[since:]


def deny_point(arena: Arena, name: str) -> tuple[int, int]:
    nodes = arena.atspi("dump", TITLE + name)["nodes"]
    deny = next(n for n in nodes if n["role"] == "push button" and n["name"] == "Deny")
    x, y, w, h = deny["extents"]
    return x + w // 2, y + h // 2


@pytest.mark.parametrize("how", ["click Deny", "Escape"])
def test_software_input_can_deny(arena, how):
    """On-screen keyboards, voice control, remote desktop and software KVMs use XTEST."""
    name = "swdeny" + how.split()[0].lower()
    bridge, _ = arena.publish(name)
    since = arena.mark()
    if how == "click Deny":
        x, y = deny_point(arena, name)
        arena.run(["xdotool", "mousemove", str(x), str(y), "click", "1"])
    else:
        arena.run(["xdotool", "key", "Escape"])
    arena.wait_log(r"untrusted (button|key)-press from XTEST device", since)
    assert_denied(bridge.answer())


def test_software_tab_before_the_users_space_denies(arena):
    """A worm Tabs to Approve just before the user presses Space meaning Deny: the Tab
    goes to Deny instead, and the user's real Space denies."""
    use_real_keyboard(arena)
    bridge, dialog = arena.publish("swtab")
    # The first XTEST key switches keyboards (XkbNewKeyboardNotify), which disarms Approve;
    # a worm would wait for it to arm again before its Tab.
    since = arena.mark()
    arena.run(["xdotool", "key", "Shift_L"])
    arena.wait_log(rf"dialog {dialog}: Approve disarmed", since)
    arena.wait_armed(dialog, since)
    since = arena.mark()
    arena.run(["xdotool", "key", "Tab"])
    arena.wait_log(rf"dialog {dialog}: a Tab from software would focus Approve", since)
    arena.tool("xinject.py", "device-keys", "space")  # the user's own Space
    assert_denied(bridge.answer())


@pytest.mark.parametrize("attack", [["click"], ["keys", "Tab", "space"], ["focus+keys"]])
def test_forged_xsendevent_python_xlib(arena, attack):
    name = "xsend" + attack[0].replace("+", "")
    bridge, _ = arena.publish(name)
    wid = str(arena.window(name))
    x, y, _w, _h = arena.geometry(int(wid))
    ax, ay = arena.approve_point(name)
    since = arena.mark()
    if attack[0] == "click":
        arena.tool("xsend.py", "click", wid, str(ax - x), str(ay - y), system=True)
    elif attack[0] == "keys":
        arena.tool("xsend.py", "keys", wid, *attack[1:], system=True)
    else:
        arena.tool("xsend.py", "focus", wid, system=True)
        arena.tool("xsend.py", "keys", wid, "Tab", "space", system=True)
    arena.wait_log(r"input guard: dropped a synthetic", since)
    assert bridge.pending
    assert_denied(arena.deny_by_closing(bridge, name))


def test_keys_and_click_within_100ms_of_the_dialog_appearing(arena):
    """Even input the guard cannot tell from a person (XTEST on the real devices) is too
    early: Approve is not armed until the dialog has been active for a second."""
    racer = arena.spawn_tool("xinject.py", "race", TITLE + "racer", *map(str, APPROVE_FROM_CORNER))
    assert racer.stdout is not None
    assert racer.stdout.readline().strip() == b"watching"
    since = arena.mark()
    bridge, dialog = arena.publish("racer", armed=False)
    result = read_json_line(racer)
    assert result["ms_after_map"] < 100, result
    # A disarmed Approve is disabled, so Tab cannot reach it and the space lands on Deny
    # (the default focus) if the keys arrive after the window got the focus; if they came
    # earlier they went elsewhere and the dialog arms later. Either way: no approval.
    m = arena.wait_log(rf"dialog {dialog}: (denied|Approve armed)", since)
    if m.group(1) == "denied":
        assert_denied(bridge.answer())
    else:
        assert bridge.pending
        assert_denied(arena.deny_by_closing(bridge, "racer"))


def test_pointer_warped_onto_approve_then_real_click(arena):
    """A worm warps the pointer onto Approve just before the user clicks: refused, because
    the pointer did not get there by the mouse."""
    bridge, _ = arena.publish("warp")
    x, y = arena.approve_point("warp")
    # The user's mouse, somewhere else (not on the app's status window at the top left).
    arena.tool("xinject.py", "device-click", "5", "795")
    since = arena.mark()
    arena.tool("xinject.py", "warp", str(x), str(y))
    arena.tool("xinject.py", "device-button")  # the user's real click
    arena.wait_log(r"refused a real click on Approve: the pointer was last moved there", since)
    assert bridge.pending
    assert_denied(arena.deny_by_closing(bridge, "warp"))


def test_window_over_the_dialog_disarms_approve(arena):
    bridge, dialog = arena.publish("covered")
    x, y, _w, _h = arena.geometry(arena.window("covered"))
    since = arena.mark()
    cover = arena.spawn_tool(
        "xinject.py", "cover", str(x + 20), str(y + 20), "200", "60", "--fight"
    )
    assert "mapped" in read_json_line(cover)
    arena.wait_log(rf"dialog {dialog}: Approve disarmed \(covered by another window\)", since)
    ax, ay = arena.approve_point("covered")
    arena.tool("xinject.py", "device-click", str(ax), str(ay))  # a real click, while covered
    assert bridge.pending
    assert cover.stdin is not None
    cover.stdin.close()  # the covering window gives up; the dialog re-arms on its own
    arena.wait_armed(dialog, since)
    assert_denied(arena.deny_by_closing(bridge, "covered"))


def test_without_xinput2_approval_is_refused_not_guessed(arena):
    app = arena.new_app(QT_XCB_NO_XI2="1")
    bridge, _ = arena.publish("noxi2", armed=False, app=app)
    nodes = arena.atspi("dump", TITLE + "noxi2")["nodes"]
    status = " ".join(n["name"] for n in nodes if n["role"] == "label")
    assert "Approving is disabled" in status and "QT_XCB_NO_XI2" in status
    approve = next(n for n in nodes if n["role"] == "push button" and "Approve" in n["name"])
    assert approve["name"] == "Approve (unavailable)"
    assert "enabled" not in approve["states"]
    x, y = arena.approve_point("noxi2")
    since = app.mark()
    arena.tool("xinject.py", "device-click", str(x), str(y))  # even the "real device" path
    app.wait_log(r"input guard: untrusted core mouse event", since)
    assert bridge.pending
    assert_denied(arena.deny_by_closing(bridge, "noxi2"))


# -- the tray ---------------------------------------------------------------------------------


def test_tray_dbus_actions_cannot_approve(arena):
    watcher = arena.spawn_tool("sni.py", "watcher", stdin=subprocess.DEVNULL)
    assert watcher.stdout is not None
    assert watcher.stdout.readline().strip() == b"ready"
    app = arena.new_app()  # started after the watcher: its tray icon goes on D-Bus
    bridge, _ = arena.publish("tray", app=app)
    attack = arena.tool("sni.py", "attack")
    assert attack["items"], attack
    labels = [label.replace("&", "").lower() for label in attack["labels"]]
    assert "show pending request" in labels and not any("approv" in lb for lb in labels)
    assert attack["triggered"], attack
    assert bridge.pending
    arena.tool("sni.py", "quit")  # the worst a tray action can do: quit, which denies
    answer = bridge.answer()
    assert "Ok" not in answer and "nothing was signed" in answer["Err"]["message"], answer
    if "a system tray appeared" in arena.app.log():
        # The arena's own app found the watcher too (it looks for a tray every 5 s), so the
        # Quit reached it as well: wait until it is gone, so that end_test starts a fresh one
        # instead of the next test talking to an app that is just quitting.
        envtools.wait_for(lambda: not arena.app.alive, 15, what="the arena's app to quit too")


@pytest.mark.slow
def test_keyboard_remapped_while_the_dialog_is_open(arena):
    """A worm turns letters into Tab and Space (what xmodmap does) hoping the user types:
    the dialog disarms and arms again from scratch, and typed letters keep it disarmed."""
    use_real_keyboard(arena)
    bridge, dialog = arena.publish("remap")
    since = arena.mark()
    old = arena.tool("xsend.py", "remap", "38", "Tab", system=True)["old"]  # "a" -> Tab
    try:
        disarmed = arena.wait_log(
            rf"dialog {dialog}: Approve disarmed \(the keyboard or "
            r"pointer mapping changed\)",
            since,
        )
        # armed again from scratch: an "armed" line after the disarm (not the first arming,
        # which a loaded machine may log after `since`)
        arena.wait_armed(dialog, since + disarmed.end())
        since = arena.mark()
        arena.tool("xinject.py", "device-keys", "b")  # the user keeps typing (for real)
        arena.wait_log(rf"dialog {dialog}: Approve disarmed \(typing\)", since)
    finally:
        arena.tool("xsend.py", "remap", "38", *old, system=True)
    assert bridge.pending
    assert_denied(arena.deny_by_closing(bridge, "remap"))

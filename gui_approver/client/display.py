"""Is there a graphical session the approval dialog can reach? (stdlib only: the bridge
asks too, before it starts the app.)

Without one, Qt aborts (SIGABRT, a core dump and a message blaming ``xcb-cursor0``), so the
app and the bridge check first and say what is wrong in one sentence.

    python -m gui_approver.client.display     exit 0 with a display, else 1 and the sentence
"""

from __future__ import annotations

import _socket as socket
import os
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping

NO_DISPLAY = (
    "no graphical session (DISPLAY/WAYLAND_DISPLAY unset or unreachable): the "
    "approval dialog needs your desktop"
)
#: What to do about it (the app and `make run` print this under the sentence).
NO_DISPLAY_HINT = (
    "run gui-approver in your desktop session, or `gui-approver demo "
    "--unattended` to see it work without one"
)
#: Qt platforms that need no display server.
_HEADLESS_PLATFORMS = ("offscreen", "minimal", "vnc", "eglfs", "linuxfb", "vkkhrdisplay")


def _connects(family: int, address: str | tuple[str, int], timeout: float = 1.0) -> bool:
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.settimeout(timeout)
        sock.connect(address)
        return True
    except OSError:
        return False
    finally:
        sock.close()


def x11_reachable(display: str) -> bool:
    """True when the X server named by ``display`` (``:0``, ``unix:1.0``, ``host:10``,
    XQuartz's ``/path/org.xquartz:0``) accepts a connection."""
    host, sep, rest = display.rpartition(":")
    if not sep:
        return False
    number = rest.split(".", 1)[0]
    if host.startswith("/"):
        return _connects(
            socket.AF_UNIX, display.rsplit(".", 1)[0] if "." in rest else display
        ) or os.path.exists(host)
    if not number.isdigit():
        return False
    if host in ("", "unix"):
        path = f"/tmp/.X11-unix/X{number}"  # noqa: S108 - the X server's fixed socket
        # Linux listens on the abstract name too (and only there inside some sandboxes).
        return (
            sys.platform.startswith("linux") and _connects(socket.AF_UNIX, "\0" + path)
        ) or _connects(socket.AF_UNIX, path)
    return _connects(socket.AF_INET, (host.strip("[]"), 6000 + int(number)))


def wayland_reachable(name: str, env: Mapping[str, str]) -> bool:
    path = name if name.startswith("/") else os.path.join(env.get("XDG_RUNTIME_DIR", ""), name)
    return _connects(socket.AF_UNIX, path)


def display_problem(env: Mapping[str, str] | None = None) -> str | None:
    """None when Qt can show a window with ``env`` (default: this process's), else the
    sentence :data:`NO_DISPLAY`. Platforms without a display server (offscreen) pass;
    macOS and Windows always pass (the desktop is the session)."""
    env = os.environ if env is None else env
    if sys.platform in ("darwin", "win32"):
        return None
    platform = env.get("QT_QPA_PLATFORM", "").split(":", 1)[0].split(";", 1)[0].strip()
    if platform in _HEADLESS_PLATFORMS:
        return None
    wayland = env.get("WAYLAND_DISPLAY", "")
    x11 = env.get("DISPLAY", "")
    if platform.startswith("wayland"):
        return None if wayland and wayland_reachable(wayland, env) else NO_DISPLAY
    if platform == "xcb":
        return None if x11 and x11_reachable(x11) else NO_DISPLAY
    if wayland and wayland_reachable(wayland, env):
        return None
    if x11 and x11_reachable(x11):
        return None
    return NO_DISPLAY


def main() -> int:
    problem = display_problem()
    if problem is None:
        return 0
    sys.stderr.write(f"gui-approver: {problem}.\n  {NO_DISPLAY_HINT}.\n")
    return 1


if __name__ == "__main__":
    sys.exit(main())

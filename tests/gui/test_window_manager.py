"""Issue #14, Major 5, under a real window manager (openbox on a private Xvfb): a minimized
approval dialog comes back (un-iconified, as the X server reports it) when the app is asked
to show it -- here by a second launch, which sends the running app the IPC "show" message.

A private display: the other Xvfb tests (tests/gui/test_attacks.py) assume no window
manager (no frames, no focus policy of its own)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import envtools
import pytest
from factories import cargo_request

pytestmark = pytest.mark.gui

BIN = Path(sys.executable).parent
LOCAL = "sparse+http://127.0.0.1:8765/index/"
TITLE = "gui-approver: publish of "


@pytest.fixture
def desktop(tmp_path, app_env) -> Iterator[dict[str, str]]:
    openbox = envtools.require_program("openbox", "openbox")
    display = envtools.start_xvfb(tmp_path / "xvfb")
    wm = None
    try:
        env = dict(app_env, DISPLAY=display.display, QT_QPA_PLATFORM="xcb")
        wm = envtools.spawn([openbox, "--sm-disable"], env=env, log_path=tmp_path / "wm.log")

        def managed() -> bool:
            out = subprocess.run(
                ["xprop", "-root", "_NET_SUPPORTING_WM_CHECK"],
                env=env,
                capture_output=True,
                text=True,
                check=False,
            ).stdout
            return "window id" in out

        envtools.wait_for(managed, 15, what="openbox to manage the display")
        yield env
    finally:
        if wm is not None:
            envtools.stop_process(wm)
        display.stop()


def wm_state(env: dict[str, str], wid: str) -> str:
    out = subprocess.run(
        ["xprop", "-id", wid, "WM_STATE"], env=env, capture_output=True, text=True, check=False
    ).stdout
    return "Iconic" if "Iconic" in out else ("Normal" if "Normal" in out else out.strip())


def test_second_launch_unminimizes_the_pending_dialog(desktop, tmp_path):
    env = desktop
    key = subprocess.run(
        [str(BIN / "gui-approver"), "key", "new", "--registry", "local", "--index", LOCAL],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert key.returncode == 0, key.stderr
    out = tmp_path / "app.out"
    app = envtools.spawn([str(BIN / "gui-approver"), "app"], env=env, log_path=out)
    bridge = None
    try:
        envtools.wait_for(lambda: "listening on" in out.read_text(), 30, what="the app to listen")
        bridge = subprocess.Popen(
            [str(BIN / "cargo-credential-gui-approver"), "--cargo-plugin"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env={**env, "GUI_APPROVER_NO_AUTOSTART": "1"},
        )
        assert bridge.stdin is not None
        publish = cargo_request(
            "publish", name="minimized", vers="1.0.0", cksum="ab" * 32, index_url=LOCAL
        )
        bridge.stdin.write((json.dumps(publish) + "\n").encode())
        bridge.stdin.flush()

        def dialog() -> str | None:
            ids = subprocess.run(
                ["xdotool", "search", "--onlyvisible", "--name", TITLE + "minimized"],
                env=env,
                capture_output=True,
                text=True,
                check=False,
            ).stdout.split()
            return ids[0] if ids else None

        wid = envtools.wait_for(dialog, 30, what="the approval dialog")
        envtools.wait_for(lambda: wm_state(env, wid) == "Normal", 10, what="a mapped dialog")
        subprocess.run(["xdotool", "windowminimize", wid], env=env, check=True, timeout=10)
        envtools.wait_for(
            lambda: wm_state(env, wid) == "Iconic",
            10,
            what="the window manager to minimize the dialog",
        )
        second = subprocess.run(
            [str(BIN / "gui-approver")], env=env, capture_output=True, text=True, timeout=60
        )
        assert second.returncode == 0 and "brought its window forward" in second.stderr, (
            second.stderr
        )
        envtools.wait_for(
            lambda: wm_state(env, wid) == "Normal", 10, what="the dialog to be un-minimized"
        )
    finally:
        if bridge is not None:
            bridge.kill()
            bridge.wait(5)
            for stream in (bridge.stdin, bridge.stdout):
                if stream is not None:
                    stream.close()
        envtools.stop_process(app)

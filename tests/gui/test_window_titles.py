"""Issue #14 (minor): window titles say "gui-approver: keys", not "gui-approver: keys —
gui-approver" (the real `gui-approver keys` on Xvfb, its title read back from the X server)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import envtools
import pytest

pytestmark = pytest.mark.gui

BIN = Path(sys.executable).parent


def test_key_manager_title_has_no_doubled_app_name(gui_env, tmp_path):
    proc = envtools.spawn(
        [str(BIN / "gui-approver"), "keys"], env=gui_env, log_path=tmp_path / "keys.out"
    )
    try:

        def window() -> str | None:
            out = subprocess.run(
                ["xdotool", "search", "--onlyvisible", "--name", "^gui-approver: keys"],
                env=gui_env,
                capture_output=True,
                text=True,
                check=False,
            ).stdout.split()
            return out[0] if out else None

        wid = envtools.wait_for(window, 30, what="the key manager window")
        name = subprocess.run(
            ["xdotool", "getwindowname", wid],
            env=gui_env,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        assert name == "gui-approver: keys"
    finally:
        envtools.stop_process(proc)

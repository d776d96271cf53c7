"""Issue #14, Major 1: without a graphical session the app says so before Qt starts (no
SIGABRT, no core dump), the bridge hands that sentence to cargo, and `make run` says it and
what to do."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from factories import cargo_request

from gui_approver.client.display import NO_DISPLAY, display_problem

BIN = Path(sys.executable).parent
REPO = Path(__file__).resolve().parents[2]
PUBLISH = json.dumps(
    cargo_request(
        "publish",
        name="foo",
        vers="1.0.0",
        cksum="cd" * 32,
        index_url="sparse+http://127.0.0.1:8765/index/",
    )
)


def headless_env(**extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")
        and not k.startswith("GUI_APPROVER")
    }
    env.update(extra)
    return env


@pytest.mark.parametrize("display", [None, ":93"], ids=["unset", "unreachable"])
def test_app_without_a_display_exits_1_with_the_sentence(display):
    env = headless_env(**({"DISPLAY": display} if display else {}))
    proc = subprocess.run(
        [str(BIN / "gui-approver")], env=env, capture_output=True, text=True, timeout=30
    )
    assert proc.returncode == 1, proc.stderr  # not -6 (SIGABRT)
    assert NO_DISPLAY in proc.stderr
    assert "gui-approver demo --unattended" in proc.stderr
    assert "xcb" not in proc.stderr  # Qt never started


def test_display_problem_sees_a_real_x_server(xvfb_display):
    assert display_problem({"DISPLAY": xvfb_display.display}) is None
    assert display_problem({"DISPLAY": xvfb_display.display, "QT_QPA_PLATFORM": "xcb"}) is None
    assert display_problem({"DISPLAY": ":93"}) == NO_DISPLAY
    assert (
        display_problem({"WAYLAND_DISPLAY": "wayland-93", "XDG_RUNTIME_DIR": "/nonexistent"})
        == NO_DISPLAY
    )
    assert display_problem({"QT_QPA_PLATFORM": "offscreen"}) is None


def test_bridge_passes_the_sentence_to_cargo(tmp_path):
    runtime = tmp_path / "run"
    runtime.mkdir(mode=0o700)
    env = headless_env(XDG_RUNTIME_DIR=str(runtime))
    proc = subprocess.run(
        [str(BIN / "cargo-credential-gui-approver"), "--cargo-plugin"],
        input=PUBLISH + "\n",
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 0
    answer = json.loads(proc.stdout.splitlines()[1])
    message = answer["Err"]["message"]
    assert NO_DISPLAY in message and "nothing was signed" in message
    assert "exited with code" not in message
    assert "starting it" not in proc.stderr  # nothing was started


def test_make_run_headless_says_what_to_do():
    # -o bootstrap-run: the venv this test runs in is the one `make run` would make.
    proc = subprocess.run(
        ["make", "-s", "-o", "bootstrap-run", "run", f"VENV={Path(sys.executable).parent.parent}"],
        cwd=REPO,
        env=headless_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode != 0
    out = proc.stdout + proc.stderr
    assert NO_DISPLAY in out
    assert "desktop session" in out and "gui-approver demo --unattended" in out
    assert "No key yet" not in out  # the demo was not started either


def test_a_66_character_crate_name_says_longer_than_64(tmp_path):
    runtime = tmp_path / "run"
    runtime.mkdir(mode=0o700)
    line = PUBLISH.replace('"name": "foo"', '"name": "' + "a" * 66 + '"')
    assert "a" * 66 in line
    proc = subprocess.run(
        [str(BIN / "cargo-credential-gui-approver"), "--cargo-plugin"],
        input=line + "\n",
        env=headless_env(XDG_RUNTIME_DIR=str(runtime)),
        capture_output=True,
        text=True,
        timeout=30,
    )
    message = json.loads(proc.stdout.splitlines()[1])["Err"]["message"]
    assert "longer than 64 characters" in message, message

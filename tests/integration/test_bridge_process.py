"""The installed bridge as cargo starts it, a process of its own: what it imports at start-up
(what keeps it fast), and one clear answer to every broken input."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from checks import assert_one_answer

from gui_approver.client import protocol

BRIDGE = str(Path(sys.executable).parent / "cargo-credential-gui-approver")


def test_protocol_and_bridge_import_no_heavy_modules() -> None:
    """What keeps the bridge fast: no json/re/enum/typing/dataclasses/socket.py at start."""
    code = (
        "import sys; before = set(sys.modules); import gui_approver.client.bridge; "
        "print(' '.join(sorted(set(sys.modules) - before)))"
    )
    out = subprocess.run(
        [sys.executable, "-I", "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=str(Path(__file__).parents[2]),
    ).stdout.split()
    for heavy in ("json", "re", "enum", "typing", "dataclasses", "inspect", "socket", "selectors"):
        assert heavy not in out, (heavy, out)


SUBPROCESS_CASES = [
    (b"\x00\xff garbage\n", "not valid"),
    (b"[" * 100_000 + b"\n", "too large"),
    (b"[" * 30_000 + b"\n", "nested too deeply"),
    (b'{"v":1,"registry":{"index-url":"x"},"kind":"get","operation":["read"]}\n', "string"),
    (b'{"v":1,"registry":{"index-url":"x"},"kind":"sign"}\n', "unsupported request kind"),
    (
        b'{"v":1,"registry":{"index-url":"x"},"kind":"get","operation":"delete"}\n',
        "unsupported operation",
    ),
    (
        b'{"v":1,"registry":{"index-url":"x"},"kind":"get","operation":"publish","name":"x"}\n',
        "missing the field 'vers'",
    ),
    (b"x" * (protocol.MAX_REQUEST_BYTES + 10), "too large"),  # no newline at all
    (b"", "closed stdin"),
]


@pytest.mark.parametrize(("stdin", "needle"), SUBPROCESS_CASES)
def test_real_bridge_subprocess_answers_once(tmp_path: Path, stdin: bytes, needle: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GUI_APPROVER")}
    env.update(GUI_APPROVER_NO_AUTOSTART="1", GUI_APPROVER_RUNTIME_DIR=str(tmp_path / "run"))
    proc = subprocess.run(
        [BRIDGE, "--cargo-plugin"], input=stdin, capture_output=True, env=env, timeout=30
    )
    lines = proc.stdout.decode().split("\n")
    answer = assert_one_answer(proc.returncode, lines)
    assert needle in answer["Err"]["message"]

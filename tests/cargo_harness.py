"""The e2e harness: the app in-process (pytest-qt, offscreen), the demo registry, the real
keychain (``app_env``) and a CARGO_HOME that points the real cargo at our bridge. The ``harness``
fixture is registered in tests/conftest.py."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from checks import approval_dialog
from leakscan import scan
from PySide6.QtCore import Qt

from gui_approver.core.keys.store import KeyRecord, KeyringKeychain, KeyStore
from gui_approver.core.settings import Settings
from gui_approver.registry.server import DemoRegistry
from gui_approver.registry.verify import RegisteredKey
from gui_approver.ui.app import GuiApp
from gui_approver.ui.dialog import ApprovalDialog

BIN = Path(sys.executable).parent
BRIDGE = str(BIN / "cargo-credential-gui-approver")
CLI = str(BIN / "gui-approver")


def cargo(args: list[str], cwd: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        ["cargo", *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
    )


def next_dialog(
    qtbot: Any, gui: GuiApp, proc: subprocess.Popen[bytes], timeout: float
) -> ApprovalDialog | None:
    """The app's next approval dialog, or None once cargo exited without one."""
    qtbot.waitUntil(
        lambda: gui.approver.dialog is not None or proc.poll() is not None,
        timeout=int(timeout * 1000),
    )
    shown = gui.approver.dialog
    return None if shown is None else approval_dialog(shown)


def answer_dialog(qtbot: Any, gui: GuiApp, dialog: ApprovalDialog, answer: str) -> None:
    """Answer like the user ("approve": a real click once Approve is armed; else Deny), then
    wait until the app has let go of this dialog."""
    if answer == "approve":
        dialog.activateWindow()
        qtbot.waitUntil(dialog.approve_button.isEnabled, timeout=5000)
        qtbot.mouseClick(dialog.approve_button, Qt.MouseButton.LeftButton)
    else:
        qtbot.mouseClick(dialog.deny_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: gui.approver.dialog is not dialog, timeout=5000)


def finish(qtbot: Any, proc: subprocess.Popen[bytes], timeout: float) -> tuple[int, bytes, bytes]:
    """Wait for cargo to exit: its exit code, stdout and stderr."""
    qtbot.waitUntil(lambda: proc.poll() is not None, timeout=int(timeout * 1000))
    out, err = proc.communicate()
    return proc.returncode, out, err


class Harness:
    """The app in-process, a registry, a CARGO_HOME pointing cargo at our bridge."""

    def __init__(self, qtbot, env, tmp_path: Path, registry: DemoRegistry, gui: GuiApp):
        self.qtbot = qtbot
        self.env = env
        self.tmp = tmp_path
        self.registry = registry
        self.gui = gui
        self.outputs: list[bytes] = []

    def run(
        self,
        args: list[str],
        cwd: Path,
        decide=None,
        timeout: float = 60.0,
        env: dict[str, str] | None = None,
    ):
        """Run cargo; ``decide`` is a list of "approve"/"deny" answers to the dialogs."""
        proc = cargo(args, cwd, env or self.env)
        for answer in decide or []:
            dialog = next_dialog(self.qtbot, self.gui, proc, timeout)
            assert dialog is not None, f"cargo exited without asking: {proc.communicate()}"
            self.dialogs.append({k: v.text() for k, v in dialog.field_labels.items()})
            answer_dialog(self.qtbot, self.gui, dialog, answer)
        rc, out, err = finish(self.qtbot, proc, timeout)
        self.outputs += [out, err]
        return rc, out.decode(), err.decode()

    dialogs: list[dict[str, str]]
    record: KeyRecord


@pytest.fixture
def harness(qtbot, gui_app, app_env, tmp_path):
    registry = DemoRegistry(tmp_path / "registry-data")
    registry.start()
    store = KeyStore(KeyringKeychain())
    gui = gui_app(store, Settings())
    rec = store.create(registry="local", index_url=registry.index_url)
    registry.add_key(RegisteredKey(public=rec.public))
    rc = subprocess.run(
        [CLI, "configure-cargo", "--registry", "local", "--index", registry.index_url],
        env=app_env,
        capture_output=True,
        text=True,
    )
    assert rc.returncode == 0, rc.stderr
    env = dict(app_env)
    env["CARGO_TERM_COLOR"] = "never"
    h = Harness(qtbot, env, tmp_path, registry, gui)
    h.dialogs = []
    h.record = rec
    yield h
    gui.stop()  # (gui_app would too, but after the leak scan below)
    registry.stop()
    # Leak scan: every file the app, the bridge and cargo wrote (XDG dirs incl. logs, audit
    # and history, the runtime dir, CARGO_HOME, the registry) plus everything cargo printed
    # (which includes the bridge's stderr) must be free of the secret key in any encoding.
    secret = KeyringKeychain().get(rec.kip)
    if secret is not None:  # a test may have deleted the key on purpose
        hits = scan(
            secret,
            paths=[
                app_env.dirs.root,
                app_env.dirs.runtime_dir,
                Path(app_env["CARGO_HOME"]),
                tmp_path,
            ],
            texts=h.outputs,
        )
        assert hits == [], hits


PUBLISH = ["publish", "--registry", "local", "--no-verify", "--allow-dirty"]


def harness_pem(harness) -> str:
    from cryptography.hazmat.primitives import serialization

    from gui_approver.core.keys.store import parse_public_paserk

    return (
        parse_public_paserk(harness.record.public)
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )

"""Screenshots of the new-key wizard's last page, the passphrase prompt and the Recent
activity window, on a private Xvfb with a private keychain (issue #14).

    .venv/bin/python tests/attack_tools/screenshot_ux.py [--out DIR]

Writes ``wizard-cargo.png``, ``passphrase.png`` and ``activity.png`` into DIR (default
resources/screenshots/). Everything is the real code in real xcb windows; XDG dirs and
CARGO_HOME point into a temporary tree. The approval dialog: screenshot_dialog.py.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO))

import envtools  # noqa: E402

DEMO_INDEX = "sparse+http://127.0.0.1:8765/index/"


def _settle(app: object, rounds: int = 10) -> None:
    for _ in range(rounds):
        app.processEvents()  # type: ignore[attr-defined]


def _grab(window: object, path: Path) -> Path:
    window.screen().grabWindow(window.winId()).save(str(path), "PNG")  # type: ignore[attr-defined]
    return path


def render(out: Path, tmp: Path) -> list[Path]:
    from PySide6.QtWidgets import QApplication

    from gui_approver.core import audit
    from gui_approver.core.keys.store import KeyringKeychain, KeyStore
    from gui_approver.secret import Secret
    from gui_approver.ui.activity import ActivityWindow
    from gui_approver.ui.keys import NewKeyWizard
    from gui_approver.ui.passphrase import PassphraseDialog

    app = QApplication.instance() or QApplication(["gui-approver"])
    QApplication.setApplicationDisplayName("gui-approver")
    store = KeyStore(KeyringKeychain())
    written = []

    wizard = NewKeyWizard(
        store, cargo_home=Path(os.environ["CARGO_HOME"]), demo_data_dir=tmp / "demo-registry"
    )
    wizard.show()
    page = wizard.registry_page
    page.other.setChecked(True)
    page.name_edit.setText("my-registry")
    page.index_edit.setText("sparse+https://my.registry.example/index/")
    if hasattr(page, "kind_key"):
        page.kind_key.setChecked(True)  # an asymmetric key (not a bearer token)
    wizard.next()
    wizard.next()
    wizard.next()
    _settle(app)
    written.append(_grab(wizard, out / "wizard-cargo.png"))
    wizard.close()

    rec = store.create(
        registry="company-registry",
        index_url="sparse+https://crates.company.example/index/",
        passphrase=Secret("correct horse battery staple"),
    )
    prompt = PassphraseDialog(
        rec,
        "unlock the key to sign the read of the registry's index that cargo makes before a "
        "publish, yank or owner change",
        deadline=time.monotonic() + 118,
    )
    prompt.show()
    _settle(app)
    written.append(_grab(prompt, out / "passphrase.png"))
    prompt.dismiss()

    log = audit.AuditLog(tmp / "audit.jsonl")
    now = time.time()
    import datetime as dt

    def at(seconds_ago: float) -> str:
        t = dt.datetime.fromtimestamp(now - seconds_ago, dt.UTC)
        return t.strftime("%Y-%m-%dT%H:%M:%S.%fZ")

    samples = [
        (86400 * 2, "signed", "read", None, None, "read before a publish"),
        (86400 * 2 - 3, "signed", "publish", "tokio-frobnicate", "1.4.1", "approved in the dialog"),
        (3600, "signed", "read", None, None, "read before a publish"),
        (3597, "denied", "publish", "tokio-frobnicate", "1.4.2", "denied in the dialog"),
        (120, "denied", "yank", "tokio-frobnicate", "1.4.0", "no decision within 120 s"),
        (30, "signed", "publish", "tokio-frobnicate", "1.4.2", "approved in the dialog"),
    ]
    for ago, decision, op, crate, vers, reason in samples:
        log.record(
            time=at(ago),
            decision=decision,
            operation=op,
            crate=crate,
            version=vers,
            registry="my-registry",
            reason=reason,
            requester={"pid": 48213, "cwd": "/home/alex/src/tokio-frobnicate"},
        )
    log.close()
    window = ActivityWindow(tmp / "audit.jsonl")
    window.show()
    _settle(app)
    written.append(_grab(window, out / "activity.png"))
    window.close()
    written.append(_software_input_dialog(app, out / "dialog-software-input.png"))
    return written


def _software_input_dialog(app: object, path: Path) -> Path:
    """The dialog after a click from software (an on-screen keyboard, xdotool) landed on
    Approve, with Approve then focused by the user's Tab: the message and the focus ring."""
    import json

    from PySide6.QtCore import Qt

    from gui_approver.client.framing import Provenance
    from gui_approver.client.protocol import parse_request
    from gui_approver.core.approval import ApprovalRequest
    from gui_approver.ui.dialog import ApprovalDialog
    from gui_approver.ui.guard import FROM_SOFTWARE

    req = parse_request(
        json.dumps(
            {
                "v": 1,
                "registry": {
                    "index-url": "sparse+https://my.registry.example/index/",
                    "name": "my-registry",
                },
                "kind": "get",
                "operation": "publish",
                "name": "tokio-frobnicate",
                "vers": "1.4.2",
                "cksum": "4bc86c3855a0a147b74da8e22c1bfcdd495334dae87a24e463881299" + "41b78d6c",
            }
        )
    )
    dialog = ApprovalDialog(
        ApprovalRequest(
            request=req,
            key=None,
            timeout=120,
            provenance=Provenance(pid=48213, ppid=48190, cwd="/home/alex/src/tokio-frobnicate"),
        )
    )
    dialog.show()
    # Wait for the arming timer (event-driven), at most 10 s.
    from PySide6.QtCore import QEventLoop, QTimer

    loop = QEventLoop()
    dialog._arm_timer.timeout.connect(loop.quit)
    QTimer.singleShot(10_000, loop.quit)
    deadline = time.monotonic() + 10
    while not dialog.approve_button.armed and time.monotonic() < deadline:
        loop.exec()
    dialog._say_refused(dialog.approve_button, FROM_SOFTWARE)
    dialog.approve_button.setFocus(Qt.FocusReason.TabFocusReason)
    _settle(app)
    _grab(dialog, path)
    dialog.dismiss()
    return path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "resources" / "screenshots")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="gat-shots-") as tmpname:
        tmp = Path(tmpname)
        with envtools.start_secret_service(tmp / "keychain") as ss:
            display = envtools.start_xvfb(tmp / "xvfb")
            try:
                dirs = envtools.make_app_dirs(tmp / "app", runtime_dir=ss.runtime_dir)
                env = envtools.app_env_for(dirs, keychain_env=ss.env, display=display.display)
                env["QT_QPA_PLATFORM"] = "xcb"
                for var in envtools.LEAKY_ENV_VARS:
                    os.environ.pop(var, None)
                os.environ.update(env)
                envtools.forget_keyring_backend()
                for path in render(args.out.resolve(), tmp):
                    print(path)
            finally:
                display.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())

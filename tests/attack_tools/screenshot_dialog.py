"""Render the real approval dialog on a private Xvfb and save a screenshot of it.

    .venv/bin/python tests/attack_tools/screenshot_dialog.py [OUT.png] [--arming]

Default output: resources/screenshots/dialog.png. The dialog is the real
:class:`gui_approver.ui.dialog.ApprovalDialog` in a real xcb window with the real X11 input
guard, showing a publish of a sample crate with one more request waiting; by default the
shot is taken once Approve has armed (``--arming``: right after it appeared). The window is
grabbed with ``QScreen.grabWindow`` (no window manager, so no title bar).
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DEFAULT_OUT = REPO / "resources" / "screenshots" / "dialog.png"
CHILD = "GUI_APPROVER_SCREENSHOT_CHILD"


def child(out: Path, arming: bool) -> int:
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication

    from gui_approver.approval import ApprovalRequest
    from gui_approver.keys import KeyRecord
    from gui_approver.protocol import Provenance, parse_request
    from gui_approver.ui.a11y import install_accessibility_factory
    from gui_approver.ui.dialog import ApprovalDialog

    app = QApplication(["gui-approver"])
    app.setApplicationDisplayName("gui-approver")
    install_accessibility_factory()
    index = "sparse+https://index.crates.io/"
    request = parse_request(json.dumps({
        "v": 1, "registry": {"index-url": index, "name": "crates-io"}, "kind": "get",
        "operation": "publish", "name": "tokio-frobnicate", "vers": "1.4.2",
        "cksum": hashlib.sha256(b"tokio-frobnicate-1.4.2.crate").hexdigest(),
    }))
    key = KeyRecord(registry="crates-io", index_url=index, public="k3.public.sample",
                    kip="k3.pid.Qn5tJ2pOaE0bVqkF4w9sXr8yLcDz1HgTmUe6WvAiKoB",
                    subject=None, created="2026-01-05")
    approval = ApprovalRequest(
        request=request, key=key,
        provenance=Provenance(pid=48213, ppid=48190, cwd="/home/alex/src/tokio-frobnicate"))
    dialog = ApprovalDialog(approval, waiting=1)
    dialog.show()

    def shoot() -> None:
        # Wait (on the event loop) for the first paint, and for Approve to arm if wanted.
        if dialog.visible_at is None or (not arming and not dialog.approve_button.armed):
            QTimer.singleShot(20, shoot)
            return
        shot = dialog.screen().grabWindow(dialog.winId())
        out.parent.mkdir(parents=True, exist_ok=True)
        ok = shot.save(str(out), "PNG")
        print(f"{out}: {shot.width()}x{shot.height()}" if ok else f"cannot write {out}",
              flush=True)
        app.exit(0 if ok else 1)

    QTimer.singleShot(0, shoot)
    return app.exec()


def main(argv: list[str]) -> int:
    args = [a for a in argv if not a.startswith("--")]
    arming = "--arming" in argv
    out = Path(args[0]).resolve() if args else DEFAULT_OUT
    if os.environ.get(CHILD):
        return child(out, arming)
    sys.path.insert(0, str(REPO / "tests"))
    import envtools

    with tempfile.TemporaryDirectory(prefix="gui-approver-shot-") as tmp, \
            envtools.start_xvfb(tmp) as xvfb:
        dirs = envtools.make_app_dirs(Path(tmp) / "app")
        env = envtools.app_env_for(dirs, display=xvfb.display)
        env[CHILD] = "1"
        try:
            return subprocess.run([sys.executable, __file__, *argv], env=env,
                                  timeout=60, check=False).returncode
        finally:
            dirs.cleanup()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

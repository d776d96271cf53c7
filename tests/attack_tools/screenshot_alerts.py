"""Screenshot of the Alerts window with two real alerts (an out-of-band publish and a yank).

Run with the project's venv from the repository root::

    .venv/bin/python tests/attack_tools/screenshot_alerts.py            # offscreen platform
    .venv/bin/python tests/attack_tools/screenshot_alerts.py --xvfb     # a private Xvfb (xcb)

Writes ``resources/screenshots/alerts.png`` (or into ``--out DIR``). A demo registry in token
mode runs on loopback in a temporary directory; the watch's state dir is temporary too.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO))

import envtools  # noqa: E402


def _settle(app) -> None:
    for _ in range(5):
        app.processEvents()


def render(out: Path, tmp: Path) -> list[Path]:
    from PySide6.QtWidgets import QApplication
    from registry_tools import bearer_publish

    from gui_approver.core.audit import AuditLog
    from gui_approver.core.watch import StoredToken, Watch
    from gui_approver.registry.server import DemoRegistry, token_digest
    from gui_approver.secret import Secret
    from gui_approver.ui.alerts import AlertsWindow, WatchRunner

    app = QApplication.instance() or QApplication(["gui-approver"])
    QApplication.setApplicationDisplayName("gui-approver")
    with DemoRegistry(tmp / "registry", token_mode=True) as reg:
        token = reg.issue_token("ci")
        state = tmp / "state"
        audit = AuditLog(state / "audit.jsonl")
        for vers in ("1.4.0", "1.4.1"):
            bearer_publish(reg, token, "foo", vers, f"foo {vers}".encode())
            cksum = next(e for e in reg.crates()["foo"] if e["vers"] == vers)["cksum"]
            audit.record(
                event="get",
                registry="my-registry",
                index_url=reg.index_url,
                operation="publish",
                crate="foo",
                version=vers,
                cksum=cksum,
                decision="signed",
                reason="approved in the dialog",
            )
        watch = Watch(state)
        watch.run_once()  # the baseline
        bearer_publish(reg, token, "foo", "1.4.2", b"not from here")
        from registry_tools import call

        call(reg, "DELETE", "/api/v1/crates/foo/1.4.0/yank", headers={"Authorization": token})
        runner = WatchRunner(watch, 15)
        runner.last = watch.run_once()
        stored = StoredToken(
            "my-registry", token_digest(token)[:8], lambda: Secret(token), lambda: None
        )
        window = AlertsWindow(runner, lambda url: stored)
        window.show()
        _settle(app)
        path = out / "alerts.png"
        window.grab().save(str(path))
        window.close()
    return [path]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--xvfb", action="store_true", help="render on a private Xvfb (xcb)")
    parser.add_argument("--out", type=Path, default=REPO / "resources" / "screenshots")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="gat-shots-") as tmpname:
        tmp = Path(tmpname)
        display = envtools.start_xvfb(tmp / "xvfb") if args.xvfb else None
        try:
            dirs = envtools.make_app_dirs(tmp / "app")
            env = envtools.app_env_for(dirs, display=display.display if display else None)
            for var in envtools.LEAKY_ENV_VARS:
                os.environ.pop(var, None)
            os.environ.update(env)
            for path in render(args.out, tmp):
                print(path)
        finally:
            if display is not None:
                display.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())

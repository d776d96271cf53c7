"""Render the app's own windows on a private Xvfb and save screenshots of them.

    .venv/bin/python tests/attack_tools/screenshot_app.py [OUT_DIR]

Writes, into OUT_DIR (default resources/screenshots/):
  status-window.png  the status window shown where no tray host exists (Xvfb has none), with
                     a settings-file problem as the app reports it at start-up;
  tray-menu.png      the tray's context menu (rendered with QWidget.grab());
  first-run.png      the welcome window shown when no key exists;
  settings.png       the Settings window.
Everything is the real code (GuiApp with an empty in-memory key store, real settings.load of
a broken file) in real xcb windows; XDG dirs and CARGO_HOME point into a temporary tree.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DEFAULT_OUT = REPO / "resources" / "screenshots"
CHILD = "GUI_APPROVER_SCREENSHOT_APP_CHILD"


def child(out: Path) -> int:
    sys.path.insert(0, str(REPO / "tests"))
    from fakes import MemoryKeychain
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication, QWidget

    from gui_approver.core import settings as settings_mod
    from gui_approver.core.keys.store import KeyStore
    from gui_approver.ui.app import GuiApp
    from gui_approver.ui.settings_window import SettingsWindow

    app = QApplication(["gui-approver"])
    app.setApplicationDisplayName("gui-approver")
    app.setQuitOnLastWindowClosed(False)
    tmp = Path(tempfile.mkdtemp(prefix="gui-approver-shot-app-"))
    bad = Path(os.environ["XDG_CONFIG_HOME"]) / "gui-approver" / "settings.toml"
    bad.parent.mkdir(parents=True, exist_ok=True)
    bad.write_text("approval_timeout = 300\narming_delay = 2 s\n")
    settings, problems = settings_mod.load(bad)
    store = KeyStore(MemoryKeychain(), tmp / "keys.json")
    gui = GuiApp(store, settings, problems=problems, settings_path=bad)
    gui.start()
    assert gui.status_window is not None and gui.first_run_window is not None
    settings_window = SettingsWindow(settings, bad)
    settings_window.show()
    gui.status_window.move(40, 40)
    gui.first_run_window.move(40, 320)
    settings_window.move(660, 40)
    gui._make_tray()
    gui._refresh()
    menu = gui._menu
    menu.popup(gui.status_window.geometry().bottomRight())
    shots: list[tuple[str, QWidget]] = [
        ("status-window.png", gui.status_window),
        ("tray-menu.png", menu),
        ("first-run.png", gui.first_run_window),
        ("settings.png", settings_window),
    ]
    out.mkdir(parents=True, exist_ok=True)

    def shoot() -> None:
        ok = True
        for name, widget in shots:
            pix = widget.grab()
            path = out / name
            saved = pix.save(str(path), "PNG")
            ok = ok and saved
            print(
                f"{path}: {pix.width()}x{pix.height()}" if saved else f"cannot write {path}",
                flush=True,
            )
        settings_window.close()
        settings_window.deleteLater()
        gui.stop()
        app.exit(0 if ok else 1)

    QTimer.singleShot(500, shoot)
    return app.exec()


def main(argv: list[str]) -> int:
    out = Path(argv[0]).resolve() if argv else DEFAULT_OUT
    if os.environ.get(CHILD):
        return child(out)
    sys.path.insert(0, str(REPO / "tests"))
    import envtools

    with (
        tempfile.TemporaryDirectory(prefix="gui-approver-shot-") as tmp,
        envtools.start_xvfb(tmp) as xvfb,
    ):
        dirs = envtools.make_app_dirs(Path(tmp) / "app")
        env = envtools.app_env_for(dirs, display=xvfb.display)
        env[CHILD] = "1"
        try:
            return subprocess.run(
                [sys.executable, __file__, *argv], env=env, timeout=60, check=False
            ).returncode
        finally:
            dirs.cleanup()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""The app shell: status window where no tray exists, the tray menu, Lock now (offscreen)."""

from __future__ import annotations

from checks import present
from factories import cargo_request, request
from fakes import MemoryKeychain
from PySide6.QtWidgets import QPushButton, QSystemTrayIcon

from gui_approver.core.keys.store import KeyStore
from gui_approver.core.service import SignEvent
from gui_approver.core.settings import Settings
from gui_approver.secret import Secret

LOCAL = "sparse+http://127.0.0.1:8765/index/"


def make_app(gui_app, tmp_path, **kw):
    store = KeyStore(MemoryKeychain(), tmp_path / "keys.json")
    return gui_app(store, Settings(), **kw), store


def test_status_window_replaces_a_missing_tray(gui_app, tmp_path):
    assert not QSystemTrayIcon.isSystemTrayAvailable()  # offscreen has no tray host
    gui, _ = make_app(gui_app, tmp_path, auto_approve_loopback=True)
    assert gui.tray is None and gui.status_window is not None
    assert gui.status_window.isVisible()
    labels = [b.text() for b in gui.status_window.findChildren(QPushButton)]
    assert labels == [
        "Show pending request",
        "Keys…",
        "Recent activity…",
        "Alerts…",
        "Settings…",
        "Lock now",
        "Quit",
    ]
    assert not any("approve" in t.lower() for t in labels)
    assert "AUTO-APPROVE is ON" in gui.status_window.state.text()
    assert not gui.status_window.show_pending.isEnabled()


def test_tray_menu_can_only_show_the_dialog(gui_app, tmp_path):
    gui, _ = make_app(gui_app, tmp_path)
    gui._make_tray()
    gui._refresh()
    texts = [a.text() for a in gui._menu.actions() if not a.isSeparator()]
    assert texts[1:] == [
        "Show pending request",
        "Keys…",
        "Recent activity…",
        "Alerts…",
        "Settings…",
        "Lock now",
        "Quit",
    ]
    assert texts[0] == "No requests waiting."  # the (disabled) status line
    assert not any("approve" in t.lower() or "allow" in t.lower() for t in texts[1:])


def test_lock_now_forgets_unlocked_passphrase_keys(gui_app, tmp_path):
    gui, store = make_app(gui_app, tmp_path)
    rec = store.create(registry="local", index_url=LOCAL, passphrase=Secret("pw"))
    store.unlock(rec, Secret("pw"))
    assert store.is_unlocked(rec)
    assert not gui._all_locked()
    gui.lock_now()
    assert not store.is_unlocked(rec)
    assert gui._all_locked()


def test_keys_window_opens_from_the_app(gui_app, tmp_path):
    gui, store = make_app(gui_app, tmp_path)
    store.create(registry="local", index_url=LOCAL)
    gui.show_keys()
    assert gui.keys_window is not None and gui.keys_window.isVisible()


def test_recent_activity_opens_from_the_app(gui_app, tmp_path):
    gui, _ = make_app(gui_app, tmp_path)
    gui.show_activity()
    assert gui.activity_window is not None and gui.activity_window.isVisible()


def test_dialog_is_withdrawn_when_cargo_goes_away(qtbot, gui_app, tmp_path):
    import json
    import subprocess
    import sys
    from pathlib import Path

    events: list[SignEvent] = []
    gui, store = make_app(gui_app, tmp_path)
    gui.service.on_event = events.append
    store.create(registry="local", index_url=LOCAL)
    bridge = Path(sys.executable).parent / "cargo-credential-gui-approver"
    request = json.dumps(cargo_request("yank", name="foo", vers="1.0.0", index_url=LOCAL))
    proc = subprocess.Popen(
        [str(bridge), "--cargo-plugin"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    present(proc.stdin).write(request.encode() + b"\n")
    present(proc.stdin).flush()
    qtbot.waitUntil(lambda: gui.approver.dialog is not None, timeout=10000)
    proc.kill()  # cargo interrupted with Ctrl-C takes its provider with it
    proc.wait(5)
    qtbot.waitUntil(lambda: gui.approver.dialog is None, timeout=10000)
    qtbot.waitUntil(lambda: any(e.decision == "denied" for e in events), timeout=5000)
    denied = next(e for e in events if e.decision == "denied")
    assert "cargo stopped waiting" in denied.reason


# -- issue #14: minimized windows come back; a second launch raises the running app ------


def test_show_pending_request_unminimizes_the_dialog(qtbot, gui_app, tmp_path):
    from gui_approver.client.framing import Provenance
    from gui_approver.core.approval import ApprovalRequest

    gui, _ = make_app(gui_app, tmp_path)
    assert not gui.status_window.show_pending.isEnabled()
    gui._make_tray()
    gui._refresh()
    assert not gui._show_action.isEnabled()  # nothing pending: nothing to show

    req = request("yank", name="foo", vers="1.0.0", index_url=LOCAL)
    approval = ApprovalRequest(request=req, provenance=Provenance(), key=None, timeout=60)
    import threading

    threading.Thread(target=gui.approver.decide, args=(approval,), daemon=True).start()
    qtbot.waitUntil(lambda: gui.approver.dialog is not None, timeout=5000)
    dialog = gui.approver.dialog
    assert gui._show_action.isEnabled() and gui.status_window.show_pending.isEnabled()
    dialog.showMinimized()
    qtbot.waitUntil(dialog.isMinimized, timeout=3000)
    gui._show_action.trigger()
    qtbot.waitUntil(lambda: not dialog.isMinimized() and dialog.isVisible(), timeout=3000)
    dialog.showMinimized()
    qtbot.waitUntil(dialog.isMinimized, timeout=3000)
    gui.status_window.show_pending.click()
    qtbot.waitUntil(lambda: not dialog.isMinimized(), timeout=3000)
    dialog.reject()
    qtbot.waitUntil(lambda: gui.approver.dialog is None, timeout=3000)
    assert not gui._show_action.isEnabled()


def test_keys_and_activity_come_back_from_minimized(qtbot, gui_app, tmp_path):
    gui, _ = make_app(gui_app, tmp_path)
    for show, attr in (
        (gui.show_keys, "keys_window"),
        (gui.show_activity, "activity_window"),
        (gui.show_settings, "settings_window"),
    ):
        show()
        window = getattr(gui, attr)
        window.showMinimized()
        qtbot.waitUntil(window.isMinimized, timeout=3000)
        show()
        qtbot.waitUntil(lambda w=window: not w.isMinimized() and w.isVisible(), timeout=3000)


def test_second_launch_raises_the_running_apps_window(qtbot, gui_app, tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    from gui_approver.core import ipc

    gui, _ = make_app(gui_app, tmp_path, first_run=False)
    window = gui.status_window
    window.showMinimized()
    qtbot.waitUntil(window.isMinimized, timeout=3000)
    assert ipc.request_show(gui.server.directory) == {"ipc": 1, "type": "shown"}
    qtbot.waitUntil(lambda: not window.isMinimized(), timeout=3000)
    # The real second launch (same XDG_RUNTIME_DIR, offscreen): no "use its tray icon".
    window.showMinimized()
    qtbot.waitUntil(window.isMinimized, timeout=3000)
    proc = subprocess.Popen(
        [str(Path(sys.executable).parent / "gui-approver"), "app"],
        stderr=subprocess.PIPE,
        text=True,
    )
    qtbot.waitUntil(lambda: proc.poll() is not None, timeout=30000)
    err = present(proc.stderr).read()
    present(proc.stderr).close()
    assert proc.returncode == 0, err
    assert "brought its window forward" in err
    qtbot.waitUntil(lambda: not window.isMinimized(), timeout=3000)


def test_lock_now_says_what_it_did_and_the_key_manager_shows_locked(gui_app, tmp_path):
    gui, store = make_app(gui_app, tmp_path, first_run=False)
    rec = store.create(registry="local", index_url=LOCAL, passphrase=Secret("pw"))
    store.unlock(rec, Secret("pw"))
    gui.show_keys()
    status = gui.keys_window.cell_text(gui.keys_window.row_of(rec.kip), "Status")
    assert status == "unlocked"
    assert gui.lock_now() == ("Locked 1 key: the next use asks for the passphrase again.")
    assert gui.status_window.feedback.isVisible()
    assert gui.status_window.feedback.text().startswith("Locked 1 key")
    assert gui.keys_window.cell_text(gui.keys_window.row_of(rec.kip), "Status") == "locked"
    assert gui.lock_now() == "No key was unlocked: nothing to lock."


def test_status_and_welcome_windows_refresh_on_change(gui_app, tmp_path):
    """#14: "Keys: none yet." after the wizard made a key; "cargo is not configured" after
    it was."""
    home = tmp_path / "cargo-home"
    home.mkdir()
    store = KeyStore(MemoryKeychain(), tmp_path / "keys.json")
    gui = gui_app(store, Settings(), cargo_home=home)
    welcome = gui.first_run_window
    assert welcome is not None and welcome.cargo_note.isVisible()
    assert "Keys: none yet." in gui.status_window.state.text()
    wizard = welcome.open_wizard()
    rec = store.create(registry="mine", index_url=LOCAL)
    wizard.set_created(rec)  # what the wizard's options page does once the key exists
    assert "Keys: mine" in gui.status_window.state.text()
    view = wizard.cargo_page.view
    view.plan("mine", LOCAL)
    assert view.apply()
    assert not welcome.cargo_note.isVisible()
    # A key deleted in the key manager: the status follows too.
    gui.show_keys()
    store.delete(rec)
    gui.keys_window.refresh()
    assert "Keys: none yet." in gui.status_window.state.text()

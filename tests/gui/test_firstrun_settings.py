"""First run, the Settings window, settings problems, tray re-check, expiry warnings (offscreen)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import shiboken6
from fakes import MemoryKeychain
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QPushButton, QSystemTrayIcon

from gui_approver.core import settings as settings_mod
from gui_approver.core.keys import flows
from gui_approver.core.keys.store import KeyStore
from gui_approver.core.settings import Settings
from gui_approver.secret import Secret
from gui_approver.ui import app as app_mod
from gui_approver.ui.app import GuiApp, StatusWindow
from gui_approver.ui.firstrun import FirstRunWindow, cargo_uses_bridge
from gui_approver.ui.keys import NewKeyWizard
from gui_approver.ui.settings_window import SettingsWindow

LOCAL = "sparse+http://127.0.0.1:8765/index/"


@pytest.fixture
def cargo_home(tmp_path, monkeypatch):
    home = tmp_path / "cargo-home"
    home.mkdir()
    monkeypatch.setenv("CARGO_HOME", str(home))
    return home


def make_app(gui_app, tmp_path, store=None, **kw):
    store = store or KeyStore(MemoryKeychain(), tmp_path / "keys.json")
    return gui_app(store, kw.pop("settings", Settings()), **kw), store


# -- first run --------------------------------------------------------------------------------


def test_first_run_window_appears_without_keys_and_opens_the_wizard(
    qtbot, gui_app, tmp_path, cargo_home
):
    gui, _ = make_app(gui_app, tmp_path, cargo_home=cargo_home)
    win = gui.first_run_window
    assert isinstance(win, FirstRunWindow) and win.isVisible()
    assert not win.isModal()
    assert win.text.text().count(". ") + 1 == 3  # three sentences
    # cargo has no config at all: the window offers to configure it.
    assert win.needs_cargo and not win.configure_button.isHidden()
    qtbot.mouseClick(win.new_key_button, Qt.MouseButton.LeftButton)
    assert isinstance(win.wizard, NewKeyWizard) and win.wizard.isVisible()


def test_first_run_window_not_shown_when_keys_exist(gui_app, tmp_path, cargo_home):
    store = KeyStore(MemoryKeychain(), tmp_path / "keys.json")
    store.create(registry="local", index_url=LOCAL)
    gui, _ = make_app(gui_app, tmp_path, store=store, cargo_home=cargo_home)
    assert gui.first_run_window is None


def test_first_run_window_skipped_when_started_by_the_bridge(gui_app, tmp_path, cargo_home):
    gui, _ = make_app(gui_app, tmp_path, first_run=False, cargo_home=cargo_home)
    assert gui.first_run_window is None


def test_cargo_offer_hidden_when_a_registry_uses_the_bridge(qtbot, tmp_path, cargo_home):
    (cargo_home / "config.toml").write_text(
        '[registries.local]\nindex = "sparse+http://127.0.0.1:8765/index/"\n'
        'credential-provider = ["/opt/x/cargo-credential-gui-approver"]\n'
    )
    assert cargo_uses_bridge(cargo_home)
    win = FirstRunWindow(KeyStore(MemoryKeychain(), tmp_path / "k.json"), cargo_home=cargo_home)
    qtbot.addWidget(win)
    assert not win.needs_cargo and win.configure_button.isHidden()


def test_crates_io_registry_provider_counts_as_configured(cargo_home):
    assert not cargo_uses_bridge(cargo_home)
    (cargo_home / "config.toml").write_text(
        '[registry]\ncredential-provider = "/usr/bin/cargo-credential-gui-approver"\n'
    )
    assert cargo_uses_bridge(cargo_home)


def test_first_run_cargo_preview_writes_only_on_apply(qtbot, tmp_path, cargo_home, monkeypatch):
    bridge = tmp_path / "bin" / "cargo-credential-gui-approver"
    monkeypatch.setattr("gui_approver.core.cargo_config.bridge_path", lambda: str(bridge))
    store = KeyStore(MemoryKeychain(), tmp_path / "k.json")
    win = FirstRunWindow(store, cargo_home=cargo_home)
    qtbot.addWidget(win)
    # crates.io is pointed at the bridge only once its bearer token is in the keychain
    # (issue 11); before that, cargo keeps using the user's token.
    win.preview_cargo()
    assert "crates.io does not accept asymmetric tokens" in win.cargo_view.status.text()
    assert not win.cargo_view.apply_button.isEnabled()
    flows.add_token(store, Secret("cioFirstRunToken123"), registry="crates-io", origin="dialog")
    win.preview_cargo()
    assert "credential-provider" in win.cargo_view.diff.toPlainText()
    assert not (cargo_home / "config.toml").exists()
    assert win.cargo_view.apply()
    assert cargo_uses_bridge(cargo_home)


# -- settings ---------------------------------------------------------------------------------


def test_settings_window_saves_a_valid_file(qtbot, tmp_path):
    path = tmp_path / "cfg" / "settings.toml"
    win = SettingsWindow(Settings(), path)
    qtbot.addWidget(win)
    win.approval_timeout.setValue(300)
    win.arming_delay.setValue(2.5)
    win.reads_need_approval.setChecked(True)
    win.paranoid_accessibility.setChecked(True)
    with qtbot.waitSignal(win.saved) as blocker:
        assert win.save()
    loaded, problems = settings_mod.load(path)
    assert problems == []
    assert loaded == blocker.args[0]
    assert (loaded.approval_timeout, loaded.arming_delay) == (300.0, 2.5)
    assert loaded.reads_need_approval and loaded.paranoid_accessibility
    msg = win.message.text()
    assert str(path) in msg and "paranoid_accessibility" in msg and "restart" in msg


def test_settings_window_refuses_invalid_values(qtbot, tmp_path):
    path = tmp_path / "settings.toml"
    win = SettingsWindow(Settings(), path)
    qtbot.addWidget(win)
    win.approval_timeout.setValue(2)
    win.arming_delay.setValue(0.5)
    assert not win.save()
    assert not path.exists()
    msg = win.message.text()
    assert msg.startswith("Not saved")
    assert "approval_timeout" in msg and "arming_delay" in msg


def test_saved_settings_apply_to_the_running_app(gui_app, tmp_path, cargo_home):
    path = tmp_path / "settings.toml"
    gui, _ = make_app(gui_app, tmp_path, settings_path=path, cargo_home=cargo_home)
    gui.show_settings()
    win = gui.settings_window
    assert win is not None and win.isVisible()
    win.approval_timeout.setValue(42)
    assert win.save()
    assert gui.service.settings.approval_timeout == 42.0
    assert gui.approver.settings.approval_timeout == 42.0


def test_invalid_settings_file_shows_the_line_in_the_status_window(gui_app, tmp_path, cargo_home):
    path = tmp_path / "settings.toml"
    path.write_text("approval_timeout = 60\narming_delay = = 2\n")
    loaded, problems = settings_mod.load(path)
    assert loaded == Settings()
    assert len(problems) == 1 and "line 2" in problems[0] and str(path) in problems[0]
    assert path.read_text() == "approval_timeout = 60\narming_delay = = 2\n"  # untouched
    gui, _ = make_app(gui_app, tmp_path, settings=loaded, problems=problems, cargo_home=cargo_home)
    assert isinstance(gui.status_window, StatusWindow)
    shown = gui.status_window.problems.text()
    assert gui.status_window.problems.isVisibleTo(gui.status_window)
    assert "line 2" in shown and "default settings" in shown
    buttons = [b.text() for b in gui.status_window.findChildren(QPushButton)]
    assert "Settings…" in buttons


# -- tray re-check ----------------------------------------------------------------------------


def test_tray_is_created_when_a_tray_host_appears(
    qtbot, gui_app, tmp_path, cargo_home, monkeypatch
):
    available = [False]
    monkeypatch.setattr(
        QSystemTrayIcon, "isSystemTrayAvailable", staticmethod(lambda: available[0])
    )
    monkeypatch.setattr(app_mod, "TRAY_RECHECK_MS", 20)
    gui, _ = make_app(gui_app, tmp_path, cargo_home=cargo_home)
    assert gui.tray is None and gui.status_window is not None
    assert gui._tray_timer.isActive() and gui._tray_timer.interval() == 20
    for _ in range(2):  # two re-checks (the app's slot runs before this wait returns)
        with qtbot.waitSignal(gui._tray_timer.timeout, timeout=2000):
            pass
    assert gui.tray is None  # still no tray host
    window = gui.status_window
    available[0] = True
    qtbot.waitUntil(lambda: gui.tray is not None, timeout=2000)
    assert gui.status_window is None
    assert not shiboken6.isValid(window) or not window.isVisible()
    assert not gui._tray_timer.isActive()


# -- expiry warnings --------------------------------------------------------------------------


def test_expiry_warning_at_start_for_a_key_expiring_in_5_days(
    gui_app, tmp_path, cargo_home, monkeypatch
):
    store = KeyStore(MemoryKeychain(), tmp_path / "keys.json")
    soon = (datetime.now(UTC) + timedelta(days=5)).date().isoformat()
    later = (datetime.now(UTC) + timedelta(days=60)).date().isoformat()
    store.create(registry="soon", index_url=LOCAL, expires=soon)
    store.create(registry="later", index_url="sparse+http://127.0.0.1:9999/index/", expires=later)
    calls: list[tuple[str, str, bool]] = []
    monkeypatch.setattr(
        GuiApp, "notify", lambda self, t, m, *, warning=False: calls.append((t, m, warning))
    )
    gui, _ = make_app(gui_app, tmp_path, store=store, cargo_home=cargo_home)
    expiry = [c for c in calls if c[0] == "Key expiry"]
    assert expiry == [("Key expiry", "The key for soon expires in 5 days; rotate it.", True)]
    assert gui._expiry_timer.isActive()  # and again once a day


def test_expired_key_warning(gui_app, tmp_path, cargo_home):
    gui, store = make_app(gui_app, tmp_path, first_run=False, cargo_home=cargo_home)
    rec = store.create(
        registry="old",
        index_url=LOCAL,
        expires=(datetime.now(UTC) + timedelta(days=3)).date().isoformat(),
    )
    # The store refuses to create an already-expired key: age the record instead.
    past = (datetime.now(UTC) - timedelta(days=2)).date().isoformat()
    aged = type(rec)(**{**rec.to_json(), "expires": past})
    real_list = store.list
    store.list = lambda **kw: [aged if r.kip == rec.kip else r for r in real_list(**kw)]
    texts = gui.check_expiry()
    assert texts == [
        f"The key for old expired on {past}; it is no longer used. "
        "Rotate it (Keys…) to keep publishing."
    ]


def test_settings_refuse_a_5_second_timeout_and_explain_accessibility(qtbot, tmp_path):
    """#14: a 5 s approval timeout leaves no time to read the dialog; the tooltip is plain
    English; the accessibility checkbox says it hides the whole app from screen readers."""
    path = tmp_path / "settings.toml"
    win = SettingsWindow(Settings(), path)
    qtbot.addWidget(win)
    win.approval_timeout.setValue(5)
    assert not win.save() and "between 30 and 3600" in win.message.text()
    win.approval_timeout.setValue(30)
    win.idle_lock_minutes.setValue(1_000_000)
    assert not win.save() and "idle_lock_minutes" in win.message.text()
    win.idle_lock_minutes.setValue(15)
    assert win.save()
    assert "screen readers too" in win.paranoid_accessibility.text()
    assert "no screen reader can read" in win.paranoid_accessibility.toolTip()
    assert "what changed since the last approved version" in win.history_size_mb.toolTip()
    assert "what changed since (after" not in win.history_size_mb.toolTip()


def test_welcome_window_says_up_front_that_no_keychain_runs(qtbot, no_keychain):
    from gui_approver.core.keys.store import KeyringKeychain, KeyStore
    from gui_approver.ui.firstrun import NO_KEYCHAIN, FirstRunWindow

    w = FirstRunWindow(KeyStore(KeyringKeychain()))
    qtbot.addWidget(w)
    w.show()
    assert w.keychain_note.isVisible() and w.keychain_note.text() == NO_KEYCHAIN
    assert "hint:" not in w.keychain_note.text()
    assert not w.new_key_button.isEnabled() and not w.configure_button.isEnabled()

"""The app's watch (background passes, one notification per alert) and the Alerts window's
buttons, against the real demo registry in token mode (Qt offscreen)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fakes import MemoryKeychain
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QPushButton
from registry_tools import CARGO, bearer_publish, call, token_cargo

from gui_approver.core.audit import AuditLog
from gui_approver.core.keys.bearer import bearer_store
from gui_approver.core.keys.store import KeyStore
from gui_approver.core.settings import Settings
from gui_approver.core.watch import Watch
from gui_approver.registry.server import DemoRegistry
from gui_approver.secret import Secret
from gui_approver.ui.app import GuiApp


class Setup:
    def __init__(self, tmp: Path, reg: DemoRegistry, gui: GuiApp, watch: Watch) -> None:
        self.tmp, self.reg, self.gui, self.watch = tmp, reg, gui, watch
        self.token = reg.issue_token("ci")
        self.notes: list[tuple[str, str]] = []
        self.audit = AuditLog(watch.state_dir / "audit.jsonl")

    def publish(self, crate: str, vers: str) -> str:
        status, doc = bearer_publish(self.reg, self.token, crate, vers, f"{crate}{vers}".encode())
        assert status == 200, doc
        return str(next(e for e in self.reg.crates()[crate] if e["vers"] == vers)["cksum"])

    def approve(self, crate: str, vers: str, cksum: str) -> None:
        self.audit.record(
            event="get",
            registry="local",
            index_url=self.reg.index_url,
            operation="publish",
            crate=crate,
            version=vers,
            cksum=cksum,
            decision="signed",
            reason="approved in the dialog",
        )

    def run_pass(self, qtbot: Any) -> Any:
        with qtbot.waitSignal(self.gui.watch_runner.passed, timeout=15000) as blocker:
            assert self.gui.watch_runner.run_now()
        return blocker.args[0]


@pytest.fixture
def setup(gui_app: Any, tmp_path: Path) -> Iterator[Setup]:
    with DemoRegistry(tmp_path / "registry", token_mode=True) as reg:
        watch = Watch(tmp_path / "state", timeout=5.0)
        store = KeyStore(MemoryKeychain(), tmp_path / "keys.json")
        gui = gui_app(store, Settings(), watch=watch, first_run=False)
        s = Setup(tmp_path, reg, gui, watch)
        gui.notify = lambda title, msg, warning=False: s.notes.append((title, msg))
        yield s
        gui.stop()  # before the registry goes


def test_background_pass_notifies_each_alert_once(qtbot: Any, setup: Setup) -> None:
    assert setup.gui.watch_runner._timer.interval() == 15 * 60_000  # the default setting
    setup.approve("ui-one", "0.1.0", setup.publish("ui-one", "0.1.0"))
    first = setup.run_pass(qtbot)
    assert first.errors == [] and first.crates == 1 and setup.notes == []

    setup.publish("ui-one", "0.2.0")
    second = setup.run_pass(qtbot)
    assert len(second.new_alerts) == 1
    assert [t for t, _ in setup.notes] == ["Version nobody approved"]
    assert setup.notes[0][1].startswith("ui-one 0.2.0 appeared on local at")
    assert "1 open alert(s)" in setup.gui.status_text()
    assert setup.gui.status_window is not None  # offscreen: no tray host
    assert setup.gui.status_window.alerts_button.text() == "Alerts (1)…"
    setup.gui._make_tray()
    setup.gui._refresh()
    assert setup.gui._alerts_action.text() == "Alerts (1)…"

    setup.run_pass(qtbot)  # still open, not shown again
    assert len(setup.notes) == 1


def test_alert_raised_by_the_cli_is_notified_once_by_the_app(qtbot: Any, setup: Setup) -> None:
    setup.approve("ui-cli", "0.1.0", setup.publish("ui-cli", "0.1.0"))
    cli_watch = Watch(setup.watch.state_dir)  # another process would do the same
    cli_watch.run_once()
    setup.publish("ui-cli", "0.2.0")
    assert len(cli_watch.run_once().new_alerts) == 1
    setup.run_pass(qtbot)
    setup.run_pass(qtbot)
    assert len(setup.notes) == 1


def _buttons(window: Any) -> list[str]:
    return [b.text() for b in window.findChildren(QPushButton) if b.isVisibleTo(window)]


def test_alerts_window_it_was_me(qtbot: Any, setup: Setup) -> None:
    setup.watch.add("local", ["ui-me"], setup.reg.index_url)
    setup.run_pass(qtbot)
    setup.publish("ui-me", "1.0.0")
    setup.run_pass(qtbot)
    setup.gui.show_alerts()
    window = setup.gui.alerts_window
    assert window is not None and window.isVisible()
    assert window.summary.text().startswith("1 open alert:")
    (card,) = window.cards
    assert card.message.text().startswith("ui-me 1.0.0 appeared on local at")
    assert _buttons(card) == ["It was me / my CI", "Yank it", "Revoke this token"]
    assert not card.revoke_button.isEnabled()  # no bearer token stored for this registry
    card.elsewhere.setChecked(True)
    qtbot.mouseClick(card.expected_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: window.cards == [])
    assert window.summary.text() == "No open alerts."
    assert setup.watch.elsewhere(setup.reg.index_url) == {"ui-me"}
    setup.publish("ui-me", "1.1.0")
    assert setup.run_pass(qtbot).new_alerts == []


@pytest.mark.parametrize("protection", ["keychain", "passphrase"])
def test_alerts_window_revoke_this_token(qtbot: Any, setup: Setup, protection: str) -> None:
    """The token comes from the app's own bearer-token store (keychain, or passphrase-wrapped
    and unlocked through the app's unlocker); after the revoke it is gone from the store."""
    store = setup.gui.store
    bearer = bearer_store(store)
    passphrase = Secret("pass phrase") if protection == "passphrase" else None
    rec = bearer.add(
        Secret(setup.token), registry="local", index_url=setup.reg.index_url, passphrase=passphrase
    )
    asked_for_passphrase: list[str] = []

    def unlocker(_rec: Any, why: str) -> Secret | None:
        asked_for_passphrase.append(why)
        return passphrase

    store.unlocker = unlocker
    setup.watch.add("local", ["ui-rev"], setup.reg.index_url)
    setup.run_pass(qtbot)
    setup.publish("ui-rev", "0.1.0")
    setup.run_pass(qtbot)
    setup.gui.show_alerts()
    window = setup.gui.alerts_window
    assert window is not None
    asked: list[str] = []

    def confirm(title: str, text: str) -> bool:  # answers Yes
        asked.append(text)
        return True

    window.confirm = confirm
    (card,) = window.cards
    assert card.revoke_button.isEnabled()
    assert rec.fingerprint in card.revoke_button.toolTip()
    assert asked_for_passphrase == []  # showing the button reads no secret
    with qtbot.waitSignal(setup.gui.watch_runner.action_done, timeout=15000) as done:
        qtbot.mouseClick(card.revoke_button, Qt.MouseButton.LeftButton)
    assert done.args[1] is True, done.args[0]
    assert "revoked" in window.status.text()
    assert len(asked_for_passphrase) == (1 if passphrase else 0)
    assert "delete it from the keychain" in asked[0]
    assert bearer.find(setup.reg.index_url) is None  # deleted from the store
    assert setup.watch.needs_new_token(setup.reg.index_url)
    reply = call(
        setup.reg, "DELETE", "/api/v1/tokens/current", headers={"Authorization": setup.token}
    )
    assert reply.status == 403  # the registry rejects the token now
    assert setup.token not in window.status.text()
    window.refresh()
    assert not window.cards[0].revoke_button.isEnabled()
    assert "The token of local was revoked: store a new one" in window.summary.text()
    # a new token for the registry clears "needs a new token"
    new = bearer.add(
        Secret(setup.reg.issue_token("ci")), registry="local", index_url=setup.reg.index_url
    )
    lookup = setup.gui.token_source
    assert lookup is not None
    current = lookup(setup.reg.index_url)
    assert current is not None and current.fingerprint == new.fingerprint
    assert not setup.watch.needs_new_token(setup.reg.index_url, current)
    window.refresh()
    assert "revoked" not in window.summary.text()


@pytest.mark.e2e
@pytest.mark.skipif(CARGO is None, reason="cargo is not on PATH")
def test_alerts_window_yank_it(qtbot: Any, setup: Setup, monkeypatch: pytest.MonkeyPatch) -> None:
    env = token_cargo(setup.tmp / "cargo", setup.reg, setup.token)
    monkeypatch.setenv("CARGO_HOME", env.env["CARGO_HOME"])
    monkeypatch.chdir(setup.tmp)
    setup.watch.add("local", ["ui-yank"], setup.reg.index_url)
    setup.run_pass(qtbot)
    setup.publish("ui-yank", "0.1.0")
    setup.run_pass(qtbot)
    setup.gui.show_alerts()
    window = setup.gui.alerts_window
    assert window is not None
    (card,) = window.cards
    with qtbot.waitSignal(setup.gui.watch_runner.action_done, timeout=60000) as done:
        qtbot.mouseClick(card.yank_button, Qt.MouseButton.LeftButton)
    assert done.args == ["Yanked ui-yank 0.1.0.", True]
    assert setup.reg.crates()["ui-yank"][0]["yanked"] is True
    assert window.cards == []
    assert os.environ["CARGO_HOME"] == env.env["CARGO_HOME"]


def test_no_watch_pass_when_interval_is_zero(gui_app: Any, tmp_path: Path) -> None:
    store = KeyStore(MemoryKeychain(), tmp_path / "keys.json")
    gui = gui_app(
        store, Settings(watch_interval_minutes=0), watch=Watch(tmp_path / "s"), first_run=False
    )
    assert not gui.watch_runner._timer.isActive() and not gui.watch_runner._first.isActive()
    gui.apply_settings(Settings(watch_interval_minutes=5))
    assert gui.watch_runner._timer.interval() == 5 * 60_000
    assert gui.watch_runner._timer.isActive()


def test_settings_window_sets_the_watch_interval(gui_app: Any, tmp_path: Path) -> None:
    path = tmp_path / "settings.toml"
    store = KeyStore(MemoryKeychain(), tmp_path / "keys.json")
    gui = gui_app(
        store, Settings(), watch=Watch(tmp_path / "s"), first_run=False, settings_path=path
    )
    gui.show_settings()
    win = gui.settings_window
    assert win is not None
    assert win.watch_interval_minutes.value() == 15
    win.watch_interval_minutes.setValue(5000)
    assert not win.save()
    assert "watch_interval_minutes" in win.message.text() and not path.exists()
    win.watch_interval_minutes.setValue(30)
    assert win.save()
    assert "watch_interval_minutes = 30.0" in path.read_text()
    assert gui.watch_runner._timer.interval() == 30 * 60_000


def test_many_alerts_at_once_do_not_flood_the_desktop(qtbot: Any, setup: Setup) -> None:
    names = [f"ui-many-{i}" for i in range(8)]
    setup.watch.add("local", names, setup.reg.index_url)
    setup.run_pass(qtbot)
    for name in names:
        setup.publish(name, "0.1.0")
    assert len(setup.run_pass(qtbot).new_alerts) == 8
    assert [t for t, _ in setup.notes] == ["Version nobody approved"] * 5 + [
        "Versions nobody approved"
    ]
    assert setup.notes[-1][1].startswith("…and 3 more")
    setup.run_pass(qtbot)
    assert len(setup.notes) == 6  # every alert counts as shown

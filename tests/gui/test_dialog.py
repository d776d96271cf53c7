"""The approval dialog and queue on the offscreen platform (pytest-qt drives real events),
and the X11 input guard's event parsing fed real xcb event layouts (no X server needed).

The same dialog under real attack on Xvfb is tests/gui/test_attacks.py."""

from __future__ import annotations

import ctypes
import json
import os
import struct
import threading

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import pytest
from checks import approval_dialog, present
from factories import cargo_request
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLabel
from qt_tools import RecordingDialog

from gui_approver.client.framing import Provenance
from gui_approver.client.protocol import parse_request
from gui_approver.core.approval import ApprovalRequest, Decision
from gui_approver.core.settings import Settings
from gui_approver.ui import x11guard as xg
from gui_approver.ui.app import QtApprover
from gui_approver.ui.dialog import OWNERS_NOTE, ApprovalDialog

LOCAL = "sparse+http://127.0.0.1:8765/index/"


def approval(op="publish", name="foo", timeout=120.0, **kw):
    obj = {
        "v": 1,
        "registry": {"index-url": LOCAL, "name": "local"},
        "kind": "get",
        "operation": op,
        "name": name,
    }
    if op in ("publish", "yank", "unyank"):
        obj["vers"] = "1.2.3"
    if op == "publish":
        obj["cksum"] = "0123456789abcdef" * 4
    return ApprovalRequest(
        request=parse_request(json.dumps(obj)),
        provenance=Provenance(pid=42, ppid=41, cwd="/home/u/src/foo"),
        key=None,
        timeout=timeout,
        **kw,
    )


class FakeClock:
    """The arming delay's clock: tests move it instead of sitting through the real delay."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def dialog(qtbot):
    clock = FakeClock()
    d = RecordingDialog(approval(), clock=clock)
    qtbot.addWidget(d)
    d.show()
    d.activateWindow()
    qtbot.waitUntil(d.isActiveWindow, timeout=3000)
    return d


def armed(d, qtbot):
    clock = getattr(d, "arming_clock", None)
    if clock is not None:  # the delay passes on the fake clock; the arming timer runs out
        qtbot.waitUntil(
            lambda: d._arm_timer.isActive() or d.approve_button.isEnabled(), timeout=3000
        )
        clock.now += d.arming_delay
        d._arm()
    qtbot.waitUntil(lambda: d.approve_button.isEnabled(), timeout=3000)


def test_shows_every_field_as_plain_text(dialog):
    texts = {k: v.text() for k, v in dialog.field_labels.items()}
    assert texts["Operation"] == "publish"
    assert texts["Registry"] == "local" and texts["Index URL"] == LOCAL
    assert texts["Crate"] == "foo" and texts["Version"] == "1.2.3"
    assert texts["Checksum (sha256)"].replace(" ", "").replace("\n", "") == "0123456789abcdef" * 4
    assert "/home/u/src/foo" in texts["Requested by"]
    for label in dialog.findChildren(QLabel):
        assert label.textFormat() == Qt.TextFormat.PlainText


def test_deny_is_default_and_approve_never_is(dialog):
    assert dialog.deny_button.isDefault()
    assert not dialog.approve_button.isDefault()
    assert not dialog.approve_button.autoDefault()
    assert "&" not in dialog.approve_button.text()


def test_approve_starts_disarmed_then_arms(dialog, qtbot):
    assert not dialog.approve_button.isEnabled()
    assert "arming" in dialog.approve_button.text()
    armed(dialog, qtbot)
    assert dialog.approve_button.text() == "Approve"


def test_genuine_click_approves(dialog, qtbot):
    armed(dialog, qtbot)
    qtbot.mouseClick(dialog.approve_button, Qt.MouseButton.LeftButton)
    assert dialog.decisions == [True]


def test_space_on_focused_approve_approves(dialog, qtbot):
    armed(dialog, qtbot)
    assert dialog.deny_button.hasFocus()
    qtbot.keyClick(dialog, Qt.Key.Key_Tab)  # a person moves focus with Tab
    assert dialog.approve_button.hasFocus()
    qtbot.keyClick(dialog.approve_button, Qt.Key.Key_Space)
    assert dialog.decisions == [True]


def test_space_after_programmatic_focus_is_ignored(dialog, qtbot):
    """setFocus() from code or an accessibility GrabFocus is not a person's Tab."""
    armed(dialog, qtbot)
    dialog.approve_button.setFocus()
    qtbot.keyClick(dialog.approve_button, Qt.Key.Key_Space)
    assert dialog.decisions == []


@pytest.mark.parametrize("key", [Qt.Key.Key_Return, Qt.Key.Key_Enter, Qt.Key.Key_Escape])
def test_return_enter_escape_deny(dialog, qtbot, key):
    armed(dialog, qtbot)
    dialog.approve_button.setFocus()
    qtbot.keyClick(dialog.approve_button, key)
    assert dialog.decisions == [False]


def test_programmatic_clicks_are_ignored(dialog, qtbot):
    armed(dialog, qtbot)
    dialog.approve_button.click()
    dialog.approve_button.clicked.emit()
    # animateClick clicks from a timer: wait for that click (it must still be ignored)
    with qtbot.waitSignal(dialog.approve_button.clicked, timeout=3000):
        dialog.approve_button.animateClick()
    assert dialog.decisions == []


def test_click_before_armed_does_nothing(dialog, qtbot):
    qtbot.mouseClick(dialog.approve_button, Qt.MouseButton.LeftButton)
    assert dialog.decisions == []


def test_close_denies(dialog):
    dialog.close()
    assert dialog.decisions == [False]


def test_owners_dialog_says_cargo_does_not_tell(qtbot):
    d = ApprovalDialog(approval("owners"))
    qtbot.addWidget(d)
    notes = [lbl.text() for lbl in d.findChildren(QLabel)]
    assert OWNERS_NOTE in notes


def test_rich_text_in_crate_fields_is_shown_literally(qtbot):
    a = approval()
    d = ApprovalDialog(a)
    qtbot.addWidget(d)
    d.field_labels["Requested by"].setText("<b>x</b>")  # what a hostile cwd would look like
    assert d.field_labels["Requested by"].textFormat() == Qt.TextFormat.PlainText


def test_queue_one_dialog_at_a_time_and_timeout(qtbot):
    approver = QtApprover(Settings(arming_delay=1.0))
    results: dict[int, Decision] = {}

    def ask(i, timeout):
        results[i] = approver.decide(approval(name=f"c{i}", timeout=timeout))

    threads = [threading.Thread(target=ask, args=(i, 30.0)) for i in range(3)]
    for t in threads:
        t.start()
    qtbot.waitUntil(lambda: approver.pending_count() == 3, timeout=5000)
    first = approval_dialog(approver.dialog)
    assert "2 more" in first.waiting_label.text()
    first.reject()  # Escape / close
    qtbot.waitUntil(
        lambda: approver.dialog is not None and approver.dialog is not first, timeout=3000
    )
    second = approval_dialog(approver.dialog)
    second.activateWindow()
    qtbot.waitUntil(lambda: second.approve_button.isEnabled(), timeout=3000)
    qtbot.mouseClick(second.approve_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: len(results) == 2, timeout=3000)
    approver.shutdown()
    for t in threads:
        t.join(5)
    decided = sorted((r.approved, r.reason) for r in results.values())
    assert decided == [
        (False, "denied in the dialog"),
        (False, "gui-approver quit"),
        (True, "approved in the dialog"),
    ]


def test_timeout_denies_and_closes_the_dialog(qtbot):
    approver = QtApprover(Settings())
    out = []
    t = threading.Thread(target=lambda: out.append(approver.decide(approval(timeout=0.3))))
    t.start()
    qtbot.waitUntil(lambda: bool(out), timeout=5000)
    assert not out[0].approved and "no decision within" in out[0].reason
    qtbot.waitUntil(lambda: approver.dialog is None, timeout=3000)


def test_shortcut_events_never_press_approve(dialog, qtbot):
    """Even if something (KDE's automatic accelerators) gives Approve a mnemonic."""
    from PySide6.QtGui import QKeySequence

    armed(dialog, qtbot)
    pressed = []
    dialog.approve_button.pressed.connect(lambda: pressed.append(1))
    dialog.approve_button.setShortcut(QKeySequence("Alt+A"))
    qtbot.keyClick(dialog, Qt.Key.Key_A, Qt.KeyboardModifier.AltModifier)
    assert pressed == []  # a shortcut would have started animateClick() (pressed at once)
    assert dialog.decisions == []


def test_press_before_armed_release_after_does_not_approve(qtbot):
    d = ApprovalDialog(approval())
    qtbot.addWidget(d)
    decisions: list[bool] = []
    d.decided.connect(decisions.append)
    d.show()
    d.activateWindow()
    qtbot.mousePress(d.approve_button, Qt.MouseButton.LeftButton)  # disarmed: ignored
    qtbot.waitUntil(d.approve_button.isEnabled, timeout=3000)
    qtbot.mouseRelease(d.approve_button, Qt.MouseButton.LeftButton)
    assert decisions == []


def test_non_spontaneous_events_do_not_approve(dialog, qtbot):
    """What an input method's forwarded key or any sendEvent() looks like."""
    from PySide6.QtCore import QCoreApplication, QEvent, QPointF
    from PySide6.QtGui import QKeyEvent, QMouseEvent

    armed(dialog, qtbot)
    b = dialog.approve_button
    qtbot.keyClick(dialog, Qt.Key.Key_Tab)
    assert b.hasFocus()
    for t in (QEvent.Type.KeyPress, QEvent.Type.KeyRelease):
        QCoreApplication.sendEvent(
            b, QKeyEvent(t, Qt.Key.Key_Space, Qt.KeyboardModifier.NoModifier, " ")
        )
    centre = QPointF(b.rect().center())
    for t in (QEvent.Type.MouseButtonPress, QEvent.Type.MouseButtonRelease):
        QCoreApplication.sendEvent(
            b,
            QMouseEvent(
                t,
                centre,
                b.mapToGlobal(centre),
                Qt.MouseButton.LeftButton,
                Qt.MouseButton.LeftButton
                if t == QEvent.Type.MouseButtonPress
                else Qt.MouseButton.NoButton,
                Qt.KeyboardModifier.NoModifier,
            ),
        )
    assert dialog.decisions == []


def test_guard_without_provenance_refuses_and_says_why(qtbot):
    from gui_approver.ui.guard import RefusingGuard

    d = ApprovalDialog(approval(), guard=RefusingGuard("Approving is disabled: no XInput2."))
    qtbot.addWidget(d)
    decisions: list[bool] = []
    d.decided.connect(decisions.append)
    d.show()
    d.activateWindow()
    qtbot.waitUntil(d.isActiveWindow, timeout=3000)
    assert "Approving is disabled: no XInput2." in d.status_label.text()
    assert d.approve_button.text() == "Approve (unavailable)"
    assert not d._arm_timer.isActive()  # active, yet nothing will ever arm it
    assert not d.approve_button.isEnabled()
    qtbot.mouseClick(d.approve_button, Qt.MouseButton.LeftButton)
    assert decisions == []


def test_approve_accessible_has_no_actions_but_a_name(dialog):
    from PySide6.QtGui import QAccessible

    from gui_approver.ui.a11y import accessible_actions, install_accessibility_factory

    install_accessibility_factory()
    fresh = ApprovalDialog(approval())  # interfaces are made on first use
    try:
        assert accessible_actions(fresh.approve_button) == []
        iface = QAccessible.queryAccessibleInterface(fresh.approve_button)
        assert iface.text(QAccessible.Text.Name).startswith("Approve")
        assert "Press" in accessible_actions(fresh.deny_button)
    finally:
        fresh.deleteLater()


def test_paranoid_accessibility_points_qt_at_no_bus():
    import subprocess
    import sys

    code = (
        "import os; from gui_approver.ui.a11y import prepare_accessibility as p; "
        "p(False); print(os.environ.get('AT_SPI_BUS_ADDRESS')); p(True); "
        "print(os.environ['AT_SPI_BUS_ADDRESS'])"
    )
    env = {k: v for k, v in os.environ.items() if k != "AT_SPI_BUS_ADDRESS"}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
    ).stdout.split()
    assert out == ["None", "unix:path=/dev/null"]


# -- the X11 guard's event parsing (fed real xcb event layouts, no X server needed) --------

XI = 131
REAL_MOUSE, REAL_KBD, XTEST_MOUSE, XTEST_KBD, MASTER = 6, 7, 4, 5, 2


def xi_event(evtype, time, source, *, detail=1, window=0x400001, synthetic=False, device=MASTER):
    head = struct.pack(
        "=BBHIHHIIIII",
        35 | (0x80 if synthetic else 0),
        XI,
        0,
        12,
        evtype,
        device,
        time,
        detail,
        0x1,
        window,
        0,
    )
    body = bytearray(4 + 48)  # full_sequence, then the rest of the XI2 device event
    if evtype in xg.XI_CROSSING_EVENTS:
        head = struct.pack(
            "=BBHIHHIHBBIII",
            35 | (0x80 if synthetic else 0),
            XI,
            0,
            12,
            evtype,
            device,
            time,
            source,
            0,
            0,
            0x1,
            window,
            0,
        )
    else:
        struct.pack_into("=H", body, 56 - 32, source)
    return head + bytes(body)


def raw_event(evtype, time, source, detail=1):
    head = struct.pack("=BBHIHHIIHHI4x", 35, XI, 0, 2, evtype, MASTER, time, detail, source, 0, 0)
    return head + bytes(12)


def core_event(code, time, detail, *, synthetic=False, window=0x400001):
    return struct.pack(
        "=BBHIIIIhhhhHB1x",
        code | (0x80 if synthetic else 0),
        detail,
        0,
        time,
        0x1,
        window,
        0,
        0,
        0,
        0,
        0,
        0,
        1,
    )


@pytest.fixture
def guard(qtbot):
    g = xg.X11InputGuard(None)
    g.xi_opcode = XI
    g.devices = {
        MASTER: xg.Device(MASTER, xg.XI_MASTER_POINTER, "Virtual core pointer", False, True),
        XTEST_MOUSE: xg.Device(
            XTEST_MOUSE, xg.XI_SLAVE_POINTER, "Virtual core XTEST pointer", True, True
        ),
        XTEST_KBD: xg.Device(
            XTEST_KBD, xg.XI_SLAVE_KEYBOARD, "Virtual core XTEST keyboard", True, True
        ),
        REAL_MOUSE: xg.Device(REAL_MOUSE, xg.XI_SLAVE_POINTER, "Xvfb mouse", False, True),
        REAL_KBD: xg.Device(REAL_KBD, xg.XI_SLAVE_KEYBOARD, "Xvfb keyboard", False, True),
    }
    g._devices_dirty = False
    w = QLabel("protected")
    qtbot.addWidget(w)
    g.protect(w)
    return g


def feed(guard, data: bytes) -> bool:
    buf = ctypes.create_string_buffer(data, len(data))
    handled: bool = guard.filter_event(ctypes.addressof(buf))
    return handled


def mouse_release(time):
    from PySide6.QtCore import QEvent, QPointF
    from PySide6.QtGui import QMouseEvent

    e = QMouseEvent(
        QEvent.Type.MouseButtonRelease,
        QPointF(1, 1),
        QPointF(1, 1),
        Qt.MouseButton.LeftButton,
        Qt.MouseButton.NoButton,
        Qt.KeyboardModifier.NoModifier,
    )
    e.setTimestamp(time)
    return e


def key_release(time):
    from PySide6.QtCore import QEvent
    from PySide6.QtGui import QKeyEvent

    e = QKeyEvent(QEvent.Type.KeyRelease, Qt.Key.Key_Space, Qt.KeyboardModifier.NoModifier, " ")
    e.setTimestamp(time)
    return e


def real_move(guard, time):
    assert not feed(guard, raw_event(xg.XI_RAW_MOTION, time, REAL_MOUSE))
    assert not feed(guard, xi_event(xg.XI_MOTION, time, REAL_MOUSE, detail=0))


def test_guard_passes_a_real_click_and_vouches_for_it(guard):
    real_move(guard, 100)
    assert guard.pointer_trusted
    for evtype, raw, t in ((xg.XI_BUTTON_PRESS, 15, 101), (xg.XI_BUTTON_RELEASE, 16, 102)):
        assert not feed(guard, raw_event(raw, t, REAL_MOUSE))
        assert not feed(guard, xi_event(evtype, t, REAL_MOUSE))
    assert guard.accept_approval_event(mouse_release(102))
    assert not guard.accept_approval_event(mouse_release(103))  # not an event it passed


def test_guard_passes_xtest_without_vouching_and_drops_synthetic_pointer_events(guard):
    """XTEST (on-screen keyboards, voice control, remote desktop, Barrier) reaches the app,
    so it can deny (issue #14), but the guard never vouches for it; forged XSendEvent input
    is dropped."""
    from gui_approver.ui.guard import FROM_SOFTWARE

    real_move(guard, 100)
    assert feed(guard, raw_event(16, 101, XTEST_MOUSE)) is False
    assert not feed(guard, xi_event(xg.XI_BUTTON_RELEASE, 101, XTEST_MOUSE))
    assert feed(guard, xi_event(xg.XI_BUTTON_RELEASE, 102, REAL_MOUSE, synthetic=True))
    assert feed(guard, core_event(xg.BUTTON_RELEASE, 0, 1, synthetic=True))
    assert not feed(guard, xi_event(xg.XI_MOTION, 103, XTEST_MOUSE, detail=0))
    assert not guard.pointer_trusted
    assert not guard.accept_approval_event(mouse_release(101))
    assert guard.refusal(mouse_release(101)) == FROM_SOFTWARE
    assert guard.stats()["untrusted button-release"] == 1


def test_guard_treats_a_move_without_raw_twin_as_a_warp(guard):
    """XWarpPointer's motion reports the last real slave as its source, but has no raw event."""
    real_move(guard, 100)
    assert not feed(guard, xi_event(xg.XI_MOTION, 150, REAL_MOUSE, detail=0))  # the warp
    assert not guard.pointer_trusted
    assert not feed(guard, raw_event(16, 151, REAL_MOUSE))
    assert not feed(guard, xi_event(xg.XI_BUTTON_RELEASE, 151, REAL_MOUSE))  # a real click...
    assert not guard.accept_approval_event(mouse_release(151))  # ...where it did not aim
    from gui_approver.ui.guard import POINTER_MOVED_BY_SOFTWARE

    assert guard.refusal(mouse_release(151)) == POINTER_MOVED_BY_SOFTWARE
    assert not feed(guard, xi_event(xg.XI_ENTER, 152, REAL_MOUSE, detail=0))  # no raw: warp
    assert not guard.pointer_trusted
    real_move(guard, 160)
    assert guard.pointer_trusted


def test_guard_matches_core_keys_to_raw_key_events(guard):
    space = 65
    assert not feed(guard, core_event(xg.KEY_RELEASE, 200, space))  # no raw twin at all
    feed(guard, raw_event(xg.XI_RAW_KEY_RELEASE, 201, XTEST_KBD, detail=space))
    assert not feed(guard, core_event(xg.KEY_RELEASE, 201, space))  # XTEST: passed on
    feed(guard, raw_event(xg.XI_RAW_KEY_RELEASE, 202, REAL_KBD, detail=space + 1))
    assert not feed(guard, core_event(xg.KEY_RELEASE, 202, space))  # another key's raw event
    for t in (200, 201, 202):
        assert not guard.accept_approval_event(key_release(t))  # ... but never vouched for
    assert feed(guard, core_event(xg.KEY_RELEASE, 203, space, synthetic=True))
    feed(guard, raw_event(xg.XI_RAW_KEY_RELEASE, 204, REAL_KBD, detail=space))
    assert not feed(guard, core_event(xg.KEY_RELEASE, 204, space))
    assert guard.accept_approval_event(key_release(204))
    assert not guard.accept_approval_event(key_release(201))


def test_guard_refuses_when_qt_reads_the_mouse_without_xinput2(guard):
    assert guard.available
    changed = []
    guard.changed.connect(lambda: changed.append(1))
    assert not feed(guard, core_event(xg.BUTTON_PRESS, 300, 1))  # still reaches Deny
    assert not guard.available and "XInput2" in (guard.problem or "")
    assert changed
    assert not guard.accept_approval_event(mouse_release(300))


def test_guard_passes_everything_when_no_dialog_is_open(guard, qtbot):
    w = QLabel("other")
    qtbot.addWidget(w)
    guard.unprotect(next(iter(guard._protected.values())))
    assert not guard.engaged
    assert not feed(guard, xi_event(xg.XI_BUTTON_RELEASE, 400, XTEST_MOUSE))
    assert not feed(guard, core_event(xg.KEY_PRESS, 401, 65, synthetic=True))


def test_typing_into_the_dialog_restarts_arming(dialog, qtbot):
    """Someone typing elsewhere when the dialog took the focus: letters disarm Approve, so
    only a pause and then a deliberate Tab + Space can approve."""
    armed(dialog, qtbot)
    qtbot.keyClick(dialog.deny_button, Qt.Key.Key_A)
    assert not dialog.approve_button.isEnabled()
    assert dialog._arm_timer.isActive()
    qtbot.keyClick(dialog.deny_button, Qt.Key.Key_Tab)  # Approve is disabled: focus stays
    assert dialog.deny_button.hasFocus()
    armed(dialog, qtbot)
    assert dialog.decisions == []


def test_guard_input_reset_restarts_arming(dialog, qtbot):
    armed(dialog, qtbot)
    dialog.guard.input_reset.emit("the keyboard or pointer mapping changed")
    assert not dialog.approve_button.isEnabled() and dialog._arm_timer.isActive()
    armed(dialog, qtbot)


# ------------------------------------------------------------------ issue 12 item 3: names

HOSTILE_NAME = "local-test (127.0.0.1, throwa\u202e\ngnp.exe\u200b\x1b[2J"
_INVISIBLE = ("\u202e", "\u202d", "\u2066", "\u200b", "\x1b", "\r", "\u2028")


def _hostile_approval(*, key: bool = True, **kw):
    from gui_approver.core.keys.store import KeyRecord

    obj = cargo_request(
        "publish",
        name="foo",
        vers="1.2.4",
        cksum="0123456789abcdef" * 4,
        index_url=LOCAL + "\u202e",
        registry=HOSTILE_NAME,
    )
    record = KeyRecord(
        registry="local",
        index_url=LOCAL,
        public="k3.public.x",
        kip="k3.pid.x",
        subject=None,
        created="2026-11-30T00:00:00+00:00",
    )
    return ApprovalRequest(
        request=parse_request(json.dumps(obj)),
        provenance=Provenance(pid=42, ppid=41, cwd="/home/u/src/\u202efoo\nbar"),
        key=record if key else None,
        **kw,
    )


@pytest.mark.parametrize("action", ["sign", "logout"])
def test_the_heading_names_the_registry_of_the_stored_key(qtbot, action):
    """The requester chooses the name in the request; the heading shows the name the user
    gave the key (found by index URL), and no request-supplied control or bidi character
    reaches any label."""
    d = ApprovalDialog(_hostile_approval(action=action))
    qtbot.addWidget(d)
    heading = present(d.findChild(QLabel, "heading")).text()
    assert "\n" not in heading and "throwa" not in heading
    assert " local?" in heading or "local " in heading
    registry = d.field_labels["Registry"].text()
    assert registry.startswith("local")
    for label in d.findChildren(QLabel):
        for ch in _INVISIBLE:
            assert ch not in label.text(), (label.objectName(), label.text())
    assert all(ch not in d.windowTitle() for ch in (*_INVISIBLE, "\n"))


def test_a_request_without_a_stored_key_shows_the_name_escaped(qtbot):
    d = ApprovalDialog(_hostile_approval(key=False))
    qtbot.addWidget(d)
    heading = present(d.findChild(QLabel, "heading")).text()
    assert "\n" not in heading and "\\u202e" in heading
    for label in d.findChildren(QLabel):
        for ch in _INVISIBLE:
            assert ch not in label.text(), (label.objectName(), label.text())

"""The approval dialog and queue on the offscreen platform (pytest-qt drives real events)."""

from __future__ import annotations

import json
import os
import threading

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLabel

from gui_approver.approval import ApprovalRequest, Decision
from gui_approver.protocol import Provenance, parse_request
from gui_approver.settings import Settings
from gui_approver.ui.app import QtApprover
from gui_approver.ui.dialog import OWNERS_NOTE, ApprovalDialog

LOCAL = "sparse+http://127.0.0.1:8765/index/"


def approval(op="publish", name="foo", timeout=120.0, **kw):
    obj = {"v": 1, "registry": {"index-url": LOCAL, "name": "local"}, "kind": "get",
           "operation": op, "name": name}
    if op in ("publish", "yank", "unyank"):
        obj["vers"] = "1.2.3"
    if op == "publish":
        obj["cksum"] = "0123456789abcdef" * 4
    return ApprovalRequest(request=parse_request(json.dumps(obj)),
                           provenance=Provenance(pid=42, ppid=41, cwd="/home/u/src/foo"),
                           key=None, timeout=timeout, **kw)


@pytest.fixture
def dialog(qtbot):
    d = ApprovalDialog(approval())
    qtbot.addWidget(d)
    decisions = []
    d.decided.connect(decisions.append)
    d.decisions = decisions
    d.show()
    d.activateWindow()
    qtbot.waitUntil(d.isActiveWindow, timeout=3000)
    return d


def armed(d, qtbot):
    qtbot.waitUntil(lambda: d.approve_button.isEnabled(), timeout=3000)


def test_shows_every_field_as_plain_text(dialog):
    texts = {k: v.text() for k, v in dialog.field_labels.items()}
    assert texts["Operation"] == "publish"
    assert texts["Registry"] == "local" and texts["Index URL"] == LOCAL
    assert texts["Crate"] == "foo" and texts["Version"] == "1.2.3"
    assert texts["Checksum (sha256)"].replace(" ", "").replace("\n", "") == \
        "0123456789abcdef" * 4
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
    dialog.approve_button.setFocus()
    qtbot.keyClick(dialog.approve_button, Qt.Key.Key_Space)
    assert dialog.decisions == [True]


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
    dialog.approve_button.animateClick()
    qtbot.wait(300)  # let animateClick's internal timer fire (it must still be ignored)
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
    first = approver.dialog
    assert first is not None and "2 more" in first.waiting_label.text()
    first.reject()  # Escape / close
    qtbot.waitUntil(lambda: approver.dialog is not None and approver.dialog is not first,
                    timeout=3000)
    second = approver.dialog
    second.activateWindow()
    qtbot.waitUntil(lambda: second.approve_button.isEnabled(), timeout=3000)
    qtbot.mouseClick(second.approve_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: len(results) == 2, timeout=3000)
    approver.shutdown()
    for t in threads:
        t.join(5)
    decided = sorted((r.approved, r.reason) for r in results.values())
    assert decided == [(False, "denied in the dialog"), (False, "gui-approver quit"),
                       (True, "approved in the dialog")]


def test_timeout_denies_and_closes_the_dialog(qtbot):
    approver = QtApprover(Settings())
    out = []
    t = threading.Thread(target=lambda: out.append(approver.decide(approval(timeout=0.3))))
    t.start()
    qtbot.waitUntil(lambda: bool(out), timeout=5000)
    assert not out[0].approved and "no decision within" in out[0].reason
    qtbot.waitUntil(lambda: approver.dialog is None, timeout=3000)

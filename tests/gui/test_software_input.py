"""Issue #14, Major 6: only Approve ignores input from software (offscreen, pytest-qt).

Offscreen has no XTEST, so a guard stands in for the X11 one: it judges every event as the
X11 guard judges XTEST input (``software = True``) or a real device's (``False``). The same
rules against real XTEST under Xvfb: tests/gui/test_attacks.py."""

from __future__ import annotations

import pytest
from factories import request
from PySide6.QtCore import Qt
from PySide6.QtGui import QInputEvent
from qt_tools import RecordingDialog

from gui_approver.client.framing import Provenance
from gui_approver.core.approval import ApprovalRequest
from gui_approver.ui.dialog import SOFTWARE_INPUT_NOTE
from gui_approver.ui.guard import FROM_SOFTWARE, InputGuard

LOCAL = "sparse+http://127.0.0.1:8765/index/"


class SoftwareGuard(InputGuard):
    """Vouches for nothing while ``software`` is True (as the X11 guard for XTEST)."""

    software = False

    def accept_approval_event(self, event: QInputEvent) -> bool:
        return not self.software

    def refusal(self, event: QInputEvent) -> str | None:
        return FROM_SOFTWARE if self.software else None


@pytest.fixture
def dialog(qtbot):
    req = request("publish", name="foo", vers="1.2.3", cksum="ab" * 32, index_url=LOCAL)
    d = RecordingDialog(
        ApprovalRequest(request=req, provenance=Provenance(), key=None, timeout=120),
        guard=SoftwareGuard(),
    )
    qtbot.addWidget(d)
    d.show()
    d.activateWindow()
    qtbot.waitUntil(d.isActiveWindow, timeout=3000)
    qtbot.waitUntil(d.approve_button.isEnabled, timeout=3000)
    return d


def test_software_tab_never_leaves_approve_focused(dialog, qtbot):
    """A worm Tabs to Approve just before the user presses Space meaning Deny."""
    dialog.guard.software = True
    qtbot.keyClick(dialog.deny_button, Qt.Key.Key_Tab)
    assert not dialog.approve_button.hasFocus()
    assert dialog.deny_button.hasFocus()
    qtbot.keyClick(dialog.deny_button, Qt.Key.Key_Backtab)
    assert not dialog.approve_button.hasFocus()
    dialog.guard.software = False
    qtbot.keyClick(dialog.focusWidget(), Qt.Key.Key_Space)  # the user's Space
    assert dialog.decisions == [False]


def test_software_click_on_approve_says_why_and_takes_the_focus_away(dialog, qtbot):
    dialog.guard.software = True
    assert dialog.refused_label.isHidden()
    qtbot.mouseClick(dialog.approve_button, Qt.MouseButton.LeftButton)
    assert dialog.decisions == []
    assert dialog.refused_label.isVisible()
    assert dialog.refused_label.text() == SOFTWARE_INPUT_NOTE
    assert (
        "that input came from software, not from your mouse or keyboard, so it cannot "
        "approve" in SOFTWARE_INPUT_NOTE
    )
    assert not dialog.approve_button.hasFocus()
    # The dialog grows by the message, with no empty band above the buttons.
    from PySide6.QtCore import QPoint

    gap = (
        dialog.deny_button.mapTo(dialog, QPoint(0, 0)).y()
        - dialog.refused_label.mapTo(dialog, QPoint(0, dialog.refused_label.height())).y()
    )
    assert 0 <= gap <= 40, gap
    dialog.guard.software = False
    qtbot.keyClick(dialog.focusWidget(), Qt.Key.Key_Space)  # Space now means Deny
    assert dialog.decisions == [False]


def test_software_space_on_approve_focused_by_the_user(dialog, qtbot):
    qtbot.keyClick(dialog, Qt.Key.Key_Tab)  # the user's Tab
    assert dialog.approve_button.hasFocus()
    dialog.guard.software = True
    qtbot.keyClick(dialog.approve_button, Qt.Key.Key_Space)
    assert dialog.decisions == []
    assert dialog.refused_label.text() == SOFTWARE_INPUT_NOTE
    # A software press followed by the user's release does not add up to a click either.
    qtbot.keyPress(dialog.approve_button, Qt.Key.Key_Space)
    dialog.guard.software = False
    qtbot.keyRelease(dialog.approve_button, Qt.Key.Key_Space)
    assert dialog.decisions == []


@pytest.mark.parametrize("how", ["click Deny", "Escape", "Return", "Space on Deny"])
def test_software_input_can_deny(dialog, qtbot, how):
    dialog.guard.software = True
    if how == "click Deny":
        qtbot.mouseClick(dialog.deny_button, Qt.MouseButton.LeftButton)
    elif how == "Space on Deny":
        qtbot.keyClick(dialog.deny_button, Qt.Key.Key_Space)
    else:
        qtbot.keyClick(dialog.deny_button, getattr(Qt.Key, f"Key_{how}"))
    assert dialog.decisions == [False]
    assert dialog.refused_label.isHidden()


def test_the_users_own_input_still_approves(dialog, qtbot):
    qtbot.keyClick(dialog, Qt.Key.Key_Tab)
    qtbot.keyClick(dialog.approve_button, Qt.Key.Key_Space)
    assert dialog.decisions == [True]


def test_software_input_opens_and_closes_the_diff_window(qtbot, tmp_path):
    """View changes… and the diff window's Close accept any input (#14)."""
    from PySide6.QtWidgets import QPushButton
    from review_tools import changed_review

    review = changed_review(tmp_path)
    guard = SoftwareGuard()
    d = RecordingDialog(
        ApprovalRequest(
            request=review.request, key=None, review=review, provenance=Provenance(pid=1)
        ),
        guard=guard,
    )
    qtbot.addWidget(d)
    d.show()
    d.activateWindow()
    qtbot.waitUntil(d.isActiveWindow, timeout=3000)
    guard.software = True
    qtbot.mouseClick(d.view_changes_button, Qt.MouseButton.LeftButton)
    w = d.changes_window
    assert w is not None and w.isVisible()
    close = next(b for b in w.findChildren(QPushButton) if b.text() == "Close")
    qtbot.mouseClick(close, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not w.isVisible(), timeout=3000)
    assert d.decisions == [] and d.refused_label.isHidden()

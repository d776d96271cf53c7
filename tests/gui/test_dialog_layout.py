"""Issue #14 (minor): no empty band above the dialog's footer; the diff window opens beside
the dialog (not over Approve) with coloured diff lines (offscreen, pytest-qt)."""

from __future__ import annotations

from checks import present
from factories import request
from PySide6.QtCore import QPoint
from PySide6.QtWidgets import QWidget
from review_tools import changed_review, contents, review_for, show


def _content_bottom(d) -> int:
    """The lowest visible review widget inside the scroll area, in dialog coordinates."""
    content = d.findChild(QWidget, "reviewContent")
    bottoms = [
        w.mapTo(d, QPoint(0, w.height())).y()
        for w in content.findChildren(QWidget)
        if w.isVisible() and w.parentWidget() is content
    ]
    bottom: int = max(bottoms)
    return bottom


def test_no_empty_band_above_the_footer(qtbot):
    d = show(qtbot, review_for(contents(files={"src/lib.rs": b"pub fn a() {}\n"})))
    gap = d.status_label.mapTo(d, QPoint(0, 0)).y() - _content_bottom(d)
    assert 0 <= gap <= 40, gap


def test_no_empty_band_with_changes(qtbot, tmp_path):
    d = show(qtbot, changed_review(tmp_path))
    gap = d.status_label.mapTo(d, QPoint(0, 0)).y() - _content_bottom(d)
    assert 0 <= gap <= 40, gap


def test_diff_window_opens_beside_the_dialog_with_coloured_lines(qtbot, tmp_path):
    from PySide6.QtCore import QRect

    d = show(qtbot, changed_review(tmp_path))
    d.move(0, 0)
    d.show_changes()
    w = present(d.changes_window)
    qtbot.waitExposed(w)
    approve = QRect(d.approve_button.mapToGlobal(QPoint(0, 0)), d.approve_button.size())
    deny = QRect(d.deny_button.mapToGlobal(QPoint(0, 0)), d.deny_button.size())
    assert not w.frameGeometry().intersects(approve)
    assert not w.frameGeometry().intersects(deny)
    colours: dict[str, object] = {}
    block = w.text.document().begin()
    while block.isValid():
        text = block.text()
        fmt = block.begin().fragment().charFormat() if text else None
        if fmt is not None and text[:1] in "+-@":
            colours.setdefault(
                text[:1] if not text.startswith(("+++", "---")) else "hdr",
                fmt.foreground().color().name(),
            )
        block = block.next()
    assert colours["+"] == "#116329" and colours["-"] == "#82071e"
    assert colours["@"] == "#0550ae"
    assert w.text.toPlainText().count("\n") > 3  # still the plain diff text


def test_owner_change_is_shown_from_cargos_command_line(qtbot):

    from gui_approver.client.framing import Provenance
    from gui_approver.core.approval import ApprovalRequest
    from gui_approver.review.request import RequestReview
    from gui_approver.review.requester import ProcessInfo, RequesterInfo, owner_changes
    from gui_approver.ui.dialog import ApprovalDialog

    assert (
        owner_changes(("cargo", "owner", "--add", "alice,bob", "-r", "carol", "foo"))
        == "add alice, bob; remove carol"
    )
    assert owner_changes(("cargo", "+stable", "owner", "--list", "foo")) == "list the owners"
    assert owner_changes(("cargo", "owner", "--add=dave", "-aeve")) == "add dave, eve"
    assert owner_changes(("cargo", "publish", "--add", "x")) is None

    req = request("owners", name="foo", index_url="sparse+http://127.0.0.1:8765/index/")
    cargo = ProcessInfo(
        pid=10, name="cargo", role="cargo", cmdline=("cargo", "owner", "--add", "alice", "foo")
    )
    who = RequesterInfo(
        verified=True, summary="cargo owner in ~/src/foo", pid=11, pid_source="kernel", cargo=cargo
    )
    d = ApprovalDialog(
        ApprovalRequest(
            request=req,
            provenance=Provenance(pid=11),
            key=None,
            review=RequestReview(req, who, None),
        )
    )
    qtbot.addWidget(d)
    text = d.field_labels["Owner change"].text()
    assert text.startswith("add alice") and "read from cargo's command line" in text

"""The Recent activity window reads the real audit log (offscreen)."""

from __future__ import annotations

from gui_approver.core.audit import AuditLog
from gui_approver.ui.activity import ActivityWindow


def test_shows_decisions_newest_first_as_plain_text(qtbot, tmp_path):
    path = tmp_path / "audit.jsonl"
    log = AuditLog(path)
    log.record(registry="local", operation="publish", crate="foo", version="1.0.0",
               cksum="ab" * 32, decision="signed", reason="approved in the dialog",
               requester={"pid": 7, "cwd": "/src/foo"}, key_id="k3.pid.x")
    log.record(registry="local", operation="yank", crate="<b>bar</b>", version="2.0.0",
               decision="denied", reason="denied in the dialog", key_id="k3.pid.x")
    log.close()
    with open(path, "ab") as fh:
        fh.write(b'{"time": "torn')  # a SIGKILL mid-write leaves a torn last line
    w = ActivityWindow(path)
    qtbot.addWidget(w)
    assert w.table.rowCount() == 2
    assert w.table.item(0, 1).text() == "denied" and w.table.item(0, 3).text() == "<b>bar</b>"
    assert w.table.item(1, 1).text() == "signed"
    assert "/src/foo" in w.table.item(1, 6).text()


def test_empty_log(qtbot, tmp_path):
    w = ActivityWindow(tmp_path / "none.jsonl")
    qtbot.addWidget(w)
    assert w.table.rowCount() == 0 and "No decisions recorded yet" in w.summary.text()

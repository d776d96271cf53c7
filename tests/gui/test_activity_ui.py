"""The Recent activity window reads the real audit log (offscreen)."""

from __future__ import annotations

from checks import present

from gui_approver.core.audit import AuditLog
from gui_approver.ui.activity import ActivityWindow


def test_shows_decisions_newest_first_as_plain_text(qtbot, tmp_path):
    path = tmp_path / "audit.jsonl"
    log = AuditLog(path)
    log.record(
        registry="local",
        operation="publish",
        crate="foo",
        version="1.0.0",
        cksum="ab" * 32,
        decision="signed",
        reason="approved in the dialog",
        requester={"pid": 7, "cwd": "/src/foo"},
        key_id="k3.pid.x",
    )
    log.record(
        registry="local",
        operation="yank",
        crate="<b>bar</b>",
        version="2.0.0",
        decision="denied",
        reason="denied in the dialog",
        key_id="k3.pid.x",
    )
    log.close()
    with open(path, "ab") as fh:
        fh.write(b'{"time": "torn')  # a SIGKILL mid-write leaves a torn last line
    w = ActivityWindow(path)
    qtbot.addWidget(w)
    assert w.table.rowCount() == 2

    def cell(row: int, column: int) -> str:
        return present(w.table.item(row, column)).text()

    assert cell(0, 1) == "denied" and cell(0, 3) == "<b>bar</b>"
    assert cell(1, 1) == "signed"
    assert "/src/foo" in cell(1, 7)
    assert present(w.table.item(1, 6)).text() == "approved in the dialog"


def test_times_are_local_and_relative_today_and_reason_is_visible(qtbot, tmp_path):
    from datetime import UTC, datetime, timedelta

    from gui_approver.ui.activity import COLUMNS, format_time

    now = datetime(2026, 11, 30, 12, 0, 0, tzinfo=UTC)

    def iso(d):
        return d.strftime("%Y-%m-%dT%H:%M:%S.%fZ")

    local = now.astimezone()
    assert (
        format_time(iso(now - timedelta(seconds=20)), now)
        == f"{(local - timedelta(seconds=20)):%H:%M:%S}, just now"
    )
    assert format_time(iso(now - timedelta(minutes=5)), now).endswith(", 5 min ago")
    assert (
        format_time(iso(now - timedelta(days=2)), now)
        == f"{(local - timedelta(days=2)):%Y-%m-%d %H:%M}"
    )
    assert format_time("not a time", now) == "not a time"
    assert "T" not in format_time("2026-11-30T10:01:33.704429Z", now)
    # The Reason column comes before the long requester and is on screen.
    path = tmp_path / "audit.jsonl"
    log = AuditLog(path)
    log.record(
        registry="my-registry",
        operation="publish",
        crate="tokio-frobnicate",
        version="1.4.2",
        decision="denied",
        reason="no decision within 120 s",
        requester={"pid": 48213, "cwd": "/home/alex/src/tokio-frobnicate" * 2},
    )
    log.close()
    w = ActivityWindow(path)
    qtbot.addWidget(w)
    w.show()
    qtbot.waitExposed(w)
    reason = COLUMNS.index("Reason")
    header = w.table.horizontalHeader()
    right = header.sectionViewportPosition(reason) + header.sectionSize(reason)
    assert right <= w.table.viewport().width(), (right, w.table.viewport().width())
    when = present(w.table.item(0, 0))
    assert "T" not in when.text() and when.toolTip().endswith("Z")


def test_empty_log(qtbot, tmp_path):
    w = ActivityWindow(tmp_path / "none.jsonl")
    qtbot.addWidget(w)
    assert w.table.rowCount() == 0 and "No decisions recorded yet" in w.summary.text()

"""The "Recent activity" window: the audit log, newest first, as plain text."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from gui_approver.core import audit

#: The reason comes before the (long) requester, which takes what width is left.
COLUMNS = ("Time", "Decision", "Operation", "Crate", "Version", "Registry", "Reason", "Requester")


def format_time(value: Any, now: datetime | None = None) -> str:
    """An audit time (RFC 3339 UTC) in local time: relative today ("14:02:31, 5 min ago"),
    "yesterday 09:12", else "2026-11-28 10:46". Unparsable values are shown as they are."""
    if not isinstance(value, str):
        return "" if value is None else str(value)
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return value
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    local = when.astimezone()
    now_local = (now or datetime.now(UTC)).astimezone()
    ago = (now_local - local).total_seconds()
    if local.date() == now_local.date() and ago >= -60:
        if ago < 60:
            rel = "just now"
        elif ago < 3600:
            rel = f"{int(ago // 60)} min ago"
        else:
            rel = f"{int(ago // 3600)} h ago"
        return f"{local:%H:%M:%S}, {rel}"
    if local.date() == (now_local - timedelta(days=1)).date():
        return f"yesterday {local:%H:%M}"
    return f"{local:%Y-%m-%d %H:%M}"


def _requester(rec: dict[str, Any]) -> str:
    req = rec.get("requester")
    if isinstance(req, dict):
        parts = []
        if req.get("pid") is not None:
            parts.append(f"pid {req['pid']}")
        if req.get("cwd"):
            parts.append(str(req["cwd"]))
        return ", ".join(parts)
    return str(req or "")


def _cell(value: Any) -> QTableWidgetItem:
    item = QTableWidgetItem("" if value is None else str(value))  # always plain text
    item.setFlags(Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable)
    return item


class ActivityWindow(QWidget):
    def __init__(self, path: Path | None = None, limit: int = 200) -> None:
        super().__init__()
        self.setWindowTitle("gui-approver: recent activity")
        self.setObjectName("activityWindow")
        self.path = path
        self.limit = limit
        layout = QVBoxLayout(self)
        self.summary = QLabel()
        self.summary.setTextFormat(Qt.TextFormat.PlainText)
        layout.addWidget(self.summary)
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(list(COLUMNS))
        self.table.verticalHeader().setVisible(False)
        self.table.horizontalHeader().setStretchLastSection(True)
        layout.addWidget(self.table)
        row = QHBoxLayout()
        row.addStretch(1)
        refresh = QPushButton("Refresh")
        refresh.clicked.connect(self.refresh)
        row.addWidget(refresh)
        layout.addLayout(row)
        self.resize(980, 420)
        self.refresh()

    def refresh(self) -> None:
        records = list(reversed(audit.read_recent(self.limit, self.path)))
        self.table.setRowCount(len(records))
        for r, rec in enumerate(records):
            values = (
                format_time(rec.get("time")),
                rec.get("decision"),
                rec.get("operation"),
                rec.get("crate"),
                rec.get("version"),
                rec.get("registry"),
                rec.get("reason"),
                _requester(rec),
            )
            for c, value in enumerate(values):
                self.table.setItem(r, c, _cell(value))
            time_item = self.table.item(r, 0)
            if time_item is not None:
                time_item.setToolTip(str(rec.get("time") or ""))  # the exact UTC time
            requester = self.table.item(r, len(COLUMNS) - 1)
            if requester is not None:
                requester.setToolTip(requester.text())
        self.table.resizeColumnsToContents()
        where = self.path or audit.default_path()
        self.summary.setText(
            f"{len(records)} most recent decisions (newest first) from {where}"
            if records
            else f"No decisions recorded yet ({where})."
        )

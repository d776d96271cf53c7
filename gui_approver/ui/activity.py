"""The "Recent activity" window: the audit log, newest first, as plain text."""

from __future__ import annotations

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

COLUMNS = ("Time", "Decision", "Operation", "Crate", "Version", "Registry", "Requester",
           "Reason")


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
            values = (rec.get("time"), rec.get("decision"), rec.get("operation"),
                      rec.get("crate"), rec.get("version"), rec.get("registry"),
                      _requester(rec), rec.get("reason"))
            for c, value in enumerate(values):
                self.table.setItem(r, c, _cell(value))
        self.table.resizeColumnsToContents()
        where = self.path or audit.default_path()
        self.summary.setText(
            f"{len(records)} most recent decisions (newest first) from {where}"
            if records else f"No decisions recorded yet ({where})."
        )

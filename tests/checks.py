"""Small typed checks for tests: narrow what the library types as optional or as a union."""

from __future__ import annotations

import json
from typing import Any, TypeVar

from PySide6.QtWidgets import QTreeWidget, QTreeWidgetItem, QWidget

from gui_approver.client import protocol
from gui_approver.client.protocol import CredentialRequest, Get, Login
from gui_approver.ui.dialog import ApprovalDialog

T = TypeVar("T")


def present(value: T | None, what: str = "the value") -> T:
    """``value``, failing the test if it is None (Qt's findChild/item(), store lookups...)."""
    assert value is not None, f"{what} is missing"
    return value


def as_get(request: CredentialRequest) -> Get:
    assert isinstance(request, Get), request
    return request


def as_login(request: CredentialRequest) -> Login:
    assert isinstance(request, Login), request
    return request


def top_items(tree: QTreeWidget) -> list[QTreeWidgetItem]:
    """The top-level items of ``tree``, in order."""
    return [present(tree.topLevelItem(i)) for i in range(tree.topLevelItemCount())]


def json_of(raw: bytes | dict[str, Any]) -> dict[str, Any]:
    """A PASETO payload or footer (bytes, as pyseto returns them) parsed as a JSON object."""
    assert isinstance(raw, bytes), raw
    doc = json.loads(raw)
    assert isinstance(doc, dict), doc
    return doc


def approval_dialog(widget: QWidget | None) -> ApprovalDialog:
    """The approval dialog the app's queue shows (it holds any QWidget)."""
    assert isinstance(widget, ApprovalDialog), widget
    return widget


def assert_one_answer(rc: int, lines: list[str]) -> dict[str, Any]:
    """The bridge's answer to cargo: exit 0, the hello line, exactly one valid answer."""
    assert rc == 0
    assert lines[-1] == "", "the answer line ends with a newline"
    assert lines[:-1][0] == protocol.HELLO
    assert len(lines) == 3, lines  # hello, exactly one answer, ""
    answer: dict[str, Any] = json.loads(lines[1])
    assert protocol.validate_response(answer) == answer
    return answer

"""Qt helpers for the widget tests."""

from __future__ import annotations

from typing import Any

from gui_approver.core.approval import ApprovalRequest
from gui_approver.ui.dialog import ApprovalDialog


class RecordingDialog(ApprovalDialog):
    """The real approval dialog; ``decisions`` records what it decided (its ``decided``
    signal), in order."""

    def __init__(self, approval: ApprovalRequest, *, clock: Any = None, **kw: Any) -> None:
        if clock is not None:
            kw["clock"] = clock
        super().__init__(approval, **kw)
        self.arming_clock = clock  # a fake clock the test moves, if it gave one
        self.decisions: list[bool] = []
        self.decided.connect(self.decisions.append)

"""Qt helpers for the widget tests."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QAbstractButton, QPushButton, QWizard

from gui_approver.core.approval import ApprovalRequest
from gui_approver.core.keys.store import KeyStore
from gui_approver.ui.dialog import ApprovalDialog
from gui_approver.ui.keys import NewKeyWizard


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


def click(qtbot: Any, button: QAbstractButton | None) -> None:
    """A real left click on ``button``, which must be visible and enabled."""
    assert button is not None and button.isVisible() and button.isEnabled(), button
    qtbot.mouseClick(button, Qt.MouseButton.LeftButton)


def wizard_button(wizard: QWizard, which: str) -> QPushButton:
    """The wizard's ``which`` button ("NextButton", "CommitButton", ...)."""
    button = wizard.button(getattr(QWizard.WizardButton, which))
    assert isinstance(button, QPushButton), (which, button)
    return button


def open_wizard(qtbot: Any, store: KeyStore, **kw: Any) -> NewKeyWizard:
    """The new-key wizard, shown."""
    wizard = NewKeyWizard(store, **kw)
    qtbot.addWidget(wizard)
    wizard.show()
    qtbot.waitExposed(wizard)
    return wizard

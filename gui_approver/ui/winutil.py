"""Small window helpers shared by the app's windows."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QWidget


def bring_forward(window: QWidget) -> None:
    """Show ``window`` un-minimized, raised and active (``show()`` alone leaves a minimized
    window minimized: the pending request would then time out unseen)."""
    state = window.windowState()
    if state & Qt.WindowState.WindowMinimized:
        if state & Qt.WindowState.WindowMaximized:
            window.showMaximized()
        else:
            window.showNormal()
    window.show()
    window.raise_()
    window.activateWindow()

"""Accessibility without an "approve" action for other programs.

Qt publishes every widget on the AT-SPI accessibility bus whenever a bus is announced (on
X11 the ``AT_SPI_BUS`` root-window property is enough; ``QT_LINUX_ACCESSIBILITY_ALWAYS_ON``
is not needed), and any process of the same user can then call a button's "Press" action or
"GrabFocus" on it. Screen readers must still be able to read the dialog, so:

* :func:`install_accessibility_factory` gives the Approve button an accessible with no
  actions at all (``actionNames()`` empty, ``doAction`` does nothing): AT-SPI can read its
  name, role and state but cannot press or focus it. Everything else keeps Qt's defaults
  (Deny can be pressed: denying is always safe). The button itself also ignores any
  ``clicked()`` that is not a real release (see :class:`gui_approver.ui.dialog.ApproveButton`).
* :func:`prepare_accessibility` with ``paranoid=True`` (setting ``paranoid_accessibility``)
  detaches the whole app from the accessibility bus, at the cost of screen readers. Measured
  on Qt 6.12: ``QT_ACCESSIBILITY=0`` and ``QAccessible.setActive(False)`` do not do this;
  pointing ``AT_SPI_BUS_ADDRESS`` at an address that cannot exist before the QApplication is
  created does (Qt then connects only there, and never reads the session bus or the X root
  property). ``/dev/null`` is not a socket and cannot be replaced by an unprivileged process,
  so no one can stand up a bus at that address for Qt to connect to.
"""

from __future__ import annotations

import logging
import os

from PySide6.QtCore import QObject
from PySide6.QtGui import QAccessible, QAccessibleInterface
from PySide6.QtWidgets import QAbstractButton, QAccessibleWidget, QWidget

log = logging.getLogger(__name__)

#: Where Qt is told the accessibility bus is when paranoid: not a socket, not replaceable.
DETACHED_BUS_ADDRESS = "unix:path=/dev/null"

_installed: list[bool] = []


def prepare_accessibility(paranoid: bool) -> None:
    """Call before the QApplication exists. ``paranoid`` detaches from AT-SPI entirely."""
    if paranoid:
        os.environ["AT_SPI_BUS_ADDRESS"] = DETACHED_BUS_ADDRESS
        log.info(
            "paranoid accessibility: not connecting to the accessibility bus "
            "(screen readers cannot read gui-approver)"
        )


class NoActionAccessible(QAccessibleWidget):
    """Readable (name, role, state, geometry) but with no action: no Press, no SetFocus."""

    def text(self, t: QAccessible.Text) -> str:
        widget = self.widget()
        if t == QAccessible.Text.Name and isinstance(widget, QAbstractButton):
            return widget.accessibleName() or widget.text()
        return str(super().text(t))

    def actionNames(self) -> list[str]:
        return []

    def doAction(self, actionName: str) -> None:
        log.info("accessibility: refused action %r on %s", actionName, type(self.object()).__name__)

    def keyBindingsForAction(self, actionName: str) -> list[str]:
        return []


def _factory(key: str, obj: QObject) -> QAccessibleInterface | None:
    from gui_approver.ui.dialog import ApproveButton

    if isinstance(obj, ApproveButton):
        return NoActionAccessible(obj, QAccessible.Role.Button)
    return None


def install_accessibility_factory() -> None:
    """Call once after the QApplication exists (idempotent)."""
    if not _installed:
        QAccessible.installFactory(_factory)
        _installed.append(True)


def accessible_actions(widget: QWidget) -> list[str]:
    """The actions AT-SPI would offer for ``widget`` (for tests and diagnostics)."""
    iface = QAccessible.queryAccessibleInterface(widget)
    if iface is None:
        return []
    action = iface.actionInterface()
    return list(action.actionNames()) if action is not None else []

"""Input provenance: may this input event approve a request?

A same-user worm cannot be kept from *sending* input to the dialog, so the dialog asks an
:class:`InputGuard` whether the input it is handling came from a person's device. What the
guard can know depends on the windowing system:

* X11 (``xcb``): any client can inject input (XTEST, ``XSendEvent``) and warp the pointer.
  :class:`gui_approver.ui.x11guard.X11InputGuard` reads the XInput2 source device of every
  event and vouches only for those from a real device. Only Approve needs that: XTEST input
  (on-screen keyboards, voice control, remote desktop, Barrier/Input Leap) still reaches
  Deny, Escape and "View changes…"; forged ``XSendEvent`` input is dropped. Without XInput2
  it cannot tell, so approval is refused.
* Wayland: clients cannot inject input into each other through the core protocol; nothing
  to filter (but see the README: wlroots' virtual-keyboard/pointer protocols and uinput).
* ``offscreen`` / ``minimal``: no other process can reach the window at all (tests).
* Windows / macOS: approval works but nothing here checks provenance yet (SendInput /
  CGEventPost); a warning is logged.
* Anything else (``vnc``, unknown platforms): refused, because we cannot vouch for it.

Accessibility (AT-SPI) is a separate channel, handled in :mod:`gui_approver.ui.a11y`.
"""

from __future__ import annotations

import logging

from PySide6.QtCore import QObject, Signal
from PySide6.QtGui import QGuiApplication, QInputEvent
from PySide6.QtWidgets import QWidget

log = logging.getLogger(__name__)

#: Platforms where no other process can inject input into our windows.
TRUSTED_PLATFORMS = ("wayland", "wayland-egl", "offscreen", "minimal")
#: Platforms where approval works but input provenance is not checked (yet).
UNGUARDED_PLATFORMS = ("windows", "cocoa")

#: Why an input event cannot approve (:meth:`InputGuard.refusal`).
FROM_SOFTWARE = "software"
POINTER_MOVED_BY_SOFTWARE = "warp"


class InputGuard(QObject):
    """Base class and the "nothing to guard" implementation (Wayland, offscreen)."""

    #: Availability or a protected window's visibility changed; dialogs re-check arming.
    changed = Signal()
    #: Something that changes what a key or click means happened (keymap, devices): dialogs
    #: disarm and arm again from scratch. The argument says what, for the log.
    input_reset = Signal(str)

    #: Why approval is impossible here (shown in the dialog), or None when it is possible.
    problem: str | None = None

    @property
    def available(self) -> bool:
        return self.problem is None

    def protect(self, widget: QWidget) -> None:
        """Start guarding ``widget``'s window (call before it is mapped)."""

    def unprotect(self, widget: QWidget) -> None:
        """Stop guarding ``widget``'s window."""

    def accept_approval_event(self, event: QInputEvent) -> bool:
        """True when ``event`` (a mouse or key press or release being handled) came from a
        person's device through a path this guard vouches for."""
        return self.available

    def refusal(self, event: QInputEvent) -> str | None:
        """None when ``event`` may act on Approve, else why not: :data:`FROM_SOFTWARE`,
        :data:`POINTER_MOVED_BY_SOFTWARE`, or :attr:`problem`. Logs nothing."""
        return None if self.available else self.problem

    def is_obscured(self, widget: QWidget) -> bool:
        """True when another window covers part of ``widget`` (or it is not known yet)."""
        return False

    def stats(self) -> dict[str, int]:
        return {}


class RefusingGuard(InputGuard):
    """Approval is impossible on this platform; the dialog says why and offers only Deny."""

    def __init__(self, problem: str) -> None:
        super().__init__()
        self.problem = problem

    def accept_approval_event(self, event: QInputEvent) -> bool:
        return False

    def refusal(self, event: QInputEvent) -> str | None:
        return self.problem


def make_guard(app: QGuiApplication | None = None) -> InputGuard:
    """The guard for the running platform. Call after the QApplication exists."""
    app = app or QGuiApplication.instance()  # type: ignore[assignment]
    platform = app.platformName() if app is not None else ""
    if platform == "xcb":
        from gui_approver.ui.x11guard import X11InputGuard

        guard: InputGuard = X11InputGuard.for_application(app)
    elif platform in TRUSTED_PLATFORMS:
        guard = InputGuard()
    elif platform in UNGUARDED_PLATFORMS:
        log.warning(
            "input guard: no input-provenance checks on %s: a program running as you "
            "could click Approve (SendInput / CGEventPost)",
            platform,
        )
        guard = InputGuard()
    else:
        guard = RefusingGuard(
            f"Approving is not supported on the Qt platform {platform!r}: gui-approver cannot "
            "tell whether input there comes from you. Run it on X11 or Wayland."
        )
    if guard.problem:
        log.warning("input guard (%s): approval refused: %s", platform, guard.problem)
    else:
        log.info("input guard: %s on platform %s", type(guard).__name__, platform)
    return guard


_default: dict[int, InputGuard] = {}


def default_guard() -> InputGuard:
    """One guard per QApplication (created on first use; needs the QApplication)."""
    app = QGuiApplication.instance()
    key = id(app)
    if key not in _default:
        _default.clear()
        _default[key] = make_guard(app)  # type: ignore[arg-type]
    return _default[key]

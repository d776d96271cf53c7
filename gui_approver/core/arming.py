"""When the approval dialog's Approve may act: the arming policy, Qt-free, with its clock
injected (the dialog drives it with Qt's events and one timer; tests with a fake clock).

Approve is armed only after the dialog has been able to arm (shown, the active window, not
covered, the input guard working) for ``delay`` seconds without a break. Anything that ends
that (losing activation, being covered or hidden) disarms at once; a restart (keys typed into
the dialog, input devices or the keyboard mapping changed) disarms and starts the delay over.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from enum import StrEnum

#: The shortest arming delay the settings may ask for.
MIN_DELAY = 1.0


class Arm(StrEnum):
    DISARMED = "disarmed"
    ARMING = "arming"
    ARMED = "armed"


class ArmingPolicy:
    """``consider(can_arm)`` after anything that may change whether the dialog can arm;
    ``fire(can_arm)`` when the timer the dialog started for :meth:`remaining` seconds runs
    out; ``restart()`` to start over. Each returns what the dialog must do."""

    def __init__(self, delay: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.delay = max(MIN_DELAY, delay)
        self._clock = clock
        self.state = Arm.DISARMED
        self._since = 0.0

    @property
    def armed(self) -> bool:
        return self.state is Arm.ARMED

    def remaining(self) -> float:
        """Seconds until an arming dialog may arm (0 when armed, the whole delay when not)."""
        if self.state is Arm.ARMED:
            return 0.0
        if self.state is Arm.DISARMED:
            return self.delay
        return max(0.0, self._since + self.delay - self._clock())

    def consider(self, can_arm: bool) -> Arm:
        """The new state: ARMING means "(re)start the timer for :meth:`remaining`"."""
        if not can_arm:
            self.state = Arm.DISARMED
        elif self.state is Arm.DISARMED:
            self.state = Arm.ARMING
            self._since = self._clock()
        return self.state

    def fire(self, can_arm: bool) -> Arm:
        """The timer ran out: arm only if the dialog could arm the whole delay (a timer may
        fire early; then it stays ARMING and the dialog starts it again)."""
        if not can_arm:
            self.state = Arm.DISARMED
        elif self.state is Arm.ARMING and self.remaining() <= 0.0:
            self.state = Arm.ARMED
        return self.state

    def restart(self) -> None:
        """Disarm; the next :meth:`consider` starts the delay from the beginning."""
        self.state = Arm.DISARMED

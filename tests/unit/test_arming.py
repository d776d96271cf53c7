"""The arming policy (core/arming.py) with a fake clock: no test waits for a real second."""

from __future__ import annotations

from gui_approver.core.arming import Arm, ArmingPolicy


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def policy(delay: float = 1.0) -> tuple[ArmingPolicy, Clock]:
    clock = Clock()
    return ArmingPolicy(delay, clock), clock


def test_arms_only_after_the_whole_delay_of_being_able_to():
    p, clock = policy(1.5)
    assert p.consider(True) is Arm.ARMING and p.remaining() == 1.5
    clock.now += 1.0
    assert p.fire(True) is Arm.ARMING  # a timer that fired early does not arm
    assert p.remaining() == 0.5
    clock.now += 0.5
    assert p.fire(True) is Arm.ARMED and p.armed


def test_the_delay_is_never_shorter_than_a_second():
    p, _ = policy(0.1)
    assert p.delay == 1.0


def test_losing_the_ability_to_arm_disarms_at_once_and_starts_over():
    p, clock = policy()
    p.consider(True)
    clock.now += 2
    assert p.fire(True) is Arm.ARMED
    assert p.consider(False) is Arm.DISARMED  # lost activation, covered, hidden
    assert p.consider(True) is Arm.ARMING
    clock.now += 0.9
    assert p.fire(True) is Arm.ARMING  # the earlier 2 s do not count


def test_a_break_while_arming_is_not_bridged():
    p, clock = policy()
    p.consider(True)
    clock.now += 0.8
    p.consider(False)
    clock.now += 0.5
    assert p.fire(True) is Arm.DISARMED  # the timer of the broken attempt arms nothing
    p.consider(True)
    clock.now += 0.5
    assert p.fire(True) is Arm.ARMING


def test_restart_disarms_and_the_delay_begins_again():
    p, clock = policy()
    p.consider(True)
    clock.now += 1
    assert p.fire(True) is Arm.ARMED
    p.restart()  # typing, input devices or keyboard mapping changed
    assert not p.armed and p.remaining() == 1.0
    assert p.consider(True) is Arm.ARMING
    clock.now += 1
    assert p.fire(True) is Arm.ARMED


def test_firing_when_unable_to_arm_disarms():
    p, clock = policy()
    p.consider(True)
    clock.now += 1
    assert p.fire(False) is Arm.DISARMED


def test_consider_while_arming_keeps_the_start():
    p, clock = policy()
    p.consider(True)
    clock.now += 0.6
    assert p.consider(True) is Arm.ARMING  # an unrelated event: the delay keeps running
    clock.now += 0.4
    assert p.fire(True) is Arm.ARMED

"""A value that never shows itself: :class:`Secret` (standard library only; the bridge uses it)."""

from __future__ import annotations


class Secret:
    """A string that never shows itself in ``repr``/``str``/logs; ``.expose()`` to use it."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def expose(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret(REDACTED)"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(("Secret", self._value))

"""Small immutable records and JSON through the C scanner: what the client's messages are made
of, without importing ``typing``, ``dataclasses``, ``json`` or ``re`` on cargo's hot path.

The value classes are hand-written immutable records (:class:`Record`) with what
``@dataclass(frozen=True)`` gave them; JSON goes through the C accelerator ``_json`` that
``json`` itself uses, with identical results.
"""

from __future__ import annotations

import _json as _cjson

from gui_approver.errors import ProtocolError

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (mypy knows the name)
if TYPE_CHECKING:
    from typing import Any, NoReturn, TypeVar

    _R = TypeVar("_R", bound="Record")


# JSON through ``_json`` (the C half of the ``json`` module): the same scanner and encoder
# ``json.loads``/``json.dumps`` use, without importing ``json`` (and ``re``, ``enum``).


class _ScanContext:
    """The settings ``json.JSONDecoder()`` passes its C scanner (all defaults)."""

    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    parse_constant = {
        "NaN": float("nan"),
        "Infinity": float("inf"),
        "-Infinity": float("-inf"),
    }.__getitem__


_scan = _cjson.make_scanner(_ScanContext())  # type: ignore[arg-type]
_JSON_WS = " \t\n\r"


class _JSONError(ValueError):
    """Like ``json.JSONDecodeError`` (``.msg``), for the errors raised here."""

    def __init__(self, msg: str, pos: int) -> None:
        super().__init__(f"{msg}: char {pos}")
        self.msg = msg
        self.pos = pos


def json_loads(text: str) -> Any:
    """``json.loads(text)`` for a str. The C scanner raises ``json.JSONDecodeError`` itself
    for most malformed input (importing ``json.decoder`` then: errors only)."""
    if text.startswith("\ufeff"):
        raise _JSONError("Unexpected UTF-8 BOM (decode using utf-8-sig)", 0)
    start = len(text) - len(text.lstrip(_JSON_WS))
    try:
        obj, end = _scan(text, start)
    except StopIteration as err:
        raise _JSONError("Expecting value", err.value) from None
    end = len(text) - len(text[end:].lstrip(_JSON_WS))
    if end != len(text):
        raise _JSONError("Extra data", end)
    return obj


def _not_serializable(obj: object) -> NoReturn:
    raise TypeError(f"Object of type {type(obj).__name__} is not JSON serializable")


def json_dumps(obj: Any, *, ensure_ascii: bool) -> str:
    """``json.dumps(obj, separators=(",", ":"), ensure_ascii=ensure_ascii)``."""
    encode_str = _cjson.encode_basestring_ascii if ensure_ascii else _cjson.encode_basestring
    if isinstance(obj, str):
        return encode_str(obj)
    encoder = _cjson.make_encoder(
        {}, _not_serializable, encode_str, None, ":", ",", False, False, True
    )
    return "".join(encoder(obj, 0))


class Record:
    """An immutable value object: fields are the ``__slots__``, in order; compared, hashed,
    copied and shown by value (fields named in ``_hidden`` are left out of ``repr``)."""

    __slots__: tuple[str, ...] = ()  # in subclasses: the fields, in order (not sorted)
    _hidden: tuple[str, ...] = ()

    def _init(self, *values: object) -> None:
        for name, value in zip(self.__slots__, values, strict=True):
            object.__setattr__(self, name, value)

    def _values(self) -> tuple[object, ...]:
        return tuple(getattr(self, name) for name in self.__slots__)

    def replace(self: _R, **changes: Any) -> _R:
        """A copy with some fields changed (like ``dataclasses.replace``)."""
        unknown = set(changes) - set(self.__slots__)
        if unknown:
            raise TypeError(f"{type(self).__name__} has no field(s) {sorted(unknown)}")
        values = [changes.get(n, v) for n, v in zip(self.__slots__, self._values(), strict=True)]
        return type(self)(*values)

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        assert isinstance(other, Record)
        return self._values() == other._values()

    def __hash__(self) -> int:
        return hash(self._values())

    def __repr__(self) -> str:
        shown = ", ".join(
            f"{n}={getattr(self, n)!r}" for n in self.__slots__ if n not in self._hidden
        )
        return f"{type(self).__name__}({shown})"

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"cannot assign to field {name!r} of a frozen {type(self).__name__}")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"cannot delete field {name!r} of a frozen {type(self).__name__}")

    def __reduce__(self) -> tuple[Any, tuple[object, ...]]:
        return type(self), self._values()


def load_object(data: bytes | str, limit: int, what: str) -> dict[str, Any]:
    if isinstance(data, str):
        data = data.encode("utf-8", "surrogatepass")
    if len(data) > limit:
        raise ProtocolError(f"{what} is too large ({len(data)} bytes, limit {limit})")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise ProtocolError(f"{what} is not valid UTF-8") from None
    text = text.strip()
    if not text:
        raise ProtocolError(f"{what} is empty")
    try:
        obj = json_loads(text)
    except RecursionError:
        raise ProtocolError(f"{what} is nested too deeply") from None
    except ValueError as exc:  # json.JSONDecodeError, _JSONError, int() over 4300 digits
        msg = getattr(exc, "msg", None)
        detail = f" ({msg})" if isinstance(msg, str) else ""
        raise ProtocolError(f"{what} is not valid JSON{detail}") from None
    if not isinstance(obj, dict):
        raise ProtocolError(f"{what} must be a JSON object")
    return obj

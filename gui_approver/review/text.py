"""Text that is safe to show: request- and archive-supplied strings with control, bidi and
other invisible characters escaped, and sizes for people."""

from __future__ import annotations

import unicodedata
from typing import Final

MiB: Final = 1024 * 1024

_ESCAPED_CATEGORIES: Final = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})


def escape_text(text: str, limit: int = 4096) -> str:
    """``text`` with control, formatting (bidi overrides, zero-width), private-use,
    unassigned, line-separator and non-ASCII space characters escaped as ``\\xNN`` /
    ``\\uNNNN``; backslashes doubled; bytes smuggled in by ``surrogateescape`` shown as
    ``\\xNN``. At most ``limit`` characters of input are kept (``…`` marks a cut)."""
    cut = len(text) > limit
    out: list[str] = []
    for ch in text[:limit]:
        code = ord(ch)
        if ch == "\\":
            out.append("\\\\")
        elif not _hidden(ch):
            out.append(ch)
        elif 0xDC80 <= code <= 0xDCFF:  # surrogateescape'd undecodable byte
            out.append(f"\\x{code - 0xDC00:02x}")
        elif code <= 0xFF:
            out.append(f"\\x{code:02x}")
        elif code <= 0xFFFF:
            out.append(f"\\u{code:04x}")
        else:
            out.append(f"\\U{code:08x}")
    if cut:
        out.append("…")
    return "".join(out)


def _hidden(ch: str) -> bool:
    if ch.isascii():
        return not ch.isprintable()
    cat = unicodedata.category(ch)
    return cat in _ESCAPED_CATEGORIES or cat == "Zs"  # Zs: no-break and other odd spaces


def has_hidden_chars(text: str) -> bool:
    """True when :func:`escape_text` would escape something other than a backslash."""
    return any(_hidden(ch) for ch in text)


def human_size(n: int) -> str:
    if n < 1024:
        return f"{n} B"
    if n < MiB:
        return f"{n / 1024:.1f} KiB"
    return f"{n / MiB:.1f} MiB"


# --------------------------------------------------------------------------------------------
# Results

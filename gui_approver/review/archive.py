"""Is this ``.crate`` inside the tar subset cargo itself writes? Qt-free, stdlib only.

The review lists a ``.crate`` with Python's :mod:`tarfile`; cargo unpacks it with the Rust
``tar`` crate (tar-rs). The two readers disagree on some archives: tarfile honours a PAX
``path`` over a GNU long name while tar-rs does the opposite, tarfile reads the ustar
prefix field under a GNU magic while tar-rs ignores it, tarfile does not skip a directory's
data while tar-rs does, ``src/./lib.rs`` is a second member in tarfile's eyes and the same
file for cargo, and so on. A listing can therefore only be called *verified* when the
archive stays inside what cargo (``cargo package``, tar-rs ``Header::new_gnu``) produces,
where both readers provably agree:

- one gzip member and nothing after it; after the tar's end-of-archive marker only zeros;
- headers with the GNU (``ustar  \\0``) or POSIX (``ustar\\0 00``) magic and a correct
  (unsigned) checksum; size, mode and mtime in plain octal digits, uid, gid and device
  numbers too or all NUL; under the GNU magic, bytes
  345-500 (ustar prefix, GNU times) all zero;
- entry types ``0`` (regular file) and ``5`` (directory, without data), each optionally
  preceded by exactly one GNU long name (``L``) whose text ends in one NUL and holds no other;
- every path valid UTF-8, below ``<name>-<vers>/``, spelled canonically (no ``.``, empty or
  ``..`` components, not absolute), one entry per path after normalising the way Rust's
  ``Path::components`` does (and per path ignoring case, for case-insensitive file
  systems), no file where another entry needs a directory, no
  ``.cargo-ok`` (cargo skips that name when unpacking).

:func:`check_subset` walks the raw 512-byte headers itself, the way tar-rs does (tarfile
merges extension headers and hides exactly the things that matter here), and returns every
departure from that subset. Nothing here raises for bad input.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

_Bad = Callable[[str], None]

BLOCK: Final = 512
GNU_MAGIC: Final = b"ustar  \0"
USTAR_MAGIC: Final = b"ustar\x0000"
#: what the review shows (prominently) for an archive outside the subset
UNSUPPORTED_WARNING: Final = (
    "this archive uses tar features cargo never produces; what cargo unpacks may differ "
    "from this list"
)

_OCTAL = re.compile(rb"^ *([0-7]+) *$")
_TYPE_NAMES: Final = {
    b"1": "hard link",
    b"2": "symbolic link",
    b"3": "character device",
    b"4": "block device",
    b"6": "named pipe",
    b"7": "contiguous file",
    b"\0": "old-style regular file",
    b"S": "GNU sparse file",
    b"K": "GNU long link name",
    b"x": "PAX extended header",
    b"g": "PAX global header",
    b"V": "volume label",
    b"M": "multi-volume continuation",
    b"D": "GNU dump directory",
}


@dataclass(frozen=True)
class RawMember:
    """One entry as tar-rs sees it (path after a GNU long name; PAX ignored)."""

    path: bytes
    typeflag: bytes
    size: int
    header_offset: int
    data_offset: int


@dataclass(frozen=True)
class SubsetCheck:
    members: tuple[RawMember, ...]
    #: every departure from the subset cargo writes (empty: inside it)
    violations: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return not self.violations


def _nts(field: bytes) -> bytes:
    return field.split(b"\0", 1)[0]


def _octal(field: bytes) -> int | None:
    m = _OCTAL.match(_nts(field))
    return int(m.group(1), 8) if m else None


def _show(path: bytes, limit: int = 160) -> str:
    text = path.decode("utf-8", "backslashreplace")
    text = "".join(ch if ch.isprintable() else f"\\x{ord(ch):02x}" for ch in text[:limit])
    return text + ("…" if len(path) > limit else "")


def _type_name(t: bytes) -> str:
    if t in _TYPE_NAMES:
        return _TYPE_NAMES[t]
    return f"unknown type {t!r}"


def check_subset(
    raw: bytes,
    prefix: str | None,
    *,
    gzip_members: int = 1,
    gzip_trailing: int = 0,
    max_members: int = 20_000,
    max_name: int = 4096,
    max_violations: int = 20,
) -> SubsetCheck:
    """Check the decompressed tar ``raw`` of a ``.crate`` whose entries must lie below
    ``prefix`` (``<name>-<vers>``). ``gzip_members``/``gzip_trailing``: how many gzip members
    the file had and how many bytes followed the first one (cargo reads only the first)."""
    out: list[str] = []
    seen_v: set[str] = set()

    def bad(text: str) -> None:
        if text not in seen_v:
            seen_v.add(text)
            out.append(text)

    if prefix is None:
        bad(
            "the crate name and version are unknown, so the entries cannot be checked "
            "against <name>-<vers>/"
        )
    if gzip_members > 1:
        bad(f"{gzip_members} gzip members: cargo reads only the first, the list shows all")
    if gzip_trailing:
        bad(f"{gzip_trailing} bytes after the gzip stream")
    members = _walk(raw, bad, max_members, max_name)
    _check_paths(members, prefix, bad)
    if len(out) > max_violations:
        extra = len(out) - max_violations
        out[max_violations:] = [f"… and {extra} more"]
    return SubsetCheck(tuple(members), tuple(out))


def _walk(raw: bytes, bad: _Bad, max_members: int, max_name: int) -> list[RawMember]:
    members: list[RawMember] = []
    off = 0
    long_name: bytes | None = None
    while True:
        if len(members) > max_members:
            bad("too many entries to check")
            break
        h = _next_header(raw, off, long_name, bad)
        parsed = _parse_header(h, off, bad) if h is not None else None
        if parsed is None:
            break
        name, typeflag, size = parsed
        header_at = off
        data = off + BLOCK
        if data + size > len(raw):
            bad("the tar data ends inside an entry")
            break
        off = data + (size + BLOCK - 1) // BLOCK * BLOCK
        if typeflag == b"L":
            long_name = _long_name(raw[data : data + size], long_name, max_name, bad)
            continue
        if typeflag not in (b"0", b"5"):
            bad(f"an entry of type {_type_name(typeflag)} ({_show(name)})")
            if typeflag in (b"x", b"g", b"K"):
                continue  # applies to the next entry (tar-rs: x and K; tarfile: x, g, K)
        path = long_name if long_name is not None else name
        long_name = None
        if typeflag == b"5" and size:
            bad(
                f"a directory entry with {size} bytes of data ({_show(path)}): Python's "
                "tarfile reads that data as further entries, cargo skips it"
            )
        members.append(RawMember(path, typeflag, size, header_at, data))
    return members


def _next_header(raw: bytes, off: int, long_name: bytes | None, bad: _Bad) -> bytes | None:
    """The 512-byte header at ``off``, or None at the end of the archive (said why)."""
    if off + BLOCK > len(raw):
        if raw[off:].strip(b"\0"):
            bad("the tar data ends inside a header")
        else:
            bad("the tar data has no end-of-archive marker")
        return None
    h = raw[off : off + BLOCK]
    if not h.strip(b"\0"):
        if long_name is not None:
            bad("a GNU long name is not followed by an entry")
        if raw[off:].strip(b"\0"):
            bad("data after the tar end-of-archive marker (cargo never reads it)")
        return None
    return h


def _parse_header(h: bytes, off: int, bad: _Bad) -> tuple[bytes, bytes, int] | None:
    """(name, typeflag, size) of a header cargo's reader and ours read alike; None where the
    two may part ways from here on (a bad checksum or size)."""
    stored = _octal(h[148:156])
    if stored != sum(h[:148]) + 8 * 32 + sum(h[156:]):
        bad(
            f"a tar header at offset {off} has a bad checksum (cargo stops with an error "
            "there; the list may go on or stop)"
        )
        return None
    magic = h[257:265]
    prefix_field = b""
    if magic == GNU_MAGIC:
        if h[345:500].strip(b"\0"):
            bad(
                "a GNU header carries data in its prefix/time fields (Python's tarfile "
                "reads it as part of the name, cargo ignores it)"
            )
    elif magic == USTAR_MAGIC:
        prefix_field = _nts(h[345:500])
    else:
        bad(
            "a tar header without the ustar/GNU magic (cargo and Python's tarfile "
            "handle such headers differently)"
        )
    for lo, hi in ((100, 108), (108, 116), (116, 124), (136, 148), (329, 337), (337, 345)):
        field = h[lo:hi]
        # cargo leaves uid, gid and device numbers all NUL; mode and mtime it sets
        if (lo in (100, 136) or field.strip(b"\0")) and _octal(field) is None:
            bad(
                f"a tar header at offset {off} has a numeric field (bytes {lo}-{hi}) that "
                "is not plain octal (Python's tarfile stops listing there; cargo may not)"
            )
            break
    size = _octal(h[124:136])
    if size is None:
        bad(f"a tar header at offset {off} has a size field that is not plain octal")
        return None
    name = _nts(h[0:100])
    if prefix_field:
        name = prefix_field + b"/" + name
    return name, h[156:157], size


def _long_name(body: bytes, pending: bytes | None, max_name: int, bad: _Bad) -> bytes:
    """A GNU long name (type L) for the next entry."""
    if pending is not None:
        bad("two GNU long names for one entry")
    if len(body) > max_name:
        bad(f"a GNU long name of {len(body)} bytes")
    if not body.endswith(b"\0") or b"\0" in body[:-1]:
        bad(
            "a GNU long name that is not text ending in one NUL (cargo and Python "
            "read different names from it)"
        )
    # tar-rs drops one trailing NUL; tarfile cuts at the first one
    return body[:-1] if body.endswith(b"\0") else body


def components(path: str) -> tuple[str, ...]:
    """The normal components of a relative ``/``-separated path the way Rust's
    ``Path::components`` yields them after a leading component: ``.`` and empty ones
    dropped, ``..`` kept."""
    return tuple(c for c in path.split("/") if c not in ("", "."))


def _check_paths(members: list[RawMember], prefix: str | None, bad: _Bad) -> None:
    seen: dict[tuple[str, ...], bytes] = {}
    folded: dict[tuple[str, ...], tuple[str, ...]] = {}
    files: set[tuple[str, ...]] = set()
    for m in members:
        try:
            text = m.path.decode("utf-8")
        except UnicodeDecodeError:
            bad(f"an entry name is not valid UTF-8 ({_show(m.path)})")
            continue
        shown = _show(m.path)
        if not text:
            bad("an entry with an empty name")
            continue
        if text.startswith("/"):
            bad(f"an absolute path ({shown})")
        parts = text.split("/")
        if prefix is not None and parts[0] != prefix:
            bad(f"an entry outside {prefix}/ ({shown})")
        comps = components(text)
        if ".." in comps:
            bad(f"a '..' component ({shown})")
        canonical = "/".join(comps)
        if not text.startswith("/") and text not in (
            canonical,
            canonical + "/" if m.typeflag == b"5" else canonical,
        ):
            bad(f"a name spelled with '.', '//' or a trailing '/' ({shown})")
        if comps and comps[-1] == ".cargo-ok":
            bad(f"an entry named .cargo-ok, which cargo skips when unpacking ({shown})")
        if prefix is not None and comps == (prefix,) and m.typeflag != b"5":
            bad(f"the crate directory {prefix} itself is not a directory")
        if comps in seen:
            bad(
                f"two entries name the same path {'/'.join(comps)[:160]} (cargo unpacks "
                "the last one over the first)"
            )
        seen[comps] = m.typeflag
        fold = tuple(c.casefold() for c in comps)
        if folded.setdefault(fold, comps) != comps:
            bad(
                f"two entries differ only in case ({'/'.join(comps)[:160]}; a case-insensitive "
                "file system unpacks one over the other)"
            )
        if m.typeflag == b"0":
            files.add(comps)
    _check_nesting(seen, files, bad)


def _check_nesting(
    seen: dict[tuple[str, ...], bytes], files: set[tuple[str, ...]], bad: _Bad
) -> None:
    """No entry may lie inside a path another entry makes a file."""
    for comps in seen:
        for i in range(1, len(comps)):
            if comps[:i] in files:
                bad(f"{'/'.join(comps[:i])[:160]} is a file but another entry lies inside it")
                break


__all__ = [
    "GNU_MAGIC",
    "UNSUPPORTED_WARNING",
    "USTAR_MAGIC",
    "RawMember",
    "SubsetCheck",
    "check_subset",
    "components",
]

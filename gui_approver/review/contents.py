"""What is inside the ``.crate`` that cargo asks us to sign. Qt-free, no psutil.

A publish request carries only a sha256 (``cksum``). This module finds the ``.crate`` cargo
has just packaged, hashes it itself and, only when the hash equals the request's ``cksum``,
lists what is inside: every file with its size and sha256, and the manifest's description,
license and repository. The approval stays bound to exact bytes: a listing is produced from
the very bytes that were hashed, and nothing is listed for a file whose hash differs.

Measured with cargo 1.95 while the publish request is pending (see tests/unit/test_contents.py):
cargo packages into ``<target>/package/tmp-crate/<name>-<vers>.crate`` (plus a copy in
``<target>/package/tmp-registry/``), keeps that file **open** until the upload, and for
``cargo publish --workspace`` keeps every packaged ``.crate`` of the run open. ``cargo
package`` writes ``<target>/package/<name>-<vers>.crate``. ``<target>`` is ``--target-dir``,
``CARGO_TARGET_DIR``/``CARGO_BUILD_TARGET_DIR``, ``[build] target-dir`` in a
``.cargo/config.toml``, or ``<workspace root>/target``.

Reading is safe against hostile archives: the ``.crate`` is opened non-blocking and must be a
regular file; compressed and uncompressed sizes, the number of entries, each name's length
and the time spent are bounded; nothing is extracted to disk and no link is followed; links,
devices, absolute paths, ``..`` components, entries outside ``<name>-<vers>/``, duplicates,
invalid gzip or tar data and extreme compression ratios are reported. Names are returned as
plain strings with control and formatting characters escaped. Nothing here raises for bad
input: every problem ends up in the result.
"""

from __future__ import annotations

import hashlib
import io
import os
import stat
import tarfile
import time
import tomllib
import zlib
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Final

from gui_approver.review.archive import UNSUPPORTED_WARNING, check_subset
from gui_approver.review.locate import CargoContext, candidate_paths, safe_read
from gui_approver.review.text import escape_text, has_hidden_chars, human_size

MiB: Final = 1024 * 1024
#: problems listed per archive (the rest are counted)
MAX_PROBLEMS: Final = 50


@dataclass(frozen=True)
class Limits:
    """Bounds for reading one ``.crate`` (crates.io accepts at most 10 MB compressed)."""

    max_crate_bytes: int = 64 * MiB
    max_uncompressed_bytes: int = 64 * MiB
    max_members: int = 20_000
    max_manifest_bytes: int = 1 * MiB
    max_name_chars: int = 1024
    #: PAX / GNU long-name headers larger than this stop the listing
    max_extended_header: int = 16 * 1024
    #: a ratio above this (with more than ``ratio_min_bytes`` uncompressed) is reported
    suspicious_ratio: float = 100.0
    ratio_min_bytes: int = 1 * MiB
    #: candidate files hashed per lookup
    max_candidates: int = 32


DEFAULT_LIMITS: Final = Limits()


@dataclass(frozen=True)
class FileEntry:
    """One archive entry. ``path`` is relative to ``<name>-<vers>/`` when the entry lies
    inside it (as ``cargo package --list`` shows it), else the whole escaped name."""

    path: str
    size: int
    kind: str  # "file" | "dir" | "symlink" | "hardlink" | "device" | "fifo" | "sparse" | "other"
    sha256: str | None = None  # regular files whose bytes were read
    note: str | None = None  # why this entry is suspicious, if it is

    def describe(self) -> str:
        text = f"{self.path}  ({human_size(self.size)})"
        if self.kind not in ("file", "dir"):
            text += f"  [{self.kind}]"
        if self.note:
            text += f"  ! {self.note}"
        return text


@dataclass(frozen=True)
class ManifestInfo:
    """Fields of the normalized ``Cargo.toml`` inside the archive (escaped for display)."""

    name: str | None = None
    version: str | None = None
    description: str | None = None
    license: str | None = None
    license_file: str | None = None
    repository: str | None = None
    homepage: str | None = None
    documentation: str | None = None
    #: ``package.build``: a path, or None when there is no build script (``build = false``)
    build: str | None = None
    proc_macro: bool = False
    links: str | None = None
    error: str | None = None


@dataclass(frozen=True)
class ArchiveListing:
    files: tuple[FileEntry, ...]
    total_size: int  # sum of the entries' sizes (uncompressed)
    compressed_size: int
    uncompressed_read: int  # bytes actually decompressed
    manifest: ManifestInfo | None
    problems: tuple[str, ...]
    complete: bool  # False when a limit, an error or the deadline stopped the listing
    #: departures from the tar subset cargo writes (see :mod:`.archive`); any one of them
    #: means cargo may unpack something other than this list
    unsupported: tuple[str, ...] = ()

    @property
    def faithful(self) -> bool:
        """The list is complete and the archive inside the subset cargo writes, so it is
        exactly what cargo unpacks."""
        return self.complete and not self.unsupported

    @property
    def has_build_script(self) -> bool:
        if self.manifest is not None and self.manifest.build:
            return True
        return any(f.path == "build.rs" for f in self.files)


@dataclass(frozen=True)
class CrateContents:
    """What the dialog can say about the bytes behind a publish request's ``cksum``.

    ``verified`` is True only when a file whose sha256 equals ``cksum`` was found; then
    ``listing`` describes exactly those bytes. Otherwise ``reason`` says why and there is no
    listing at all.
    """

    name: str
    vers: str
    cksum: str
    verified: bool
    reason: str
    path: str | None = None  # the file that matched (or, unverified, the closest candidate)
    actual_sha256: str | None = None  # of ``path`` when one was read
    listing: ArchiveListing | None = None
    searched: tuple[str, ...] = ()
    elapsed: float = 0.0
    #: the verified bytes (for history and diffs); never shown, never compared
    data: bytes | None = field(default=None, repr=False, compare=False)

    @property
    def files(self) -> tuple[FileEntry, ...]:
        return self.listing.files if self.verified and self.listing else ()

    @property
    def manifest(self) -> ManifestInfo | None:
        return self.listing.manifest if self.verified and self.listing else None

    @property
    def problems(self) -> tuple[str, ...]:
        return self.listing.problems if self.verified and self.listing else ()

    @property
    def listing_verified(self) -> bool:
        """The only state in which the review may say "verified": the sha256 matches AND the
        listing is complete AND the archive stays inside the tar subset cargo writes, so the
        list is exactly what cargo unpacks. (``verified`` alone means the sha256 matches.)"""
        return bool(self.verified and self.listing is not None and self.listing.faithful)

    @property
    def unsupported(self) -> tuple[str, ...]:
        """Why cargo may unpack something other than the list (empty when it cannot)."""
        return self.listing.unsupported if self.verified and self.listing else ()

    @property
    def clean(self) -> bool:
        """Verified, completely listed, and nothing suspicious found."""
        return bool(self.listing_verified and self.listing and not self.listing.problems)

    @property
    def why_not_verified(self) -> str | None:
        """None when :attr:`listing_verified`; else the reason, as the review shows it."""
        if not self.verified:
            return self.reason
        if self.listing is None:
            return "the archive was not listed"
        if self.listing.unsupported:
            return UNSUPPORTED_WARNING
        if not self.listing.complete:
            return "the archive could not be listed completely"
        return None

    def summary(self) -> str:
        if not self.verified:
            return f"contents could not be verified: {self.reason}"
        if self.listing is None:
            return "sha256 matches, but the archive was not listed"
        lst = self.listing
        n = len(lst.files)
        counts = (
            f"{n} file{'' if n == 1 else 's'}, {human_size(lst.total_size)} "
            f"({human_size(lst.compressed_size)} compressed), sha256 matches"
        )
        if lst.unsupported:
            return f"UNSAFE LISTING: {UNSUPPORTED_WARNING} ({counts})"
        if not lst.files and lst.problems:
            return f"sha256 matches, but the archive could not be read: {lst.problems[0]}"
        if not lst.complete:
            text = f"the listing is incomplete ({counts})"
        else:
            text = f"verified: {counts}"
        if lst.problems:
            text += f"; {len(lst.problems)} problem(s) found in the archive"
        return text

    def lines(self) -> list[str]:
        """Everything the dialog would show, as plain text lines."""
        out = [self.summary()]
        if self.path:
            out.append(f"file: {escape_text(self.path)}")
        if not self.verified:
            if self.actual_sha256:
                out.append(f"its sha256: {self.actual_sha256}")
            out.append(f"cargo asks to sign: {self.cksum}")
            return out
        m = self.manifest
        if m is not None:
            for label, value in (
                ("description", m.description),
                ("license", m.license or m.license_file),
                ("repository", m.repository),
                ("homepage", m.homepage),
            ):
                if value:
                    out.append(f"{label}: {value}")
            if m.build:
                out.append(f"build script: {m.build}")
            if m.proc_macro:
                out.append("proc-macro crate")
            if m.error:
                out.append(f"manifest: {m.error}")
        out.extend(f"! unsupported tar feature: {u}" for u in self.unsupported)
        out.extend(f"! {p}" for p in self.problems)
        out.extend("  " + f.describe() for f in self.files)
        return out


# --------------------------------------------------------------------------------------------
# Decompression and tar parsing, bounded


def _gunzip(
    data: bytes,
    limit: int,
    deadline: float,
    problems: list[str],
    lim: Limits,
    *,
    gzinfo: list[int] | None = None,
) -> tuple[bytes, bool]:
    """Decompress gzip ``data`` (several members allowed) into at most ``limit`` bytes.
    ``gzinfo``, if given, receives ``[members, bytes after the first member]`` (cargo reads
    only the first member)."""
    members = 1
    trailing = 0
    out = bytearray()
    d = zlib.decompressobj(16 + zlib.MAX_WBITS)
    buf = data  # always a suffix of ``data``
    complete = True
    try:
        while True:
            if time.monotonic() > deadline:
                problems.append("reading the archive took too long; the listing is incomplete")
                complete = False
                break
            chunk = d.decompress(buf, min(limit + 1 - len(out), MiB))
            out += chunk
            buf = d.unconsumed_tail
            if len(out) > limit:
                del out[limit:]
                problems.append(
                    f"the uncompressed contents exceed the {human_size(limit)} limit "
                    f"(reached after {human_size(len(data) - len(buf))} of compressed data); "
                    "the listing stops there"
                )
                complete = False
                break
            if d.eof:
                rest = d.unused_data
                if members == 1:
                    trailing = len(rest)
                if rest[:2] == b"\x1f\x8b":
                    members += 1
                    d = zlib.decompressobj(16 + zlib.MAX_WBITS)
                    buf = rest
                    continue
                buf = b""
                if rest.strip(b"\0"):
                    problems.append(f"{len(rest)} bytes of unexpected data after the gzip stream")
                break
            if not buf and not chunk:
                problems.append("the gzip data is truncated")
                complete = False
                break
    except zlib.error as exc:
        problems.append(f"not valid gzip data ({escape_text(str(exc), 200)})")
        complete = False
    if gzinfo is not None:
        gzinfo[:] = [members, trailing]
    consumed = len(data) - len(buf)
    if len(out) >= lim.ratio_min_bytes and consumed > 0:
        ratio = len(out) / consumed
        if ratio > lim.suspicious_ratio:
            problems.append(
                f"compression ratio {ratio:.0f}:1 is far above any source code "
                "(a possible decompression bomb)"
            )
    return bytes(out), complete


def _kind(m: tarfile.TarInfo) -> str:
    if m.issparse():
        return "sparse"
    if m.isreg():
        return "file"
    if m.isdir():
        return "dir"
    if m.issym():
        return "symlink"
    if m.islnk():
        return "hardlink"
    if m.ischr() or m.isblk():
        return "device"
    if m.isfifo():
        return "fifo"
    return "other"


def _name_notes(raw: str, prefix: str | None) -> tuple[str, list[str]]:
    """Display path and notes for an archive member name."""
    notes: list[str] = []
    if raw.startswith("/"):
        notes.append("absolute path")
    parts = raw.split("/")
    if ".." in parts:
        notes.append("contains '..'")
    if "\\" in raw:
        notes.append("contains a backslash")
    display = raw
    if prefix is not None:
        if raw.startswith(prefix + "/") and len(raw) > len(prefix) + 1:
            display = raw[len(prefix) + 1 :]
        elif raw.rstrip("/") != prefix:
            notes.append(f"outside the crate directory {prefix}/")
    return display, notes


def _member_data(raw: bytes, m: tarfile.TarInfo) -> memoryview | None:
    """The data of regular file ``m`` inside the decompressed tar ``raw`` (no copy), or None
    when the archive ends before the member does."""
    start, size = m.offset_data, max(0, int(m.size))
    if start < 0 or start + size > len(raw):
        return None
    return memoryview(raw)[start : start + size]


def _tar_size(field: bytes) -> int | None:
    if field[:1] and field[0] & 0x80:  # base-256 (GNU) for large sizes
        return int.from_bytes(field[1:], "big")
    text = field.split(b"\0", 1)[0].strip()
    if not text:
        return 0
    try:
        return int(text, 8)
    except ValueError:
        return None


def _extended_header_limit(raw: bytes, limit: int, problems: list[str]) -> int:
    """Walk the tar headers (no data) and return where to stop so that no extended header
    (PAX ``x``/``g``, GNU long name ``L``/``K``) larger than ``limit`` reaches tarfile, whose
    parsing of such headers can be slow on some Python versions."""
    off = 0
    while off + 512 <= len(raw):
        header = raw[off : off + 512]
        if not header.strip(b"\0"):
            break
        size = _tar_size(header[124:136])
        typeflag = header[156:157]
        if size is None or typeflag == b"S":
            break  # let tarfile judge (and report) it
        if typeflag in (b"x", b"g", b"L", b"K") and size > limit:
            problems.append(
                f"an extended tar header of {human_size(size)} (limit {human_size(limit)}); "
                "the listing stops there"
            )
            return off
        off += 512 + (size + 511) // 512 * 512
    return len(raw)


def list_archive(
    data: bytes,
    *,
    name: str | None = None,
    vers: str | None = None,
    limits: Limits = DEFAULT_LIMITS,
    deadline: float | None = None,
) -> ArchiveListing:
    """List the ``.crate`` in ``data`` (gzip'd tar) without extracting anything. Never raises."""
    if deadline is None:
        deadline = time.monotonic() + 5.0
    problems: list[str] = []
    gzinfo = [1, 0]
    raw, complete = _gunzip(
        data, limits.max_uncompressed_bytes, deadline, problems, limits, gzinfo=gzinfo
    )
    full_raw = raw
    seen_by_tarfile: list[tuple[str, int, int, str]] = []
    files: list[FileEntry] = []
    manifest_bytes: bytes | None = None
    prefix = f"{name}-{vers}" if name and vers else None
    total = 0
    seen: set[str] = set()
    entry_problems: list[str] = []
    if not raw and not complete:
        return ArchiveListing((), 0, len(data), 0, None, tuple(problems), False)
    cut = _extended_header_limit(raw, limits.max_extended_header, problems)
    if cut < len(raw):
        raw = raw[:cut] + b"\0" * 1024
        complete = False
    try:
        tf = tarfile.open(  # noqa: SIM115 - closed in the finally below
            fileobj=io.BytesIO(raw), mode="r:", encoding="utf-8", errors="surrogateescape"
        )
    except (tarfile.TarError, EOFError, OSError, ValueError) as exc:
        problems.append(f"not a valid tar archive ({escape_text(str(exc), 200)})")
        return ArchiveListing((), 0, len(data), len(raw), None, tuple(problems), False)
    try:
        while True:
            stop = _stop_reason(len(files), deadline, limits)
            if stop is not None:
                problems.append(stop)
                complete = False
                break
            try:
                m = tf.next()
            except (tarfile.TarError, EOFError, OSError, ValueError) as exc:
                problems.append(f"invalid tar data ({escape_text(str(exc), 200)})")
                complete = False
                break
            if m is None:
                break
            raw_name = m.name
            display, kind, notes = _entry_notes(m, prefix, limits, seen, problems)
            seen_by_tarfile.append((raw_name.rstrip("/"), int(m.size), m.offset_data, kind))
            size = max(0, int(m.size))
            digest: str | None = None
            if kind == "file":
                total += size
                content = _member_data(raw, m)
                if content is None:
                    notes.append("truncated: the archive ends inside this file")
                    complete = False
                else:
                    digest = hashlib.sha256(content).hexdigest()
                    if prefix and raw_name == f"{prefix}/Cargo.toml":
                        manifest_bytes = bytes(content[: limits.max_manifest_bytes + 1])
            note = "; ".join(notes) if notes else None
            if note:
                entry_problems.append(f"{display}: {note}")
            files.append(FileEntry(display, size, kind, digest, note))
    finally:
        tf.close()
    tail = raw[tf.offset :] if tf.offset < len(raw) else b""
    complete = _tail_complete(tail, complete, problems)
    if prefix is None:
        problems.append(
            "the crate name and version are unknown; entries were not checked "
            "against <name>-<vers>/"
        )
    try:
        unsupported = _unsupported(full_raw, prefix, gzinfo, seen_by_tarfile, limits)
    except Exception as exc:  # noqa: BLE001 - never raise; an unchecked archive is not verified
        unsupported = (f"the tar headers could not be checked ({type(exc).__name__})",)
    manifest = _read_manifest(manifest_bytes, prefix, name, vers, limits=limits, problems=problems)
    problems.extend(_capped(entry_problems))
    return ArchiveListing(
        tuple(files),
        total,
        len(data),
        len(raw),
        manifest,
        tuple(problems),
        complete,
        unsupported,
    )


def _stop_reason(listed: int, deadline: float, limits: Limits) -> str | None:
    if time.monotonic() > deadline:
        return "reading the archive took too long; the listing is incomplete"
    if listed >= limits.max_members:
        return f"more than {limits.max_members} entries; the listing stops there"
    return None


def _capped(entry_problems: list[str]) -> list[str]:
    if len(entry_problems) <= MAX_PROBLEMS:
        return entry_problems
    extra = len(entry_problems) - MAX_PROBLEMS
    return [*entry_problems[:MAX_PROBLEMS], f"… and {extra} more suspicious entries"]


def _tail_complete(tail: bytes, complete: bool, problems: list[str]) -> bool:
    if complete and tail.strip(b"\0"):
        problems.append(f"{len(tail)} bytes of unreadable tar data after the last entry")
        return False
    return complete


def _entry_notes(
    m: tarfile.TarInfo, prefix: str | None, limits: Limits, seen: set[str], problems: list[str]
) -> tuple[str, str, list[str]]:
    """What the listing shows of one entry: its name (escaped), its kind, and what is odd
    about it."""
    raw_name = m.name
    if len(raw_name) > limits.max_name_chars:
        problems.append(f"an entry name is {len(raw_name)} characters long (cut)")
    display, notes = _name_notes(raw_name, prefix)
    if has_hidden_chars(display):
        notes.append("the name contains control, invisible or undecodable characters")
    display = escape_text(display, limits.max_name_chars)
    kind = _kind(m)
    notes += _kind_notes(m, kind, limits)
    if m.mode & (stat.S_ISUID | stat.S_ISGID):
        notes.append("setuid/setgid bit")
    if raw_name in seen:
        notes.append("duplicate entry")
    seen.add(raw_name)
    return display, kind, notes


def _kind_notes(m: tarfile.TarInfo, kind: str, limits: Limits) -> list[str]:
    if kind in ("symlink", "hardlink"):
        link = escape_text(m.linkname, limits.max_name_chars)
        return [f"{'symbolic' if kind == 'symlink' else 'hard'} link to {link} (not followed)"]
    if kind == "device":
        return [f"device file {m.devmajor}:{m.devminor}"]
    if kind == "fifo":
        return ["named pipe"]
    if kind == "sparse":
        return ["sparse file (contents not read)"]
    if kind == "other":
        return [f"unusual entry type {escape_text(m.type.decode('latin-1'))}"]
    return []


def _read_manifest(
    manifest_bytes: bytes | None,
    prefix: str | None,
    name: str | None,
    vers: str | None,
    *,
    limits: Limits,
    problems: list[str],
) -> ManifestInfo | None:
    """The archive's Cargo.toml, and whether it names the requested crate and version."""
    if manifest_bytes is None:
        if prefix is not None:
            problems.append(f"no {prefix}/Cargo.toml in the archive")
        return None
    manifest = parse_manifest(manifest_bytes, limits)
    if (
        prefix is not None
        and manifest.error is None
        and (manifest.name != name or manifest.version != vers)
    ):
        problems.append(
            f"the manifest says {manifest.name} {manifest.version}, the request says {name} {vers}"
        )
    return manifest


def _unsupported(
    raw: bytes,
    prefix: str | None,
    gzinfo: list[int],
    by_tarfile: list[tuple[str, int, int, str]],
    limits: Limits,
) -> tuple[str, ...]:
    """Departures from the subset cargo writes, plus any entry on which tarfile and the raw
    walk (tar-rs's reading) disagree."""
    members, trailing = gzinfo
    check = check_subset(
        raw,
        prefix,
        gzip_members=members,
        gzip_trailing=trailing if members == 1 else 0,
        max_members=limits.max_members,
        max_name=limits.max_name_chars * 4,
    )
    out = list(check.violations)
    if not out:
        kinds = {b"0": "file", b"5": "dir"}
        walked = [
            (
                m.path.decode("utf-8", "surrogateescape").rstrip("/"),
                m.size,
                m.data_offset,
                kinds.get(m.typeflag, "other"),
            )
            for m in check.members
        ]
        if walked != by_tarfile:
            out.append("Python's tarfile and cargo's tar reader see different entries")
    return tuple(out)


def _str_or_none(value: object, limit: int = 2000) -> str | None:
    return escape_text(value, limit) if isinstance(value, str) else None


def parse_manifest(data: bytes, limits: Limits = DEFAULT_LIMITS) -> ManifestInfo:
    """The display fields of a (normalized) Cargo.toml. Never raises."""
    if len(data) > limits.max_manifest_bytes:
        return ManifestInfo(error=f"Cargo.toml is larger than {human_size(len(data))}; not read")
    try:
        doc = tomllib.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError, RecursionError, ValueError) as exc:
        return ManifestInfo(error=f"Cargo.toml could not be parsed ({escape_text(str(exc), 200)})")
    pkg = doc.get("package")
    if not isinstance(pkg, dict):
        return ManifestInfo(error="Cargo.toml has no [package] table")
    build = pkg.get("build")
    if build is True:
        build_s: str | None = "build.rs"
    elif isinstance(build, str):
        build_s = escape_text(build, 400)
    else:
        build_s = None
    lib = doc.get("lib")
    proc_macro = False
    if isinstance(lib, dict):
        proc_macro = lib.get("proc-macro") is True or lib.get("proc_macro") is True
    return ManifestInfo(
        name=_str_or_none(pkg.get("name"), 200),
        version=_str_or_none(pkg.get("version"), 200),
        description=_str_or_none(pkg.get("description")),
        license=_str_or_none(pkg.get("license"), 400),
        license_file=_str_or_none(pkg.get("license-file"), 400),
        repository=_str_or_none(pkg.get("repository"), 400),
        homepage=_str_or_none(pkg.get("homepage"), 400),
        documentation=_str_or_none(pkg.get("documentation"), 400),
        build=build_s,
        proc_macro=proc_macro,
        links=_str_or_none(pkg.get("links"), 200),
    )


def read_member(
    data: bytes,
    path: str,
    *,
    name: str | None = None,
    vers: str | None = None,
    max_bytes: int = 1 * MiB,
    limits: Limits = DEFAULT_LIMITS,
    deadline: float | None = None,
) -> bytes | None:
    """The bytes of the regular file shown as ``path`` in :func:`list_archive` (relative to
    ``<name>-<vers>/``), or None when it is absent, not a regular file or over ``max_bytes``."""
    if deadline is None:
        deadline = time.monotonic() + 5.0
    problems: list[str] = []
    raw, _ = _gunzip(data, limits.max_uncompressed_bytes, deadline, problems, limits)
    prefix = f"{name}-{vers}" if name and vers else None
    try:
        with tarfile.open(
            fileobj=io.BytesIO(raw), mode="r:", encoding="utf-8", errors="surrogateescape"
        ) as tf:
            for _ in range(limits.max_members):
                m = tf.next()
                if m is None:
                    return None
                display, _notes = _name_notes(m.name, prefix)
                if escape_text(display, limits.max_name_chars) != path:
                    continue
                if not m.isreg() or m.issparse() or m.size > max_bytes:
                    return None
                content = _member_data(raw, m)
                return bytes(content) if content is not None else None
    except (tarfile.TarError, EOFError, OSError, ValueError):
        return None
    return None


def inspect_crate_bytes(
    data: bytes,
    *,
    name: str,
    vers: str,
    cksum: str,
    path: str | None = None,
    limits: Limits = DEFAULT_LIMITS,
    deadline: float | None = None,
) -> CrateContents:
    """Verify ``data`` against ``cksum`` and, only if it matches, list it."""
    t0 = time.monotonic()
    actual = hashlib.sha256(data).hexdigest()
    if actual != cksum:
        return CrateContents(
            name,
            vers,
            cksum,
            False,
            f"the packaged file's sha256 ({actual[:16]}…) differs from the checksum cargo "
            "asks to sign: the .crate was changed after packaging, or this is not it",
            path=path,
            actual_sha256=actual,
            elapsed=time.monotonic() - t0,
        )
    listing = list_archive(data, name=name, vers=vers, limits=limits, deadline=deadline)
    return CrateContents(
        name,
        vers,
        cksum,
        True,
        "the sha256 of the packaged file equals the checksum",
        path=path,
        actual_sha256=actual,
        listing=listing,
        elapsed=time.monotonic() - t0,
        data=data,
    )


def inspect_publish(
    name: str,
    vers: str,
    cksum: str,
    ctx: CargoContext,
    *,
    extra_paths: Iterable[str] = (),
    limits: Limits = DEFAULT_LIMITS,
    timeout: float = 2.0,
    written_after: float | None = None,
) -> CrateContents:
    """Find the ``.crate`` for a publish request, verify and list it. Never raises.

    ``written_after`` (seconds since the epoch; for a requester that is not a verified cargo
    process): a file last modified before then cannot be that run's output and is skipped."""
    t0 = time.monotonic()
    deadline = t0 + timeout
    searched: list[str] = []
    mismatch: tuple[str, str] | None = None
    too_big: str | None = None
    stale: str | None = None
    try:
        paths = [*extra_paths, *candidate_paths(name, vers, ctx)]
        seen: set[tuple[int, int]] = set()
        for p in paths[: limits.max_candidates]:
            if time.monotonic() > deadline:
                break
            searched.append(p)
            try:
                st = os.stat(p)
            except OSError:
                continue
            if (st.st_dev, st.st_ino) in seen:
                continue
            seen.add((st.st_dev, st.st_ino))
            if written_after is not None and st.st_mtime < written_after:
                stale = stale or p
                continue
            if stat.S_ISREG(st.st_mode) and st.st_size > limits.max_crate_bytes:
                too_big = p
                continue
            data = safe_read(p, limits.max_crate_bytes)
            if data is None:
                continue
            if len(data) > limits.max_crate_bytes:
                too_big = p
                continue
            actual = hashlib.sha256(data).hexdigest()
            if actual == cksum:
                result = inspect_crate_bytes(
                    data,
                    name=name,
                    vers=vers,
                    cksum=cksum,
                    path=p,
                    limits=limits,
                    deadline=deadline,
                )
                return _with(result, searched, t0)
            if mismatch is None:
                mismatch = (p, actual)
    except Exception as exc:  # noqa: BLE001 - never let inspection break the signing path
        return CrateContents(
            name,
            vers,
            cksum,
            False,
            f"inspection failed ({type(exc).__name__})",
            searched=tuple(searched),
            elapsed=time.monotonic() - t0,
        )
    return _not_found(
        name,
        vers,
        cksum,
        ctx,
        limits,
        searched=tuple(searched),
        t0=t0,
        deadline=deadline,
        mismatch=mismatch,
        too_big=too_big,
        stale=stale,
    )


def _not_found(
    name: str,
    vers: str,
    cksum: str,
    ctx: CargoContext,
    limits: Limits,
    *,
    searched: tuple[str, ...],
    t0: float,
    deadline: float,
    mismatch: tuple[str, str] | None,
    too_big: str | None,
    stale: str | None,
) -> CrateContents:
    """Why no file with the requested sha256 was listed: the most telling reason first."""
    elapsed = time.monotonic() - t0
    if mismatch is None and stale is not None:
        return CrateContents(
            name,
            vers,
            cksum,
            False,
            f"a .crate for this version ({escape_text(stale, 300)}) was written before the "
            "requesting process started, and the requester is not a verified cargo process, "
            "so it is not taken for this request's contents",
            searched=searched,
            elapsed=elapsed,
        )
    if mismatch is not None:
        p, actual = mismatch
        reason = (
            f"the packaged file's sha256 ({actual[:16]}…) differs from the checksum cargo asks "
            "to sign: the .crate was changed after packaging, or the upload is not this file"
        )
        return CrateContents(
            name,
            vers,
            cksum,
            False,
            reason,
            path=p,
            actual_sha256=actual,
            searched=searched,
            elapsed=elapsed,
        )
    if too_big is not None:
        reason = f"the packaged file is larger than {human_size(limits.max_crate_bytes)}"
        return CrateContents(
            name, vers, cksum, False, reason, path=too_big, searched=searched, elapsed=elapsed
        )
    if time.monotonic() > deadline:
        reason = "looking for the packaged file took too long"
    elif not ctx.cwd and not ctx.open_crates:
        reason = "cargo's working directory is unknown, so the packaged file cannot be found"
    else:
        reason = f"no packaged {name}-{vers}.crate was found (looked in {len(searched)} places)"
    return CrateContents(name, vers, cksum, False, reason, searched=searched, elapsed=elapsed)


def _with(result: CrateContents, searched: list[str], t0: float) -> CrateContents:
    return replace(result, searched=tuple(searched), elapsed=time.monotonic() - t0)


__all__ = [
    "DEFAULT_LIMITS",
    "ArchiveListing",
    "CrateContents",
    "FileEntry",
    "Limits",
    "ManifestInfo",
    "inspect_crate_bytes",
    "inspect_publish",
    "list_archive",
    "parse_manifest",
    "read_member",
]

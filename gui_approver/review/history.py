"""What changed since the last approved publish. Qt-free.

A local history (``platformdirs.user_data_dir("gui-approver")/history``, 0700) keeps, for
each *approved* publish: registry index URL, crate name, version, checksum, the file list
with each file's sha256 and size, the manifest facts that matter (build script,
proc-macro, description, license, repository) and a copy of the ``.crate`` itself. Copies
are bounded in total (``Settings.history_size_mb``, default 50 MB); the oldest entries go
first, superseded versions before the newest of each crate.

:func:`compare` tells which files were added, removed or changed between the previous
approved version and the one waiting for approval, and flags what deserves a second look:
a build script that did not exist before, a crate that becomes a proc-macro, a changed build
script, a new repository/license. Manifest files whose only difference is the version
number (``Cargo.toml``, ``Cargo.toml.orig``, ``Cargo.lock``) are listed apart, so a version
bump plus one edited file shows exactly that file. :func:`unified_diff` shows a changed text
file (bounded; binary files are marked as such).

Every entry is authenticated: an HMAC-SHA256 over its canonical JSON, made by the ``mac``
callable the service injects (its key lives in the keychain, see
:mod:`gui_approver.core.keys.history_mac`; this module never sees it). An entry whose MAC
does not verify (forged or edited by a same-user process, or written before entries were
authenticated) is treated as absent and counted, so the review can say
:data:`INTEGRITY_NOTE`. Without an injected ``mac`` a random per-instance key is used: the
history then trusts only what this process recorded.

All inputs are data (:class:`~gui_approver.review.contents.CrateContents` of a verified crate,
:class:`HistoryEntry`); nothing here shows anything.
"""

from __future__ import annotations

import contextlib
import difflib
import hashlib
import hmac
import json
import re
import secrets
import threading
import time
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Final

from gui_approver.fsutil import atomic_write as _atomic_write
from gui_approver.review.contents import CrateContents, FileEntry, MiB, read_member
from gui_approver.review.locate import safe_read
from gui_approver.review.text import escape_text, human_size

FORMAT: Final = 2  # 2: authenticated with "mac"
INTEGRITY_NOTE: Final = (
    "a history entry failed its integrity check and was ignored (it was changed or written "
    "by something other than gui-approver); the comparison below does not use it"
)
_MAC_CONTEXT: Final = b"gui-approver history entry v2\0"

#: ``mac(data) -> bytes``: HMAC with a key the history never sees
Mac = Callable[[bytes], bytes]


def _ephemeral_mac() -> Mac:
    key = secrets.token_bytes(32)
    return lambda data: hmac.new(key, data, hashlib.sha256).digest()


def _mac_input(doc: dict[str, Any]) -> bytes:
    body = {k: v for k, v in doc.items() if k != "mac"}
    return _MAC_CONTEXT + json.dumps(
        body, sort_keys=True, separators=(",", ":"), ensure_ascii=True
    ).encode("ascii")


DEFAULT_MAX_BYTES: Final = 50 * 1_000_000
MAX_CRATE_COPY: Final = 64 * MiB
MAX_DIFF_INPUT: Final = 256 * 1024
MAX_DIFF_LINES: Final = 400
VERSION_FILES: Final = ("Cargo.toml", "Cargo.toml.orig", "Cargo.lock")

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
_VERS = re.compile(r"^[0-9A-Za-z.+-]{1,128}$")
_CKSUM = re.compile(r"^[0-9a-f]{64}$")


def default_root() -> Path:
    import platformdirs

    return Path(platformdirs.user_data_dir("gui-approver")) / "history"


@dataclass(frozen=True)
class HistoryEntry:
    registry: str  # index URL
    registry_name: str | None
    name: str
    vers: str
    cksum: str
    recorded_at: float  # time.time() of the approval
    files: tuple[FileEntry, ...]
    build: str | None = None
    proc_macro: bool = False
    description: str | None = None
    license: str | None = None
    repository: str | None = None
    crate_path: str | None = None  # the kept copy; None once evicted or when too large
    entry_path: str | None = None

    @property
    def has_build_script(self) -> bool:
        return bool(self.build) or any(f.path == "build.rs" for f in self.files)

    def crate_bytes(self) -> bytes | None:
        """The kept ``.crate``, only if it still hashes to ``cksum``."""
        if not self.crate_path:
            return None
        data = safe_read(self.crate_path, MAX_CRATE_COPY)
        if data is None or hashlib.sha256(data).hexdigest() != self.cksum:
            return None
        return data


@dataclass(frozen=True)
class FileChange:
    path: str
    old_size: int
    new_size: int
    old_sha256: str | None
    new_sha256: str | None

    def describe(self) -> str:
        return f"{self.path}  ({human_size(self.old_size)} -> {human_size(self.new_size)})"


@dataclass(frozen=True)
class Changes:
    previous_vers: str
    current_vers: str
    added: tuple[FileEntry, ...]
    removed: tuple[FileEntry, ...]
    changed: tuple[FileChange, ...]
    #: manifest/lock files whose only difference is the version number
    version_only: tuple[str, ...]
    unchanged: int
    flags: tuple[str, ...]  # things to look at twice, most serious first
    new_build_script: bool
    becomes_proc_macro: bool
    #: worth knowing but no warning (a license change): shown as information, so the ⚠
    #: flags keep meaning "look twice"
    notes: tuple[str, ...] = ()

    @property
    def changed_paths(self) -> tuple[str, ...]:
        return tuple(c.path for c in self.changed)

    def summary(self) -> str:
        parts = []
        if self.changed:
            parts.append(f"{len(self.changed)} changed")
        if self.added:
            parts.append(f"{len(self.added)} added")
        if self.removed:
            parts.append(f"{len(self.removed)} removed")
        what = ", ".join(parts) if parts else "no file changed"
        text = f"since {self.previous_vers} (last approved): {what}"
        if self.version_only:
            text += "; version number updated in " + ", ".join(self.version_only)
        return text

    def lines(self) -> list[str]:
        out = [self.summary()]
        out.extend(f"! {f}" for f in self.flags)
        out.extend(f"  {n}" for n in self.notes)
        out.extend(f"  changed  {c.describe()}" for c in self.changed)
        out.extend(f"  added    {f.describe()}" for f in self.added)
        out.extend(f"  removed  {f.describe()}" for f in self.removed)
        return out


# --------------------------------------------------------------------------------------------
# Storage


def _registry_key(index_url: str) -> str:
    return hashlib.sha256(index_url.encode("utf-8", "surrogatepass")).hexdigest()[:24]


def _entry_to_json(e: HistoryEntry) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "registry": e.registry,
        "registry_name": e.registry_name,
        "name": e.name,
        "vers": e.vers,
        "cksum": e.cksum,
        "recorded_at": e.recorded_at,
        "build": e.build,
        "proc_macro": e.proc_macro,
        "description": e.description,
        "license": e.license,
        "repository": e.repository,
        "files": [[f.path, f.size, f.kind, f.sha256, f.note] for f in e.files],
    }


def _opt_str(v: object) -> str | None:
    return v if isinstance(v, str) else None


def _entry_from_json(doc: Any, entry_path: Path) -> HistoryEntry | None:
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        return None
    try:
        files = tuple(
            FileEntry(str(p), int(size), str(kind), _opt_str(sha), _opt_str(note))
            for p, size, kind, sha, note in doc["files"]
        )
        crate = entry_path.with_suffix(".crate")
        return HistoryEntry(
            registry=str(doc["registry"]),
            registry_name=_opt_str(doc.get("registry_name")),
            name=str(doc["name"]),
            vers=str(doc["vers"]),
            cksum=str(doc["cksum"]),
            recorded_at=float(doc["recorded_at"]),
            files=files,
            build=_opt_str(doc.get("build")),
            proc_macro=doc.get("proc_macro") is True,
            description=_opt_str(doc.get("description")),
            license=_opt_str(doc.get("license")),
            repository=_opt_str(doc.get("repository")),
            crate_path=str(crate) if crate.is_file() else None,
            entry_path=str(entry_path),
        )
    except (KeyError, TypeError, ValueError):
        return None


class History:
    """The approved-publish history. Thread-safe; one app instance writes it."""

    def __init__(
        self,
        root: Path | None = None,
        max_bytes: int = DEFAULT_MAX_BYTES,
        *,
        mac: Mac | None = None,
    ) -> None:
        self.root = Path(root) if root is not None else default_root()
        self.max_bytes = max(0, int(max_bytes))
        self._mac = mac if mac is not None else _ephemeral_mac()
        self._lock = threading.Lock()

    @classmethod
    def from_settings(
        cls, history_size_mb: float, root: Path | None = None, *, mac: Mac | None = None
    ) -> History:
        return cls(root, int(history_size_mb * 1_000_000), mac=mac)

    def _authentic(self, doc: object) -> bool:
        if not isinstance(doc, dict) or not isinstance(doc.get("mac"), str):
            return False
        try:
            expected = self._mac(_mac_input(doc)).hex()
        except Exception:  # noqa: BLE001 - no key (keychain unusable): nothing is trusted
            return False
        return hmac.compare_digest(expected, doc["mac"])

    def _crate_dir(self, index_url: str, name: str) -> Path:
        if not _NAME.match(name):
            raise ValueError(f"invalid crate name {name[:80]!r}")
        return self.root / _registry_key(index_url) / name.lower()

    def record_approved(
        self,
        registry: str,
        contents: CrateContents,
        *,
        registry_name: str | None = None,
        now: float | None = None,
    ) -> HistoryEntry:
        """Record an approved publish of verified ``contents``. Raises ValueError when the
        contents are not verified (nothing unverified is ever recorded) and OSError when the
        history cannot be written."""
        if not contents.listing_verified or contents.listing is None or contents.data is None:
            # (a listing cargo may unpack differently is no baseline for later comparisons)
            raise ValueError("only verified contents can be recorded")
        if hashlib.sha256(contents.data).hexdigest() != contents.cksum:
            raise ValueError("the contents do not hash to their checksum")
        if not _VERS.match(contents.vers) or not _CKSUM.match(contents.cksum):
            raise ValueError("invalid version or checksum")
        m = contents.listing.manifest
        build = m.build if m is not None else None
        if build is None and any(f.path == "build.rs" for f in contents.listing.files):
            build = "build.rs"
        with self._lock:
            d = self._crate_dir(registry, contents.name)
            d.mkdir(parents=True, exist_ok=True, mode=0o700)
            with contextlib.suppress(OSError):
                self.root.chmod(0o700)
            stem = f"{contents.vers}_{contents.cksum}"
            entry_path = d / f"{stem}.json"
            crate_path = d / f"{stem}.crate"
            keep_copy = len(contents.data) <= self.max_bytes
            if keep_copy:
                _atomic_write(crate_path, contents.data)
            entry = HistoryEntry(
                registry=registry,
                registry_name=registry_name,
                name=contents.name,
                vers=contents.vers,
                cksum=contents.cksum,
                recorded_at=time.time() if now is None else now,
                files=contents.listing.files,
                build=build,
                proc_macro=bool(m and m.proc_macro),
                description=m.description if m else None,
                license=m.license if m else None,
                repository=m.repository if m else None,
                crate_path=str(crate_path) if keep_copy else None,
                entry_path=str(entry_path),
            )
            doc = _entry_to_json(entry)
            doc["mac"] = self._mac(_mac_input(doc)).hex()
            data = json.dumps(doc, separators=(",", ":")).encode()
            _atomic_write(entry_path, data)
            self._evict(keep=entry_path)
            if keep_copy and not crate_path.exists():
                entry = replace(entry, crate_path=None)
        return entry

    def entries(self, registry: str | None = None, name: str | None = None) -> list[HistoryEntry]:
        """Recorded, authentic entries (optionally of one registry/crate), oldest first."""
        return self.scan(registry, name)[0]

    def scan(
        self, registry: str | None = None, name: str | None = None
    ) -> tuple[list[HistoryEntry], int]:
        """:meth:`entries`, and how many entry files failed their integrity check."""
        rejected = 0
        if registry is not None and name is not None:
            dirs = [self._crate_dir(registry, name)]
        elif registry is not None:
            dirs = sorted(p for p in (self.root / _registry_key(registry)).glob("*") if p.is_dir())
        else:
            dirs = sorted(p for p in self.root.glob("*/*") if p.is_dir())
        out: list[HistoryEntry] = []
        for d in dirs:
            for path in d.glob("*.json"):
                raw = safe_read(str(path), 16 * MiB)
                if raw is None:
                    rejected += 1
                    continue
                try:
                    doc = json.loads(raw)
                except ValueError:
                    rejected += 1
                    continue
                if not self._authentic(doc):
                    rejected += 1
                    continue
                entry = _entry_from_json(doc, path)
                if entry is None or (registry is not None and entry.registry != registry):
                    continue
                if name is not None and entry.name.lower() != name.lower():
                    continue
                out.append(entry)
        out.sort(key=lambda e: e.recorded_at)
        return out, rejected

    def previous(
        self, registry: str, name: str, *, exclude_cksum: str | None = None
    ) -> HistoryEntry | None:
        """The most recently approved publish of ``name`` to ``registry`` (optionally not the
        one with ``exclude_cksum``), or None."""
        return self.previous_checked(registry, name, exclude_cksum=exclude_cksum)[0]

    def previous_checked(
        self, registry: str, name: str, *, exclude_cksum: str | None = None
    ) -> tuple[HistoryEntry | None, int]:
        """:meth:`previous`, and how many entries of this crate failed their integrity
        check (and were ignored)."""
        try:
            entries, rejected = self.scan(registry, name)
        except (OSError, ValueError):
            return None, 0
        found = [e for e in entries if e.cksum != exclude_cksum]
        return (found[-1] if found else None), rejected

    def total_bytes(self) -> int:
        total = 0
        for p in self.root.glob("*/*/*"):
            with contextlib.suppress(OSError):
                total += p.stat().st_size
        return total

    def _evict(self, keep: Path) -> None:
        total = self.total_bytes()
        if total <= self.max_bytes:
            return
        entries = self.entries()
        newest: dict[tuple[str, str], float] = {}
        for e in entries:
            key = (e.registry, e.name.lower())
            newest[key] = max(newest.get(key, 0.0), e.recorded_at)
        # superseded versions first, then by age
        order = sorted(
            entries,
            key=lambda e: (newest[(e.registry, e.name.lower())] == e.recorded_at, e.recorded_at),
        )
        for e in order:
            if total <= self.max_bytes:
                break
            if e.entry_path is None or Path(e.entry_path) == keep:
                continue
            for p in (Path(e.entry_path), Path(e.entry_path).with_suffix(".crate")):
                total -= _unlink(p)
        if total > self.max_bytes:
            # Only the new entry is left and it is too big with its copy: keep the metadata.
            _unlink(keep.with_suffix(".crate"))


def _unlink(path: Path) -> int:
    """Remove ``path``; return the bytes freed (0 if it was not there)."""
    try:
        size = path.stat().st_size
        path.unlink()
    except OSError:
        return 0
    return size


# --------------------------------------------------------------------------------------------
# Comparing


Snapshot = HistoryEntry | CrateContents


def _files(x: Snapshot) -> tuple[FileEntry, ...]:
    return x.files


def _bytes(x: Snapshot) -> bytes | None:
    if isinstance(x, CrateContents):
        return x.data if x.verified else None
    return x.crate_bytes()


def _has_build_script(x: Snapshot) -> bool:
    if isinstance(x, HistoryEntry):
        return x.has_build_script
    return bool(x.verified and x.listing is not None and x.listing.has_build_script)


def _proc_macro(x: Snapshot) -> bool:
    if isinstance(x, HistoryEntry):
        return x.proc_macro
    return bool(x.manifest and x.manifest.proc_macro)


def _field(x: Snapshot, name: str) -> str | None:
    if isinstance(x, HistoryEntry):
        value = getattr(x, name)
    else:
        value = getattr(x.manifest, name, None) if x.manifest else None
    return value if isinstance(value, str) else None


def _member(x: Snapshot, path: str, max_bytes: int) -> bytes | None:
    data = _bytes(x)
    if data is None:
        return None
    return read_member(data, path, name=x.name, vers=x.vers, max_bytes=max_bytes)


def _without_version(path: str, data: bytes, name: str) -> Any:
    """The TOML document with this crate's own version removed (None if unparsable)."""
    try:
        doc = tomllib.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError, RecursionError, ValueError):
        return None
    if path == "Cargo.lock":
        for pkg in doc.get("package", []) if isinstance(doc.get("package"), list) else []:
            if isinstance(pkg, dict) and pkg.get("name") == name and "source" not in pkg:
                pkg.pop("version", None)
        return doc
    pkg = doc.get("package")
    if isinstance(pkg, dict):
        pkg.pop("version", None)
    return doc


def _version_only(previous: Snapshot, current: Snapshot, path: str) -> bool:
    old = _member(previous, path, MiB)
    new = _member(current, path, MiB)
    if old is None or new is None:
        return False
    a = _without_version(path, old, previous.name)
    b = _without_version(path, new, current.name)
    return a is not None and a == b


def _key(f: FileEntry) -> tuple[str, str | None, int, str | None]:
    return (f.kind, f.sha256, f.size, f.note)


def compare(previous: Snapshot, current: Snapshot) -> Changes:
    """Files added, removed and changed from ``previous`` to ``current``, and flags."""
    old = {f.path: f for f in _files(previous)}
    new = {f.path: f for f in _files(current)}
    added = tuple(new[p] for p in sorted(new.keys() - old.keys()))
    removed = tuple(old[p] for p in sorted(old.keys() - new.keys()))
    changed: list[FileChange] = []
    version_only: list[str] = []
    unchanged = 0
    for p in sorted(old.keys() & new.keys()):
        a, b = old[p], new[p]
        if _key(a) == _key(b):
            unchanged += 1
            continue
        if (
            p in VERSION_FILES
            and previous.vers != current.vers
            and _version_only(previous, current, p)
        ):
            version_only.append(p)
            continue
        changed.append(FileChange(p, a.size, b.size, a.sha256, b.sha256))
    flags: list[str] = []
    new_build = _has_build_script(current) and not _has_build_script(previous)
    if new_build:
        flags.append(
            "NEW build script (build.rs): it will run on the machine of everyone who builds "
            "this crate; it was not in the last approved version"
        )
    becomes_pm = _proc_macro(current) and not _proc_macro(previous)
    if becomes_pm:
        flags.append(
            "the crate BECOMES A PROC-MACRO ([lib] proc-macro = true): its code will run "
            "inside the compiler of everyone who uses it"
        )
    if not new_build and any(c.path == "build.rs" for c in changed):
        flags.append("the build script (build.rs) changed")
    if version_key(current.vers) < version_key(previous.vers):
        flags.append(
            f"the version GOES BACKWARDS: {current.vers} is older than {previous.vers}, the "
            "last approved version (fine for a backport; unexpected otherwise)"
        )
    a_repo, b_repo = _field(previous, "repository"), _field(current, "repository")
    if a_repo != b_repo:
        flags.append(f"the repository changed from {a_repo or '(none)'} to {b_repo or '(none)'}")
    notes: list[str] = []
    a_lic, b_lic = _field(previous, "license"), _field(current, "license")
    if a_lic != b_lic:
        notes.append(f"license: {a_lic or '(none)'} before, {b_lic or '(none)'} now")
    return Changes(
        previous_vers=previous.vers,
        current_vers=current.vers,
        added=added,
        removed=removed,
        changed=tuple(changed),
        version_only=tuple(version_only),
        unchanged=unchanged,
        flags=tuple(flags),
        new_build_script=new_build,
        becomes_proc_macro=becomes_pm,
        notes=tuple(notes),
    )


def version_key(vers: str) -> tuple[tuple[int, ...], int, tuple[tuple[int, int | str], ...]]:
    """A SemVer 2.0 ordering key (build metadata ignored; a pre-release sorts before its
    release). Anything unparsable sorts as 0.0.0."""
    core, _, pre = vers.split("+", 1)[0].partition("-")
    try:
        nums = tuple(int(p) for p in core.split("."))
    except ValueError:
        nums = (0, 0, 0)
    ids = tuple((0, int(p)) if p.isdigit() else (1, p) for p in pre.split(".")) if pre else ()
    return nums, 0 if pre else 1, ids


def _is_binary(data: bytes) -> bool:
    if b"\0" in data:
        return True
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return True
    return False


def _diff_line(line: str) -> str:
    return escape_text(line.rstrip("\n").replace("\t", "    "), 2000)


def unified_diff(
    previous: Snapshot,
    current: Snapshot,
    path: str,
    *,
    max_bytes: int = MAX_DIFF_INPUT,
    max_lines: int = MAX_DIFF_LINES,
) -> str:
    """A unified diff of ``path`` between the two versions (a missing side is empty).
    Binary files and files over ``max_bytes`` are named, not diffed; at most ``max_lines``
    lines; control characters escaped. Never raises."""
    try:
        return _unified_diff(previous, current, path, max_bytes, max_lines)
    except Exception as exc:  # noqa: BLE001 - display only
        return f"(no diff: {type(exc).__name__})"


def _unified_diff(
    previous: Snapshot, current: Snapshot, path: str, max_bytes: int, max_lines: int
) -> str:
    old_entry = {f.path: f for f in _files(previous)}.get(path)
    new_entry = {f.path: f for f in _files(current)}.get(path)
    a_name = f"a/{path}" if old_entry else "/dev/null"
    b_name = f"b/{path}" if new_entry else "/dev/null"
    for entry in (old_entry, new_entry):
        if entry is not None and entry.kind != "file":
            return f"{path} is a {entry.kind}, not a regular file; not diffed"
        if entry is not None and entry.size > max_bytes:
            return f"{path} is too large to diff ({human_size(entry.size)})"
    old = b""
    new = b""
    if old_entry is not None:
        got = _member(previous, path, max_bytes)
        if got is None:
            return (
                f"the copy of {previous.vers} is no longer kept (or unreadable); "
                f"{path} cannot be diffed"
            )
        old = got
    if new_entry is not None:
        got = _member(current, path, max_bytes)
        if got is None:
            return f"{path} could not be read from {current.vers}"
        new = got
    if _is_binary(old) or _is_binary(new):
        return f"Binary files {a_name} and {b_name} differ"
    lines = list(
        difflib.unified_diff(
            old.decode("utf-8").splitlines(keepends=True),
            new.decode("utf-8").splitlines(keepends=True),
            fromfile=f"{a_name} ({previous.vers})",
            tofile=f"{b_name} ({current.vers})",
            n=3,
        )
    )
    out = [_diff_line(x) for x in lines[:max_lines]]
    if len(lines) > max_lines:
        out.append(f"… diff truncated ({len(lines) - max_lines} more lines)")
    return "\n".join(out) + ("\n" if out else "")


__all__ = [
    "INTEGRITY_NOTE",
    "Changes",
    "FileChange",
    "History",
    "HistoryEntry",
    "compare",
    "default_root",
    "unified_diff",
]

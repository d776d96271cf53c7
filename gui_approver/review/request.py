"""Everything the approval dialog can show about a request, gathered within a deadline; and
the workspace batch (``cargo publish --workspace``). Qt-free.

:class:`Inspector` is the one entry point for the service: ``inspector.review(request,
provenance, peer_pid)`` returns a frozen :class:`RequestReview` (who asked, what exactly is
in the ``.crate``, what changed since the last approved version) in a worker thread bounded by
``timeout``; it never raises and never blocks longer. Whatever could not be established is
said in the review ("could not be verified: ..."), never silently passed over.

``cargo publish --workspace`` packages every crate first and then asks once per crate. When
the first publish request of a cargo run arrives, :class:`WorkspaceReview` finds the other
``.crate`` files that run packaged (the ones cargo holds open, or else fresh ones next to the
first), hashes and lists each. If the user approves "all listed", :class:`BatchApproval`
remembers exactly ``(index URL, name, version, cksum)`` for a bounded window on a monotonic
clock; a later request matches only if all four are equal (and, when known, it comes from the
same cargo process), and each entry is consumed by its match. Anything else gets the normal
dialog. ``end()`` forgets everything (lock, quit).
"""

from __future__ import annotations

import hashlib
import os
import re
import stat
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from typing import Final, NamedTuple

import psutil

from gui_approver.client.framing import Provenance
from gui_approver.client.protocol import CredentialRequest, Get, Owners, Publish
from gui_approver.review.contents import (
    DEFAULT_LIMITS,
    CrateContents,
    Limits,
    inspect_crate_bytes,
    inspect_publish,
)
from gui_approver.review.history import (
    INTEGRITY_NOTE,
    Changes,
    History,
    HistoryEntry,
    compare,
    unified_diff,
)
from gui_approver.review.locate import CargoContext, safe_read
from gui_approver.review.requester import RequesterInfo, resolve_requester

#: The owners operation carries no details (cargo's protocol does not say who or what).
OWNERS_NOTE: Final = (
    "Cargo does not tell gui-approver who is being added or removed, or whether this is only "
    "a listing of the owners. Approve only if you just ran `cargo owner` yourself."
)

DEFAULT_TIMEOUT: Final = 0.75
DEFAULT_BATCH_WINDOW: Final = 300.0
MAX_DIFFS: Final = 10

RunKey = tuple[int, float]  # (cargo pid, cargo start time)


def run_key(requester: RequesterInfo | None) -> RunKey | None:
    """Identifies one cargo process (pid plus start time, so a reused pid differs)."""
    if requester is None or requester.cargo is None or requester.cargo.role != "cargo":
        return None
    if requester.cargo.started is None:
        return None
    return (requester.cargo.pid, requester.cargo.started)


def run_key_for_pid(bridge_pid: int | None) -> RunKey | None:
    """:func:`run_key` without a full :func:`resolve_requester` (well under a millisecond):
    the cargo process that started the bridge ``bridge_pid``, or None. Never raises."""
    if bridge_pid is None or bridge_pid <= 0:
        return None
    try:
        parent = psutil.Process(bridge_pid).parent()
        if parent is None or parent.pid <= 1:
            return None
        with parent.oneshot():
            if parent.name() not in ("cargo", "cargo.exe"):
                return None
            return (parent.pid, parent.create_time())
    except Exception:  # noqa: BLE001 - no run known: batch entries bound to a run won't match
        return None


# --------------------------------------------------------------------------------------------
# Workspace batch


@dataclass(frozen=True)
class Candidate:
    """One crate packaged by the same cargo run, hashed and listed by us."""

    name: str
    vers: str
    cksum: str  # sha256 we computed
    path: str
    contents: CrateContents  # verified against ``cksum`` (i.e. lists exactly these bytes)
    #: why this crate deserves its own look (set by :meth:`Inspector.review`): not verified,
    #: a new build script, a proc-macro flip, files changed since its last approved
    #: version, ... A flagged crate is never covered by "Approve all listed".
    flags: tuple[str, ...] = ()
    changes: Changes | None = None  # against its last approved version, when on record

    def describe(self) -> str:
        text = f"{self.name} {self.vers}  sha256 {self.cksum}  — {self.contents.summary()}"
        if self.flags:
            text += "  [own dialog: " + "; ".join(self.flags) + "]"
        return text


def candidate_flags(
    candidate: Candidate, previous: HistoryEntry | None, rejected: int = 0
) -> Candidate:
    """``candidate`` with its own flags and changes (against ``previous``, its last approved
    version, if any; ``rejected``: history entries of it that failed their integrity check).
    """
    flags: list[str] = []
    c = candidate.contents
    changes: Changes | None = None
    if not c.listing_verified:
        flags.append(f"contents not verified: {c.why_not_verified or c.reason}")
    if rejected:
        flags.append(INTEGRITY_NOTE)
    if c.verified and previous is not None:
        changes = compare(previous, c)
        flags.extend(changes.flags)
        if changes.changed or changes.added or changes.removed:
            flags.append(changes.summary())
    elif c.verified and c.listing is not None:
        m = c.listing.manifest
        if c.listing.has_build_script:
            flags.append("has a build script, and no approved version of it is on record")
        if m is not None and m.proc_macro:
            flags.append("a proc-macro crate, and no approved version of it is on record")
    return replace(candidate, flags=tuple(dict.fromkeys(flags)), changes=changes)


class BatchKey(NamedTuple):
    index_url: str
    name: str
    vers: str
    cksum: str


_VERS_START = re.compile(r"^[0-9]+\.[0-9]+\.[0-9]+")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")


def split_crate_filename(filename: str) -> tuple[str, str] | None:
    """``foo-bar-1.2.3-rc.1.crate`` -> ("foo-bar", "1.2.3-rc.1")."""
    if not filename.endswith(".crate"):
        return None
    stem = filename[: -len(".crate")]
    for i, ch in enumerate(stem):
        if ch == "-" and _NAME.match(stem[:i]) and _VERS_START.match(stem[i + 1 :]):
            return stem[:i], stem[i + 1 :]
    return None


class BatchApproval:
    """Exact ``(index URL, name, vers, cksum)`` tuples the user approved as a list."""

    def __init__(
        self,
        window: float = DEFAULT_BATCH_WINDOW,
        *,
        clock: Callable[[], float] = time.monotonic,
        max_items: int = 256,
    ) -> None:
        self.window = window
        self.clock = clock
        self.max_items = max_items
        self._items: dict[BatchKey, tuple[float, RunKey | None, Candidate | None]] = {}
        self._lock = threading.Lock()

    def approve(
        self,
        index_url: str,
        items: Iterable[Candidate | tuple[str, str, str]],
        *,
        run: RunKey | None = None,
    ) -> tuple[BatchKey, ...]:
        """Remember ``items`` (candidates or ``(name, vers, cksum)``) for ``window`` seconds."""
        expires = self.clock() + self.window
        entries: list[tuple[BatchKey, Candidate | None]] = []
        for item in items:
            if isinstance(item, Candidate):
                entries.append((BatchKey(index_url, item.name, item.vers, item.cksum), item))
            else:
                name, vers, cksum = item
                entries.append((BatchKey(index_url, name, vers, cksum), None))
        with self._lock:
            self._expire()
            entries = entries[: max(0, self.max_items - len(self._items))]
            for key, candidate in entries:
                self._items[key] = (expires, run, candidate)
        return tuple(key for key, _ in entries)

    def matches(self, request: Get, *, run: RunKey | None = None) -> bool:
        """True only for a publish request equal to a remembered tuple (consumed). If the
        tuple was approved for a cargo run, ``run`` must be that run."""
        return self.take(request, run=run) is not None

    def take(
        self, request: Get, *, run: RunKey | None = None
    ) -> tuple[BatchKey, Candidate | None] | None:
        """Like :meth:`matches`, returning the consumed key and its candidate (for the
        history) instead of True."""
        if not isinstance(request.operation, Publish):
            return None
        op = request.operation
        key = BatchKey(request.registry.index_url, op.name, op.vers, op.cksum)
        with self._lock:
            self._expire()
            found = self._items.get(key)
            if found is None:
                return None
            _expires, approved_run, candidate = found
            if approved_run is not None and run != approved_run:
                return None
            del self._items[key]
            return key, candidate

    def pending(self) -> tuple[BatchKey, ...]:
        with self._lock:
            self._expire()
            return tuple(self._items)

    def end(self) -> None:
        """Forget every remembered tuple (screen locked, app quitting, user cancelled)."""
        with self._lock:
            self._items.clear()

    def _expire(self) -> None:
        now = self.clock()
        for key in [k for k, (exp, _run, _c) in self._items.items() if exp <= now]:
            del self._items[key]


class WorkspaceReview:
    """Finds the other crates a ``cargo publish --workspace`` run packaged."""

    def __init__(
        self,
        batch: BatchApproval | None = None,
        *,
        freshness: float = DEFAULT_BATCH_WINDOW,
        max_candidates: int = 64,
        limits: Limits = DEFAULT_LIMITS,
        wall_clock: Callable[[], float] = time.time,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.batch = batch if batch is not None else BatchApproval()
        self.freshness = freshness
        self.max_candidates = max_candidates
        self.limits = limits
        self.wall_clock = wall_clock
        self.clock = clock
        self._runs: OrderedDict[RunKey, float] = OrderedDict()
        self._lock = threading.Lock()

    def _first_of_run(self, run: RunKey | None) -> bool:
        if run is None:
            return True
        now = self.clock()
        with self._lock:
            for key in [k for k, t in self._runs.items() if now - t > self.freshness]:
                del self._runs[key]
            if run in self._runs:
                return False
            self._runs[run] = now
            while len(self._runs) > 256:
                self._runs.popitem(last=False)
            return True

    def candidates(
        self,
        request: Get,
        requester: RequesterInfo | None,
        contents: CrateContents,
        *,
        deadline: float | None = None,
    ) -> tuple[Candidate, ...]:
        """For the first publish request of a cargo run with a verified ``.crate``: every
        crate that run packaged (this one first), when there is more than one; else ``()``.
        Never raises."""
        try:
            return self._candidates(request, requester, contents, deadline)
        except Exception:  # noqa: BLE001 - a batch is a convenience; without it: one dialog each
            return ()

    def _candidates(
        self,
        request: Get,
        requester: RequesterInfo | None,
        contents: CrateContents,
        deadline: float | None,
    ) -> tuple[Candidate, ...]:
        if not isinstance(request.operation, Publish):
            return ()
        if not contents.listing_verified or contents.path is None:
            return ()
        if not self._first_of_run(run_key(requester)):
            return ()
        if deadline is None:
            deadline = time.monotonic() + 2.0
        ctx = requester.context if requester is not None else None
        paths = self._paths(contents.path, ctx)
        this = Candidate(contents.name, contents.vers, contents.cksum, contents.path, contents)
        out = [this]
        seen = {(contents.name, contents.vers)}
        for p in paths:
            if len(out) >= self.max_candidates or time.monotonic() > deadline:
                break
            parsed = split_crate_filename(os.path.basename(p))
            if parsed is None or parsed in seen:
                continue
            data = safe_read(p, self.limits.max_crate_bytes)
            if data is None or len(data) > self.limits.max_crate_bytes:
                continue
            name, vers = parsed
            cksum = hashlib.sha256(data).hexdigest()
            listed = inspect_crate_bytes(
                data,
                name=name,
                vers=vers,
                cksum=cksum,
                path=p,
                limits=self.limits,
                deadline=deadline,
            )
            m = listed.manifest
            if m is None or m.name != name or m.version != vers:
                continue  # not a crate this file name says it is: leave it to its own dialog
            seen.add(parsed)
            out.append(Candidate(name, vers, cksum, p, listed))
        if len(out) < 2:
            return ()
        return (out[0], *sorted(out[1:], key=lambda c: (c.name, c.vers)))

    def _paths(self, first: str, ctx: CargoContext | None) -> list[str]:
        if ctx is not None and ctx.open_crates:
            # Measured with cargo 1.95: during `publish --workspace` cargo keeps every
            # packaged .crate of the run open until its upload.
            return [p for p in ctx.open_crates if p != first]
        directory = os.path.dirname(first)
        try:
            first_mtime = os.stat(first).st_mtime
        except OSError:
            return []
        now = self.wall_clock()
        out = []
        try:
            names = sorted(os.listdir(directory))[: 4 * self.max_candidates]
        except OSError:
            return []
        for fname in names:
            p = os.path.join(directory, fname)
            if p == first or not fname.endswith(".crate"):
                continue
            try:
                st = os.lstat(p)
            except OSError:
                continue
            if not stat.S_ISREG(st.st_mode):
                continue
            if now - st.st_mtime > self.freshness or abs(st.st_mtime - first_mtime) > (
                self.freshness
            ):
                continue
            out.append(p)
        return out

    def approve_all(
        self,
        request: Get,
        candidates: Iterable[Candidate],
        requester: RequesterInfo | None = None,
    ) -> tuple[BatchKey, ...]:
        """The user approved every listed crate: remember all but the one being answered
        (that one is approved by the dialog itself) and the flagged ones (each of those gets
        its own dialog)."""
        others = [
            c
            for c in candidates
            if (c.name, c.vers, c.cksum) != (request.name, request.vers, request.cksum)
            and not c.flags
            and c.contents.listing_verified
        ]
        return self.batch.approve(request.registry.index_url, others, run=run_key(requester))

    def end(self) -> None:
        self.batch.end()
        with self._lock:
            self._runs.clear()


# --------------------------------------------------------------------------------------------
# The review of one request


@dataclass(frozen=True)
class Shown:
    """The fields of a request the dialog shows, whatever its kind (``None``: not part of
    this kind of request). ``op`` is cargo's name: ``publish``, ``owners``, ``login``, ..."""

    op: str
    name: str | None = None
    vers: str | None = None
    cksum: str | None = None

    @property
    def is_owners(self) -> bool:
        return self.op == "owners"


def shown(request: CredentialRequest) -> Shown:
    match request:
        case Get(operation=op):
            return Shown(op.op, request.name, request.vers, request.cksum)
        case _:
            return Shown(request.kind)


@dataclass(frozen=True)
class RequestReview:
    request: CredentialRequest
    requester: RequesterInfo
    contents: CrateContents | None = None  # publish only
    previous: HistoryEntry | None = None
    changes: Changes | None = None
    diffs: tuple[tuple[str, str], ...] = ()  # (path, unified diff) of changed/added files
    batch: tuple[Candidate, ...] = ()  # the whole workspace run, this crate first
    notes: tuple[str, ...] = ()
    elapsed: float = 0.0
    timed_out: bool = False

    @property
    def verified(self) -> bool:
        """Contents verified (publish) and requester verified."""
        contents_ok = self.contents is None or self.contents.listing_verified
        return contents_ok and self.requester.verified

    @property
    def flags(self) -> tuple[str, ...]:
        return self.changes.flags if self.changes is not None else ()

    def lines(self) -> list[str]:
        """What the dialog would show, as plain text."""
        out = [f"requested by: {self.requester.summary}"]
        out.extend(f"  ! {w}" for w in self.requester.warnings)
        if self.contents is not None:
            out.append(f"contents: {self.contents.summary()}")
            out.extend("  " + line for line in self.contents.lines()[1:])
        if self.changes is not None:
            out.extend(self.changes.lines())
        elif self.contents is not None and self.contents.verified:
            out.append("no earlier approved version of this crate is on record")
        for path, diff in self.diffs:
            out.append(f"--- diff of {path} ---")
            out.extend(diff.rstrip("\n").split("\n"))
        if self.batch:
            out.append(f"this cargo run packaged {len(self.batch)} crates:")
            out.extend("  " + c.describe() for c in self.batch)
        out.extend(self.notes)
        return out

    def text(self) -> str:
        return "\n".join(self.lines())


class Inspector:
    """Builds :class:`RequestReview` objects for the service, within a deadline."""

    def __init__(
        self,
        history: History | None = None,
        workspace: WorkspaceReview | None = None,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        max_concurrent: int = 4,
        limits: Limits = DEFAULT_LIMITS,
    ) -> None:
        self.history = history
        self.workspace = workspace
        self.timeout = timeout
        self.limits = limits
        self._slots = threading.BoundedSemaphore(max_concurrent)

    def review(
        self,
        request: CredentialRequest,
        provenance: Provenance,
        peer_pid: int | None = None,
        *,
        timeout: float | None = None,
    ) -> RequestReview:
        """Never raises; returns within ``timeout`` (plus thread start-up)."""
        t0 = time.monotonic()
        limit = self.timeout if timeout is None else timeout
        if not self._slots.acquire(blocking=False):
            return self._failed(
                request,
                provenance,
                peer_pid,
                t0,
                "too many inspections are still running",
                timed_out=True,
            )
        box: list[RequestReview] = []

        def work() -> None:
            try:
                box.append(self._build(request, provenance, peer_pid, t0 + limit * 0.9))
            except Exception as exc:  # noqa: BLE001 - reported below as "could not verify"
                box.append(
                    self._failed(
                        request, provenance, peer_pid, t0, f"internal error ({type(exc).__name__})"
                    )
                )
            finally:
                self._slots.release()

        worker = threading.Thread(target=work, name="gui-approver-inspect", daemon=True)
        worker.start()
        worker.join(limit)
        if box:
            return replace(box[0], elapsed=time.monotonic() - t0)
        return self._failed(
            request,
            provenance,
            peer_pid,
            t0,
            f"inspection did not finish within {limit * 1000:.0f} ms",
            timed_out=True,
        )

    def _failed(
        self,
        request: CredentialRequest,
        provenance: Provenance,
        peer_pid: int | None,
        t0: float,
        reason: str,
        *,
        timed_out: bool = False,
    ) -> RequestReview:
        requester = RequesterInfo(
            verified=False,
            summary=f"requester could not be verified: {reason}",
            pid=peer_pid or provenance.pid,
            pid_source="kernel" if peer_pid else "none",
        )
        contents = None
        if isinstance(request, Get) and isinstance(request.operation, Publish):
            op = request.operation
            contents = CrateContents(op.name, op.vers, op.cksum, False, reason)
        return RequestReview(
            request, requester, contents, timed_out=timed_out, elapsed=time.monotonic() - t0
        )

    def _build(
        self,
        request: CredentialRequest,
        provenance: Provenance,
        peer_pid: int | None,
        deadline: float,
    ) -> RequestReview:
        requester = resolve_requester(provenance, peer_pid)
        notes: list[str] = []
        if isinstance(request, Get) and isinstance(request.operation, Owners):
            notes.append(OWNERS_NOTE)
        if not isinstance(request, Get) or not isinstance(request.operation, Publish):
            return RequestReview(request, requester, notes=tuple(notes))
        op = request.operation
        ctx = requester.context
        if ctx is None:
            ctx = CargoContext(cwd=None)
        written_after: float | None = None
        if not requester.verified:
            # Not a verified cargo process: nothing it says (command line, environment, open
            # files) steers the lookup, and only a .crate written since the process that
            # started the bridge began could be its run's.
            ctx = CargoContext(cwd=ctx.cwd)
            started = [
                p.started
                for p in (requester.cargo, requester.bridge)
                if p is not None and p.started is not None
            ]
            written_after = started[0] if started else time.time()
        contents = inspect_publish(
            op.name,
            op.vers,
            op.cksum,
            ctx,
            limits=self.limits,
            timeout=max(0.0, deadline - time.monotonic()),
            written_after=written_after,
        )
        previous: HistoryEntry | None = None
        changes: Changes | None = None
        diffs: list[tuple[str, str]] = []
        if contents.verified and self.history is not None:
            previous, rejected = self.history.previous_checked(
                request.registry.index_url, op.name, exclude_cksum=op.cksum
            )
            if rejected:
                notes.append(INTEGRITY_NOTE)
            if previous is not None:
                changes = compare(previous, contents)
                paths = [p for p in ("build.rs",) if any(f.path == p for f in changes.added)]
                paths += list(changes.changed_paths) + [f.path for f in changes.added]
                for p in dict.fromkeys(paths):
                    if len(diffs) >= MAX_DIFFS or time.monotonic() > deadline:
                        break
                    diffs.append((p, unified_diff(previous, contents, p)))
        batch: tuple[Candidate, ...] = ()
        if self.workspace is not None and contents.verified:
            batch = self.workspace.candidates(request, requester, contents, deadline=deadline)
            batch = self._flag_batch(request, batch, deadline)
        return RequestReview(
            request, requester, contents, previous, changes, tuple(diffs), batch, tuple(notes)
        )

    def _flag_batch(
        self, request: CredentialRequest, batch: tuple[Candidate, ...], deadline: float
    ) -> tuple[Candidate, ...]:
        """Each listed crate with its own flags (the first is this request: its dialog shows
        its changes). A crate not compared in time is flagged, so it gets its own dialog."""
        out: list[Candidate] = []
        for i, c in enumerate(batch):
            if i == 0:
                out.append(c)
                continue
            if time.monotonic() > deadline:
                out.append(
                    replace(c, flags=("not compared with its last approved version in time",))
                )
                continue
            previous, rejected = None, 0
            if self.history is not None and c.contents.verified:
                previous, rejected = self.history.previous_checked(
                    request.registry.index_url, c.name, exclude_cksum=c.cksum
                )
            out.append(candidate_flags(c, previous, rejected))
        return tuple(out)

    def record_approved(self, review: RequestReview) -> HistoryEntry | None:
        """Add an approved, verified publish to the history. Never raises (a history that
        cannot be written loses a comparison later, nothing else)."""
        if self.history is None or review.contents is None or not review.contents.verified:
            return None
        try:
            return self.history.record_approved(
                review.request.registry.index_url,
                review.contents,
                registry_name=review.request.registry.name,
            )
        except Exception:  # noqa: BLE001
            return None

    def record_candidate(self, request: Get, candidate: Candidate | None) -> HistoryEntry | None:
        """Add a crate signed through the workspace batch to the history. Never raises."""
        if self.history is None or candidate is None or not candidate.contents.verified:
            return None
        if (candidate.name, candidate.vers, candidate.cksum) != (
            request.name,
            request.vers,
            request.cksum,
        ):
            return None
        try:
            return self.history.record_approved(
                request.registry.index_url,
                candidate.contents,
                registry_name=request.registry.name,
            )
        except Exception:  # noqa: BLE001
            return None


__all__ = [
    "OWNERS_NOTE",
    "BatchApproval",
    "BatchKey",
    "Candidate",
    "Inspector",
    "RequestReview",
    "WorkspaceReview",
    "candidate_flags",
    "run_key",
    "run_key_for_pid",
    "split_crate_filename",
]

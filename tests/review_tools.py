"""Reviews as the approval dialog shows them, for the dialog tests: crates inspected from
archives built in memory, their publish requests, earlier approved versions, and the dialog
itself shown offscreen."""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path
from typing import Any

import hostile_archives as h
from checks import as_get
from factories import request
from qt_tools import RecordingDialog

from gui_approver.client.framing import Provenance
from gui_approver.client.protocol import Get
from gui_approver.core.approval import ApprovalRequest
from gui_approver.review.contents import CrateContents, inspect_crate_bytes
from gui_approver.review.history import History, compare, unified_diff
from gui_approver.review.request import RequestReview
from gui_approver.review.requester import RequesterInfo

LOCAL = "sparse+http://127.0.0.1:8765/index/"
WHO = "cargo publish in ~/src/foo, started from bash in xterm"


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def contents(
    name: str = "foo", vers: str = "0.2.0", files: dict[str, bytes] | None = None, **kw: Any
) -> CrateContents:
    data = h.crate(name, vers, files, **kw)
    return inspect_crate_bytes(
        data, name=name, vers=vers, cksum=sha(data), path=f"/tmp/target/package/{name}-{vers}.crate"
    )


def request_for(c: CrateContents) -> Get:
    """cargo's publish request for the crate ``c``."""
    return as_get(request("publish", name=c.name, vers=c.vers, cksum=c.cksum, index_url=LOCAL))


def requester() -> RequesterInfo:
    return RequesterInfo(verified=True, summary=WHO, pid=4242, pid_source="kernel")


def review_for(c: CrateContents, **kw: Any) -> RequestReview:
    return RequestReview(request_for(c), requester(), c, **kw)


def changed_review(tmp_path: Path) -> RequestReview:
    """0.1.0 approved earlier; 0.2.0 changes lib.rs and adds a build script."""
    old = contents(vers="0.1.0", files={"src/lib.rs": b"pub fn answer() -> u32 { 42 }\n"})
    prev = History(tmp_path / "h").record_approved(LOCAL, old, registry_name="local")
    assert prev is not None
    new = contents(
        files={
            "src/lib.rs": b"pub fn answer() -> u32 { 43 }\n",
            "build.rs": b"fn main() { /* fetches things */ }\n",
        },
        build="build.rs",
    )
    ch = compare(prev, new)
    diffs = tuple((p, unified_diff(prev, new, p)) for p in ("build.rs", "src/lib.rs"))
    return review_for(new, previous=prev, changes=ch, diffs=diffs)


def show(qtbot: Any, review: RequestReview) -> RecordingDialog:
    d = RecordingDialog(
        ApprovalRequest(
            request=review.request,
            key=None,
            review=review,
            provenance=Provenance(pid=4242, ppid=4241),
        )
    )
    qtbot.addWidget(d)
    d.show()
    d.activateWindow()
    qtbot.waitUntil(d.isActiveWindow, timeout=3000)
    return d


def packaged(
    tmp_path: Path, names: list[str], *, old: tuple[str, ...] = ()
) -> dict[str, tuple[Path, bytes]]:
    """.crate files as ``cargo package`` leaves them in target/package (``old`` ones an hour
    old): name -> (path, bytes)."""
    d = tmp_path / "target" / "package"
    d.mkdir(parents=True)
    out = {}
    for n in names:
        data = h.crate(n, "0.1.0", {"src/lib.rs": f"// {n}\n".encode()})
        p = d / f"{n}-0.1.0.crate"
        p.write_bytes(data)
        if n in old:
            t = time.time() - 3600
            os.utime(p, (t, t))
        out[n] = (p, data)
    return out

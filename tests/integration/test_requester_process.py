"""The review's view of who is asking, with real processes: a run key needs a real cargo
parent, and a requester that is not a verified cargo process (a real bridge started by
``timeout``) gets no stale crate and no workspace batch."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from factories import request
from review_tools import packaged, sha

from gui_approver.client.framing import Provenance
from gui_approver.review.history import History
from gui_approver.review.request import (
    Inspector,
    WorkspaceReview,
    run_key_for_pid,
)


def test_run_key_for_pid_needs_a_cargo_parent():
    assert run_key_for_pid(os.getpid()) is None  # pytest was not started by cargo
    assert run_key_for_pid(None) is None and run_key_for_pid(0) is None
    p = subprocess.Popen(["true"])
    p.wait()
    assert run_key_for_pid(p.pid) is None


# -- a requester that is not a verified cargo process (issue 12, item 4) ------------------------


def _not_cargo(cwd: Path, *extra: str):
    """A real "bridge" started by ``timeout`` (not by cargo), in ``cwd``, with the arguments a
    worm could add to steer the lookup. Returns (timeout process, bridge pid)."""
    import psutil

    proc = subprocess.Popen(
        [
            "timeout",
            "60",
            sys.executable,
            "-c",
            "import sys; sys.stdin.read()",
            "--cargo-plugin",
            *extra,
        ],
        cwd=cwd,
        stdin=subprocess.PIPE,
    )
    child = None

    def found():
        nonlocal child
        kids = psutil.Process(proc.pid).children()
        child = kids[0].pid if kids else None
        return child

    from envtools import wait_for

    wait_for(found, 10, what="the bridge stand-in to start")
    return proc, child


def test_an_unverified_requester_gets_no_stale_crate_and_no_batch(tmp_path):
    """A leftover .crate (denied earlier) must not be shown as the verified contents of a
    request from a process that is not a verified cargo, and no workspace list is offered."""
    files = packaged(tmp_path, ["one", "two"], old=("one", "two"))
    _p, data = files["one"]
    proc, bridge = _not_cargo(tmp_path, "--target-dir", str(tmp_path / "target"))
    try:
        insp = Inspector(History(tmp_path / "h"), WorkspaceReview())
        publish = request("publish", name="one", vers="0.1.0", cksum=sha(data))
        review = insp.review(publish, Provenance(pid=bridge), bridge)
    finally:
        proc.kill()
        proc.wait()
    assert not review.requester.verified
    assert "not by cargo" in review.requester.summary
    assert review.contents is not None and not review.contents.verified
    assert "before" in review.contents.reason and "not a verified cargo" in review.contents.reason
    assert review.batch == ()


def test_an_unverified_requester_still_sees_a_crate_written_during_its_run(tmp_path):
    proc, bridge = _not_cargo(tmp_path)
    try:
        files = packaged(tmp_path, ["one"])  # written after the requester started
        p, data = files["one"]
        insp = Inspector(History(tmp_path / "h"), WorkspaceReview())
        publish = request("publish", name="one", vers="0.1.0", cksum=sha(data))
        review = insp.review(publish, Provenance(pid=bridge), bridge)
    finally:
        proc.kill()
        proc.wait()
    assert not review.requester.verified
    assert review.contents is not None and review.contents.verified
    assert review.contents.path == str(p)

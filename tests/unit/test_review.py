"""gui_approver.review.request: the bounded inspection, the workspace batch, and the whole issue end
to end with the real cargo 1.95.

The end-to-end tests run the app's real IPC server and SigningService in-process with an
approver that does what the dialog will do: while cargo's publish request is pending it calls
the Inspector with the real cargo's provenance, records the review (the text the dialog would
show), then approves or denies; approved publishes go to the history. A request that matches
a workspace batch is approved without a review, as the service will do.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import threading
import time
from pathlib import Path

import hostile_archives as h
from checks import present
from factories import request
from review_tools import packaged

from gui_approver.client.framing import Provenance
from gui_approver.client.protocol import parse_request
from gui_approver.review.contents import CrateContents, inspect_crate_bytes
from gui_approver.review.history import History
from gui_approver.review.request import (
    OWNERS_NOTE,
    BatchApproval,
    Candidate,
    Inspector,
    WorkspaceReview,
    run_key,
    split_crate_filename,
)

REG = "sparse+http://127.0.0.1:8765/index/"
BRIDGE = str(Path(sys.executable).parent / "cargo-credential-gui-approver")


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def publish_req(name="foo", vers="0.1.0", cksum="a" * 64, url=REG):
    return request("publish", name=name, vers=vers, cksum=cksum, index_url=url)


def req(op, name="foo"):
    obj = {"v": 1, "registry": {"index-url": REG}, "kind": "get", "operation": op, "name": name}
    if op in ("yank", "unyank"):
        obj["vers"] = "0.1.0"
    return parse_request(json.dumps(obj))


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


# -- BatchApproval ---------------------------------------------------------------------------


def test_batch_matches_exact_tuples_once():
    clock = FakeClock()
    batch = BatchApproval(window=300, clock=clock)
    batch.approve(REG, [("foo", "0.1.0", "a" * 64), ("bar", "0.2.0", "b" * 64)])
    assert not batch.matches(publish_req("foo", "0.1.0", "c" * 64))  # other cksum
    assert not batch.matches(publish_req("foo", "0.1.1", "a" * 64))  # other version
    assert not batch.matches(publish_req("baz", "0.1.0", "a" * 64))  # other crate
    assert not batch.matches(
        publish_req("foo", "0.1.0", "a" * 64, url="sparse+https://x.example/index/")
    )
    assert not batch.matches(req("yank"))
    assert len(batch.pending()) == 2  # misses consume nothing
    assert batch.matches(publish_req("foo", "0.1.0", "a" * 64))
    assert not batch.matches(publish_req("foo", "0.1.0", "a" * 64))  # consumed
    assert [k.name for k in batch.pending()] == ["bar"]


def test_batch_expires_on_the_monotonic_clock_and_ends():
    clock = FakeClock()
    batch = BatchApproval(window=300, clock=clock)
    batch.approve(REG, [("foo", "0.1.0", "a" * 64), ("bar", "0.2.0", "b" * 64)])
    clock.now += 299.9
    assert batch.matches(publish_req("foo", "0.1.0", "a" * 64))
    clock.now += 0.2
    assert not batch.matches(publish_req("bar", "0.2.0", "b" * 64))
    batch.approve(REG, [("foo", "0.1.0", "a" * 64)])
    batch.end()
    assert batch.pending() == () and not batch.matches(publish_req("foo", "0.1.0", "a" * 64))


def test_batch_bound_to_a_cargo_run():
    batch = BatchApproval()
    batch.approve(REG, [("foo", "0.1.0", "a" * 64)], run=(123, 5.0))
    assert not batch.matches(publish_req(), run=None)
    assert not batch.matches(publish_req(), run=(123, 6.0))  # same pid, another process
    assert batch.matches(publish_req(), run=(123, 5.0))


def test_batch_is_bounded():
    batch = BatchApproval(max_items=3)
    batch.approve(REG, [(f"c{i}", "0.1.0", "a" * 64) for i in range(10)])
    assert len(batch.pending()) == 3


def test_split_crate_filename():
    assert split_crate_filename("foo-0.1.0.crate") == ("foo", "0.1.0")
    assert split_crate_filename("foo-bar-1.2.3-rc.1.crate") == ("foo-bar", "1.2.3-rc.1")
    assert split_crate_filename("x2-2d-10.0.0+b.crate") == ("x2-2d", "10.0.0+b")
    assert split_crate_filename("foo.crate") is None
    assert split_crate_filename("foo-0.1.0.tar.gz") is None


# -- WorkspaceReview on files -------------------------------------------------------------------


def first_contents(path: Path, data: bytes, name: str) -> CrateContents:
    return inspect_crate_bytes(data, name=name, vers="0.1.0", cksum=sha(data), path=str(path))


def test_workspace_review_lists_fresh_crates_once_per_run(tmp_path):
    files = packaged(tmp_path, ["one", "two", "three", "stale"], old=("stale",))
    (files["two"][0].parent / "liar-0.1.0.crate").write_bytes(h.crate("other", "9.9.9"))
    ws = WorkspaceReview()
    p, data = files["one"]
    cands = ws.candidates(
        publish_req("one", "0.1.0", sha(data)), None, first_contents(p, data, "one")
    )
    assert [c.name for c in cands] == ["one", "three", "two"]
    for c in cands:
        assert c.cksum == sha(files[c.name][1]) and c.contents.verified
        assert [f.path for f in c.contents.files] == ["Cargo.toml", "Cargo.toml.orig", "src/lib.rs"]
    # unverified first crate: no batch
    bad = inspect_crate_bytes(data, name="one", vers="0.1.0", cksum="0" * 64, path=str(p))
    assert ws.candidates(publish_req("one", "0.1.0", "0" * 64), None, bad) == ()


def test_workspace_review_prefers_the_files_cargo_holds_open(tmp_path):
    from gui_approver.review.locate import CargoContext
    from gui_approver.review.requester import ProcessInfo, RequesterInfo

    files = packaged(tmp_path, ["one", "two", "three"])
    ctx = CargoContext(cwd=str(tmp_path), open_crates=(str(files["one"][0]), str(files["two"][0])))
    cargo = ProcessInfo(pid=4242, name="cargo", role="cargo", started=77.0)
    requester = RequesterInfo(True, "cargo publish", 4243, "kernel", cargo=cargo, context=ctx)
    ws = WorkspaceReview()
    p, data = files["one"]
    request = publish_req("one", "0.1.0", sha(data))
    cands = ws.candidates(request, requester, first_contents(p, data, "one"))
    assert [c.name for c in cands] == ["one", "two"]
    # the second request of the same run gets no new review
    assert ws.candidates(request, requester, first_contents(p, data, "one")) == ()
    keys = ws.approve_all(request, cands, requester)
    assert [(k.name, k.cksum) for k in keys] == [("two", sha(files["two"][1]))]
    assert not ws.batch.matches(publish_req("two", "0.1.0", sha(files["two"][1])))  # no run
    assert ws.batch.matches(
        publish_req("two", "0.1.0", sha(files["two"][1])), run=run_key(requester)
    )


# -- Inspector ---------------------------------------------------------------------------------


def crate_in(tmp_path, name="foo"):
    d = tmp_path / name
    (d / "target" / "package").mkdir(parents=True)
    data = h.crate(name)
    (d / "target" / "package" / f"{name}-0.1.0.crate").write_bytes(data)
    return d, data


def test_inspection_is_bounded_and_a_timeout_is_could_not_verify(tmp_path, monkeypatch):
    import gui_approver.review.request as review_mod
    import gui_approver.review.requester as requester_mod

    d, data = crate_in(tmp_path)
    release, entered = threading.Event(), threading.Event()
    real = requester_mod.resolve_requester

    def stuck(*args, **kw):  # a /proc read stuck in the kernel, say
        entered.set()
        release.wait(30)
        return real(*args, **kw)

    monkeypatch.setattr(review_mod, "resolve_requester", stuck)
    insp = Inspector(History(tmp_path / "h"), timeout=0.3, max_concurrent=1)
    prov = Provenance(pid=os.getpid(), cwd=str(d))
    try:
        t0 = time.monotonic()
        review = insp.review(publish_req("foo", "0.1.0", sha(data)), prov, os.getpid())
        assert time.monotonic() - t0 < 2.0
        assert entered.is_set() and review.timed_out
        assert not review.verified and review.contents is not None
        assert not review.contents.verified and review.contents.files == ()
        assert "did not finish within 300 ms" in review.contents.reason
        assert review.requester.summary.startswith("requester could not be verified")
        # the stuck worker holds the only slot: the next review answers at once
        busy = insp.review(publish_req("foo", "0.1.0", sha(data)), prov, os.getpid())
        assert "too many inspections" in present(busy.contents).reason
    finally:
        release.set()


def test_inspection_errors_are_could_not_verify(tmp_path, monkeypatch):
    import gui_approver.review.request as review_mod

    def broken(*args, **kw):
        raise RuntimeError("boom")

    monkeypatch.setattr(review_mod, "inspect_publish", broken)
    _d, data = crate_in(tmp_path)
    insp = Inspector(History(tmp_path / "h"))
    review = insp.review(publish_req("foo", "0.1.0", sha(data)), Provenance(), None)
    assert not review.verified and not review.timed_out
    assert review.contents is not None and not review.contents.verified
    assert review.contents.reason == "internal error (RuntimeError)"


def test_non_publish_reviews(tmp_path):
    insp = Inspector(History(tmp_path / "h"))
    prov = Provenance(pid=os.getpid())
    yank = insp.review(req("yank"), prov, os.getpid())
    assert yank.contents is None and yank.notes == ()
    owners = insp.review(req("owners"), prov, os.getpid())
    assert owners.notes == (OWNERS_NOTE,)
    assert OWNERS_NOTE in owners.text()


def test_candidate_describe():
    data = h.crate()
    c = inspect_crate_bytes(data, name="foo", vers="0.1.0", cksum=sha(data))
    cand = Candidate("foo", "0.1.0", sha(data), "/x", c)
    assert cand.describe().startswith(f"foo 0.1.0  sha256 {sha(data)}  — verified: 3 files")

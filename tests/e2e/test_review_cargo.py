"""The review with the real cargo: the app's real IPC server and SigningService in-process with an
approver that reviews what cargo is publishing (history, diff, build script, workspace batch)."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from functools import partial
from pathlib import Path

import factories
import hostile_archives as h
import pyseto
import pytest
from checks import as_get
from factories import paseto_claims, request, write_crate
from fakes import MemoryKeychain

from gui_approver.client.protocol import Publish
from gui_approver.core.approval import ApprovalRequest, Decision
from gui_approver.core.ipc import UnixSocketServer
from gui_approver.core.keys.store import KeyStore
from gui_approver.core.service import SigningService, ipc_handler
from gui_approver.core.settings import Settings
from gui_approver.registry.server import DemoRegistry
from gui_approver.registry.verify import RegisteredKey
from gui_approver.review.history import History
from gui_approver.review.request import (
    Inspector,
    RequestReview,
    WorkspaceReview,
    run_key,
    run_key_for_pid,
)
from gui_approver.review.requester import resolve_requester

BRIDGE = str(Path(sys.executable).parent / "cargo-credential-gui-approver")


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


REPOSITORY = "https://example.com/repo"
make_crate = partial(write_crate, repository=REPOSITORY)
write_manifest = partial(factories.write_manifest, repository=REPOSITORY)


class ReviewingApprover:
    """What the dialog will do: review while cargo waits, then decide."""

    def __init__(self, inspector: Inspector, workspace: WorkspaceReview) -> None:
        self.inspector = inspector
        self.workspace = workspace
        self.reviews: list[RequestReview] = []
        self.batched: list[tuple[str, str, str]] = []
        self.answers: list[str] = []
        self.before_review = None
        self.on_review = None
        self.errors: list[BaseException] = []

    def decide(self, approval: ApprovalRequest) -> Decision:
        try:
            return self._decide(approval)
        except BaseException as exc:
            self.errors.append(exc)
            raise

    def _decide(self, approval: ApprovalRequest) -> Decision:
        request, prov = as_get(approval.request), approval.provenance
        # ipc.py has already put the kernel's SO_PEERCRED pid into the provenance.
        peer_pid = prov.pid
        if isinstance(publish := request.operation, Publish):
            run = run_key_for_pid(peer_pid)
            assert run == run_key(resolve_requester(prov, peer_pid))
            taken = self.workspace.batch.take(request, run=run)
            if taken is not None:
                self.batched.append((publish.name, publish.vers, publish.cksum))
                self.inspector.record_candidate(request, taken[1])
                return Decision.approve("approved with the workspace list")
        if self.before_review is not None:
            self.before_review(request, prov)
        review = self.inspector.review(request, prov, peer_pid)
        self.reviews.append(review)
        if self.on_review is not None:
            self.on_review(review)
        answer = self.answers.pop(0) if self.answers else "approve"
        if answer == "deny":
            return Decision.deny("denied by the test")
        if answer == "approve-all" and review.batch:
            self.workspace.approve_all(request, review.batch, review.requester)
        self.inspector.record_approved(review)
        return Decision.approve()


class Rig:
    def __init__(self, tmp_path: Path) -> None:
        self.tmp = tmp_path
        self.registry = DemoRegistry(tmp_path / "registry")
        self.registry.start()
        self.store = KeyStore(MemoryKeychain(), tmp_path / "keys.json")
        self.record = self.store.create(registry="local", index_url=self.registry.index_url)
        self.registry.add_key(RegisteredKey(public=self.record.public))
        self.history = History(tmp_path / "history")
        self.workspace = WorkspaceReview()
        # generous here: a loaded CI machine must not turn a review into a timeout; the
        # measured times are asserted separately
        self.inspector = Inspector(self.history, self.workspace, timeout=10.0)
        self.approver = ReviewingApprover(self.inspector, self.workspace)
        self.service = SigningService(self.store, self.approver, Settings())
        self.server = UnixSocketServer(ipc_handler(self.service))
        self.server.start()
        home = tmp_path / "cargo-home"
        home.mkdir()
        (home / "config.toml").write_text(
            f'[registries.local]\nindex = "{self.registry.index_url}"\n'
            f'credential-provider = ["{BRIDGE}"]\n'
        )
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("CARGO_")}
        self.env.update(CARGO_HOME=str(home), CARGO_TERM_COLOR="never")

    def publish(self, cwd: Path, *extra: str) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            ["cargo", "publish", "--registry", "local", "--no-verify", "--allow-dirty", *extra],
            cwd=cwd,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
            stdin=subprocess.DEVNULL,
        )
        assert not self.approver.errors, self.approver.errors
        return proc

    def token_cksums(self) -> list[str]:
        pub = pyseto.Key.from_paserk(self.record.public)
        out = []
        for t in self.registry.accepted_tokens:
            claims = paseto_claims(pub, t)
            if claims.get("mutation") == "publish":
                out.append(claims["cksum"])
        return out

    def close(self) -> None:
        self.server.stop()
        self.registry.stop()


@pytest.fixture
def rig(tmp_path):
    r = Rig(tmp_path)
    yield r
    r.close()


@pytest.mark.e2e
def test_real_cargo_publish_review_history_diff_and_build_script(rig):
    crate = make_crate(rig.tmp, "alpha")
    proc = rig.publish(crate)
    assert proc.returncode == 0, proc.stderr
    (review,) = rig.approver.reviews
    cksum = rig.registry.crates()["alpha"][0]["cksum"]
    assert review.request.cksum == cksum

    # who asked: the real cargo of this test
    who = review.requester
    assert who.verified, who.lines()
    assert who.cargo is not None and who.cargo.name == "cargo"
    assert os.path.basename(who.cargo.exe) == "cargo"
    assert "publish" in who.cargo.cmdline
    assert who.cargo.cwd == str(crate)
    assert who.summary.startswith(
        f"cargo publish in {crate}".replace(os.path.expanduser("~"), "~", 1)
    )
    assert who.bridge is not None and "--cargo-plugin" in who.bridge.cmdline

    # what: verified, listed; found where cargo 1.95 keeps it while the request is pending
    c = review.contents
    assert c is not None and c.verified, c.reason
    assert c.path == str(crate / "target/package/tmp-crate/alpha-0.1.0.crate")
    assert who.context is not None and c.path in who.context.open_crates
    assert sorted(f.path for f in c.files) == [
        "Cargo.lock",
        "Cargo.toml",
        "Cargo.toml.orig",
        "src/lib.rs",
    ]
    lib = (crate / "src/lib.rs").read_bytes()
    assert {f.path: f.sha256 for f in c.files}["src/lib.rs"] == sha(lib)
    assert c.manifest.description == "test crate alpha" and c.manifest.license == "MIT"
    assert c.manifest.repository == "https://example.com/repo"
    assert c.problems == () and c.listing.complete
    assert review.changes is None
    assert "no earlier approved version of this crate is on record" in review.lines()
    assert rig.history.previous(rig.registry.index_url, "alpha").cksum == cksum

    # one file changed + version bump: exactly that file, with its diff
    write_manifest(crate, "alpha", "0.2.0")
    (crate / "src/lib.rs").write_text("pub fn alpha() -> u32 {\n    43\n}\n")
    proc = rig.publish(crate)
    assert proc.returncode == 0, proc.stderr
    review = rig.approver.reviews[-1]
    ch = review.changes
    assert ch is not None and ch.previous_vers == "0.1.0"
    assert ch.changed_paths == ("src/lib.rs",) and ch.added == () and ch.removed == ()
    assert set(ch.version_only) == {"Cargo.toml", "Cargo.toml.orig", "Cargo.lock"}
    assert ch.flags == ()
    ((path, diff),) = review.diffs
    assert path == "src/lib.rs"
    assert "-    42" in diff.splitlines() and "+    43" in diff.splitlines()

    # a new build script: flagged
    write_manifest(crate, "alpha", "0.3.0")
    (crate / "build.rs").write_text('fn main() { println!("cargo:rerun-if-changed=x"); }\n')
    proc = rig.publish(crate)
    assert proc.returncode == 0, proc.stderr
    review = rig.approver.reviews[-1]
    ch = review.changes
    assert ch.new_build_script and ch.flags[0].startswith("NEW build script")
    assert [f.path for f in ch.added] == ["build.rs"]
    assert review.diffs[0][0] == "build.rs" and "+fn main()" in review.diffs[0][1]
    assert review.contents.manifest.build == "build.rs"
    assert [e["vers"] for e in rig.registry.crates()["alpha"]] == ["0.1.0", "0.2.0", "0.3.0"]
    # bounded: the measured times of the real reviews
    assert max(r.elapsed for r in rig.approver.reviews) < 2.0
    print("review times (ms):", [round(r.elapsed * 1000, 1) for r in rig.approver.reviews])
    print("\n".join(review.lines()))


@pytest.mark.e2e
def test_real_cargo_tampered_crate_shows_mismatch_and_no_files(rig):
    crate = make_crate(rig.tmp, "beta")
    evil = h.crate("beta", "0.1.0", {"src/lib.rs": b"pub fn beta() { steal() }\n"})

    def tamper(request, prov):
        pkg = crate / "target" / "package"
        for sub in ("tmp-crate", "tmp-registry", "."):
            p = pkg / sub / "beta-0.1.0.crate"
            if p.exists():
                with open(p, "r+b") as fh:  # in place: cargo holds this file open
                    fh.write(evil)
                    fh.truncate()

    rig.approver.before_review = tamper
    rig.approver.answers = ["deny"]
    proc = rig.publish(crate)
    assert proc.returncode != 0
    assert "was denied in gui-approver" in proc.stderr
    (review,) = rig.approver.reviews
    c = review.contents
    assert not c.verified and c.files == () and c.listing is None and c.manifest is None
    assert c.actual_sha256 == sha(evil) and c.actual_sha256 != review.request.cksum
    assert "differs from the checksum" in c.reason
    text = review.text()
    assert "contents: contents could not be verified" in text
    assert f"cargo asks to sign: {review.request.cksum}" in text
    assert "steal" not in text and "src/lib.rs" not in text
    assert "beta" not in rig.registry.crates()
    assert rig.history.previous(rig.registry.index_url, "beta") is None


@pytest.mark.e2e
def test_real_cargo_workspace_batch(rig):
    ws = rig.tmp / "ws"
    ws.mkdir()
    names = ["wsone", "wstwo", "wsthree"]
    (ws / "Cargo.toml").write_text(f'[workspace]\nmembers = {json.dumps(names)}\nresolver = "2"\n')
    for n in names:
        make_crate(ws, n)
    checks = {}

    def on_review(review):
        # While the first request is pending: a forged fourth request is never matched.
        forged = request(
            "publish", name="wstwo", vers="0.1.0", cksum="0" * 64, index_url=rig.registry.index_url
        )
        checks["forged_before"] = rig.workspace.batch.matches(forged)

    rig.approver.on_review = on_review
    rig.approver.answers = ["approve-all"]
    proc = rig.publish(ws, "--workspace")
    assert proc.returncode == 0, proc.stderr
    (review,) = rig.approver.reviews  # one review for the whole run
    assert sorted(c.name for c in review.batch) == sorted(names)
    assert review.batch[0].name == review.request.name
    assert all(c.contents.verified for c in review.batch)
    published = {n: rig.registry.crates()[n][0]["cksum"] for n in names}
    assert {c.name: c.cksum for c in review.batch} == published
    assert sorted(n for n, _v, _c in rig.approver.batched) == sorted(
        n for n in names if n != review.request.name
    )
    # three tokens, each bound to its own crate's checksum
    assert sorted(rig.token_cksums()) == sorted(published.values())
    # nothing left over, and a fourth request with another checksum is not matched
    assert checks["forged_before"] is False
    assert rig.workspace.batch.pending() == ()
    forged = request(
        "publish", name="wstwo", vers="0.1.0", cksum="0" * 64, index_url=rig.registry.index_url
    )
    assert not rig.workspace.batch.matches(forged)
    # the batch-approved crates are in the history too
    for n in names:
        assert rig.history.previous(rig.registry.index_url, n).cksum == published[n]
    print("\n".join(review.lines()))


@pytest.mark.e2e
def test_real_cargo_workspace_flagged_crates_get_their_own_review(rig):
    """Issue 12, item 7: after 0.1.0 of three crates was approved as a list, 0.2.0 changes
    two of them (one gains a build script). "Approve all listed" then covers only the crate
    whose files did not change; each changed crate gets its own review."""
    ws = rig.tmp / "ws"
    ws.mkdir()
    names = ["fxone", "fxtwo", "fxthree"]
    (ws / "Cargo.toml").write_text(f'[workspace]\nmembers = {json.dumps(names)}\nresolver = "2"\n')
    for n in names:
        make_crate(ws, n)
    rig.approver.answers = ["approve-all"]
    proc = rig.publish(ws, "--workspace")
    assert proc.returncode == 0, proc.stderr
    (first,) = rig.approver.reviews
    keep = next(n for n in names if n != first.request.name)
    changed = [n for n in names if n != keep]
    for n in names:
        write_manifest(ws / n, n, "0.2.0")
    for n in changed:
        make_crate(ws, n, "0.2.0", body="43")
    (ws / changed[-1] / "build.rs").write_text("fn main() {}\n")
    rig.approver.reviews.clear()
    rig.approver.batched.clear()
    rig.approver.answers = ["approve-all"]
    proc = rig.publish(ws, "--workspace")
    assert proc.returncode == 0, proc.stderr
    reviewed = [r.request.name for r in rig.approver.reviews]
    assert set(changed) <= set(reviewed), reviewed
    assert [n for n, _v, _c in rig.approver.batched] == ([keep] if reviewed[0] != keep else [])
    flags = {c.name: c.flags for c in rig.approver.reviews[0].batch}
    assert flags[keep] == () or reviewed[0] == keep
    for n in changed[1:] if reviewed[0] == changed[0] else changed:
        if n != reviewed[0]:
            assert any("since 0.1.0 (last approved)" in f for f in flags[n]), flags
    assert any(f.startswith("NEW build script") for f in flags.get(changed[-1], ())) or (
        reviewed[0] == changed[-1]
    )
    # each changed crate's own review shows its changes
    for r in rig.approver.reviews:
        if r.request.name in changed:
            assert r.changes is not None and "src/lib.rs" in r.changes.changed_paths

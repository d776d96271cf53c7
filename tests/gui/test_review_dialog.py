"""The approval dialog showing a RequestReview (issue #4: "show
exactly what is being signed"), offscreen with pytest-qt; and the whole path with the real
cargo (``cargo publish --workspace`` approved once with "Approve all listed")."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import hostile_archives as h
import pyseto
import pytest
from cargo_harness import PUBLISH, cargo
from checks import approval_dialog, as_get, present, top_items
from factories import paseto_claims, request, write_crate
from fakes import MemoryKeychain
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLabel, QPlainTextEdit, QTreeWidget
from review_tools import (
    WHO,
    changed_review,
    contents,
    request_for,
    requester,
    review_for,
    sha,
    show,
)

from gui_approver.client.framing import Provenance
from gui_approver.core.approval import ApprovalRequest, Decision
from gui_approver.core.keys.store import KeyStore
from gui_approver.core.service import SigningService
from gui_approver.core.settings import Settings
from gui_approver.review.archive import UNSUPPORTED_WARNING
from gui_approver.review.contents import CrateContents, inspect_crate_bytes
from gui_approver.review.history import History
from gui_approver.review.request import Candidate, Inspector, RequestReview, WorkspaceReview
from gui_approver.review.requester import RequesterInfo
from gui_approver.ui.app import QtApprover
from gui_approver.ui.dialog import ApprovalDialog

LOCAL = "sparse+http://127.0.0.1:8765/index/"


def all_text(d: ApprovalDialog) -> str:
    return "\n".join(lbl.text() for lbl in d.findChildren(QLabel))


def test_verified_contents_show_the_file_list(qtbot):
    c = contents()
    d = show(qtbot, review_for(c))
    assert WHO in d.field_labels["Requested by"].text()
    assert "verified by the kernel" in d.field_labels["Requested by"].text()
    assert d.review_labels["contentsVerified"].text() == (
        "Contents verified: this is exactly what will be published"
    )
    details = d.review_labels["contentsDetails"].text()
    assert "3 files" in details and "License: MIT" in details
    assert "Description: a test crate" in details and "https://example.com/repo" in details
    assert d.file_list is not None
    rows = [item.text(0) for item in top_items(d.file_list)]
    assert sorted(rows) == ["Cargo.toml", "Cargo.toml.orig", "src/lib.rs"]
    assert "No earlier approved version" in d.review_labels["changes"].text()
    assert "contentsWarning" not in d.review_labels
    for label in d.findChildren(QLabel):
        assert label.textFormat() == Qt.TextFormat.PlainText
    # fits a 1280x800 screen
    assert d.height() <= 800 and d.width() <= 1280


def test_unverified_contents_warn_and_list_nothing(qtbot):
    c0 = contents()
    c = CrateContents(
        c0.name, c0.vers, c0.cksum, False, "no .crate file with this sha256 was found"
    )
    d = show(qtbot, review_for(c))
    warning = d.review_labels["contentsWarning"].text()
    assert "CONTENTS NOT VERIFIED" in warning and "no .crate file with this sha256" in warning
    assert "cannot show what will be published" in warning
    assert d.file_list is None and d.findChild(QTreeWidget, "fileList") is None
    assert "Contents verified" not in all_text(d)
    qtbot.waitUntil(d.approve_button.isEnabled, timeout=3000)  # approving is still possible
    qtbot.mouseClick(d.approve_button, Qt.MouseButton.LeftButton)
    assert d.decisions == [True] and not d.approve_all_chosen


def test_archive_outside_cargos_subset_is_never_called_verified(qtbot):
    """Issue 12 item 1: a PAX path plus a GNU long name (tarfile shows src/unused.rs, cargo
    unpacks src/lib.rs): the dialog says so prominently and never says verified."""
    name, vers = "foo", "0.2.0"
    p = f"{name}-{vers}"
    data = h.raw_crate(
        name,
        vers,
        h.pax_record({"path": f"{p}/src/unused.rs"})
        + h.gnu_longname(f"{p}/src/lib.rs")
        + h.raw_entry("x", h.EVIL),
    )
    c = inspect_crate_bytes(
        data, name=name, vers=vers, cksum=sha(data), path=f"/tmp/target/package/{p}.crate"
    )
    d = show(qtbot, review_for(c))
    assert "contentsVerified" not in d.review_labels
    warning = d.review_labels["contentsUnsupported"]
    assert warning.font().bold() and warning.frameShape() != warning.Shape.NoFrame
    assert UNSUPPORTED_WARNING in warning.text() and "PAX" in warning.text()
    assert d.review_labels["flags"].text().startswith("⚠ NOT WHAT CARGO UNPACKS")
    text = all_text(d).replace("verified by the kernel", "")
    assert "verified" not in text.lower()
    assert d.file_list is not None  # what was read is still shown, under the warning


def test_forged_history_entry_note_is_a_flag(qtbot):
    from gui_approver.review.history import INTEGRITY_NOTE

    d = show(qtbot, review_for(contents(), notes=(INTEGRITY_NOTE,)))
    flags = d.review_labels["flags"]
    assert flags.font().bold() and "failed its integrity check and was ignored" in flags.text()
    assert all_text(d).count("failed its integrity check") == 1


def test_flags_changes_and_view_changes(qtbot, tmp_path):
    d = show(qtbot, changed_review(tmp_path))
    flags = d.review_labels["flags"]
    assert flags.font().bold() and "build" in flags.text().lower()
    changes = d.review_labels["changes"].text()
    assert "since 0.1.0" in changes and "src/lib.rs" in changes and "build.rs" in changes
    assert d.view_changes_button is not None
    assert not d.view_changes_button.autoDefault()
    qtbot.mouseClick(d.view_changes_button, Qt.MouseButton.LeftButton)
    w = d.changes_window
    assert w is not None and w.isVisible()
    text = present(w.findChild(QPlainTextEdit, "diffText"))
    assert text.isReadOnly()
    body = text.toPlainText()
    assert "=== src/lib.rs ===" in body and "+pub fn answer() -> u32 { 43 }" in body
    assert "-pub fn answer() -> u32 { 42 }" in body and "=== build.rs ===" in body
    d.reject()
    assert d.decisions == [False] and not w.isVisible()


def batch_review() -> RequestReview:
    cs = [contents(n, "0.1.0", {"src/lib.rs": f"// {n}\n".encode()}) for n in ("a", "b", "c")]
    batch = tuple(Candidate(c.name, c.vers, c.cksum, c.path or "", c) for c in cs)
    return review_for(cs[0], batch=batch)


def test_approve_all_listed_needs_a_genuine_click(qtbot):
    d = show(qtbot, batch_review())
    b = d.approve_all_button
    assert b is not None and b.objectName() == "approveAllButton"
    assert not b.isDefault() and not b.autoDefault() and "&" not in b.text()
    assert d.batch_list is not None and d.batch_list.topLevelItemCount() == 3
    assert [item.text(3) for item in top_items(d.batch_list)] == ["verified"] * 3
    assert not b.isEnabled()  # arming, like Approve
    qtbot.waitUntil(b.isEnabled, timeout=3000)
    assert b.text() == "Approve all listed"
    b.click()  # programmatic: ignored
    with qtbot.waitSignal(b.clicked, timeout=3000):  # animateClick's click, later
        b.animateClick()
    assert d.decisions == []
    qtbot.mouseClick(b, Qt.MouseButton.LeftButton)
    assert d.decisions == [True] and d.approve_all_chosen


def test_no_approve_all_without_a_batch(qtbot):
    d = show(qtbot, review_for(contents()))
    assert d.approve_all_button is None and d.batch_list is None


def test_approver_resolves_approve_all(qtbot):
    approver = QtApprover(Settings(arming_delay=1.0))
    review = batch_review()
    out: list[Decision] = []
    t = threading.Thread(
        target=lambda: out.append(
            approver.decide(
                ApprovalRequest(
                    request=review.request,
                    key=None,
                    review=review,
                    provenance=Provenance(),
                    timeout=30.0,
                )
            )
        )
    )
    t.start()
    try:
        qtbot.waitUntil(lambda: approver.dialog is not None, timeout=5000)
        d = approval_dialog(approver.dialog)
        d.activateWindow()
        button = present(d.approve_all_button)
        qtbot.waitUntil(button.isEnabled, timeout=3000)
        qtbot.mouseClick(button, Qt.MouseButton.LeftButton)
        qtbot.waitUntil(lambda: bool(out), timeout=3000)
    finally:
        approver.shutdown()
        t.join(5)
    assert out[0].approved and out[0].approve_all


# -- real cargo --------------------------------------------------------------------------------


@pytest.mark.e2e
def test_real_cargo_workspace_approve_all_and_changes(harness):
    qtbot, gui, registry = harness.qtbot, harness.gui, harness.registry
    ws = harness.tmp / "ws"
    ws.mkdir()
    names = ["base", "mid", "top"]
    (ws / "Cargo.toml").write_text(f'[workspace]\nmembers = {json.dumps(names)}\nresolver = "2"\n')
    for n in names:
        write_crate(ws, n)
    seen: list[dict[str, object]] = []

    def answer(proc, click: str) -> dict[str, object]:
        qtbot.waitUntil(
            lambda: gui.approver.dialog is not None or proc.poll() is not None, timeout=60_000
        )
        d = gui.approver.dialog
        assert d is not None, proc.communicate()
        shown = {
            "review": d.approval.review,
            "labels": {k: v.text() for k, v in d.review_labels.items()},
            "batch": [
                d.batch_list.topLevelItem(i).text(0)
                for i in range(d.batch_list.topLevelItemCount())
            ]
            if d.batch_list is not None
            else [],
        }
        seen.append(shown)
        d.activateWindow()
        button = getattr(d, click)
        qtbot.waitUntil(button.isEnabled, timeout=5000)
        qtbot.mouseClick(button, Qt.MouseButton.LeftButton)
        return shown

    def dialogs_shown() -> int:
        return len(seen)

    proc = cargo(["publish", "--workspace", *PUBLISH[1:]], ws, harness.env)
    first = answer(proc, "approve_all_button")
    review = first["review"]
    assert isinstance(review, RequestReview) and review.contents is not None
    assert review.contents.verified, review.contents.reason
    assert sorted(c.name for c in review.batch) == names
    assert sorted(str(t).split()[0] for t in first["batch"]) == names  # type: ignore[attr-defined]
    qtbot.waitUntil(
        lambda: proc.poll() is not None or gui.approver.dialog is not None, timeout=120_000
    )
    assert gui.approver.dialog is None, "a second dialog appeared"
    _out, err = proc.communicate()
    assert proc.returncode == 0, err.decode()
    assert dialogs_shown() == 1  # the other two were signed without a dialog
    crates = registry.crates()
    assert sorted(crates) == names
    pub = pyseto.Key.from_paserk(harness.record.public)
    signed = [paseto_claims(pub, t) for t in registry.accepted_tokens]
    by_name = {c["name"]: c["cksum"] for c in signed if c.get("mutation") == "publish"}
    assert by_name == {n: crates[n][0]["cksum"] for n in names}
    inspector = gui.service.inspector
    assert inspector is not None and inspector.workspace is not None
    assert inspector.workspace.batch.pending() == ()

    # A changed release of one crate: the dialog shows what changed since 0.1.0.
    crate = ws / "mid"
    toml = (crate / "Cargo.toml").read_text().replace('version = "0.1.0"', 'version = "0.2.0"')
    (crate / "Cargo.toml").write_text(toml)
    (crate / "src" / "lib.rs").write_text("pub fn mid() -> u32 { 43 }\n")
    assert inspector.history is not None
    qtbot.waitUntil(
        lambda: inspector.history.previous(registry.index_url, "mid") is not None, timeout=5000
    )
    proc = cargo(PUBLISH, crate, harness.env)
    shown = answer(proc, "approve_button")
    qtbot.waitUntil(lambda: proc.poll() is not None, timeout=60_000)
    assert proc.returncode == 0, proc.communicate()[1].decode()
    r = shown["review"]
    assert isinstance(r, RequestReview) and r.changes is not None
    assert "src/lib.rs" in r.changes.changed_paths
    assert "src/lib.rs" in shown["labels"]["changes"]  # type: ignore[index]
    assert any(p == "src/lib.rs" and "+pub fn mid() -> u32 { 43 }" in diff for p, diff in r.diffs)


# -- the service: who gets inspected, the batch ------------------------------------------------


class SpyInspector(Inspector):
    def __init__(self, review: RequestReview | None = None) -> None:
        super().__init__(None, WorkspaceReview())
        self.fixed = review
        self.calls: list[str] = []

    def review(self, request, provenance, peer_pid=None, *, timeout=None):
        self.calls.append(request.operation.op)
        if self.fixed is not None and request.cksum == as_get(self.fixed.request).cksum:
            return self.fixed
        return super().review(request, provenance, peer_pid, timeout=timeout)


class Asked:
    def __init__(self, decision: Decision) -> None:
        self.decision = decision
        self.seen: list[ApprovalRequest] = []

    def decide(self, approval: ApprovalRequest) -> Decision:
        self.seen.append(approval)
        return self.decision


def service_with(tmp_path: Path, inspector, decision: Decision, **kw):
    store = KeyStore(MemoryKeychain(), tmp_path / "keys.json")
    store.create(registry="local", index_url=LOCAL)
    approver = Asked(decision)
    return SigningService(store, approver, audit=None, inspector=inspector, **kw), approver


def test_service_inspects_only_mutations_for_the_approver(tmp_path):
    spy = SpyInspector()
    svc, approver = service_with(tmp_path, spy, Decision.approve())
    read = request(index_url=LOCAL, registry=None)
    assert "Ok" in svc.handle(read, Provenance()).response
    assert spy.calls == [] and approver.seen == []
    yank = request("yank", name="foo", vers="1.0.0", index_url=LOCAL, registry=None)
    assert "Ok" in svc.handle(yank, Provenance()).response
    assert spy.calls == ["yank"] and approver.seen[0].review is not None
    # auto-approved loopback mutations: no inspection either
    spy2 = SpyInspector()
    svc2, approver2 = service_with(
        tmp_path / "2", spy2, Decision.deny("x"), auto_approve_loopback=True
    )
    assert "Ok" in svc2.handle(yank, Provenance()).response
    assert spy2.calls == [] and approver2.seen == []
    # no inspector: the approver gets no review
    svc3, approver3 = service_with(tmp_path / "3", None, Decision.approve())
    assert "Ok" in svc3.handle(yank, Provenance()).response
    assert approver3.seen[0].review is None


def test_service_approve_all_signs_the_listed_crates_once(tmp_path):
    review = batch_review()
    spy = SpyInspector(review)
    svc, approver = service_with(tmp_path, spy, Decision(True, "all", approve_all=True))
    _first, *others = review.batch
    assert "Ok" in svc.handle(review.request, Provenance()).response
    assert len(approver.seen) == 1 and approver.seen[0].review is review
    approver.decision = Decision.deny("a dialog was shown")
    for c in others:
        assert "Ok" in svc.handle(request_for(c.contents), Provenance()).response
    assert len(approver.seen) == 1  # no dialog for the listed ones
    # each entry is consumed: the same request again needs a dialog (denied here)
    assert "Ok" not in svc.handle(request_for(others[0].contents), Provenance()).response
    assert len(approver.seen) == 2
    # approve all again, then lock: the list is forgotten
    approver.decision = Decision(True, "all", approve_all=True)
    assert "Ok" in svc.handle(review.request, Provenance()).response
    svc.end_batches()
    approver.decision = Decision.deny("dialog")
    assert "Ok" not in svc.handle(request_for(others[1].contents), Provenance()).response
    assert len(approver.seen) == 4


# -- workspace batch: each crate carries its own flags (issue 12, item 7) ------------------------


def flagged_batch_review(tmp_path: Path, monkeypatch) -> RequestReview:
    """A workspace run of a, b, c, d, e: b unchanged since its approved 0.1.0 (version bump
    only), c changed a file, d gained a build script, e became a proc-macro; built by the real
    Inspector (the files themselves are given, as the workspace scan would find them)."""
    import gui_approver.review.request as review_mod

    hist = History(tmp_path / "h")
    lib = {"src/lib.rs": b"pub fn f() {}\n"}
    for n in "bcde":
        hist.record_approved(LOCAL, contents(n, "0.1.0", lib), registry_name="local")
    first = contents("a", "0.2.0", lib)
    now = [
        first,
        contents("b", "0.2.0", lib),
        contents("c", "0.2.0", {"src/lib.rs": b"pub fn f() { evil() }\n"}),
        contents("d", "0.2.0", {**lib, "build.rs": b"fn main() {}\n"}, build="build.rs"),
        contents("e", "0.2.0", lib, proc_macro=True),
    ]
    batch = tuple(Candidate(c.name, c.vers, c.cksum, c.path or "", c) for c in now)
    monkeypatch.setattr(review_mod, "inspect_publish", lambda *a, **kw: first)
    monkeypatch.setattr(WorkspaceReview, "candidates", lambda self, *a, **kw: batch)
    # a verified cargo asked ("Approve all listed" is never offered otherwise: item 4)
    monkeypatch.setattr(review_mod, "resolve_requester", lambda *a, **kw: requester())
    review = Inspector(hist, WorkspaceReview()).review(request_for(first), Provenance(), None)
    assert [c.name for c in review.batch] == ["a", "b", "c", "d", "e"]
    return review


def test_workspace_crates_carry_their_own_flags(tmp_path, monkeypatch):
    review = flagged_batch_review(tmp_path, monkeypatch)
    flags = {c.name: c.flags for c in review.batch}
    assert flags["a"] == () and flags["b"] == ()  # b: only the version number changed
    assert any("1 changed" in f and "since 0.1.0" in f for f in flags["c"])
    assert review.batch[2].changes is not None
    assert review.batch[2].changes.changed_paths == ("src/lib.rs",)
    assert any(f.startswith("NEW build script") for f in flags["d"])
    assert any("BECOMES A PROC-MACRO" in f for f in flags["e"])


def test_approve_all_covers_only_unflagged_crates(tmp_path, monkeypatch):
    review = flagged_batch_review(tmp_path, monkeypatch)
    store = KeyStore(MemoryKeychain(), tmp_path / "keys.json")
    store.create(registry="local", index_url=LOCAL)
    spy = SpyInspector(review)
    approver = Asked(Decision(True, "all", approve_all=True))
    svc = SigningService(store, approver, audit=None, inspector=spy)
    assert "Ok" in svc.handle(review.request, Provenance()).response
    assert len(approver.seen) == 1
    approver.decision = Decision.deny("its own dialog")
    by_name = {c.name: c for c in review.batch}
    assert "Ok" in svc.handle(request_for(by_name["b"].contents), Provenance()).response
    assert len(approver.seen) == 1  # b: covered by "Approve all listed"
    for n in "cde":  # each flagged crate gets its own dialog (denied here)
        assert "Ok" not in svc.handle(request_for(by_name[n].contents), Provenance()).response
        assert as_get(approver.seen[-1].request).name == n
    assert len(approver.seen) == 4


def test_dialog_shows_each_crates_flags(qtbot, tmp_path, monkeypatch):
    review = flagged_batch_review(tmp_path, monkeypatch)
    d = show(qtbot, review)
    assert d.batch_list is not None and d.approve_all_button is not None
    rows = {item.text(0).split()[0]: item for item in top_items(d.batch_list)}
    assert rows["b"].text(4) == "none"
    for n in "cde":
        assert rows[n].text(4).startswith("⚠ own dialog: "), n
    assert "NEW build script" in rows["d"].text(4)
    heading = d.review_labels["batchHeading"].text()
    assert "the 1 unflagged other," in heading and "3 flagged crates" in heading
    # when every other crate is flagged there is nothing to approve "all": no such button
    only_flagged = RequestReview(
        review.request,
        review.requester,
        review.contents,
        batch=(review.batch[0], *review.batch[2:]),
    )
    d2 = show(qtbot, only_flagged)
    assert d2.approve_all_button is None and d2.batch_list is not None
    assert "gets its own dialog" in d2.review_labels["batchHeading"].text()


# -- a requester that is not a verified cargo process (issue 12, item 4) ------------------------


def unverified(review: RequestReview) -> RequestReview:
    from dataclasses import replace

    who = RequesterInfo(
        verified=False,
        pid=4242,
        pid_source="kernel",
        summary="requester could not be verified: the credential provider was started by "
        "timeout (pid 4241), not by cargo",
    )
    return replace(review, requester=who)


def test_an_unverified_requester_gets_a_boxed_warning_at_the_top(qtbot):
    d = show(qtbot, unverified(batch_review()))
    warning = d.review_labels["requesterWarning"]
    assert warning.isVisible()
    assert "NOT A VERIFIED CARGO REQUEST" in warning.text()
    assert "started by timeout" in warning.text()
    box = present(warning.parentWidget())
    assert box.objectName() == "requesterWarningBox"
    heading = present(d.findChild(QLabel, "heading"))
    assert box.mapTo(d, box.rect().topLeft()).y() < heading.mapTo(d, heading.rect().topLeft()).y()
    # no "Approve all listed", and the list says why
    assert d.approve_all_button is None
    assert d.batch_list is not None
    assert "not offered" in d.review_labels["batchHeading"].text()


def test_a_verified_requester_gets_no_warning_box(qtbot):
    d = show(qtbot, batch_review())
    assert "requesterWarning" not in d.review_labels
    assert d.approve_all_button is not None


def test_the_service_ignores_approve_all_for_an_unverified_requester(tmp_path):
    review = unverified(batch_review())
    spy = SpyInspector(review)
    svc, approver = service_with(tmp_path, spy, Decision(True, "all", approve_all=True))
    assert "Ok" in svc.handle(review.request, Provenance()).response
    approver.decision = Decision.deny("a dialog was shown")
    for c in review.batch[1:]:
        assert "Ok" not in svc.handle(request_for(c.contents), Provenance()).response
    assert len(approver.seen) == len(review.batch)  # every crate had its own dialog

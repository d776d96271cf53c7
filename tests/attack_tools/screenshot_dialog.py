"""Render the real approval dialog on a private Xvfb and save a screenshot of it.

    .venv/bin/python tests/attack_tools/screenshot_dialog.py [OUT.png] [--arming] [--review]
        [--unsupported] [--token] [--hostile] [--batch]

Default output: resources/screenshots/dialog.png (``--review``: dialog-review.png, the dialog
with the requester, verified contents and the changes since the last approved version;
``--unsupported``: dialog-unsupported.png, the same review for an archive that uses tar
features cargo never writes, a PAX path plus a GNU long name, so it is not called verified;
``--token``: dialog-token.png, the review for crates.io, which takes a bearer token;
``--hostile``: dialog-hostile.png, a request from a process that is not a verified cargo,
naming the registry with a right-to-left override and a newline, and a workspace list;
``--batch``: dialog-batch-flags.png, a workspace run whose other crates carry their own
flags, so "Approve all listed" covers only the unflagged one).
The dialog is the real :class:`gui_approver.ui.dialog.ApprovalDialog` in a real xcb
window with the real X11 input guard, showing a publish of a sample crate with one more
request waiting; by default the shot is taken once Approve has armed (``--arming``: right
after it appeared). The window is grabbed with ``QScreen.grabWindow`` (no window manager,
so no title bar).
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
DEFAULT_OUT = REPO / "resources" / "screenshots" / "dialog.png"
REVIEW_OUT = REPO / "resources" / "screenshots" / "dialog-review.png"
UNSUPPORTED_OUT = REPO / "resources" / "screenshots" / "dialog-unsupported.png"
BATCH_OUT = REPO / "resources" / "screenshots" / "dialog-batch-flags.png"
HOSTILE_OUT = REPO / "resources" / "screenshots" / "dialog-hostile.png"
HOSTILE_NAME = "crates-io (127.0.0.1, throwa\u202e\ngnp.exe"
TOKEN_OUT = REPO / "resources" / "screenshots" / "dialog-token.png"
CHILD = "GUI_APPROVER_SCREENSHOT_CHILD"


def sample_batch(tmp: Path, hist: Any, first: Any) -> tuple[object, ...]:
    """The other crates of a ``cargo publish --workspace`` run, each with its own flags: core
    (only the version changed), macros (becomes a proc-macro), cli (a changed file)."""
    import hostile_archives as h

    from gui_approver.review.contents import inspect_crate_bytes
    from gui_approver.review.request import Candidate, candidate_flags

    index = "sparse+https://index.crates.io/"
    lib = {"src/lib.rs": b"pub fn f() {}\n"}
    out = [Candidate(first.name, first.vers, first.cksum, first.path, first)]
    for name, new_files, kw in (
        ("tokio-frobnicate-core", lib, {}),
        ("tokio-frobnicate-macros", lib, {"proc_macro": True}),
        ("tokio-frobnicate-cli", {"src/lib.rs": b"pub fn f() { run() }\n"}, {}),
    ):

        def listed(crate: str, vers: str, files: dict[str, bytes], **kw2: Any) -> Any:
            data = h.crate(crate, vers, files, **kw2)
            return inspect_crate_bytes(
                data,
                name=crate,
                vers=vers,
                cksum=hashlib.sha256(data).hexdigest(),
                path=f"/home/alex/src/tokio-frobnicate/target/package/{crate}-{vers}.crate",
            )

        hist.record_approved(index, listed(name, "1.4.1", lib), registry_name="crates-io")
        c = listed(name, "1.4.2", new_files, **kw)
        cand = Candidate(name, "1.4.2", c.cksum, c.path, c)
        out.append(candidate_flags(cand, hist.previous(index, name)))
    return tuple(out)


def sample_review(
    request: object, tmp: Path, unsupported: bool = False, batch: bool = False
) -> object:
    """A review like the inspector makes: kernel-verified requester, verified contents, and
    0.14.1 approved earlier (so there is a change summary, with a new build script)."""
    sys.path.insert(0, str(REPO / "tests"))
    import hostile_archives as h

    from gui_approver.review.contents import inspect_crate_bytes
    from gui_approver.review.history import History, compare, unified_diff
    from gui_approver.review.request import RequestReview
    from gui_approver.review.requester import RequesterInfo

    files = {
        "src/lib.rs": b"//! Frobnicate tokio streams.\npub mod frob;\npub use frob::frobnicate;\n",
        "src/frob.rs": b"pub fn frobnicate(x: u32) -> u32 {\n    x.rotate_left(3)\n}\n",
        "README.md": b"# tokio-frobnicate\n\nFrobnicates streams.\n" * 20,
        "LICENSE-MIT": b"MIT License\n" * 40,
        "Cargo.lock": b"# lock\n" * 300,
    }
    old = h.crate(
        "tokio-frobnicate",
        "1.4.1",
        files,
        description="Frobnicate tokio streams",
        repository="https://github.com/alex/tokio-frobnicate",
    )
    new_files = dict(files)
    new_files["src/frob.rs"] = (
        b"pub fn frobnicate(x: u32) -> u32 {\n    x.rotate_left(5) ^ 0x5a\n}\n"
    )
    new_files["build.rs"] = b'fn main() {\n    println!("cargo:rerun-if-changed=build.rs");\n}\n'
    new = h.crate(
        "tokio-frobnicate",
        "1.4.2",
        new_files,
        build="build.rs",
        description="Frobnicate tokio streams",
        repository="https://github.com/alex/tokio-frobnicate",
    )
    if unsupported:  # tarfile lists src/unused.rs; cargo would unpack it over src/frob.rs
        import gzip

        raw = gzip.decompress(new).rstrip(b"\0")
        raw += b"\0" * (-len(raw) % 512)
        p = "tokio-frobnicate-1.4.2"
        new = h.gz(
            raw
            + h.pax_record({"path": f"{p}/src/unused.rs"})
            + h.gnu_longname(f"{p}/src/frob.rs")
            + h.raw_entry("x", h.EVIL)
            + h.END
        )
    path = "/home/alex/src/tokio-frobnicate/target/package/tokio-frobnicate-1.4.2.crate"
    c_old = inspect_crate_bytes(
        old, name="tokio-frobnicate", vers="1.4.1", cksum=hashlib.sha256(old).hexdigest(), path=path
    )
    c_new = inspect_crate_bytes(
        new, name="tokio-frobnicate", vers="1.4.2", cksum=hashlib.sha256(new).hexdigest(), path=path
    )
    prev = History(tmp / "history").record_approved(
        "sparse+https://index.crates.io/", c_old, registry_name="crates-io"
    )
    assert prev is not None
    changes = compare(prev, c_new)
    diffs = tuple((p, unified_diff(prev, c_new, p)) for p in ("build.rs", "src/frob.rs"))
    requester = RequesterInfo(
        verified=True,
        pid=48213,
        pid_source="kernel",
        summary="cargo publish in ~/src/tokio-frobnicate, started from bash in xterm",
    )
    listed = sample_batch(tmp, History(tmp / "history"), c_new) if batch else ()
    return RequestReview(
        request,  # type: ignore[arg-type]
        requester,
        c_new,
        prev,
        changes,
        diffs,
        listed,  # type: ignore[arg-type]
    )


def child(
    out: Path,
    arming: bool,
    review: bool = False,
    unsupported: bool = False,
    token: bool = False,
    hostile: bool = False,
    batch: bool = False,
) -> int:
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication

    from gui_approver.client.framing import Provenance
    from gui_approver.client.protocol import parse_request
    from gui_approver.core.approval import ApprovalRequest
    from gui_approver.core.keys.store import KeyRecord
    from gui_approver.ui.a11y import install_accessibility_factory
    from gui_approver.ui.dialog import ApprovalDialog

    app = QApplication(["gui-approver"])
    app.setApplicationDisplayName("gui-approver")
    install_accessibility_factory()
    index = "sparse+https://index.crates.io/"
    rev = None
    cksum = hashlib.sha256(b"tokio-frobnicate-1.4.2.crate").hexdigest()
    if review:
        tmp = Path(tempfile.mkdtemp(prefix="gui-approver-shot-review-"))
        rev = sample_review(None, tmp, unsupported, batch)
        cksum = rev.contents.cksum  # type: ignore[attr-defined]
    request = parse_request(
        json.dumps(
            {
                "v": 1,
                "registry": {"index-url": index, "name": HOSTILE_NAME if hostile else "crates-io"},
                "kind": "get",
                "operation": "publish",
                "name": "tokio-frobnicate",
                "vers": "1.4.2",
                "cksum": cksum,
            }
        )
    )
    if rev is not None:
        import dataclasses

        rev = dataclasses.replace(rev, request=request)  # type: ignore[type-var]
        if hostile:
            from gui_approver.review.request import Candidate
            from gui_approver.review.requester import RequesterInfo

            c = rev.contents  # type: ignore[attr-defined]
            other = Candidate("tokio-frobnicate-macros", "1.4.2", "ab" * 32, "", c)
            rev = dataclasses.replace(  # type: ignore[type-var]
                rev,
                batch=(Candidate(c.name, c.vers, c.cksum, c.path or "", c), other),
                requester=RequesterInfo(
                    verified=False,
                    pid=48213,
                    pid_source="kernel",
                    summary="requester could not be verified: the credential provider was "
                    "started by timeout (pid 48190), not by cargo",
                ),
            )
    key = KeyRecord(
        registry="crates-io",
        index_url=index,
        public="k3.public.sample",
        kip="k3.pid.Qn5tJ2pOaE0bVqkF4w9sXr8yLcDz1HgTmUe6WvAiKoB",
        subject=None,
        created="2026-01-05",
    )
    bearer = None
    if token:
        from gui_approver.core.keys.bearer import TokenRecord

        bearer = TokenRecord(
            registry="crates-io",
            index_url=index,
            fingerprint="3fa8c21d",
            added="2026-11-02T09:14:00+00:00",
            expires="2027-01-31",
            scopes="publish-update; crates: tokio-frobnicate",
            protection="passphrase",
            origin="cli",
        )
        key = bearer.as_key_record()
    approval = ApprovalRequest(
        request=request,
        key=key,
        review=rev,  # type: ignore[arg-type]
        bearer=bearer,
        provenance=Provenance(pid=48213, ppid=48190, cwd="/home/alex/src/tokio-frobnicate"),
    )
    dialog = ApprovalDialog(approval, waiting=1)
    dialog.show()

    def shoot() -> None:
        # Wait (on the event loop) for the first paint, and for Approve to arm if wanted.
        if dialog.visible_at is None or (not arming and not dialog.approve_button.armed):
            QTimer.singleShot(20, shoot)
            return
        if batch and dialog.batch_list is not None:  # scroll down to the crates of the run
            from PySide6.QtWidgets import QScrollArea

            area = dialog.findChild(QScrollArea)
            flags = dialog.review_labels.get("batchFlags")
            if area is not None:
                area.ensureWidgetVisible(flags or dialog.batch_list, 0, 0)
            app.processEvents()
        shot = dialog.screen().grabWindow(dialog.winId())
        out.parent.mkdir(parents=True, exist_ok=True)
        ok = shot.save(str(out), "PNG")
        print(f"{out}: {shot.width()}x{shot.height()}" if ok else f"cannot write {out}", flush=True)
        app.exit(0 if ok else 1)

    QTimer.singleShot(0, shoot)
    return app.exec()


def main(argv: list[str]) -> int:
    args = [a for a in argv if not a.startswith("--")]
    arming = "--arming" in argv
    unsupported = "--unsupported" in argv
    token = "--token" in argv
    hostile = "--hostile" in argv
    batch = "--batch" in argv
    review = "--review" in argv or unsupported or token or hostile or batch
    default = (
        HOSTILE_OUT
        if hostile
        else TOKEN_OUT
        if token
        else UNSUPPORTED_OUT
        if unsupported
        else BATCH_OUT
        if batch
        else REVIEW_OUT
        if review
        else DEFAULT_OUT
    )
    out = Path(args[0]).resolve() if args else default
    if os.environ.get(CHILD):
        return child(out, arming, review, unsupported, token, hostile, batch)
    sys.path.insert(0, str(REPO / "tests"))
    import envtools

    with (
        tempfile.TemporaryDirectory(prefix="gui-approver-shot-") as tmp,
        envtools.start_xvfb(tmp) as xvfb,
    ):
        dirs = envtools.make_app_dirs(Path(tmp) / "app")
        env = envtools.app_env_for(dirs, display=xvfb.display)
        env[CHILD] = "1"
        try:
            return subprocess.run(
                [sys.executable, __file__, *argv], env=env, timeout=60, check=False
            ).returncode
        finally:
            dirs.cleanup()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

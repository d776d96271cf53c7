"""gui_approver.review.history: the approved-publish history, comparisons and diffs."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import hostile_archives as h
import pytest
from checks import present
from factories import request

from gui_approver.review.contents import inspect_crate_bytes
from gui_approver.review.history import History, compare, default_root, unified_diff

REG = "sparse+http://127.0.0.1:8765/index/"
OTHER = "sparse+https://other.example/index/"

LIB1 = b"pub fn answer() -> u32 {\n    42\n}\n"
LIB2 = b"pub fn answer() -> u32 {\n    43\n}\n"


def lock(name: str, vers: str) -> bytes:
    return (f'version = 4\n\n[[package]]\nname = "{name}"\nversion = "{vers}"\n').encode()


def contents(vers="0.1.0", files=None, name="foo", **kw):
    files = dict(files if files is not None else {"src/lib.rs": LIB1})
    files.setdefault("Cargo.lock", lock(name, vers))
    data = h.crate(name, vers, files, **kw)
    c = inspect_crate_bytes(data, name=name, vers=vers, cksum=hashlib.sha256(data).hexdigest())
    assert c.verified
    return c


@pytest.fixture
def hist(tmp_path):
    return History(tmp_path / "history")


def test_default_root_is_in_the_user_data_dir():
    root = default_root()
    assert root.parts[-2:] == ("gui-approver", "history")
    assert str(root).startswith(os.environ["XDG_DATA_HOME"])


def test_record_and_previous(hist, tmp_path):
    first = contents("0.1.0")
    entry = hist.record_approved(REG, first, registry_name="local", now=1000.0)
    assert (entry.name, entry.vers, entry.cksum) == ("foo", "0.1.0", first.cksum)
    assert entry.registry == REG and entry.registry_name == "local"
    assert {f.path: f.sha256 for f in entry.files}["src/lib.rs"] == hashlib.sha256(LIB1).hexdigest()
    assert entry.crate_bytes() == first.data
    assert (tmp_path / "history").stat().st_mode & 0o077 == 0
    prev = hist.previous(REG, "foo")
    assert prev == entry
    assert hist.previous(REG, "FOO") == entry  # crate names are case-insensitive
    assert hist.previous(OTHER, "foo") is None
    assert hist.previous(REG, "bar") is None
    assert hist.previous(REG, "foo", exclude_cksum=first.cksum) is None
    second = contents("0.2.0", {"src/lib.rs": LIB2})
    hist.record_approved(REG, second, now=2000.0)
    assert hist.previous(REG, "foo").vers == "0.2.0"
    assert hist.previous(REG, "foo", exclude_cksum=second.cksum).vers == "0.1.0"


def test_unverified_contents_are_never_recorded(hist):
    data = h.crate()
    bad = inspect_crate_bytes(data, name="foo", vers="0.1.0", cksum="0" * 64)
    with pytest.raises(ValueError, match="only verified"):
        hist.record_approved(REG, bad)
    assert hist.entries() == []


def test_version_bump_and_one_changed_file(hist):
    hist.record_approved(REG, contents("0.1.0"), now=1.0)
    current = contents("0.2.0", {"src/lib.rs": LIB2})
    prev = hist.previous(REG, "foo")
    changes = compare(prev, current)
    assert changes.changed_paths == ("src/lib.rs",)
    assert changes.added == () and changes.removed == ()
    assert set(changes.version_only) == {"Cargo.toml", "Cargo.toml.orig", "Cargo.lock"}
    assert changes.flags == () and not changes.new_build_script
    assert changes.summary() == (
        "since 0.1.0 (last approved): 1 changed; version number updated in "
        "Cargo.lock, Cargo.toml, Cargo.toml.orig"
    )
    diff = unified_diff(prev, current, "src/lib.rs")
    assert diff.splitlines() == [
        "--- a/src/lib.rs (0.1.0)",
        "+++ b/src/lib.rs (0.2.0)",
        "@@ -1,3 +1,3 @@",
        " pub fn answer() -> u32 {",
        "-    42",
        "+    43",
        " }",
    ]


def test_a_manifest_change_besides_the_version_is_a_change(hist):
    hist.record_approved(REG, contents("0.1.0"), now=1.0)
    current = contents("0.2.0", description="now with more features")
    changes = compare(hist.previous(REG, "foo"), current)
    assert "Cargo.toml" in changes.changed_paths
    assert "Cargo.toml" not in changes.version_only


def test_added_and_removed_files(hist):
    hist.record_approved(REG, contents("0.1.0", {"src/lib.rs": LIB1, "src/old.rs": b"x"}))
    current = contents("0.1.1", {"src/lib.rs": LIB1, "src/new.rs": b"fn new() {}\n"})
    prev = hist.previous(REG, "foo")
    changes = compare(prev, current)
    assert [f.path for f in changes.added] == ["src/new.rs"]
    assert [f.path for f in changes.removed] == ["src/old.rs"]
    assert changes.changed == ()
    assert unified_diff(prev, current, "src/new.rs").splitlines()[:3] == [
        "--- /dev/null (0.1.0)",
        "+++ b/src/new.rs (0.1.1)",
        "@@ -0,0 +1 @@",
    ]


def test_new_build_script_is_flagged(hist):
    hist.record_approved(REG, contents("0.1.0"))
    current = contents(
        "0.2.0", {"src/lib.rs": LIB1, "build.rs": b"fn main() {}\n"}, build="build.rs"
    )
    changes = compare(hist.previous(REG, "foo"), current)
    assert changes.new_build_script
    assert changes.flags[0].startswith("NEW build script (build.rs)")
    assert [f.path for f in changes.added] == ["build.rs"]
    # a build script that was already there is not new; a changed one is mentioned
    hist.record_approved(REG, current)
    again = contents(
        "0.3.0", {"src/lib.rs": LIB1, "build.rs": b"fn main() { evil() }\n"}, build="build.rs"
    )
    changes = compare(hist.previous(REG, "foo"), again)
    assert not changes.new_build_script
    assert changes.flags == ("the build script (build.rs) changed",)


def test_build_key_in_manifest_alone_is_a_new_build_script(hist):
    hist.record_approved(REG, contents("0.1.0"))
    current = contents(
        "0.2.0", {"src/lib.rs": LIB1, "tools/gen.rs": b"fn main() {}\n"}, build="tools/gen.rs"
    )
    assert compare(hist.previous(REG, "foo"), current).new_build_script


def test_becoming_a_proc_macro_is_flagged(hist):
    hist.record_approved(REG, contents("0.1.0"))
    changes = compare(hist.previous(REG, "foo"), contents("0.2.0", proc_macro=True))
    assert changes.becomes_proc_macro
    assert any("BECOMES A PROC-MACRO" in f for f in changes.flags)


def test_repository_change_is_flagged(hist):
    hist.record_approved(REG, contents("0.1.0"))
    changes = compare(
        hist.previous(REG, "foo"), contents("0.2.0", repository="https://evil.example/foo")
    )
    assert (
        "the repository changed from https://example.com/repo to https://evil.example/foo"
    ) in changes.flags


def test_binary_large_and_long_diffs_are_bounded(hist):
    big_old = b"".join(b"line %d\n" % i for i in range(2000))
    big_new = b"".join(b"LINE %d\n" % i for i in range(2000))
    hist.record_approved(
        REG,
        contents(
            "0.1.0",
            {
                "src/lib.rs": LIB1,
                "logo.png": b"\x89PNG\0\0\x01",
                "gen.rs": big_old,
                "esc.rs": b"a\n",
            },
        ),
    )
    current = contents(
        "0.2.0",
        {
            "src/lib.rs": LIB1,
            "logo.png": b"\x89PNG\0\0\x02",
            "gen.rs": big_new,
            "esc.rs": b"a\n\x1b]0;pwned\x07\n",
        },
    )
    prev = hist.previous(REG, "foo")
    assert unified_diff(prev, current, "logo.png") == (
        "Binary files a/logo.png and b/logo.png differ"
    )
    long = unified_diff(prev, current, "gen.rs", max_lines=50)
    assert len(long.splitlines()) == 51 and "diff truncated" in long.splitlines()[-1]
    assert "too large to diff" in unified_diff(prev, current, "gen.rs", max_bytes=100)
    esc = unified_diff(prev, current, "esc.rs")
    assert "+\\x1b]0;pwned\\x07" in esc and "\x1b" not in esc


def test_evicted_or_tampered_copy_cannot_be_diffed_but_still_compares(hist):
    entry = hist.record_approved(REG, contents("0.1.0"))
    Path(entry.crate_path).write_bytes(b"tampered")
    prev = hist.previous(REG, "foo")
    assert prev.crate_bytes() is None
    current = contents("0.2.0", {"src/lib.rs": LIB2})
    changes = compare(prev, current)
    assert "src/lib.rs" in changes.changed_paths
    # without the old bytes, the version-only check cannot be made: shown as changed
    assert "Cargo.toml" in changes.changed_paths
    assert "no longer kept" in unified_diff(prev, current, "src/lib.rs")


def test_size_bound_evicts_superseded_then_oldest(tmp_path):
    hist = History(tmp_path / "h", max_bytes=10_000)
    noise = os.urandom(1500)  # incompressible, so each copy is ~2 KB
    for i in range(6):
        hist.record_approved(
            REG, contents(f"0.{i}.0", {"src/lib.rs": LIB1, "n.bin": noise}), now=float(i)
        )
    hist.record_approved(REG, contents("1.0.0", name="bar"), now=10.0)
    assert hist.total_bytes() <= 10_000
    kept = hist.entries()
    assert ("bar", "1.0.0") in [(e.name, e.vers) for e in kept]
    assert present(hist.previous(REG, "foo")).vers == "0.5.0"  # the newest of foo survives
    assert len([e for e in kept if e.name == "foo"]) < 6


def test_crate_larger_than_the_bound_keeps_metadata_only(tmp_path):
    hist = History(tmp_path / "h", max_bytes=600)
    entry = hist.record_approved(REG, contents("0.1.0"))  # ~400 B copy + ~700 B metadata
    assert entry.crate_path is None
    assert present(hist.previous(REG, "foo")).files == entry.files


def test_corrupt_entries_are_ignored(hist):
    entry = hist.record_approved(REG, contents("0.1.0"))
    d = Path(entry.entry_path).parent
    (d / "junk.json").write_text("{not json")
    (d / "other.json").write_text(json.dumps({"format": 99}))
    (d / "bad.json").write_text(json.dumps({"format": 1, "files": "nope"}))
    assert [e.vers for e in hist.entries()] == ["0.1.0"]


def test_invalid_names_are_refused(hist):
    c = contents("0.1.0")
    object.__setattr__(c, "name", "../../etc")
    with pytest.raises(ValueError):
        hist.record_approved(REG, c)


def test_from_settings(tmp_path):
    assert History.from_settings(1.5, tmp_path).max_bytes == 1_500_000


# -- integrity (issue 12, item 5) ----------------------------------------------------------------

EVIL_LIB = b"pub fn answer() -> u32 {\n    std::process::abort()\n}\n"


def forge_previous(root: Path, genuine, fake) -> None:
    """What a same-user worm does: rewrite the approved 1.0.0 entry so that it already
    contains the poisoned source (the file list and the kept copy), keeping the format."""
    path = Path(present(genuine.entry_path))
    doc = json.loads(path.read_text())
    doc["cksum"] = fake.cksum
    doc["files"] = [[f.path, f.size, f.kind, f.sha256, f.note] for f in fake.files]
    path.unlink()
    path.with_suffix(".crate").unlink()
    new = path.with_name(f"{fake.vers}_{fake.cksum}.json")
    new.write_text(json.dumps(doc))
    new.with_suffix(".crate").write_bytes(fake.data)


def test_forged_history_entry_is_ignored_and_noted(tmp_path, monkeypatch):
    from fakes import MemoryKeychain

    from gui_approver.client.framing import Provenance
    from gui_approver.core.keys.history_mac import HISTORY_MAC_ACCOUNT, HistoryMac
    from gui_approver.review import request as review_mod
    from gui_approver.review.history import INTEGRITY_NOTE
    from gui_approver.review.request import Inspector

    keychain = MemoryKeychain()
    root = tmp_path / "history"
    genuine = History(root, mac=HistoryMac(keychain)).record_approved(
        REG, contents("1.0.0"), registry_name="local"
    )
    secret = keychain.get(HISTORY_MAC_ACCOUNT)
    assert secret is not None
    assert secret.expose() not in Path(present(genuine.entry_path)).read_text()
    # the app restarted: the same keychain key still vouches for the genuine entry
    assert History(root, mac=HistoryMac(keychain)).previous(REG, "foo") == genuine

    poisoned = contents("1.0.1", {"src/lib.rs": EVIL_LIB})
    forge_previous(root, genuine, contents("1.0.0", {"src/lib.rs": EVIL_LIB}))
    hist = History(root, mac=HistoryMac(keychain))
    assert hist.previous_checked(REG, "foo", exclude_cksum=poisoned.cksum) == (None, 1)
    assert hist.entries() == []

    monkeypatch.setattr(review_mod, "inspect_publish", lambda *a, **kw: poisoned)
    req = request("publish", name="foo", vers="1.0.1", cksum=poisoned.cksum, index_url=REG)
    review = Inspector(hist).review(req, Provenance(), None)
    assert review.previous is None and review.changes is None
    assert INTEGRITY_NOTE in review.notes and INTEGRITY_NOTE in review.text()
    assert "no file changed" not in review.text()


def test_edited_or_unsigned_entries_fail_and_other_keys_do_not_verify(tmp_path):
    from fakes import MemoryKeychain

    from gui_approver.core.keys.history_mac import HistoryMac

    keychain = MemoryKeychain()
    root = tmp_path / "history"
    entry = History(root, mac=HistoryMac(keychain)).record_approved(REG, contents("1.0.0"))
    path = Path(present(entry.entry_path))
    doc = json.loads(path.read_text())
    # a key in another keychain (another user, or a fresh one) does not vouch for it
    assert History(root, mac=HistoryMac(MemoryKeychain())).scan() == ([], 1)
    for edit in ({"build": None, "proc_macro": False, "recorded_at": 1.0}, {"mac": None}):
        path.write_text(json.dumps({**doc, **edit}))
        assert History(root, mac=HistoryMac(keychain)).scan() == ([], 1), edit
    without = {k: v for k, v in doc.items() if k != "mac"}
    path.write_text(json.dumps(without))
    assert History(root, mac=HistoryMac(keychain)).scan() == ([], 1)
    path.write_text(json.dumps(doc))
    assert len(History(root, mac=HistoryMac(keychain)).entries()) == 1


def test_service_keeps_the_history_key_in_the_keychain(tmp_path):
    from fakes import MemoryKeychain

    from gui_approver.core.approval import Decision
    from gui_approver.core.keys.history_mac import HISTORY_MAC_ACCOUNT
    from gui_approver.core.keys.store import KeyStore
    from gui_approver.core.service import SigningService

    keychain = MemoryKeychain()

    class Yes:
        def decide(self, approval):
            return Decision.approve()

    svc = SigningService(KeyStore(keychain, tmp_path / "keys.json"), Yes(), audit=None)
    assert svc.inspector is not None and svc.inspector.history is not None
    entry = svc.inspector.history.record_approved(REG, contents("1.0.0"))
    assert keychain.get(HISTORY_MAC_ACCOUNT) is not None
    assert "mac" in json.loads(Path(present(entry.entry_path)).read_text())


def test_a_version_going_backwards_is_flagged(hist):
    from gui_approver.review.history import version_key

    hist.record_approved(REG, contents("0.2.0"))
    changes = compare(hist.previous(REG, "foo"), contents("0.1.9"))
    assert any(
        f.startswith("the version GOES BACKWARDS: 0.1.9 is older than 0.2.0") for f in changes.flags
    )
    forward = compare(hist.previous(REG, "foo"), contents("0.10.0"))
    assert not any("BACKWARDS" in f for f in forward.flags)  # 0.10.0 > 0.2.0 (not text)
    assert version_key("1.0.0-alpha") < version_key("1.0.0") < version_key("1.0.1")
    assert version_key("1.0.0-alpha.2") < version_key("1.0.0-alpha.10")
    assert version_key("1.0.0+build.5") == version_key("1.0.0")


def test_a_license_change_is_information_not_a_warning(hist):
    hist.record_approved(REG, contents("0.1.0", license="Apache-2.0"))
    changes = compare(hist.previous(REG, "foo"), contents("0.2.0", license="MIT"))
    assert changes.flags == ()
    assert changes.notes == ("license: Apache-2.0 before, MIT now",)
    assert "  license: Apache-2.0 before, MIT now" in changes.lines()

"""gui_approver.review.contents: finding, verifying and listing the .crate, safely.

Hostile archives are built in memory (tests/hostile_archives.py); nothing is extracted. The
real cargo's behaviour (where the .crate is while the publish request is pending) is checked
end to end in tests/e2e/test_review_cargo.py.
"""

from __future__ import annotations

import hashlib
import os
import tarfile
import threading
import time

import hostile_archives as h
import pytest
from checks import present
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gui_approver.review.contents import (
    Limits,
    inspect_crate_bytes,
    inspect_publish,
    list_archive,
    parse_manifest,
    read_member,
)
from gui_approver.review.locate import (
    CargoContext,
    candidate_paths,
    find_workspace_root,
    target_dirs,
)
from gui_approver.review.text import escape_text


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def listing(data: bytes, **kw):
    return list_archive(data, name="foo", vers="0.1.0", **kw)


# -- well-formed crates ------------------------------------------------------------------------


def test_verified_crate_lists_files_sizes_hashes_and_manifest():
    lib = b"pub fn answer() -> u32 { 42 }\n"
    data = h.crate(files={"src/lib.rs": lib, "README.md": b"# foo\n"})
    c = inspect_crate_bytes(data, name="foo", vers="0.1.0", cksum=sha(data), path="/x.crate")
    assert c.verified and c.listing is not None and c.listing.complete
    files = {f.path: f for f in c.files}
    assert sorted(files) == ["Cargo.toml", "Cargo.toml.orig", "README.md", "src/lib.rs"]
    assert files["src/lib.rs"].size == len(lib) and files["src/lib.rs"].sha256 == sha(lib)
    assert all(f.kind == "file" and f.note is None for f in c.files)
    assert c.problems == () and c.clean
    m = c.manifest
    assert m is not None
    assert (m.description, m.license, m.repository) == (
        "a test crate",
        "MIT",
        "https://example.com/repo",
    )
    assert m.build is None and m.proc_macro is False
    assert c.listing.total_size == sum(f.size for f in c.files)
    text = "\n".join(c.lines())
    assert c.summary().startswith("verified: 4 files")
    assert "description: a test crate" in text and "src/lib.rs" in text


def test_mismatching_bytes_are_not_listed():
    data = h.crate()
    c = inspect_crate_bytes(data, name="foo", vers="0.1.0", cksum="0" * 64, path="/x.crate")
    assert not c.verified
    assert c.files == () and c.listing is None and c.manifest is None and c.data is None
    assert c.actual_sha256 == sha(data)
    assert "differs from the checksum" in c.reason
    assert c.summary().startswith("contents could not be verified")
    assert f"cargo asks to sign: {'0' * 64}" in c.lines()


def test_manifest_build_script_and_proc_macro():
    m = parse_manifest(h.manifest("foo", "0.1.0", build="build.rs", proc_macro=True))
    assert m.build == "build.rs" and m.proc_macro is True
    assert parse_manifest(b"[package]\nname='x'\nbuild=true\n").build == "build.rs"
    assert parse_manifest(b"not toml [[[").error is not None
    assert parse_manifest(b"[lib]\n").error == "Cargo.toml has no [package] table"
    assert "larger" in (parse_manifest(b"#" * (2 * h.MiB)).error or "")


def test_read_member_returns_only_regular_files_within_bound():
    data = h.with_members(
        "foo",
        "0.1.0",
        [
            h.member("foo-0.1.0/link", type=tarfile.SYMTYPE, linkname="/etc/passwd"),
        ],
    )
    assert read_member(data, "src/lib.rs", name="foo", vers="0.1.0") == b"pub fn f() {}\n"
    assert read_member(data, "link", name="foo", vers="0.1.0") is None
    assert read_member(data, "missing", name="foo", vers="0.1.0") is None
    assert read_member(data, "src/lib.rs", name="foo", vers="0.1.0", max_bytes=3) is None
    assert read_member(b"garbage", "src/lib.rs") is None


# -- hostile archives ----------------------------------------------------------------------------


def test_absolute_paths_dotdot_and_outside_prefix_are_reported():
    data = h.with_members(
        "foo",
        "0.1.0",
        [
            h.member("/etc/cron.d/evil", b"x"),
            h.member("foo-0.1.0/../../.bashrc", b"y"),
            h.member("bar-9.9.9/src/lib.rs", b"z"),
        ],
    )
    lst = listing(data)
    notes = {f.path: f.note for f in lst.files}
    assert "absolute path" in notes["/etc/cron.d/evil"]
    assert "contains '..'" in notes["../../.bashrc"]
    assert "outside the crate directory foo-0.1.0/" in notes["bar-9.9.9/src/lib.rs"]
    assert len([p for p in lst.problems if ":" in p]) == 3


def test_links_devices_and_fifos_are_reported_not_followed(tmp_path):
    secret = tmp_path / "secret"
    secret.write_text("do not read me")
    data = h.with_members(
        "foo",
        "0.1.0",
        [
            h.member("foo-0.1.0/src/sym.rs", type=tarfile.SYMTYPE, linkname=str(secret)),
            h.member("foo-0.1.0/src/hard.rs", type=tarfile.LNKTYPE, linkname=str(secret)),
            h.member("foo-0.1.0/dev", type=tarfile.CHRTYPE),
            h.member("foo-0.1.0/pipe", type=tarfile.FIFOTYPE),
            h.member("foo-0.1.0/suid", b"#!/bin/sh\n", mode=0o4755),
        ],
    )
    lst = listing(data)
    by = {f.path: f for f in lst.files}
    assert by["src/sym.rs"].kind == "symlink" and by["src/sym.rs"].sha256 is None
    assert f"symbolic link to {secret} (not followed)" in (by["src/sym.rs"].note or "")
    assert by["src/hard.rs"].kind == "hardlink"
    assert "hard link to" in (by["src/hard.rs"].note or "")
    assert by["dev"].kind == "device" and by["pipe"].kind == "fifo"
    assert "setuid" in (by["suid"].note or "")
    assert all("do not read me" not in p for p in lst.problems)
    assert read_member(data, "src/sym.rs", name="foo", vers="0.1.0") is None


def test_control_and_bidi_characters_in_names_are_escaped():
    evil = "foo-0.1.0/src/\x1b[31mred\u202etxt.rs\n"
    data = h.with_members("foo", "0.1.0", [h.member(evil, b"x")], format=tarfile.PAX_FORMAT)
    lst = listing(data)
    names = [f.path for f in lst.files]
    assert "src/\\x1b[31mred\\u202etxt.rs\\x0a" in names
    assert all(c.isprintable() for n in names for c in n)
    (evil_entry,) = [f for f in lst.files if f.path.startswith("src/\\x1b")]
    assert evil_entry.note == "the name contains control, invisible or undecodable characters"
    assert any(p.startswith("src/\\x1b") for p in lst.problems)


def test_escape_text():
    assert escape_text("a\\b") == "a\\\\b"
    assert escape_text("\udcff") == "\\xff"  # an undecodable byte (surrogateescape)
    assert escape_text("zero\u200bwidth") == "zero\\u200bwidth"
    assert escape_text("é日本") == "é日本"
    assert escape_text("build.rs\u00a0") == "build.rs\\xa0"
    assert escape_text("x" * 10, limit=4) == "xxxx…"


def test_duplicate_entries_are_reported():
    data = h.with_members("foo", "0.1.0", [h.member("foo-0.1.0/src/lib.rs", b"second")])
    lst = listing(data)
    assert [f.note for f in lst.files if f.path == "src/lib.rs"][1] == "duplicate entry"


def test_huge_member_stops_at_the_uncompressed_limit():
    data = h.huge_member(size=8 * h.MiB)
    lst = listing(data, limits=Limits(max_uncompressed_bytes=2 * h.MiB))
    assert not lst.complete
    assert any("exceed the 2.0 MiB limit" in p for p in lst.problems)
    assert any("truncated" in (f.note or "") for f in lst.files if f.path == "data.bin")
    assert lst.uncompressed_read == 2 * h.MiB


def test_zip_bomb_is_bounded_in_time_and_memory_and_reported():
    data = h.zip_bomb(declared=1024 * h.MiB, pieces=1024)  # 1 MiB -> 1 GiB
    t0 = time.monotonic()
    lst = listing(data)  # default limits
    elapsed = time.monotonic() - t0
    assert elapsed < 3, elapsed
    assert not lst.complete
    assert lst.uncompressed_read <= Limits().max_uncompressed_bytes
    assert any("possible decompression bomb" in p for p in lst.problems)
    assert any("exceed" in p for p in lst.problems)


def test_member_count_is_bounded():
    lst = listing(h.many_members(count=300), limits=Limits(max_members=100))
    assert len(lst.files) == 100 and not lst.complete
    assert any("more than 100 entries" in p for p in lst.problems)


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"", "truncated"),
        (b"not gzip at all, just text", "not valid gzip"),
        (h.raw_deflate_not_gzip(), "not valid gzip"),
        (h.truncated(h.crate(), 0.5), "truncated"),
        (h.corrupt_deflate(h.crate()), "not valid gzip"),
        (h.gzip_of_garbage(), "not a valid tar archive"),
        (h.crate() + b"trailing junk", "unexpected data after the gzip stream"),
    ],
    ids=["empty", "text", "zlib-not-gzip", "truncated", "corrupt", "garbage-tar", "trailing"],
)
def test_invalid_gzip_and_tar_are_reported(data, expected):
    lst = listing(data)
    assert any(expected in p for p in lst.problems), lst.problems
    c = inspect_crate_bytes(data, name="foo", vers="0.1.0", cksum=sha(data))
    assert c.verified and not c.clean  # the bytes are the signed ones, but not readable
    if not c.files:
        assert c.summary().startswith("sha256 matches, but the archive could not be read: ")


def test_crate_with_pax_long_names_and_huge_pax_header_is_bounded():
    long_name = "foo-0.1.0/" + "d/" * 3000 + "x.rs"
    data = h.with_members("foo", "0.1.0", [h.member(long_name, b"x")], format=tarfile.PAX_FORMAT)
    lst = listing(data, limits=Limits(max_name_chars=200))
    assert any("characters long" in p for p in lst.problems)
    assert all(len(f.path) <= 201 for f in lst.files)
    # an extended header past the bound never reaches tarfile's parser
    huge = "foo-0.1.0/" + "e" * 100_000
    for fmt in (tarfile.PAX_FORMAT, tarfile.GNU_FORMAT):
        data = h.with_members("foo", "0.1.0", [h.member(huge, b"x")], format=fmt)
        lst = listing(data)
        assert not lst.complete
        assert any("an extended tar header of" in p for p in lst.problems), lst.problems
        assert [f.path for f in lst.files] == ["Cargo.toml", "src/lib.rs"]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=4096))
def test_arbitrary_bytes_never_crash(data):
    lst = list_archive(data, name="foo", vers="0.1.0", limits=Limits(max_uncompressed_bytes=h.MiB))
    assert isinstance(lst.problems, tuple)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_mutated_crates_never_crash(data):
    raw = bytearray(h.crate(files={"src/lib.rs": b"fn main() {}\n" * 20}))
    for _ in range(data.draw(st.integers(1, 8))):
        i = data.draw(st.integers(0, len(raw) - 1))
        raw[i] = data.draw(st.integers(0, 255))
    lst = list_archive(bytes(raw), name="foo", vers="0.1.0")
    assert isinstance(lst.files, tuple)
    # and the gunzipped tar, mutated, too (exercises the tar parser rather than zlib)
    tar = bytearray(h.tar_bytes([h.member("foo-0.1.0/a", b"abc" * 100)]))
    j = data.draw(st.integers(0, len(tar) - 1))
    tar[j] = data.draw(st.integers(0, 255))
    list_archive(h.gz(bytes(tar)), name="foo", vers="0.1.0")


# -- finding the .crate ------------------------------------------------------------------------


def make_pkg(root, name="foo", ws=False):
    root.mkdir(parents=True, exist_ok=True)
    if ws:
        (root / "Cargo.toml").write_text('[workspace]\nmembers = ["*"]\n')
        root = root / name
        root.mkdir()
    (root / "Cargo.toml").write_text(f'[package]\nname = "{name}"\nversion = "0.1.0"\n')
    return root


def put(path, data):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def test_workspace_root_is_found_from_a_member(tmp_path):
    member = make_pkg(tmp_path / "ws", ws=True)
    assert find_workspace_root(str(member)) == str(tmp_path / "ws")
    assert find_workspace_root(str(make_pkg(tmp_path / "solo"))) is None


def test_target_dir_sources_in_order(tmp_path):
    member = make_pkg(tmp_path / "ws", ws=True)
    (tmp_path / "ws" / ".cargo").mkdir()
    (tmp_path / "ws" / ".cargo" / "config.toml").write_text('[build]\ntarget-dir = "tgt"\n')
    ctx = CargoContext(
        cwd=str(member),
        cmdline=("cargo", "publish", "--target-dir=../cli-target"),
        env=(("CARGO_TARGET_DIR", "/abs/env-target"),),
    )
    dirs = target_dirs(ctx)
    assert dirs[:4] == [
        str(tmp_path / "ws" / "cli-target"),
        "/abs/env-target",
        str(tmp_path / "ws" / "tgt"),
        str(tmp_path / "ws" / "target"),
    ]
    paths = candidate_paths(
        "foo",
        "0.1.0",
        CargoContext(
            cwd=str(member), open_crates=("/x/held/foo-0.1.0.crate", "/x/held/bar-1.0.0.crate")
        ),
    )
    assert paths[0] == "/x/held/foo-0.1.0.crate"
    assert "/x/held/bar-1.0.0.crate" not in paths
    assert str(tmp_path / "ws/target/package/tmp-crate/foo-0.1.0.crate") in paths
    assert str(tmp_path / "ws/target/package/foo-0.1.0.crate") in paths


@pytest.mark.parametrize("sub", ["package/tmp-crate", "package", "package/tmp-registry"])
def test_inspect_publish_finds_the_crate_in_each_place(tmp_path, sub):
    pkg = make_pkg(tmp_path / "foo")
    data = h.crate()
    put(pkg / "target" / sub / "foo-0.1.0.crate", data)
    c = inspect_publish("foo", "0.1.0", sha(data), CargoContext(cwd=str(pkg)))
    assert c.verified, c.reason
    assert c.path == str(pkg / "target" / sub / "foo-0.1.0.crate")
    assert c.elapsed < 0.2


def test_matching_file_wins_over_a_tampered_one(tmp_path):
    pkg = make_pkg(tmp_path / "foo")
    good = h.crate()
    put(pkg / "target/package/tmp-crate/foo-0.1.0.crate", h.crate(files={"src/lib.rs": b"evil"}))
    put(pkg / "target/package/tmp-registry/foo-0.1.0.crate", good)
    c = inspect_publish("foo", "0.1.0", sha(good), CargoContext(cwd=str(pkg)))
    assert c.verified and present(c.path).endswith("tmp-registry/foo-0.1.0.crate")


def test_tampered_crate_shows_mismatch_and_no_files(tmp_path):
    pkg = make_pkg(tmp_path / "foo")
    signed = h.crate()
    tampered = put(pkg / "target/package/foo-0.1.0.crate", h.crate(files={"src/lib.rs": b"evil"}))
    c = inspect_publish("foo", "0.1.0", sha(signed), CargoContext(cwd=str(pkg)))
    assert not c.verified and c.files == () and c.listing is None
    assert c.path == str(tampered) and c.actual_sha256 == sha(tampered.read_bytes())
    assert "differs from the checksum" in c.reason


def test_nothing_found_or_no_cwd(tmp_path):
    c = inspect_publish("foo", "0.1.0", "a" * 64, CargoContext(cwd=str(tmp_path)))
    assert not c.verified and "no packaged foo-0.1.0.crate was found" in c.reason
    assert c.searched
    c = inspect_publish("foo", "0.1.0", "a" * 64, CargoContext())
    assert not c.verified and "working directory is unknown" in c.reason


def test_fifo_and_device_in_place_of_the_crate_do_not_hang(tmp_path):
    pkg = make_pkg(tmp_path / "foo")
    d = pkg / "target/package/tmp-crate"
    d.mkdir(parents=True)
    os.mkfifo(d / "foo-0.1.0.crate")
    (pkg / "target/package/foo-0.1.0.crate").symlink_to("/dev/zero")
    done = threading.Event()
    result = []

    def run():
        result.append(inspect_publish("foo", "0.1.0", "a" * 64, CargoContext(cwd=str(pkg))))
        done.set()

    threading.Thread(target=run, daemon=True).start()
    assert done.wait(5), "inspect_publish blocked on a FIFO or device"
    assert not result[0].verified


def test_oversized_crate_is_not_read(tmp_path):
    pkg = make_pkg(tmp_path / "foo")
    data = h.crate()
    put(pkg / "target/package/foo-0.1.0.crate", data)
    c = inspect_publish(
        "foo", "0.1.0", sha(data), CargoContext(cwd=str(pkg)), limits=Limits(max_crate_bytes=100)
    )
    assert not c.verified and "larger than" in c.reason

"""The tar subset cargo writes (issue 12, item 1): a listing is called verified only when it
is exactly what cargo unpacks. Archives are built in memory (tests/hostile_archives.py); the
differential test at the end unpacks the whole corpus with the real cargo."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import hostile_archives as h
import pytest

from gui_approver.cli.main import main as cli_main
from gui_approver.review.archive import UNSUPPORTED_WARNING, check_subset, components
from gui_approver.review.contents import CrateContents, inspect_crate_bytes
from gui_approver.review.inspect import to_json
from gui_approver.review.text import escape_text

VERS = "1.0.0"
CORPUS = h.corpus(VERS)
GOOD = [s for s in CORPUS if s.startswith("ok_")]
BAD = [s for s in CORPUS if not s.startswith("ok_")]
ATTACKS = ["dup_dot", "dup_empty", "pax_then_gnu"]  # the three reproduced in issue 12


def review(shape: str) -> CrateContents:
    name, data = CORPUS[shape]
    return inspect_crate_bytes(data, name=name, vers=VERS, cksum=hashlib.sha256(data).hexdigest())


@pytest.mark.parametrize("shape", ATTACKS)
def test_issue12_attacks_are_not_called_verified(shape: str) -> None:
    c = review(shape)
    assert c.verified  # the sha256 matches ...
    text = c.summary()
    assert not text.lower().startswith("verified"), text  # ... but the list is not trusted
    assert UNSUPPORTED_WARNING in text
    assert not c.listing_verified and not c.clean
    assert c.unsupported
    doc = to_json(c)
    assert doc["verified"] is False and doc["why_not_verified"] == UNSUPPORTED_WARNING
    assert "verified" not in "\n".join(c.lines()).lower().replace("not verified", "")


@pytest.mark.parametrize("shape", GOOD)
def test_archives_like_cargos_are_verified(shape: str) -> None:
    c = review(shape)
    assert c.listing_verified, c.unsupported
    assert c.summary().startswith("verified: ")
    assert c.clean


@pytest.mark.parametrize("shape", BAD)
def test_every_hostile_shape_is_refused(shape: str) -> None:
    c = review(shape)
    assert not c.listing_verified and c.why_not_verified
    assert not c.summary().startswith("verified")


def test_corpus_is_large_enough() -> None:
    assert len(CORPUS) >= 30 and len(BAD) >= 30


def test_components_like_rust_path() -> None:
    assert components("a/./b//c/") == ("a", "b", "c")
    assert components("a/../b") == ("a", "..", "b")


def test_subset_check_counts_gzip_members_and_trailing_bytes() -> None:
    raw = h.raw_entry("foo-1.0.0/Cargo.toml", b"x") + h.END
    assert check_subset(raw, "foo-1.0.0").ok
    assert not check_subset(raw, "foo-1.0.0", gzip_members=2).ok
    assert not check_subset(raw, "foo-1.0.0", gzip_trailing=3).ok
    assert not check_subset(raw, None).ok


def test_history_does_not_record_an_unverified_listing(tmp_path: Path) -> None:
    from gui_approver.review.history import History

    with pytest.raises(ValueError):
        History(tmp_path).record_approved("sparse+http://x/", review("dup_dot"))


def test_inspect_cli_text_json_and_exit_status(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    name, data = CORPUS["dup_dot"]
    bad = tmp_path / f"{name}-{VERS}.crate"
    bad.write_bytes(data)
    good_name, good_data = CORPUS["ok_plain"]
    good = tmp_path / "renamed.crate"
    good.write_bytes(good_data)
    assert cli_main(["inspect", str(bad)]) == 2
    out = capsys.readouterr().out
    assert UNSUPPORTED_WARNING in out and hashlib.sha256(data).hexdigest() in out
    assert cli_main(["inspect", str(good), "--name", good_name, "--vers", VERS, "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["verified"] is True and doc["checksum"] == hashlib.sha256(good_data).hexdigest()
    assert {f["path"] for f in doc["files"]} == {"Cargo.toml", "src/lib.rs", "README.md"}
    assert all(len(f["sha256"]) == 64 for f in doc["files"])
    # a file name that does not say NAME-VERS, a missing file: clear errors, exit 1
    assert cli_main(["inspect", str(good)]) == 1
    assert "--name" in capsys.readouterr().err
    assert cli_main(["inspect", str(tmp_path / "nope-1.0.0.crate")]) == 1
    assert "does not exist" in capsys.readouterr().err


def test_mutated_archives_never_raise_and_faithful_means_one_reading() -> None:
    """2,000 random byte flips in cargo-like tars: the check never raises, and whenever a
    listing is called faithful its entries are exactly the raw headers' (tar-rs's reading)."""
    import gzip
    import random

    rnd = random.Random(12)
    bases = {CORPUS[s][0]: gzip.decompress(CORPUS[s][1]) for s in GOOD}
    faithful = 0
    for _ in range(2000):
        name, raw = rnd.choice(list(bases.items()))
        buf = bytearray(raw)
        for _ in range(rnd.randint(1, 4)):
            buf[rnd.randrange(min(len(buf), 4096))] = rnd.randrange(256)
        check = check_subset(bytes(buf), f"{name}-{VERS}")
        lst = inspect_crate_bytes(
            h.gz(bytes(buf)),
            name=name,
            vers=VERS,
            cksum=hashlib.sha256(h.gz(bytes(buf))).hexdigest(),
        ).listing
        assert lst is not None
        if lst.faithful:
            faithful += 1
            assert check.ok
            walked = sorted(
                (escape_text(m.path.decode().rstrip("/")), m.size) for m in check.members
            )
            listed = sorted(
                (
                    f"{name}-{VERS}/{f.path}".rstrip("/") if f.path != f"{name}-{VERS}" else f.path,
                    f.size,
                )
                for f in lst.files
            )
            assert walked == listed
    assert faithful > 0  # flips in file data keep an archive inside the subset

"""Differential: the archive check against what the real cargo packages and unpacks (the corpus of
tests/hostile_archives.py)."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import cargo_unpack
import hostile_archives as h
import pytest

from gui_approver.cli.main import main as cli_main

VERS = "1.0.0"
CORPUS = h.corpus(VERS)
GOOD = [s for s in CORPUS if s.startswith("ok_")]
ATTACKS = ["dup_dot", "dup_empty", "pax_then_gnu"]  # the three reproduced in issue 12


@pytest.mark.e2e
def test_differential_inspect_against_real_cargo(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Every archive `inspect --json` calls verified is, path for path and byte for byte,
    what the real cargo unpacks; every archive where they differ is not called verified."""
    crates = {name: data for name, data in CORPUS.values()}
    unpacked = cargo_unpack.unpack_all(crates, VERS, tmp_path / "cargo")
    files = tmp_path / "crates"
    files.mkdir()
    verified: list[str] = []
    differ: list[str] = []
    for shape, (name, data) in CORPUS.items():
        path = files / f"{name}-{VERS}.crate"
        path.write_bytes(data)
        rc = cli_main(["inspect", str(path), "--json"])
        doc = json.loads(capsys.readouterr().out)
        assert rc == (0 if doc["verified"] else 2)
        listed = {f["path"]: (f["size"], f["sha256"]) for f in doc["files"] if f["kind"] == "file"}
        if name in unpacked.refused:
            same = False
        else:
            tree = unpacked.trees[name]
            cargo_files = {p: (len(b), hashlib.sha256(b).hexdigest()) for p, b in tree.items()}
            same = cargo_files == listed and not unpacked.odd[name]
            if doc["verified"]:
                assert set(tree) == set(listed), shape
                for p, b in tree.items():  # byte for byte
                    assert b == _member(data, name, p), (shape, p)
        if doc["verified"]:
            verified.append(shape)
            assert same, f"{shape}: inspect says verified but cargo unpacked something else"
        if not same:
            differ.append(shape)
            assert not doc["verified"], shape
    assert sorted(verified) == sorted(GOOD)
    for shape in ATTACKS:  # reproduced: cargo really unpacks the malicious lib.rs
        name = CORPUS[shape][0]
        assert unpacked.trees[name]["src/lib.rs"] == h.EVIL, shape
    same_unverified = len(CORPUS) - len(verified) - len(differ)
    print(
        f"\ndifferential corpus: {len(CORPUS)} archives; {len(verified)} verified, each "
        f"identical to cargo's unpacking; {len(differ)} where cargo's result differs from "
        f"the list ({len(unpacked.refused)} refused by cargo), none verified; "
        f"{same_unverified} outside the subset but unpacked identically, not verified "
        f"either; {unpacked.cargo_runs} cargo runs",
        file=sys.stderr,
    )


def _member(data: bytes, name: str, path: str) -> bytes | None:
    from gui_approver.review.contents import read_member

    return read_member(data, path, name=name, vers=VERS, max_bytes=1 << 20)


@pytest.mark.e2e
def test_what_real_cargo_packages_is_verified(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The positive side: `cargo package` output (GNU headers, a GNU long name for a path
    over 100 bytes) is inside the subset."""
    import os

    crate = tmp_path / "realpkg"
    deep = crate / "src" / ("d" * 60) / ("e" * 50)
    deep.mkdir(parents=True)
    (crate / "Cargo.toml").write_text(
        '[package]\nname = "realpkg"\nversion = "0.3.0"\nedition = "2021"\n'
        'description = "x"\nlicense = "MIT"\nbuild = "build.rs"\n'
    )
    (crate / "src" / "lib.rs").write_text("pub fn f() {}\n")
    (crate / "build.rs").write_text("fn main() {}\n")
    (deep / ("f" * 40 + ".rs")).write_text("// deep\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("CARGO_")}
    env.update(CARGO_HOME=str(tmp_path / "home"), CARGO_TERM_COLOR="never")
    proc = subprocess.run(
        ["cargo", "package", "--no-verify", "--allow-dirty", "--offline"],
        cwd=crate,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    path = crate / "target" / "package" / "realpkg-0.3.0.crate"
    assert cli_main(["inspect", str(path), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["verified"] is True and doc["unsupported"] == []
    paths = {f["path"] for f in doc["files"]}
    assert f"src/{'d' * 60}/{'e' * 50}/{'f' * 40}.rs" in paths
    assert any(f.startswith("build script: build.rs") for f in doc["flags"])

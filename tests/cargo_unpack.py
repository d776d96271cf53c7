"""Unpack ``.crate`` files with the real cargo: a local registry (``local-registry``
source replacing crates.io) holding the crates, one consumer that depends on all of them,
``cargo fetch --offline``; what cargo unpacked is read back from
``$CARGO_HOME/registry/src/*/<name>-<vers>/``. Cargo checks each ``.crate`` against the
index's ``cksum`` (the sha256 of the file) before it unpacks it.

A crate cargo refuses to unpack stops ``cargo fetch`` as a whole, so a refused crate is
dropped from the consumer and cargo run again (once per refused crate; the rest of the run
is one cargo invocation). ``tests`` is not a package: pytest imports this as
``cargo_unpack``.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path


def index_path(name: str) -> str:
    n = name.lower()
    if len(n) <= 2:
        return f"{len(n)}/{n}"
    if len(n) == 3:
        return f"3/{n[0]}/{n}"
    return f"{n[:2]}/{n[2:4]}/{n}"


@dataclass
class Unpacked:
    #: name -> {relative path: bytes} of regular files cargo unpacked (``.cargo-ok`` left out)
    trees: dict[str, dict[str, bytes]] = field(default_factory=dict)
    #: name -> anything else found in the tree (symlinks, fifos, ...): relative path -> kind
    odd: dict[str, dict[str, str]] = field(default_factory=dict)
    #: name -> cargo's error for a crate it refused
    refused: dict[str, str] = field(default_factory=dict)
    cargo_runs: int = 0


def _env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CARGO_")}
    env.update(CARGO_HOME=str(home), CARGO_TERM_COLOR="never", CARGO_NET_OFFLINE="true")
    return env


def unpack_all(crates: dict[str, bytes], vers: str, root: Path) -> Unpacked:
    """``crates``: name -> ``.crate`` bytes (all of version ``vers``)."""
    reg = root / "registry"
    (reg / "index").mkdir(parents=True)
    for name, data in crates.items():
        entry = {
            "name": name,
            "vers": vers,
            "deps": [],
            "features": {},
            "yanked": False,
            "cksum": hashlib.sha256(data).hexdigest(),
        }
        p = reg / "index" / index_path(name)
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(json.dumps(entry) + "\n")
        (reg / f"{name}-{vers}.crate").write_bytes(data)
    home = root / "cargo-home"
    home.mkdir()
    (home / "config.toml").write_text(
        '[source.crates-io]\nreplace-with = "hostile"\n'
        f'[source.hostile]\nlocal-registry = "{reg}"\n[net]\noffline = true\n'
    )
    consumer = root / "consumer"
    (consumer / "src").mkdir(parents=True)
    (consumer / "src" / "lib.rs").write_text("")
    out = Unpacked()
    pending = dict(crates)
    while pending:
        deps = "".join(f'{n} = "={vers}"\n' for n in sorted(pending))
        (consumer / "Cargo.toml").write_text(
            '[package]\nname = "consumer"\nversion = "0.0.0"\nedition = "2021"\n'
            f"[dependencies]\n{deps}"
        )
        (consumer / "Cargo.lock").unlink(missing_ok=True)
        proc = subprocess.run(
            ["cargo", "fetch", "--offline"],
            cwd=consumer,
            env=_env(home),
            capture_output=True,
            text=True,
            timeout=300,
        )
        out.cargo_runs += 1
        if proc.returncode == 0:
            break
        bad = [
            n
            for n in pending
            if re.search(
                rf"`{re.escape(n)} v{re.escape(vers)}`|\b{re.escape(n)}-"
                rf"{re.escape(vers)}\b|`{re.escape(n)}`",
                proc.stderr,
            )
        ]
        if len(bad) != 1:
            raise AssertionError(f"cannot tell which crate cargo refused:\n{proc.stderr}")
        out.refused[bad[0]] = proc.stderr.strip()
        del pending[bad[0]]
    src = home / "registry" / "src"
    for name in pending:
        dirs = list(src.glob(f"*/{name}-{vers}"))
        assert len(dirs) == 1, (name, dirs)
        tree: dict[str, bytes] = {}
        odd: dict[str, str] = {}
        base = dirs[0]
        for dirpath, dirnames, filenames in os.walk(base):
            for fname in [*filenames, *dirnames]:
                p = Path(dirpath) / fname
                rel = p.relative_to(base).as_posix()
                if p.is_symlink():
                    odd[rel] = "symlink"
                elif p.is_file():
                    if rel != ".cargo-ok":
                        tree[rel] = p.read_bytes()
                elif not p.is_dir():
                    odd[rel] = "other"
        out.trees[name] = tree
        out.odd[name] = odd
    shutil.rmtree(home / "registry", ignore_errors=True)
    return out

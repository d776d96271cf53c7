"""Where cargo put the ``.crate`` it asks us to sign: the requesting cargo's target
directories (from its command line, environment and ``.cargo/config.toml``) and the files it
holds open. Plain data in, paths out; no psutil.

Measured with cargo 1.95 while the publish request is pending: cargo packages into
``<target>/package/tmp-crate/<name>-<vers>.crate`` (plus a copy in
``<target>/package/tmp-registry/``) and keeps that file open until the upload; ``cargo
package`` writes ``<target>/package/<name>-<vers>.crate``.
"""

from __future__ import annotations

import os
import stat
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

#: Largest .cargo/config.toml read while looking for a target directory.
MAX_CONFIG_BYTES: Final = 1024 * 1024


@dataclass(frozen=True)
class CargoContext:
    """What is known about the requesting cargo process (from
    :mod:`gui_approver.review.requester`; plain data so this module needs no psutil)."""

    cwd: str | None = None
    cmdline: tuple[str, ...] = ()
    #: CARGO_TARGET_DIR / CARGO_BUILD_TARGET_DIR / CARGO_HOME from cargo's environment
    env: tuple[tuple[str, str], ...] = ()
    #: ``.crate`` files cargo holds open right now (absolute paths)
    open_crates: tuple[str, ...] = ()

    def getenv(self, key: str) -> str | None:
        for k, v in self.env:
            if k == key:
                return v
        return None


def _option(cmdline: Sequence[str], *names: str) -> list[str]:
    """Values of ``--opt VALUE`` / ``--opt=VALUE`` in a cargo command line (all of them)."""
    out: list[str] = []
    args = list(cmdline[1:])
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "--":
            break
        for n in names:
            if arg == n and i + 1 < len(args):
                out.append(args[i + 1])
                i += 1
                break
            if arg.startswith(n + "="):
                out.append(arg[len(n) + 1 :])
                break
        i += 1
    return out


def safe_read(path: str, max_bytes: int) -> bytes | None:
    """Read a regular file without following it into a FIFO or device; None otherwise."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY)
    except OSError:
        return None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_size > max_bytes:
            return None
        with os.fdopen(os.dup(fd), "rb") as fh:
            return fh.read(max_bytes + 1)
    except OSError:
        return None
    finally:
        os.close(fd)


def _toml_file(path: str) -> dict[str, Any] | None:
    data = safe_read(path, MAX_CONFIG_BYTES)
    if data is None:
        return None
    try:
        return tomllib.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError, RecursionError, ValueError):
        return None


def _ancestors(start: str, depth: int = 64) -> list[str]:
    out = []
    cur = os.path.abspath(start)
    for _ in range(depth):
        out.append(cur)
        parent = os.path.dirname(cur)
        if parent == cur:
            break
        cur = parent
    return out


def find_workspace_root(start: str) -> str | None:
    """The nearest directory at or above ``start`` whose Cargo.toml has ``[workspace]``
    (or the one a package's ``package.workspace`` points to)."""
    for d in _ancestors(start):
        doc = _toml_file(os.path.join(d, "Cargo.toml"))
        if doc is None:
            continue
        if isinstance(doc.get("workspace"), dict):
            return d
        pkg = doc.get("package")
        if isinstance(pkg, dict) and isinstance(pkg.get("workspace"), str):
            return os.path.normpath(os.path.join(d, pkg["workspace"]))
    return None


def _config_target_dirs(start: str, cargo_home: str | None) -> list[str]:
    """``[build] target-dir`` from .cargo/config(.toml) files cargo would read."""
    out: list[str] = []
    dirs = _ancestors(start)
    for d in dirs:
        for fname in ("config.toml", "config"):
            doc = _toml_file(os.path.join(d, ".cargo", fname))
            if doc is None:
                continue
            build = doc.get("build")
            if isinstance(build, dict) and isinstance(build.get("target-dir"), str):
                out.append(os.path.join(d, build["target-dir"]))
    if cargo_home:
        for fname in ("config.toml", "config"):
            doc = _toml_file(os.path.join(cargo_home, fname))
            build = doc.get("build") if doc else None
            if isinstance(build, dict) and isinstance(build.get("target-dir"), str):
                out.append(os.path.join(os.path.dirname(cargo_home), build["target-dir"]))
    return out


def target_dirs(ctx: CargoContext) -> list[str]:
    """Every target directory cargo may be using, most specific first."""
    cwd = ctx.cwd
    out: list[str] = []

    def add(p: str | None, base: str | None = cwd) -> None:
        if not p:
            return
        if not os.path.isabs(p):
            if base is None:
                return
            p = os.path.join(base, p)
        p = os.path.normpath(p)
        if p not in out:
            out.append(p)

    for value in _option(ctx.cmdline, "--target-dir"):
        add(value)
    add(ctx.getenv("CARGO_TARGET_DIR"))
    add(ctx.getenv("CARGO_BUILD_TARGET_DIR"))
    manifest_dirs: list[str] = []
    for mp in _option(ctx.cmdline, "--manifest-path"):
        full = mp if os.path.isabs(mp) or cwd is None else os.path.join(cwd, mp)
        manifest_dirs.append(os.path.dirname(os.path.normpath(full)))
    if cwd:
        manifest_dirs.append(cwd)
    for d in manifest_dirs:
        for t in _config_target_dirs(d, ctx.getenv("CARGO_HOME")):
            add(t)
    for d in manifest_dirs:
        root = find_workspace_root(d)
        if root:
            add(os.path.join(root, "target"))
        add(os.path.join(d, "target"))
    return out


def candidate_paths(name: str, vers: str, ctx: CargoContext) -> list[str]:
    """Where the ``.crate`` for ``name`` ``vers`` may be, best first: the files cargo holds
    open, then ``<target>/package/tmp-crate/``, ``<target>/package/`` and
    ``<target>/package/tmp-registry/`` of every plausible target directory."""
    fname = f"{name}-{vers}.crate"
    out: list[str] = [p for p in ctx.open_crates if os.path.basename(p) == fname]
    for t in target_dirs(ctx):
        for sub in ("package/tmp-crate", "package", "package/tmp-registry"):
            p = os.path.join(t, sub, fname)
            if p not in out:
                out.append(p)
    return out

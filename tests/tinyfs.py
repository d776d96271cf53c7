"""A really full disk for fault tests: a tiny tmpfs mounted (as root) on a test directory.

    with tiny_tmpfs(path) as mnt:      # skips the test when it cannot mount (not root...)
        filler = fill(mnt)             # write until ENOSPC; the fs is now full
        ...                            # every write that needs a new page fails with ENOSPC
        filler.unlink()                # space again

Plain helpers; the caller decides how to skip (``can_mount()`` says why not).
"""

from __future__ import annotations

import contextlib
import errno
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path


def can_mount() -> str | None:
    """None when tmpfs mounts are possible here, else the reason they are not."""
    if os.geteuid() != 0:
        return "mounting a tiny tmpfs (a real full disk) needs root"
    return None


@contextlib.contextmanager
def tiny_tmpfs(path: Path, size_kb: int = 64) -> Iterator[Path]:
    """Mount a ``size_kb`` tmpfs (mode 0700) on ``path`` for the duration of the block."""
    path.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(
        [
            "mount",
            "-t",
            "tmpfs",
            "-o",
            f"size={size_kb}k,mode=0700,nr_inodes=64",
            "tmpfs",
            str(path),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise OSError(errno.EPERM, f"cannot mount a tmpfs on {path}: {result.stderr.strip()}")
    try:
        yield path
    finally:
        if subprocess.run(["umount", str(path)], capture_output=True, check=False).returncode:
            subprocess.run(["umount", "-l", str(path)], capture_output=True, check=False)


def fill(directory: Path, name: str = ".filler") -> Path:
    """Write ``directory/name`` until the file system says ENOSPC; return its path."""
    filler = directory / name
    block = b"\0" * 4096
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        while True:
            try:
                if os.write(fd, block) <= 0:
                    break
            except OSError as exc:
                if exc.errno == errno.ENOSPC:
                    break
                raise
    finally:
        os.close(fd)
    return filler

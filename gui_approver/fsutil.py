"""One way to replace a file: write a private temporary file beside it, fsync, rename."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any


def atomic_write(path: Path, data: bytes, *, fsync: bool = True, mode: int = 0o600) -> None:
    """Replace ``path`` with ``data`` so readers see the old or the new file, never a torn
    one. The parent directory is created (0700) if needed; the file gets ``mode``."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            if fsync:
                os.fsync(fh.fileno())
        if mode != 0o600:
            os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def read_index(path: Path, field: str) -> list[dict[str, Any]] | None:
    """The entries of a versioned index file (``{"version": 1, field: [...]}``); None when
    the file does not exist. Raises ValueError for anything else than that shape."""
    try:
        raw = path.read_text("utf-8")
    except FileNotFoundError:
        return None
    obj = json.loads(raw)
    if not isinstance(obj, dict) or obj.get("version") != 1:
        raise ValueError("unknown version")
    items = obj.get(field, [])
    if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
        raise ValueError(f"{field!r} is not a list of objects")
    return items


def write_index(path: Path, field: str, items: list[dict[str, Any]]) -> None:
    """Atomically write a versioned index file (0600)."""
    data = json.dumps({"version": 1, field: items}, indent=2)
    atomic_write(path, data.encode() + b"\n")

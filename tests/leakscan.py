"""Find a signing key's secret where it must never be: files the app wrote, captured output.

    from leakscan import scan, secret_forms
    hits = scan(secret_key, paths=[app_env.dirs.root, runtime_dir], texts=[stdout, stderr])
    assert hits == [], hits

``secret_key`` is a ``k3.secret...`` PASERK (str or gui_approver Secret) or a SigningKey, or a
bearer token (any other string or Secret: searched as is, hex, base64, base64url). The
forms searched are the PASERK itself, the 48-byte private scalar as raw bytes, lower- and
upper-case hex, standard and URL-safe base64 (padded or not), and its decimal digits. Files
are read as bytes (binary files too; sockets, FIFOs and devices are skipped); a directory is
walked without following symlinks. Nothing here prints the secret: a hit names the form and
where it was found, never the matched text.

Plain Python, no pytest dependency: the cargo end-to-end tests and scripts can use it too.
"""

from __future__ import annotations

import base64
import os
import stat
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["Hit", "pin_forms", "scan", "scan_pin", "secret_forms"]

#: Files larger than this are read in overlapping chunks.
_CHUNK = 4 * 1024 * 1024


@dataclass(frozen=True)
class Hit:
    where: str  # a file path, or "text[3]" for the fourth captured string
    form: str  # which encoding of the secret matched ("paserk", "scalar-hex", ...)

    def __str__(self) -> str:
        return f"{self.form} in {self.where}"


def _paserk_of(secret: Any) -> str:
    if hasattr(secret, "secret_paserk"):  # gui_approver.core.keys.store.SigningKey
        secret = secret.secret_paserk()
    if hasattr(secret, "expose"):  # gui_approver.secret.Secret
        secret = secret.expose()
    if not isinstance(secret, str) or not secret.startswith("k3.secret."):
        raise ValueError("expected a k3.secret PASERK, a Secret or a SigningKey")
    return secret.strip()


def _bearer_forms(token: str) -> dict[str, bytes]:
    raw = token.strip().encode()
    return {
        "token": raw,
        "token-hex": raw.hex().encode(),
        "token-base64": base64.b64encode(raw).rstrip(b"="),
        "token-base64url": base64.urlsafe_b64encode(raw).rstrip(b"="),
    }


def secret_forms(secret: Any) -> dict[str, bytes]:
    """Every encoding of the secret to look for, by name. A string (or Secret) that is not a
    ``k3.secret`` PASERK is a bearer token: itself, hex, base64 and base64url."""
    if hasattr(secret, "expose") and not hasattr(secret, "secret_paserk"):
        secret = secret.expose()
    if isinstance(secret, str) and not secret.strip().startswith("k3.secret."):
        return _bearer_forms(secret)
    paserk = _paserk_of(secret)
    data = paserk[len("k3.secret.") :]
    scalar = base64.urlsafe_b64decode(data + "=" * (-len(data) % 4))
    if len(scalar) != 48:
        raise ValueError("a k3.secret PASERK holds a 48-byte scalar")
    std = base64.b64encode(scalar)
    url = base64.urlsafe_b64encode(scalar)
    forms = {
        "paserk": paserk.encode(),
        "scalar-raw": scalar,
        "scalar-hex": scalar.hex().encode(),
        "scalar-HEX": scalar.hex().upper().encode(),
        "scalar-base64": std.rstrip(b"="),
        "scalar-base64url": url.rstrip(b"="),
        "scalar-decimal": str(int.from_bytes(scalar, "big")).encode(),
    }
    return forms


def _files(path: Path) -> Iterable[Path]:
    try:
        st = path.lstat()
    except OSError:
        return
    if stat.S_ISREG(st.st_mode):
        yield path
    elif stat.S_ISDIR(st.st_mode):
        for root, dirs, files in os.walk(path, followlinks=False):
            dirs.sort()
            for name in sorted(files):
                p = Path(root) / name
                try:
                    if stat.S_ISREG(p.lstat().st_mode):
                        yield p
                except OSError:
                    continue


def _file_contains(path: Path, needles: dict[str, bytes]) -> list[str]:
    longest = max(len(n) for n in needles.values())
    found: set[str] = set()
    try:
        with open(path, "rb") as fh:
            carry = b""
            while True:
                chunk = fh.read(_CHUNK)
                if not chunk:
                    break
                window = carry + chunk
                for form, needle in needles.items():
                    if form not in found and needle in window:
                        found.add(form)
                carry = window[-(longest - 1) :] if longest > 1 else b""
    except OSError:
        return []
    return sorted(found)


def scan(
    secret: Any,
    paths: Iterable[str | os.PathLike[str]] = (),
    texts: Iterable[str | bytes | None] = (),
) -> list[Hit]:
    """Return where any form of ``secret`` occurs in ``paths`` (files or directory trees)
    and ``texts`` (captured stdout/stderr, log strings...). Empty list: no leak."""
    return _scan(secret_forms(secret), paths, texts)


def pin_forms(pin: str) -> dict[str, bytes]:
    """Encodings of a PIN or passphrase to look for (use a distinctive one in tests)."""
    raw = pin.encode()
    return {
        "pin": raw,
        "pin-utf16": pin.encode("utf-16-le"),
        "pin-hex": raw.hex().encode(),
        "pin-base64": base64.b64encode(raw).rstrip(b"="),
        "pin-json-escaped": pin.encode("unicode_escape"),
    }


def scan_pin(
    pin: str,
    paths: Iterable[str | os.PathLike[str]] = (),
    texts: Iterable[str | bytes | None] = (),
) -> list[Hit]:
    """Like :func:`scan`, for a PIN or passphrase."""
    return _scan(pin_forms(pin), paths, texts)


def _scan(
    needles: dict[str, bytes],
    paths: Iterable[str | os.PathLike[str]],
    texts: Iterable[str | bytes | None],
) -> list[Hit]:
    hits: list[Hit] = []
    seen: set[Path] = set()
    for root in paths:
        for file in _files(Path(root)):
            real = file.resolve()
            if real in seen:
                continue
            seen.add(real)
            hits.extend(Hit(str(file), form) for form in _file_contains(file, needles))
    for i, text in enumerate(texts):
        if text is None:
            continue
        data = text.encode("utf-8", "surrogateescape") if isinstance(text, str) else text
        hits.extend(Hit(f"text[{i}]", form) for form, n in needles.items() if n in data)
    return hits

"""``gui-approver inspect FILE.crate``: the review the approval dialog would show for a
``.crate`` file, as text or JSON. Qt-free.

The checksum is the file's own sha256 (the one cargo would ask to sign for it). Whether the
listing is *verified*, i.e. exactly what cargo unpacks, is decided exactly as in the dialog
(:attr:`~gui_approver.review.contents.CrateContents.listing_verified`).
"""

from __future__ import annotations

import hashlib
import os
from typing import Any

from gui_approver.errors import ConfigError
from gui_approver.review.contents import DEFAULT_LIMITS, CrateContents, Limits, inspect_crate_bytes
from gui_approver.review.locate import safe_read
from gui_approver.review.request import split_crate_filename


def inspect_file(
    path: str,
    *,
    name: str | None = None,
    vers: str | None = None,
    limits: Limits = DEFAULT_LIMITS,
) -> CrateContents:
    """Verify and list the ``.crate`` at ``path``. ``name``/``vers`` default to the ones in
    its file name (``<name>-<vers>.crate``). Raises :class:`ConfigError` for a file that
    cannot be read or names that cannot be determined."""
    if (name is None) != (vers is None):
        raise ConfigError(
            "give both --name and --vers, or neither",
            hint="without them both are taken from NAME-VERS.crate",
        )
    if name is None or vers is None:
        parsed = split_crate_filename(os.path.basename(path))
        if parsed is None:
            raise ConfigError(
                f"cannot tell the crate name and version from the file name "
                f"{os.path.basename(path)[:200]!r}",
                hint="pass --name NAME --vers VERSION (entries must lie below NAME-VERSION/)",
            )
        name, vers = parsed
    if not os.path.lexists(path):
        raise ConfigError(f"{path[:400]!r} does not exist")
    data = safe_read(path, limits.max_crate_bytes)
    if data is None:
        raise ConfigError(
            f"{path[:400]!r} is not a readable regular file of at most "
            f"{limits.max_crate_bytes} bytes"
        )
    cksum = hashlib.sha256(data).hexdigest()
    return inspect_crate_bytes(
        data, name=name, vers=vers, cksum=cksum, path=path, limits=limits, deadline=None
    )


def flags(contents: CrateContents) -> list[str]:
    """What the dialog marks for a second look, most serious first."""
    out: list[str] = []
    why = contents.why_not_verified
    if why is not None:
        out.append(f"NOT VERIFIED: {why}")
    out.extend(f"unsupported tar feature: {u}" for u in contents.unsupported)
    if contents.verified and contents.listing is not None:
        m = contents.listing.manifest
        if contents.listing.has_build_script:
            build = m.build if m is not None and m.build else "build.rs"
            out.append(
                f"build script: {build} (runs on the machine of everyone who builds this crate)"
            )
        if m is not None and m.proc_macro:
            out.append("proc-macro crate (runs code inside the compiler)")
        if m is not None and m.links:
            out.append(f"links native library {m.links}")
    out.extend(f"problem in the archive: {p}" for p in contents.problems)
    return out


def to_json(contents: CrateContents) -> dict[str, Any]:
    lst = contents.listing if contents.verified else None
    m = lst.manifest if lst is not None else None
    return {
        "file": contents.path,
        "name": contents.name,
        "vers": contents.vers,
        "checksum": contents.actual_sha256,
        "verified": contents.listing_verified,
        "why_not_verified": contents.why_not_verified,
        "summary": contents.summary(),
        "complete": lst.complete if lst is not None else False,
        "unsupported": list(contents.unsupported),
        "problems": list(contents.problems),
        "flags": flags(contents),
        "manifest": None
        if m is None
        else {
            "name": m.name,
            "version": m.version,
            "description": m.description,
            "license": m.license,
            "license_file": m.license_file,
            "repository": m.repository,
            "build": m.build,
            "proc_macro": m.proc_macro,
            "links": m.links,
            "error": m.error,
        },
        "total_size": lst.total_size if lst is not None else 0,
        "compressed_size": lst.compressed_size if lst is not None else 0,
        "files": [
            {"path": f.path, "size": f.size, "kind": f.kind, "sha256": f.sha256, "note": f.note}
            for f in (lst.files if lst is not None else ())
        ],
    }


def to_text(contents: CrateContents) -> str:
    lines = contents.lines()
    extra = [f"! {f}" for f in flags(contents) if f.startswith("NOT VERIFIED")]
    return "\n".join([*extra, *lines, f"sha256: {contents.actual_sha256}"])


__all__ = ["flags", "inspect_file", "to_json", "to_text"]

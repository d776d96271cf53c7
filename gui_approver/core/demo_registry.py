"""The app's side of the reference (demo) registry: register a public key in its data dir.

The UI reaches the registry package only through here, so the verifier stays a separate
component the signing side merely calls.
"""

from __future__ import annotations

from pathlib import Path

from gui_approver.errors import ConfigError


def register_public_key(data_dir: Path, public: str, subject: str | None) -> tuple[str, Path]:
    """Add ``public`` (a ``k3.public``) to the demo registry started with ``--data DIR``;
    returns the key id and the file written. Raises :class:`ConfigError` with a sentence."""
    from gui_approver.registry.server import KEYS_FILE, add_key_to_file
    from gui_approver.registry.verify import RegisteredKey

    if not data_dir.is_dir():
        raise ConfigError(
            f"{data_dir} is not a directory. Choose the directory the demo registry was "
            "started with (--data DIR); nothing was registered."
        )
    try:
        key = RegisteredKey(public=public, subject=subject)
        add_key_to_file(data_dir, key)
    except (ValueError, OSError) as exc:
        raise ConfigError(f"Could not register the key in {data_dir}: {exc}") from None
    return key.kip, data_dir / KEYS_FILE

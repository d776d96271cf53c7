"""Reading and editing cargo's ``$CARGO_HOME/config.toml`` with tomlkit.

Edits touch only the lines they must; comments and formatting are kept, a backup is written
first, and a dry run shows the diff without writing anything.
"""

from __future__ import annotations

import difflib
import os
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tomlkit
import tomlkit.items

from gui_approver.errors import ConfigError
from gui_approver.secret import Secret

CRATES_IO = "crates-io"
CRATES_IO_INDEX = "https://github.com/rust-lang/crates.io-index"
BRIDGE_NAME = "cargo-credential-gui-approver"


def cargo_home() -> Path:
    env = os.environ.get("CARGO_HOME")
    return Path(env) if env else Path.home() / ".cargo"


def config_path(home: Path | None = None) -> Path:
    home = home or cargo_home()
    plain = home / "config"
    if plain.exists() and not (home / "config.toml").exists():
        return plain
    return home / "config.toml"


def bridge_path() -> str:
    """Absolute path of the bridge executable installed beside this interpreter."""
    candidates = [
        Path(sys.executable).parent / BRIDGE_NAME,
        Path(sys.argv[0]).resolve().parent / BRIDGE_NAME if sys.argv and sys.argv[0] else None,
    ]
    for c in candidates:
        if c is not None and c.is_file() and os.access(c, os.X_OK):
            return str(c)
    found = shutil.which(BRIDGE_NAME)
    if found:
        return str(Path(found).resolve())
    raise ConfigError(
        f"cannot find the {BRIDGE_NAME} executable",
        hint="install gui-approver (e.g. `pipx install gui-approver`) so both commands exist",
    )


def _load(path: Path) -> tuple[str, tomlkit.TOMLDocument]:
    try:
        text = path.read_text("utf-8")
    except FileNotFoundError:
        text = ""
    try:
        return text, tomlkit.parse(text)
    except Exception as exc:  # noqa: BLE001 - tomlkit raises several error types
        raise ConfigError(f"{path} is not valid TOML ({exc})") from None


def registry_index(name: str, home: Path | None = None) -> str | None:
    """The index URL cargo would use for registry ``name`` (None if not configured)."""
    if name == CRATES_IO:
        return CRATES_IO_INDEX
    env = os.environ.get(f"CARGO_REGISTRIES_{name.upper().replace('-', '_')}_INDEX")
    if env:
        return env
    _, doc = _load(config_path(home))
    regs = doc.get("registries")
    if isinstance(regs, dict):
        entry = regs.get(name)
        if isinstance(entry, dict):
            index = entry.get("index")
            if isinstance(index, str):
                return str(index)
    return None


def configured_registries(home: Path | None = None) -> dict[str, dict[str, Any]]:
    _, doc = _load(config_path(home))
    out: dict[str, dict[str, Any]] = {}
    regs = doc.get("registries")
    if isinstance(regs, dict):
        for name, entry in regs.items():
            if isinstance(entry, dict):
                out[str(name)] = {str(k): v for k, v in entry.items()}
    return out


@dataclass(frozen=True)
class ConfigChange:
    path: Path
    before: str
    after: str
    warnings: tuple[str, ...]

    @property
    def changed(self) -> bool:
        return self.before != self.after

    def diff(self) -> str:
        return "".join(difflib.unified_diff(
            self.before.splitlines(keepends=True), self.after.splitlines(keepends=True),
            fromfile=str(self.path), tofile=str(self.path) + " (new)",
        ))


def _provider_value(bridge: str) -> tomlkit.items.Array:
    arr = tomlkit.array()
    arr.append(bridge)
    return arr


def _same_provider(value: Any, bridge: str) -> bool:
    if isinstance(value, str):
        return value == bridge
    if isinstance(value, list):
        return [str(v) for v in value] == [bridge]
    return False


def plan_configure(
    registry: str, index_url: str | None, *, bridge: str | None = None, home: Path | None = None
) -> ConfigChange:
    home = home or cargo_home()
    path = config_path(home)
    bridge = bridge or bridge_path()
    before, doc = _load(path)
    warnings: list[str] = []
    if registry == CRATES_IO:
        reg = doc.get("registry")
        if reg is None:
            reg = tomlkit.table()
            doc["registry"] = reg
        if not isinstance(reg, dict):
            raise ConfigError(f"{path}: [registry] is not a table")
        if not _same_provider(reg.get("credential-provider"), bridge):
            reg["credential-provider"] = _provider_value(bridge)
        if "token" in reg:
            warnings.append(f"{path} still has a plaintext [registry] token; remove it")
    else:
        if not index_url:
            raise ConfigError(f"registry {registry} needs an index URL (--index)")
        regs = doc.get("registries")
        if regs is None:
            regs = tomlkit.table(is_super_table=True)
            doc["registries"] = regs
        if not isinstance(regs, dict):
            raise ConfigError(f"{path}: [registries] is not a table")
        entry = regs.get(registry)
        if entry is None:
            entry = tomlkit.table()
            regs[registry] = entry
        if not isinstance(entry, dict):
            raise ConfigError(f"{path}: [registries.{registry}] is not a table")
        if entry.get("index") != index_url:
            entry["index"] = index_url
        if not _same_provider(entry.get("credential-provider"), bridge):
            entry["credential-provider"] = _provider_value(bridge)
        for secret in ("token", "secret-key"):
            if secret in entry:
                warnings.append(
                    f"{path} still has a plaintext `{secret}` for registry {registry}; remove it"
                )
    creds = home / "credentials.toml"
    if creds.exists():
        _, cdoc = _load(creds)
        table = cdoc.get("registry") if registry == CRATES_IO else (
            cdoc.get("registries", {}).get(registry)
            if isinstance(cdoc.get("registries"), dict) else None
        )
        if isinstance(table, dict):
            for field in ("token", "secret-key"):
                if field in table:
                    how = "key import-cargo" if field == "secret-key" else "token import-cargo"
                    warnings.append(
                        f"{creds} still has a plaintext `{field}` for registry {registry}: a "
                        f"secret on disk (import it with `gui-approver {how}`)"
                    )
    return ConfigChange(path=path, before=before, after=tomlkit.dumps(doc),
                        warnings=tuple(warnings))


def apply(change: ConfigChange, *, scrub: tuple[Secret, ...] = ()) -> Path | None:
    """Write the change (backup first). Returns the backup path, or None if nothing changed.

    ``scrub``: secrets that must not reach the backup; each occurrence in the backup is
    replaced by a note (the backup then differs from the old file in those bytes only)."""
    if not change.changed:
        return None
    change.path.parent.mkdir(parents=True, exist_ok=True)
    backup = None
    if change.path.exists():
        backup = change.path.with_name(
            f"{change.path.name}.bak-{time.strftime('%Y%m%d-%H%M%S')}"
        )
        shutil.copy2(change.path, backup)
        secrets = [s.expose() for s in scrub if s.expose()]
        if secrets:
            data = backup.read_text("utf-8")
            if any(s in data for s in secrets):
                for s in secrets:
                    data = data.replace(s, "REMOVED-now-in-the-keychain")
                fd = os.open(backup, os.O_WRONLY | os.O_TRUNC)
                with os.fdopen(fd, "w", encoding="utf-8") as fh:
                    fh.write(data)
    tmp = change.path.with_name(f".{change.path.name}.gui-approver-tmp")
    tmp.write_text(change.after, "utf-8")
    if change.path.exists():
        shutil.copymode(change.path, tmp)
    os.replace(tmp, change.path)
    return backup


# -- importing keys that cargo:paseto left in plaintext ----------------------------------------

_SECRET_FIELDS = ("secret-key", "secret-key-subject")


@dataclass(frozen=True)
class CargoSecret:
    """A ``secret-key`` found in a cargo file. ``secret`` never prints."""

    registry: str
    path: Path
    secret: Secret
    subject: str | None


def _secret_table(doc: Any, registry: str) -> Any:
    if registry == CRATES_IO:
        table = doc.get("registry")
    else:
        regs = doc.get("registries")
        table = regs.get(registry) if isinstance(regs, dict) else None
    return table if isinstance(table, dict) else None


def find_cargo_secrets(home: Path | None = None) -> list[CargoSecret]:
    """Every ``secret-key`` in ``credentials.toml`` and ``config.toml`` under CARGO_HOME."""
    home = home or cargo_home()
    found: list[CargoSecret] = []
    for path in (home / "credentials.toml", home / "credentials", config_path(home)):
        if not path.exists():
            continue
        _, doc = _load(path)
        names = [CRATES_IO] if isinstance(doc.get("registry"), dict) else []
        regs = doc.get("registries")
        if isinstance(regs, dict):
            names += [str(n) for n in regs]
        for name in names:
            table = _secret_table(doc, name)
            if table is None or not isinstance(table.get("secret-key"), str):
                continue
            sub = table.get("secret-key-subject")
            found.append(CargoSecret(
                registry=name, path=path, secret=Secret(str(table["secret-key"])),
                subject=str(sub) if isinstance(sub, str) else None,
            ))
    return found


def remove_cargo_secret(found: CargoSecret) -> None:
    """Remove ``secret-key`` (and its subject) from the file it was found in; the rest of the
    file stays byte-identical and its mode is kept."""
    _remove_fields(found, _SECRET_FIELDS)


def _remove_fields(found: CargoSecret, fields: tuple[str, ...]) -> None:
    _, doc = _load(found.path)
    table = _secret_table(doc, found.registry)
    if table is None:
        return
    for field in fields:
        if field in table:
            del table[field]
    tmp = found.path.with_name(f".{found.path.name}.gui-approver-tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(tomlkit.dumps(doc))
        fh.flush()
        os.fsync(fh.fileno())
    shutil.copymode(found.path, tmp)
    os.replace(tmp, found.path)


# -- importing bearer tokens that cargo (cargo:token) keeps in plaintext ------------------------


def find_cargo_tokens(home: Path | None = None) -> list[CargoSecret]:
    """Every ``token`` in ``credentials.toml`` and ``credentials`` (older cargo) under
    CARGO_HOME: ``[registry]`` (crates.io) and ``[registries.NAME]``."""
    home = home or cargo_home()
    found: list[CargoSecret] = []
    for path in (home / "credentials.toml", home / "credentials"):
        if not path.exists():
            continue
        _, doc = _load(path)
        names = [CRATES_IO] if isinstance(doc.get("registry"), dict) else []
        regs = doc.get("registries")
        if isinstance(regs, dict):
            names += [str(n) for n in regs]
        for name in names:
            table = _secret_table(doc, name)
            if table is None or not isinstance(table.get("token"), str):
                continue
            found.append(CargoSecret(registry=name, path=path,
                                     secret=Secret(str(table["token"])), subject=None))
    return found


def remove_cargo_token(found: CargoSecret) -> None:
    """Remove ``token`` from the table it was found in; every other byte of the file and its
    mode stay as they were. No backup is written (it would hold the token)."""
    _remove_fields(found, ("token",))

"""Reading and editing cargo's ``$CARGO_HOME/config.toml`` with tomlkit.

Edits touch only the lines they must; comments and formatting are kept, a backup is written
first, and a dry run shows the diff without writing anything.

Secrets and dotfiles: every write goes through a ``mkstemp`` file that gets its final mode
before a byte is written (a file holding a ``token`` or ``secret-key`` is never readable by
group or others), then replaces the *target* of a symlinked file (dotfile managers keep the
link). A backup never holds a ``token`` or ``secret-key`` (they are left out of it), backups
made in the same second get distinct names, and :func:`backups_with_secrets` finds older
backups that still hold one.
"""

from __future__ import annotations

import contextlib
import difflib
import os
import shutil
import stat
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tomlkit
import tomlkit.items

from gui_approver.errors import ConfigError
from gui_approver.secret import Secret

#: Fields of cargo's config and credentials files that hold a secret.
SECRET_FIELDS = ("token", "secret-key")
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
        return "".join(
            difflib.unified_diff(
                self.before.splitlines(keepends=True),
                self.after.splitlines(keepends=True),
                fromfile=str(self.path)
                + (" (now)" if self.path.exists() else " (does not exist yet)"),
                tofile=str(self.path) + " (after this change)",
            )
        )


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
    if registry == CRATES_IO:
        entry = _table(doc, "registry", path, "[registry]")
        secrets: tuple[str, ...] = ("token",)
    else:
        if not index_url:
            raise ConfigError(f"registry {registry} needs an index URL (--index)")
        regs = _table(doc, "registries", path, "[registries]", super_table=True)
        entry = _table(regs, registry, path, f"[registries.{registry}]")
        if entry.get("index") != index_url:
            entry["index"] = index_url
        secrets = ("token", "secret-key")
    if not _same_provider(entry.get("credential-provider"), bridge):
        entry["credential-provider"] = _provider_value(bridge)
    warnings = [
        f"{path} still has a plaintext `{secret}` for registry {registry}; remove it"
        for secret in secrets
        if secret in entry
    ]
    creds = home / "credentials.toml"
    warnings += _credentials_warnings(creds, registry)
    warnings += _readable_secret_warnings((path, creds))
    warnings.extend(backup_warnings(home))
    return ConfigChange(
        path=path, before=before, after=tomlkit.dumps(doc), warnings=tuple(warnings)
    )


def _table(doc: Any, key: str, path: Path, label: str, *, super_table: bool = False) -> Any:
    """``doc[key]``, created when missing; a ConfigError when it is not a table."""
    table = doc.get(key)
    if table is None:
        table = tomlkit.table(is_super_table=super_table) if super_table else tomlkit.table()
        doc[key] = table
    if not isinstance(table, dict):
        raise ConfigError(f"{path}: {label} is not a table")
    return table


def _credentials_warnings(creds: Path, registry: str) -> list[str]:
    """A plaintext secret left in credentials.toml for ``registry``."""
    if not creds.exists():
        return []
    _, cdoc = _load(creds)
    table = _secret_table(cdoc, registry)
    if table is None:
        return []
    out = []
    for field in ("token", "secret-key"):
        if field in table:
            how = "key import-cargo" if field == "secret-key" else "token import-cargo"
            out.append(
                f"{creds} still has a plaintext `{field}` for registry {registry}: a "
                f"secret on disk (import it with `gui-approver {how}`)"
            )
    return out


def _readable_secret_warnings(paths: tuple[Path, ...]) -> list[str]:
    out = []
    for readable in paths:
        try:
            mode = stat.S_IMODE(os.stat(readable).st_mode)
            held = holds_secret(readable.read_text("utf-8", errors="replace"))
        except OSError:
            continue
        if held and mode & 0o044:
            out.append(
                f"{readable} holds a plaintext secret and is readable by other "
                f"users (mode {mode:o}); run: chmod 600 {readable}"
            )
    return out


def apply(change: ConfigChange, *, scrub: tuple[Secret, ...] = ()) -> Path | None:
    """Write the change (backup first). Returns the backup path, or None if nothing changed.

    ``scrub``: secrets that must not reach the backup; each occurrence in the backup is
    replaced by a note (the backup then differs from the old file in those bytes only)."""
    if not change.changed:
        return None
    change.path.parent.mkdir(parents=True, exist_ok=True)
    backup = make_backup(change.path, change.before, scrub=scrub) if change.path.exists() else None
    write_config(change.path, change.after)
    return backup


# -- writing safely ------------------------------------------------------------------------


def write_target(path: Path) -> Path:
    """The file a write to ``path`` must replace: a symlink's final target (a dotfile
    manager's link stays a link), else ``path`` itself."""
    return Path(os.path.realpath(path)) if path.is_symlink() else path


def _secret_fields(obj: Any, where: str = "") -> list[tuple[str, str]]:
    """``(table, field)`` of every secret field in a parsed TOML document, at any depth."""
    found: list[tuple[str, str]] = []
    if isinstance(obj, dict):
        for key, value in obj.items():
            name = f"{where}.{key}" if where else str(key)
            if str(key) in SECRET_FIELDS and isinstance(value, str):
                found.append((where or "(top)", str(key)))
            elif isinstance(value, dict):
                found.extend(_secret_fields(value, name))
    return found


def holds_secret(text: str) -> bool:
    """Does this cargo config/credentials text hold a ``token`` or ``secret-key``? Text that
    does not parse counts as holding one when a secret field name appears in it."""
    try:
        return bool(_secret_fields(tomlkit.parse(text)))
    except Exception:  # noqa: BLE001 - fail closed
        return any(f in text for f in SECRET_FIELDS)


def without_secrets(text: str) -> str:
    """``text`` with every ``token`` / ``secret-key`` left out (the rest kept as it was)."""

    def strip(table: Any) -> None:
        if not isinstance(table, dict):
            return
        for key in list(table.keys()):
            value = table[key]
            if str(key) in SECRET_FIELDS and isinstance(value, str):
                del table[key]
            elif isinstance(value, dict):
                strip(value)

    try:
        doc = tomlkit.parse(text)
    except Exception:  # noqa: BLE001 - drop whole lines that name a secret field
        return "".join(
            line
            for line in text.splitlines(keepends=True)
            if not any(line.lstrip().startswith(f) for f in SECRET_FIELDS)
        )
    strip(doc)
    return tomlkit.dumps(doc)


def write_config(path: Path, text: str, *, mode: int | None = None) -> None:
    """Replace ``path`` (a symlink's target) with ``text`` atomically.

    The temporary file comes from ``mkstemp`` (0600) and gets its final mode before any byte
    is written: ``mode``, else the existing file's mode (your choice is kept), else 0644 for a
    new file, or 0600 for a new file that holds a secret."""
    target = write_target(path)
    if mode is None:
        try:
            mode = stat.S_IMODE(os.stat(target).st_mode)
        except FileNotFoundError:
            mode = 0o600 if holds_secret(text) else 0o644
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(
        dir=target.parent, prefix=f".{target.name}.", suffix=".gui-approver-tmp"
    )
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def make_backup(path: Path, text: str, *, scrub: tuple[Secret, ...] = ()) -> Path:
    """Write ``text`` minus its secrets to a new ``NAME.bak-YYYYmmdd-HHMMSS[-N]`` beside
    ``path`` (never over an existing backup), with the file's mode. Every ``token`` /
    ``secret-key`` field is left out; any other occurrence of a ``scrub`` secret is replaced
    by a note."""
    try:
        mode = stat.S_IMODE(os.stat(write_target(path)).st_mode)
    except FileNotFoundError:
        mode = 0o600
    data = without_secrets(text)
    for secret in scrub:
        if secret.expose():
            data = data.replace(secret.expose(), "REMOVED-now-in-the-keychain")
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for n in range(1000):
        backup = path.with_name(f"{path.name}.bak-{stamp}" + (f"-{n}" if n else ""))
        try:
            fd = os.open(backup, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        except FileExistsError:
            continue
        try:
            os.fchmod(fd, mode)
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(data)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(backup)
            raise
        return backup
    raise ConfigError(f"too many backups of {path} in one second; nothing was written")


_BACKUP_NAMES = ("config.toml", "config", "credentials.toml", "credentials")


def backups(home: Path | None = None) -> list[Path]:
    """Backups of cargo's config and credentials files in CARGO_HOME."""
    home = home or cargo_home()
    found: list[Path] = []
    for name in _BACKUP_NAMES:
        found.extend(p for p in home.glob(f"{name}.bak-*") if p.is_file() and not p.is_symlink())
    return sorted(found)


def backups_with_secrets(home: Path | None = None) -> list[tuple[Path, tuple[str, ...]]]:
    """Backups that still hold a ``token`` / ``secret-key`` (older versions of gui-approver
    or another tool made them): ``(path, fields)``. Never returns the secrets."""
    out: list[tuple[Path, tuple[str, ...]]] = []
    for path in backups(home):
        try:
            text = path.read_text("utf-8", errors="replace")
        except OSError:
            continue
        try:
            fields = tuple(sorted({f for _t, f in _secret_fields(tomlkit.parse(text))}))
        except Exception:  # noqa: BLE001
            fields = tuple(f for f in SECRET_FIELDS if f in text)
        if fields:
            out.append((path, fields))
    return out


def backup_warnings(home: Path | None = None) -> list[str]:
    return [
        f"the backup {path} still holds a plaintext {' and '.join(fields)}: a secret on "
        "disk; delete it, or edit the secret out of it"
        for path, fields in backups_with_secrets(home)
    ]


def remove_secret_from_backups(secret: Secret, home: Path | None = None) -> list[Path]:
    """Take every field holding exactly ``secret`` out of the backups in CARGO_HOME (the
    rest of each backup stays). Returns the backups changed."""
    value = secret.expose()
    changed: list[Path] = []
    for path in backups(home):
        try:
            text = path.read_text("utf-8")
        except (OSError, UnicodeDecodeError):
            continue
        if value not in text:
            continue
        try:
            doc = tomlkit.parse(text)
        except Exception:  # noqa: BLE001 - unparsable: drop the lines that hold it
            write_config(
                path, "".join(line for line in text.splitlines(keepends=True) if value not in line)
            )
            changed.append(path)
            continue

        def strip(table: Any) -> None:
            if not isinstance(table, dict):
                return
            for key in list(table.keys()):
                v = table[key]
                if isinstance(v, str) and v.strip() == value.strip():
                    del table[key]
                    if str(key) == "secret-key" and "secret-key-subject" in table:
                        del table["secret-key-subject"]
                elif isinstance(v, dict):
                    strip(v)

        strip(doc)
        out = tomlkit.dumps(doc)
        if value in out:  # e.g. inside a comment or an array: drop those lines too
            out = "".join(line for line in out.splitlines(keepends=True) if value not in line)
        write_config(path, out)
        changed.append(path)
    return changed


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


def _secrets_in(paths: tuple[Path, ...], field: str) -> Iterator[tuple[Path, str, Any]]:
    """(file, registry, table) for every registry table holding a string ``field``:
    ``[registry]`` (crates.io) and ``[registries.NAME]``."""
    for path in paths:
        if not path.exists():
            continue
        _, doc = _load(path)
        names = [CRATES_IO] if isinstance(doc.get("registry"), dict) else []
        regs = doc.get("registries")
        if isinstance(regs, dict):
            names += [str(n) for n in regs]
        for name in names:
            table = _secret_table(doc, name)
            if table is not None and isinstance(table.get(field), str):
                yield path, name, table


def find_cargo_secrets(home: Path | None = None) -> list[CargoSecret]:
    """Every ``secret-key`` in ``credentials.toml`` and ``config.toml`` under CARGO_HOME."""
    home = home or cargo_home()
    found: list[CargoSecret] = []
    files = (home / "credentials.toml", home / "credentials", config_path(home))
    for path, name, table in _secrets_in(files, "secret-key"):
        sub = table.get("secret-key-subject")
        found.append(
            CargoSecret(
                registry=name,
                path=path,
                secret=Secret(str(table["secret-key"])),
                subject=str(sub) if isinstance(sub, str) else None,
            )
        )
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
    write_config(found.path, tomlkit.dumps(doc))
    # Older backups of this file may still hold it: the secret is only in the keychain now.
    remove_secret_from_backups(found.secret, found.path.parent)


# -- importing bearer tokens that cargo (cargo:token) keeps in plaintext ------------------------


def find_cargo_tokens(home: Path | None = None) -> list[CargoSecret]:
    """Every ``token`` in ``credentials.toml`` and ``credentials`` (older cargo) under
    CARGO_HOME: ``[registry]`` (crates.io) and ``[registries.NAME]``."""
    home = home or cargo_home()
    files = (home / "credentials.toml", home / "credentials")
    return [
        CargoSecret(registry=name, path=path, secret=Secret(str(table["token"])), subject=None)
        for path, name, table in _secrets_in(files, "token")
    ]


def remove_cargo_token(found: CargoSecret) -> None:
    """Remove ``token`` from the table it was found in; every other byte of the file and its
    mode stay as they were. No backup is written (it would hold the token)."""
    _remove_fields(found, ("token",))

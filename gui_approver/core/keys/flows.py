"""What the user does with keys and bearer tokens, once, for the CLI and the GUI alike.

Both front ends call these functions (never the stores directly for these flows), so the
rules live in one place: crates.io is protected only with a bearer token, a registry holds
either an asymmetric key or a bearer token, every credential records its origin, and
importing a token from cargo's files leaves no copy of it behind.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from gui_approver.core import cargo_config
from gui_approver.errors import ConfigError, GuiApproverError, KeyExists, KeyNotFound
from gui_approver.secret import Secret

from .bearer import TokenRecord, bearer_store, check_token, fingerprint
from .store import (
    CRATES_IO,
    CRATES_IO_HINT,
    CRATES_IO_REFUSAL,
    KeyRecord,
    KeyStore,
    SigningKey,
    is_crates_io,
    parse_public_paserk,
)

#: The wizard's and README's advice for a crates.io token.
CRATES_IO_ADVICE = (
    "Create a narrowly scoped token at https://crates.io/settings/tokens/new: give it only "
    "the endpoint scope publish-update (add yank or change-owners only if you use them), "
    "crate scopes naming your crates (for example mycrate or mycrate-*), and an expiry "
    "(for example 90 days). Then paste it here: gui-approver keeps it in your keychain and "
    "hands it to cargo only when you approve a publish."
)


def expiry_date(value: str | None) -> str | None:
    """``none``, ``90d``, ``1y`` or a date -> ISO date (UTC) or None."""
    if value is None or value in ("none", ""):
        return None
    now = datetime.now(UTC).date()
    if value.endswith("d") and value[:-1].isdigit():
        return (now + timedelta(days=int(value[:-1]))).isoformat()
    if value.endswith("y") and value[:-1].isdigit():
        return (now + timedelta(days=365 * int(value[:-1]))).isoformat()
    try:
        day = date.fromisoformat(value)
    except ValueError:
        raise GuiApproverError(
            f"invalid --expires {value!r}: use none, 90d, 1y or a date YYYY-MM-DD"
        ) from None
    if day <= now:
        raise GuiApproverError(f"--expires {value} is not in the future")
    return day.isoformat()


def index_for(registry: str, index: str | None, home: Path | None = None) -> str:
    """The index URL of ``registry``: given, crates.io's, or from cargo's config."""
    if index:
        return index
    if registry == CRATES_IO:
        return cargo_config.CRATES_IO_INDEX
    found = cargo_config.registry_index(registry, home)
    if not found:
        raise ConfigError(
            f"registry {registry} is not in {cargo_config.config_path(home)}; pass --index URL"
        )
    return found


def refuse_crates_io_key(registry: str | None, index_url: str | None) -> None:
    if is_crates_io(registry, index_url):
        raise ConfigError(CRATES_IO_REFUSAL + "; nothing was created", hint=CRATES_IO_HINT)


# -- asymmetric keys ---------------------------------------------------------------------------


def create_key(
    store: KeyStore,
    *,
    registry: str,
    index_url: str,
    subject: str | None = None,
    expires: str | None = None,
    passphrase: Secret | None = None,
    origin: str,
) -> KeyRecord:
    """A new P-384 key (``origin``: ``cli`` or ``dialog``). Refused for crates.io and for a
    registry that holds a bearer token."""
    refuse_crates_io_key(registry, index_url)
    tokens = bearer_store(store)
    held = tokens.find_by_registry(registry) or tokens.find(index_url)
    if held is not None:
        raise KeyExists(
            f"registry {held.registry} already has a bearer token ({held.fingerprint}); a "
            "registry takes either a bearer token or an asymmetric key",
            hint=f"delete the token first: gui-approver token delete --registry {held.registry}",
        )
    return store.create(
        registry=registry,
        index_url=index_url,
        subject=subject,
        expires=expires,
        passphrase=passphrase,
        origin=origin,
    )


# -- bearer tokens -----------------------------------------------------------------------------


def add_token(
    store: KeyStore,
    token: Secret,
    *,
    registry: str,
    index_url: str | None = None,
    expires: str | None = None,
    scopes: str | None = None,
    passphrase: Secret | None = None,
    origin: str,
    home: Path | None = None,
) -> TokenRecord:
    index = index_for(registry, index_url, home)
    return bearer_store(store).add(
        token,
        registry=registry,
        index_url=index,
        expires=expires,
        scopes=scopes,
        passphrase=passphrase,
        origin=origin,
    )


def find_token(store: KeyStore, registry: str) -> TokenRecord:
    tokens = bearer_store(store)
    rec = tokens.find_by_registry(registry) or tokens.find(registry)
    if rec is None:
        raise KeyNotFound(
            f"no bearer token for registry {registry}",
            hint=f"store one: gui-approver token add --registry {registry}",
        )
    return rec


def rotate_token(
    store: KeyStore,
    registry: str,
    token: Secret,
    *,
    expires: str | None = None,
    scopes: str | None = None,
    passphrase: Secret | None = None,
    origin: str,
) -> tuple[TokenRecord, TokenRecord]:
    """Replace the stored token of ``registry`` by ``token``; returns (old, new)."""
    old = find_token(store, registry)
    new = bearer_store(store).add(
        token,
        registry=old.registry,
        index_url=old.index_url,
        expires=expires,
        scopes=scopes if scopes is not None else old.scopes,
        passphrase=passphrase,
        origin=origin,
        replacing=old,
    )
    return old, new


def delete_token(store: KeyStore, registry: str) -> TokenRecord:
    rec = find_token(store, registry)
    bearer_store(store).delete(rec)
    return rec


@dataclass(frozen=True)
class TokenImport:
    """One token found in cargo's files (and what importing it did or would do)."""

    registry: str
    path: Path
    index_url: str
    fingerprint: str
    imported: bool
    config_path: Path | None = None
    backup: Path | None = None
    already_stored: bool = False


def import_cargo_tokens(
    store: KeyStore,
    *,
    registry: str | None = None,
    dry_run: bool = False,
    home: Path | None = None,
    origin: str = "cli",
    bridge: str | None = None,
) -> list[TokenImport]:
    """Move each ``token`` from cargo's credentials file(s) into the keychain, point that
    registry at gui-approver in ``config.toml``, and remove the token from the file (every
    other byte and the file's mode kept; no backup of a file holding the token is left)."""
    found = [
        f
        for f in cargo_config.find_cargo_tokens(home)
        if registry is None or f.registry == registry
    ]
    if not found:
        where = home or cargo_config.cargo_home()
        raise KeyNotFound(
            f"no token found in {where}/credentials.toml or {where}/credentials"
            + (f" for registry {registry}" if registry else ""),
            hint="store a token directly: gui-approver token add --registry NAME",
        )
    tokens = bearer_store(store)
    results: list[TokenImport] = []
    for item in found:
        token = check_token(item.secret)
        index = index_for(item.registry, None, home)
        existing = tokens.find_by_registry(item.registry) or tokens.find(index)
        same = existing is not None and existing.fingerprint == fingerprint(token)
        if existing is not None and not same:
            raise KeyExists(
                f"registry {item.registry} already has a different bearer token "
                f"({existing.fingerprint}); nothing was imported",
                hint=f"replace it: gui-approver token rotate --registry {item.registry}",
            )
        if dry_run:
            results.append(
                TokenImport(
                    item.registry,
                    item.path,
                    index,
                    fingerprint(token),
                    imported=False,
                    already_stored=same,
                )
            )
            continue
        if existing is None:
            tokens.add(token, registry=item.registry, index_url=index, origin=origin)
        # The token is in the keychain: point cargo at the bridge, then take it off the disk.
        change = cargo_config.plan_configure(
            item.registry, None if item.registry == CRATES_IO else index, bridge=bridge, home=home
        )
        backup = cargo_config.apply(change, scrub=(token,))
        cargo_config.remove_cargo_token(item)
        results.append(
            TokenImport(
                item.registry,
                item.path,
                index,
                fingerprint(token),
                imported=True,
                config_path=change.path,
                backup=backup,
                already_stored=same,
            )
        )
    return results


# -- cargo's configuration ---------------------------------------------------------------------


def plan_configure(
    store: KeyStore,
    registry: str,
    index: str | None,
    *,
    bridge: str | None = None,
    home: Path | None = None,
) -> cargo_config.ConfigChange:
    """The change that points ``registry`` at gui-approver. For crates.io only once its bearer
    token is in the keychain: before that, cargo keeps using the user's token as it is."""
    if registry == CRATES_IO and bearer_store(store).find_by_registry(CRATES_IO) is None:
        raise ConfigError(
            CRATES_IO_REFUSAL + ". Configuring cargo to use gui-approver for crates.io before "
            "your crates.io token is in the keychain would break publishing; nothing was "
            "changed",
            hint=CRATES_IO_HINT,
        )
    return cargo_config.plan_configure(registry, index, bridge=bridge, home=home)


# -- asymmetric keys -----------------------------------------------------------------------


def public_pem(public: str) -> str:
    """A ``k3.public`` key as PEM (SubjectPublicKeyInfo), for registries that want PEM."""
    from cryptography.hazmat.primitives import serialization

    pem = parse_public_paserk(public).public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return pem.decode("ascii").rstrip()


def import_cargo_key(
    store: KeyStore,
    item: cargo_config.CargoSecret,
    key: SigningKey,
    index: str,
    *,
    origin: str,
    home: Path | None = None,
) -> None:
    """Move one ``cargo:paseto`` ``secret-key`` into the keychain. The order is the point:
    the keychain first, then the secret off the disk, then cargo pointed at the bridge; a
    failure at any step leaves the key usable from where it still is."""
    existing = store.find(index)
    if existing is None:
        store.add(key, registry=item.registry, index_url=index, subject=item.subject, origin=origin)
    elif existing.kip != key.kip:
        raise KeyExists(
            f"registry {item.registry} already has a different key "
            f"({existing.kip}); nothing was imported"
        )
    cargo_config.remove_cargo_secret(item)
    cargo_config.apply(cargo_config.plan_configure(item.registry, index, home=home))


def import_report(
    registry: str, path: Path, key: SigningKey, *, dry_run: bool = False
) -> list[str]:
    """What ``key import-cargo`` and the GUI's import say about one key."""
    lines = [
        f"{'Would import' if dry_run else 'Imported'} the key of registry {registry} from {path}.",
        f"  public key (unchanged, nothing to re-register): {key.public_paserk}",
        f"  key id (unchanged): {key.kip}",
    ]
    if not dry_run:
        lines.append("  The secret is now only in the keychain; cargo uses gui-approver for it.")
    return lines


__all__ = [
    "CRATES_IO_ADVICE",
    "CRATES_IO_HINT",
    "TokenImport",
    "add_token",
    "create_key",
    "delete_token",
    "expiry_date",
    "find_token",
    "import_cargo_key",
    "import_cargo_tokens",
    "import_report",
    "index_for",
    "plan_configure",
    "public_pem",
    "refuse_crates_io_key",
    "rotate_token",
]

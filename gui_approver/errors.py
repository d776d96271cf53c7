"""User-facing errors. Every message is a complete sentence a user can act on; none ever
contains secret material."""

from __future__ import annotations


class GuiApproverError(Exception):
    """Base class: ``str(err)`` is shown to the user as-is (CLI, dialog, cargo's terminal)."""

    hint: str | None = None

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        if hint is not None:
            self.hint = hint

    def full(self) -> str:
        return f"{self}\n  hint: {self.hint}" if self.hint else str(self)


class KeychainError(GuiApproverError):
    """The OS keychain cannot be used."""


class KeychainUnavailable(KeychainError):
    hint = (
        "gui-approver stores keys only in a system keychain (Secret Service on Linux, e.g. "
        "gnome-keyring or KWallet); start one and try again. It never falls back to a file."
    )


class KeychainLocked(KeychainError):
    hint = "unlock your keychain (log in to your desktop session, or unlock it in Seahorse)."


class KeyNotFound(GuiApproverError):
    """No key for a registry, or a key's secret is missing from the keychain."""


class KeyExists(GuiApproverError):
    """A key already exists where a new one was to be created."""


class WrongPassphrase(GuiApproverError):
    """The passphrase did not unwrap the key."""


class KeyLocked(GuiApproverError):
    """A passphrase-protected key is locked and was not unlocked."""


class KeyExpired(GuiApproverError):
    """The key is past its expiry date."""


class ConfigError(GuiApproverError):
    """A configuration file or argument is invalid."""


class Denied(GuiApproverError):
    """A request was not approved."""

"""The one error hierarchy. Every message is a complete sentence a user can act on; none
ever contains secret material.

Each error carries an optional ``hint`` (what to do about it) and the ``exit_code`` the CLI
returns for it. Shown to a user in two places only: the CLI's ``main`` (``full()`` on stderr,
``exit_code``) and cargo's terminal (:func:`gui_approver.client.protocol.cargo_error`, which
puts the hint in the message: cargo prints ``caused-by`` entries as causes, not advice).

Standard library only: the bridge imports it on cargo's hot path.
"""

from __future__ import annotations


class GuiApproverError(Exception):
    """Base class: ``str(err)`` is shown to the user as-is (CLI, dialog, cargo's terminal)."""

    hint: str | None = None
    #: what ``gui-approver`` exits with when this error ends a command
    exit_code: int = 1

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        if hint is not None:
            self.hint = hint

    def full(self) -> str:
        return f"{self}\n  hint: {self.hint}" if self.hint else str(self)


class UsageError(GuiApproverError):
    """The command line asks for something that cannot be done as asked."""

    exit_code = 2


class ProtocolError(GuiApproverError):
    """Input that does not follow cargo's credential protocol or the app's IPC framing."""


class BridgeError(GuiApproverError):
    """The bridge could not get an answer from the app (nothing was signed)."""


class AlreadyRunning(GuiApproverError):
    """Another gui-approver already serves this user's socket."""

    exit_code = 0


class UnsafeDirectory(GuiApproverError):
    """The socket directory is not private to this user."""


class VerificationError(GuiApproverError):
    """A registry rejected a token (see :mod:`gui_approver.registry.verify`).

    ``reason`` is a short machine-readable code (``"unknown-key"``, ``"bad-signature"``, ...);
    ``str(error)`` is a sentence for humans.
    """

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason

    @property
    def message(self) -> str:
        return str(self)


class DisplayError(GuiApproverError):
    """The X server / window system refused what the dialog needs (input guard, display)."""


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

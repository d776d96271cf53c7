"""Minimum strength for a key's passphrase, estimated by zxcvbn (not a home-made rule).

A wrapped key is only as strong as its passphrase: anyone who copies the keychain item can
guess offline. :func:`check_passphrase` refuses one zxcvbn scores below :data:`MIN_SCORE`
(3 of 4: "safely unguessable: moderate protection from an offline slow-hash scenario"). The
CLI and the GUI call it wherever a passphrase is set; unlocking never does.
"""

from __future__ import annotations

from collections.abc import Iterable

from gui_approver.errors import ConfigError
from gui_approver.secret import Secret

MIN_SCORE = 3
#: zxcvbn's cost grows with the length; the first 100 characters decide.
_MAX_SCORED = 100
_HINT = (
    "use four or more random words, e.g. from a diceware list, or a passphrase from "
    "your password manager"
)


def passphrase_problem(passphrase: Secret, *, context: Iterable[str] = ()) -> str | None:
    """Why ``passphrase`` is too weak (a sentence that never quotes it), or None."""
    text = passphrase.expose()
    if not text:
        return "An empty passphrase protects nothing."
    from zxcvbn import zxcvbn

    inputs = [c for c in context if c] + ["gui-approver", "cargo", "crates", "registry"]
    result = zxcvbn(text[:_MAX_SCORED], user_inputs=inputs)
    score = int(result.get("score", 0))
    if score >= MIN_SCORE:
        return None
    feedback = result.get("feedback") or {}
    why = [str(feedback.get("warning") or "").strip()]
    why += [str(s).strip() for s in feedback.get("suggestions") or []]
    detail = " ".join(w.rstrip(".") + "." for w in why if w)
    return (
        f"The passphrase is too weak (strength {score} of 4, at least {MIN_SCORE} needed). "
        + (detail + " " if detail else "")
    ).rstrip()


def check_passphrase(passphrase: Secret, *, context: Iterable[str] = ()) -> None:
    """Raise :class:`ConfigError` (with a hint) when ``passphrase`` is too weak."""
    problem = passphrase_problem(passphrase, context=context)
    if problem is not None:
        raise ConfigError(problem + " Nothing was created.", hint=_HINT)

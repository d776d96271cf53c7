"""The registry side of RFC 3231: verify cargo's asymmetric ``v3.public`` tokens.

This module checks everything cargo's own test registry checks (and a little more):

1. the token is a PASETO ``v3.public`` token whose footer is JSON with ``url`` and ``kip``;
2. ``kip`` names a registered public key and the signature verifies with it (no implicit
   assertion);
3. the footer ``url`` is this registry's index URL, exactly;
4. ``iat`` is an RFC 3339 UTC timestamp (``Z``, up to 9 fraction digits), recent, and not in
   the future;
5. ``sub`` equals the subject registered with the key (both absent counts as equal);
6. ``v``, if present, is 1;
7. for a mutation, ``mutation``/``name``/``vers``/``cksum`` match the HTTP request; for a read,
   none of them is present.

It must stay free of Qt: the demo registry and the ``verify`` CLI use it headless.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import functools
import json
import re
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from gui_approver import errors

__all__ = [
    "MUTATIONS",
    "Expected",
    "RegisteredKey",
    "VerificationError",
    "VerifiedToken",
    "add_verify_parser",
    "parse_iat",
    "verify_token",
    "verify_token_detailed",
]

TOKEN_PREFIX = "v3.public."  # noqa: S105 - a format prefix, not a secret
PUBLIC_PREFIX = "k3.public."

#: The mutations RFC 3231 (and cargo) know about.
MUTATIONS = ("publish", "yank", "unyank", "owners")
_WITH_VERS = frozenset({"publish", "yank", "unyank"})
_MUTATION_CLAIMS = ("mutation", "name", "vers", "cksum")

_B64URL = re.compile(r"[A-Za-z0-9_-]*")
# ASCII digits only: ``\d`` would match any Unicode digit and ``int()`` would read it.
_IAT = re.compile(
    r"(?P<y>[0-9]{4})-(?P<mo>[0-9]{2})-(?P<d>[0-9]{2})"
    r"T(?P<h>[0-9]{2}):(?P<mi>[0-9]{2}):(?P<s>[0-9]{2})"
    r"(?:\.(?P<frac>[0-9]{1,9}))?Z",
    re.ASCII,
)


VerificationError = errors.VerificationError


@functools.lru_cache(maxsize=256)
def _public_key(paserk: str) -> Any:
    """Parse a ``k3.public.`` PASERK into a pyseto key (cached: decompressing is not free)."""
    if not isinstance(paserk, str) or not paserk.startswith(PUBLIC_PREFIX):
        raise ValueError(f"not a k3.public PASERK: {paserk!r}")
    from pyseto import Key  # imported here: building the CLI parser must not pay for it

    try:
        return Key.from_paserk(paserk)
    except Exception as err:  # pyseto raises ValueError, but also others for odd input
        raise ValueError(f"invalid k3.public PASERK {paserk!r}: {err}") from err


@dataclass(frozen=True)
class RegisteredKey:
    """A public key a registry accepts, with the subject registered alongside it."""

    public: str  # "k3.public...."
    subject: str | None = None
    kip: str = ""  # "k3.pid...."; computed from ``public`` when empty

    def __post_init__(self) -> None:
        key = _public_key(self.public)
        kip = str(key.to_paserk_id())
        if not self.kip:
            object.__setattr__(self, "kip", kip)
        elif self.kip != kip:
            raise ValueError(f"kip {self.kip!r} does not belong to key {self.public!r}")


@dataclass(frozen=True)
class Expected:
    """What the HTTP request being authorised does."""

    mutation: str | None  # None for reads; else "publish" | "yank" | "unyank" | "owners"
    name: str | None = None
    vers: str | None = None
    cksum: str | None = None


@dataclass(frozen=True)
class VerifiedToken:
    """A token that passed every check: its claims and the key that signed it."""

    claims: dict[str, Any]
    footer: dict[str, Any]
    key: RegisteredKey


def parse_iat(value: object) -> datetime:
    """Parse cargo's ``iat``: RFC 3339, UTC ``Z``, up to 9 fraction digits.

    Raises ``VerificationError("bad-iat")``. Nanoseconds are truncated to microseconds.
    """
    if not isinstance(value, str):
        raise VerificationError("bad-iat", f"The token's iat claim is not a string: {value!r}.")
    m = _IAT.fullmatch(value)
    if m is None:
        raise VerificationError(
            "bad-iat",
            f"The token's iat claim {value!r} is not an RFC 3339 UTC timestamp "
            "like 2026-11-22T02:20:56.477768694Z.",
        )
    frac = (m["frac"] or "").ljust(6, "0")[:6]
    try:
        return datetime(
            int(m["y"]),
            int(m["mo"]),
            int(m["d"]),
            int(m["h"]),
            int(m["mi"]),
            int(m["s"]),
            int(frac),
            tzinfo=UTC,
        )
    except ValueError as err:
        raise VerificationError(
            "bad-iat", f"The token's iat claim {value!r} is not a valid date and time: {err}."
        ) from None


def _b64url_decode(part: str) -> bytes:
    """Decode canonical unpadded base64url: one spelling per byte string.

    Non-zero bits after the data in the last character (or padding) would give a second token
    string for the same signature; both are refused.
    """
    if not _B64URL.fullmatch(part) or len(part) % 4 == 1:
        raise ValueError("not unpadded base64url")
    data = base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))
    if base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii") != part:
        raise ValueError("not canonical base64url")
    return data


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in pairs:
        if k in out:
            raise ValueError(f"duplicate key {k!r}")
        out[k] = v
    return out


def _json_object(data: bytes, what: str) -> dict[str, Any]:
    try:
        obj = json.loads(data.decode("utf-8"), object_pairs_hook=_no_duplicates)
    except (UnicodeDecodeError, ValueError, RecursionError) as err:
        raise VerificationError(
            "malformed", f"The token's {what} is not valid JSON: {err}."
        ) from None
    if not isinstance(obj, dict):
        raise VerificationError("malformed", f"The token's {what} is not a JSON object.")
    return obj


def _describe(value: object) -> str:
    return "absent" if value is None else repr(value)


def verify_token_detailed(
    token: str,
    *,
    index_url: str,
    keys: Iterable[RegisteredKey],
    expected: Expected,
    now: datetime | None = None,
    max_age: float = 60.0,
    max_skew: float = 5.0,
) -> VerifiedToken:
    """Like :func:`verify_token`, but also return the footer and the key that signed."""
    try:
        return _verify(
            token,
            index_url=index_url,
            keys=keys,
            expected=expected,
            now=now,
            max_age=max_age,
            max_skew=max_skew,
        )
    except VerificationError:
        raise
    except Exception as err:  # never let anything else escape: callers map errors to HTTP 401
        raise VerificationError(
            "malformed", f"The token could not be decoded: {type(err).__name__}: {err}."
        ) from err


def verify_token(
    token: str,
    *,
    index_url: str,
    keys: Iterable[RegisteredKey],
    expected: Expected,
    now: datetime | None = None,
    max_age: float = 60.0,
    max_skew: float = 5.0,
) -> dict[str, Any]:
    """Verify an RFC 3231 token for the request described by ``expected``; return its claims.

    Raises :class:`VerificationError` (and nothing else) when the token must be rejected.
    """
    return verify_token_detailed(
        token,
        index_url=index_url,
        keys=keys,
        expected=expected,
        now=now,
        max_age=max_age,
        max_skew=max_skew,
    ).claims


def _verify(
    token: str,
    *,
    index_url: str,
    keys: Iterable[RegisteredKey],
    expected: Expected,
    now: datetime | None,
    max_age: float,
    max_skew: float,
) -> VerifiedToken:
    footer, url, kip = _read_footer(token)

    key = next((k for k in keys if k.kip == kip), None)
    if key is None:
        raise VerificationError(
            "unknown-key", f"The token was signed by key {kip}, which is not registered here."
        )

    import pyseto

    try:
        decoded = pyseto.decode(_public_key(key.public), token)
    except pyseto.VerifyError:
        raise VerificationError(
            "bad-signature", f"The token's signature does not verify with key {kip}."
        ) from None
    payload = decoded.payload
    if not isinstance(payload, bytes):  # pragma: no cover - no deserializer was given
        raise VerificationError("malformed", "The token's payload could not be read.")

    if url != index_url:
        raise VerificationError(
            "wrong-url", f"The token is for registry {url!r}, not for {index_url!r}."
        )

    claims = _json_object(payload, "payload")

    _check_iat(claims, now, max_age=max_age, max_skew=max_skew)

    sub = claims.get("sub")
    if sub != key.subject:
        raise VerificationError(
            "sub-mismatch",
            f"The token's subject is {_describe(sub)}, but key {kip} is registered "
            f"with subject {_describe(key.subject)}.",
        )

    _check_operation(claims, expected)

    return VerifiedToken(claims=claims, footer=footer, key=key)


def _read_footer(token: str) -> tuple[dict[str, Any], str, str]:
    """The token's shape and its footer (``url`` and ``kip``); the footer is authenticated
    by the signature, but its kip is needed to find the key first."""
    if not isinstance(token, str) or not token.startswith(TOKEN_PREFIX):
        shown = token[:16] if isinstance(token, str) else type(token).__name__
        raise VerificationError(
            "not-v3-public",
            f"The token is not an asymmetric PASETO v3.public token (it starts {shown!r}).",
        )
    parts = token.split(".")
    if len(parts) != 4 or not parts[2] or not parts[3]:
        raise VerificationError(
            "malformed",
            "The token must have four dot-separated parts: v3, public, payload and footer.",
        )
    try:
        _b64url_decode(parts[2])
        footer_bytes = _b64url_decode(parts[3])
    except (ValueError, binascii.Error):
        raise VerificationError("malformed", "The token is not valid base64url.") from None
    footer = _json_object(footer_bytes, "footer")
    url = footer.get("url")
    kip = footer.get("kip")
    if not isinstance(url, str) or not isinstance(kip, str):
        raise VerificationError(
            "malformed", 'The token\'s footer must hold string fields "url" and "kip".'
        )

    return footer, url, kip


def _check_iat(
    claims: dict[str, Any], now: datetime | None, *, max_age: float, max_skew: float
) -> None:
    """``iat``: recent, not in the future."""
    iat = parse_iat(claims.get("iat"))
    current = now if now is not None else datetime.now(UTC)
    if current.tzinfo is None:
        current = current.replace(tzinfo=UTC)
    age = current - iat
    if age > timedelta(seconds=max_age):
        raise VerificationError(
            "iat-too-old",
            f"The token was issued at {claims['iat']}, {age.total_seconds():.1f} s ago; "
            f"tokens older than {max_age:g} s are refused.",
        )
    if -age > timedelta(seconds=max_skew):
        raise VerificationError(
            "iat-in-future",
            f"The token was issued at {claims['iat']}, {-age.total_seconds():.1f} s in the "
            f"future; more than {max_skew:g} s of clock skew is refused.",
        )


def _check_operation(claims: dict[str, Any], expected: Expected) -> None:
    """``v``, the claims' types, and the mutation claims against the request."""
    if "v" in claims:
        v = claims["v"]
        if type(v) is not int or v != 1:
            raise VerificationError(
                "bad-v", f"The token's v claim is {v!r}; only version 1 is understood."
            )

    for field in _MUTATION_CLAIMS:
        value = claims.get(field)
        if value is not None and not isinstance(value, str):
            raise VerificationError(
                "malformed", f"The token's {field} claim is not a string: {value!r}."
            )

    op = expected.mutation
    if op is None:
        present = [f for f in _MUTATION_CLAIMS if f in claims]
        if present:
            raise VerificationError(
                "unexpected-mutation-claims",
                "This request is a read, but the token carries the mutation claims "
                f"{', '.join(present)}: it was made for a different operation.",
            )
    else:
        mutation = claims.get("mutation")
        if mutation != op:
            raise VerificationError(
                "mutation-mismatch",
                f"The token authorises mutation {_describe(mutation)}, but this request is {op!r}.",
            )
        name = claims.get("name")
        if name != expected.name:
            raise VerificationError(
                "name-mismatch",
                f"The token is for crate {_describe(name)}, "
                f"but this request is for {_describe(expected.name)}.",
            )
        vers = claims.get("vers")
        want_vers = expected.vers if op in _WITH_VERS else None
        if vers != want_vers:
            raise VerificationError(
                "vers-mismatch",
                f"The token is for version {_describe(vers)}, "
                f"but this {op} request is for version {_describe(want_vers)}.",
            )
        cksum = claims.get("cksum")
        want_cksum = expected.cksum if op == "publish" else None
        if cksum != want_cksum:
            raise VerificationError(
                "cksum-mismatch",
                f"The token is for a .crate with checksum {_describe(cksum)}, "
                f"but this {op} request has {_describe(want_cksum)}.",
            )


# --------------------------------------------------------------------------- CLI


def _parse_now(value: str) -> datetime:
    try:
        return parse_iat(value)
    except VerificationError:
        pass
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an RFC 3339 timestamp: {value!r}") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _run_verify(args: argparse.Namespace) -> int:
    try:
        keys = [RegisteredKey(public=k, subject=args.subject) for k in args.key]
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    missing = []
    if args.mutation is not None:
        needed = ["name"]
        needed += ["vers"] if args.mutation in _WITH_VERS else []
        needed += ["cksum"] if args.mutation == "publish" else []
        missing = [f"--{n}" for n in needed if getattr(args, n) is None]
    elif any(getattr(args, n) is not None for n in ("name", "vers", "cksum")):
        print("error: --name/--vers/--cksum need --mutation", file=sys.stderr)
        return 2
    if missing:
        print(f"error: --mutation {args.mutation} needs {' '.join(missing)}", file=sys.stderr)
        return 2
    expected = Expected(mutation=args.mutation, name=args.name, vers=args.vers, cksum=args.cksum)
    try:
        claims = verify_token(
            args.token.strip(),
            index_url=args.index_url,
            keys=keys,
            expected=expected,
            now=args.now,
            max_age=args.max_age,
            max_skew=args.max_skew,
        )
    except VerificationError as err:
        print(f"rejected ({err.reason}): {err}", file=sys.stderr)
        return 1
    print(json.dumps(claims, separators=(",", ":")))
    return 0


def add_verify_parser(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add the ``verify`` subcommand; it sets ``func`` to a callable returning the exit code."""
    p = subparsers.add_parser(
        "verify",
        help="verify an RFC 3231 token the way a registry would",
        description=(
            "Verify a cargo asymmetric (RFC 3231, PASETO v3.public) token as a registry would. "
            "Prints the claims as JSON and exits 0 when valid; prints the reason on stderr "
            "and exits 1 otherwise."
        ),
    )
    p.add_argument("--index-url", required=True, help="the registry's index URL, exactly")
    p.add_argument(
        "--key",
        action="append",
        required=True,
        metavar="K3_PUBLIC",
        help="a registered k3.public... key (repeatable)",
    )
    p.add_argument("--subject", default=None, help="the subject registered with the key(s)")
    p.add_argument(
        "--max-age", type=float, default=60.0, metavar="SECONDS", help="oldest iat accepted"
    )
    p.add_argument(
        "--max-skew",
        type=float,
        default=5.0,
        metavar="SECONDS",
        help="how far in the future iat may be",
    )
    p.add_argument(
        "--now", type=_parse_now, default=None, metavar="RFC3339", help="pretend it is this time"
    )
    p.add_argument(
        "--mutation", choices=MUTATIONS, default=None, help="the mutation; omit for a read"
    )
    p.add_argument("--name", default=None, help="crate name the request is for")
    p.add_argument("--vers", default=None, help="crate version the request is for")
    p.add_argument("--cksum", default=None, help="sha256 of the uploaded .crate (publish)")
    p.add_argument("token", metavar="TOKEN", help="the v3.public... token")
    p.set_defaults(func=_run_verify)

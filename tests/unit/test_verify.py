"""Tests for gui_approver.registry.verify: the registry side of RFC 3231.

Tokens are built here with pyseto directly, shaped exactly like cargo's ``cargo:paseto``
provider makes them (compact JSON payload in the order iat, sub, mutation, name, vers, cksum;
footer ``{"url":...,"kip":...}``).
"""

from __future__ import annotations

import argparse
import base64
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pyseto
import pytest
from factories import KeyPair
from hypothesis import given, settings
from hypothesis import strategies as st

from gui_approver.registry.verify import (
    Expected,
    RegisteredKey,
    VerificationError,
    add_verify_parser,
    parse_iat,
    verify_token,
)

URL = "sparse+http://127.0.0.1:8765/index/"
NOW = datetime(2026, 11, 22, 2, 20, 56, 477768, tzinfo=UTC)
READ = Expected(None)
CKSUM = "e54a35351a7caaa0f53e1fa510d840328aa986070ee9adcd81511611200d2ced"


def rfc3339(dt: datetime, nanos: int | None = None) -> str:
    """Format like cargo: UTC ``Z``, fraction trimmed of trailing zeros, none when zero."""
    dt = dt.astimezone(UTC)
    frac = f"{dt.microsecond:06d}000" if nanos is None else f"{nanos:09d}"
    frac = frac.rstrip("0")
    return dt.strftime("%Y-%m-%dT%H:%M:%S") + (f".{frac}" if frac else "") + "Z"


def claims(
    *,
    iat: object = None,
    sub: str | None = None,
    mutation: str | None = None,
    name: str | None = None,
    vers: str | None = None,
    cksum: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    out: dict[str, Any] = {"iat": rfc3339(NOW) if iat is None else iat}
    for k, v in (("sub", sub), ("mutation", mutation), ("name", name), ("vers", vers)):
        if v is not None:
            out[k] = v
    if cksum is not None:
        out["cksum"] = cksum
    out.update(extra)
    return out


def make_token(
    kp: KeyPair,
    payload: dict[str, Any] | bytes,
    *,
    url: str = URL,
    kip: str | None = None,
    footer: bytes | None = None,
    implicit_assertion: bytes = b"",
) -> str:
    body = payload if isinstance(payload, bytes) else json.dumps(payload, separators=(",", ":"))
    if footer is None:
        footer = json.dumps({"url": url, "kip": kip or kp.kip}, separators=(",", ":")).encode()
    token = pyseto.encode(kp.secret, body, footer=footer, implicit_assertion=implicit_assertion)
    return token.decode()


@pytest.fixture(scope="module")
def kp() -> KeyPair:
    return KeyPair()


@pytest.fixture(scope="module")
def other() -> KeyPair:
    return KeyPair()


def check(
    kp: KeyPair,
    token: str,
    expected: Expected = READ,
    *,
    subject: str | None = None,
    **kw: Any,
) -> dict[str, Any]:
    kw.setdefault("now", NOW)
    return verify_token(
        token, index_url=URL, keys=[kp.registered(subject)], expected=expected, **kw
    )


def rejected(kp: KeyPair, token: str, expected: Expected = READ, **kw: Any) -> str:
    with pytest.raises(VerificationError) as info:
        check(kp, token, expected, **kw)
    assert str(info.value)  # a human sentence
    return info.value.reason


# ----------------------------------------------------------------------------- accepted


def test_read_token_accepted(kp: KeyPair) -> None:
    assert check(kp, make_token(kp, claims())) == {"iat": rfc3339(NOW)}


def test_publish_token_accepted(kp: KeyPair) -> None:
    c = claims(mutation="publish", name="foo", vers="0.6.0", cksum=CKSUM)
    assert check(kp, make_token(kp, c), Expected("publish", "foo", "0.6.0", CKSUM)) == c


@pytest.mark.parametrize("op", ["yank", "unyank"])
def test_yank_token_accepted(kp: KeyPair, op: str) -> None:
    c = claims(mutation=op, name="foo", vers="0.6.0")
    assert check(kp, make_token(kp, c), Expected(op, "foo", "0.6.0")) == c


def test_owners_token_accepted(kp: KeyPair) -> None:
    c = claims(mutation="owners", name="foo")
    assert check(kp, make_token(kp, c), Expected("owners", "foo")) == c


def test_subject_accepted(kp: KeyPair) -> None:
    c = claims(sub="alice", mutation="owners", name="foo")
    assert check(kp, make_token(kp, c), Expected("owners", "foo"), subject="alice")["sub"] == (
        "alice"
    )


def test_v1_accepted(kp: KeyPair) -> None:
    assert check(kp, make_token(kp, claims(v=1)))["v"] == 1


def test_the_right_key_is_picked_among_several(kp: KeyPair, other: KeyPair) -> None:
    token = make_token(other, claims(sub="bob"))
    keys = [kp.registered(), other.registered("bob")]
    result = verify_token(token, index_url=URL, keys=keys, expected=Expected(None), now=NOW)
    assert result["sub"] == "bob"


@pytest.mark.parametrize(
    "iat",
    [
        "2026-11-22T02:20:56Z",
        "2026-11-22T02:20:56.4Z",
        "2026-11-22T02:20:56.477768694Z",
        "2026-11-22T02:20:30.000000001Z",
    ],
)
def test_iat_formats_accepted(kp: KeyPair, iat: str) -> None:
    assert check(kp, make_token(kp, claims(iat=iat)))["iat"] == iat


def test_iat_age_limits(kp: KeyPair) -> None:
    token = make_token(kp, claims(iat=rfc3339(NOW - timedelta(seconds=60))))
    check(kp, token)  # exactly max_age is still fine
    assert rejected(kp, token, now=NOW + timedelta(milliseconds=1)) == "iat-too-old"
    check(kp, token, now=NOW + timedelta(seconds=100), max_age=900)  # the RFC's 15 minutes
    future = make_token(kp, claims(iat=rfc3339(NOW + timedelta(seconds=5))))
    check(kp, future)


def test_now_defaults_to_the_clock(kp: KeyPair) -> None:
    iat = rfc3339(datetime.now(UTC))
    fresh = make_token(kp, claims(iat=iat))
    verified = verify_token(fresh, index_url=URL, keys=[kp.registered()], expected=READ)
    assert verified["iat"] == iat
    # a token fresh at NOW (2026-11-22) is old by the clock when `now` is not given
    old = make_token(kp, claims())
    assert check(kp, old)["iat"] == claims()["iat"]
    with pytest.raises(VerificationError) as info:
        verify_token(old, index_url=URL, keys=[kp.registered()], expected=READ)
    assert info.value.reason == "iat-too-old"


def test_naive_now_is_utc(kp: KeyPair) -> None:
    check(kp, make_token(kp, claims()), now=NOW.replace(tzinfo=None))


# ----------------------------------------------------------------------------- rejected


@pytest.mark.parametrize(
    "token",
    ["", "Bearer abc", "v4.public.abc.def", "v3.local.abc.def", "v2.public.x", "V3.PUBLIC.x.y"],
)
def test_not_v3_public(kp: KeyPair, token: str) -> None:
    assert rejected(kp, token) == "not-v3-public"


def test_plain_secret_token_is_not_v3_public(kp: KeyPair) -> None:
    assert rejected(kp, "cio1234567890abcdef") == "not-v3-public"


def test_unknown_key(kp: KeyPair, other: KeyPair) -> None:
    assert rejected(kp, make_token(other, claims())) == "unknown-key"


def test_bad_signature_wrong_signer(kp: KeyPair, other: KeyPair) -> None:
    # Signed by `other` but naming `kp`'s kip in the footer.
    assert rejected(kp, make_token(other, claims(), kip=kp.kip)) == "bad-signature"


def test_bad_signature_tampered_payload(kp: KeyPair) -> None:
    good = make_token(kp, claims(mutation="yank", name="foo", vers="1.0.0"))
    head, purpose, body, footer = good.split(".")
    raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
    raw = raw.replace(b'"foo"', b'"bar"')
    forged_body = base64.urlsafe_b64encode(raw).rstrip(b"=").decode()
    forged = ".".join([head, purpose, forged_body, footer])
    assert rejected(kp, forged, Expected("yank", "bar", "1.0.0")) == "bad-signature"


def test_bad_signature_tampered_footer(kp: KeyPair) -> None:
    good = make_token(kp, claims(), url="sparse+http://evil/index/")
    head, purpose, body, _ = good.split(".")
    footer = json.dumps({"url": URL, "kip": kp.kip}, separators=(",", ":")).encode()
    forged = ".".join([head, purpose, body, base64.urlsafe_b64encode(footer).decode().rstrip("=")])
    assert rejected(kp, forged) == "bad-signature"


def test_implicit_assertion_is_not_accepted(kp: KeyPair) -> None:
    token = make_token(kp, claims(), implicit_assertion=b"something")
    assert rejected(kp, token) == "bad-signature"


def test_wrong_url(kp: KeyPair) -> None:
    for url in [
        "sparse+http://127.0.0.1:8766/index/",
        "sparse+http://127.0.0.1:8765/index",
        "https://github.com/rust-lang/crates.io-index",
        URL.upper(),
    ]:
        assert rejected(kp, make_token(kp, claims(), url=url)) == "wrong-url"


@pytest.mark.parametrize(
    "iat",
    [
        "2026-11-22T02:20:56",  # no zone
        "2026-11-22T02:20:56+00:00",  # cargo sends Z
        "2026-11-22 02:20:56Z",
        "2026-11-22T02:20:56.Z",
        "2026-11-22T02:20:56.1234567890Z",  # 10 fraction digits
        "2026-13-22T02:20:56Z",
        "2026-02-30T02:20:56Z",
        "2026-11-22T24:00:00Z",
        "1795000000",
        "",
        1795000000,
        None,
        ["2026-11-22T02:20:56Z"],
    ],
)
def test_bad_iat(kp: KeyPair, iat: object) -> None:
    payload = {"iat": iat} if iat is not None else {}
    assert rejected(kp, make_token(kp, payload)) == "bad-iat"


def test_iat_too_old(kp: KeyPair) -> None:
    token = make_token(kp, claims(iat=rfc3339(NOW - timedelta(seconds=61))))
    assert rejected(kp, token) == "iat-too-old"
    assert rejected(kp, token, max_age=30) == "iat-too-old"


def test_iat_in_future(kp: KeyPair) -> None:
    token = make_token(kp, claims(iat=rfc3339(NOW + timedelta(seconds=6))))
    assert rejected(kp, token) == "iat-in-future"
    check(kp, token, max_skew=10)


@pytest.mark.parametrize(
    ("token_sub", "registered_sub"),
    [("alice", None), (None, "alice"), ("alice", "bob"), ("", None)],
)
def test_sub_mismatch(kp: KeyPair, token_sub: str | None, registered_sub: str | None) -> None:
    token = make_token(kp, claims(sub=token_sub))
    assert rejected(kp, token, subject=registered_sub) == "sub-mismatch"


@pytest.mark.parametrize("v", [2, 0, "1", True, 1.5, None])
def test_bad_v(kp: KeyPair, v: object) -> None:
    assert rejected(kp, make_token(kp, claims(v=v))) == "bad-v"


def test_mutation_mismatch(kp: KeyPair) -> None:
    yank = make_token(kp, claims(mutation="yank", name="foo", vers="1.0.0"))
    assert rejected(kp, yank, Expected("unyank", "foo", "1.0.0")) == "mutation-mismatch"
    read = make_token(kp, claims())
    assert rejected(kp, read, Expected("owners", "foo")) == "mutation-mismatch"


def test_name_mismatch(kp: KeyPair) -> None:
    token = make_token(kp, claims(mutation="owners", name="foo"))
    assert rejected(kp, token, Expected("owners", "bar")) == "name-mismatch"
    assert rejected(kp, token, Expected("owners", "Foo")) == "name-mismatch"


def test_vers_mismatch(kp: KeyPair) -> None:
    token = make_token(kp, claims(mutation="yank", name="foo", vers="1.0.0"))
    assert rejected(kp, token, Expected("yank", "foo", "1.0.1")) == "vers-mismatch"
    publish = make_token(kp, claims(mutation="publish", name="foo", cksum=CKSUM))
    assert rejected(kp, publish, Expected("publish", "foo", "1.0.0", CKSUM)) == "vers-mismatch"
    # owners has no version: a token that carries one is for something else
    owners = make_token(kp, claims(mutation="owners", name="foo", vers="1.0.0"))
    assert rejected(kp, owners, Expected("owners", "foo")) == "vers-mismatch"


def test_cksum_mismatch(kp: KeyPair) -> None:
    c = claims(mutation="publish", name="foo", vers="1.0.0", cksum=CKSUM)
    token = make_token(kp, c)
    assert rejected(kp, token, Expected("publish", "foo", "1.0.0", "0" * 64)) == "cksum-mismatch"
    no_cksum = make_token(kp, claims(mutation="publish", name="foo", vers="1.0.0"))
    assert rejected(kp, no_cksum, Expected("publish", "foo", "1.0.0", CKSUM)) == "cksum-mismatch"


@pytest.mark.parametrize(
    "extra",
    [
        {"mutation": "publish"},
        {"name": "foo"},
        {"vers": "1.0.0"},
        {"cksum": CKSUM},
        {"mutation": "owners", "name": "foo"},
    ],
)
def test_unexpected_mutation_claims(kp: KeyPair, extra: dict[str, str]) -> None:
    assert rejected(kp, make_token(kp, claims(**extra))) == "unexpected-mutation-claims"


@pytest.mark.parametrize(
    "token_fn",
    [
        lambda kp: "v3.public.",
        lambda kp: "v3.public.abc",
        lambda kp: "v3.public.abc.",
        lambda kp: "v3.public..def",
        lambda kp: "v3.public.a!c.def",
        lambda kp: "v3.public.abc.d+f",
        lambda kp: "v3.public.abc.def.ghi",
        lambda kp: make_token(kp, claims(), footer=b"not json"),
        lambda kp: make_token(kp, claims(), footer=b'["url","kip"]'),
        lambda kp: make_token(kp, claims(), footer=b'{"url":"' + URL.encode() + b'"}'),
        lambda kp: make_token(kp, claims(), footer=b'{"url":1,"kip":"k3.pid.x"}'),
        lambda kp: make_token(kp, claims(), footer=b"\xff\xfe"),
        lambda kp: make_token(kp, b"not json"),
        lambda kp: make_token(kp, b'["iat"]'),
        lambda kp: make_token(kp, b"\xff"),
        lambda kp: make_token(kp, {"iat": rfc3339(NOW), "mutation": 7}),
        lambda kp: make_token(
            kp, b'{"iat":"2026-11-22T02:20:56Z","mutation":"yank","mutation":"owners"}'
        ),
    ],
)
def test_malformed(kp: KeyPair, token_fn: Any) -> None:
    assert rejected(kp, token_fn(kp), Expected("owners", "foo")) == "malformed"


def test_truncated_signature_is_rejected(kp: KeyPair) -> None:
    head, purpose, body, footer = make_token(kp, claims()).split(".")
    token = ".".join([head, purpose, body[:40], footer])
    assert rejected(kp, token) in {"bad-signature", "malformed"}


@settings(max_examples=200, deadline=None, database=None)
@given(st.text(max_size=200))
def test_only_verification_errors_escape(suffix: str) -> None:
    kp = _FUZZ_KEY
    for token in ("v3.public." + suffix, suffix, "v3.public.e30." + suffix):
        try:
            verify_token(token, index_url=URL, keys=[kp.registered()], expected=Expected(None))
        except VerificationError as err:
            assert err.reason
            assert str(err)


_FUZZ_KEY = KeyPair()


def test_reasons_are_stable_strings(kp: KeyPair) -> None:
    err = VerificationError("unknown-key", "A sentence.")
    assert err.reason == "unknown-key"
    assert str(err) == "A sentence."


def test_messages_are_precise(kp: KeyPair, other: KeyPair) -> None:
    with pytest.raises(VerificationError, match=other.kip):
        check(kp, make_token(other, claims()))
    with pytest.raises(VerificationError, match="not for 'sparse"):
        check(kp, make_token(kp, claims(), url="sparse+http://elsewhere/index/"))


# ------------------------------------------------------------------------ RegisteredKey


def test_registered_key_computes_kip(kp: KeyPair) -> None:
    key = RegisteredKey(public=kp.public)
    assert key.kip == kp.kip
    assert key.kip.startswith("k3.pid.")
    assert RegisteredKey(public=kp.public, kip=kp.kip) == key


def test_registered_key_rejects_bad_input(kp: KeyPair, other: KeyPair) -> None:
    with pytest.raises(ValueError, match="does not belong"):
        RegisteredKey(public=kp.public, kip=other.kip)
    with pytest.raises(ValueError, match=r"k3\.public"):
        RegisteredKey(public=kp.secret.to_paserk())
    with pytest.raises(ValueError, match=r"k3\.public"):
        RegisteredKey(public="k3.public.AAAA")


def test_parse_iat_nanoseconds() -> None:
    assert parse_iat("2026-11-22T02:20:56.477768694Z") == NOW


# ----------------------------------------------------------------------------- the CLI


def run_cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="gui-approver")
    add_verify_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    result: int = args.func(args)
    return result


def base_argv(kp: KeyPair) -> list[str]:
    return ["verify", "--index-url", URL, "--key", kp.public, "--now", rfc3339(NOW)]


def test_cli_valid_read(kp: KeyPair, capsys: pytest.CaptureFixture[str]) -> None:
    token = make_token(kp, claims())
    assert run_cli([*base_argv(kp), token]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out) == {"iat": rfc3339(NOW)}
    assert err == ""


def test_cli_valid_publish(kp: KeyPair, capsys: pytest.CaptureFixture[str]) -> None:
    c = claims(sub="alice", mutation="publish", name="foo", vers="0.6.0", cksum=CKSUM)
    argv = [*base_argv(kp), "--subject", "alice", "--mutation", "publish", "--name", "foo"]
    argv += ["--vers", "0.6.0", "--cksum", CKSUM, make_token(kp, c)]
    assert run_cli(argv) == 0
    assert json.loads(capsys.readouterr().out) == c


def test_cli_rejected(kp: KeyPair, capsys: pytest.CaptureFixture[str]) -> None:
    token = make_token(kp, claims(mutation="yank", name="foo", vers="1.0.0"))
    argv = [*base_argv(kp), "--mutation", "yank", "--name", "foo", "--vers", "2.0.0", token]
    assert run_cli(argv) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert "vers-mismatch" in err
    assert "version '1.0.0'" in err


def test_cli_too_old_and_max_age(kp: KeyPair, capsys: pytest.CaptureFixture[str]) -> None:
    token = make_token(kp, claims(iat=rfc3339(NOW - timedelta(seconds=120))))
    assert run_cli([*base_argv(kp), token]) == 1
    assert "iat-too-old" in capsys.readouterr().err
    assert run_cli([*base_argv(kp), "--max-age", "900", token]) == 0


def test_cli_unknown_key(kp: KeyPair, other: KeyPair, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli([*base_argv(kp), make_token(other, claims())]) == 1
    assert other.kip in capsys.readouterr().err


def test_cli_incomplete_mutation_args(kp: KeyPair, capsys: pytest.CaptureFixture[str]) -> None:
    token = make_token(kp, claims(mutation="publish", name="foo", vers="1.0.0", cksum=CKSUM))
    assert run_cli([*base_argv(kp), "--mutation", "publish", "--name", "foo", token]) == 2
    assert "--vers --cksum" in capsys.readouterr().err


def test_cli_bad_key(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["verify", "--index-url", URL, "--key", "k3.public.nope", "v3.public.x.y"]
    assert run_cli(argv) == 2
    assert "k3.public" in capsys.readouterr().err


# ------------------------------------------------- issue #6: every negative has its own reason


@pytest.mark.parametrize(
    "expected",
    [
        Expected("publish", "foo", "1.0.0", CKSUM),
        Expected("yank", "foo", "1.0.0"),
        Expected("unyank", "foo", "1.0.0"),
        Expected("owners", "foo"),
    ],
    ids=["publish", "yank", "unyank", "owners"],
)
def test_read_token_used_for_any_mutation(kp: KeyPair, expected: Expected) -> None:
    assert rejected(kp, make_token(kp, claims()), expected) == "mutation-mismatch"


def test_mutation_token_replayed_for_another_mutation(kp: KeyPair) -> None:
    publish = make_token(kp, claims(mutation="publish", name="foo", vers="1.0.0", cksum=CKSUM))
    assert rejected(kp, publish, Expected("yank", "foo", "1.0.0")) == "mutation-mismatch"
    assert rejected(kp, publish, READ) == "unexpected-mutation-claims"


def test_each_kind_of_forgery_has_its_own_reason(kp: KeyPair, other: KeyPair) -> None:
    """One row per negative the issue lists, each with the reason that names its cause (a
    registry's log and the user's error say what was wrong, not just "401")."""
    pub = Expected("publish", "foo", "1.0.0", CKSUM)
    good = claims(mutation="publish", name="foo", vers="1.0.0", cksum=CKSUM)
    token = make_token(kp, good)
    head, purpose, body, footer = token.split(".")
    raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
    tampered_body = base64.urlsafe_b64encode(raw.replace(b'"foo"', b'"bar"')).rstrip(b"=")
    other_footer = json.dumps(
        {"url": "sparse+http://evil/index/", "kip": kp.kip}, separators=(",", ":")
    ).encode()
    cases = {
        "tampered payload": (
            ".".join([head, purpose, tampered_body.decode(), footer]),
            Expected("publish", "bar", "1.0.0", CKSUM),
        ),
        "tampered footer": (
            ".".join(
                [head, purpose, body, base64.urlsafe_b64encode(other_footer).decode().rstrip("=")]
            ),
            pub,
        ),
        "wrong key": (make_token(other, good), pub),
        "wrong registry URL": (make_token(kp, good, url="sparse+http://elsewhere/index/"), pub),
        "old iat": (make_token(kp, {**good, "iat": rfc3339(NOW - timedelta(minutes=5))}), pub),
        "future iat": (make_token(kp, {**good, "iat": rfc3339(NOW + timedelta(minutes=5))}), pub),
        "bad iat": (make_token(kp, {**good, "iat": "yesterday"}), pub),
        "wrong cksum": (token, Expected("publish", "foo", "1.0.0", "0" * 64)),
        "wrong name": (token, Expected("publish", "bar", "1.0.0", CKSUM)),
        "wrong vers": (token, Expected("publish", "foo", "1.0.1", CKSUM)),
        "wrong mutation": (token, Expected("yank", "foo", "1.0.0")),
        "read token for a mutation": (make_token(kp, claims()), pub),
        "mutation token for a read": (token, READ),
        "v is not 1": (make_token(kp, {**good, "v": 2}), pub),
        "subject differs": (make_token(kp, {**good, "sub": "mallory"}), pub),
        "not v3.public": ("v4.public.abc.def", pub),
        "garbage": ("v3.public.!!!.???", pub),
    }
    reasons = {what: rejected(kp, t, exp) for what, (t, exp) in cases.items()}
    assert reasons == {
        "tampered payload": "bad-signature",
        "tampered footer": "bad-signature",
        "wrong key": "unknown-key",
        "wrong registry URL": "wrong-url",
        "old iat": "iat-too-old",
        "future iat": "iat-in-future",
        "bad iat": "bad-iat",
        "wrong cksum": "cksum-mismatch",
        "wrong name": "name-mismatch",
        "wrong vers": "vers-mismatch",
        "wrong mutation": "mutation-mismatch",
        "read token for a mutation": "mutation-mismatch",
        "mutation token for a read": "unexpected-mutation-claims",
        "v is not 1": "bad-v",
        "subject differs": "sub-mismatch",
        "not v3.public": "not-v3-public",
        "garbage": "malformed",
    }


# ----------------------------------------------------------------------------- canonical forms


@pytest.mark.parametrize(
    "iat",
    [
        "٢٠٢٦-١١-٢٢T٠٢:٢٠:٥٦Z",  # Arabic-Indic digits: \d matches them, int() reads them
        "2026-11-22T02:20:5６Z",  # one fullwidth digit
        "2026-11-22T02:20:56.４77768Z",  # a fullwidth digit in the fraction
        "２026-11-22T02:20:56Z",
    ],
)
def test_iat_only_ascii_digits(kp: KeyPair, iat: str) -> None:
    assert rejected(kp, make_token(kp, claims(iat=iat))) == "bad-iat"
    with pytest.raises(VerificationError):
        parse_iat(iat)


_B64_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


def _with_noncanonical_tail(part: str) -> str | None:
    """The same bytes spelled differently: set the unused low bits of the last character."""
    if len(part) % 4 == 0:
        return None
    spare = {2: 4, 3: 2}[len(part) % 4]  # unused bits in the last character
    last = _B64_ALPHABET.index(part[-1])
    assert last % (1 << spare) == 0  # canonical today
    return part[:-1] + _B64_ALPHABET[last | 1]


def test_only_canonical_base64url(kp: KeyPair) -> None:
    """Two token strings for one signature must not both verify (the bits after the data)."""
    tried = 0
    for n in range(8):  # vary the payload length until both parts have spare bits to flip
        token = make_token(kp, claims(sub=None, pad="x" * n))
        head, purpose, body, footer = token.split(".")
        check(kp, token)
        for i, variant in (
            (2, _with_noncanonical_tail(body)),
            (3, _with_noncanonical_tail(footer)),
        ):
            if variant is None:
                continue
            parts = [head, purpose, body, footer]
            parts[i] = variant
            assert base64.urlsafe_b64decode(variant + "==") == base64.urlsafe_b64decode(
                [body, footer][i - 2] + "=="
            )
            assert rejected(kp, ".".join(parts)) == "malformed"
            tried += 1
    assert tried >= 4


@pytest.mark.parametrize("padding", ["=", "==", "%3D"])
def test_padded_base64url_is_malformed(kp: KeyPair, padding: str) -> None:
    head, purpose, body, footer = make_token(kp, claims()).split(".")
    for token in (
        ".".join([head, purpose, body + padding, footer]),
        ".".join([head, purpose, body, footer + padding]),
    ):
        assert rejected(kp, token) == "malformed"

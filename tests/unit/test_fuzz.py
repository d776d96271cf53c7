"""Fuzzing the three parsers that take untrusted input, and the bridge around them.

``protocol.parse_request`` (a line from cargo), ``framing.parse_ipc_request`` (a message
from a bridge, i.e. from any process of this user) and ``framing.parse_ipc_reply`` (the
app's answer, for the bridge) each get :data:`FUZZ_EXAMPLES` (10,000) generated inputs in a
normal run: arbitrary bytes, and valid messages with fields removed, retyped, replaced or
added (arbitrary JSON values, unknown kinds/operations, wrong types), truncated, or wrapped
in junk. The only exception allowed out is ``ProtocolError`` (with a message); what they
accept must be well-formed. Huge lines and deep nesting are swept deterministically (random
generation rarely reaches a limit).

Speed: a hypothesis example costs ~0.5 ms here even for a trivial strategy, and a richly
structured one ~3 ms. The 10,000-example runs therefore draw only a seed, and
:func:`seeded_input` builds raw bytes or a mutated message from it (a failure still
reproduces from the input hypothesis prints). :data:`RICH_EXAMPLES` more per parser come
from fully structured, shrinkable hypothesis strategies.

``bridge.run`` is driven in-process (BytesIO/StringIO) with :data:`BRIDGE_EXAMPLES` cargo
inputs and :data:`REPLY_EXAMPLES` app replies from a fake app (the installed bridge process
gets a handful of cases in tests/integration/test_bridge_process.py). Each time: the hello
line, exactly one well-formed answer line, exit code 0, no hang.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import random
import re
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from checks import assert_one_answer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gui_approver.client import bridge, framing, paths, protocol, records
from gui_approver.client.protocol import CredentialRequest, ProtocolError
from gui_approver.secret import Secret

#: Generated inputs per parser: 10,000 in the `ci` hypothesis profile (make test), fewer in
#: `dev` (make check); the profiles are registered in conftest.py.
FUZZ_EXAMPLES: int = settings().max_examples  # the loaded profile's
_SCALE = FUZZ_EXAMPLES / 10_000
#: Per parser, from structured (shrinkable) hypothesis strategies.
RICH_EXAMPLES = max(30, round(300 * _SCALE))
#: Cargo inputs through the whole in-process bridge (no app running: Err "not running").
BRIDGE_EXAMPLES = max(50, round(1_000 * _SCALE))
#: Replies from a fake app through the whole in-process bridge.
REPLY_EXAMPLES = max(50, round(600 * _SCALE))

FUZZ = settings(
    max_examples=FUZZ_EXAMPLES,
    database=None,
    deadline=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.function_scoped_fixture,
    ],
)

GOLDEN = Path(__file__).parents[1] / "golden"
REQUESTS = [json.loads(x) for x in (GOLDEN / "requests.jsonl").read_text().splitlines()]
RESPONSES = [json.loads(x) for x in (GOLDEN / "responses.jsonl").read_text().splitlines()]

# ----------------------------------------------------------------------------- strategies

SPECIAL = [
    None,
    True,
    False,
    0,
    1,
    -1,
    2,
    1.0,
    1.5,
    -0.0,
    2**31,
    2**63,
    10**30,
    float("inf"),
    float("nan"),
    "",
    " ",
    "1",
    "get",
    "login",
    "logout",
    "read",
    "publish",
    "yank",
    "unyank",
    "owners",
    "credential",
    "ping",
    "ack",
    "response",
    "pong",
    "Ok",
    "Err",
    "other",
    "never",
    "session",
    "expires",
    "foo",
    "0.6.0",
    "a" * 65,
    "../etc",
    "ab" * 32,
    "AB" * 32,
    "\x00",
    "\ud800",
    "\u202e",
    "é",
    "sparse+http://127.0.0.1:1/index/",
    [],
    {},
    [1],
    ["x"],
    {"kind": "get"},
    {"index-url": "x"},
]

leaf = st.one_of(
    st.sampled_from(SPECIAL),
    st.integers(min_value=-(2**65), max_value=2**65),
    st.text(max_size=12),
)
json_value = st.recursive(
    leaf,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=5,
)

REQUEST_KEYS = [
    "v",
    "registry",
    "kind",
    "operation",
    "name",
    "vers",
    "cksum",
    "args",
    "token",
    "login-url",
    "unknown",
]
REGISTRY_KEYS = ["index-url", "name", "headers", "unknown"]


def _set_path(obj: Any, path: tuple[str, ...], action: str, value: Any) -> Any:
    """Apply one edit at ``path`` inside a JSON value (creating dicts on the way)."""
    if not path:
        return value if action != "delete" else None
    if not isinstance(obj, dict):
        obj = {}
    obj = dict(obj)
    head, rest = path[0], path[1:]
    if rest:
        obj[head] = _set_path(obj.get(head), rest, action, value)
    elif action == "delete":
        obj.pop(head, None)
    elif action == "stringify" and head in obj:
        obj[head] = json.dumps(obj[head])
    elif action == "listify" and head in obj:
        obj[head] = [obj[head]]
    else:
        obj[head] = value
    return obj


ACTIONS = ["set", "set", "delete", "stringify", "listify"]


def mutated(templates: list[Any], paths: list[tuple[str, ...]]) -> st.SearchStrategy[Any]:
    edit = st.tuples(st.sampled_from(paths), st.sampled_from(ACTIONS), json_value)

    def apply(template: Any, edits: list[tuple[tuple[str, ...], str, Any]]) -> Any:
        obj = template
        for path, action, value in edits:
            obj = _set_path(obj, path, action, value)
        return obj

    return st.builds(apply, st.sampled_from(templates), st.lists(edit, max_size=3))


def _dumps(obj: Any) -> bytes:
    return json.dumps(obj, ensure_ascii=False).encode("utf-8", "surrogatepass")


def _frame(obj: Any, how: str, junk: bytes, cut: int) -> bytes:
    data = _dumps(obj)
    if how == "cut":
        return data[: cut % (len(data) + 1)]
    if how == "junk-after":
        return data + junk
    if how == "junk-before":
        return junk + data
    if how == "newlines":
        return data + b"\n" + data + b"\n"
    if how == "bom":
        return b"\xef\xbb\xbf" + data
    if how == "spaces":
        return b" \t\r\n" + data + b" \n"
    return data + b"\n"


def framed(objects: st.SearchStrategy[Any]) -> st.SearchStrategy[bytes]:
    """JSON-encoded objects, sometimes truncated, padded or followed by junk."""
    return st.builds(
        _frame,
        objects,
        st.sampled_from(
            [
                "plain",
                "plain",
                "plain",
                "cut",
                "junk-after",
                "junk-before",
                "newlines",
                "bom",
                "spaces",
            ]
        ),
        st.binary(max_size=8),
        st.integers(min_value=0, max_value=10_000),
    )


arbitrary_bytes = st.binary(max_size=300)
arbitrary_text = st.text(max_size=120).map(lambda s: s.encode("utf-8", "surrogatepass"))
arbitrary_json = json_value.map(_dumps)

CARGO_PATHS: list[tuple[str, ...]] = [
    *[(k,) for k in REQUEST_KEYS],
    *[("registry", k) for k in REGISTRY_KEYS],
]

#: The passphrase/PIN in the "unlock" template: it must never show in a parse error or repr.
UNLOCK_SECRET = "pin-S3cr3t-7731"

IPC_REQUESTS = [
    {"ipc": 1, "type": "ping"},
    {"ipc": 1, "type": "lock"},
    {"ipc": 1, "type": "show"},
    *(
        {
            "ipc": 1,
            "type": "credential",
            "request": r,
            "provenance": {"pid": 10, "ppid": 9, "cwd": "/src"},
        }
        for r in REQUESTS
    ),
    {"ipc": 1, "type": "unlock", "registry": "local", "secret": UNLOCK_SECRET},
]
IPC_REQUEST_PATHS = (
    [
        ("ipc",),
        ("type",),
        ("request",),
        ("provenance",),
        ("provenance", "pid"),
        ("provenance", "ppid"),
        ("provenance", "cwd"),
        ("unknown",),
        ("registry",),
        ("secret",),
    ]
    + [("request", k) for k in REQUEST_KEYS]
    + [("request", "registry", k) for k in REGISTRY_KEYS]
)

IPC_REPLIES = [
    {"ipc": 1, "type": "ack", "timeout": 125},
    {"ipc": 1, "type": "pong", "pid": 1, "version": "0.1.0"},
    {"ipc": 1, "type": "locked", "count": 1},
    {"ipc": 1, "type": "shown"},
    *({"ipc": 1, "type": "response", "response": r} for r in RESPONSES),
    {"ipc": 1, "type": "response", "response": RESPONSES[0], "notice": "hello"},
    {"ipc": 1, "type": "unlocked", "ok": True, "message": "unlocked"},
    {"ipc": 1, "type": "unlocked", "ok": False, "message": "wrong PIN"},
]
IPC_REPLY_PATHS = [
    ("ipc",),
    ("type",),
    ("timeout",),
    ("response",),
    ("notice",),
    ("unknown",),
    ("ok",),
    ("message",),
    ("count",),
    ("response", "Ok"),
    ("response", "Err"),
    *(
        ("response", tag, k)
        for tag in ("Ok", "Err")
        for k in (
            "kind",
            "token",
            "cache",
            "expiration",
            "operation_independent",
            "message",
            "caused-by",
        )
    ),
]


def rich_inputs(templates: list[Any], paths: list[tuple[str, ...]]) -> st.SearchStrategy[bytes]:
    """Fully hypothesis-generated (and shrinkable) inputs; ~3 ms an example."""
    objects = mutated(templates, paths)
    return st.one_of(
        arbitrary_bytes,
        arbitrary_text,
        arbitrary_json,
        framed(objects),
        framed(objects),
        framed(objects),
    )


# Cheap structured inputs: hypothesis draws a template and a seed, this builds the input.

_ALPHABET = 'abcxyz019.-_+/:@ "\\{}[],\x00\x1f\x7fé\u202e\ud800\U0001f600'
_HOWS = [
    "plain",
    "plain",
    "plain",
    "plain",
    "cut",
    "junk-after",
    "junk-before",
    "newlines",
    "bom",
    "spaces",
]


def _random_json(rng: random.Random, depth: int) -> Any:
    roll = rng.random()
    if depth <= 0 or roll < 0.6:
        pick = rng.random()
        if pick < 0.45:
            return rng.choice(SPECIAL)
        if pick < 0.65:
            return rng.randint(-(2**65), 2**65)
        return "".join(rng.choice(_ALPHABET) for _ in range(rng.randint(0, 12)))
    if roll < 0.8:
        return [_random_json(rng, depth - 1) for _ in range(rng.randint(0, 3))]
    return {
        rng.choice([*REQUEST_KEYS, "x", ""]): _random_json(rng, depth - 1)
        for _ in range(rng.randint(0, 3))
    }


def seeded_mutation(template: Any, seed: int, paths: list[tuple[str, ...]]) -> bytes:
    rng = random.Random(seed)
    obj = template
    for _ in range(rng.choice((0, 1, 1, 1, 2, 2, 3))):
        obj = _set_path(
            obj, rng.choice(paths), rng.choice(ACTIONS), _random_json(rng, rng.randint(0, 3))
        )
    return _frame(obj, rng.choice(_HOWS), rng.randbytes(rng.randint(0, 8)), rng.randint(0, 10_000))


_JSONISH = b'{}[]",:0123456789.-+eE \\/ntrufalse\x00\xff\xc3\xa9\n'


def seeded_input(templates: list[Any], paths: list[tuple[str, ...]], seed: int) -> bytes:
    """One input from one seed: 1 in 5 raw bytes (arbitrary or JSON-ish), else a template
    with up to three edits, framed (possibly cut or wrapped in junk)."""
    rng = random.Random(seed)
    if rng.random() < 0.2:
        n = rng.choice((0, 1, 2, rng.randint(0, 40), rng.randint(0, 300)))
        if rng.random() < 0.5:
            return rng.randbytes(n)
        return bytes(rng.choice(_JSONISH) for _ in range(n))
    return seeded_mutation(rng.choice(templates), rng.getrandbits(64), paths)


def cheap_inputs(templates: list[Any], paths: list[tuple[str, ...]]) -> st.SearchStrategy[bytes]:
    """One hypothesis draw (a seed) per example: ~0.45 ms an example instead of ~3 ms."""
    return st.integers().map(lambda seed: seeded_input(templates, paths, seed))


# ----------------------------------------------------------------------------- invariants

# The field checks protocol.py replaced its regular expressions with, as an oracle.
CRATE_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
CKSUM_RE = re.compile(r"[0-9a-f]{64}")
VERS_RE = re.compile(r"[0-9]+\.[0-9]+\.[0-9]+(?:-[0-9A-Za-z.-]+)?(?:\+[0-9A-Za-z.-]+)?")


def check_request(req: CredentialRequest) -> None:
    """What parse_request accepts is well-formed and round-trips."""
    assert req.kind in protocol.KINDS
    assert isinstance(req.registry.index_url, str) and req.registry.index_url
    match req:
        case protocol.Get(operation=op):
            assert op.op in protocol.OPERATIONS
            assert op.is_mutation == (op.op in protocol.MUTATIONS)
            match op:
                case protocol.Read():
                    assert req.name is None and req.vers is None and req.cksum is None
                case protocol.Publish(name, vers, cksum):
                    assert CRATE_NAME_RE.fullmatch(name) and VERS_RE.fullmatch(vers)
                    assert CKSUM_RE.fullmatch(cksum)
                case protocol.Yank(name, vers) | protocol.Unyank(name, vers):
                    assert CRATE_NAME_RE.fullmatch(name) and VERS_RE.fullmatch(vers)
                    assert req.cksum is None
                case protocol.Owners(name):
                    assert CRATE_NAME_RE.fullmatch(name) and req.vers is None
        case protocol.Login() | protocol.Logout():
            pass
    again = protocol.parse_request(protocol.encode(req.to_json()))
    assert again.to_json() == req.to_json()


def refused_clearly(fn: Callable[[], Any]) -> Any:
    try:
        return fn()
    except ProtocolError as exc:
        assert str(exc).strip()
        return None


# ----------------------------------------------------------------------------- parsers


def _check_parse_request(data: bytes) -> None:
    req = refused_clearly(lambda: protocol.parse_request(data))
    if req is not None:
        check_request(req)
    # the str path (tests use it) must not fail differently from the bytes path
    text = data.decode("utf-8", "surrogateescape")
    refused_clearly(lambda: protocol.parse_request(text))


def _check_parse_ipc_request(data: bytes) -> None:
    try:
        msg = framing.parse_ipc_request(data)
    except ProtocolError as exc:
        assert str(exc).strip()
        assert UNLOCK_SECRET not in str(exc)  # a refused unlock never echoes its secret
        return
    assert UNLOCK_SECRET not in repr(msg)
    assert msg.type in ("ping", "lock", "show", "credential", "unlock")
    if msg.type == "unlock":
        assert isinstance(msg.registry, str) and 0 < len(msg.registry) <= 4096
        assert isinstance(msg.secret, Secret)
        assert 0 < len(msg.secret.expose()) <= framing.MAX_UNLOCK_SECRET
        assert msg.request is None and msg.provenance == framing.Provenance()
    else:
        assert msg.registry is None and msg.secret is None
    if msg.type not in ("credential", "unlock"):
        # The control messages carry nothing: no request, no provenance to trust.
        assert msg.request is None and msg.provenance == framing.Provenance()
    if msg.type == "credential":
        assert msg.request is not None
        check_request(msg.request)
        prov = msg.provenance
        for value in (prov.pid, prov.ppid):
            assert value is None or (type(value) is int and 0 <= value < 2**31)
        assert prov.cwd is None or isinstance(prov.cwd, str)


def _check_parse_ipc_reply(data: bytes) -> None:
    reply = refused_clearly(lambda: framing.parse_ipc_reply(data))
    if reply is None:
        return
    assert reply["type"] in ("ack", "response", "pong", "locked", "shown", "unlocked")
    if reply["type"] == "unlocked":
        assert type(reply["ok"]) is bool
        assert reply.get("message") is None or isinstance(reply["message"], str)
    if reply["type"] == "response":
        assert protocol.validate_response(reply["response"]) is reply["response"]
        line = protocol.encode(reply["response"])  # what the bridge would print
        assert "\n" not in line and protocol.encode(json.loads(line)) == line
    if reply["type"] == "ack":
        assert 0 < reply["timeout"] <= 86400


# FUZZ_EXAMPLES (10,000) inputs per parser:


@FUZZ
@given(cheap_inputs(REQUESTS, CARGO_PATHS))
def test_fuzz_parse_request(data: bytes) -> None:
    _check_parse_request(data)


@FUZZ
@given(cheap_inputs(IPC_REQUESTS, IPC_REQUEST_PATHS))
def test_fuzz_parse_ipc_request(data: bytes) -> None:
    _check_parse_ipc_request(data)


@FUZZ
@given(cheap_inputs(IPC_REPLIES, IPC_REPLY_PATHS))
def test_fuzz_parse_ipc_reply(data: bytes) -> None:
    _check_parse_ipc_reply(data)


# ... and RICH_EXAMPLES more from shrinkable strategies:

RICH = settings(FUZZ, max_examples=RICH_EXAMPLES)


@RICH
@given(rich_inputs(REQUESTS, CARGO_PATHS))
def test_fuzz_parse_request_structured(data: bytes) -> None:
    _check_parse_request(data)


@RICH
@given(rich_inputs(IPC_REQUESTS, IPC_REQUEST_PATHS))
def test_fuzz_parse_ipc_request_structured(data: bytes) -> None:
    _check_parse_ipc_request(data)


@RICH
@given(rich_inputs(IPC_REPLIES, IPC_REPLY_PATHS))
def test_fuzz_parse_ipc_reply_structured(data: bytes) -> None:
    _check_parse_ipc_reply(data)


# protocol.py speaks JSON through ``_json`` and checks fields without ``re`` (bridge start-up
# time): both must agree with the ``json`` module and the regular expressions exactly.

PARITY = settings(FUZZ, max_examples=400)
_FIELDISH = st.text(alphabet="09az AZ_-.+\n\t\u0661\uff11é", max_size=20)


@PARITY
@given(
    st.one_of(
        _FIELDISH,
        st.sampled_from(
            [
                "1.0.0",
                "1.0.0-alpha.1+build-5",
                "01.2.3",
                "1.2",
                "1.2.3.4",
                "1.2.3-",
                "1.2.3+",
                "1.2.3+a+b",
                "1.2.3-a-b",
                "1.2.3\n",
                "foo\n",
                "a" * 64,
                "a" * 65,
                "ab" * 32,
                "AB" * 32,
                "\u0661.2.3",
            ]
        ),
    )
)
def test_field_checks_match_the_regular_expressions(text: str) -> None:
    assert protocol.valid_crate_name(text) == bool(CRATE_NAME_RE.fullmatch(text))
    assert protocol.valid_cksum(text) == bool(CKSUM_RE.fullmatch(text))
    assert protocol.valid_vers(text) == bool(VERS_RE.fullmatch(text) and len(text) <= 128)
    hexish = text.encode().hex()[:64].ljust(64, "0")
    assert protocol.valid_cksum(hexish) == bool(CKSUM_RE.fullmatch(hexish))


def _same_json(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return (math.isnan(a) and math.isnan(b)) or a == b
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same_json(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return list(a) == list(b) and all(_same_json(a[k], b[k]) for k in a)
    return type(a) is type(b) and a == b


@PARITY
@given(
    st.one_of(
        arbitrary_text.map(lambda b: b.decode("utf-8", "replace")),
        json_value.map(lambda v: json.dumps(v, ensure_ascii=False)),
        st.builds(
            lambda v, pad: pad + json.dumps(v) + pad[::-1],
            json_value,
            st.sampled_from(["", " ", "\t\n", "\r ", "\u00a0", "\ufeff", "x"]),
        ),
    )
)
def test_json_loads_matches_the_json_module(text: str) -> None:
    try:
        want: Any = json.loads(text)
    except ValueError as exc:
        with pytest.raises(ValueError) as info:
            records.json_loads(text)
        assert getattr(info.value, "msg", None) == exc.msg  # type: ignore[attr-defined]
        return
    assert _same_json(records.json_loads(text), want)


@PARITY
@given(json_value, st.booleans())
def test_json_dumps_matches_the_json_module(value: Any, ascii_only: bool) -> None:
    want = json.dumps(value, separators=(",", ":"), ensure_ascii=ascii_only)
    assert records.json_dumps(value, ensure_ascii=ascii_only) == want


def test_json_shim_errors_and_types() -> None:
    with pytest.raises(TypeError, match="not JSON serializable"):
        records.json_dumps({"x": object()}, ensure_ascii=True)
    with pytest.raises(ValueError, match="Circular"):
        loop: list[Any] = []
        loop.append(loop)
        records.json_dumps(loop, ensure_ascii=True)
    assert records.json_dumps("é\n", ensure_ascii=False) == json.dumps("é\n", ensure_ascii=False)
    with pytest.raises(ValueError, match="4300"):
        records.json_loads("1" * 5000)
    with pytest.raises(RecursionError):
        records.json_loads("[" * 100_000)


def test_records_behave_like_the_frozen_dataclasses_they_replaced() -> None:
    import copy
    import pickle

    req = protocol.parse_request(json.dumps({**REQUESTS[5], "token": "k3.secret.HIDDEN"}))
    same = protocol.parse_request(json.dumps({**REQUESTS[5], "token": "k3.secret.HIDDEN"}))
    assert req == same and hash(req) == hash(same) and req is not same
    assert req != protocol.parse_request(json.dumps(REQUESTS[5]))
    assert "HIDDEN" not in repr(req) and repr(req).startswith("Login(registry=")
    with pytest.raises(AttributeError, match="frozen"):
        req.kind = "get"  # type: ignore[misc]
    with pytest.raises(AttributeError, match="frozen"):
        del req.kind
    for clone in (copy.copy(req), copy.deepcopy(req), pickle.loads(pickle.dumps(req))):
        assert clone == req
    prov = framing.Provenance(1, 2, "/x")
    assert prov.replace(cwd="/y") == framing.Provenance(pid=1, ppid=2, cwd="/y")
    with pytest.raises(TypeError, match="no field"):
        prov.replace(uid=0)
    assert framing.IpcRequest("ping").provenance == framing.Provenance()
    assert framing.Provenance() != (None, None, None)
    assert {prov, framing.Provenance(1, 2, "/x")} == {prov}


# ----------------------------------------------------------------------------- limits

PARSERS: list[tuple[str, Callable[[bytes], Any]]] = [
    ("parse_request", protocol.parse_request),
    ("parse_ipc_request", framing.parse_ipc_request),
    ("parse_ipc_reply", framing.parse_ipc_reply),
]


def _at_stack_depth(depth: int, fn: Callable[[], Any]) -> Any:
    """Call ``fn`` ``depth`` Python frames deeper than here (recursion limits are per stack)."""
    if depth <= 0:
        return fn()
    return _at_stack_depth(depth - 1, fn)


def _nested_documents(depth: int) -> Iterator[bytes]:
    arr = "[" * depth + "]" * depth
    obj = '{"a":' * depth + "1" + "}" * depth
    req = json.dumps(REQUESTS[1])[:-1]
    yield arr.encode()
    yield obj.encode()
    yield ("[" * depth).encode()  # unterminated
    for key in ("v", "registry", "operation", "args", "type", "request", "timeout"):
        yield (req + f',"{key}":' + arr + "}").encode()
        yield (
            '{"ipc":1,"type":"credential","request":' + req + "}," + f'"{key}":' + arr + "}"
        ).encode()
        yield (
            '{"ipc":1,"type":"response","response":{"Err":{"kind":"other","message":' + arr + "}}}"
        ).encode()


def test_deep_nesting_at_every_depth_and_stack_position() -> None:
    """Nesting from 1 to 20,000 levels, parsed at several stack depths: a RecursionError at
    any boundary must come out as ProtocolError."""
    limit = sys.getrecursionlimit()
    depths = sorted({*range(1, 20, 3), *range(limit - 60, limit + 20, 2), 2000, 20_000})
    cases = 0
    for stack in (0, limit // 2, limit - 150):
        for depth in depths:
            for doc in _nested_documents(depth):
                for _name, parse in PARSERS:
                    _at_stack_depth(stack, partial(refused_clearly, partial(parse, doc)))
                    cases += 1
    assert cases > 5_000


@pytest.mark.parametrize(("name", "parse"), PARSERS)
def test_huge_lines_at_the_size_limit(name: str, parse: Callable[[bytes], Any]) -> None:
    limit = protocol.MAX_REQUEST_BYTES if name == "parse_request" else framing.MAX_IPC_BYTES
    valid: dict[str, Any] = {
        "parse_request": REQUESTS[1],
        "parse_ipc_request": IPC_REQUESTS[1],
        "parse_ipc_reply": IPC_REPLIES[2],
    }[name]
    base = json.dumps(valid, separators=(",", ":"))[:-1] + ',"pad":"'
    for size in (limit - 1, limit, limit + 1, 2 * limit, 16 * limit):
        doc = (base + "x" * max(0, size - len(base) - 2) + '"}').encode()
        assert len(doc) == size
        result = refused_clearly(partial(parse, doc))
        assert (result is not None) == (size <= limit), (name, size)
    with pytest.raises(ProtocolError, match="too large"):
        parse(b"[" * (limit + 1))
    with pytest.raises(ProtocolError, match="too large"):
        parse(b" " * (64 * limit))


@pytest.mark.parametrize("value", [10**4300 - 1, "9" * 5000])
def test_numbers_beyond_pythons_int_limit(value: Any) -> None:
    digits = str(value) if isinstance(value, int) else value
    for name, parse in PARSERS:  # refused with a clear message, never a crash or a hang
        assert refused_clearly(partial(parse, ('{"v":' + digits + "}").encode())) is None, name
        ack = '{"ipc":1,"type":"ack","timeout":' + digits + "}"
        assert refused_clearly(partial(parse, ack.encode())) is None, name


# ----------------------------------------------------------------------------- the bridge


@contextlib.contextmanager
def bridge_env(runtime: Path, **extra: str) -> Iterator[None]:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GUI_APPROVER_RUNTIME_DIR", str(runtime))
        mp.setenv("GUI_APPROVER_NO_AUTOSTART", "1")
        for k, v in extra.items():
            mp.setenv(k, v)
        yield


def run_bridge_in_process(data: bytes) -> tuple[int, list[str], str]:
    out, err = io.StringIO(), io.StringIO()
    rc = bridge.run(io.BytesIO(data), out, err)
    return rc, out.getvalue().split("\n"), err.getvalue()


def test_fuzz_bridge_run_with_cargo_input(tmp_path: Path) -> None:
    runtime = tmp_path / "run"
    runtime.mkdir(mode=0o700)

    @settings(FUZZ, max_examples=BRIDGE_EXAMPLES)
    @given(cheap_inputs(REQUESTS, CARGO_PATHS))
    def one(data: bytes) -> None:
        rc, lines, _err = run_bridge_in_process(data)
        answer = assert_one_answer(rc, lines)
        err = answer["Err"]  # no app runs: never an Ok
        assert err["kind"] == "other" and err["message"].startswith("gui-approver: ")

    with bridge_env(runtime):
        one()


class FakeApp:
    """A socket that answers each connection with whatever bytes ``reply`` holds, then closes."""

    def __init__(self, directory: Path) -> None:
        directory.mkdir(mode=0o700)
        self.path = directory / paths.SOCKET_NAME
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(str(self.path))
        self.sock.listen(8)
        self.reply = b""
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                conn.settimeout(5)
                buf = b""
                with contextlib.suppress(OSError):
                    while b"\n" not in buf:
                        chunk = conn.recv(65536)
                        if not chunk:
                            break
                        buf += chunk
                    conn.sendall(self.reply)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()


replies = st.one_of(
    cheap_inputs(IPC_REPLIES, IPC_REPLY_PATHS),
    st.builds(
        lambda a, b: a + b,
        st.just(_frame(IPC_REPLIES[0], "plain", b"", 0)),
        cheap_inputs(IPC_REPLIES, IPC_REPLY_PATHS),
    ),  # an ack first, then anything
)


def test_fuzz_bridge_run_with_app_replies(tmp_path: Path) -> None:
    app = FakeApp(tmp_path / "run")
    read = (json.dumps(REQUESTS[0]) + "\n").encode()

    @settings(FUZZ, max_examples=REPLY_EXAMPLES)
    @given(replies)
    def one(reply: bytes) -> None:
        app.reply = reply
        t0 = time.monotonic()
        rc, lines, _err = run_bridge_in_process(read)
        assert time.monotonic() - t0 < 5
        answer = assert_one_answer(rc, lines)
        expected = None
        for raw in reply.split(b"\n")[:-1]:  # the complete lines, as the bridge reads them
            msg = refused_clearly(partial(framing.parse_ipc_reply, raw + b"\n"))
            if msg is None or msg["type"] not in ("ack", "response"):
                break
            if msg["type"] == "response":
                expected = msg["response"]
                break
        if expected is not None:
            assert protocol.encode(answer) == protocol.encode(expected)  # NaN != NaN
        else:
            assert answer["Err"]["kind"] == "other"

    try:
        with bridge_env(tmp_path / "run"):
            one()
    finally:
        app.close()

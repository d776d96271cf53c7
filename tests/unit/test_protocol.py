"""Golden JSON for every protocol message in cargo-facts.md, and the parser's refusals."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from checks import as_get, as_login

from gui_approver.client import framing, paths, protocol
from gui_approver.client.protocol import ProtocolError, parse_request

GOLDEN = Path(__file__).parents[1] / "golden"
REQUESTS = (GOLDEN / "requests.jsonl").read_text().splitlines()
RESPONSES = (GOLDEN / "responses.jsonl").read_text().splitlines()


def test_hello_is_exactly_cargos():
    assert protocol.HELLO == '{"v":[1]}'


@pytest.mark.parametrize("line", REQUESTS)
def test_every_cargo_request_round_trips_byte_for_byte(line):
    req = parse_request(line)
    # to_json reproduces cargo's own key order and omissions (login token aside).
    assert protocol.encode(req.to_json()) == line


def test_request_fields():
    req = as_get(parse_request(REQUESTS[1]))
    assert req == protocol.Get(req.registry, protocol.Publish("foo", "0.6.0", req.cksum or ""))
    assert (req.kind, req.operation.op, req.name, req.vers) == ("get", "publish", "foo", "0.6.0")
    assert req.cksum and len(req.cksum) == 64
    assert req.registry.name == "local"
    assert req.is_mutation
    assert req.describe() == "publish of foo 0.6.0"
    read = parse_request(REQUESTS[0])
    assert read.args == ("--x",) and not read.is_mutation
    assert parse_request(REQUESTS[8]).registry.name is None
    assert parse_request(REQUESTS[9]).registry.headers[0].startswith("WWW-Authenticate")


def test_login_token_is_secret_and_never_printed():
    line = (
        '{"v":1,"registry":{"index-url":"sparse+http://h/index/"},"kind":"login",'
        '"token":"k3.secret.SHOULDNOTAPPEAR"}'
    )
    req = as_login(parse_request(line))
    assert req.token is not None and req.token.expose() == "k3.secret.SHOULDNOTAPPEAR"
    assert "SHOULDNOTAPPEAR" not in repr(req)
    assert "SHOULDNOTAPPEAR" not in str(req.token)
    assert "SHOULDNOTAPPEAR" not in json.dumps(req.to_json())


def test_unknown_fields_are_ignored():
    obj = json.loads(REQUESTS[2])
    obj["future-field"] = {"x": [1, 2]}
    obj["registry"]["also-new"] = True
    req = as_get(parse_request(json.dumps(obj)))
    assert req.operation == protocol.Yank("foo", "0.6.0")


@pytest.mark.parametrize("line", RESPONSES)
def test_every_response_shape_is_valid_and_compact(line):
    obj = json.loads(line)
    assert protocol.validate_response(obj) == obj
    assert protocol.encode(obj) == line


def test_response_builders_match_golden():
    assert protocol.encode(protocol.ok_get("v3.public.TOKEN", "never")) == RESPONSES[0]
    assert protocol.encode(protocol.ok_get("v3.public.TOKEN", "session")) == RESPONSES[1]
    assert (
        protocol.encode(protocol.ok_get("v3.public.TOKEN", "expires", expiration=1795000000))
        == RESPONSES[2]
    )
    assert protocol.encode(protocol.ok_login()) == RESPONSES[3]
    assert protocol.encode(protocol.ok_logout()) == RESPONSES[4]
    assert protocol.encode(protocol.err_not_found()) == RESPONSES[5]
    assert protocol.encode(protocol.err_url_not_supported()) == RESPONSES[6]
    assert protocol.encode(protocol.err_operation_not_supported()) == RESPONSES[7]
    assert (
        protocol.encode(
            protocol.err_other("publish of foo 1.2.3 was denied in gui-approver", ["a", "b"])
        )
        == RESPONSES[8]
    )


@pytest.mark.parametrize(
    ("line", "needle"),
    [
        ('{"v":2,"registry":{"index-url":"x"},"kind":"get","operation":"read"}', "version 2"),
        ('{"v":"1","registry":{"index-url":"x"},"kind":"get","operation":"read"}', "version"),
        ('{"v":true,"registry":{"index-url":"x"},"kind":"get","operation":"read"}', "version"),
        ('{"registry":{"index-url":"x"},"kind":"get","operation":"read"}', "protocol version"),
        ('{"v":1,"kind":"get","operation":"read"}', "registry"),
        ('{"v":1,"registry":{"index-url":"x"},"kind":"steal"}', "unsupported request kind"),
        (
            '{"v":1,"registry":{"index-url":"x"},"kind":"get","operation":"delete"}',
            "unsupported operation",
        ),
        (
            '{"v":1,"registry":{"index-url":"x"},"kind":"get","operation":"publish","name":"foo",'
            '"vers":"1.0.0"}',
            "cksum",
        ),
        (
            '{"v":1,"registry":{"index-url":"x"},"kind":"get","operation":"publish","name":"foo",'
            '"vers":"1.0.0","cksum":"ABC"}',
            "cksum",
        ),
        (
            '{"v":1,"registry":{"index-url":"x"},"kind":"get","operation":"yank","name":"../x",'
            '"vers":"1.0.0"}',
            "crate name",
        ),
        (
            '{"v":1,"registry":{"index-url":"x"},"kind":"get","operation":"yank","name":"foo",'
            '"vers":"one"}',
            "version",
        ),
        (
            '{"v":1,"registry":{"index-url":"x"},"kind":"get","operation":"yank","vers":"1.0.0"}',
            "name",
        ),
        ('{"v":1,"registry":{"index-url":5},"kind":"get","operation":"read"}', "string"),
        ("[1,2]", "JSON object"),
        ("not json", "not valid JSON"),
        ("", "empty"),
        ("[" * 50000, "nested too deeply"),
    ],
)
def test_malformed_requests_get_clear_errors(line, needle):
    with pytest.raises(ProtocolError) as info:
        parse_request(line)
    assert needle.lower() in str(info.value).lower()


def test_oversized_request_is_refused():
    with pytest.raises(ProtocolError, match="too large"):
        parse_request(b'{"v":1,"x":"' + b"a" * protocol.MAX_REQUEST_BYTES + b'"}')


def test_invalid_utf8_is_refused():
    with pytest.raises(ProtocolError, match="UTF-8"):
        parse_request(b'{"v":1,"x":"\xff"}')


# -- IPC framing (pure, no socket) --------------------------------------------------------


def _ipc(obj) -> bytes:
    return json.dumps(obj).encode() + b"\n"


def test_ipc_credential_message_round_trip():
    raw = json.loads(REQUESTS[1])
    msg = framing.credential_ipc_message(raw, framing.Provenance(10, 9, "/src/foo"))
    assert msg.endswith(b"\n") and msg.count(b"\n") == 1
    parsed = framing.parse_ipc_request(msg)
    assert parsed.type == "credential"
    assert parsed.request is not None and as_get(parsed.request).cksum == raw["cksum"]
    assert parsed.provenance == framing.Provenance(10, 9, "/src/foo")


@pytest.mark.parametrize(
    "payload",
    [
        {"type": "credential", "request": json.loads(REQUESTS[0])},  # no version
        {"ipc": 2, "type": "credential", "request": json.loads(REQUESTS[0])},
        {"ipc": True, "type": "ping"},
        {"ipc": 1, "type": "approve"},
        {"ipc": 1, "type": "credential"},
        {"ipc": 1, "type": "credential", "request": {"v": 1}},
    ],
)
def test_ipc_malformed_messages_are_refused(payload):
    with pytest.raises(ProtocolError):
        framing.parse_ipc_request(_ipc(payload))


def test_ipc_provenance_garbage_is_dropped_not_trusted():
    msg = _ipc(
        {
            "ipc": 1,
            "type": "credential",
            "request": json.loads(REQUESTS[0]),
            "provenance": {"pid": "1", "ppid": -5, "cwd": 7},
        }
    )
    assert framing.parse_ipc_request(msg).provenance == framing.Provenance(None, None, None)


def test_ipc_oversized_is_refused():
    with pytest.raises(ProtocolError, match="too large"):
        framing.parse_ipc_request(b"{" + b" " * framing.MAX_IPC_BYTES + b"}\n")


def test_ipc_replies():
    ok = framing.parse_ipc_reply(
        _ipc({"ipc": 1, "type": "response", "response": json.loads(RESPONSES[0])})
    )
    assert ok["response"]["Ok"]["token"] == "v3.public.TOKEN"
    assert framing.parse_ipc_reply(_ipc({"ipc": 1, "type": "ack", "timeout": 125}))["timeout"]
    for bad in (
        {
            "ipc": 1,
            "type": "response",
            "response": {"Ok": {"kind": "get", "token": "t", "cache": "never"}},
        },
        {"ipc": 1, "type": "response", "response": {"Maybe": {"kind": "get"}}},
        {"ipc": 1, "type": "ack", "timeout": -1},
        {"ipc": 1, "type": "ack", "timeout": True},
        {"ipc": 1, "type": "surprise"},
    ):
        with pytest.raises(ProtocolError):
            framing.parse_ipc_reply(_ipc(bad))


def test_private_dir_check(tmp_path):
    d = tmp_path / "sock"
    d.mkdir(mode=0o700)
    assert paths.check_private_dir(str(d)) is None
    d.chmod(0o770)
    assert "accessible by other users" in (paths.check_private_dir(str(d)) or "")
    assert "does not exist" in (paths.check_private_dir(str(tmp_path / "nope")) or "")

"""The service's release rules for a bearer-token registry (issue 11) and approved
login/logout over the socket (issue 12, item 2)."""

from __future__ import annotations

import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from checks import present
from fakes import MemoryKeychain
from leakscan import scan

from gui_approver.client import framing, paths
from gui_approver.client.framing import Provenance
from gui_approver.client.protocol import parse_request
from gui_approver.core import ipc
from gui_approver.core.approval import Decision, DenyAll
from gui_approver.core.audit import AuditLog
from gui_approver.core.keys.bearer import READ_PLACEHOLDER, bearer_store
from gui_approver.core.keys.store import KeyringKeychain, KeyStore, SigningKey
from gui_approver.core.service import SigningService, ipc_handler
from gui_approver.secret import Secret

TOKEN = "cioSecretBearerToken0123456789abcdef"
CKSUM = "cd" * 32


class Recorder:
    def __init__(self, decision):
        self.seen = []
        self.decision = decision

    def decide(self, request):
        self.seen.append(request)
        return self.decision


class ConfigServer:
    """A sparse index root serving config.json (optionally auth-required, or 401)."""

    def __init__(self, body: dict[str, Any] | None, status: int = 200):
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                outer.hits += 1
                data = json.dumps(body or {}).encode()
                self.send_response(status)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *a):
                pass

        self.hits = 0
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        self.index_url = f"sparse+http://127.0.0.1:{self.httpd.server_address[1]}/index/"

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def open_index():
    s = ConfigServer({"dl": "http://x/dl", "api": "http://x"})
    yield s
    s.close()


def req(url, op="publish", name="reg", headers=None):
    reg = {"index-url": url, "name": name}
    if headers:
        reg["headers"] = headers
    obj = {"v": 1, "registry": reg, "kind": "get", "operation": op}
    if op != "read":
        obj["name"] = "foo"
    if op in ("publish", "yank", "unyank"):
        obj["vers"] = "1.0.0"
    if op == "publish":
        obj["cksum"] = CKSUM
    return parse_request(json.dumps(obj))


def token_service(tmp_path, url, approver, **kw):
    store = KeyStore(MemoryKeychain(), tmp_path / "keys.json")
    bearer_store(store).add(
        Secret(TOKEN),
        registry="reg",
        index_url=url,
        scopes="publish-update",
        expires="2099-01-01",
        origin="cli",
    )
    audit = AuditLog(tmp_path / "audit.jsonl")
    return SigningService(store, approver, audit=audit, inspector=None, **kw), audit


def test_every_mutation_asks_releases_the_token_and_is_never_cached(tmp_path, open_index):
    approver = Recorder(Decision.approve())
    svc, audit = token_service(tmp_path, open_index.index_url, approver)
    for op in ("publish", "yank", "unyank", "owners"):
        ok = svc.handle(req(open_index.index_url, op), Provenance()).response["Ok"]
        assert ok == {
            "kind": "get",
            "token": TOKEN,
            "cache": "never",
            "operation_independent": False,
        }
    assert [a.request.operation.op for a in approver.seen] == [
        "publish",
        "yank",
        "unyank",
        "owners",
    ]
    shown = approver.seen[0]
    assert shown.bearer is not None and shown.bearer.scopes == "publish-update"
    assert shown.bearer.expires == "2099-01-01"
    records = [json.loads(line) for line in audit.path.read_text().splitlines()]
    assert [r["decision"] for r in records] == ["signed"] * 4
    assert all(r["key_id"].startswith("bearer:sha256:") for r in records)
    assert scan(TOKEN, paths=[tmp_path]) == []  # audit, index files: no token


def test_denied_publish_releases_nothing(tmp_path, open_index):
    svc, _ = token_service(tmp_path, open_index.index_url, Recorder(Decision.deny("no")))
    out = svc.handle(req(open_index.index_url), Provenance()).response
    assert "was denied in gui-approver" in out["Err"]["message"]
    assert TOKEN not in json.dumps(out)
    assert scan(TOKEN, paths=[tmp_path]) == []


def test_read_of_an_open_registry_gets_the_placeholder_without_asking(tmp_path, open_index):
    approver = Recorder(Decision.approve())
    svc, _ = token_service(tmp_path, open_index.index_url, approver)
    ok = svc.handle(req(open_index.index_url, "read"), Provenance()).response["Ok"]
    assert ok["token"] == READ_PLACEHOLDER != TOKEN and approver.seen == []
    svc.handle(req(open_index.index_url, "read"), Provenance())
    assert open_index.hits == 1  # config.json is asked once, then remembered


@pytest.mark.parametrize("shape", ["auth-required", "401", "headers"])
def test_read_of_an_auth_required_registry_asks_and_says_it_can_publish(tmp_path, shape):
    server = ConfigServer(
        {"auth-required": True} if shape == "auth-required" else {},
        status=401 if shape == "401" else 200,
    )
    try:
        url = server.index_url
        headers = ["WWW-Authenticate: Cargo"] if shape == "headers" else None
        denier = Recorder(Decision.deny("no"))
        svc, _ = token_service(tmp_path, url, denier)
        out = svc.handle(req(url, "read", headers=headers), Provenance()).response
        assert "Err" in out and TOKEN not in json.dumps(out)
        assert len(denier.seen) == 1 and denier.seen[0].bearer is not None
        svc.approver = Recorder(Decision.approve())
        ok = svc.handle(req(url, "read", headers=headers), Provenance()).response["Ok"]
        assert ok["token"] == TOKEN and ok["operation_independent"] is False
        # The per-registry setting: reads without a dialog.
        tokens = bearer_store(svc.store)
        tokens.set_silent_reads(present(tokens.find(url)), True)
        silent = Recorder(Decision.deny("must not be asked"))
        svc.approver = silent
        ok = svc.handle(req(url, "read", headers=headers), Provenance()).response["Ok"]
        assert ok["token"] == TOKEN and silent.seen == []
        # ... but never for a mutation.
        assert "Err" in svc.handle(req(url, "publish"), Provenance()).response
        assert len(silent.seen) == 1
    finally:
        server.close()


def test_unreachable_index_fails_closed_with_the_placeholder(tmp_path):
    url = "sparse+http://127.0.0.1:9/index/"  # nothing listens on port 9
    svc, _ = token_service(tmp_path, url, Recorder(Decision.approve()))
    ok = svc.handle(req(url, "read"), Provenance()).response["Ok"]
    assert ok["token"] == READ_PLACEHOLDER


def test_auto_approve_loopback_rule_is_the_same_for_tokens(tmp_path, open_index):
    svc, _ = token_service(
        tmp_path, open_index.index_url, Recorder(Decision.deny("x")), auto_approve_loopback=True
    )
    ok = svc.handle(req(open_index.index_url), Provenance()).response["Ok"]
    assert ok["token"] == TOKEN and ok["cache"] == "never"


# -- login / logout over the socket (issue 12, item 2) -----------------------------------------


def raw_socket_request(sock_dir: Path, request: dict[str, Any]) -> dict[str, Any]:
    """What a same-user worm does: connect to the app's socket and send a request."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(20)
        s.connect(str(sock_dir / paths.SOCKET_NAME))
        s.sendall(framing.credential_ipc_message(request, Provenance()))
        buf = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                raise AssertionError(f"the app hung up: {buf!r}")
            buf += chunk
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                reply = framing.parse_ipc_reply(line)
                if reply["type"] == "response":
                    return reply


@pytest.fixture
def socket_app(secret_service, tmp_path):
    runtime = tmp_path / "run"
    runtime.mkdir(mode=0o700)
    store = KeyStore(KeyringKeychain(), tmp_path / "cfg" / "keys.json")
    svc = SigningService(
        store,
        DenyAll("no dialog is available"),
        audit=AuditLog(tmp_path / "audit.jsonl"),
        inspector=None,
    )
    server = ipc.UnixSocketServer(ipc_handler(svc), str(runtime / "gui-approver"))
    server.start()
    yield svc, runtime / "gui-approver"
    server.stop()


LOCAL = "sparse+http://127.0.0.1:8765/index/"


@pytest.mark.parametrize("given", ["key", "token", "generate"])
def test_a_raw_socket_login_stores_only_after_an_approval(socket_app, given):
    svc, sock = socket_app
    planted = SigningKey.generate()
    login = {"v": 1, "registry": {"index-url": LOCAL, "name": "local"}, "kind": "login"}
    if given == "key":
        login["token"] = planted.secret_paserk().expose()
    elif given == "token":
        login["token"] = TOKEN
    tokens = bearer_store(svc.store)

    def stored():
        return svc.store.list() + tokens.list()

    # No dialog can be shown (headless): nothing stored.
    out = raw_socket_request(sock, login)
    assert "denied" in out["response"]["Err"]["message"] and stored() == []
    # The user denies it: nothing stored.
    svc.approver = Recorder(Decision.deny("denied in the dialog"))
    out = raw_socket_request(sock, login)
    assert "nothing was stored" in out["response"]["Err"]["message"] and stored() == []
    asked = svc.approver.seen[0]
    assert asked.action == "login" and "local" in asked.detail
    assert {
        "key": "import the asymmetric key",
        "token": "store the bearer token",
        "generate": "generate a new asymmetric key",
    }[given] in asked.detail
    # The user approves: stored, with its origin.
    svc.approver = Recorder(Decision.approve())
    out = raw_socket_request(sock, login)
    assert out["response"] == {"Ok": {"kind": "login"}}
    (rec,) = stored()
    assert rec.origin == "dialog"
    if given == "key":
        assert rec.kip == planted.kip
    if given == "token":
        assert tokens.token(rec) == Secret(TOKEN)
        assert TOKEN not in (out.get("notice") or "")
        assert "token add" in out["notice"]  # says how to skip the socket next time
    # logout: asked, and denial keeps it
    logout = {"v": 1, "registry": {"index-url": LOCAL, "name": "local"}, "kind": "logout"}
    svc.approver = Recorder(Decision.deny("no"))
    assert "Err" in raw_socket_request(sock, logout)["response"] and len(stored()) == 1
    assert svc.approver.seen[0].action == "logout"
    svc.approver = Recorder(Decision.approve())
    assert raw_socket_request(sock, logout)["response"] == {"Ok": {"kind": "logout"}}
    assert stored() == []


def test_a_key_of_unknown_origin_is_never_offered_as_already_there(socket_app):
    svc, sock = socket_app
    planted = svc.store.create(registry="local", index_url=LOCAL)  # origin "unknown"
    svc.approver = Recorder(Decision.approve())
    login = {"v": 1, "registry": {"index-url": LOCAL, "name": "local"}, "kind": "login"}
    out = raw_socket_request(sock, login)
    message = out["response"]["Err"]["message"]
    assert "not created through a gui-approver dialog or its CLI" in message
    assert planted.public not in json.dumps(out)
    trusted = SigningKey.generate()
    svc.store.delete(planted)
    svc.store.add(trusted, registry="local", index_url=LOCAL, subject=None, origin="cli")
    out = raw_socket_request(sock, login)
    assert out["response"] == {"Ok": {"kind": "login"}}
    assert "already has a key" in out["notice"] and trusted.public_paserk in out["notice"]


def test_cargo_login_for_crates_io_refuses_a_key(socket_app):
    svc, sock = socket_app
    svc.approver = Recorder(Decision.approve())
    login = {
        "v": 1,
        "registry": {
            "index-url": "https://github.com/rust-lang/crates.io-index",
            "name": "crates-io",
        },
        "kind": "login",
    }
    out = raw_socket_request(sock, login)
    assert "crates.io does not accept asymmetric tokens" in out["response"]["Err"]["message"]
    assert svc.store.list() == [] and svc.approver.seen == []
    login["token"] = TOKEN
    out = raw_socket_request(sock, login)
    assert out["response"] == {"Ok": {"kind": "login"}}
    assert present(bearer_store(svc.store).find_by_registry("crates-io")).origin == "dialog"

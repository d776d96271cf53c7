"""The signing service with injected approvers (storage: the in-memory keychain stub;
the real keychain is exercised in test_keys.py and the end-to-end tests)."""

from __future__ import annotations

import json
import threading

import pyseto
import pytest
from checks import as_get, json_of, present
from factories import request
from fakes import MemoryKeychain

from gui_approver.client import protocol
from gui_approver.client.framing import Provenance
from gui_approver.client.protocol import parse_request
from gui_approver.core.approval import ApprovalRequest, Decision, is_loopback_index
from gui_approver.core.keys.store import KeyStore, SigningKey
from gui_approver.core.service import SigningService
from gui_approver.core.settings import Settings

LOCAL = "sparse+http://127.0.0.1:8765/index/"
REMOTE = "sparse+https://registry.example.com/index/"
CKSUM = "ab" * 32


def req(op="publish", url=LOCAL, **extra):
    return request(op, index_url=url, cksum=CKSUM, **extra)


class Recorder:
    def __init__(self, decision=None, exc=None):
        self.seen: list[ApprovalRequest] = []
        self.decision = decision
        self.exc = exc

    def decide(self, request):
        self.seen.append(request)
        if self.exc:
            raise self.exc
        return self.decision


@pytest.fixture
def store(tmp_path):
    s = KeyStore(MemoryKeychain(), tmp_path / "keys.json")
    s.create(registry="local", index_url=LOCAL, subject=None)
    s.create(registry="remote", index_url=REMOTE, subject="me@example")
    return s


def verify(store, token, url=LOCAL):
    rec = store.find(url)
    pub = pyseto.Key.from_paserk(rec.public)
    decoded = pyseto.decode(pub, token)
    return json_of(decoded.payload), json_of(decoded.footer)


def test_read_is_signed_without_asking_and_cached_for_the_session(store):
    approver = Recorder(Decision.deny("should not be asked"))
    svc = SigningService(store, approver)
    out = svc.handle(req("read"), Provenance())
    ok = out.response["Ok"]
    assert ok["cache"] == "session" and ok["operation_independent"] is False
    claims, footer = verify(store, ok["token"])
    assert set(claims) == {"iat"}
    assert footer == {"url": LOCAL, "kip": store.find(LOCAL).kip}
    assert approver.seen == []


def test_reads_can_require_approval(store):
    approver = Recorder(Decision.deny("no"))
    svc = SigningService(store, approver, Settings(reads_need_approval=True))
    out = svc.handle(req("read"), Provenance())
    assert out.response["Err"]["kind"] == "other" and len(approver.seen) == 1


@pytest.mark.parametrize("op", ["publish", "yank", "unyank", "owners"])
def test_mutations_are_signed_only_after_approval(store, op):
    approver = Recorder(Decision.approve())
    svc = SigningService(store, approver)
    out = svc.handle(req(op), Provenance(pid=1, ppid=2, cwd="/x"))
    ok = out.response["Ok"]
    assert ok["cache"] == "never" and ok["operation_independent"] is False
    claims, _ = verify(store, ok["token"])
    assert claims["mutation"] == op and claims["name"] == "foo"
    assert ("vers" in claims) == (op != "owners")
    assert ("cksum" in claims) == (op == "publish")
    assert next(iter(claims)) == "iat"
    (seen,) = approver.seen
    assert seen.provenance.cwd == "/x" and as_get(seen.request).operation.op == op


@pytest.mark.parametrize(
    "approver",
    [
        Recorder(Decision.deny("denied in the dialog")),
        Recorder(exc=RuntimeError("boom")),
        Recorder(decision=None),
        Recorder(decision="yes"),
        Recorder(Decision(1, "truthy but not True")),  # type: ignore[arg-type]
        Recorder(Decision("yes", "a string")),  # type: ignore[arg-type]
    ],
    ids=["deny", "exception", "none", "garbage", "one", "string"],
)
def test_anything_but_approval_denies(store, approver):
    svc = SigningService(store, approver)
    out = svc.handle(req("publish"), Provenance())
    err = out.response["Err"]
    assert err["kind"] == "other"
    assert err["message"].startswith("publish of foo 1.2.3 was denied in gui-approver")
    assert "token" not in json.dumps(out.response)


def test_subject_is_in_the_claims(store):
    svc = SigningService(store, Recorder(Decision.approve()))
    out = svc.handle(req("yank", url=REMOTE), Provenance())
    claims, _ = verify(store, out.response["Ok"]["token"], REMOTE)
    assert list(claims) == ["iat", "sub", "mutation", "name", "vers"]
    assert claims["sub"] == "me@example"


def test_unknown_registry_is_not_found(store):
    svc = SigningService(store, Recorder(Decision.approve()))
    out = svc.handle(req("publish", url="sparse+http://127.0.0.1:9/other/"), Provenance())
    assert out.response == {"Err": {"kind": "not-found"}}


def test_auto_approve_loopback_only_for_loopback(store):
    approver = Recorder(Decision.deny("asked"))
    svc = SigningService(store, approver, auto_approve_loopback=True)
    assert "Ok" in svc.handle(req("publish"), Provenance()).response
    assert approver.seen == []
    assert "Err" in svc.handle(req("publish", url=REMOTE), Provenance()).response
    assert len(approver.seen) == 1


@pytest.mark.parametrize(
    ("url", "loop"),
    [
        ("sparse+http://127.0.0.1:1/index/", True),
        ("sparse+http://127.8.9.10/index/", True),
        ("sparse+http://[::1]:80/index/", True),
        ("sparse+http://localhost:8/index/", True),
        ("https://github.com/rust-lang/crates.io-index", False),
        ("sparse+http://localhost.evil.com/index/", False),
        ("sparse+http://127.0.0.1.nip.io/index/", False),
        ("sparse+http://10.0.0.1/index/", False),
        ("sparse+http://user@127.0.0.1@evil.com/", False),
        ("garbage", False),
    ],
)
def test_loopback_detection(url, loop):
    assert is_loopback_index(url) is loop


def test_pending_cap_denies_the_surplus(store):
    release = threading.Event()
    entered = threading.Semaphore(0)

    class Slow:
        def decide(self, request):
            entered.release()
            release.wait(10)
            return Decision.approve()

    svc = SigningService(store, Slow(), Settings(max_pending=2))
    results = []
    threads = [
        threading.Thread(
            target=lambda: results.append(svc.handle(req("publish"), Provenance()).response)
        )
        for _ in range(2)
    ]
    for t in threads:
        t.start()
    for _ in range(2):
        assert entered.acquire(timeout=5)
    surplus = svc.handle(req("publish"), Provenance()).response
    assert "too many requests" in surplus["Err"]["message"]
    release.set()
    for t in threads:
        t.join(5)
    assert all("Ok" in r for r in results)


def test_login_generates_key_and_prints_public(tmp_path):
    store = KeyStore(MemoryKeychain(), tmp_path / "k.json")
    approver = Recorder(Decision.approve())  # every login is approved in a dialog (issue 12)
    svc = SigningService(store, approver)
    login = parse_request(
        json.dumps(
            {
                "v": 1,
                "registry": {"index-url": LOCAL, "name": "new"},
                "kind": "login",
                "args": ["--key-subject", "sub1"],
            }
        )
    )
    out = svc.handle(login, Provenance())
    assert out.response == protocol.ok_login()
    assert [a.action for a in approver.seen] == ["login"]
    rec = store.find(LOCAL)
    assert rec is not None and rec.subject == "sub1" and rec.public in (out.notice or "")
    assert "k3.secret" not in (out.notice or "")
    # second login keeps the key
    out2 = svc.handle(login, Provenance())
    assert out2.response == protocol.ok_login() and present(store.find(LOCAL)).kip == rec.kip


def test_login_imports_a_given_secret(tmp_path):
    store = KeyStore(MemoryKeychain(), tmp_path / "k.json")
    svc = SigningService(store, Recorder(Decision.approve()))
    key = SigningKey.generate()
    login = parse_request(
        json.dumps(
            {
                "v": 1,
                "registry": {"index-url": LOCAL},
                "kind": "login",
                "token": key.secret_paserk().expose(),
            }
        )
    )
    out = svc.handle(login, Provenance())
    assert out.response == protocol.ok_login()
    assert present(store.find(LOCAL)).kip == key.kip
    bad = parse_request(
        json.dumps(
            {
                "v": 1,
                "registry": {"index-url": REMOTE},
                "kind": "login",
                "token": "k3.secret.not-a-key-at-all",
            }
        )
    )
    out = svc.handle(bad, Provenance())
    assert "not a usable key" in out.response["Err"]["message"]
    assert "not-a-key-at-all" not in json.dumps(out.response)
    assert store.find(REMOTE) is None
    # Anything else is a bearer token (issue 11): stored as one, after the approval.
    plain = parse_request(
        json.dumps(
            {"v": 1, "registry": {"index-url": REMOTE}, "kind": "login", "token": "plain-old-token"}
        )
    )
    out = svc.handle(plain, Provenance())
    assert out.response == protocol.ok_login()
    assert "plain-old-token" not in json.dumps(out.response) + (out.notice or "")
    assert store.find(REMOTE) is None
    from gui_approver.core.keys.bearer import bearer_store

    assert present(bearer_store(store).find(REMOTE)).origin == "dialog"


def test_logout_needs_confirmation(store):
    svc = SigningService(store, Recorder(Decision.deny("no")))
    logout = parse_request(f'{{"v":1,"registry":{{"index-url":"{LOCAL}"}},"kind":"logout"}}')
    assert "Err" in svc.handle(logout, Provenance()).response
    assert store.find(LOCAL) is not None
    svc.approver = Recorder(Decision.approve())
    assert svc.handle(logout, Provenance()).response == protocol.ok_logout()
    assert store.find(LOCAL) is None
    assert svc.handle(logout, Provenance()).response == protocol.err_not_found()


def test_keychain_failure_is_a_clear_error_and_nothing_signed(store):
    class Broken(MemoryKeychain):
        def get(self, account):
            from gui_approver.errors import KeychainLocked

            raise KeychainLocked("the keychain is locked; cannot read a key")

    locked = KeyStore(Broken(), store.index_path)
    svc = SigningService(locked, Recorder(Decision.approve()))
    out = svc.handle(req("publish"), Provenance())
    assert "locked" in out.response["Err"]["message"]

"""The audit log: one fsync-ed JSON line per decision, written before a token is released,
readable after a crash, and never holding a secret."""

from __future__ import annotations

import hashlib
import json
import os
import threading
from pathlib import Path

import pytest
import tinyfs
from factories import request
from fakes import MemoryKeychain
from leakscan import scan

from gui_approver.client.framing import Provenance
from gui_approver.client.protocol import parse_request
from gui_approver.core import audit
from gui_approver.core.approval import Decision
from gui_approver.core.audit import AuditError, AuditLog, read_recent
from gui_approver.core.keys.store import KeyStore, SigningKey
from gui_approver.core.service import SignEvent, SigningService

LOCAL = "sparse+http://127.0.0.1:8765/index/"
CKSUM = "ef" * 32


def req(op="publish", name="foo", vers="1.2.3", url=LOCAL):
    return request(op, name=name, vers=vers, index_url=url, cksum=CKSUM)


class Fixed:
    def __init__(self, approved: bool):
        self.approved = approved

    def decide(self, request):
        return (
            Decision.approve("approved in the test")
            if self.approved
            else Decision.deny("denied in the test")
        )


@pytest.fixture
def store(tmp_path):
    s = KeyStore(MemoryKeychain(), tmp_path / "keys.json")
    s.add(SigningKey.generate(), registry="local", index_url=LOCAL, subject=None)
    return s


def lines(path: Path) -> list[bytes]:
    return path.read_bytes().splitlines()


# ------------------------------------------------------------------------------ the file


def test_default_path_is_in_the_user_state_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    assert audit.default_path() == tmp_path / "state" / "gui-approver" / "audit.jsonl"


def test_records_are_one_json_line_each_with_every_field(tmp_path):
    log = AuditLog(tmp_path / "a" / "audit.jsonl")
    log.record(
        event="get",
        operation="read",
        decision="signed",
        reason="read",
        requester={"pid": 1, "ppid": 2, "cwd": "/x"},
        key_id="k3.pid.abc",
    )
    log.record(event="get", operation="publish", crate="foo", decision="denied", reason="no")
    raw = lines(log.path)
    assert len(raw) == 2
    first = json.loads(raw[0])
    assert list(first) == list(audit.FIELDS)
    assert first["time"].endswith("Z") and first["requester"]["cwd"] == "/x"
    assert [r["decision"] for r in read_recent(10, log.path)] == ["signed", "denied"]
    assert log.read_recent(1)[0]["crate"] == "foo"
    assert (os.stat(log.path).st_mode & 0o777) == 0o600
    assert (os.stat(log.path.parent).st_mode & 0o777) == 0o700
    with pytest.raises(ValueError, match="unknown audit fields"):
        audit.make_record(decision="x", token="v3.public.secret")


def test_read_recent_returns_the_last_n_oldest_first(tmp_path):
    log = AuditLog(tmp_path / "audit.jsonl")
    for i in range(300):
        log.record(decision="signed", reason=f"r{i}" + "x" * 300)  # > one 64 KiB block
    got = read_recent(5, log.path)
    assert [r["reason"][:4] for r in got] == ["r295", "r296", "r297", "r298", "r299"]
    assert len(read_recent(1000, log.path)) == 300
    assert read_recent(0, log.path) == []
    assert read_recent(5, tmp_path / "missing.jsonl") == []


def test_torn_last_line_is_skipped_and_the_next_record_starts_a_new_line(tmp_path):
    path = tmp_path / "audit.jsonl"
    log = AuditLog(path)
    for i in range(3):
        log.record(decision="signed", reason=str(i))
    log.close()
    with open(path, "ab") as fh:
        fh.write(b'{"time":"2026-01-01T00:00:00Z","event":"get","decis')  # torn by a crash
    assert [r["reason"] for r in read_recent(10, path)] == ["0", "1", "2"]
    again = AuditLog(path)
    again.record(decision="denied", reason="after the crash")
    assert [r["reason"] for r in read_recent(10, path)] == ["0", "1", "2", "after the crash"]
    raw = lines(path)
    assert len(raw) == 5 and json.loads(raw[-1])["reason"] == "after the crash"


def test_garbage_lines_anywhere_are_skipped(tmp_path):
    path = tmp_path / "audit.jsonl"
    path.write_bytes(b'not json\n[1,2]\n{"decision":"signed","reason":"ok"}\n\xff\xfe\n{"a":1}\n')
    assert read_recent(10, path) == [{"decision": "signed", "reason": "ok"}]


def test_rotation_keeps_recent_records_readable(tmp_path):
    path = tmp_path / "audit.jsonl"
    log = AuditLog(path, max_bytes=4000)
    for i in range(60):
        log.record(decision="signed", reason=str(i))
    assert path.stat().st_size <= 4000
    assert path.with_name("audit.jsonl.1").exists()
    in_current = len(lines(path))
    recent = [int(r["reason"]) for r in read_recent(1000, path)]
    assert len(recent) > in_current  # the rotated file is read too
    assert recent == list(range(60 - len(recent), 60))
    assert [r["reason"] for r in read_recent(3, path)] == ["57", "58", "59"]


def test_concurrent_appends_are_whole_lines_and_none_is_lost(tmp_path):
    log = AuditLog(tmp_path / "audit.jsonl")
    barrier = threading.Barrier(40)
    errors = []

    def worker(n):
        try:
            barrier.wait(10)
            for j in range(25):
                log.record(decision="signed", reason=f"{n}-{j}")
        except Exception as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(40)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert errors == []
    reasons = [json.loads(ln)["reason"] for ln in lines(log.path)]
    assert sorted(reasons) == sorted(f"{n}-{j}" for n in range(40) for j in range(25))


def test_an_unwritable_log_raises_a_clear_error(tmp_path):
    (tmp_path / "dir").write_text("a file where the directory should be")
    log = AuditLog(tmp_path / "dir" / "audit.jsonl")
    with pytest.raises(AuditError, match="cannot write the audit log"):
        log.record(decision="signed")
    assert AuditError("x").hint and "no token" in AuditError("x").hint
    with pytest.raises(AuditError, match="not a regular file"):
        AuditLog("/dev/full").record(decision="signed")


@pytest.fixture
def full_disk(tmp_path):
    reason = tinyfs.can_mount()
    if reason:
        pytest.skip(reason)
    try:
        with tinyfs.tiny_tmpfs(tmp_path / "tiny") as mnt:
            yield mnt
    except OSError as exc:
        pytest.skip(str(exc))


def test_enospc_on_a_real_full_disk(full_disk):
    filler = tinyfs.fill(full_disk)
    log = AuditLog(full_disk / "state" / "audit.jsonl")
    with pytest.raises(AuditError, match="No space left on device"):
        log.record(decision="signed", reason="x")
    assert read_recent(10, log.path) == []
    filler.unlink()
    log.record(decision="signed", reason="space again")
    assert [r["reason"] for r in read_recent(10, log.path)] == ["space again"]


# ------------------------------------------------------------------------------ the service


def test_every_decision_is_recorded_with_its_details(store, tmp_path):
    log = AuditLog(tmp_path / "audit.jsonl")
    svc = SigningService(store, Fixed(True), audit=log)
    prov = Provenance(pid=11, ppid=10, cwd="/work/foo")
    ok = svc.handle(req("publish"), prov).response["Ok"]["token"]
    read = svc.handle(req("read"), prov).response["Ok"]["token"]
    svc.approver = Fixed(False)
    assert "Err" in svc.handle(req("yank", vers="0.1.0"), prov).response
    assert svc.handle(req("read", url="sparse+http://127.0.0.1:1/x/"), prov).response == {
        "Err": {"kind": "not-found"}
    }
    recs = read_recent(10, log.path)
    assert [(r["operation"], r["decision"]) for r in recs] == [
        ("publish", "signed"),
        ("read", "signed"),
        ("yank", "denied"),
    ]
    pub = recs[0]
    kip = store.find(LOCAL).kip
    assert pub["registry"] == "local" and pub["index_url"] == LOCAL
    assert (pub["crate"], pub["version"], pub["cksum"]) == ("foo", "1.2.3", CKSUM)
    assert pub["requester"] == {"pid": 11, "ppid": 10, "cwd": "/work/foo"}
    assert pub["key_id"] == kip and pub["reason"] == "approved in the test"
    assert pub["token_sha256"] == hashlib.sha256(ok.encode()).hexdigest()[:16]
    assert recs[1]["token_sha256"] == hashlib.sha256(read.encode()).hexdigest()[:16]
    assert recs[2]["reason"] == "denied in the test" and recs[2]["token_sha256"] is None
    text = log.path.read_text()
    assert ok not in text and read not in text and ok.split(".")[3] not in text


def test_keychain_errors_are_recorded(store, tmp_path):
    from gui_approver.errors import KeychainLocked

    class Locked(MemoryKeychain):
        def get(self, account):
            raise KeychainLocked("the keychain is locked; cannot read a key")

    log = AuditLog(tmp_path / "audit.jsonl")
    svc = SigningService(KeyStore(Locked(), store.index_path), Fixed(True), audit=log)
    assert "locked" in svc.handle(req("publish"), Provenance()).response["Err"]["message"]
    (rec,) = read_recent(10, log.path)
    assert rec["decision"] == "error" and "locked" in rec["reason"]


def test_no_record_no_token(store, tmp_path):
    """If the record cannot be written the token is never released: the request is denied."""
    (tmp_path / "blocked").write_text("a file, so the log's directory cannot be created")
    log = AuditLog(tmp_path / "blocked" / "audit.jsonl")
    events: list[SignEvent] = []
    svc = SigningService(store, Fixed(True), audit=log, on_event=events.append)
    for op in ("read", "publish"):
        out = svc.handle(req(op), Provenance()).response
        err = out["Err"]
        assert err["message"].startswith(f"gui-approver: {req(op).describe()} was denied")
        assert "could not be recorded" in err["message"]
        assert "no token" in err["message"]
        assert "v3.public" not in json.dumps(out)
    assert [e.decision for e in events] == ["error", "error"]


def test_full_disk_denies_and_every_released_token_is_on_record(store, full_disk):
    log = AuditLog(full_disk / "audit.jsonl")
    svc = SigningService(store, Fixed(True), audit=log)
    assert "Ok" in svc.handle(req("read"), Provenance()).response
    tinyfs.fill(full_disk)
    released = []
    for i in range(200):  # the last page of the log fills up after a few records
        out = svc.handle(req("publish", vers=f"1.0.{i}"), Provenance(pid=i)).response
        if "Err" in out:
            assert "No space left on device" in out["Err"]["message"]
            assert "could not be recorded" in out["Err"]["message"]
            break
        released.append(out["Ok"]["token"])
    else:
        pytest.fail("a full disk never stopped signing")
    recorded = {r["token_sha256"] for r in read_recent(1000, log.path)}
    assert {hashlib.sha256(t.encode()).hexdigest()[:16] for t in released} <= recorded
    assert log.path.read_bytes().endswith(b"\n")  # no half record left behind
    assert len(read_recent(1000, log.path)) == len(released) + 1


def test_default_audit_log_is_used_and_no_secret_reaches_it(tmp_path):
    store = KeyStore(MemoryKeychain(), tmp_path / "keys.json")
    svc = SigningService(store, Fixed(True))  # the default: the user's state dir
    key = SigningKey.generate()
    login = parse_request(
        json.dumps(
            {
                "v": 1,
                "registry": {"index-url": LOCAL, "name": "l"},
                "kind": "login",
                "token": key.secret_paserk().expose(),
            }
        )
    )
    assert svc.handle(login, Provenance()).response == {"Ok": {"kind": "login"}}
    assert "Ok" in svc.handle(req("publish"), Provenance()).response
    path = audit.default_path()
    assert [r["decision"] for r in read_recent(10, path)] == ["key-created", "signed"]
    assert scan(key, paths=[path.parent]) == []
    assert svc.audit is not None and svc.audit.path == path


def test_no_audit_only_when_asked(store):
    svc = SigningService(store, Fixed(True), audit=None)
    assert "Ok" in svc.handle(req("read"), Provenance()).response
    assert not audit.default_path().exists()

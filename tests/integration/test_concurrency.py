"""Many cargo invocations at once against one app: every bridge gets exactly its own answer.

The app is in-process (UnixSocketServer + SigningService, the real keychain from
``app_env``); the bridges are real ``cargo-credential-gui-approver --cargo-plugin``
subprocesses, started together, each with its own request and working directory.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyseto
import pytest
from checks import as_get, json_of, present
from envtools import wait_for
from leakscan import scan

from gui_approver.core import audit, ipc
from gui_approver.core.approval import ApprovalRequest, Decision
from gui_approver.core.keys.store import KeyringKeychain, KeyStore, SigningKey
from gui_approver.core.service import SigningService, ipc_handler
from gui_approver.core.settings import Settings

BRIDGE = str(Path(sys.executable).parent / "cargo-credential-gui-approver")
LOCAL = "sparse+http://127.0.0.1:8765/index/"
N_BRIDGES = 50
OPS = ("read", "publish", "yank", "unyank", "owners")


@dataclass
class Job:
    i: int
    request: dict[str, Any]
    cwd: Path
    proc: subprocess.Popen[bytes] | None = None
    stdout: str = ""
    stderr: str = ""

    @property
    def op(self) -> str:
        return str(self.request["operation"])


def make_request(i: int) -> dict[str, Any]:
    op = OPS[i % len(OPS)]
    req: dict[str, Any] = {
        "v": 1,
        "registry": {"index-url": LOCAL, "name": "local"},
        "kind": "get",
        "operation": op,
    }
    if op != "read":
        req["name"] = f"crate-{i}"
    if op in ("publish", "yank", "unyank"):
        req["vers"] = f"1.{i}.0"
    if op == "publish":
        req["cksum"] = hashlib.sha256(f"crate-{i}".encode()).hexdigest()
    return req


def approved_by_rule(name: str) -> bool:
    """The test approver's rule: deny every crate whose number is a multiple of 3."""
    return int(name.rsplit("-", 1)[1]) % 3 != 0


class BarrierApprover:
    """Holds every approval until ``expected`` are pending at once, then decides by rule."""

    def __init__(self, expected: int) -> None:
        self.expected = expected
        self.seen: list[ApprovalRequest] = []
        self.peak = 0
        self._pending = 0
        self._cond = threading.Condition()

    def decide(self, request: ApprovalRequest) -> Decision:
        with self._cond:
            self.seen.append(request)
            self._pending += 1
            self.peak = max(self.peak, self._pending)
            self._cond.notify_all()
            all_in = self._cond.wait_for(lambda: len(self.seen) >= self.expected, timeout=60)
            self._pending -= 1
        if not all_in:
            return Decision.deny("the test barrier timed out")
        name = as_get(request.request).name or ""
        if approved_by_rule(name):
            return Decision.approve("approved by the test rule")
        return Decision.deny(f"denied by the test rule for {name}")


class GateApprover:
    """Counts who is waiting; everyone waits for ``open``, then is approved."""

    def __init__(self) -> None:
        self.entered = 0
        self.open = threading.Event()
        self._lock = threading.Lock()

    def decide(self, request: ApprovalRequest) -> Decision:
        with self._lock:
            self.entered += 1
        self.open.wait(60)
        return Decision.approve("approved after the gate opened")


@pytest.fixture
def keyed_store(app_env):
    store = KeyStore(KeyringKeychain())
    key = SigningKey.generate()
    store.add(key, registry="local", index_url=LOCAL, subject=None)
    store.forget_cached()  # the service must read the secret from the keychain itself
    return store, key


def start_app(store: KeyStore, approver: Any, settings: Settings) -> tuple[Any, Any]:
    service = SigningService(store, approver, settings)
    server = ipc.UnixSocketServer(ipc_handler(service))
    server.start()
    return service, server


def spawn_bridges(jobs: list[Job], env: dict[str, str]) -> None:
    """Start every bridge first, then feed each its request: they all run at once."""
    for job in jobs:
        job.cwd.mkdir(parents=True, exist_ok=True)
        job.proc = subprocess.Popen(
            [BRIDGE, "--cargo-plugin"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            cwd=job.cwd,
        )
    for job in jobs:
        assert job.proc is not None and job.proc.stdin is not None
        job.proc.stdin.write((json.dumps(job.request) + "\n").encode())
        job.proc.stdin.flush()


def collect(jobs: list[Job], timeout: float = 60) -> None:
    def one(job: Job) -> None:
        assert job.proc is not None
        out, err = job.proc.communicate(timeout=timeout)
        job.stdout, job.stderr = out.decode(), err.decode()

    threads = [threading.Thread(target=one, args=(j,)) for j in jobs]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout + 5)


def answer_of(job: Job) -> dict[str, Any]:
    assert job.proc is not None and job.proc.returncode == 0, job.stderr
    lines = job.stdout.split("\n")
    assert lines[0] == '{"v":[1]}' and lines[2:] == [""], job.stdout  # exactly one answer
    answer: dict[str, Any] = json.loads(lines[1])
    return answer


def bridge_env(app_env: dict[str, str]) -> dict[str, str]:
    return {**app_env, "GUI_APPROVER_NO_AUTOSTART": "1"}


def test_fifty_bridges_at_once_each_get_their_own_answer(app_env, keyed_store, tmp_path):
    store, key = keyed_store
    jobs = [Job(i, make_request(i), tmp_path / f"ws-{i}") for i in range(N_BRIDGES)]
    mutations = [j for j in jobs if j.op != "read"]
    approver = BarrierApprover(expected=len(mutations))
    _service, server = start_app(store, approver, Settings(max_pending=N_BRIDGES))
    try:
        spawn_bridges(jobs, bridge_env(app_env))
        collect(jobs)
    finally:
        server.stop()

    # all mutation approvals were pending at the same moment: real concurrency
    assert approver.peak == len(mutations)
    assert sorted(as_get(a.request).name or "" for a in approver.seen) == sorted(
        j.request["name"] for j in mutations
    )

    public = pyseto.Key.from_paserk(key.public_paserk)
    released: dict[str, Job] = {}
    for job in jobs:
        answer = answer_of(job)
        req = job.request
        if job.op != "read" and not approved_by_rule(req["name"]):
            assert answer == {
                "Err": {
                    "kind": "other",
                    "message": (
                        f"{job.op} of {req['name']}"
                        + (f" {req['vers']}" if "vers" in req else "")
                        + f" was denied in gui-approver (denied by the test rule for {req['name']})"
                    ),
                }
            }
            continue
        ok = answer["Ok"]
        assert ok["operation_independent"] is False
        assert ok["cache"] == ("session" if job.op == "read" else "never")
        decoded = pyseto.decode(public, ok["token"])
        claims = json_of(decoded.payload)
        assert json_of(decoded.footer) == {"url": LOCAL, "kip": key.kip}
        want: dict[str, Any] = {k: req[k] for k in ("name", "vers", "cksum") if k in req}
        if job.op != "read":
            want["mutation"] = job.op
        assert {k: v for k, v in claims.items() if k != "iat"} == want, (job.i, claims)
        assert ok["token"] not in released
        released[ok["token"]] = job

    # the audit log: one record per request, each tied to its own bridge process
    records = audit.read_recent(1000)
    assert len(records) == N_BRIDGES
    by_pid = {r["requester"]["pid"]: r for r in records}
    assert len(by_pid) == N_BRIDGES
    fingerprints = {audit.token_fingerprint(t): j for t, j in released.items()}
    for job in jobs:
        assert job.proc is not None
        rec = by_pid[job.proc.pid]
        assert rec["operation"] == job.op and rec["crate"] == job.request.get("name")
        assert rec["version"] == job.request.get("vers")
        assert rec["cksum"] == job.request.get("cksum")
        assert rec["requester"]["cwd"] == str(job.cwd)
        assert rec["key_id"] == key.kip
        if rec["decision"] == "signed":
            assert fingerprints[rec["token_sha256"]] is job
        else:
            assert rec["decision"] == "denied" and rec["token_sha256"] is None
    assert sum(r["decision"] == "signed" for r in records) == len(released)

    leaks = scan(
        key,
        paths=[app_env.dirs.root, app_env.dirs.runtime_dir],
        texts=[t for j in jobs for t in (j.stdout, j.stderr)],
    )
    assert leaks == []


def test_pending_cap_denies_the_surplus_with_a_clear_reason(app_env, keyed_store, tmp_path):
    store, key = keyed_store
    cap, surplus = 4, 6
    approver = GateApprover()
    _service, server = start_app(store, approver, Settings(max_pending=cap))
    jobs = [
        Job(i, make_request(i * len(OPS) + 1), tmp_path / f"ws-{i}")  # publishes
        for i in range(cap + surplus)
    ]
    try:
        spawn_bridges(jobs, bridge_env(app_env))
        # The cap is reached and every surplus bridge has its answer while the gate is shut.
        wait_for(lambda: approver.entered == cap, 30, what=f"{cap} pending approvals")
        wait_for(
            lambda: sum(present(j.proc).poll() is not None for j in jobs) == surplus,
            30,
            what="the surplus bridges to be answered",
        )
        assert approver.entered == cap
        approver.open.set()
        collect(jobs)
    finally:
        approver.open.set()
        server.stop()
    answers = [answer_of(j) for j in jobs]
    denied = [a["Err"]["message"] for a in answers if "Err" in a]
    assert len(denied) == surplus and sum("Ok" in a for a in answers) == cap
    for message in denied:
        assert message.startswith("publish of crate-")
        assert (
            f"too many requests are waiting for approval ({cap}); this one was denied to "
            "stop prompt flooding"
        ) in message
    records = audit.read_recent(100)
    assert sorted(r["decision"] for r in records) == ["denied"] * surplus + ["signed"] * cap
    assert (
        scan(key, paths=[app_env.dirs.root], texts=[t for j in jobs for t in (j.stdout, j.stderr)])
        == []
    )


def test_two_hundred_reads_in_process_all_answered(app_env, keyed_store):
    """More simultaneous connections than the server serves at once (MAX_CONNECTIONS): the
    rest wait in the backlog; every one is answered (in-process clients: fast)."""
    import socket as socketlib

    from gui_approver.client import framing

    store, _key = keyed_store
    _service, server = start_app(store, BarrierApprover(0), Settings())
    n = ipc.MAX_CONNECTIONS + 72
    results: list[str] = []
    lock = threading.Lock()
    go = threading.Barrier(n)

    def client(i: int) -> None:
        go.wait(30)
        with socketlib.socket(socketlib.AF_UNIX, socketlib.SOCK_STREAM) as s:
            s.settimeout(30)
            s.connect(server.path)
            s.sendall(
                framing.credential_ipc_message(make_request(0), framing.Provenance(pid=os.getpid()))
            )
            buf = b""
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                buf += chunk
        kinds = [json.loads(x)["type"] for x in buf.splitlines()]
        with lock:
            results.append(",".join(kinds))

    threads = [threading.Thread(target=client, args=(i,)) for i in range(n)]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
    finally:
        server.stop()
    assert len(results) == n
    assert set(results) == {"ack,response"}
    assert len(audit.read_recent(1000)) == n

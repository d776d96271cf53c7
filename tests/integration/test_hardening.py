"""Issue 12, items 6, 11 and 13: what protects an unlocked or wrapped key.

- the app process cannot be dumped or read through ``/proc/PID/mem`` by a same-user process
  (``PR_SET_DUMPABLE`` 0, ``RLIMIT_CORE`` 0), and keeps no second serialised copy of a key;
- the idle lock counts from the unlock or the last *approved* use, never a silent read;
- whether a key gets locked is decided from its keychain item, not from ``keys.json``;
- passphrases have a minimum strength, and wrapping uses a PBKDF2 count a ~0.5 s unlock
  allows; keys wrapped with the old 100,000 are re-wrapped on their next unlock.

All against the real keychain (``app_env``) and the real CLI/app processes.
"""

from __future__ import annotations

import base64
import gc
import json
import subprocess
import sys

import pyseto
import pytest
from checks import present
from envtools import gui_approver as cli

from gui_approver.client.framing import Provenance
from gui_approver.client.protocol import parse_request
from gui_approver.core.approval import Decision
from gui_approver.core.keys import store as store_mod
from gui_approver.core.keys.store import KeyringKeychain, KeyStore, SigningKey
from gui_approver.core.service import SigningService
from gui_approver.secret import Secret

LOCAL = "sparse+http://127.0.0.1:8765/index/"
STRONG = "violet tiger lamp quarry"


def request(operation: str):
    req = {"v": 1, "registry": {"index-url": LOCAL}, "kind": "get", "operation": operation}
    if operation != "read":
        req.update(name="foo", vers="1.0.0")
    return parse_request(json.dumps(req))


class Yes:
    def decide(self, request):
        return Decision.approve()


def iterations_of(wrapped: str) -> int:
    """The PBKDF2 count a ``k3.secret-pw`` PASERK records (PASERK PBKW: salt 32, then i)."""
    body = wrapped[len("k3.secret-pw.") :]
    raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
    return int.from_bytes(raw[32:36], "big")


# ----------------------------------------------------------------------------- item 6


APP_PROBE = """
import ctypes, json, os, resource, signal, sys, threading
from gui_approver.cli.main import main
from gui_approver.core import ipc

listening = threading.Event()
_start = ipc.UnixSocketServer.start

def start(self):  # the app has hardened itself before it listens: probe once it does
    _start(self)
    listening.set()

ipc.UnixSocketServer.start = start

def probe():
    try:
        listening.wait(20)
        libc = ctypes.CDLL(None, use_errno=True)
        print(json.dumps({"dumpable": libc.prctl(3, 0, 0, 0, 0),  # PR_GET_DUMPABLE
                          "core": list(resource.getrlimit(resource.RLIMIT_CORE))}), flush=True)
    finally:
        os.kill(os.getpid(), signal.SIGTERM)

threading.Thread(target=probe, daemon=True).start()
sys.exit(main(["app", "--no-gui"]))
"""


def test_the_app_process_is_not_dumpable(app_env, tmp_path):
    """Another same-user process must not read the unlocked key from /proc/PID/mem, and a
    crash must not write it to a core file: the app's own entry point (``gui-approver app``)
    makes the process non-dumpable before anything else."""
    out = subprocess.run(
        [sys.executable, "-c", APP_PROBE], env=app_env, capture_output=True, text=True, timeout=60
    )
    lines = [ln for ln in out.stdout.splitlines() if ln.startswith("{")]
    assert lines, out.stderr
    assert json.loads(lines[-1]) == {"dumpable": 0, "core": [0, 0]}, out.stderr


def test_the_bridge_stays_dumpable():
    """Only the process that holds keys is hardened; the stdlib-only bridge is not touched."""
    code = (
        "import gui_approver.client.bridge, ctypes; "
        "print(ctypes.CDLL(None).prctl(3, 0, 0, 0, 0))"
    )  # PR_GET_DUMPABLE
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "1"


def test_a_signing_key_holds_one_private_key_and_no_serialisation():
    key = SigningKey.generate()
    key.sign(b'{"iat":"2026-11-22T02:20:56Z"}', b'{"url":"x","kip":"y"}')
    seen: set[int] = set()
    found: list[object] = []

    def walk(obj: object, depth: int) -> None:
        if id(obj) in seen or depth > 6:
            return
        seen.add(id(obj))
        if isinstance(obj, bytes | str) and b"PRIVATE KEY" in (
            obj if isinstance(obj, bytes) else obj.encode()
        ):
            found.append("PEM")
        if type(obj).__name__.endswith("PrivateKey"):
            found.append(obj)
        for ref in gc.get_referents(obj):
            if not isinstance(ref, type):
                walk(ref, depth + 1)

    for slot in type(key).__slots__:
        walk(getattr(key, slot, None), 0)
    assert found == [key._private], found  # one key object, no PEM, no second key


def test_silent_reads_do_not_keep_a_passphrase_key_unlocked(app_env):
    store = KeyStore(KeyringKeychain(), unlocker=lambda r, w: Secret(STRONG))
    rec = store.create(registry="local", index_url=LOCAL, passphrase=Secret(STRONG))
    store.forget_cached()
    svc = SigningService(store, Yes())
    assert "Ok" in svc.handle(request("yank"), Provenance()).response  # unlock + approved use
    assert store.is_unlocked(rec)
    store._unlocked_at[rec.kip] -= 100  # the approved use was 100 s ago
    for _ in range(3):  # a worm's silent reads since then
        assert "Ok" in svc.handle(request("read"), Provenance()).response
    assert store.lock_if_idle(50) == 1
    assert not store.is_unlocked(rec)
    # An approved use does count.
    assert "Ok" in svc.handle(request("yank"), Provenance()).response
    store._unlocked_at[rec.kip] -= 100
    assert "Ok" in svc.handle(request("unyank"), Provenance()).response
    assert store.lock_if_idle(50) == 0 and store.is_unlocked(rec)


# ----------------------------------------------------------------------------- item 11


def test_keys_json_cannot_switch_off_locking(app_env):
    """A same-user write of ``"protection": "keychain"`` into keys.json must not keep a
    passphrase-protected key unlocked for ever."""
    created = KeyStore(KeyringKeychain()).create(
        registry="local", index_url=LOCAL, passphrase=Secret(STRONG)
    )
    index = store_mod.default_index_path()
    data = json.loads(index.read_text())
    assert data["keys"][0]["protection"] == "passphrase"
    data["keys"][0]["protection"] = "keychain"
    index.write_text(json.dumps(data))

    store = KeyStore(KeyringKeychain(), unlocker=lambda r, w: Secret(STRONG))
    rec = store.find(LOCAL)
    assert rec is not None and rec.kip == created.kip and rec.protection == "keychain"
    store.signing_key(rec)
    assert store.is_unlocked(rec)
    assert store.lock() == 1
    assert not store.is_unlocked(rec)
    store.signing_key(rec)
    assert store.lock_if_idle(0) == 1


# ----------------------------------------------------------------------------- item 13


@pytest.mark.parametrize("weak", ["a", "pw2", "hunter2", "password1"])
def test_cli_refuses_a_weak_passphrase(app_env, weak):
    r = cli(
        app_env,
        "key",
        "new",
        "--registry",
        "local",
        "--index",
        LOCAL,
        "--passphrase-file",
        "-",
        input=weak + "\n",
    )
    assert r.returncode == 1
    assert "too weak" in r.stderr and "nothing was created" in r.stderr.lower()
    if len(weak) > 3:  # never echoed
        assert weak not in r.stderr
    assert KeyStore(KeyringKeychain()).list() == []


def test_cli_accepts_a_strong_passphrase_and_wraps_with_many_iterations(app_env):
    r = cli(
        app_env,
        "key",
        "new",
        "--registry",
        "local",
        "--index",
        LOCAL,
        "--passphrase-file",
        "-",
        "--json",
        input=STRONG + "\n",
    )
    assert r.returncode == 0, r.stderr
    item = present(KeyringKeychain().get(json.loads(r.stdout)["kip"])).expose()
    assert iterations_of(item) == store_mod.WRAP_ITERATIONS >= 300_000


def test_old_100k_key_unlocks_and_is_rewrapped(app_env):
    key = SigningKey.generate()
    store = KeyStore(KeyringKeychain())
    rec = store.add(key, registry="local", index_url=LOCAL, subject=None, passphrase=Secret(STRONG))
    old = pyseto.Key.from_paserk(key.secret_paserk().expose()).to_paserk(
        password=STRONG, iteration=100_000
    )
    KeyringKeychain().set(rec.kip, Secret(old))
    assert iterations_of(present(KeyringKeychain().get(rec.kip)).expose()) == 100_000

    store = KeyStore(KeyringKeychain())
    store.unlock(rec, Secret(STRONG))
    item = present(KeyringKeychain().get(rec.kip)).expose()
    assert item.startswith("k3.secret-pw.")
    assert iterations_of(item) == store_mod.WRAP_ITERATIONS
    assert SigningKey.from_wrapped(Secret(item), Secret(STRONG)).kip == rec.kip
    store.lock()
    store.unlock(rec, Secret(STRONG))  # and it still unlocks
    assert store.is_unlocked(rec)

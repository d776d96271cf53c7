"""Tests for gui_approver.registry.server: the demo sparse registry, over HTTP and with cargo."""

from __future__ import annotations

import hashlib
import http.client
import json
import signal
import socket
import subprocess
import sys
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from factories import KeyPair
from registry_tools import Reply, call, http_publish, meta_for, publish_body, run_cli

from gui_approver.registry.server import (
    DemoRegistry,
    add_key_to_file,
    index_path,
    is_loopback,
)

# ----------------------------------------------------------------------------- helpers


@pytest.fixture(scope="module")
def kp() -> KeyPair:
    return KeyPair()


@pytest.fixture
def reg(tmp_path: Path, kp: KeyPair) -> Iterator[DemoRegistry]:
    registry = DemoRegistry(tmp_path / "data", keys=[kp.registered()])
    registry.start()
    yield registry
    registry.stop()


# ------------------------------------------------------------------------- HTTP level


def test_index_path_layout() -> None:
    assert index_path("a") == "1/a"
    assert index_path("ab") == "2/ab"
    assert index_path("abc") == "3/a/abc"
    assert index_path("Cargo") == "ca/rg/cargo"
    assert index_path("serde_json") == "se/rd/serde_json"


def test_is_loopback() -> None:
    assert is_loopback("127.0.0.1")
    assert is_loopback("127.5.5.5")
    assert is_loopback("::1")
    assert is_loopback("localhost")
    assert not is_loopback("0.0.0.0")
    assert not is_loopback("192.168.1.10")
    assert not is_loopback("example.com")


def test_urls_and_config(reg: DemoRegistry) -> None:
    assert reg.index_url.startswith("sparse+http://127.0.0.1:")
    assert reg.index_url.endswith("/index/")
    assert reg.index_url == f"sparse+{reg.api_url}/index/"
    r = call(reg, "GET", "/index/config.json")
    assert r.status == 200
    assert r.json() == {"dl": f"{reg.api_url}/api/v1/crates", "api": reg.api_url}


def test_not_started_has_no_url(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError):
        _ = DemoRegistry(tmp_path).index_url


def test_unknown_crate_is_404(reg: DemoRegistry) -> None:
    for path in ["/index/3/f/foo", "/index/un/kn/unknown", "/api/v1/crates/foo/1.0.0/download"]:
        r = call(reg, "GET", path)
        assert r.status == 404, path
        assert r.json()["errors"][0]["detail"]


def test_publish_roundtrip(reg: DemoRegistry, kp: KeyPair) -> None:
    crate = b"\x1f\x8b pretend this is a gzip tarball"
    r = http_publish(reg, kp, "Foo_bar", "1.0.0", crate)
    assert r.status == 200, r.body
    assert r.json() == {"warnings": {"invalid_categories": [], "invalid_badges": [], "other": []}}

    entries = reg.crates()["Foo_bar"]
    assert entries == [
        {
            "name": "Foo_bar",
            "vers": "1.0.0",
            "deps": [],
            "cksum": hashlib.sha256(crate).hexdigest(),
            "features": {},
            "yanked": False,
            "links": None,
            "v": 1,
        }
    ]
    idx = call(reg, "GET", "/index/fo/o_/foo_bar")
    assert idx.status == 200
    assert [json.loads(line) for line in idx.body.decode().splitlines()] == entries
    etag = idx.headers["ETag"]
    assert etag
    cached = call(reg, "GET", "/index/fo/o_/foo_bar", headers={"If-None-Match": etag})
    assert cached.status == 304
    assert cached.body == b""
    assert call(reg, "GET", "/index/Fo/o_/Foo_bar").status == 404  # cargo asks lowercase

    dl = call(reg, "GET", "/api/v1/crates/Foo_bar/1.0.0/download")
    assert dl.status == 200
    assert dl.body == crate
    assert call(reg, "GET", "/api/v1/crates/foo_bar/1.0.0/download").body == crate
    assert reg.owners("Foo_bar") == [kp.kip]


def test_publish_deps_and_features(reg: DemoRegistry, kp: KeyPair) -> None:
    dep = {
        "optional": True,
        "default_features": False,
        "name": "base",
        "features": ["std"],
        "version_req": "^1.2",
        "target": "cfg(unix)",
        "kind": "normal",
        "registry": None,
        "explicit_name_in_toml": "renamed",
    }
    dev = {
        "optional": False,
        "default_features": True,
        "name": "other",
        "features": [],
        "version_req": "^0.1",
        "target": None,
        "kind": "dev",
        "registry": "https://github.com/rust-lang/crates.io-index",
    }
    features = {"default": ["std"], "std": [], "ser": ["dep:renamed", "renamed?/std"]}
    r = http_publish(
        reg, kp, "withdeps", "0.2.0-beta.1", deps=[dep, dev], features=features, links="z"
    )
    assert r.status == 200, r.body
    (entry,) = reg.crates()["withdeps"]
    assert entry["deps"] == [
        {
            "name": "renamed",
            "req": "^1.2",
            "features": ["std"],
            "optional": True,
            "default_features": False,
            "target": "cfg(unix)",
            "kind": "normal",
            "registry": None,
            "package": "base",
        },
        {
            "name": "other",
            "req": "^0.1",
            "features": [],
            "optional": False,
            "default_features": True,
            "target": None,
            "kind": "dev",
            "registry": "https://github.com/rust-lang/crates.io-index",
            "package": None,
        },
    ]
    assert entry["features"] == {"default": ["std"], "std": []}
    assert entry["features2"] == {"ser": ["dep:renamed", "renamed?/std"]}
    assert entry["v"] == 2
    assert entry["links"] == "z"


def assert_unauthorized(reg: DemoRegistry, r: Reply, *fragments: str) -> None:
    assert r.status == 401, r.body
    assert r.headers["WWW-Authenticate"] == f'Cargo login_url="{reg.api_url}/me"'
    detail = r.json()["errors"][0]["detail"]
    for fragment in fragments:
        assert fragment in detail


def test_publish_without_token_is_401(reg: DemoRegistry) -> None:
    body = publish_body(meta_for("foo", "1.0.0"), b"crate")
    r = call(reg, "PUT", "/api/v1/crates/new", body)
    assert_unauthorized(reg, r, "publish")
    assert reg.crates() == {}
    assert not (reg.data_dir / "crates").exists()


def test_publish_with_wrong_cksum_is_401(reg: DemoRegistry, kp: KeyPair) -> None:
    token = kp.token(reg.index_url, "publish", "foo", "1.0.0", hashlib.sha256(b"a").hexdigest())
    body = publish_body(meta_for("foo", "1.0.0"), b"b")
    r = call(reg, "PUT", "/api/v1/crates/new", body, {"Authorization": token})
    assert_unauthorized(reg, r, "checksum")
    assert reg.crates() == {}


def test_publish_with_unknown_key_is_401(reg: DemoRegistry) -> None:
    stranger = KeyPair()
    r = http_publish(reg, stranger, "foo", "1.0.0")
    assert_unauthorized(reg, r, stranger.kip, "not registered")
    assert reg.crates() == {}


def test_publish_with_bearer_prefix_is_401(reg: DemoRegistry, kp: KeyPair) -> None:
    cksum = hashlib.sha256(b"c").hexdigest()
    token = "Bearer " + kp.token(reg.index_url, "publish", "foo", "1.0.0", cksum)
    body = publish_body(meta_for("foo", "1.0.0"), b"c")
    r = call(reg, "PUT", "/api/v1/crates/new", body, {"Authorization": token})
    assert_unauthorized(reg, r, "v3.public")


def test_token_for_another_registry_is_401(reg: DemoRegistry, kp: KeyPair) -> None:
    cksum = hashlib.sha256(b"c").hexdigest()
    token = kp.token("sparse+http://127.0.0.1:1/index/", "publish", "foo", "1.0.0", cksum)
    body = publish_body(meta_for("foo", "1.0.0"), b"c")
    r = call(reg, "PUT", "/api/v1/crates/new", body, {"Authorization": token})
    assert_unauthorized(reg, r, "127.0.0.1:1")


def test_duplicate_version_is_409(reg: DemoRegistry, kp: KeyPair) -> None:
    assert http_publish(reg, kp, "dup", "1.0.0").status == 200
    for vers in ["1.0.0", "1.0.0+build5"]:
        r = http_publish(reg, kp, "dup", vers, b"other bytes")
        assert r.status == 409
        assert "already uploaded" in r.json()["errors"][0]["detail"]
    assert call(reg, "GET", "/api/v1/crates/dup/1.0.0/download").body == b"crate"
    assert [e["vers"] for e in reg.crates()["dup"]] == ["1.0.0"]
    assert http_publish(reg, kp, "dup", "1.0.1").status == 200
    # same crate, different case: refused
    assert http_publish(reg, kp, "DUP", "2.0.0").status == 409


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"\x05\x00\x00\x00{}",
        b"\x02\x00\x00\x00{}\x05\x00\x00\x00abc",
        b"\x02\x00\x00\x00{}\x01\x00\x00\x00abc",  # trailing bytes
        publish_body({"name": "foo"}, b"x"),
        publish_body(meta_for("../etc", "1.0.0"), b"x"),
        publish_body(meta_for("foo", "1.0"), b"x"),
        publish_body(meta_for("foo", "1.0.0/../../x"), b"x"),
        publish_body(meta_for("foo", "1.0.0", deps="nope"), b"x"),
        publish_body(meta_for("foo", "1.0.0", features={"a": "b"}), b"x"),
        b"\x04\x00\x00\x00null\x01\x00\x00\x00x",
    ],
)
def test_invalid_publish_body_is_400(reg: DemoRegistry, kp: KeyPair, body: bytes) -> None:
    r = call(reg, "PUT", "/api/v1/crates/new", body, {"Authorization": kp.token(reg.index_url)})
    assert r.status == 400
    assert r.json()["errors"][0]["detail"]
    assert reg.crates() == {}


def test_body_limit(reg: DemoRegistry) -> None:
    host, port = urllib.parse.urlsplit(reg.api_url).hostname, reg.api_url.rsplit(":", 1)[1]
    with socket.create_connection((host, int(port)), timeout=10) as s:
        s.sendall(b"PUT /api/v1/crates/new HTTP/1.1\r\nHost: x\r\nContent-Length: 20000000\r\n\r\n")
        reply = b""
        while chunk := s.recv(65536):
            reply += chunk
    assert reply.startswith(b"HTTP/1.1 413")
    assert b"10485760" in reply
    # small endpoints have a much smaller limit
    r = call(reg, "PUT", "/api/v1/crates/foo/owners", b"x" * 100_000)
    assert r.status == 413


def test_yank_and_unyank(reg: DemoRegistry, kp: KeyPair) -> None:
    assert http_publish(reg, kp, "yk", "0.1.0").status == 200
    path = "/api/v1/crates/yk/0.1.0"
    r = call(reg, "DELETE", f"{path}/yank")
    assert_unauthorized(reg, r, "yank")
    r = call(
        reg,
        "DELETE",
        f"{path}/yank",
        headers={"Authorization": kp.token(reg.index_url, "yank", "yk", "0.1.1")},
    )
    assert_unauthorized(reg, r, "version")
    token = kp.token(reg.index_url, "yank", "yk", "0.1.0")
    r = call(reg, "DELETE", f"{path}/yank", headers={"Authorization": token})
    assert (r.status, r.json()) == (200, {"ok": True})
    assert reg.crates()["yk"][0]["yanked"] is True
    # an unyank needs its own token: the yank token does not do
    assert call(reg, "PUT", f"{path}/unyank", headers={"Authorization": token}).status == 401
    token = kp.token(reg.index_url, "unyank", "yk", "0.1.0")
    r = call(reg, "PUT", f"{path}/unyank", headers={"Authorization": token})
    assert (r.status, r.json()) == (200, {"ok": True})
    assert reg.crates()["yk"][0]["yanked"] is False
    # unknown version: authorised, but 404
    token = kp.token(reg.index_url, "yank", "yk", "9.9.9")
    r = call(reg, "DELETE", "/api/v1/crates/yk/9.9.9/yank", headers={"Authorization": token})
    assert r.status == 404
    # wrong method
    assert call(reg, "GET", f"{path}/yank").status == 405


def test_owners(reg: DemoRegistry, kp: KeyPair) -> None:
    assert http_publish(reg, kp, "own", "0.1.0").status == 200
    path = "/api/v1/crates/own/owners"
    assert_unauthorized(reg, call(reg, "GET", path), "owners")

    def auth() -> dict[str, str]:
        return {"Authorization": kp.token(reg.index_url, "owners", "own")}

    r = call(reg, "GET", path, headers=auth())
    assert r.json() == {"users": [{"id": 1, "login": kp.kip, "name": None}]}
    r = call(reg, "PUT", path, json.dumps({"users": ["bob"]}).encode(), auth())
    assert r.status == 200
    assert r.json()["ok"] is True
    assert "bob" in r.json()["msg"]
    assert reg.owners("own") == [kp.kip, "bob"]
    r = call(reg, "DELETE", path, json.dumps({"users": [kp.kip]}).encode(), auth())
    assert r.status == 200
    assert reg.owners("own") == ["bob"]
    r = call(reg, "DELETE", path, json.dumps({"users": ["bob"]}).encode(), auth())
    assert r.status == 400
    assert call(reg, "PUT", path, b"not json", auth()).status == 400
    wrong = {"Authorization": kp.token(reg.index_url, "owners", "other")}
    assert_unauthorized(reg, call(reg, "GET", path, headers=wrong), "crate 'other'")
    missing = {"Authorization": kp.token(reg.index_url, "owners", "missing")}
    assert call(reg, "GET", "/api/v1/crates/missing/owners", headers=missing).status == 404


def test_reads_verify_a_token_when_one_is_sent(reg: DemoRegistry, kp: KeyPair) -> None:
    assert http_publish(reg, kp, "rd", "0.1.0").status == 200
    for path in ["/index/config.json", "/index/2/rd", "/api/v1/crates/rd/0.1.0/download"]:
        assert call(reg, "GET", path).status == 200
        ok = call(reg, "GET", path, headers={"Authorization": kp.token(reg.index_url)})
        assert ok.status == 200, path
        bad = call(reg, "GET", path, headers={"Authorization": "v3.public.nope"})
        assert_unauthorized(reg, bad)
        # a mutation token is no read token
        mut = {"Authorization": kp.token(reg.index_url, "owners", "rd")}
        assert_unauthorized(reg, call(reg, "GET", path, headers=mut), "read")


@pytest.mark.parametrize(
    "path",
    [
        "/index/../keys.json",
        "/index/%2e%2e/keys.json",
        "/index/ke/ys/keys.json",
        "/index/ow/ne/owners.json",
        "/api/v1/crates/..%2F..%2Fkeys.json/1.0.0/download",
        "/api/v1/crates/foo/..%2F..%2F..%2Fkeys.json/download",
        "/api/v1/crates/foo/1.0.0%2F..%2F..%2Fx/download",
        "/keys.json",
        "/api/v1/crates",
        "/index/",
    ],
)
def test_no_path_traversal(reg: DemoRegistry, kp: KeyPair, path: str) -> None:
    add_key_to_file(reg.data_dir, kp.registered())
    r = call(reg, "GET", path)
    assert r.status == 404
    assert b"k3.public" not in r.body


def test_keys_json_is_reloaded_while_running(tmp_path: Path, kp: KeyPair) -> None:
    with DemoRegistry(tmp_path / "data") as reg:
        assert_unauthorized(reg, http_publish(reg, kp, "late", "0.1.0"), "not registered")
        # what the demo-registry-key admin command does, from "another process"
        add_key_to_file(tmp_path / "data", kp.registered(subject="alice"))
        r = http_publish(reg, kp, "late", "0.1.0")
        assert_unauthorized(reg, r, "subject")  # registered with a subject, token has none
        add_key_to_file(tmp_path / "data", kp.registered())  # replaces the entry (same kip)
        assert http_publish(reg, kp, "late", "0.1.0").status == 200
        assert [k.kip for k in reg.registered_keys()] == [kp.kip]
        # a broken keys.json keeps the previous keys instead of crashing
        (tmp_path / "data" / "keys.json").write_text("{broken")
        assert http_publish(reg, kp, "late", "0.2.0").status == 200


def test_add_key_persists(tmp_path: Path, kp: KeyPair) -> None:
    reg = DemoRegistry(tmp_path / "data")
    reg.add_key(kp.registered("sub"))
    doc = json.loads((tmp_path / "data" / "keys.json").read_text())
    assert doc["keys"] == [{"public": kp.public, "subject": "sub", "kip": kp.kip}]
    assert reg.registered_keys() == [kp.registered("sub")]


def test_state_survives_restart(tmp_path: Path, kp: KeyPair) -> None:
    with DemoRegistry(tmp_path / "data") as reg:
        reg.add_key(kp.registered())
        assert http_publish(reg, kp, "keep", "1.0.0", b"bytes").status == 200
    with DemoRegistry(tmp_path / "data") as again:
        assert [e["vers"] for e in again.crates()["keep"]] == ["1.0.0"]
        assert call(again, "GET", "/api/v1/crates/keep/1.0.0/download").body == b"bytes"
        assert http_publish(again, kp, "keep", "1.0.1").status == 200
        assert http_publish(again, kp, "keep", "1.0.0").status == 409


def test_non_loopback_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="allow-remote"):
        DemoRegistry(tmp_path, host="0.0.0.0")
    DemoRegistry(tmp_path, host="0.0.0.0", allow_remote=True)  # constructing does not bind


def test_ipv6_loopback(tmp_path: Path, kp: KeyPair) -> None:
    if not socket.has_ipv6:
        pytest.skip("no IPv6")
    try:
        reg = DemoRegistry(tmp_path, host="::1")
        reg.start()
    except OSError:
        pytest.skip("::1 not available")
    try:
        assert reg.index_url.startswith("sparse+http://[::1]:")
        conn = http.client.HTTPConnection("::1", int(reg.api_url.rsplit(":", 1)[1]), timeout=10)
        conn.request("GET", "/index/config.json")
        assert conn.getresponse().status == 200
        conn.close()
    finally:
        reg.stop()


# ----------------------------------------------------------------------------- the CLI


def test_cli_demo_registry_key(
    tmp_path: Path, kp: KeyPair, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "data"
    assert run_cli(["demo-registry-key", "--data", str(data), "--key", kp.public]) == 0
    assert kp.kip in capsys.readouterr().out
    argv = ["demo-registry-key", "--data", str(data), "--key", kp.public, "--subject", "al"]
    assert run_cli(argv) == 0
    doc = json.loads((data / "keys.json").read_text())
    assert doc["keys"] == [{"public": kp.public, "subject": "al", "kip": kp.kip}]
    assert run_cli(["demo-registry-key", "--data", str(data), "--key", "k3.public.x"]) == 2
    assert "k3.public" in capsys.readouterr().err


def test_cli_refuses_remote_host(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["demo-registry", "--host", "0.0.0.0", "--data", str(tmp_path)]
    assert run_cli(argv) == 2
    assert "--allow-remote" in capsys.readouterr().err


def test_cli_demo_registry_serves_until_sigterm(tmp_path: Path, kp: KeyPair) -> None:
    data = tmp_path / "data"
    other = KeyPair()
    proc = subprocess.Popen(
        [
            *(sys.executable, "-m", "gui_approver.registry.server", "demo-registry"),
            *("--data", str(data), "--port", "0", "--key", other.public, "--subject", "o"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        assert first.startswith("index: sparse+http://127.0.0.1:"), first
        index_url = first.split(" ", 1)[1].strip()
        api = index_url.removeprefix("sparse+").removesuffix("/index/")
        reg = _Remote(api, index_url, data)
        assert call(reg, "GET", "/index/config.json").json()["api"] == api  # type: ignore[arg-type]
        # --key keys are accepted; a key registered by the admin command is picked up live
        assert run_cli(["demo-registry-key", "--data", str(data), "--key", kp.public]) == 0
        assert http_publish(reg, kp, "cli", "0.1.0").status == 200  # type: ignore[arg-type]
        assert http_publish(reg, other, "cli", "0.2.0").status == 401  # type: ignore[arg-type]
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stdout:
            proc.stdout.close()
        if proc.stderr:
            proc.stderr.close()


@dataclass
class _Remote:
    """Just enough of DemoRegistry for call()/http_publish() against another process."""

    api_url: str
    index_url: str
    data_dir: Path

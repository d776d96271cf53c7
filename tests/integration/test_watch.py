"""The watch (gui_approver.core.watch, ``gui-approver watch``) against the real demo registry
over loopback, and the audit log written by the real AuditLog; with the real cargo publishing
out of band: tests/e2e/test_watch_cargo.py."""

from __future__ import annotations

import json
import socket
import subprocess
from pathlib import Path
from typing import Any

import pytest
from leakscan import scan
from registry_tools import call
from watch_tools import CLI, World, run_cli

from gui_approver.core.audit import AuditLog
from gui_approver.core.settings import Settings
from gui_approver.core.watch import (
    CRATES_IO_SPARSE,
    Watch,
    WatchError,
    fetch_base,
    index_path,
    parse_index_file,
)
from gui_approver.registry.server import DemoRegistry
from gui_approver.secret import Secret

# ----------------------------------------------------------------------------- units


def test_index_path_and_fetch_base(monkeypatch: pytest.MonkeyPatch) -> None:
    assert [index_path(n) for n in ("a", "ab", "abc", "Abcd", "serde")] == [
        "1/a",
        "2/ab",
        "3/a/abc",
        "ab/cd/abcd",
        "se/rd/serde",
    ]
    monkeypatch.delenv("GUI_APPROVER_CRATES_IO_INDEX", raising=False)
    gh = "https://github.com/rust-lang/crates.io-index"
    assert fetch_base(gh) == CRATES_IO_SPARSE == "https://index.crates.io/"
    assert fetch_base("sparse+https://index.crates.io/") == CRATES_IO_SPARSE
    assert fetch_base(gh, "http://127.0.0.1:9/index") == "http://127.0.0.1:9/index/"
    monkeypatch.setenv("GUI_APPROVER_CRATES_IO_INDEX", "sparse+http://127.0.0.1:8/index/")
    assert fetch_base(gh) == "http://127.0.0.1:8/index/"
    assert fetch_base("sparse+http://127.0.0.1:1/index/") == "http://127.0.0.1:1/index/"
    with pytest.raises(WatchError, match="git index"):
        fetch_base("https://example.com/git-index")


def test_one_spelling_per_registry(tmp_path: Path) -> None:
    from gui_approver.core.watch import canonical_index

    gh = "https://github.com/rust-lang/crates.io-index"
    for url in (gh, gh + "/", "sparse+https://index.crates.io/", " https://index.crates.io "):
        assert canonical_index(url) == gh
    assert canonical_index("sparse+http://h/index") == "sparse+http://h/index/"
    assert canonical_index("sparse+http://h/index//") == "sparse+http://h/index/"
    watch = Watch(tmp_path / "state")
    AuditLog(tmp_path / "state" / "audit.jsonl").record(
        event="get",
        registry="local",
        index_url="sparse+http://127.0.0.1:9/index/",
        operation="publish",
        crate="a1",
        version="1.0.0",
        cksum="0" * 64,
        decision="signed",
    )
    watch.add("local", ["b2"], "sparse+http://127.0.0.1:9/index")
    (w,) = watch.watched()
    assert (w.index_url, w.crates) == ("sparse+http://127.0.0.1:9/index/", ("a1", "b2"))
    watch.set_elsewhere("sparse+http://127.0.0.1:9/index", "b2", True)
    assert watch.elsewhere("sparse+http://127.0.0.1:9/index/") == {"b2"}
    assert watch.watched("sparse+http://127.0.0.1:9/index") == [w]


def test_parse_index_file_is_strict() -> None:
    ok = b'{"name":"Foo","vers":"1.0.0","cksum":"' + b"a" * 64 + b'","yanked":false}\n\n'
    assert parse_index_file(ok, "foo", "u") == {"1.0.0": ("a" * 64, False)}
    pre = ok.replace(b"1.0.0", b"1.0.0-rc.1+build.5")
    assert parse_index_file(pre, "foo", "u") == {"1.0.0-rc.1+build.5": ("a" * 64, False)}
    for bad, why in [
        (b"not json\n", "line 1 is not JSON"),
        (b"[1]\n", "not a JSON object"),
        (ok.replace(b"Foo", b"bar"), "is for crate 'bar'"),
        (ok.replace(b"a" * 64, b"zz"), "no valid cksum"),
        (ok.replace(b"false", b'"no"'), "non-boolean yanked"),
        (b"\xff\n", "not UTF-8"),
        (ok.replace(b"1.0.0", "1.0.0\u202e".encode()), "no valid version"),
        (ok.replace(b"1.0.0", b"1.0"), "no valid version"),
    ]:
        with pytest.raises(WatchError, match=why):
            parse_index_file(bad, "foo", "u")


def test_interval_setting_bounds() -> None:
    assert Settings().watch_interval_minutes == 15.0
    assert Settings(watch_interval_minutes=0).validate() == []
    assert Settings(watch_interval_minutes=1).validate() == []
    for bad in (0.5, -1, 1441):
        assert Settings(watch_interval_minutes=bad).validate()


# ----------------------------------------------------------------- passes (real registry)


def test_nothing_is_fetched_when_nothing_is_watched(world: World) -> None:
    world.approve("publish", "other", "1.0.0", "0" * 64)  # a read or denial would not count
    world.watch.remove("local", ["other"])
    result = world.watch.run_once()
    assert (result.requests, result.registries, result.exit_code) == (0, 0, 0)
    assert list(world.reg.served) == []


def test_one_connection_per_pass_for_many_crates(world: World) -> None:
    names = [f"wa-many-{i}" for i in range(12)]
    world.watch.add("local", names, world.reg.index_url)
    result = world.watch.run_once()
    assert (result.requests, result.errors) == (13, [])
    sent = list(world.reg.served)
    assert [s.status for s in sent] == [200] + [404] * 12
    assert len({s.peer for s in sent}) == 1


def test_revoke_refuses_plain_http_to_a_remote_api(tmp_path: Path) -> None:
    with DemoRegistry(tmp_path / "r", token_mode=True) as reg:
        watch = Watch(tmp_path / "state")
        # a registry whose config.json names a remote plain-HTTP api
        cfg = reg.data_dir / "index"
        cfg.mkdir(parents=True, exist_ok=True)
        orig = reg._route

        def route(method, seg, headers, body):
            if seg == ["index", "config.json"]:
                from gui_approver.registry.server import _json_response

                return _json_response({"dl": "http://example.com/dl", "api": "http://example.com"})
            return orig(method, seg, headers, body)

        reg._route = route  # type: ignore[method-assign]
        with pytest.raises(WatchError, match="plain HTTP"):
            watch.revoke_token(reg.index_url, Secret("gad_x"), on_revoked=lambda: None)


# ------------------------------------------------------------------------- failures


def test_network_failure_is_an_error_and_raises_no_alert(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    state = tmp_path / "state"
    watch = Watch(state, timeout=2.0)
    watch.add("gone", ["foo"], f"sparse+http://127.0.0.1:{port}/index/")
    result = watch.run_once()
    assert result.exit_code == 2
    assert "cannot reach" in result.errors[0] and "config.json" in result.errors[0]
    assert watch.alerts() == [] and not (state / "alerts.json").exists()


def test_a_registry_that_never_answers_times_out(tmp_path: Path) -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)  # accepts connections (kernel) but never answers
        port = listener.getsockname()[1]
        watch = Watch(tmp_path / "state", timeout=0.5)
        watch.add("slow", ["foo"], f"sparse+http://127.0.0.1:{port}/index/")
        result = watch.run_once()
    assert result.exit_code == 2 and "timed out" in result.errors[0]


def test_damaged_alerts_file_is_a_clear_error(world: World) -> None:
    world.state.mkdir(parents=True, exist_ok=True)
    (world.state / "alerts.json").write_text("{broken")
    with pytest.raises(WatchError, match="damaged"):
        world.watch.alerts()


# ------------------------------------------------------------------------------ CLI


def test_cli_watch_network_error_exit_2(cli_env: dict[str, str]) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"sparse+http://127.0.0.1:{port}/index/"
    added = run_cli(cli_env, "watch", "add", "--registry", "gone", "--index", url, "foo")
    assert added.returncode == 0, added.stderr
    r = run_cli(cli_env, "watch", "--once")
    assert r.returncode == 2
    assert "cannot reach" in r.stderr and "hint:" in r.stderr
    assert r.stdout == ""
    removed = run_cli(cli_env, "watch", "remove", "--registry", "gone", "foo")
    assert removed.returncode == 0
    assert run_cli(cli_env, "watch", "--once").returncode == 0
    assert run_cli(cli_env, "watch").returncode == 2  # neither --once nor an action


# ------------------------------------------------ the real service writes the approvals


def _one_shot_server(responses: list[bytes]) -> tuple[socket.socket, int, list[bytes]]:
    """A loopback server answering each connection's requests with the next response."""
    import threading

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    requests: list[bytes] = []

    def serve() -> None:
        while responses:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            with conn:
                while responses:
                    data = b""
                    while b"\r\n\r\n" not in data:
                        chunk = conn.recv(4096)
                        if not chunk:
                            break
                        data += chunk
                    if not data:
                        break
                    requests.append(data)
                    conn.sendall(responses.pop(0))

    threading.Thread(target=serve, daemon=True).start()
    return listener, listener.getsockname()[1], requests


def _http(body: bytes, *headers: str) -> bytes:
    head = "".join(f"{h}\r\n" for h in headers)
    return b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n%s\r\n%s" % (len(body), head.encode(), body)


def test_gzip_index_files_are_read_and_bombs_refused(tmp_path: Path) -> None:
    import gzip

    from gui_approver.core.watch import MAX_INDEX_BYTES, Fetcher

    line = b'{"name":"gz","vers":"1.0.0","cksum":"' + b"c" * 64 + b'","yanked":false}\n'
    bomb = gzip.compress(b"\n" * (MAX_INDEX_BYTES + 10))
    listener, port, seen = _one_shot_server(
        [
            _http(gzip.compress(line), "Content-Encoding: gzip"),
            _http(bomb, "Content-Encoding: gzip"),
            _http(b"x", "Content-Encoding: br"),
        ]
    )
    try:
        with Fetcher(timeout=5.0) as fetcher:
            url = f"http://127.0.0.1:{port}/index/2/gz"
            status, body, _ = fetcher.request(url)
            assert status == 200
            assert parse_index_file(body, "gz", url) == {"1.0.0": ("c" * 64, False)}
            assert b"Accept-Encoding: gzip" in seen[0]
            assert fetcher.bytes < len(line)  # counted as it travelled
            with pytest.raises(WatchError, match=r"larger than .* once decompressed"):
                fetcher.request(url)
            with pytest.raises(WatchError, match="unknown encoding 'br'"):
                fetcher.request(url)
    finally:
        listener.close()


def test_a_kept_alive_connection_closed_by_the_server_is_reopened_once(tmp_path: Path) -> None:
    """A server that drops each connection after one answer (without saying so): the next
    request notices on the reused connection and is sent again on a fresh one."""
    import threading

    from gui_approver.core.watch import Fetcher

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    port = listener.getsockname()[1]
    connections: list[int] = []

    def serve() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            with conn:
                connections.append(1)
                data = b""
                while b"\r\n\r\n" not in data:
                    chunk = conn.recv(4096)
                    if not chunk:
                        break
                    data += chunk
                body = b'{"dl":"x"}'
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        with Fetcher(timeout=2.0) as fetcher:
            for _ in range(3):
                status, body, _ = fetcher.request(f"http://127.0.0.1:{port}/index/config.json")
                assert (status, body) == (200, b'{"dl":"x"}')
        assert fetcher.requests == 3 and len(connections) == 3
    finally:
        listener.close()


def test_cli_watch_revoke_with_the_token_from_the_real_keychain(
    app_env: Any, tmp_path: Path
) -> None:
    with DemoRegistry(tmp_path / "registry", token_mode=True) as reg:
        token = reg.issue_token("me")
        add = subprocess.run(
            [CLI, "token", "add", "--registry", "local", "--index", reg.index_url],
            input=token + "\n",
            env=app_env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert add.returncode == 0, add.stderr
        assert run_cli(app_env, "watch", "add", "--registry", "local", "wa-rv").returncode == 0
        unconfirmed = run_cli(app_env, "watch", "revoke", "--registry", "local")
        assert unconfirmed.returncode == 2 and "--yes" in unconfirmed.stderr
        assert (
            call(
                reg,
                "DELETE",
                "/api/v1/tokens/current",
                headers={"Authorization": reg.issue_token()},
            ).status
            == 204
        )  # registry ok
        revoked = run_cli(app_env, "watch", "revoke", "--registry", "local", "--yes")
        assert revoked.returncode == 0, revoked.stderr
        assert "Revoked the bearer token sha256:" in revoked.stdout
        assert token not in revoked.stdout + revoked.stderr
        assert (
            call(reg, "DELETE", "/api/v1/tokens/current", headers={"Authorization": token}).status
            == 403
        )
        listed = json.loads(run_cli(app_env, "token", "list", "--json").stdout)
        assert listed == []
        (entry,) = json.loads(run_cli(app_env, "watch", "list", "--json").stdout)
        assert entry["needs_new_token"] is True
        again = run_cli(app_env, "watch", "revoke", "--registry", "local", "--yes")
        assert again.returncode == 1 and "keeps no bearer token" in again.stderr
        add2 = subprocess.run(
            [CLI, "token", "add", "--registry", "local", "--index", reg.index_url],
            input=reg.issue_token("me") + "\n",
            env=app_env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert add2.returncode == 0, add2.stderr
        (entry,) = json.loads(run_cli(app_env, "watch", "list", "--json").stdout)
        assert entry["needs_new_token"] is False
        outputs = [p.stdout + p.stderr for p in (add, unconfirmed, revoked, again, add2)]
        hits = scan(token, paths=[app_env.dirs.root, tmp_path], texts=outputs)
        assert hits == [], hits


def test_a_publish_approved_while_the_pass_fetches_raises_nothing(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The approval is on record before its token leaves the app, and so before the version
    can be in the index: the pass must read the audit log after the index, not before."""
    from registry_tools import bearer_publish

    from gui_approver.core import watch as watch_mod

    world.watch.add("local", ["wa-race"], world.reg.index_url)
    world.watch.run_once()
    real = watch_mod.Fetcher.get_conditional

    def approve_and_publish_first(self: Any, url: str, *args: Any, **kw: Any) -> Any:
        if url.endswith("/wa-race"):
            crate = b"raced"
            import hashlib

            world.approve("publish", "wa-race", "0.1.0", hashlib.sha256(crate).hexdigest())
            assert bearer_publish(world.reg, world.token, "wa-race", "0.1.0", crate)[0] == 200
        return real(self, url, *args, **kw)

    monkeypatch.setattr(watch_mod.Fetcher, "get_conditional", approve_and_publish_first)
    result = world.watch.run_once()
    assert (result.new_alerts, result.errors) == ([], [])

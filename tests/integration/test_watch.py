"""The watch (gui_approver.core.watch, ``gui-approver watch``): against the real demo registry
over loopback, with out-of-band publishes and yanks made by the real cargo (``cargo:token``
from another CARGO_HOME), and the audit log written by the real AuditLog."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from leakscan import scan
from registry_tools import CARGO, TokenCargo, call, token_cargo

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

CLI = str(Path(sys.executable).parent / "gui-approver")
needs_cargo = pytest.mark.skipif(CARGO is None, reason="cargo is not on PATH")


class World:
    """A token-mode demo registry, a watch with its own state dir, and an audit log."""

    def __init__(self, tmp: Path, reg: DemoRegistry) -> None:
        self.tmp = tmp
        self.reg = reg
        self.state = tmp / "state"
        self.audit = AuditLog(self.state / "audit.jsonl")
        self.watch = Watch(self.state, timeout=5.0)
        self.token = reg.issue_token("ci")
        self._cargo: TokenCargo | None = None

    @property
    def cargo(self) -> TokenCargo:
        """The other machine: publishes with the same token through cargo:token."""
        if self._cargo is None:
            self._cargo = token_cargo(self.tmp / "elsewhere", self.reg, self.token)
        return self._cargo

    def publish(self, crate: str, vers: str) -> str:
        """Publish out of band with the real cargo; returns the registry's cksum."""
        path = self.tmp / "elsewhere" / crate
        if not path.exists():
            path = self.cargo.new_crate(crate)
        manifest = path / "Cargo.toml"
        text = manifest.read_text()
        manifest.write_text(re.sub(r'(?m)^version = ".*"$', f'version = "{vers}"', text, count=1))
        proc = self.cargo.publish(path)
        assert proc.returncode == 0, proc.stderr
        (entry,) = [e for e in self.reg.crates()[crate] if e["vers"] == vers]
        return str(entry["cksum"])

    def yank(self, crate: str, vers: str, undo: bool = False) -> None:
        args = ["yank", "--registry", "local", "--version", vers, crate]
        proc = self.cargo.cargo(*args, *(["--undo"] if undo else []), cwd=self.tmp)
        assert proc.returncode == 0, proc.stderr

    def approve(self, op: str, crate: str, vers: str, cksum: str | None = None) -> None:
        """The record SigningService writes when a mutation was approved and released."""
        self.audit.record(
            event="get", registry="local", index_url=self.reg.index_url, operation=op,
            crate=crate, version=vers, cksum=cksum, decision="signed",
            reason="approved in the dialog", key_id="k3.pid.test",
        )

    def served_since(self, n: int) -> list[str]:
        return [f"{s.status} {s.path}" for s in list(self.reg.served)[n:]]


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    with DemoRegistry(tmp_path / "registry", token_mode=True) as reg:
        yield World(tmp_path, reg)


# ----------------------------------------------------------------------------- units


def test_index_path_and_fetch_base(monkeypatch: pytest.MonkeyPatch) -> None:
    assert [index_path(n) for n in ("a", "ab", "abc", "Abcd", "serde")] == [
        "1/a", "2/ab", "3/a/abc", "ab/cd/abcd", "se/rd/serde",
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
        event="get", registry="local", index_url="sparse+http://127.0.0.1:9/index/",
        operation="publish", crate="a1", version="1.0.0", cksum="0" * 64, decision="signed")
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


@needs_cargo
@pytest.mark.e2e
def test_out_of_band_publish_raises_exactly_one_alert(world: World) -> None:
    cksum = world.publish("wa-one", "0.1.0")
    world.approve("publish", "wa-one", "0.1.0", cksum)
    first = world.watch.run_once()
    assert (first.exit_code, first.new_alerts, first.errors) == (0, [], [])  # the baseline
    assert first.requests == 2  # config.json + the crate's file

    world.publish("wa-one", "0.2.0")  # nobody approved this here
    second = world.watch.run_once()
    assert second.errors == []
    assert [(a.crate, a.version, a.kind) for a in second.new_alerts] == [
        ("wa-one", "0.2.0", "unapproved-version")
    ]
    alert = second.new_alerts[0]
    assert alert.message.startswith("wa-one 0.2.0 appeared on local at ")
    assert alert.message.endswith("but was never approved on this machine")
    assert second.exit_code == 1 and second.open_alerts == [alert]

    # still open on the next pass (printed again), but raised only once
    third = world.watch.run_once()
    assert third.new_alerts == [] and [a.id for a in third.open_alerts] == [alert.id]
    stored = json.loads((world.state / "alerts.json").read_text())["alerts"]
    assert len(stored) == 1 and stored[0]["notified"] is False
    world.watch.mark_notified([alert.id])
    assert world.watch.alerts()[0].notified is True

    # "It was me": closed, and the next pass is clean
    world.watch.mark_expected(alert.id)
    assert world.watch.run_once().exit_code == 0
    assert world.watch.alerts(include_handled=True)[0].status == "expected"


@needs_cargo
@pytest.mark.e2e
def test_approved_publish_raises_none_and_wrong_cksum_does(world: World) -> None:
    world.watch.add("local", ["wa-ok"], world.reg.index_url)
    assert world.watch.run_once().exit_code == 0  # baseline of a crate not published yet
    cksum = world.publish("wa-ok", "1.0.0")
    world.approve("publish", "wa-ok", "1.0.0", cksum)
    result = world.watch.run_once()
    assert (result.exit_code, result.new_alerts) == (0, [])

    cksum2 = world.publish("wa-ok", "1.1.0")
    world.approve("publish", "wa-ok", "1.1.0", "f" * 64)  # approved other bytes
    assert cksum2 != "f" * 64
    mismatch = world.watch.run_once()
    assert [(a.version, a.kind) for a in mismatch.new_alerts] == [("1.1.0", "checksum-mismatch")]


@needs_cargo
@pytest.mark.e2e
def test_unapproved_yank_raises_one_and_approved_yank_none(world: World) -> None:
    cksum = world.publish("wa-yank", "0.1.0")
    world.approve("publish", "wa-yank", "0.1.0", cksum)
    cksum2 = world.publish("wa-yank", "0.2.0")
    world.approve("publish", "wa-yank", "0.2.0", cksum2)
    assert world.watch.run_once().exit_code == 0

    world.yank("wa-yank", "0.1.0")  # nobody approved it
    yanked = world.watch.run_once()
    assert [(a.version, a.kind, a.yanked) for a in yanked.new_alerts] == [
        ("0.1.0", "unapproved-yank", True)
    ]
    assert "was yanked on local at" in yanked.new_alerts[0].message

    world.approve("yank", "wa-yank", "0.2.0")
    world.yank("wa-yank", "0.2.0")
    again = world.watch.run_once()
    assert again.new_alerts == [] and len(again.open_alerts) == 1


@needs_cargo
@pytest.mark.e2e
def test_second_pass_uses_etag_and_gets_304(world: World) -> None:
    cksum = world.publish("wa-etag", "0.1.0")
    world.approve("publish", "wa-etag", "0.1.0", cksum)
    world.watch.run_once()
    n = len(world.reg.served)
    result = world.watch.run_once()
    assert (result.requests, result.not_modified) == (2, 2)
    assert world.served_since(n) == [
        "304 /index/config.json", f"304 /index/{index_path('wa-etag')}"
    ]
    sent = list(world.reg.served)[n:]
    assert all("If-None-Match" in s.request_headers for s in sent)
    assert all("If-Modified-Since" in s.request_headers for s in sent)
    assert result.bytes == 0
    assert len({s.peer for s in sent}) == 1  # one kept-alive connection for the whole pass


def test_one_connection_per_pass_for_many_crates(world: World) -> None:
    names = [f"wa-many-{i}" for i in range(12)]
    world.watch.add("local", names, world.reg.index_url)
    result = world.watch.run_once()
    assert (result.requests, result.errors) == (13, [])
    sent = list(world.reg.served)
    assert [s.status for s in sent] == [200] + [404] * 12
    assert len({s.peer for s in sent}) == 1


@needs_cargo
@pytest.mark.e2e
def test_published_elsewhere_switch_silences_a_crate(world: World) -> None:
    world.watch.add("local", ["wa-ci"], world.reg.index_url)
    world.watch.run_once()
    world.publish("wa-ci", "0.1.0")
    (alert,) = world.watch.run_once().new_alerts
    world.watch.mark_expected(alert.id, elsewhere=True)
    assert world.watch.elsewhere(world.reg.index_url) == {"wa-ci"}
    world.publish("wa-ci", "0.2.0")
    world.yank("wa-ci", "0.1.0")
    assert world.watch.run_once().exit_code == 0


@needs_cargo
@pytest.mark.e2e
def test_yank_action_runs_cargo_yank(world: World) -> None:
    world.watch.add("local", ["wa-act"], world.reg.index_url)
    world.watch.run_once()
    world.publish("wa-act", "0.3.0")
    (alert,) = world.watch.run_once().new_alerts
    assert world.watch.yank_command(alert) == [
        "cargo", "yank", "--registry", "local", "--version", "0.3.0", "wa-act"
    ]

    def run(cmd: list[str]) -> subprocess.CompletedProcess[str]:
        # the same command, in the CARGO_HOME that knows registry "local"
        return subprocess.run(cmd, env=world.cargo.env, capture_output=True, text=True,
                              timeout=60, check=False, cwd=world.tmp)

    proc = world.watch.yank(alert.id, run)
    assert proc.returncode == 0, proc.stderr
    assert world.reg.crates()["wa-act"][0]["yanked"] is True
    assert world.watch.alerts() == []
    assert world.watch.alerts(include_handled=True)[0].status == "yanked"


@needs_cargo
@pytest.mark.e2e
def test_revoke_token_makes_the_registry_reject_it(world: World) -> None:
    deleted: list[bool] = []
    world.watch.revoke_token(world.reg.index_url, Secret(world.token),
                             on_revoked=lambda: deleted.append(True))
    assert deleted == [True]
    assert world.watch.needs_new_token(world.reg.index_url)
    refused = call(world.reg, "DELETE", "/api/v1/tokens/current",
                   headers={"Authorization": world.token})
    assert refused.status == 403
    # cargo with that token is refused too, and shows why
    path = world.cargo.new_crate("wa-after")
    proc = world.cargo.publish(path)
    assert proc.returncode != 0 and "the token has been revoked" in proc.stderr
    # a second revoke fails with the registry's reason; nothing is deleted
    with pytest.raises(WatchError, match="revoked"):
        world.watch.revoke_token(world.reg.index_url, Secret(world.token),
                                 on_revoked=lambda: deleted.append(True))
    assert deleted == [True]


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


@needs_cargo
@pytest.mark.e2e
def test_malformed_index_file_is_an_error_and_raises_no_alert(world: World) -> None:
    cksum = world.publish("wa-bad", "0.1.0")
    world.approve("publish", "wa-bad", "0.1.0", cksum)
    world.watch.run_once()
    path = world.reg.data_dir / "index" / index_path("wa-bad")
    good = path.read_bytes()
    path.write_bytes(good + b'{"name":"wa-bad","vers":"0.9.9","cksum":"nope"}\n')
    os.utime(path, (path.stat().st_mtime + 5,) * 2)
    result = world.watch.run_once()
    assert result.exit_code == 2 and result.new_alerts == []
    assert "bad index file" in result.errors[0] and "line 2" in result.errors[0]
    assert world.watch.alerts() == []
    # the state was not updated from the bad file: once it is fixed, nothing is raised
    path.write_bytes(good)
    os.utime(path, (path.stat().st_mtime + 10,) * 2)
    assert world.watch.run_once().exit_code == 0


def test_damaged_alerts_file_is_a_clear_error(world: World) -> None:
    world.state.mkdir(parents=True, exist_ok=True)
    (world.state / "alerts.json").write_text("{broken")
    with pytest.raises(WatchError, match="damaged"):
        world.watch.alerts()


# ------------------------------------------------------------------------------ CLI


def run_cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([CLI, *args], env=env, capture_output=True, text=True, timeout=60,
                          check=False)


@pytest.fixture
def cli_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GUI_APPROVER")}
    env["XDG_STATE_HOME"] = str(tmp_path / "xdg-state")
    return env


@needs_cargo
@pytest.mark.e2e
def test_cli_watch_once_exit_codes_and_json(world: World, cli_env: dict[str, str]) -> None:
    state = Path(cli_env["XDG_STATE_HOME"]) / "gui-approver"
    world.state, world.audit = state, AuditLog(state / "audit.jsonl")
    cksum = world.publish("wa-cli", "0.1.0")
    world.approve("publish", "wa-cli", "0.1.0", cksum)

    listed = run_cli(cli_env, "watch", "list", "--json")
    assert json.loads(listed.stdout) == [{
        "registry": "local", "index_url": world.reg.index_url, "crates": ["wa-cli"],
        "published_elsewhere": [], "needs_new_token": False,
    }]
    base = run_cli(cli_env, "watch", "--once")
    assert base.returncode == 0, base.stderr
    assert "no alerts (1 crate(s) in 1 registry checked)" in base.stdout

    world.publish("wa-cli", "0.2.0")
    hit = run_cli(cli_env, "watch", "--once", "--registry", "local", "--json")
    assert hit.returncode == 1, hit.stderr
    doc = json.loads(hit.stdout)
    (alert,) = doc["alerts"]
    assert doc["new"] == [alert["id"]] and doc["errors"] == []
    assert (alert["crate"], alert["version"], alert["kind"]) == ("wa-cli", "0.2.0",
                                                                "unapproved-version")
    # raised earlier, still printed by a later pass
    text = run_cli(cli_env, "watch", "--once")
    assert text.returncode == 1
    assert f"ALERT {alert['id']}: wa-cli 0.2.0 appeared on local at" in text.stdout

    assert run_cli(cli_env, "watch", "expect", alert["id"]).returncode == 0
    assert run_cli(cli_env, "watch", "--once").returncode == 0
    unknown = run_cli(cli_env, "watch", "--once", "--registry", "nope")
    assert unknown.returncode == 2 and "no watched registry is named 'nope'" in unknown.stderr
    bad = run_cli(cli_env, "watch", "expect", "0000")
    assert bad.returncode == 2 and "no alert '0000'" in bad.stderr


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


@needs_cargo
@pytest.mark.e2e
def test_crates_io_is_read_from_its_sparse_index(world: World) -> None:
    """cargo names crates.io github.com/rust-lang/crates.io-index; the watch reads the sparse
    index (here redirected to the local registry)."""
    gh = "https://github.com/rust-lang/crates.io-index"
    world.publish("wa-cio", "0.1.0")
    world.audit.record(event="get", registry="crates-io", index_url=gh, operation="publish",
                       crate="wa-cio", version="0.1.0", cksum="0" * 64, decision="signed")
    watch = Watch(world.state, crates_io_index=world.reg.index_url)
    n = len(world.reg.served)
    first = watch.run_once("crates-io")
    assert first.errors == [] and first.registries == 1
    assert world.served_since(n) == ["200 /index/config.json",
                                     f"200 /index/{index_path('wa-cio')}"]
    world.publish("wa-cio", "0.2.0")
    (alert,) = watch.run_once().new_alerts
    assert alert.message.startswith("wa-cio 0.2.0 appeared on crates-io at")
    assert watch.yank_command(alert)[2:4] == ["--registry", "crates-io"]


# ------------------------------------------------ the real service writes the approvals


@needs_cargo
@pytest.mark.e2e
def test_publish_approved_through_the_bridge_raises_none_out_of_band_one(
    app_env: Any, tmp_path: Path
) -> None:
    """The audit records come from the real app (headless, --auto-approve-loopback) signing
    for the real cargo through the bridge; the out-of-band publish from another CARGO_HOME
    with its own key (cargo:paseto) is the only alert."""
    from envtools import wait_for
    from factories import KeyPair
    from registry_tools import make_cargo_env

    from gui_approver.core import ipc
    from gui_approver.registry.verify import RegisteredKey

    with DemoRegistry(tmp_path / "registry") as reg:
        key = run_cli(app_env, "key", "new", "--registry", "local", "--index", reg.index_url,
                      "--json")
        assert key.returncode == 0, key.stderr
        reg.add_key(RegisteredKey(public=json.loads(key.stdout)["public"]))
        cc = run_cli(app_env, "configure-cargo", "--registry", "local", "--index",
                     reg.index_url)
        assert cc.returncode == 0, cc.stderr
        app = subprocess.Popen([CLI, "app", "--no-gui", "--auto-approve-loopback"],
                               env=app_env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            wait_for(lambda: ipc.ping() is not None, timeout=10, what="the headless app")
            crate = tmp_path / "ours"
            (crate / "src").mkdir(parents=True)
            (crate / "src" / "lib.rs").write_text("")

            def publish_here(vers: str) -> None:
                (crate / "Cargo.toml").write_text(
                    f'[package]\nname = "wa-real"\nversion = "{vers}"\nedition = "2021"\n'
                    'license = "MIT"\ndescription = "x"\n')
                pub = subprocess.run(
                    ["cargo", "publish", "--registry", "local", "--no-verify", "--allow-dirty"],
                    cwd=crate, env=app_env, capture_output=True, text=True, timeout=120,
                    check=False)
                assert pub.returncode == 0, pub.stderr

            publish_here("0.1.0")
            base = run_cli(app_env, "watch", "--once")
            assert base.returncode == 0, base.stdout + base.stderr
            assert "1 crate(s) in 1 registry" in base.stdout
            publish_here("0.2.0")  # approved: no alert
            approved = run_cli(app_env, "watch", "--once", "--json")
            assert approved.returncode == 0, approved.stdout + approved.stderr
            assert json.loads(approved.stdout)["alerts"] == []

            other = KeyPair()
            reg.add_key(other.registered())
            elsewhere = make_cargo_env(tmp_path / "elsewhere", reg, other, subject=None)
            theirs = elsewhere.new_crate("wa-real")
            manifest = theirs / "Cargo.toml"
            manifest.write_text(manifest.read_text().replace('version = "0.1.0"',
                                                             'version = "0.3.0"'))
            elsewhere.publish(theirs)
            hit = run_cli(app_env, "watch", "--once", "--json")
            assert hit.returncode == 1, hit.stdout + hit.stderr
            alerts = json.loads(hit.stdout)["alerts"]
            assert [(a["crate"], a["version"], a["kind"]) for a in alerts] == [
                ("wa-real", "0.3.0", "unapproved-version")
            ]
        finally:
            app.send_signal(15)
            app.wait(10)
            if app.stderr:
                app.stderr.close()


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
    return b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n%s\r\n%s" % (len(body), head.encode(),
                                                                    body)


def test_gzip_index_files_are_read_and_bombs_refused(tmp_path: Path) -> None:
    import gzip

    from gui_approver.core.watch import MAX_INDEX_BYTES, Fetcher

    line = b'{"name":"gz","vers":"1.0.0","cksum":"' + b"c" * 64 + b'","yanked":false}\n'
    bomb = gzip.compress(b"\n" * (MAX_INDEX_BYTES + 10))
    listener, port, seen = _one_shot_server([
        _http(gzip.compress(line), "Content-Encoding: gzip"),
        _http(bomb, "Content-Encoding: gzip"),
        _http(b"x", "Content-Encoding: br"),
    ])
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
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body),
                                                                                   body))

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
        add = subprocess.run([CLI, "token", "add", "--registry", "local", "--index",
                              reg.index_url], input=token + "\n", env=app_env,
                             capture_output=True, text=True, timeout=60, check=False)
        assert add.returncode == 0, add.stderr
        assert run_cli(app_env, "watch", "add", "--registry", "local", "wa-rv").returncode == 0
        unconfirmed = run_cli(app_env, "watch", "revoke", "--registry", "local")
        assert unconfirmed.returncode == 2 and "--yes" in unconfirmed.stderr
        assert call(reg, "DELETE", "/api/v1/tokens/current",
                    headers={"Authorization": reg.issue_token()}).status == 204  # registry ok
        revoked = run_cli(app_env, "watch", "revoke", "--registry", "local", "--yes")
        assert revoked.returncode == 0, revoked.stderr
        assert "Revoked the bearer token sha256:" in revoked.stdout
        assert token not in revoked.stdout + revoked.stderr
        assert call(reg, "DELETE", "/api/v1/tokens/current",
                    headers={"Authorization": token}).status == 403
        listed = json.loads(run_cli(app_env, "token", "list", "--json").stdout)
        assert listed == []
        (entry,) = json.loads(run_cli(app_env, "watch", "list", "--json").stdout)
        assert entry["needs_new_token"] is True
        again = run_cli(app_env, "watch", "revoke", "--registry", "local", "--yes")
        assert again.returncode == 1 and "keeps no bearer token" in again.stderr
        add2 = subprocess.run([CLI, "token", "add", "--registry", "local", "--index",
                               reg.index_url], input=reg.issue_token("me") + "\n", env=app_env,
                              capture_output=True, text=True, timeout=60, check=False)
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

"""The watch with the real cargo: out-of-band publishes and yanks from another CARGO_HOME
(``cargo:token``), the alerts they raise or do not, the CLI, and approvals written by the real
service behind the real bridge."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
from registry_tools import call
from watch_tools import CLI, World, needs_cargo, run_cli

from gui_approver.core.audit import AuditLog
from gui_approver.core.watch import (
    Watch,
    WatchError,
    index_path,
)
from gui_approver.registry.server import DemoRegistry
from gui_approver.secret import Secret


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
        "304 /index/config.json",
        f"304 /index/{index_path('wa-etag')}",
    ]
    sent = list(world.reg.served)[n:]
    assert all("If-None-Match" in s.request_headers for s in sent)
    assert all("If-Modified-Since" in s.request_headers for s in sent)
    assert result.bytes == 0
    assert len({s.peer for s in sent}) == 1  # one kept-alive connection for the whole pass


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
        "cargo",
        "yank",
        "--registry",
        "local",
        "--version",
        "0.3.0",
        "wa-act",
    ]

    def run(cmd: list[str]) -> subprocess.CompletedProcess[str]:
        # the same command, in the CARGO_HOME that knows registry "local"
        return subprocess.run(
            cmd,
            env=world.cargo.env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
            cwd=world.tmp,
        )

    proc = world.watch.yank(alert.id, run)
    assert proc.returncode == 0, proc.stderr
    assert world.reg.crates()["wa-act"][0]["yanked"] is True
    assert world.watch.alerts() == []
    assert world.watch.alerts(include_handled=True)[0].status == "yanked"


@needs_cargo
@pytest.mark.e2e
def test_revoke_token_makes_the_registry_reject_it(world: World) -> None:
    deleted: list[bool] = []
    world.watch.revoke_token(
        world.reg.index_url, Secret(world.token), on_revoked=lambda: deleted.append(True)
    )
    assert deleted == [True]
    assert world.watch.needs_new_token(world.reg.index_url)
    refused = call(
        world.reg, "DELETE", "/api/v1/tokens/current", headers={"Authorization": world.token}
    )
    assert refused.status == 403
    # cargo with that token is refused too, and shows why
    path = world.cargo.new_crate("wa-after")
    proc = world.cargo.publish(path)
    assert proc.returncode != 0 and "the token has been revoked" in proc.stderr
    # a second revoke fails with the registry's reason; nothing is deleted
    with pytest.raises(WatchError, match="revoked"):
        world.watch.revoke_token(
            world.reg.index_url, Secret(world.token), on_revoked=lambda: deleted.append(True)
        )
    assert deleted == [True]


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


@needs_cargo
@pytest.mark.e2e
def test_cli_watch_once_exit_codes_and_json(world: World, cli_env: dict[str, str]) -> None:
    state = Path(cli_env["XDG_STATE_HOME"]) / "gui-approver"
    world.state, world.audit = state, AuditLog(state / "audit.jsonl")
    cksum = world.publish("wa-cli", "0.1.0")
    world.approve("publish", "wa-cli", "0.1.0", cksum)

    listed = run_cli(cli_env, "watch", "list", "--json")
    assert json.loads(listed.stdout) == [
        {
            "registry": "local",
            "index_url": world.reg.index_url,
            "crates": ["wa-cli"],
            "published_elsewhere": [],
            "needs_new_token": False,
        }
    ]
    base = run_cli(cli_env, "watch", "--once")
    assert base.returncode == 0, base.stderr
    assert "no alerts (1 crate(s) in 1 registry checked)" in base.stdout

    world.publish("wa-cli", "0.2.0")
    hit = run_cli(cli_env, "watch", "--once", "--registry", "local", "--json")
    assert hit.returncode == 1, hit.stderr
    doc = json.loads(hit.stdout)
    (alert,) = doc["alerts"]
    assert doc["new"] == [alert["id"]] and doc["errors"] == []
    assert (alert["crate"], alert["version"], alert["kind"]) == (
        "wa-cli",
        "0.2.0",
        "unapproved-version",
    )
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


@needs_cargo
@pytest.mark.e2e
def test_crates_io_is_read_from_its_sparse_index(world: World) -> None:
    """cargo names crates.io github.com/rust-lang/crates.io-index; the watch reads the sparse
    index (here redirected to the local registry)."""
    gh = "https://github.com/rust-lang/crates.io-index"
    world.publish("wa-cio", "0.1.0")
    world.audit.record(
        event="get",
        registry="crates-io",
        index_url=gh,
        operation="publish",
        crate="wa-cio",
        version="0.1.0",
        cksum="0" * 64,
        decision="signed",
    )
    watch = Watch(world.state, crates_io_index=world.reg.index_url)
    n = len(world.reg.served)
    first = watch.run_once("crates-io")
    assert first.errors == [] and first.registries == 1
    assert world.served_since(n) == ["200 /index/config.json", f"200 /index/{index_path('wa-cio')}"]
    world.publish("wa-cio", "0.2.0")
    (alert,) = watch.run_once().new_alerts
    assert alert.message.startswith("wa-cio 0.2.0 appeared on crates-io at")
    assert watch.yank_command(alert)[2:4] == ["--registry", "crates-io"]


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
        key = run_cli(
            app_env, "key", "new", "--registry", "local", "--index", reg.index_url, "--json"
        )
        assert key.returncode == 0, key.stderr
        reg.add_key(RegisteredKey(public=json.loads(key.stdout)["public"]))
        cc = run_cli(app_env, "configure-cargo", "--registry", "local", "--index", reg.index_url)
        assert cc.returncode == 0, cc.stderr
        app = subprocess.Popen(
            [CLI, "app", "--no-gui", "--auto-approve-loopback"],
            env=app_env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        try:
            wait_for(lambda: ipc.ping() is not None, timeout=10, what="the headless app")
            crate = tmp_path / "ours"
            (crate / "src").mkdir(parents=True)
            (crate / "src" / "lib.rs").write_text("")

            def publish_here(vers: str) -> None:
                (crate / "Cargo.toml").write_text(
                    f'[package]\nname = "wa-real"\nversion = "{vers}"\nedition = "2021"\n'
                    'license = "MIT"\ndescription = "x"\n'
                )
                pub = subprocess.run(
                    ["cargo", "publish", "--registry", "local", "--no-verify", "--allow-dirty"],
                    cwd=crate,
                    env=app_env,
                    capture_output=True,
                    text=True,
                    timeout=120,
                    check=False,
                )
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
            manifest.write_text(
                manifest.read_text().replace('version = "0.1.0"', 'version = "0.3.0"')
            )
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

"""Issue #14, Major 2 and 3: the CLI checks what the GUI checks, asks before changing an
existing index, uses a key's recorded index, and `key rotate --confirm` asks the registry
first (subprocess CLI, real keychain, the real demo registry)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from envtools import gui_approver as cli

from gui_approver.core import validate
from gui_approver.registry.server import DemoRegistry
from gui_approver.registry.verify import RegisteredKey

CLI = str(Path(sys.executable).parent / "gui-approver")
LOCAL = "sparse+http://127.0.0.1:8765/index/"


def keys(env):
    return json.loads(cli(env, "key", "list", "--json").stdout)


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--registry", "bad name", "--index", LOCAL], "may contain only letters"),
        (["--registry", "x" * 65, "--index", LOCAL], "longer than 64 characters"),
        (["--registry", "ok", "--index", "ftp://x/index/"], "is not an index URL"),
        (["--registry", "ok", "--index", "notaurl"], "is not an index URL"),
        (["--registry", "ok", "--index", "sparse+ssh://x/index/"], "sparse index"),
    ],
)
def test_key_new_refuses_what_the_gui_refuses(app_env, args, needle):
    r = cli(app_env, "key", "new", *args)
    assert r.returncode == 1 and needle in r.stderr, r.stderr
    assert "nothing was changed" in r.stderr and "hint:" in r.stderr
    assert keys(app_env) == []
    # ... with exactly the GUI's sentence (one check for both).
    name, index = args[1], args[3]
    gui = validate.registry_name_problem(name) or validate.index_url_problem(index)
    assert gui is not None and gui in r.stderr


def test_configure_cargo_refuses_a_bad_index_and_writes_nothing(app_env):
    config = Path(app_env["CARGO_HOME"]) / "config.toml"
    r = cli(app_env, "configure-cargo", "--registry", "my-reg", "--index", "notaurl")
    assert r.returncode == 1 and "is not an index URL" in r.stderr, r.stderr
    assert not config.exists()


def test_configure_cargo_without_index_uses_the_keys_index(app_env):
    assert cli(app_env, "key", "new", "--registry", "mine", "--index", LOCAL).returncode == 0
    r = cli(app_env, "configure-cargo", "--registry", "mine")
    assert r.returncode == 0, r.stderr
    text = (Path(app_env["CARGO_HOME"]) / "config.toml").read_text()
    assert f'index = "{LOCAL}"' in text


def test_changing_an_existing_index_needs_yes_without_a_tty(app_env):
    config = Path(app_env["CARGO_HOME"]) / "config.toml"
    config.write_text(f'[registries.mine]\nindex = "{LOCAL}"\n')
    other = "sparse+http://127.0.0.1:8766/index/"
    r = cli(app_env, "configure-cargo", "--registry", "mine", "--index", other)
    assert r.returncode == 1 and "already has the index" in r.stderr, r.stderr
    assert "--yes" in r.stderr
    assert config.read_text() == f'[registries.mine]\nindex = "{LOCAL}"\n'
    r = cli(app_env, "configure-cargo", "--registry", "mine", "--index", other, "--yes")
    assert r.returncode == 0, r.stderr
    assert other in config.read_text()


def test_configure_cargo_help_explains_every_option(app_env):
    out = cli(app_env, "configure-cargo", "--help").stdout
    for opt in ("--registry NAME", "--index URL", "--dry-run", "--yes"):
        assert opt in out
    assert "the index its key was made for" in " ".join(out.split())


def test_delete_says_when_the_key_last_signed(app_env):
    assert cli(app_env, "key", "new", "--registry", "mine", "--index", LOCAL).returncode == 0
    r = cli(app_env, "key", "delete", "--registry", "mine")
    assert r.returncode == 1 and "--yes" in r.stderr
    assert len(keys(app_env)) == 1


def test_rotate_confirm_asks_the_registry_first(app_env, tmp_path):
    registry = DemoRegistry(tmp_path / "reg")
    registry.start()
    try:
        index = registry.index_url
        first = json.loads(
            cli(app_env, "key", "new", "--registry", "demo", "--index", index, "--json").stdout
        )
        registry.add_key(RegisteredKey(public=first["public"]))
        rot = json.loads(cli(app_env, "key", "rotate", "--registry", "demo", "--json").stdout)
        # Not registered yet: refused, the old key stays.
        r = cli(app_env, "key", "rotate", "--registry", "demo", "--confirm")
        assert r.returncode == 1, r.stdout
        assert "refused a read signed with the new key (HTTP 401)" in r.stderr
        assert first["kip"] in r.stderr and "--no-check" in r.stderr
        assert {k["kip"]: k["status"] for k in keys(app_env)} == {
            first["kip"]: "active",
            rot["new"]["kip"]: "pending",
        }
        # Registered: the registry accepts it, and the switch happens.
        registry.add_key(RegisteredKey(public=rot["new"]["public"]))
        r = cli(app_env, "key", "rotate", "--registry", "demo", "--confirm")
        assert r.returncode == 0, r.stderr
        assert "accepted a read signed with the new key" in r.stderr
        assert [(k["kip"], k["status"]) for k in keys(app_env)] == [(rot["new"]["kip"], "active")]
    finally:
        registry.stop()


def test_configure_diff_header_says_now_not_new_for_an_existing_file(app_env):
    config = Path(app_env["CARGO_HOME"]) / "config.toml"
    fresh = cli(app_env, "configure-cargo", "--registry", "mine", "--index", LOCAL, "--dry-run")
    assert "config.toml (does not exist yet)" in fresh.stdout
    config.write_text("# mine\n")
    r = cli(app_env, "configure-cargo", "--registry", "mine", "--index", LOCAL, "--dry-run")
    head = r.stdout.splitlines()[:2]
    assert head[0].endswith("config.toml (now)") and head[1].endswith("(after this change)")
    assert "(new)" not in r.stdout


def test_key_list_aligns_columns_on_a_tty_and_keeps_tabs_in_a_pipe(app_env):
    import os
    import pty

    assert cli(app_env, "key", "new", "--registry", "a", "--index", LOCAL).returncode == 0
    assert (
        cli(
            app_env,
            "key",
            "new",
            "--registry",
            "long-registry-name",
            "--index",
            LOCAL + "x/",
            "--subject",
            "alice",
        ).returncode
        == 0
    )
    piped = cli(app_env, "key", "list").stdout.splitlines()
    assert all(line.count("\t") == 8 for line in piped)
    leader, follower = pty.openpty()
    try:
        proc = subprocess.run(
            [CLI, "key", "list"],
            env=app_env,
            stdout=follower,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            timeout=60,
        )
        assert proc.returncode == 0, proc.stderr
        os.close(follower)
        follower = -1
        out = b""
        while True:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # EIO: the child closed the terminal
                break
            if not chunk:
                break
            out += chunk
    finally:
        os.close(leader)
        if follower >= 0:
            os.close(follower)
    lines = out.decode().replace("\r\n", "\n").splitlines()
    assert len(lines) == 3 and "\t" not in out.decode()
    # Every column starts at the same offset on every line.
    starts = [lines[0].index(h) for h in ("KIND", "KEY ID", "SUBJECT", "CREATED")]
    for line in lines[1:]:
        assert line[starts[0] :].startswith("asymmetric")
        assert line[starts[1] :].startswith("k3.pid.")

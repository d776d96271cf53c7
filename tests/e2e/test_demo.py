"""`gui-approver demo`: the real cargo, the real demo registry, a throwaway gnome-keyring;
and proof that the user's own HOME, ~/.cargo, XDG dirs and keychain are left untouched."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import envtools
import pytest

from gui_approver.demo import run as demo

CLI = str(Path(sys.executable).parent / "gui-approver")
# Where the real toolchain lives, read before any fixture swaps HOME or XDG dirs.
RUSTUP_HOME = os.environ.get("RUSTUP_HOME") or str(Path.home() / ".rustup")
CARGO = shutil.which("cargo")


class User:
    """A pretend user: HOME with a ~/.cargo, XDG dirs, a keychain with a key in it."""

    def __init__(self, root: Path, keychain: envtools.SecretService) -> None:
        self.root = root
        self.home = root / "home"
        self.tmpdir = envtools.make_runtime_dir("gat-demo-tmp-")  # short: the demo's sockets
        cargo_home = self.home / ".cargo"
        cargo_home.mkdir(parents=True)
        (cargo_home / "config.toml").write_text(
            '[registries.mine]\nindex = "sparse+https://example.invalid/index/"\n'
        )
        (cargo_home / "credentials.toml").write_text('[registry]\ntoken = "users-own"\n')
        xdg = {
            name: self.home / sub
            for name, sub in (
                ("XDG_CONFIG_HOME", ".config"),
                ("XDG_DATA_HOME", ".local/share"),
                ("XDG_STATE_HOME", ".local/state"),
                ("XDG_CACHE_HOME", ".cache"),
            )
        }
        for d in xdg.values():
            d.mkdir(parents=True)
        (xdg["XDG_CONFIG_HOME"] / "gui-approver").mkdir()
        (xdg["XDG_CONFIG_HOME"] / "gui-approver" / "keys.json").write_text(
            '{"version": 1, "keys": []}\n'
        )
        self.keychain = keychain
        self.env = envtools.clean_base_env()
        self.env.update({k: str(v) for k, v in xdg.items()})
        self.env.update(
            HOME=str(self.home),
            TMPDIR=str(self.tmpdir),
            RUSTUP_HOME=RUSTUP_HOME,
            # What a user's shell might carry; the demo must not follow any of it.
            CARGO_HOME=str(cargo_home),
            CARGO_REGISTRIES_MINE_TOKEN="users-own",
            GUI_APPROVER_RUNTIME_DIR=str(self.home / "never-used"),
            PATH=os.pathsep.join(
                [
                    str(Path(sys.executable).parent),
                    os.path.dirname(CARGO or "/usr/bin/cargo"),
                    os.environ.get("PATH", "/usr/bin:/bin"),
                ]
            ),
        )
        self.env.update(keychain.env)  # DBUS_SESSION_BUS_ADDRESS + XDG_RUNTIME_DIR

    def watched(self) -> list[Path]:
        return [self.home, self.keychain.runtime_dir, self.keychain.keyring.home]

    def snapshot(self) -> dict[str, tuple[str, int]]:
        out = {}
        for top in self.watched():
            for p in sorted(top.rglob("*")):
                st = p.lstat()
                kind = (
                    "file:" + hashlib.sha256(p.read_bytes()).hexdigest()
                    if p.is_file() and not p.is_symlink()
                    else "other"
                )
                out[str(p)] = (kind, st.st_mtime_ns)
        return out

    def cleanup(self) -> None:
        shutil.rmtree(self.tmpdir, ignore_errors=True)


def keychain_items() -> list[tuple[str, dict[str, str]]]:
    """Every item in the (pretend) user's keychain, read over its D-Bus."""
    import secretstorage

    conn = secretstorage.dbus_init()
    try:
        coll = secretstorage.get_default_collection(conn)
        return sorted((i.get_label(), dict(i.get_attributes())) for i in coll.get_all_items())
    finally:
        conn.close()


def processes_mentioning(text: str) -> list[str]:
    hits = []
    for p in Path("/proc").iterdir():
        if not p.name.isdigit():
            continue
        try:
            blob = (p / "cmdline").read_bytes() + (p / "environ").read_bytes()
        except OSError:
            continue
        if text.encode() in blob:
            hits.append(f"{p.name}: {(p / 'cmdline').read_bytes()[:200]!r}")
    return hits


def demo_root(stderr: str) -> str:
    m = re.search(r"demo: working in (\S+) \(removed at the end\)", stderr)
    assert m, stderr
    return m.group(1)


@pytest.fixture
def user(tmp_path, secret_service):
    import keyring

    # The user already has a gui-approver key of their own in their keychain.
    keyring.set_password("gui-approver", "k3.pid.users-own-key", "k3.secret.users-own")
    u = User(tmp_path / "user", secret_service)
    yield u
    u.cleanup()


@pytest.mark.e2e
@pytest.mark.slow
def test_unattended_demo_publishes_and_touches_nothing_of_the_user(user):
    assert CARGO, "cargo is needed"
    items_before = keychain_items()
    before = user.snapshot()
    # The snapshot covers the user's keyring file and cargo config (so "unchanged" means it).
    assert any(k.endswith("/keyrings/login.keyring") for k in before), sorted(before)
    assert any(k.endswith("/.cargo/credentials.toml") for k in before)

    result = subprocess.run(
        [CLI, "demo", "--unattended", "--json"],
        env=user.env,
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 0, result.stderr

    res = json.loads(result.stdout)
    assert (res["crate"], res["version"]) == (demo.CRATE_NAME, demo.CRATE_VERSION)
    assert re.fullmatch(r"[0-9a-f]{64}", res["cksum"])
    assert res["index_entry"]["cksum"] == res["cksum"] and not res["index_entry"]["yanked"]
    assert res["index_url"].startswith("sparse+http://127.0.0.1:")
    assert res["tokens_accepted"] >= 1 and res["tokens_rejected"] == 0
    assert res["public_key"].startswith("k3.public.")
    assert res["seconds"] < 60
    assert "Published hello-gui-approver v0.1.0" in result.stderr  # cargo's own words

    # Everything the demo made is gone: its directory, and every process it started.
    root = demo_root(result.stderr)
    assert root.startswith(str(user.tmpdir)) and not os.path.exists(root)
    assert list(user.tmpdir.iterdir()) == []
    assert processes_mentioning(root) == []
    # Nothing of the user's changed: HOME (~/.cargo, XDG dirs), the runtime dir, the keychain.
    assert user.snapshot() == before
    assert keychain_items() == items_before
    assert [a["username"] for _l, a in items_before] == ["k3.pid.users-own-key"]


@pytest.mark.gui
@pytest.mark.e2e
@pytest.mark.slow
def test_demo_shows_the_real_dialog_and_cleans_up_on_sigterm(user, xvfb_display):
    env = dict(user.env, DISPLAY=xvfb_display.display, QT_QPA_PLATFORM="xcb")
    before = user.snapshot()
    err_log = user.root / "demo.err"
    with open(err_log, "w") as err:
        proc = subprocess.Popen(
            [CLI, "demo"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=err,
            stdin=subprocess.DEVNULL,
            text=True,
            start_new_session=True,
        )
    try:

        def dialog() -> list[str]:
            out = subprocess.run(
                ["xdotool", "search", "--onlyvisible", "--name", demo.CRATE_NAME],
                env=env,
                capture_output=True,
                text=True,
            )
            assert proc.poll() is None, err_log.read_text()
            return out.stdout.split()

        # The real approval dialog for the demo crate is on the screen.
        envtools.wait_for(dialog, 60, what="the approval dialog")
        root = demo_root(err_log.read_text())
        assert processes_mentioning(root)  # its keychain, app, cargo and bridge are running
        # The user gives up: Ctrl-C / SIGTERM. Everything must still be cleaned up.
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
    assert proc.returncode == 130, err_log.read_text()
    assert "removed " + root in err_log.read_text()
    assert not os.path.exists(root)
    assert processes_mentioning(root) == []
    assert user.snapshot() == before


def test_demo_refuses_without_gnome_keyring_and_leaves_nothing(user, tmp_path):
    # A PATH with cargo but without dbus-daemon / gnome-keyring-daemon.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    assert CARGO
    (bin_dir / "cargo").symlink_to(CARGO)
    env = dict(user.env, PATH=str(bin_dir))
    result = subprocess.run(
        [CLI, "demo", "--unattended"], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 1
    assert "needs dbus-daemon and gnome-keyring-daemon" in result.stderr
    assert "apt-get install dbus gnome-keyring" in result.stderr
    assert list(user.tmpdir.iterdir()) == []


def test_demo_env_drops_everything_that_reaches_the_users_session(tmp_path):
    dirs = demo.DemoDirs(tmp_path / "root")
    base = {
        "HOME": "/home/u",
        "PATH": "/usr/bin",
        "DISPLAY": ":0",
        "WAYLAND_DISPLAY": "wayland-0",
        "XDG_RUNTIME_DIR": "/run/user/1000",
        "DBUS_SESSION_BUS_ADDRESS": "unix:path=/x",
        "GNOME_KEYRING_CONTROL": "/run/user/1000/keyring",
        "PYTHON_KEYRING_BACKEND": "x",
        "CARGO_HOME": "/home/u/.cargo",
        "CARGO_REGISTRY_TOKEN": "t",
        "CARGO_TARGET_DIR": "/t",
        "GUI_APPROVER_RUNTIME_DIR": "/run/user/1000/gui-approver",
        "GUI_APPROVER_APP_COMMAND": "evil",
        "RUSTUP_HOME": "/home/u/.rustup",
    }
    env = demo.demo_env(base, dirs, {"DBUS_SESSION_BUS_ADDRESS": "unix:path=/private"})
    assert env["DBUS_SESSION_BUS_ADDRESS"] == "unix:path=/private"
    assert env["CARGO_HOME"] == str(dirs.cargo_home)
    assert env["XDG_RUNTIME_DIR"] == str(dirs.runtime)
    assert env["WAYLAND_DISPLAY"] == "/run/user/1000/wayland-0"  # still the user's screen
    assert env["DISPLAY"] == ":0" and env["RUSTUP_HOME"] == "/home/u/.rustup"
    assert env["GUI_APPROVER_NO_AUTOSTART"] == "1"
    for gone in (
        "GNOME_KEYRING_CONTROL",
        "PYTHON_KEYRING_BACKEND",
        "CARGO_REGISTRY_TOKEN",
        "CARGO_TARGET_DIR",
        "GUI_APPROVER_RUNTIME_DIR",
        "GUI_APPROVER_APP_COMMAND",
    ):
        assert gone not in env
    for key in ("XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_STATE_HOME", "XDG_CACHE_HOME"):
        assert env[key].startswith(str(dirs.root))


def test_demo_crate_is_a_valid_package(tmp_path):
    assert CARGO
    crate = demo.write_crate(tmp_path)
    result = subprocess.run(
        [CARGO, "package", "--list", "--allow-dirty", "--offline"],
        cwd=crate,
        capture_output=True,
        text=True,
        env=dict(os.environ, CARGO_HOME=str(tmp_path / "ch"), RUSTUP_HOME=RUSTUP_HOME),
    )
    assert result.returncode == 0, result.stderr
    assert "src/lib.rs" in result.stdout.split()

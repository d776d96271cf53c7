"""Packaging: every subcommand's --help, the wheel/sdist installed with pipx, and the
PyInstaller one-folder bundle built with `make bundle` and driven against a real keychain."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
import zipfile
from pathlib import Path
from typing import Any

import envtools
import pytest
from factories import cargo_request

from gui_approver import __version__
from gui_approver.cli.main import build_parser
from gui_approver.client import paths

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
# Read at import time, before the autouse fixture points XDG_CACHE_HOME at an empty dir:
# pip's real cache, so installing PySide6 into a fresh venv does not download it each run.
PIP_CACHE = os.environ.get("PIP_CACHE_DIR") or str(
    Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "pip"
)


def subcommand_paths() -> list[list[str]]:
    """Every command path of the CLI: [], ["app"], ["key"], ["key", "new"], ..."""
    paths: list[list[str]] = []

    def walk(parser: argparse.ArgumentParser, prefix: list[str]) -> None:
        paths.append(prefix)
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    walk(sub, [*prefix, name])

    walk(build_parser(), [])
    return paths


PATHS = subcommand_paths()


def test_cli_has_the_issue_7_commands():
    names = {" ".join(p) for p in PATHS}
    assert {"demo", "autostart", "desktop"} <= names


@pytest.mark.parametrize("path", PATHS, ids=lambda p: " ".join(p) or "(top)")
def test_every_subcommand_has_help(path):
    result = subprocess.run(
        [str(BIN / "gui-approver"), *path, "--help"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: gui-approver")
    assert result.stderr == ""


def test_version_of_both_entry_points():
    for exe, name in (
        ("gui-approver", "gui-approver"),
        ("cargo-credential-gui-approver", "cargo-credential-gui-approver"),
    ):
        result = subprocess.run([str(BIN / exe), "--version"], capture_output=True, text=True)
        assert result.returncode == 0
        assert result.stdout.strip() == f"{name} {__version__}"


# -- wheel + sdist + pipx ------------------------------------------------------------------------


def copy_source(dest: Path) -> Path:
    """The files a release is built from (not the developer's build/, .venv, caches)."""
    dest.mkdir(parents=True)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, dest / name)
    shutil.copytree(
        REPO / "gui_approver",
        dest / "gui_approver",
        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),
    )
    return dest


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_wheel_and_sdist_install_with_pipx(tmp_path):
    src = copy_source(tmp_path / "src")
    dist = tmp_path / "dist"
    env = dict(os.environ, PIP_CACHE_DIR=PIP_CACHE)
    # Builds the sdist, then the wheel *from the sdist*: proves the sdist is complete.
    build = subprocess.run(
        [sys.executable, "-m", "build", "--outdir", str(dist), str(src)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
    (wheel,) = dist.glob("gui_approver-*.whl")
    (sdist,) = dist.glob("gui_approver-*.tar.gz")
    assert sdist.stat().st_size > 0
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        entry_points = zf.read(f"gui_approver-{__version__}.dist-info/entry_points.txt")
    assert "gui_approver/desktop/integration.py" in names and "gui_approver/demo/run.py" in names
    assert "gui_approver/desktop/icons/idle-22.png" in names
    assert "gui_approver/desktop/icons/app.svg" in names
    assert b"gui-approver = gui_approver.cli.main:main" in entry_points
    assert b"cargo-credential-gui-approver = gui_approver.client.bridge:main" in entry_points

    pipx_env = dict(
        env,
        PIPX_HOME=str(tmp_path / "pipx"),
        PIPX_BIN_DIR=str(tmp_path / "bin"),
        PIPX_MAN_DIR=str(tmp_path / "man"),
    )
    install = subprocess.run(
        [sys.executable, "-m", "pipx", "install", str(wheel)],
        capture_output=True,
        text=True,
        env=pipx_env,
        timeout=480,
    )
    assert install.returncode == 0, install.stdout[-3000:] + install.stderr[-3000:]
    app = tmp_path / "bin" / "gui-approver"
    bridge = tmp_path / "bin" / "cargo-credential-gui-approver"
    for exe in (app, bridge):
        out = subprocess.run([str(exe), "--version"], capture_output=True, text=True)
        assert out.returncode == 0, out.stderr
        assert out.stdout.strip() == f"{exe.name} {__version__}"

    # The installed app finds the installed bridge (what configure-cargo writes for cargo),
    # and its autostart entry runs the installed app, both inside pipx's venv.
    venv_bin = tmp_path / "pipx" / "venvs" / "gui-approver" / "bin"
    cargo_home = tmp_path / "cargo-home"
    dry = subprocess.run(
        [
            str(app),
            "configure-cargo",
            "--registry",
            "r",
            "--index",
            "sparse+http://127.0.0.1:1/index/",
            "--dry-run",
        ],
        capture_output=True,
        text=True,
        env=dict(env, CARGO_HOME=str(cargo_home)),
    )
    assert dry.returncode == 0, dry.stderr
    assert f'credential-provider = ["{venv_bin / "cargo-credential-gui-approver"}"]' in dry.stdout
    auto = subprocess.run(
        [str(app), "autostart", "enable"], capture_output=True, text=True, env=env
    )
    assert auto.returncode == 0, auto.stderr
    entry = Path(os.environ["XDG_CONFIG_HOME"]) / "autostart" / "gui-approver.desktop"
    assert f"Exec={venv_bin / 'gui-approver'} app" in entry.read_text()
    icon = subprocess.run(
        [
            str(venv_bin / "python"),
            "-c",
            "from gui_approver.desktop.integration import icon_path; "
            "print(icon_path('pending', 22))",
        ],
        capture_output=True,
        text=True,
    )
    assert icon.returncode == 0 and Path(icon.stdout.strip()).is_file(), icon.stderr


# -- the PyInstaller bundle ----------------------------------------------------------------------


def _timed(argv: list[str], env: dict[str, str] | None = None, **kw) -> tuple[float, str]:
    t0 = time.perf_counter()
    result = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=60, **kw)
    elapsed = time.perf_counter() - t0
    assert result.returncode == 0, result.stdout + result.stderr
    return elapsed, result.stdout


def _read_request(index_url: str) -> str:
    return json.dumps(cargo_request(index_url=index_url)) + "\n"


def _bridge_read(bridge: Path, env: dict[str, str], index_url: str) -> tuple[float, dict[str, Any]]:
    elapsed, out = _timed([str(bridge), "--cargo-plugin"], env=env, input=_read_request(index_url))
    hello, answer = out.splitlines()
    assert json.loads(hello) == {"v": [1]}
    return elapsed, json.loads(answer)


@pytest.mark.slow
@pytest.mark.bundle
@pytest.mark.timeout(900)
def test_bundle_builds_and_works_against_the_real_keychain(tmp_path, app_env):
    dist, work = tmp_path / "dist", tmp_path / "work"
    t0 = time.monotonic()
    make = subprocess.run(
        ["make", "-C", str(REPO), "bundle", f"BUNDLE_DIST={dist}", f"BUNDLE_WORK={work}"],
        capture_output=True,
        text=True,
        timeout=840,
        env=dict(os.environ, PIP_CACHE_DIR=PIP_CACHE),
    )
    build_seconds = time.monotonic() - t0
    assert make.returncode == 0, make.stdout[-4000:] + make.stderr[-4000:]

    bundle = dist / "gui-approver"
    app, bridge = bundle / "gui-approver", bundle / "cargo-credential-gui-approver"
    # Both executables side by side (the bridge starts its sibling; configure-cargo finds
    # the bridge beside the app).
    assert app.is_file() and os.access(app, os.X_OK)
    assert bridge.is_file() and os.access(bridge, os.X_OK)
    everything = list(bundle.rglob("*"))
    assert [p for p in everything if p.is_symlink() and not p.exists()] == []  # no dangling
    files = [p for p in everything if p.is_file() and not p.is_symlink()]
    size_mb = sum(p.stat().st_size for p in files) / 2**20
    names = {p.name for p in files}
    # Left out: Qt's GTK platform theme and the host GTK stack it would drag in.
    assert "libqgtk3.so" not in names
    assert not {n for n in names if n.startswith(("libgtk-3", "libgdk-3", "libpango-"))}
    assert "libqxcb.so" in names and "libqoffscreen.so" in names and "libqsvg.so" in names
    assert (bundle / "_internal" / "gui_approver" / "desktop" / "icons" / "idle-22.png").is_file()

    # The bridge executable carries no Qt, crypto, keyring or PASETO code.
    from PyInstaller.archive.readers import CArchiveReader

    pyz = CArchiveReader(str(bridge)).open_embedded_archive("PYZ.pyz")
    heavy = {
        n
        for n in pyz.toc
        if n.split(".")[0]
        in ("PySide6", "shiboken6", "cryptography", "keyring", "pyseto", "jeepney")
    }
    assert heavy == set()
    ours = {n for n in pyz.toc if n.startswith("gui_approver")}
    # only what cargo starts: the client package and the two stdlib-only leaf modules
    assert "gui_approver.client.protocol" in ours
    assert ours <= {"gui_approver", "gui_approver.errors", "gui_approver.secret"} | {
        n for n in ours if n == "gui_approver.client" or n.startswith("gui_approver.client.")
    }

    env = dict(app_env)
    env["PATH"] = "/usr/bin:/bin"  # nothing from the venv: the bundle must stand alone
    env.pop("VIRTUAL_ENV", None)
    app_first, out = _timed([str(app), "--version"], env=env)
    assert out.strip() == f"gui-approver {__version__}"
    bridge_first, out = _timed([str(bridge), "--version"], env=env)
    assert out.strip() == f"cargo-credential-gui-approver {__version__}"
    app_warm = statistics.median(_timed([str(app), "--version"], env=env)[0] for _ in range(5))
    bridge_warm = statistics.median(
        _timed([str(bridge), "--version"], env=env)[0] for _ in range(5)
    )

    # A key made by the bundled CLI, in the real keychain of app_env.
    index_url = "sparse+http://127.0.0.1:9/index/"
    _t, out = _timed(
        [str(app), "key", "new", "--registry", "local", "--index", index_url, "--json"], env=env
    )
    record = json.loads(out)
    assert record["public"].startswith("k3.public.")

    # 1) The bundled app started headless; the bundled bridge gets a read token from it.
    sock_dir = paths.socket_dir(env)
    t0 = time.monotonic()
    proc = envtools.spawn(
        [str(app), "app", "--no-gui"], env=env, log_path=tmp_path / "app-nogui.log"
    )
    try:
        envtools.wait_for(
            lambda: os.path.exists(os.path.join(sock_dir, paths.SOCKET_NAME)),
            30,
            what="the bundled app's socket",
        )
        nogui_ready = time.monotonic() - t0
        read_first, answer = _bridge_read(bridge, env, index_url)
        assert answer["Ok"]["kind"] == "get" and answer["Ok"]["token"].startswith("v3.public.")
        read_warm = statistics.median(_bridge_read(bridge, env, index_url)[0] for _ in range(5))
    finally:
        envtools.stop_process(proc)

    # 2) No app running: the bundled bridge auto-starts its sibling, the Qt app (offscreen).
    envtools.wait_for(
        lambda: (
            not os.path.exists(os.path.join(sock_dir, paths.SOCKET_NAME)) or _no_answer(sock_dir)
        ),
        10,
        what="the headless app to be gone",
    )
    t0 = time.monotonic()
    _elapsed, answer = _bridge_read(bridge, env, index_url)
    autostart_read = time.monotonic() - t0
    try:
        assert answer["Ok"]["token"].startswith("v3.public."), answer
    finally:
        from gui_approver.core import ipc

        pong = ipc.ping(sock_dir)
        assert pong is not None, "the auto-started app is not answering"
        pid = pong["pid"]
        assert isinstance(pid, int), pong
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        assert cmdline[0] == str(app).encode() and b"--started-by-bridge" in cmdline
        os.kill(pid, 15)
        envtools.wait_for(
            lambda: not Path(f"/proc/{pid}").exists() or b"zombie" in _proc_state(pid),
            15,
            what="the app to quit",
        )

    # 3) The frozen app's own desktop integration: Exec is the bundled executable, and the
    #    icon it names is the one inside the bundle.
    auto = subprocess.run(
        [str(app), "autostart", "enable"], env=env, capture_output=True, text=True, timeout=60
    )
    assert auto.returncode == 0, auto.stderr
    entry = (Path(env["XDG_CONFIG_HOME"]) / "autostart" / "gui-approver.desktop").read_text()
    assert f"Exec={app} app" in entry
    icon = Path(entry.split("Icon=", 1)[1].splitlines()[0])
    assert icon.is_file() and bundle in icon.parents

    # 4) The whole demo from the bundle: its throwaway keychain, the bundled app (headless)
    #    and bridge, the real cargo (found in ~/.cargo/bin: PATH has only /usr/bin:/bin).
    t0 = time.monotonic()
    demo = subprocess.run(
        [str(app), "demo", "--unattended", "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    demo_seconds = time.monotonic() - t0
    assert demo.returncode == 0, demo.stderr
    assert json.loads(demo.stdout)["tokens_accepted"] >= 1
    assert "Published hello-gui-approver v0.1.0" in demo.stderr

    metrics = {
        "bundle_size_mb": round(size_mb, 1),
        "bundled_demo_seconds": round(demo_seconds, 1),
        "build_seconds": round(build_seconds, 1),
        "app_version_first_s": round(app_first, 3),
        "app_version_warm_s": round(app_warm, 3),
        "bridge_version_first_s": round(bridge_first, 3),
        "bridge_version_warm_s": round(bridge_warm, 3),
        "app_nogui_socket_ready_s": round(nogui_ready, 3),
        "bridge_read_first_s": round(read_first, 3),
        "bridge_read_warm_s": round(read_warm, 3),
        "bridge_read_with_qt_app_autostart_s": round(autostart_read, 3),
    }
    print("bundle metrics:", json.dumps(metrics))
    # Loose bounds, only to catch a bundle that has gone badly wrong.
    assert size_mb < 250
    assert bridge_warm < 1.0


def _no_answer(sock_dir: str) -> bool:
    from gui_approver.core import ipc

    return ipc.ping(sock_dir, timeout=0.5) is None


def _proc_state(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/status").read_bytes().lower()
    except OSError:
        return b"zombie"


# -- the untested macOS / Windows files: at least well-formed and consistent ---------------------


def test_macos_launch_agent_plist():
    import plistlib

    from gui_approver.desktop.integration import APP_ID

    with open(REPO / "packaging" / "macos" / f"{APP_ID}.plist", "rb") as fh:
        plist = plistlib.load(fh)
    assert plist["Label"] == APP_ID
    assert plist["ProgramArguments"][0].endswith("gui-approver.app/Contents/MacOS/gui-approver")
    assert plist["ProgramArguments"][1:] == ["app"]
    assert plist["RunAtLoad"] is True and plist["LimitLoadToSessionType"] == "Aqua"


@pytest.mark.parametrize("spec", sorted((REPO / "packaging").rglob("*.spec")), ids=lambda p: p.name)
def test_pyinstaller_specs_compile(spec):
    compile(spec.read_text(), str(spec), "exec")
    text = spec.read_text()
    # Every spec builds both executables into one folder.
    assert 'name="cargo-credential-gui-approver"' in text and "COLLECT(" in text
    assert str(spec.relative_to(REPO)).startswith("packaging/") and (
        "UNTESTED" in text or spec.parent.name == "pyinstaller"
    )

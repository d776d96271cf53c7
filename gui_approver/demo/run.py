"""``gui-approver demo``: a real publish, approved in the real dialog, touching nothing of yours.

Everything the demo uses is throwaway and lives in one temporary directory that is removed
at the end (also on Ctrl-C or SIGTERM):

* a private ``dbus-daemon`` session bus with its own ``gnome-keyring-daemon`` (unlocked with a
  random password), so the demo key lives in a real Secret Service keychain, but not yours;
* its own XDG config/data/state/cache dirs and XDG_RUNTIME_DIR (so its app instance, socket
  and key index are separate from a gui-approver you may be running), and its own CARGO_HOME
  (so your ``~/.cargo/config.toml`` and credentials are never read or written);
* the demo registry (``gui_approver.registry.server.DemoRegistry``) on 127.0.0.1, which verifies
  every token;
* a small generated crate, published with the real ``cargo publish``.

The app is the real one (``gui-approver app``), so the real approval dialog appears on your
screen. ``--unattended`` runs it as ``app --no-gui --auto-approve-loopback`` instead, for tests
and machines without a screen. Qt is never imported here.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO, TypeVar

from gui_approver.demo.keychain import (
    Child,
    DemoError,
    PrivateKeychain,
    spawn,
    start_private_keychain,
    wait_until,
)

T = TypeVar("T")

REGISTRY_NAME = "gui-approver-demo"
CRATE_NAME = "hello-gui-approver"
CRATE_VERSION = "0.1.0"
#: Variables that would connect a child to your real session's keychain, cargo or app.
_LEAKY_VARS = frozenset(
    {
        "DBUS_SESSION_BUS_ADDRESS",
        "DBUS_STARTER_ADDRESS",
        "DBUS_STARTER_BUS_TYPE",
        "PYTHON_KEYRING_BACKEND",
        "GNOME_KEYRING_CONTROL",
        "GNOME_KEYRING_PID",
        "KDE_FULL_SESSION",
        "KDE_SESSION_VERSION",
    }
)
_LEAKY_PREFIXES = ("CARGO_", "GUI_APPROVER_", "KEYRING_")


def _say(msg: str, err: TextIO | None = None) -> None:
    stream = err or sys.stderr
    stream.write(f"demo: {msg}\n")
    stream.flush()


# -- the throwaway keychain ----------------------------------------------------------------


def _start_keychain(root: Path, runtime: Path) -> PrivateKeychain:
    if not sys.platform.startswith("linux") or not (
        shutil.which("dbus-daemon") and shutil.which("gnome-keyring-daemon")
    ):
        raise DemoError(
            "the demo needs dbus-daemon and gnome-keyring-daemon to make a throwaway "
            "keychain (it never uses your own keychain)",
            hint="on Debian/Ubuntu: sudo apt-get install dbus gnome-keyring",
        )
    return start_private_keychain(root, password=secrets.token_urlsafe(24), runtime_dir=runtime)


# -- environment and helpers ---------------------------------------------------------------


@dataclass
class DemoDirs:
    root: Path
    runtime: Path = field(init=False)
    cargo_home: Path = field(init=False)
    logs: Path = field(init=False)

    def __post_init__(self) -> None:
        self.runtime = self.root / "run"
        self.cargo_home = self.root / "cargo-home"
        self.logs = self.root / "logs"
        self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.runtime.mkdir(mode=0o700)
        self.cargo_home.mkdir()
        for name in ("config", "data", "state", "cache"):
            (self.root / "xdg" / name).mkdir(parents=True)


def make_root() -> Path:
    """A fresh private temporary directory with a short path (it holds Unix sockets)."""
    base = tempfile.gettempdir()
    # mkdtemp makes an unguessable 0700 dir, so a shared /tmp is safe as the parent.
    short = "/tmp"  # noqa: S108
    if len(base) > 40 and os.path.isdir(short):
        base = short
    root = Path(tempfile.mkdtemp(prefix="gui-approver-demo-", dir=base))
    root.chmod(0o700)
    return root


def demo_env(
    base: Mapping[str, str],
    dirs: DemoDirs,
    keychain_env: Mapping[str, str],
) -> dict[str, str]:
    """``base`` without anything that reaches your keychain, cargo config or app, pointed at
    the demo's directories and keychain. The display (X11/Wayland) stays, for the dialog."""
    env = {
        k: v for k, v in base.items() if k not in _LEAKY_VARS and not k.startswith(_LEAKY_PREFIXES)
    }
    wayland = env.get("WAYLAND_DISPLAY")
    real_runtime = base.get("XDG_RUNTIME_DIR")
    if wayland and not os.path.isabs(wayland) and real_runtime:
        # XDG_RUNTIME_DIR changes below; an absolute WAYLAND_DISPLAY keeps the compositor.
        env["WAYLAND_DISPLAY"] = os.path.join(real_runtime, wayland)
    env.update(
        XDG_RUNTIME_DIR=str(dirs.runtime),
        XDG_CONFIG_HOME=str(dirs.root / "xdg" / "config"),
        XDG_DATA_HOME=str(dirs.root / "xdg" / "data"),
        XDG_STATE_HOME=str(dirs.root / "xdg" / "state"),
        XDG_CACHE_HOME=str(dirs.root / "xdg" / "cache"),
        CARGO_HOME=str(dirs.cargo_home),
        CARGO_TERM_COLOR="never",
        # If the demo's app died, the bridge must say so rather than start another one.
        GUI_APPROVER_NO_AUTOSTART="1",
        PYTHONUNBUFFERED="1",
    )
    env.update(keychain_env)
    return env


def self_command() -> list[str]:
    """How to run this very installation's ``gui-approver``."""
    if getattr(sys, "frozen", False):
        return [sys.executable]
    return [sys.executable, "-m", "gui_approver"]


def find_cargo() -> str:
    found = shutil.which("cargo")
    if found:
        return found
    home_cargo = Path.home() / ".cargo" / "bin" / "cargo"
    if home_cargo.is_file() and os.access(home_cargo, os.X_OK):
        return str(home_cargo)
    raise DemoError(
        "the demo runs the real `cargo publish`, and cargo is not installed",
        hint="install Rust with rustup (https://rustup.rs) and run the demo again",
    )


def write_crate(parent: Path, name: str = CRATE_NAME, version: str = CRATE_VERSION) -> Path:
    crate = parent / name
    (crate / "src").mkdir(parents=True)
    (crate / "Cargo.toml").write_text(
        "[package]\n"
        f'name = "{name}"\n'
        f'version = "{version}"\n'
        'edition = "2021"\n'
        'description = "A throwaway crate published by `gui-approver demo`"\n'
        'license = "MIT OR Apache-2.0"\n'
        f'publish = ["{REGISTRY_NAME}"]\n'
        "\n[dependencies]\n",
        "utf-8",
    )
    (crate / "src" / "lib.rs").write_text(
        "//! Published by `gui-approver demo` after a human (or --unattended) approved it.\n\n"
        "/// Says hello.\n"
        "pub fn hello() -> &'static str {\n"
        '    "hello from a crate whose publish you approved"\n'
        "}\n",
        "utf-8",
    )
    return crate


def _run_cli(args: list[str], env: Mapping[str, str], what: str, timeout: float = 60.0) -> str:
    result = subprocess.run(
        [*self_command(), *args],
        env=dict(env),
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    if result.returncode != 0:
        raise DemoError(
            f"{what} failed (exit {result.returncode}): {(result.stderr or result.stdout).strip()}"
        )
    return result.stdout


def _fetch(url: str, timeout: float = 10.0) -> bytes:
    if not url.startswith("http://127.0.0.1:"):
        raise DemoError(f"refusing to fetch {url}: the demo registry is on 127.0.0.1")
    import urllib.request  # only the demo needs it: keep the CLI's start light

    with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310 - loopback http
        data: bytes = resp.read()
        return data


def _has_display(env: Mapping[str, str]) -> bool:
    from gui_approver.client.display import display_problem

    return display_problem(env) is None


# -- the demo ------------------------------------------------------------------------------


def run_demo(*, unattended: bool, timeout: float, err: TextIO | None = None) -> dict[str, Any]:
    """Run the whole demo; returns what was published. Cleans up everything it made."""
    from gui_approver.client import paths
    from gui_approver.core import ipc
    from gui_approver.registry.server import DemoRegistry, index_path
    from gui_approver.registry.verify import RegisteredKey

    started = time.monotonic()
    cargo = find_cargo()
    if not unattended and not _has_display(os.environ):
        from gui_approver.client.display import NO_DISPLAY

        raise DemoError(
            f"the demo shows the approval dialog, but there is {NO_DISPLAY}",
            hint="run it in your desktop session, or pass --unattended",
        )
    root = make_root()
    keychain: PrivateKeychain | None = None
    registry: DemoRegistry | None = None
    app: Child | None = None
    cargo_proc: Child | None = None
    try:
        dirs = DemoDirs(root)
        _say(f"working in {root} (removed at the end)", err)
        keychain = _start_keychain(root / "keychain", dirs.runtime)
        _say("started a throwaway keychain (gnome-keyring on a private D-Bus)", err)
        env = demo_env(os.environ, dirs, keychain.env)

        registry = DemoRegistry(root / "registry", host="127.0.0.1", port=0)
        registry.start()
        index_url = registry.index_url
        _say(f"started the demo registry at {index_url}", err)

        record = json.loads(
            _run_cli(
                ["key", "new", "--registry", REGISTRY_NAME, "--index", index_url, "--json"],
                env,
                "creating the demo key",
            )
        )
        registry.add_key(RegisteredKey(public=record["public"]))
        _say(
            f"created a key in the throwaway keychain and registered {record['public'][:24]}...",
            err,
        )
        _run_cli(
            ["configure-cargo", "--registry", REGISTRY_NAME, "--index", index_url],
            env,
            "configuring the demo CARGO_HOME",
        )
        crate = write_crate(root / "src")

        app_args = ["app", "--no-gui", "--auto-approve-loopback"] if unattended else ["app"]
        app = spawn("gui-approver-app", [*self_command(), *app_args], env, dirs.logs)
        sock_dir = paths.socket_dir(env)
        wait_until(
            lambda: ipc.ping(sock_dir, timeout=1.0), 30.0, "the gui-approver app to listen", app
        )
        _say(f"started `gui-approver {' '.join(app_args)}`", err)
        if unattended:
            _say("--unattended: loopback publishes are approved without a dialog", err)
        else:
            _say(
                f"running `cargo publish` for {CRATE_NAME} {CRATE_VERSION}: a dialog asks you "
                "to approve it. Check the crate, version and checksum, then click Approve "
                "(it arms after a second; Deny shows a refused publish).",
                err,
            )

        cmd = [cargo, "publish", "--registry", REGISTRY_NAME, "--no-verify", "--allow-dirty"]
        cargo_proc = spawn("cargo-publish", cmd, env, dirs.logs, cwd=crate)
        try:
            rc = cargo_proc.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise DemoError(f"cargo publish did not finish within {timeout:g} s") from None
        output = cargo_proc.tail(6000)
        for line in output.splitlines():
            (err or sys.stderr).write(f"  cargo | {line}\n")
        if rc != 0:
            raise DemoError(f"cargo publish failed (exit {rc}); nothing was published")

        entries = [
            json.loads(line)
            for line in _fetch(f"{registry.api_url}/index/{index_path(CRATE_NAME)}")
            .decode()
            .splitlines()
            if line.strip()
        ]
        entry = next((e for e in entries if e.get("vers") == CRATE_VERSION), None)
        if entry is None:
            raise DemoError("cargo said it published, but the registry index has no entry")
        crate_file = registry.data_dir / "crates" / CRATE_NAME / f"{CRATE_VERSION}.crate"
        digest = hashlib.sha256(crate_file.read_bytes()).hexdigest()
        if digest != entry["cksum"]:
            raise DemoError("the stored .crate does not match the checksum in the index")
        result = {
            "crate": CRATE_NAME,
            "version": CRATE_VERSION,
            "cksum": entry["cksum"],
            "index_url": index_url,
            "index_entry": entry,
            "public_key": record["public"],
            "tokens_accepted": len(registry.accepted_tokens),
            "tokens_rejected": len(registry.rejections),
            "unattended": unattended,
        }
    finally:
        for child in (cargo_proc, app):
            if child is not None:
                child.stop()
        if registry is not None:
            registry.stop()
        if keychain is not None:
            keychain.stop()
        shutil.rmtree(root, ignore_errors=True)
        _say(f"stopped everything it started and removed {root}", err)
    result["seconds"] = round(time.monotonic() - started, 2)
    return result


def cmd_demo(args: argparse.Namespace) -> int:
    def on_term(_sig: int, _frame: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, on_term)
    try:
        result = run_demo(unattended=args.unattended, timeout=args.timeout)
    finally:
        signal.signal(signal.SIGTERM, previous)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(
            f"Published {result['crate']} {result['version']} to the demo registry "
            f"(sha256 {result['cksum']}) in {result['seconds']:.1f} s."
        )
        print(
            "The registry verified the token your approval produced. Everything the demo "
            "made is gone; your keychain and cargo configuration were never used."
        )
        print(
            "Next: `gui-approver key new --registry NAME --index URL` for a real registry "
            "(see the README)."
        )
    return 0


def add_parsers(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add ``demo``; it sets ``func`` (returns the exit code)."""
    p = subparsers.add_parser(
        "demo",
        help="publish a sample crate to a throwaway local registry, approved in the dialog",
        description="Start a throwaway keychain, registry, CARGO_HOME and app, run the real "
        "`cargo publish` of a generated crate so you approve it in the real "
        "dialog, then remove everything. Your own keychain and cargo config are "
        "never touched.",
    )
    p.add_argument(
        "--unattended",
        action="store_true",
        help="no dialog: run the app as `app --no-gui --auto-approve-loopback`",
    )
    p.add_argument(
        "--timeout",
        type=float,
        default=180.0,
        metavar="SECONDS",
        help="how long cargo publish may take, your approval included (default 180)",
    )
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=cmd_demo)

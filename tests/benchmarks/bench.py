#!/usr/bin/env python3
"""gui-approver benchmark: how fast cargo gets its answer, and what the app costs.

    make bench                         (or: .venv/bin/python tests/benchmarks/bench.py)
    .venv/bin/python tests/benchmarks/bench.py --runs 5 --only 1,5

Everything runs for real, side by side in one run, against a private keychain
(``envtools.start_secret_service``), private XDG/CARGO_HOME directories and a demo registry
on 127.0.0.1. Every figure is the median of repeated runs, with min and max. The table is
printed and written to ``bench-results.txt`` and ``bench-results.md`` (``--out``).

Two bridges are measured. The dev venv's ``.venv/bin/cargo-credential-gui-approver`` is an
*editable* install: setuptools' editable finder (a .pth file) imports pathlib, importlib.util,
fnmatch, re... into every interpreter that starts there, ~15-25 ms before our code runs.
A regular install (wheel, pipx) has no such finder, so the bench also lays the package out as
pip does for a regular install (a fresh ``venv --without-pip`` from the same base
interpreter, the package copied into its site-packages with bytecode, pip's console-script
text) and uses *that* bridge for rows 2, 3 and 6 (``--bridge dev`` to use the dev venv's).

Rows (targets from issue #6):
  1. bridge round trip, app warm, decision pre-made (``app --no-gui --auto-approve-loopback``),
     the whole bridge process started as cargo starts it: ``<bridge> --cargo-plugin``, request
     on stdin. Target <= 25 ms.
  2. ``cargo owner --list`` with our provider / with ``cargo:token``. Target <= 1.5x.
     The demo registry only takes asymmetric tokens; for this comparison it runs as a variant
     (``bench.py serve-registry``) that also accepts one plain token (a bench-only subclass).
  3. ``cargo publish --no-verify`` of one small crate (new version each run) with our provider
     / with ``cargo:paseto`` (``RUSTC_BOOTSTRAP=1 cargo -Z asymmetric-token``). Target <= 1.10x.
  4. request arrival at the app -> approval dialog painted (warm Qt app in this process,
     offscreen, the real GuiApp/QtApprover/ApprovalDialog). Target <= 100 ms.
  5. cold start until ping answers (``app --no-gui`` and the Qt ``app``, offscreen) and idle
     RSS (VmRSS from /proc). Targets <= 1.0 s and <= 80 MB.
  6. 200 concurrent ``read`` requests: as 200 bridge processes, and as 200 IPC clients (the
     app alone). Target <= 2 s, all answered.
  7. hardware keys (issue #13), on a private SoftHSM2 token: signing one token (median of 50)
     with a keychain key and with the token's key (logged in; the public key read back and
     compared, SHA-384 on the host, CKM_ECDSA on the token), and ``cargo publish`` end to end
     with a hardware key vs a keychain key (the same warm headless app, token logged in with
     ``gui-approver key unlock``). Skipped when SoftHSM2 is not installed.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import hmac
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from gui_approver.client import framing, paths

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests"))
VENV_BIN = Path(sys.executable).parent
PY = str(VENV_BIN / "python")
BRIDGE = str(VENV_BIN / "cargo-credential-gui-approver")
CLI = str(VENV_BIN / "gui-approver")
#: Long-lived helpers die with the bench even if it is killed (setpriv --pdeathsig TERM).
DIE_WITH_US = [p, "--pdeathsig", "TERM"] if (p := shutil.which("setpriv")) else []
PLAIN_TOKEN = "bench-plain-token-" + hashlib.sha256(b"bench").hexdigest()[:16]
CRATE = "benchcrate"


# ------------------------------------------------------------------------------- results


@dataclass
class Row:
    item: str
    what: str
    samples: list[float] = field(default_factory=list)
    unit: str = "ms"
    target: str = ""
    ok: bool | None = None
    note: str = ""
    value: float | None = None  # for ratios and single figures

    def figures(self) -> tuple[str, str, str]:
        if self.value is not None and not self.samples:
            return _fmt(self.value, self.unit), "", ""
        if not self.samples:
            return "TODO", "", ""
        return (
            _fmt(statistics.median(self.samples), self.unit),
            _fmt(min(self.samples), self.unit),
            _fmt(max(self.samples), self.unit),
        )

    @property
    def median(self) -> float:
        if self.value is not None and not self.samples:
            return self.value
        return statistics.median(self.samples)


def _fmt(v: float, unit: str) -> str:
    if unit == "x":
        return f"{v:.2f}x"
    if unit == "MB":
        return f"{v:.1f} MB"
    if unit == "s":
        return f"{v:.2f} s"
    return f"{v:.1f} ms"


def render(rows: list[Row], header: str) -> tuple[str, str]:
    cols = ["#", "measurement", "median", "min", "max", "target", "ok", "runs"]
    table = []
    for r in rows:
        med, lo, hi = r.figures()
        ok = "" if r.ok is None else ("yes" if r.ok else "NO")
        table.append(
            [r.item, r.what, med, lo, hi, r.target, ok, str(len(r.samples)) if r.samples else ""]
        )
    widths = [max(len(c), *(len(t[i]) for t in table)) for i, c in enumerate(cols)]
    lines = [header, ""]
    lines.append("  ".join(c.ljust(w) for c, w in zip(cols, widths, strict=True)))
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(v.ljust(w) for v, w in zip(t, widths, strict=True)) for t in table]
    notes = [f"[{r.item}] {r.note}" for r in rows if r.note]
    text = "\n".join(lines + (["", *notes] if notes else [])) + "\n"
    md = [
        header.replace("\n", "  \n"),
        "",
        "| " + " | ".join(cols) + " |",
        "|" + "|".join("---" for _ in cols) + "|",
    ]
    md += ["| " + " | ".join(v.replace("|", "/") for v in t) + " |" for t in table]
    if notes:
        md += ["", *(f"- {n}" for n in notes)]
    return text, "\n".join(md) + "\n"


# ------------------------------------------------------------------------------- helpers


def now() -> float:
    return time.perf_counter()


def wait_until(pred: Callable[[], Any], timeout: float, what: str, step: float = 0.001) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = pred()
        if value:
            return value
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(step)


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def ping(socket_dir: str) -> dict[str, Any] | None:
    from gui_approver.core import ipc

    return ipc.ping(socket_dir, timeout=0.5)


def read_request(index: str) -> dict[str, Any]:
    return {
        "v": 1,
        "registry": {"index-url": index, "name": "local"},
        "kind": "get",
        "operation": "read",
    }


def publish_request(index: str, n: int) -> dict[str, Any]:
    return {
        "v": 1,
        "registry": {"index-url": index, "name": "local"},
        "kind": "get",
        "operation": "publish",
        "name": "bench-x",
        "vers": f"9.9.{n}",
        "cksum": hashlib.sha256(str(n).encode()).hexdigest(),
    }


def bridge_once(
    env: dict[str, str], request: dict[str, Any], bridge: str | list[str] = BRIDGE
) -> tuple[float, dict[str, Any]]:
    """One bridge process as cargo runs it; the wall time from spawn to exit."""
    data = (json.dumps(request, separators=(",", ":")) + "\n").encode()
    cmd = [bridge] if isinstance(bridge, str) else list(bridge)
    t0 = now()
    proc = subprocess.run(
        [*cmd, "--cargo-plugin"], input=data, capture_output=True, env=env, check=False
    )
    elapsed = now() - t0
    lines = proc.stdout.decode().splitlines()
    if proc.returncode != 0 or len(lines) != 2:
        raise RuntimeError(f"bridge failed: {proc.stdout!r} {proc.stderr!r}")
    return elapsed, json.loads(lines[1])


def app_read_once(env: dict[str, str], request: dict[str, Any]) -> float:
    """One credential request straight to the app's socket: the app's own handling (framing,
    parsing, the service, signing, the audit record) without starting a process."""
    import socket

    from gui_approver.client import framing, paths

    path = os.path.join(paths.socket_dir(env), paths.SOCKET_NAME)
    message = framing.credential_ipc_message(request, framing.Provenance(pid=os.getpid()))
    t0 = now()
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.connect(path)
        sock.sendall(message)
        buf = b""
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            buf += chunk
            lines = buf.split(b"\n")
            if any(b'"type":"response"' in line for line in lines):
                break
    elapsed = now() - t0
    if b'"Ok"' not in buf:
        raise RuntimeError(f"the app refused the read: {buf!r}")
    return elapsed


CONSOLE_SCRIPT = """#!{python}
import sys
from gui_approver.client.bridge import main
if __name__ == '__main__':
    sys.argv[0] = sys.argv[0].removesuffix('.exe')
    sys.exit(main())
"""


def installed_layout(root: Path) -> str:
    """The bridge as a regular (non-editable) install lays it out; returns its path."""
    base = os.path.realpath(getattr(sys, "_base_executable", sys.executable))
    venv = root / "installed-venv"
    subprocess.run([base, "-m", "venv", "--without-pip", str(venv)], check=True)
    site = next((venv / "lib").glob("python3*/site-packages"))
    shutil.copytree(
        REPO / "gui_approver",
        site / "gui_approver",
        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),
    )
    subprocess.run([str(venv / "bin" / "python"), "-m", "compileall", "-q", str(site)], check=True)
    script = venv / "bin" / "cargo-credential-gui-approver"
    script.write_text(CONSOLE_SCRIPT.format(python=venv / "bin" / "python"))
    script.chmod(0o755)
    return str(script)


class App:
    """``gui-approver app ...`` as a subprocess."""

    def __init__(self, env: dict[str, str], *args: str, log: Path) -> None:

        self.socket_dir = paths.socket_dir(env)
        self.log = open(log, "ab")  # noqa: SIM115 - closed in stop()
        self.t0 = now()
        self.proc = subprocess.Popen(
            [*DIE_WITH_US, CLI, "app", *args],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def wait_ready(self, timeout: float = 30) -> float:
        def ready() -> bool:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"the app exited with {self.proc.returncode}; see {self.log.name}"
                )
            pong = ping(self.socket_dir)
            return pong is not None and pong.get("pid") == self.proc.pid

        wait_until(ready, timeout, "the app to answer ping")
        return now() - self.t0

    def stop(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        self.log.close()


# ------------------------------------------------------------------------------- registry variant


def serve_registry(args: argparse.Namespace) -> int:
    """The demo registry, plus one accepted plain token (bench-only, for row 2)."""
    from gui_approver.core.keys.store import SigningKey
    from gui_approver.registry.server import DemoRegistry
    from gui_approver.registry.verify import RegisteredKey

    plain_user = RegisteredKey(
        public=SigningKey.generate().public_paserk, subject="plain-token-user"
    )

    class PlainTokenRegistry(DemoRegistry):
        def _authorize(self, headers: Any, expected: Any) -> Any:
            token = headers.get("Authorization")
            if token is not None and hmac.compare_digest(
                token.strip().encode(), args.plain_token.encode()
            ):
                return plain_user
            return super()._authorize(headers, expected)

    registry = PlainTokenRegistry(Path(args.data), port=args.port, max_age=300)
    registry.start()
    print(f"index: {registry.index_url}", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stop.wait()
    registry.stop()
    return 0


# ------------------------------------------------------------------------------- the environment


class Bench:
    def __init__(self, root: Path, runs: int, bridge: str) -> None:
        import envtools

        self.root = root
        self.runs = runs
        self.installed_bridge = installed_layout(root)
        self.bridge = self.installed_bridge if bridge == "installed" else BRIDGE
        self.ss = envtools.start_secret_service(root / "keychain")
        self.dirs = envtools.make_app_dirs(root / "app", runtime_dir=self.ss.runtime_dir)
        self.env = envtools.app_env_for(self.dirs, keychain_env=self.ss.env)
        self.env["CARGO_TERM_COLOR"] = "never"
        self.env["CARGO_TERM_PROGRESS_WHEN"] = "never"
        self.bridge_env = {**self.env, "GUI_APPROVER_NO_AUTOSTART": "1"}
        self.registry: subprocess.Popen[str] | None = None
        self.index = ""
        self.app: App | None = None
        self.version = 0
        self.paseto_secret = ""
        # Row 7: a private SoftHSM2 token, known to the app through SOFTHSM2_CONF.
        self.hsm: Any = None
        try:
            import softhsm

            self.hsm = softhsm.make_softhsm(root / "softhsm")
            self.hsm.init_token("bench", pin=HW_PIN)
            self.env.update(self.hsm.env)
            self.bridge_env.update(self.hsm.env)
        except (RuntimeError, OSError, subprocess.CalledProcessError) as exc:
            print(f"7: no SoftHSM2 ({exc}); the hardware rows are skipped", file=sys.stderr)
            self.hsm = None

    def close(self) -> None:
        if self.app is not None:
            self.app.stop()
        if self.registry is not None and self.registry.poll() is None:
            self.registry.terminate()
            self.registry.wait(10)
        self.ss.stop()

    # -- set-up --------------------------------------------------------------------------
    def start_registry(self) -> None:
        data = self.root / "registry"
        self.registry = subprocess.Popen(
            [
                *DIE_WITH_US,
                PY,
                __file__,
                "serve-registry",
                "--data",
                str(data),
                "--plain-token",
                PLAIN_TOKEN,
            ],
            env=self.env,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.registry.stdout is not None
        line = self.registry.stdout.readline().strip()
        if not line.startswith("index: "):
            raise RuntimeError(f"the registry did not start: {line!r}")
        self.index = line.split(" ", 1)[1]
        self.registry_data = data

    def start_app(self) -> None:
        self.app = App(self.env, "--no-gui", "--auto-approve-loopback", log=self.root / "app.log")
        self.app.wait_ready()

    def setup_keys_and_cargo(self) -> None:
        from gui_approver.core.keys.store import SigningKey
        from gui_approver.registry.server import add_key_to_file
        from gui_approver.registry.verify import RegisteredKey

        out = subprocess.run(
            [CLI, "key", "new", "--registry", "local", "--index", self.index, "--json"],
            env=self.env,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        add_key_to_file(self.registry_data, RegisteredKey(public=json.loads(out)["public"]))
        paseto = SigningKey.generate()
        add_key_to_file(self.registry_data, RegisteredKey(public=paseto.public_paserk))
        self.paseto_secret = paseto.secret_paserk().expose()

        homes = {m: self.root / f"cargo-{m}" for m in ("ours", "token", "paseto")}
        for home in homes.values():
            home.mkdir()
        subprocess.run(
            [
                CLI,
                "configure-cargo",
                "--registry",
                "local",
                "--index",
                self.index,
                "--bridge",
                self.bridge,
            ],
            env={**self.env, "CARGO_HOME": str(homes["ours"])},
            check=True,
            capture_output=True,
        )
        for mode, provider, cred in (
            ("token", "cargo:token", f'token = "{PLAIN_TOKEN}"'),
            ("paseto", "cargo:paseto", f'secret-key = "{self.paseto_secret}"'),
        ):
            (homes[mode] / "config.toml").write_text(
                f'[registries.local]\nindex = "{self.index}"\ncredential-provider = "{provider}"\n'
            )
            cred_file = homes[mode] / "credentials.toml"
            cred_file.write_text(f"[registries.local]\n{cred}\n")
            cred_file.chmod(0o600)
        self.cargo_homes = homes

        crate = self.root / "crate"
        (crate / "src").mkdir(parents=True)
        (crate / "src" / "lib.rs").write_text("pub fn bench() -> u32 { 42 }\n")
        self.crate = crate
        self.write_manifest()
        # The first version (it also gives `cargo owner --list` something to list).
        self.publish("ours")

    def write_manifest(self) -> None:
        self.version += 1
        (self.crate / "Cargo.toml").write_text(
            f'[package]\nname = "{CRATE}"\nversion = "0.1.{self.version}"\nedition = "2021"\n'
            'description = "benchmark crate"\nlicense = "MIT"\n'
        )

    def cargo(self, mode: str, args: list[str], cwd: Path) -> float:
        env = {**self.env, "CARGO_HOME": str(self.cargo_homes[mode])}
        cmd = ["cargo", *args]
        if mode == "paseto":
            env["RUSTC_BOOTSTRAP"] = "1"
            cmd = ["cargo", "-Z", "asymmetric-token", *args]
        t0 = now()
        proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, check=False)
        elapsed = now() - t0
        if proc.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} ({mode}) failed:\n{proc.stderr}")
        return elapsed

    def publish(self, mode: str) -> float:
        self.write_manifest()
        return self.cargo(
            mode,
            ["publish", "--no-verify", "--allow-dirty", "--registry", "local", "--quiet"],
            self.crate,
        )

    def owner_list(self, mode: str) -> float:
        return self.cargo(mode, ["owner", "--list", CRATE, "--registry", "local"], self.root)


# ------------------------------------------------------------------------------- measurements


def bench_bridge(b: Bench) -> list[Row]:
    rows = []
    # interpreter floor, for reference
    floor = Row("1", "  ref: venv python -c pass", target="")
    floor_is = Row("1", "  ref: venv python -I -S -c pass", target="")
    for _ in range(b.runs):
        t0 = now()
        subprocess.run([PY, "-c", "pass"], check=True)
        floor.samples.append((now() - t0) * 1000)
        t0 = now()
        subprocess.run([PY, "-I", "-S", "-c", "pass"], check=True)
        floor_is.samples.append((now() - t0) * 1000)
    dev = Row(
        "1", "bridge round trip: read (make run install: `python -IS` launcher)", target="<= 12 ms"
    )
    pub = Row("1", "bridge round trip: publish, auto-approved (launcher)", target="<= 12 ms")
    read = Row("1", "  alt: read through pip's console-script wrapper (regular install)")
    app = Row("1", "app handling of a read over the socket (no process start)", target="<= 2 ms")
    bridge_once(b.bridge_env, read_request(b.index))  # warm the app (keychain, pyseto)
    for i in range(b.runs * 2):
        t, ans = bridge_once(b.bridge_env, read_request(b.index), b.installed_bridge)
        assert "Ok" in ans, ans
        read.samples.append(t * 1000)
        t, ans = bridge_once(b.bridge_env, publish_request(b.index, i))
        assert "Ok" in ans, ans
        pub.samples.append(t * 1000)
        t, ans = bridge_once(b.bridge_env, read_request(b.index), BRIDGE)
        assert "Ok" in ans, ans
        dev.samples.append(t * 1000)
        app.samples.append(app_read_once(b.bridge_env, read_request(b.index)) * 1000)
    for r in (dev, pub):
        r.ok = r.median <= 12
    app.ok = app.median <= 2
    read.note = (
        "pip's wrapper starts Python with site (every .pth in site-packages) and "
        "honours PYTHON* variables; packaging/bootstrap.sh writes the launcher instead"
    )
    rows += [dev, pub, read, app, floor, floor_is]
    return rows


def bench_cargo_owner(b: Bench) -> list[Row]:
    ours = Row("2", "cargo owner --list: our provider")
    token = Row("2", "cargo owner --list: cargo:token")
    b.owner_list("ours")
    b.owner_list("token")
    for _ in range(b.runs):
        ours.samples.append(b.owner_list("ours") * 1000)
        token.samples.append(b.owner_list("token") * 1000)
    ratio = Row(
        "2",
        "  ratio ours / cargo:token",
        unit="x",
        target="<= 1.5x",
        value=ours.median / token.median,
    )
    ratio.ok = ratio.value is not None and ratio.value <= 1.5
    ratio.note = (
        "the demo registry accepts cargo:token only in the bench's variant "
        "(bench.py serve-registry: DemoRegistry + one plain token)"
    )
    return [ours, token, ratio]


def bench_cargo_publish(b: Bench) -> list[Row]:
    ours = Row("3", "cargo publish --no-verify: our provider")
    paseto = Row("3", "cargo publish --no-verify: cargo:paseto")
    b.publish("paseto")
    for _ in range(max(3, b.runs // 2)):
        ours.samples.append(b.publish("ours") * 1000)
        paseto.samples.append(b.publish("paseto") * 1000)
    ratio = Row(
        "3",
        "  ratio ours / cargo:paseto",
        unit="x",
        target="<= 1.10x",
        value=ours.median / paseto.median,
    )
    ratio.ok = ratio.value is not None and ratio.value <= 1.10
    return [ours, paseto, ratio]


HW_PIN = "bench-pin-4711"


def bench_hardware(b: Bench) -> list[Row]:
    """Row 7: signing time per token and publish time, SoftHSM2 vs a keychain key."""
    from fakes import MemoryKeychain

    from gui_approver.client.protocol import Get, Publish, RegistryInfo
    from gui_approver.core import paseto
    from gui_approver.core.keys import pkcs11
    from gui_approver.core.keys.store import KeyStore, SigningKey
    from gui_approver.registry.server import add_key_to_file
    from gui_approver.registry.verify import RegisteredKey
    from gui_approver.secret import Secret

    if b.hsm is None:
        return [Row("7", "hardware keys: skipped (SoftHSM2 is not installed)", target="")]
    request = Get(RegistryInfo(index_url=b.index, name="local"), Publish(CRATE, "1.0.0", "ab" * 32))
    soft = SigningKey.generate()
    sw = Row("7", "sign one token: keychain key (pyseto, in process; median of 50)")
    hw = Row("7", "sign one token: SoftHSM2 key (logged in, key read back; median of 50)")
    os.environ["SOFTHSM2_CONF"] = str(b.hsm.conf)
    pkcs11.reset_backend()
    info = pkcs11.backend().generate(
        b.hsm.module, "pkcs11:token=bench;id=%07", Secret(HW_PIN), label="bench-inproc"
    )
    store = KeyStore(
        MemoryKeychain(), b.root / "hw-keys.json", unlocker=lambda _r, _w: Secret(HW_PIN)
    )
    rec = store.add_hardware(info, registry="bench", index_url=b.index + "x", subject=None)
    store.unlock(rec, Secret(HW_PIN))
    paseto.sign_request(soft, request, subject=None)
    paseto.sign_request(store.signing_key(rec), request, subject=None)
    for _ in range(50):
        t0 = now()
        paseto.sign_request(soft, request, subject=None)
        sw.samples.append((now() - t0) * 1000)
        key = store.signing_key(rec)
        t0 = now()
        paseto.sign_request(key, request, subject=None)
        hw.samples.append((now() - t0) * 1000)
    full = Row("7", "  SoftHSM2: store.signing_key + sign (token presence check too)")
    for _ in range(50):
        t0 = now()
        paseto.sign_request(store.signing_key(rec), request, subject=None)
        full.samples.append((now() - t0) * 1000)
    pkcs11.reset_backend()

    # End to end: a second registry whose key is on the token, the same headless app.
    reg = subprocess.Popen(
        [
            *DIE_WITH_US,
            PY,
            __file__,
            "serve-registry",
            "--data",
            str(b.root / "registry-hw"),
            "--plain-token",
            PLAIN_TOKEN,
        ],
        env=b.env,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert reg.stdout is not None
        index = reg.stdout.readline().strip().split(" ", 1)[1]
        out = subprocess.run(
            [
                CLI,
                "key",
                "new",
                "--registry",
                "hw",
                "--index",
                index,
                "--pkcs11",
                "pkcs11:token=bench;id=%08",
                "--module",
                b.hsm.module,
                "--json",
            ],
            env=b.env,
            input=HW_PIN + "\n",
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        add_key_to_file(b.root / "registry-hw", RegisteredKey(public=json.loads(out)["public"]))
        home = b.root / "cargo-hw"
        home.mkdir()
        subprocess.run(
            [CLI, "configure-cargo", "--registry", "local", "--index", index, "--bridge", b.bridge],
            env={**b.env, "CARGO_HOME": str(home)},
            check=True,
            capture_output=True,
        )
        b.cargo_homes["hw"] = home
        subprocess.run(
            [CLI, "key", "unlock", "--registry", "hw"],
            env=b.env,
            input=HW_PIN + "\n",
            capture_output=True,
            text=True,
            check=True,
        )
        ours = Row("7", "cargo publish --no-verify: keychain key")
        hwp = Row("7", "cargo publish --no-verify: SoftHSM2 hardware key")
        b.publish("hw")
        for _ in range(max(3, b.runs // 2)):
            ours.samples.append(b.publish("ours") * 1000)
            hwp.samples.append(b.publish("hw") * 1000)
        ratio = Row(
            "7", "  ratio hardware / keychain", unit="x", target="", value=hwp.median / ours.median
        )
    finally:
        reg.terminate()
        reg.wait(10)
    return [sw, hw, full, ours, hwp, ratio]


def bench_dialog(b: Bench) -> list[Row]:
    row = Row("4", "request arrival -> dialog painted (warm Qt app)", target="<= 100 ms")
    try:
        row.samples = _dialog_latencies(b)
    except Exception as exc:
        row.note = f"TODO: not measured ({type(exc).__name__}: {exc})"
        return [row]
    row.ok = row.median <= 100
    row.note = (
        "in-process GuiApp (offscreen): t0 when the IPC handler receives the request, "
        "t1 at the dialog's first paint; then denied"
    )
    return [row]


def _dialog_latencies(b: Bench) -> list[float]:
    os.environ["QT_QPA_PLATFORM"] = "offscreen"
    from fakes import MemoryKeychain
    from PySide6.QtCore import QEvent, QEventLoop, QObject, QTimer
    from PySide6.QtWidgets import QApplication, QDialog

    from gui_approver.core.keys.store import KeyStore
    from gui_approver.core.settings import Settings
    from gui_approver.ui.app import GuiApp

    app = QApplication.instance() or QApplication([])
    store = KeyStore(MemoryKeychain(), b.root / "dialog-keys.json")
    store.create(registry="local", index_url=b.index)
    sockdir = b.root / "dialog-run"
    gui = GuiApp(store, Settings(), socket_dir=str(sockdir))
    arrivals: list[float] = []
    original = gui.server.handler

    def timed(message: Any, send_ack: Any) -> Any:
        arrivals.append(time.monotonic())
        return original(message, send_ack)

    gui.server.handler = timed
    painted: list[float] = []

    class FirstPaint(QObject):
        def eventFilter(self, obj: Any, event: Any) -> bool:
            if event.type() == QEvent.Type.Paint and len(painted) < len(arrivals):
                painted.append(time.monotonic())
            return False

    watcher = FirstPaint()
    gui.approver.dialog_shown.connect(lambda d: d.installEventFilter(watcher))
    gui.start()
    results: list[float] = []

    def client(n: int) -> None:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(30)
            s.connect(str(sockdir / paths.SOCKET_NAME))
            s.sendall(
                framing.credential_ipc_message(
                    publish_request(b.index, n), framing.Provenance(pid=os.getpid())
                )
            )
            while s.recv(65536):
                pass

    def spin_until(pred: Callable[[], Any], timeout: float) -> None:
        """Run Qt's event loop until ``pred()`` (checked every ms). Not a busy loop: PySide6
        6.12 leaks a reference to None per processEvents(flags, ms) call, and a few million
        of them crash the interpreter."""
        if pred():
            return
        loop = QEventLoop()
        deadline = time.monotonic() + timeout
        timer = QTimer()
        timer.setInterval(1)

        def check() -> None:
            if pred() or time.monotonic() > deadline:
                loop.quit()

        timer.timeout.connect(check)
        timer.start()
        loop.exec()
        timer.stop()
        if not pred():
            raise RuntimeError("timed out waiting for the dialog")

    try:
        for n in range(b.runs * 2 + 1):
            t = threading.Thread(target=client, args=(n,))
            t.start()
            spin_until(
                partial(lambda k: len(painted) > k and gui.approver.dialog is not None, n), 10
            )
            dialog = gui.approver.dialog
            visible = getattr(dialog, "visible_at", None)
            t1 = painted[n] if visible is None else min(visible, painted[n])
            if n > 0:  # the first one warms the app up
                results.append((t1 - arrivals[n]) * 1000)
            assert isinstance(dialog, QDialog)
            dialog.reject()
            spin_until(partial(lambda th: not th.is_alive(), t), 10)
    finally:
        gui.stop()
        app.processEvents()
    return results


def bench_cold_start(b: Bench) -> list[Row]:
    rows = []
    for label, args, extra in (
        ("app --no-gui", ("--no-gui",), {}),
        ("Qt app (offscreen)", (), {"QT_QPA_PLATFORM": "offscreen"}),
    ):
        start = Row("5", f"cold start until ping: {label}", target="<= 1.0 s")
        idle = Row("5", f"idle RSS after start: {label}", unit="MB", target="<= 80 MB")
        warm = Row("5", f"RSS after one request: {label}", unit="MB", target="<= 80 MB")
        env = {**b.env, **extra}
        for i in range(max(3, b.runs // 2) + 1):
            app = App(env, *args, log=b.root / "cold.log")
            try:
                t = app.wait_ready()
                if i == 0:
                    continue  # page-cache warm-up
                start.samples.append(t * 1000)
                time.sleep(0.3)  # idle
                idle.samples.append(rss_mb(app.proc.pid))
                if b.index:
                    bridge_once(b.bridge_env, read_request(b.index), b.bridge)
                    warm.samples.append(rss_mb(app.proc.pid))
            finally:
                app.stop()
        start.ok = start.median <= 1000
        idle.ok = idle.median <= 80
        rows += [start, idle]
        if warm.samples:
            warm.ok = warm.median <= 80
            rows.append(warm)
    return rows


def _ipc_burst(path: str, message: bytes, n: int) -> tuple[float, int]:
    """``n`` clients connect and send at once; the time until the last has its answer."""
    results: list[bool] = []
    lock = threading.Lock()
    go = threading.Barrier(n + 1)

    def client() -> None:
        go.wait()
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(30)
            s.connect(path)
            s.sendall(message)
            buf = b""
            while chunk := s.recv(65536):
                buf += chunk
        with lock:
            results.append(b'"Ok"' in buf)

    threads = [threading.Thread(target=client) for _ in range(n)]
    for t in threads:
        t.start()
    t0 = now()
    go.wait()
    for t in threads:
        t.join(60)
    return now() - t0, sum(results)


def bench_concurrent(b: Bench, n: int = 200) -> list[Row]:

    procs_row = Row("6", f"{n} concurrent reads: {n} bridge processes", target="<= 2 s")
    ipc_row = Row("6", f"{n} concurrent reads: {n} IPC clients (app only)", target="<= 2 s")
    data = (json.dumps(read_request(b.index)) + "\n").encode()
    assert b.app is not None
    path = os.path.join(b.app.socket_dir, paths.SOCKET_NAME)
    for _ in range(3):
        t0 = now()
        procs = [
            subprocess.Popen(
                [b.bridge, "--cargo-plugin"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                env=b.bridge_env,
            )
            for _ in range(n)
        ]
        outs = [p.communicate(data)[0] for p in procs]
        procs_row.samples.append((now() - t0) * 1000)
        answered = sum(b'"Ok"' in o for o in outs)
        if answered != n:
            procs_row.note = f"only {answered}/{n} answered Ok"

        message = framing.credential_ipc_message(
            read_request(b.index), framing.Provenance(pid=os.getpid())
        )
        elapsed, ok = _ipc_burst(path, message, n)
        ipc_row.samples.append(elapsed * 1000)
        if ok != n:
            ipc_row.note = f"only {ok}/{n} answered Ok"
    procs_row.unit = ipc_row.unit = "ms"
    procs_row.ok = procs_row.median <= 2000 and not procs_row.note
    ipc_row.ok = ipc_row.median <= 2000 and not ipc_row.note
    return [procs_row, ipc_row]


# ------------------------------------------------------------------------------- main


def bytecode_state() -> str:
    pkg = REPO / "gui_approver"
    stale = []
    for name in (
        "__init__",
        "errors",
        "secret",
        "client/__init__",
        "client/bridge",
        "client/protocol",
        "client/framing",
        "client/paths",
        "client/records",
    ):
        src = pkg / f"{name}.py"
        pyc = src.parent / "__pycache__" / f"{src.stem}.{sys.implementation.cache_tag}.pyc"
        if not pyc.exists() or pyc.stat().st_mtime < src.stat().st_mtime:
            stale.append(name)
    return "compiled" if not stale else f"NOT compiled: {', '.join(stale)}"


@contextlib.contextmanager
def tempdir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="gat-bench-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


# ------------------------------------------------------------------------------- the watch


def _watch_rows(n: int, runs: int, versions: int) -> list[list[str]]:
    from gui_approver.core.audit import AuditLog
    from gui_approver.core.watch import STATE_FILE, Watch
    from gui_approver.registry.server import DemoRegistry, _index_entry

    table: list[list[str]] = []
    with tempdir() as root:
        reg = DemoRegistry(root / "registry", token_mode=True)
        reg.start()
        try:
            state = root / "state"
            audit = AuditLog(state / "audit.jsonl")
            names = [f"watched-crate-{i:03d}" for i in range(n)]

            def approved(name: str, vers: str, cksum: str) -> dict[str, Any]:
                audit.record(
                    event="get",
                    registry="bench",
                    index_url=reg.index_url,
                    operation="publish",
                    crate=name,
                    version=vers,
                    cksum=cksum,
                    decision="signed",
                )
                meta: dict[str, Any] = {"deps": [], "features": {"std": []}, "links": None}
                return _index_entry(meta, name, vers, cksum)

            for name in names:
                reg._write_entries(
                    name,
                    [
                        approved(
                            name, f"1.{v}.0", hashlib.sha256(f"{name}{v}".encode()).hexdigest()
                        )
                        for v in range(versions)
                    ],
                )

            wire = [0]

            def one_pass(prepare: Callable[[], None] | None = None) -> tuple[Any, int, float]:
                if prepare is not None:
                    prepare()
                before = len(reg.served)
                t0 = now()
                result = Watch(state).run_once()
                ms = (now() - t0) * 1000
                assert not result.errors, result.errors
                served = list(reg.served)[before:]
                wire[0] = sum(x.wire_bytes for x in served)
                return result, sum(x.body_bytes for x in served), ms

            def drop_validators() -> None:
                doc = json.loads((state / STATE_FILE).read_text())
                for reg_state in doc.values():
                    reg_state.get("config", {}).update(etag=None, last_modified=None)
                    for c in reg_state.get("crates", {}).values():
                        c.update(etag=None, last_modified=None)
                (state / STATE_FILE).write_text(json.dumps(doc))

            counter = [0]

            def change_one() -> None:
                counter[0] += 1
                cksum = hashlib.sha256(f"new{counter[0]}".encode()).hexdigest()
                entries = reg._read_entries(names[0])
                entries.append(approved(names[0], f"2.{counter[0]}.0", cksum))
                reg._write_entries(names[0], entries)

            result, body, ms = one_pass()
            table.append(
                [
                    str(n),
                    "cold (baseline)",
                    str(result.requests),
                    str(result.not_modified),
                    str(body),
                    str(wire[0]),
                    f"{ms:.1f}",
                    "",
                    "",
                ]
            )
            cases: list[tuple[str, Callable[[], None] | None]] = [
                ("ETag (nothing changed)", None),
                ("no ETag (nothing changed)", drop_validators),
                ("one change, ETag", change_one),
            ]
            for label, prepare in cases:
                samples, last = [], None
                for _ in range(runs):
                    last = one_pass(prepare)
                    samples.append(last[2])
                assert last is not None
                table.append(
                    [
                        str(n),
                        label,
                        str(last[0].requests),
                        str(last[0].not_modified),
                        str(last[1]),
                        str(wire[0]),
                        f"{statistics.median(samples):.1f}",
                        f"{min(samples):.1f}",
                        f"{max(samples):.1f}",
                    ]
                )
            before = len(reg.served)
            Watch(root / "empty-state").run_once()
            if n == 10:
                table.append(
                    [
                        "0",
                        "nothing watched",
                        str(len(reg.served) - before),
                        "0",
                        "0",
                        "0",
                        "",
                        "",
                        "",
                    ]
                )
        finally:
            reg.stop()
    return table


def bench_watch(runs: int, sizes: tuple[int, ...] = (10, 100), versions: int = 5) -> str:
    """The watch's cost per pass against the demo registry (token mode, loopback): requests,
    response body bytes as the registry sent them, and time, for N watched crates of
    ``versions`` versions each. 'cold' is the first pass (baseline); 'ETag' a pass with
    nothing changed (conditional requests, 304s); 'no ETag' the same pass with the stored
    validators dropped (what a watch without conditional requests would cost); 'one change'
    a pass after one crate got a new version (approved, so no alert)."""
    cols = [
        "crates",
        "pass",
        "requests",
        "304s",
        "body bytes",
        "HTTP bytes",
        "median ms",
        "min",
        "max",
    ]
    table = [row for n in sizes for row in _watch_rows(n, runs, versions)]
    widths = [max(len(c), *(len(t[i]) for t in table)) for i, c in enumerate(cols)]
    lines = [
        "",
        "watch: cost per pass against the demo registry (loopback, token mode, "
        f"{versions} versions per crate, runs={runs})",
        "",
    ]
    lines.append("  ".join(c.ljust(w) for c, w in zip(cols, widths, strict=True)))
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(v.ljust(w) for v, w in zip(t, widths, strict=True)) for t in table]
    lines.append(
        "requests include config.json (one per registry and pass); body bytes: "
        "response bodies; HTTP bytes: requests and responses with their headers, both "
        "ways (one kept-alive connection; TCP/TLS overhead not counted)."
    )
    return "\n".join(lines) + "\n"


def run(args: argparse.Namespace) -> int:
    only = {s.strip() for s in args.only.split(",")} if args.only else None
    if only is not None and "watch" in only:
        text = bench_watch(args.runs)
        print(text)
        only.discard("watch")
        if not only:
            return 0
    rows: list[Row] = []
    header = (
        f"gui-approver benchmark  {time.strftime('%Y-%m-%d %H:%M:%S')}  "
        f"{platform.node()}  {os.cpu_count()} CPUs  Python {platform.python_version()}  "
        f"runs={args.runs}\n"
        f"interpreter: {sys.executable}  bridge bytecode: {bytecode_state()}  "
        f"PYTHONDONTWRITEBYTECODE={os.environ.get('PYTHONDONTWRITEBYTECODE', '')}  "
        f"rows 2/3/6 bridge: "
        f"{'regular install layout' if args.bridge == 'installed' else 'dev venv'}  "
        f"load average at start: "
        f"{Path('/proc/loadavg').read_text().split()[0]}"
    )
    with tempdir() as root:
        b = Bench(root, args.runs, args.bridge)
        try:
            b.start_registry()
            b.start_app()
            b.setup_keys_and_cargo()
            steps: list[tuple[str, Callable[[Bench], list[Row]]]] = [
                ("1", bench_bridge),
                ("2", bench_cargo_owner),
                ("3", bench_cargo_publish),
                ("6", bench_concurrent),
                ("4", bench_dialog),
                ("7", bench_hardware),
            ]
            for key, fn in steps:
                if only is None or key in only:
                    print(f"{key}: {fn.__name__} ...", file=sys.stderr)
                    rows += fn(b)
            if only is None or "5" in only:  # single instance: the warm app must go first
                assert b.app is not None
                b.app.stop()
                b.app = None
                print("5: bench_cold_start ...", file=sys.stderr)
                rows += bench_cold_start(b)
        finally:
            b.close()
    order = {k: i for i, k in enumerate("1234567")}
    rows.sort(key=lambda r: order[r.item])
    text, md = render(rows, header)
    print(text)
    out = Path(args.out)
    out.write_text(text)
    out.with_suffix(".md").write_text(md)
    print(f"written: {out} and {out.with_suffix('.md')}", file=sys.stderr)
    missed = [f"{r.item} {r.what.strip()}" for r in rows if r.ok is False]
    if missed:
        print("targets missed:\n  " + "\n  ".join(missed), file=sys.stderr)
    return 1 if missed and args.strict else 0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", type=int, default=10, help="repetitions per figure (default 10)")
    p.add_argument(
        "--only",
        help="comma-separated rows to run, e.g. 1,5; 'watch' for the watch's cost per pass",
    )
    p.add_argument("--out", default=str(REPO / "bench-results.txt"))
    p.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    p.add_argument(
        "--bridge",
        choices=("installed", "dev"),
        default="installed",
        help="the bridge cargo runs in rows 2, 3 and 6 (default: a regular install "
        "layout; dev: the dev venv's editable install)",
    )
    sub = p.add_subparsers(dest="command")
    s = sub.add_parser("serve-registry", help="(internal) the demo registry variant of row 2")
    s.add_argument("--data", required=True)
    s.add_argument("--port", type=int, default=0)
    s.add_argument("--plain-token", required=True)
    args = p.parse_args()
    if args.command == "serve-registry":
        return serve_registry(args)
    return run(args)


if __name__ == "__main__":
    sys.exit(main())

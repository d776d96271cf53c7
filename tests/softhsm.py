"""SoftHSM2 tokens for tests: a private ``SOFTHSM2_CONF`` and token directory per test.

No pytest dependency (scripts and benchmarks use it too). ``SOFTHSM2_CONF`` is read when the
module is initialised, so the ``softhsm`` fixture resets gui-approver's PKCS#11 backend
(unloading the module) before and after each test.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

MODULE_PATHS = (
    "/usr/lib/softhsm/libsofthsm2.so",
    "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
)
#: Distinctive, so the leak scans cannot match it by chance (SoftHSM2 takes any 4-255 bytes).
PIN = "gat-Pin-7f3a9c"
#: A wrong PIN, as distinctive.
WRONG_PIN = "gat-Wrong-4b2d1e"
SO_PIN = "27182818"


def module_path() -> str:
    for p in MODULE_PATHS:
        if os.path.isfile(p):
            return p
    raise RuntimeError(
        "SoftHSM2 is not installed: apt-get install softhsm2 (bash packaging/bootstrap.sh test)"
    )


@dataclass
class SoftHsm:
    root: Path
    conf: Path
    module: str

    @property
    def env(self) -> dict[str, str]:
        return {"SOFTHSM2_CONF": str(self.conf)}

    def init_token(self, label: str = "gat-token", pin: str = PIN, so_pin: str = SO_PIN) -> str:
        util = shutil.which("softhsm2-util")
        if util is None:
            raise RuntimeError("softhsm2-util is missing (apt-get install softhsm2)")
        subprocess.run(
            [util, "--init-token", "--free", "--label", label, "--so-pin", so_pin, "--pin", pin],
            env={**os.environ, **self.env},
            check=True,
            capture_output=True,
        )
        return label

    def delete_token(self, label: str) -> None:
        subprocess.run(
            ["softhsm2-util", "--delete-token", "--token", label],
            env={**os.environ, **self.env},
            check=True,
            capture_output=True,
        )


def make_softhsm(root: Path) -> SoftHsm:
    tokens = root / "tokens"
    tokens.mkdir(parents=True, exist_ok=True)
    conf = root / "softhsm2.conf"
    conf.write_text(
        f"directories.tokendir = {tokens}\nobjectstore.backend = file\n"
        "log.level = ERROR\nslots.removable = false\n"
    )
    return SoftHsm(root, conf, module_path())


# ---------------------------------------------------------------------------------------------
# A software TPM behind tpm2-pkcs11 (optional: swtpm, tpm2-abrmd, tpm2-pkcs11 and its tools)

TPM_MODULE = "/usr/lib/x86_64-linux-gnu/pkcs11/libtpm2_pkcs11.so"
TPM_PROGRAMS = ("swtpm", "tpm2-abrmd", "tpm2_ptool", "dbus-daemon")


@dataclass
class SoftTpm:
    """swtpm + tpm2-abrmd (on a private session bus) + a tpm2-pkcs11 store with one token
    ``tpm`` (PIN :data:`PIN`) and one P-384 key (id ``01``, made with tpm2_ptool)."""

    root: Path
    env: dict[str, str]
    procs: list[subprocess.Popen[bytes]]
    bus: object
    module: str = TPM_MODULE

    def stop(self) -> None:
        import envtools

        for proc in reversed(self.procs):
            envtools.stop_process(proc)
        self.bus.stop()  # type: ignore[attr-defined]


def tpm_available() -> str | None:
    """None when the TPM tools are installed, else what is missing."""
    missing = [p for p in TPM_PROGRAMS if shutil.which(p) is None]
    if not os.path.isfile(TPM_MODULE):
        missing.append(TPM_MODULE)
    return ", ".join(missing) or None


def start_soft_tpm(root: Path) -> SoftTpm:
    import envtools

    root.mkdir(parents=True, exist_ok=True)
    bus = envtools.start_session_bus(root / "bus")
    procs: list[subprocess.Popen[bytes]] = []
    try:
        state = root / "state"
        state.mkdir()
        # The swtpm TCTI talks to the control channel on port + 1.
        port = envtools.free_port()
        while not _port_free(port + 1):
            port = envtools.free_port()
        ctrl = port + 1
        base = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **bus.env}
        procs.append(
            envtools.spawn(
                [
                    "swtpm",
                    "socket",
                    "--tpmstate",
                    f"dir={state}",
                    "--tpm2",
                    "--server",
                    f"type=tcp,port={port},bindaddr=127.0.0.1",
                    "--ctrl",
                    f"type=tcp,port={ctrl},bindaddr=127.0.0.1",
                    "--flags",
                    "not-need-init,startup-clear",
                ],
                env=base,
                log_path=root / "swtpm.log",
            )
        )
        envtools.wait_for(lambda: _port_open(port), timeout=10, what="swtpm")
        procs.append(
            envtools.spawn(
                [
                    "tpm2-abrmd",
                    "--session",
                    f"--tcti=swtpm:host=127.0.0.1,port={port}",
                    "--allow-root",
                ],
                env=base,
                log_path=root / "abrmd.log",
            )
        )
        envtools.wait_for(
            lambda: bus.name_has_owner("com.intel.tss2.Tabrmd"),
            timeout=10,
            what="tpm2-abrmd on its bus",
        )
        store = root / "store"
        store.mkdir()
        env = {
            **bus.env,
            "TPM2TOOLS_TCTI": "tabrmd:bus_type=session",
            "TPM2_PKCS11_TCTI": "tabrmd:bus_type=session",
            "TPM2_PKCS11_STORE": str(store),
        }
        full = {**os.environ, **env}
        for argv in (
            ["tpm2_ptool", "init", "--path", str(store)],
            [
                "tpm2_ptool",
                "addtoken",
                "--pid=1",
                "--label=tpm",
                f"--sopin={SO_PIN}",
                f"--userpin={PIN}",
                "--path",
                str(store),
            ],
            [
                "tpm2_ptool",
                "addkey",
                "--algorithm=ecc384",
                "--label=tpm",
                f"--userpin={PIN}",
                "--key-label=tpm-key",
                "--id=01",
                "--path",
                str(store),
            ],
        ):
            subprocess.run(argv, env=full, check=True, capture_output=True, timeout=60)
        return SoftTpm(root, env, procs, bus)
    except BaseException:
        for proc in reversed(procs):
            envtools.stop_process(proc)
        bus.stop()
        raise


def _port_open(port: int) -> bool:
    import socket

    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


def _port_free(port: int) -> bool:
    import socket

    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True

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

MODULE_PATHS = ("/usr/lib/softhsm/libsofthsm2.so",
                "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so")
PIN = "314159"
SO_PIN = "27182818"


def module_path() -> str:
    for p in MODULE_PATHS:
        if os.path.isfile(p):
            return p
    raise RuntimeError("SoftHSM2 is not installed: apt-get install softhsm2 "
                       "(bash packaging/bootstrap.sh test)")


@dataclass
class SoftHsm:
    root: Path
    conf: Path
    module: str

    @property
    def env(self) -> dict[str, str]:
        return {"SOFTHSM2_CONF": str(self.conf)}

    def init_token(self, label: str = "gat-token", pin: str = PIN,
                   so_pin: str = SO_PIN) -> str:
        util = shutil.which("softhsm2-util")
        if util is None:
            raise RuntimeError("softhsm2-util is missing (apt-get install softhsm2)")
        subprocess.run(
            [util, "--init-token", "--free", "--label", label, "--so-pin", so_pin,
             "--pin", pin],
            env={**os.environ, **self.env}, check=True, capture_output=True,
        )
        return label

    def delete_token(self, label: str) -> None:
        subprocess.run(["softhsm2-util", "--delete-token", "--token", label],
                       env={**os.environ, **self.env}, check=True, capture_output=True)


def make_softhsm(root: Path) -> SoftHsm:
    tokens = root / "tokens"
    tokens.mkdir(parents=True, exist_ok=True)
    conf = root / "softhsm2.conf"
    conf.write_text(f"directories.tokendir = {tokens}\nobjectstore.backend = file\n"
                    "log.level = ERROR\nslots.removable = false\n")
    return SoftHsm(root, conf, module_path())

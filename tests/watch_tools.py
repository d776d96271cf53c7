"""The watch's test world: a token-mode demo registry, a watch with its own state dir and
audit log, and "another machine" that publishes and yanks with the real cargo (cargo:token).
The ``world`` and ``cli_env`` fixtures are registered in tests/conftest.py."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from registry_tools import CARGO, TokenCargo, token_cargo

from gui_approver.core.audit import AuditLog
from gui_approver.core.watch import Watch
from gui_approver.registry.server import DemoRegistry

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
            event="get",
            registry="local",
            index_url=self.reg.index_url,
            operation=op,
            crate=crate,
            version=vers,
            cksum=cksum,
            decision="signed",
            reason="approved in the dialog",
            key_id="k3.pid.test",
        )

    def served_since(self, n: int) -> list[str]:
        return [f"{s.status} {s.path}" for s in list(self.reg.served)[n:]]


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    with DemoRegistry(tmp_path / "registry", token_mode=True) as reg:
        yield World(tmp_path, reg)


def run_cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [CLI, *args], env=env, capture_output=True, text=True, timeout=60, check=False
    )


@pytest.fixture
def cli_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GUI_APPROVER")}
    env["XDG_STATE_HOME"] = str(tmp_path / "xdg-state")
    return env

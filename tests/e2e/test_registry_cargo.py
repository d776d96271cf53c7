"""The demo registry with the real cargo: publish, yank, owners, dependencies, refusals."""

from __future__ import annotations

import hashlib
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from factories import KeyPair
from registry_tools import CARGO, CargoEnv, call, make_cargo_env

from gui_approver.registry.server import DemoRegistry


@pytest.fixture(scope="module")
def kp() -> KeyPair:
    return KeyPair()


def needs_cargo(fn: Any) -> Any:
    marked = pytest.mark.skipif(CARGO is None, reason="cargo is not on PATH")(fn)
    return pytest.mark.e2e(marked)


@pytest.fixture(scope="module")
def cargo_env(tmp_path_factory: pytest.TempPathFactory, kp: KeyPair) -> Iterator[CargoEnv]:
    root = tmp_path_factory.mktemp("cargo-e2e")
    registry = DemoRegistry(root / "registry")
    registry.start()
    registry.add_key(kp.registered(subject="alice"))
    try:
        yield make_cargo_env(root / "work", registry, kp, subject="alice")
    finally:
        registry.stop()


@needs_cargo
def test_cargo_publish_yank_unyank_owner(cargo_env: CargoEnv) -> None:
    reg = cargo_env.registry
    crate = cargo_env.new_crate("e2e-alpha")
    proc = cargo_env.publish(crate)
    assert "Published e2e-alpha v0.1.0" in proc.stderr

    # cargo 1.95 packages into target/package/tmp-crate/ (and a tmp-registry/ copy)
    packaged = list((crate / "target" / "package").rglob("e2e-alpha-0.1.0.crate"))
    assert packaged
    (entry,) = reg.crates()["e2e-alpha"]
    assert {hashlib.sha256(p.read_bytes()).hexdigest() for p in packaged} == {entry["cksum"]}
    stored = call(reg, "GET", "/api/v1/crates/e2e-alpha/0.1.0/download").body
    assert stored == packaged[0].read_bytes()
    assert entry["yanked"] is False
    assert reg.owners("e2e-alpha") == ["alice"]

    cargo_env.cargo("yank", "--version", "0.1.0", "--registry", "local", cwd=crate)
    assert reg.crates()["e2e-alpha"][0]["yanked"] is True
    cargo_env.cargo("yank", "--version", "0.1.0", "--undo", "--registry", "local", cwd=crate)
    assert reg.crates()["e2e-alpha"][0]["yanked"] is False

    proc = cargo_env.cargo("owner", "--list", "--registry", "local", cwd=crate)
    assert proc.stdout.split() == ["alice"]

    # cargo itself refuses to re-publish a version it sees in the index (no request made)
    again = cargo_env.publish(crate, check=False)
    assert again.returncode != 0
    assert "already exists" in again.stderr


@needs_cargo
def test_cargo_publish_with_registry_dependency(cargo_env: CargoEnv) -> None:
    reg = cargo_env.registry
    base = cargo_env.new_crate("e2e-base")
    cargo_env.publish(base)
    dependent = cargo_env.new_crate(
        "e2e-dependent", 'e2e-base = { version = "0.1.0", registry = "local" }\n'
    )
    cargo_env.publish(dependent)
    (entry,) = reg.crates()["e2e-dependent"]
    assert entry["deps"] == [
        {
            "name": "e2e-base",
            "req": "^0.1.0",
            "features": [],
            "optional": False,
            "default_features": True,
            "target": None,
            "kind": "normal",
            "registry": None,  # null: "the same registry as this index"
            "package": None,
        }
    ]
    # and cargo can resolve + download both through the index and the dl endpoint
    user = cargo_env.new_crate(
        "e2e-user", 'e2e-dependent = { version = "0.1", registry = "local" }\n'
    )
    assert CARGO is not None
    fetch = subprocess.run(
        [CARGO, "fetch"], cwd=user, env=cargo_env.env, capture_output=True, text=True, timeout=60
    )
    assert fetch.returncode == 0, fetch.stderr
    lock = (user / "Cargo.lock").read_text()
    assert 'name = "e2e-base"' in lock
    assert 'name = "e2e-dependent"' in lock


@needs_cargo
def test_cargo_publish_rejected_when_key_not_registered(tmp_path: Path, kp: KeyPair) -> None:
    with DemoRegistry(tmp_path / "registry") as reg:
        env = make_cargo_env(tmp_path / "work", reg, kp, subject=None)
        crate = env.new_crate("e2e-rejected")
        proc = env.publish(crate, check=False)
        assert proc.returncode != 0
        assert "401" in proc.stderr
        assert "not registered" in proc.stderr  # our detail reaches the user
        assert reg.crates() == {}
        assert not (reg.data_dir / "crates").exists()

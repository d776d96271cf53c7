"""Talking to the demo registry in tests: HTTP calls, publish bodies, the registry CLI, and a
CARGO_HOME that publishes with ``cargo:token`` (crates.io-style bearer tokens)."""

from __future__ import annotations

import argparse
import hashlib
import http.client
import json
import os
import shutil
import subprocess
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from factories import KeyPair

from gui_approver.registry.server import DemoRegistry, add_registry_parsers


@dataclass
class Reply:
    status: int
    headers: http.client.HTTPMessage
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def call(
    reg: DemoRegistry,
    method: str,
    path: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> Reply:
    parts = urllib.parse.urlsplit(reg.api_url)
    conn = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=10)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        return Reply(resp.status, resp.headers, resp.read())
    finally:
        conn.close()


def publish_body(meta: dict[str, Any], crate: bytes) -> bytes:
    js = json.dumps(meta).encode()
    return len(js).to_bytes(4, "little") + js + len(crate).to_bytes(4, "little") + crate


def meta_for(name: str, vers: str, **extra: Any) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "name": name,
        "vers": vers,
        "deps": [],
        "features": {},
        "authors": [],
        "description": "test",
        "license": "MIT",
        "links": None,
    }
    meta.update(extra)
    return meta


def http_publish(
    reg: DemoRegistry, kp: KeyPair, name: str, vers: str, crate: bytes = b"crate", **extra: Any
) -> Reply:
    cksum = hashlib.sha256(crate).hexdigest()
    token = kp.token(reg.index_url, "publish", name, vers, cksum)
    body = publish_body(meta_for(name, vers, **extra), crate)
    return call(reg, "PUT", "/api/v1/crates/new", body, {"Authorization": token})


def run_cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="gui-approver")
    add_registry_parsers(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    result: int = args.func(args)
    return result


def bearer_publish(
    reg: DemoRegistry, token: str | None, name: str, vers: str, crate: bytes = b"crate"
) -> tuple[int, dict[str, object]]:
    body = publish_body(meta_for(name, vers), crate)
    headers = {} if token is None else {"Authorization": token}
    reply = call(reg, "PUT", "/api/v1/crates/new", body, headers)
    return reply.status, reply.json()


CARGO = shutil.which("cargo")


@dataclass
class TokenCargo:
    root: Path
    env: dict[str, str]

    def cargo(self, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
        assert CARGO is not None
        return subprocess.run(
            [CARGO, *args], cwd=cwd, env=self.env, capture_output=True, text=True, timeout=120
        )

    def new_crate(self, name: str) -> Path:
        path = self.root / name
        proc = self.cargo("new", "--lib", "--vcs", "none", "--name", name, str(path), cwd=self.root)
        assert proc.returncode == 0, proc.stderr
        manifest = path / "Cargo.toml"
        manifest.write_text(
            manifest.read_text().replace(
                "[package]\n", '[package]\ndescription = "t"\nlicense = "MIT"\n', 1
            )
        )
        return path

    def publish(self, crate: Path) -> subprocess.CompletedProcess[str]:
        return self.cargo(
            "publish", "--registry", "local", "--no-verify", "--allow-dirty", cwd=crate
        )


def token_cargo(root: Path, reg: DemoRegistry, token: str) -> TokenCargo:
    """A CARGO_HOME that publishes with ``cargo:token`` and ``token`` in credentials.toml."""
    home = root / "cargo-home"
    home.mkdir(parents=True)
    (home / "config.toml").write_text(
        f'[registries.local]\nindex = "{reg.index_url}"\ncredential-provider = "cargo:token"\n'
    )
    (home / "credentials.toml").write_text(f'[registries.local]\ntoken = "{token}"\n')
    env = {k: v for k, v in os.environ.items() if not k.startswith("CARGO_")}
    env.update(CARGO_HOME=str(home), CARGO_TERM_COLOR="never")
    return TokenCargo(root, env)


@dataclass
class CargoEnv:
    root: Path
    home: Path
    registry: DemoRegistry
    env: dict[str, str]

    def cargo(self, *args: str, cwd: Path, check: bool = True) -> subprocess.CompletedProcess[str]:
        assert CARGO is not None
        proc = subprocess.run(
            [CARGO, "-Z", "asymmetric-token", *args],
            cwd=cwd,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        if check and proc.returncode != 0:
            pytest.fail(f"cargo {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr}")
        return proc

    def new_crate(self, name: str, deps: str = "") -> Path:
        assert CARGO is not None
        path = self.root / name
        subprocess.run(
            [CARGO, "new", "--lib", "--vcs", "none", "--name", name, str(path)],
            env=self.env,
            capture_output=True,
            check=True,
            timeout=60,
        )
        manifest = path / "Cargo.toml"
        text = manifest.read_text()
        text = text.replace(
            "[package]\n", '[package]\ndescription = "e2e test crate"\nlicense = "MIT"\n', 1
        )
        manifest.write_text(text + deps)
        return path

    def publish(self, crate: Path, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.cargo(
            "publish", "--registry", "local", "--no-verify", "--allow-dirty", cwd=crate, check=check
        )


def make_cargo_env(
    root: Path, registry: DemoRegistry, kp: KeyPair, subject: str | None
) -> CargoEnv:
    home = root / "cargo-home"
    home.mkdir(parents=True)
    (home / "config.toml").write_text(
        f'[registries.local]\nindex = "{registry.index_url}"\n'
        'credential-provider = "cargo:paseto"\n'
    )
    creds = f'[registries.local]\nsecret-key = "{kp.secret_paserk}"\n'
    if subject is not None:
        # cargo:paseto reads the subject from here for `get`; `--key-subject` only at login
        creds += f'secret-key-subject = "{subject}"\n'
    (home / "credentials.toml").write_text(creds)
    env = {k: v for k, v in os.environ.items() if not k.startswith("CARGO_")}
    env.update(CARGO_HOME=str(home), RUSTC_BOOTSTRAP="1", CARGO_TERM_COLOR="never")
    return CargoEnv(root, home, registry, env)

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

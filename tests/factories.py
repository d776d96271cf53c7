"""Shared test factories: P-384 key pairs and PASETO tokens as a registry sees them, cargo's
credential requests, and crate source directories for the real cargo. One place, instead of a
copy per test file. (Crate *archives*, hostile ones included, are built by hostile_archives.)"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyseto
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from gui_approver.client.protocol import CredentialRequest, parse_request
from gui_approver.registry.verify import RegisteredKey

LOCAL_INDEX = "sparse+http://127.0.0.1:8765/index/"
CKSUM = "6a2c1f0e1b7d1b8f9a1e9b4d2f3c4b5a6d7e8f90123456789abcdef012345678"


def p384_pems() -> tuple[bytes, str]:
    """A fresh P-384 key: (PKCS8 private PEM, SubjectPublicKeyInfo public PEM text)."""
    private = ec.generate_private_key(ec.SECP384R1())
    private_pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    public_pem = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return private_pem, public_pem.decode()


class KeyPair:
    """A key a registry knows (``public``/``kip``) and tokens signed with it, built here
    independently of the app's signer (pyseto directly)."""

    def __init__(self) -> None:
        private_pem, public_pem = p384_pems()
        self.secret = pyseto.Key.new(version=3, purpose="public", key=private_pem)
        public = pyseto.Key.new(version=3, purpose="public", key=public_pem)
        self.secret_paserk: str = self.secret.to_paserk()
        self.public: str = public.to_paserk()
        self.kip: str = public.to_paserk_id()

    def registered(self, subject: str | None = None) -> RegisteredKey:
        return RegisteredKey(public=self.public, subject=subject)

    def token(
        self,
        index_url: str,
        mutation: str | None = None,
        name: str | None = None,
        vers: str | None = None,
        cksum: str | None = None,
        sub: str | None = None,
    ) -> str:
        iat = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        payload: dict[str, str] = {"iat": iat}
        for k, v in (("sub", sub), ("mutation", mutation), ("name", name), ("vers", vers)):
            if v is not None:
                payload[k] = v
        if cksum is not None:
            payload["cksum"] = cksum
        footer = {"url": index_url, "kip": self.kip}
        sep = (",", ":")
        token = pyseto.encode(
            self.secret,
            json.dumps(payload, separators=sep),
            footer=json.dumps(footer, separators=sep),
        )
        return token.decode()


def cargo_request(
    op: str = "read",
    *,
    name: str = "foo",
    vers: str = "1.2.3",
    cksum: str = CKSUM,
    index_url: str = LOCAL_INDEX,
    registry: str | None = "local",
    **extra: Any,
) -> dict[str, Any]:
    """A request as cargo sends it (``op``: read, publish, yank, unyank, owners, login,
    logout); only the fields cargo sends for that operation."""
    reg: dict[str, Any] = {"index-url": index_url}
    if registry is not None:
        reg["name"] = registry
    out: dict[str, Any] = {"v": 1, "registry": reg}
    if op in ("login", "logout"):
        out["kind"] = op
    else:
        out["kind"] = "get"
        out["operation"] = op
        if op != "read":
            out["name"] = name
        if op in ("publish", "yank", "unyank"):
            out["vers"] = vers
        if op == "publish":
            out["cksum"] = cksum
    out.update(extra)
    return out


def request(op: str = "read", **fields: Any) -> CredentialRequest:
    """:func:`cargo_request`, parsed the way the app parses it."""
    return parse_request(json.dumps(cargo_request(op, **fields)))


def write_manifest(
    crate: Path, name: str, vers: str, *, deps: str = "", repository: str | None = None
) -> None:
    """(Re)write ``crate``/Cargo.toml: a publishable package ``name`` ``vers``."""
    repo = f'repository = "{repository}"\n' if repository else ""
    (crate / "Cargo.toml").write_text(
        f'[package]\nname = "{name}"\nversion = "{vers}"\nedition = "2021"\n'
        f'description = "test crate {name}"\nlicense = "MIT"\n{repo}\n[dependencies]\n{deps}'
    )


def write_crate(
    root: Path,
    name: str,
    vers: str = "0.1.0",
    *,
    deps: str = "",
    body: str = "42",
    repository: str | None = None,
) -> Path:
    """A library crate ``root``/``name`` the real cargo can package and publish: its manifest
    (``deps``: lines for ``[dependencies]``) and a src/lib.rs whose one function returns
    ``body`` (change it to change the crate's contents). Returns the crate's directory."""
    crate = root / name
    (crate / "src").mkdir(parents=True, exist_ok=True)
    write_manifest(crate, name, vers, deps=deps, repository=repository)
    (crate / "src" / "lib.rs").write_text(
        f"pub fn {name.replace('-', '_')}() -> u32 {{\n    {body}\n}}\n"
    )
    return crate


def paseto_claims(public: Any, token: str | bytes) -> dict[str, Any]:
    """The claims of ``token``, verified with ``public`` (a pyseto key)."""
    payload = pyseto.decode(public, token).payload
    assert isinstance(payload, bytes), payload
    claims: dict[str, Any] = json.loads(payload)
    return claims

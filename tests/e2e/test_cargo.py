"""End to end with the real cargo 1.95, the real bridge, a real Secret Service (gnome-keyring
on a private D-Bus), the app's real dialog (pytest-qt, offscreen) and the demo registry that
really verifies every token."""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from pathlib import Path

import pyseto
import pytest
from cargo_harness import BRIDGE, CLI, PUBLISH, harness_pem
from factories import paseto_claims, write_crate

from gui_approver.core import paseto
from gui_approver.core.keys.store import SigningKey
from gui_approver.registry.server import DemoRegistry
from gui_approver.registry.verify import RegisteredKey

pytestmark = pytest.mark.e2e

# -- tests -------------------------------------------------------------------------------------


def test_config_points_cargo_at_the_bridge(harness):
    text = (Path(harness.env["CARGO_HOME"]) / "config.toml").read_text()
    assert f'index = "{harness.registry.index_url}"' in text
    assert f'credential-provider = ["{BRIDGE}"]' in text


def test_publish_approved_lands_and_tokens_verify(harness, node_verifier):
    crate = write_crate(harness.tmp, "alpha")
    rc, _out, err = harness.run(PUBLISH, crate, decide=["approve"])
    assert rc == 0, err
    assert [e["vers"] for e in harness.registry.crates()["alpha"]] == ["0.1.0"]
    (dialog,) = harness.dialogs
    assert dialog["Operation"] == "publish" and dialog["Crate"] == "alpha"
    assert dialog["Version"] == "0.1.0" and dialog["Registry"] == "local"
    assert dialog["Index URL"] == harness.registry.index_url
    cksum = harness.registry.crates()["alpha"][0]["cksum"]
    assert dialog["Checksum (sha256)"].replace(" ", "").replace("\n", "") == cksum
    # The publish token: claims in cargo's order, bound to this crate; verified by node too.
    token = harness.registry.accepted_tokens[-1]
    payload = node_verifier(token, harness_pem(harness))
    claims = json.loads(payload["payload_raw"])
    assert list(claims) == ["iat", "mutation", "name", "vers", "cksum"]
    assert (claims["mutation"], claims["name"], claims["vers"], claims["cksum"]) == (
        "publish",
        "alpha",
        "0.1.0",
        cksum,
    )
    assert json.loads(payload["footer"]) == {
        "url": harness.registry.index_url,
        "kip": harness.record.kip,
    }


def test_publish_denied_stores_nothing(harness):
    crate = write_crate(harness.tmp, "beta")
    rc, _out, err = harness.run(PUBLISH, crate, decide=["deny"])
    assert rc != 0
    assert "publish of beta 0.1.0 was denied in gui-approver" in err
    assert "beta" not in harness.registry.crates()


@pytest.mark.slow
def test_yank_unyank_owner(harness):
    crate = write_crate(harness.tmp, "gamma")
    assert harness.run(PUBLISH, crate, decide=["approve"])[0] == 0
    rc, _, err = harness.run(
        ["yank", "--version", "0.1.0", "--registry", "local"], crate, decide=["approve"]
    )
    assert rc == 0, err
    assert harness.registry.crates()["gamma"][0]["yanked"] is True
    rc, _, err = harness.run(
        ["yank", "--undo", "--version", "0.1.0", "--registry", "local"], crate, decide=["approve"]
    )
    assert rc == 0, err
    assert harness.registry.crates()["gamma"][0]["yanked"] is False
    rc, _out, err = harness.run(
        ["owner", "--list", "--registry", "local"], crate, decide=["approve"]
    )
    assert rc == 0, err
    assert [d["Operation"] for d in harness.dialogs] == ["publish", "yank", "unyank", "owners"]
    assert "Version" not in harness.dialogs[-1]


def test_workspace_publish_two_crates(harness):
    ws = harness.tmp / "ws"
    ws.mkdir()
    (ws / "Cargo.toml").write_text('[workspace]\nmembers = ["base", "top"]\nresolver = "2"\n')
    write_crate(ws, "base")
    write_crate(
        ws, "top", deps='base = { path = "../base", version = "0.1.0", registry = "local" }\n'
    )
    rc, _out, err = harness.run(
        ["publish", "--workspace", *PUBLISH[1:]], ws, decide=["approve", "approve"], timeout=120
    )
    assert rc == 0, err
    assert [d["Crate"] for d in harness.dialogs] == ["base", "top"]
    crates = harness.registry.crates()
    assert crates["top"][0]["deps"][0]["name"] == "base"
    # each token bound to its own checksum
    tokens_seen = [t for t in harness.registry.accepted_tokens if t]
    pub = pyseto.Key.from_paserk(harness.record.public)
    cks = [paseto_claims(pub, t).get("cksum") for t in tokens_seen]
    assert crates["base"][0]["cksum"] in cks and crates["top"][0]["cksum"] in cks


def test_token_for_the_wrong_key_is_401(harness):
    # The registry knows only another key.
    (harness.registry.data_dir / "keys.json").unlink()
    other = SigningKey.generate()
    harness.registry.add_key(RegisteredKey(public=other.public_paserk))
    crate = write_crate(harness.tmp, "delta")
    rc, _out, err = harness.run(PUBLISH, crate, decide=["approve"])
    assert rc != 0
    assert "401" in err and "delta" not in harness.registry.crates()
    assert harness.registry.rejections[-1] == "unknown-key"


def test_token_for_another_registry_url_is_401(harness, app_env):
    # cargo reaches the same server under another URL: the token names that URL, so the
    # registry (whose index is the 127.0.0.1 one) refuses it.
    alias = harness.registry.index_url.replace("127.0.0.1", "localhost")
    harness.gui.store.delete(harness.record)
    rec = harness.gui.store.create(registry="alias", index_url=alias)
    harness.registry.add_key(RegisteredKey(public=rec.public))
    env = dict(harness.env)
    env["CARGO_REGISTRIES_LOCAL_INDEX"] = alias
    crate = write_crate(harness.tmp, "epsilon")
    rc, _out, err = harness.run(PUBLISH, crate, decide=["approve"], env=env)
    assert rc != 0 and "401" in err
    assert harness.registry.rejections[-1] == "wrong-url"


def test_app_not_running_and_not_startable(app_env, tmp_path):
    registry = DemoRegistry(tmp_path / "reg")
    registry.start()
    try:
        subprocess.run(
            [CLI, "configure-cargo", "--registry", "local", "--index", registry.index_url],
            env=app_env,
            check=True,
            capture_output=True,
        )
        env = dict(app_env, GUI_APPROVER_APP_COMMAND="/bin/false")
        crate = write_crate(tmp_path, "zeta")
        t0 = time.monotonic()
        proc = subprocess.run(
            ["cargo", *PUBLISH], cwd=crate, env=env, capture_output=True, text=True, timeout=60
        )
        elapsed = time.monotonic() - t0
        assert proc.returncode != 0
        assert "gui-approver is not running" in proc.stderr
        assert "start it with `gui-approver`" in proc.stderr
        assert elapsed < 10, elapsed  # cargo's own start-up included; the bridge takes < 1 s
    finally:
        registry.stop()


# -- our token builder against tokens made by cargo's own cargo:paseto ----------------------

IAT = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?Z$")


@pytest.mark.parametrize("subject", [None, "sub ject/Ω"])
def test_claims_and_footer_match_cargo_paseto_byte_for_byte(tmp_path, subject):
    key = SigningKey.generate()
    registry = DemoRegistry(tmp_path / "reg")
    registry.start()
    index_url = registry.index_url
    try:
        registry.add_key(RegisteredKey(public=key.public_paserk, subject=subject))
        home = tmp_path / "cargo-home"
        home.mkdir()
        (home / "config.toml").write_text(
            f'[registries.local]\nindex = "{registry.index_url}"\n'
            'credential-provider = "cargo:paseto"\n'
        )
        creds = f'[registries.local]\nsecret-key = "{key.secret_paserk().expose()}"\n'
        if subject:
            creds += f"secret-key-subject = {json.dumps(subject)}\n"
        (home / "credentials.toml").write_text(creds)
        env = {k: v for k, v in os.environ.items() if not k.startswith("CARGO_")}
        env.update(CARGO_HOME=str(home), RUSTC_BOOTSTRAP="1", CARGO_TERM_COLOR="never")
        crate = write_crate(tmp_path, "eta")
        z = ["-Z", "asymmetric-token"]
        steps = [
            ["publish", "--registry", "local", "--no-verify", "--allow-dirty"],
            ["yank", "--version", "0.1.0", "--registry", "local"],
            ["yank", "--undo", "--version", "0.1.0", "--registry", "local"],
            ["owner", "--list", "--registry", "local"],
        ]
        for step in steps:
            proc = subprocess.run(
                ["cargo", *z, *step], cwd=crate, env=env, capture_output=True, text=True, timeout=60
            )
            assert proc.returncode == 0, proc.stderr
    finally:
        registry.stop()
    pub = pyseto.Key.from_paserk(key.public_paserk)
    seen = [pyseto.decode(pub, t) for t in registry.accepted_tokens]
    claims_seen = [paseto_claims(pub, t) for t in registry.accepted_tokens]
    mutations = [c for c in claims_seen if "mutation" in c]
    assert [m["mutation"] for m in mutations] == ["publish", "yank", "unyank", "owners"]
    for decoded, claims in zip(seen, claims_seen, strict=True):
        assert IAT.match(claims["iat"]), claims["iat"]
        ours = paseto.build_claims(
            iat=claims["iat"],
            subject=subject,
            mutation=claims.get("mutation"),
            name=claims.get("name"),
            vers=claims.get("vers"),
            cksum=claims.get("cksum"),
        )
        assert ours == decoded.payload
        assert paseto.build_footer(index_url, key.kip) == decoded.footer
        # our iat formatter reproduces cargo's form for the same instant
        assert paseto.format_iat(_iat_ns(claims["iat"])) == claims["iat"]


def _iat_ns(iat: str) -> int:
    from datetime import datetime

    base, _, frac = iat.rstrip("Z").partition(".")
    secs = int(datetime.fromisoformat(base + "+00:00").timestamp())
    return secs * 1_000_000_000 + int((frac or "0").ljust(9, "0"))

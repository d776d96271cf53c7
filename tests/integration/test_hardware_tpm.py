"""The TPM path (optional): a P-384 key made with tpm2_ptool in a software TPM (swtpm, through
tpm2-abrmd on a private bus) is adopted with `key new --use-existing` and signs tokens that
pyseto and the node verifier accept. Skipped where the TPM tools are not installed
(packaging/bootstrap.sh test installs them on Debian)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pyseto
import pytest
import softhsm
from checks import json_of
from fakes import MemoryKeychain
from softhsm import PIN

from gui_approver.client.protocol import Get, Publish, RegistryInfo
from gui_approver.core import paseto
from gui_approver.core.keys import pkcs11
from gui_approver.core.keys.store import KeyStore
from gui_approver.secret import Secret

pytestmark = pytest.mark.slow
CLI = str(Path(sys.executable).parent / "gui-approver")
INDEX = "sparse+http://127.0.0.1:8765/index/"


@pytest.fixture
def tpm(tmp_path_factory, monkeypatch):
    missing = softhsm.tpm_available()
    if missing:
        pytest.skip(f"TPM tools not installed: {missing}")
    t = softhsm.start_soft_tpm(tmp_path_factory.mktemp("tpm"))
    pkcs11.reset_backend()
    for k, v in t.env.items():
        monkeypatch.setenv(k, v)
    try:
        yield t
    finally:
        pkcs11.reset_backend()
        t.stop()


def test_tpm_key_adopted_and_signing(tpm, app_env, tmp_path, node_verifier, monkeypatch):
    env = {**app_env, **tpm.env}
    for k, v in tpm.env.items():  # after app_env: tpm2-abrmd's bus, not the keychain's
        monkeypatch.setenv(k, v)
    listed = json.loads(
        subprocess.run(
            [CLI, "hardware", "list", "--module", tpm.module, "--json"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        ).stdout
    )
    (tok,) = listed["modules"][0]["tokens"]
    (key,) = tok["keys"]
    assert tok["label"] == "tpm" and key["label"] == "tpm-key"
    # tpm2-pkcs11 cannot generate with our template (it ties SIGN to ENCRYPT): a clear error.
    gen = subprocess.run(
        [
            CLI,
            "key",
            "new",
            "--registry",
            "tpm",
            "--index",
            INDEX,
            "--pkcs11",
            "pkcs11:token=tpm;id=%09",
            "--module",
            tpm.module,
        ],
        env=env,
        input=PIN + "\n",
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert gen.returncode == 1 and "--use-existing" in gen.stderr
    new = subprocess.run(
        [
            CLI,
            "key",
            "new",
            "--registry",
            "tpm",
            "--index",
            INDEX,
            "--pkcs11",
            key["uri"],
            "--module",
            tpm.module,
            "--use-existing",
            "--json",
        ],
        env=env,
        input=PIN + "\n",
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert new.returncode == 0, new.stderr
    rec_json = json.loads(new.stdout)
    assert rec_json["public"] == key["public"]
    attrs = rec_json["hardware"]["attributes"]
    assert attrs["never_extractable"] and attrs["always_sensitive"]

    # Signing in process through the same path as any token.
    info = pkcs11.backend().adopt(tpm.module, key["uri"], Secret(PIN))
    pkcs11.backend().logout_all()
    store = KeyStore(MemoryKeychain(), tmp_path / "keys.json", unlocker=lambda _r, _w: Secret(PIN))
    rec = store.add_hardware(info, registry="tpm", index_url=INDEX, subject=None)
    request = Get(RegistryInfo(index_url=INDEX, name="tpm"), Publish("t", "1.0.0", "cd" * 32))
    token = paseto.sign_request(store.signing_key(rec), request, subject=None)
    claims = json_of(pyseto.decode(pyseto.Key.from_paserk(rec.public), token).payload)
    assert claims["cksum"] == "cd" * 32
    from cryptography.hazmat.primitives import serialization

    from gui_approver.core.keys.store import parse_public_paserk

    pem = (
        parse_public_paserk(rec.public)
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    assert json.loads(node_verifier(token, pem)["payload_raw"]) == claims
    store.lock()
    assert not store.is_unlocked(rec)

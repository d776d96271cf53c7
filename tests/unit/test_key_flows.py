"""core/keys/flows.py: the key flows CLI and GUI share (written once)."""

from __future__ import annotations

from pathlib import Path

import pytest
from fakes import MemoryKeychain

from gui_approver.core import cargo_config
from gui_approver.core.keys import flows
from gui_approver.core.keys.store import KeyStore, SigningKey
from gui_approver.errors import KeychainUnavailable, KeyExists

INDEX = "sparse+http://127.0.0.1:8765/index/"


class FailingKeychain(MemoryKeychain):
    def set(self, account, secret):
        raise KeychainUnavailable("the keychain is not available")


def _cargo_home(tmp_path: Path, key: SigningKey) -> tuple[Path, cargo_config.CargoSecret]:
    home = tmp_path / "cargo"
    home.mkdir()
    (home / "config.toml").write_text(f'[registries.local]\nindex = "{INDEX}"\n')
    creds = home / "credentials.toml"
    creds.write_text(f'[registries.local]\nsecret-key = "{key.secret_paserk().expose()}"\n')
    creds.chmod(0o600)
    (item,) = cargo_config.find_cargo_secrets(home)
    return home, item


def test_import_moves_the_key_then_takes_it_off_disk_then_configures_cargo(tmp_path):
    key = SigningKey.generate()
    home, item = _cargo_home(tmp_path, key)
    store = KeyStore(MemoryKeychain(), index_path=tmp_path / "keys.json")
    flows.import_cargo_key(store, item, key, INDEX, origin="cli", home=home)
    rec = store.find(INDEX)
    assert rec is not None and rec.kip == key.kip
    assert "secret-key" not in (home / "credentials.toml").read_text()
    assert "credential-provider" in (home / "config.toml").read_text()
    lines = flows.import_report("local", item.path, key)
    assert lines[0] == f"Imported the key of registry local from {item.path}."


def test_a_keychain_failure_leaves_the_key_on_disk_and_cargo_unchanged(tmp_path):
    key = SigningKey.generate()
    home, item = _cargo_home(tmp_path, key)
    before = {p.name: p.read_bytes() for p in home.iterdir()}
    store = KeyStore(FailingKeychain(), index_path=tmp_path / "keys.json")
    with pytest.raises(KeychainUnavailable):
        flows.import_cargo_key(store, item, key, INDEX, origin="cli", home=home)
    assert {p.name: p.read_bytes() for p in home.iterdir()} == before


def test_a_different_key_already_stored_is_refused_and_nothing_changes(tmp_path):
    key = SigningKey.generate()
    home, item = _cargo_home(tmp_path, key)
    store = KeyStore(MemoryKeychain(), index_path=tmp_path / "keys.json")
    store.add(SigningKey.generate(), registry="local", index_url=INDEX, subject=None, origin="cli")
    before = {p.name: p.read_bytes() for p in home.iterdir()}
    with pytest.raises(KeyExists, match="already has a different key"):
        flows.import_cargo_key(store, item, key, INDEX, origin="cli", home=home)
    assert {p.name: p.read_bytes() for p in home.iterdir()} == before


def test_public_pem_is_the_same_key(tmp_path):
    key = SigningKey.generate()
    pem = flows.public_pem(key.public_paserk)
    assert pem.startswith("-----BEGIN PUBLIC KEY-----") and pem.endswith("-----END PUBLIC KEY-----")

"""The leak scanner finds a planted secret in every form it claims to look for."""

from __future__ import annotations

import base64

import pytest
from leakscan import scan, secret_forms

from gui_approver.core.keys.store import SigningKey


@pytest.mark.parametrize("form", ["paserk", "raw", "hex", "HEX", "b64", "b64url"])
def test_planted_secret_is_found(tmp_path, form):
    key = SigningKey.generate()
    paserk = key.secret_paserk().expose()
    raw = base64.urlsafe_b64decode(paserk[len("k3.secret.") :] + "==")
    data = {
        "paserk": paserk.encode(),
        "raw": raw,
        "hex": raw.hex().encode(),
        "HEX": raw.hex().upper().encode(),
        "b64": base64.b64encode(raw),
        "b64url": base64.urlsafe_b64encode(raw).rstrip(b"="),
    }[form]
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "log.txt").write_bytes(b"prefix " + data + b" suffix")
    hits = scan(paserk, paths=[tmp_path])
    assert hits, form
    assert all(paserk not in repr(h) for h in hits)  # a hit never echoes the secret


def test_clean_tree_and_texts_have_no_hits(tmp_path):
    key = SigningKey.generate()
    (tmp_path / "f").write_text(key.public_paserk + key.kip)
    assert scan(key.secret_paserk().expose(), paths=[tmp_path], texts=["nothing"]) == []
    assert scan(key.secret_paserk().expose(), paths=[], texts=[key.secret_paserk().expose()])
    assert len(secret_forms(key.secret_paserk().expose())) >= 6


@pytest.mark.parametrize("encoding", ["utf-8", "utf-16-le", "hex", "b64"])
def test_planted_pin_is_found(tmp_path, encoding):
    from leakscan import scan_pin

    pin = "gat-Pin-7f3a9c"
    data = {
        "utf-8": pin.encode(),
        "utf-16-le": pin.encode("utf-16-le"),
        "hex": pin.encode().hex().encode(),
        "b64": base64.b64encode(pin.encode()),
    }[encoding]
    (tmp_path / "state.bin").write_bytes(b"\x00prefix" + data + b"suffix")
    hits = scan_pin(pin, paths=[tmp_path])
    assert hits and all(pin not in repr(h) for h in hits)
    assert scan_pin(pin, texts=["no pin here"]) == []

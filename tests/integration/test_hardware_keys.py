"""Hardware keys (PKCS#11) against a real SoftHSM2 token with a private SOFTHSM2_CONF per test:
generation and attributes, PASERK, signing verified by pyseto and the node verifier, wrong PIN,
missing module/token, a key that no longer matches, locking, per-signature PIN, recovery."""

from __future__ import annotations

import json
import threading

import pkcs11 as p11
import pyseto
import pytest
from checks import json_of
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from fakes import MemoryKeychain
from softhsm import PIN, WRONG_PIN

from gui_approver.client.protocol import Get, Publish, RegistryInfo
from gui_approver.core import paseto
from gui_approver.core.keys import pkcs11
from gui_approver.core.keys.store import (
    KeyStore,
    parse_public_paserk,
    paserk_pid,
    public_paserk_from_key,
)
from gui_approver.errors import GuiApproverError, KeyLocked
from gui_approver.secret import Secret

INDEX = "sparse+http://127.0.0.1:9/index/"


def publish_request() -> Get:
    return Get(RegistryInfo(index_url=INDEX, name="local"), Publish("alpha", "0.1.0", "ab" * 32))


class Asker:
    """An Unlocker that records each question and answers from a list (None = cancel)."""

    def __init__(self, *answers: str | None) -> None:
        self.answers = list(answers)
        self.asked: list[str] = []

    def __call__(self, record, why):
        self.asked.append(why)
        answer = self.answers.pop(0) if self.answers else None
        return Secret(answer) if answer is not None else None


def token_uri(label: str = "gat-token", key_id: str = "%01") -> str:
    return f"pkcs11:token={label};id={key_id};type=private"


@pytest.fixture
def token(softhsm):
    softhsm.init_token("gat-token")
    return softhsm


def new_store(tmp_path, unlocker=None) -> KeyStore:
    return KeyStore(MemoryKeychain(), tmp_path / "keys.json", unlocker=unlocker)


def make_key(token, tmp_path, *, always_authenticate=False, unlocker=None, key_id="%01"):
    info = pkcs11.backend().generate(
        token.module,
        token_uri(key_id=key_id),
        Secret(PIN),
        label="gat",
        always_authenticate=always_authenticate,
    )
    pkcs11.backend().logout_all()  # the CLI process that created it has exited
    store = new_store(tmp_path, unlocker)
    rec = store.add_hardware(info, registry="local", index_url=INDEX, subject=None)
    return info, store, rec


def pem_of(public: str) -> str:
    return (
        parse_public_paserk(public)
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


# -- URIs and points ----------------------------------------------------------------------------


def test_uri_parsing_roundtrip_and_refusals():
    u = pkcs11.parse_uri(
        "pkcs11:token=YubiKey%20PIV%20%2312345678;id=%01;type=private"
        "?module-path=/usr/lib/x86_64-linux-gnu/libykcs11.so"
    )
    assert (u.token, u.id, u.type) == ("YubiKey PIV #12345678", b"\x01", "private")
    assert u.module_path == "/usr/lib/x86_64-linux-gnu/libykcs11.so"
    assert pkcs11.parse_uri(str(u)) == u
    for bad in (
        "pkcs11:token=a;id=%01?pin-value=1234",
        "pkcs11:token=a;pin-value=1234",
        "pkcs11:token=a?pin-source=file:/tmp/pin",
    ):
        with pytest.raises(pkcs11.UnsafeUri) as exc:
            pkcs11.parse_uri(bad)
        assert "1234" not in str(exc.value) and "/tmp/pin" not in str(exc.value)
    for bad in (
        "http://x",
        "pkcs11:token=a;bogus=1",
        "pkcs11:type=secret-key",
        "pkcs11:token=a;token=b",
        "pkcs11:slot-id=x",
    ):
        with pytest.raises(pkcs11.BadUri):
            pkcs11.parse_uri(bad)


def test_ec_point_der_wrapped_or_raw():
    pub = ec.generate_private_key(ec.SECP384R1()).public_key()
    raw = pub.public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    comp = pub.public_bytes(serialization.Encoding.X962, serialization.PublicFormat.CompressedPoint)
    assert pkcs11.compress_point(b"\x04\x61" + raw) == comp
    assert pkcs11.compress_point(raw) == comp
    assert pkcs11.compress_point(comp) == comp
    p256 = (
        ec.generate_private_key(ec.SECP256R1())
        .public_key()
        .public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    )
    with pytest.raises(pkcs11.HardwareKeyError):
        pkcs11.compress_point(b"\x04\x41" + p256)


# -- generation, attributes, PASERK ---------------------------------------------------------


def test_generated_key_attributes_and_private_value_unreadable(token, tmp_path):
    info, _store, rec = make_key(token, tmp_path)
    assert info.attributes["always_sensitive"] and info.attributes["never_extractable"]
    assert info.attributes["local"] and info.attributes["sensitive"]
    assert not info.attributes["extractable"]
    assert rec.protection == "hardware" and rec.hardware is not None
    assert dict(rec.hardware.attributes)["never_extractable"] is True
    assert "pin" not in json.dumps(rec.to_json()).lower()
    # The record survives a reload from keys.json.
    assert new_store(tmp_path).find(INDEX) == rec
    # The private value cannot be read, even logged in (directly through PKCS#11).
    pkcs11.reset_backend()
    lib = p11.lib(token.module)
    try:
        with lib.get_token(token_label="gat-token").open(user_pin=PIN) as s:
            (priv,) = s.get_objects({p11.Attribute.CLASS: p11.ObjectClass.PRIVATE_KEY})
            with pytest.raises(p11.AttributeSensitive):
                priv[p11.Attribute.VALUE]
    finally:
        p11.unload(token.module)


def test_paserk_public_and_pid_match_the_token_key(token, tmp_path):
    _info, _store, rec = make_key(token, tmp_path)
    pkcs11.reset_backend()
    lib = p11.lib(token.module)
    try:
        with lib.get_token(token_label="gat-token").open() as s:
            (pub,) = s.get_objects({p11.Attribute.CLASS: p11.ObjectClass.PUBLIC_KEY})
            point = bytes(pub[p11.Attribute.EC_POINT])[2:]  # DER-wrapped on SoftHSM2
    finally:
        p11.unload(token.module)
    key = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP384R1(), point)
    assert rec.public == public_paserk_from_key(key)
    assert rec.kip == paserk_pid(rec.public)
    assert pyseto.Key.from_paserk(rec.public).to_paserk_id() == rec.kip


def test_generate_refuses_existing_id_and_adopt_refuses_other_curves(token, tmp_path):
    make_key(token, tmp_path)
    with pytest.raises(pkcs11.HardwareKeyError, match="already holds a key"):
        pkcs11.backend().generate(token.module, token_uri(), Secret(PIN), label="x")
    adopted = pkcs11.backend().adopt(token.module, token_uri(), Secret(PIN))
    assert adopted.attributes["local"]
    # A P-256 key on the same token (SoftHSM2 accepts it; we must not).
    pkcs11.reset_backend()
    lib = p11.lib(token.module)
    try:
        with lib.get_token(token_label="gat-token").open(rw=True, user_pin=PIN) as s:
            s.generate_keypair(
                p11.KeyType.EC,
                capabilities=p11.MechanismFlag.SIGN | p11.MechanismFlag.VERIFY,
                public_template={
                    p11.Attribute.EC_PARAMS: bytes.fromhex("06082a8648ce3d030107"),
                    p11.Attribute.ID: b"\x07",
                    p11.Attribute.TOKEN: True,
                },
                private_template={
                    p11.Attribute.ID: b"\x07",
                    p11.Attribute.TOKEN: True,
                    p11.Attribute.SENSITIVE: True,
                    p11.Attribute.EXTRACTABLE: False,
                },
                store=True,
            )
    finally:
        p11.unload(token.module)
    with pytest.raises(pkcs11.HardwareKeyError, match="P-384"):
        pkcs11.backend().adopt(token.module, token_uri(key_id="%07"), Secret(PIN))


# -- signing -------------------------------------------------------------------------------------


def test_sign_after_pin_verifies_with_pyseto_and_node(token, tmp_path, node_verifier):
    asker = Asker(PIN)
    _info, store, rec = make_key(token, tmp_path, unlocker=asker)
    assert not store.is_unlocked(rec) and store.needs_login(rec)
    key = store.signing_key(rec)
    assert asker.asked == ["enter the PIN of the security key to sign"]
    token_text = paseto.sign_request(key, publish_request(), subject=None)
    assert repr(key) == f"HardwareSigningKey(kip={rec.kip!r})"
    decoded = pyseto.decode(pyseto.Key.from_paserk(rec.public), token_text)
    claims = json_of(decoded.payload)
    assert (claims["mutation"], claims["name"], claims["cksum"]) == ("publish", "alpha", "ab" * 32)
    assert json_of(decoded.footer) == {"url": INDEX, "kip": rec.kip}
    node = node_verifier(token_text, pem_of(rec.public))
    assert json.loads(node["payload_raw"]) == claims
    # Tampered: rejected.
    head, body, foot = token_text.rsplit(".", 2)
    with pytest.raises(pyseto.VerifyError):
        pyseto.decode(
            pyseto.Key.from_paserk(rec.public),
            f"{head}.{body[:-2]}{'A' if body[-2] != 'A' else 'B'}{body[-1]}.{foot}",
        )
    # Logged in now: the next signature asks nothing.
    assert store.is_unlocked(rec) and not store.needs_login(rec)
    paseto.sign_request(store.signing_key(rec), publish_request(), subject=None)
    assert len(asker.asked) == 1


def test_wrong_pin_is_not_retried_and_recovers(token, tmp_path):
    asker = Asker(WRONG_PIN, PIN)
    _info, store, rec = make_key(token, tmp_path, unlocker=asker)
    with pytest.raises(pkcs11.WrongPin) as exc:
        store.signing_key(rec)
    assert "wrong PIN" in str(exc.value) and WRONG_PIN not in exc.value.full()
    assert len(asker.asked) == 1  # never retried automatically
    assert "Few tries left" in str(exc.value) or "tries" not in str(exc.value)
    assert not store.is_unlocked(rec)
    key = store.signing_key(rec)  # the next request asks again and works
    pyseto.decode(
        pyseto.Key.from_paserk(rec.public),
        paseto.sign_request(key, publish_request(), subject=None),
    )


def test_cancelled_pin_or_no_unlocker_signs_nothing(token, tmp_path):
    _info, store, rec = make_key(token, tmp_path, unlocker=Asker(None))
    with pytest.raises(KeyLocked, match="no PIN"):
        store.signing_key(rec)
    store.unlocker = None
    with pytest.raises(KeyLocked) as exc:
        store.signing_key(rec)
    assert "gui-approver key unlock --registry local" in exc.value.full()


def test_missing_module(token, tmp_path):
    _info, store, rec = make_key(token, tmp_path, unlocker=Asker(PIN))
    from dataclasses import replace

    gone = replace(rec, hardware=replace(rec.hardware, module=str(tmp_path / "nope.so")))
    with pytest.raises(pkcs11.ModuleMissing) as exc:
        store.signing_key(gone)
    assert "nope.so" in str(exc.value) and "--module" in exc.value.full()


def test_missing_token(token, tmp_path):
    asker = Asker(PIN)
    _info, store, rec = make_key(token, tmp_path, unlocker=asker)
    pkcs11.reset_backend()
    token.delete_token("gat-token")
    with pytest.raises(pkcs11.TokenMissing) as exc:
        store.signing_key(rec)
    assert "'gat-token' is not present" in str(exc.value)
    assert "plug in" in exc.value.full()
    assert asker.asked == []  # no PIN asked for a token that is not there


def test_removed_token_is_a_clear_error_and_drops_the_login(token, tmp_path):
    asker = Asker(PIN, PIN)
    _info, store, rec = make_key(token, tmp_path, unlocker=asker)
    paseto.sign_request(store.signing_key(rec), publish_request(), subject=None)
    assert store.is_unlocked(rec)
    token.delete_token("gat-token")  # unplugged while logged in
    with pytest.raises(pkcs11.TokenMissing) as exc:
        store.signing_key(rec)
    assert "plug in the security key" in exc.value.full()
    assert not store.is_unlocked(rec)  # the stale login is gone
    assert len(asker.asked) == 1


def test_token_key_no_longer_matching_the_record_is_refused(token, tmp_path):
    asker = Asker(PIN)
    _info, store, rec = make_key(token, tmp_path, unlocker=asker)
    # Someone replaces the key under the same id.
    pkcs11.reset_backend()
    lib = p11.lib(token.module)
    try:
        with lib.get_token(token_label="gat-token").open(rw=True, user_pin=PIN) as s:
            for obj in list(s.get_objects({p11.Attribute.ID: b"\x01"})):
                obj.destroy()
    finally:
        p11.unload(token.module)
    pkcs11.backend().generate(token.module, token_uri(), Secret(PIN), label="other")
    pkcs11.backend().logout_all()
    with pytest.raises(pkcs11.KeyMismatch) as exc:
        store.signing_key(rec)
    assert "no longer holds the key recorded for registry local" in str(exc.value)
    assert asker.asked == []  # checked before any PIN is asked
    # Also refused at the signature itself (the token changed after the PIN was given).
    b = pkcs11.backend()
    b.login(token.module, rec.hardware.uri, Secret(PIN))
    with pytest.raises(pkcs11.KeyMismatch):
        b.sign_digest(
            token.module,
            rec.hardware.uri,
            b"\0" * 48,
            expected_point=parse_public_paserk(rec.public).public_bytes(
                serialization.Encoding.X962, serialization.PublicFormat.CompressedPoint
            ),
        )


def test_lock_and_idle_lock_close_the_login(token, tmp_path):
    asker = Asker(PIN, PIN, PIN)
    _info, store, rec = make_key(token, tmp_path, unlocker=asker)
    store.signing_key(rec)
    assert store.is_unlocked(rec)
    assert store.lock() == 1
    assert not store.is_unlocked(rec)
    store.signing_key(rec)  # asks again
    assert len(asker.asked) == 2
    assert store.lock_if_idle(3600) == 0 and store.is_unlocked(rec)
    assert store.lock_if_idle(0) == 1
    assert not store.is_unlocked(rec)
    # The token really logged out: signing without a login is refused by the backend.
    b = pkcs11.backend()
    with pytest.raises(KeyLocked):
        b.sign_digest(token.module, rec.hardware.uri, b"\0" * 48, expected_point=b"")


def test_an_unapproved_use_never_asks_for_the_pin(token, tmp_path):
    """The service passes may_ask=False for a silent read; if the token logged out in the
    meantime (idle lock), or the key wants the PIN per signature, it fails without asking."""
    asker = Asker(PIN, PIN)
    _info, store, rec = make_key(token, tmp_path, unlocker=asker)
    assert store.needs_login(rec)
    with pytest.raises(KeyLocked, match="not approved") as exc:
        store.signing_key(rec, may_ask=False)
    assert "key unlock --registry local" in exc.value.full()
    assert asker.asked == []
    store.signing_key(rec)  # approved: asks
    assert len(asker.asked) == 1
    assert not store.needs_login(rec)
    store.signing_key(rec, may_ask=False)  # logged in: a silent read signs
    assert len(asker.asked) == 1


def test_always_authenticate_key_always_needs_approval(token, tmp_path):
    asker = Asker(PIN)
    _info, store, rec = make_key(token, tmp_path, always_authenticate=True, unlocker=asker)
    store.unlock(rec, Secret(PIN))
    assert store.is_unlocked(rec) and store.needs_login(rec)  # every use asks a PIN
    with pytest.raises(KeyLocked, match="every signature"):
        store.signing_key(rec, may_ask=False)
    assert asker.asked == []


def test_unlock_ahead_of_use(token, tmp_path):
    asker = Asker()
    _info, store, rec = make_key(token, tmp_path, unlocker=asker)
    with pytest.raises(pkcs11.WrongPin):
        store.unlock(rec, Secret("999999"))
    store.unlock(rec, Secret(PIN))
    assert store.is_unlocked(rec)
    store.signing_key(rec)
    assert asker.asked == []


def test_always_authenticate_key_needs_the_pin_per_signature(token, tmp_path):
    asker = Asker(PIN, PIN, "111111", PIN)
    info, store, rec = make_key(token, tmp_path, always_authenticate=True, unlocker=asker)
    assert info.always_authenticate and rec.hardware.always_authenticate
    pub = pyseto.Key.from_paserk(rec.public)
    # First use: one PIN logs in and authorises this signature.
    pyseto.decode(pub, paseto.sign_request(store.signing_key(rec), publish_request(), subject=None))
    assert len(asker.asked) == 1
    # Logged in, yet the next signature asks again.
    pyseto.decode(pub, paseto.sign_request(store.signing_key(rec), publish_request(), subject=None))
    assert asker.asked[1] == "this key asks for its PIN for every signature"
    # A wrong per-signature PIN fails that signature only...
    with pytest.raises(pkcs11.WrongPin):
        paseto.sign_request(store.signing_key(rec), publish_request(), subject=None)
    # ...and the next one recovers (a fresh session; the stuck one was thrown away).
    pyseto.decode(pub, paseto.sign_request(store.signing_key(rec), publish_request(), subject=None))
    assert len(asker.asked) == 4
    # Without the per-signature PIN the token refuses.
    b = pkcs11.backend()
    point = parse_public_paserk(rec.public).public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.CompressedPoint
    )
    with pytest.raises(KeyLocked, match="every signature"):
        b.sign_digest(token.module, rec.hardware.uri, b"\0" * 48, expected_point=point)


def test_touch_hint_shown_when_policy_known_and_taken_down(token, tmp_path):
    from dataclasses import replace

    _info, store, rec = make_key(token, tmp_path, unlocker=Asker(PIN))
    shown: list[str] = []
    down = threading.Event()

    def notifier(record):
        shown.append(record.registry)
        return down.set

    store.touch_notifier = notifier
    touchy = replace(rec, hardware=replace(rec.hardware, touch_policy="always"))
    paseto.sign_request(store.signing_key(touchy), publish_request(), subject=None)
    assert shown == ["local"] and down.is_set()
    # Unknown policy and a fast token: no hint at all.
    shown.clear()
    paseto.sign_request(store.signing_key(rec), publish_request(), subject=None)
    assert shown == []


def test_all_pkcs11_calls_on_one_thread(token, tmp_path, monkeypatch):
    threads: set[str] = set()
    real = p11.lib

    def spy(so):
        threads.add(threading.current_thread().name)
        return real(so)

    monkeypatch.setattr(p11, "lib", spy)
    _info, store, rec = make_key(token, tmp_path, unlocker=Asker(PIN))
    t = threading.Thread(
        target=lambda: paseto.sign_request(store.signing_key(rec), publish_request(), subject=None)
    )
    t.start()
    t.join()
    assert threads == {"pkcs11"}


def test_list_tokens_shows_p384_keys_without_pin(token, tmp_path):
    _info, _store, rec = make_key(token, tmp_path)
    (tok,) = pkcs11.backend().list_tokens(token.module)
    assert tok.label == "gat-token" and "LOGIN_REQUIRED" in tok.flags
    (key,) = tok.keys
    assert key.id == "01" and "pkcs11:token=gat-token" in key.uri
    assert "k3.public." + pyseto.Key.from_paserk(rec.public).to_paserk()[10:] == rec.public
    assert pkcs11.parse_uri(key.uri).id == b"\x01"


def test_rotation_never_moves_a_hardware_key_into_the_keychain(token, tmp_path):
    from gui_approver.errors import ConfigError

    _info, store, rec = make_key(token, tmp_path)
    with pytest.raises(ConfigError, match="hardware token") as exc:
        store.start_rotation(rec)
    assert "--pkcs11" in exc.value.full()
    assert store.list() == [rec] and store.keychain.items == {}


def test_errors_are_gui_approver_errors_with_hints():
    for cls in (
        pkcs11.ModuleMissing,
        pkcs11.TokenMissing,
        pkcs11.TokenRemoved,
        pkcs11.KeyMismatch,
        pkcs11.PinBlocked,
        pkcs11.TouchTimeout,
    ):
        assert issubclass(cls, GuiApproverError) and cls.hint


def test_touch_policy_from_the_yubico_vendor_attribute(token, tmp_path):
    info, _store, _rec = make_key(token, tmp_path)
    assert info.touch_policy is None  # SoftHSM2 has no such attribute: unknown, not an error
    # What ykcs11 returns for CKA_YUBICO_TOUCH_POLICY (a one-byte policy):
    for raw, want in (
        (b"\x01", "never"),
        (b"\x02", "always"),
        (b"\x03", "cached"),
        (b"\x00", None),
        (b"", None),
    ):
        assert pkcs11._touch_policy({pkcs11.CKA_YUBICO_TOUCH_POLICY: raw}) == want


def test_touch_hint_appears_after_half_a_second_when_the_token_blocks(token, tmp_path):
    """Unknown touch policy: the hint shows only once the signature has blocked for
    TOUCH_HINT_DELAY (here the worker thread is held busy, as a token waiting for a touch
    holds it), and goes away when the signature is made."""
    _info, store, rec = make_key(token, tmp_path, unlocker=Asker(PIN))
    key = store.signing_key(rec)
    shown, down = threading.Event(), threading.Event()

    def notifier(_record):
        shown.set()
        return down.set

    key._notifier = notifier
    release = threading.Event()
    pkcs11.backend()._worker.submit(lambda: release.wait(30))  # the "token" blocks
    result: list[str] = []
    t = threading.Thread(
        target=lambda: result.append(paseto.sign_request(key, publish_request(), subject=None))
    )
    t.start()
    assert shown.wait(10)  # shown while blocked...
    assert not down.is_set() and not result
    release.set()
    t.join(10)
    assert result and down.is_set()  # ...and taken down once signed
    pyseto.decode(pyseto.Key.from_paserk(rec.public), result[0])

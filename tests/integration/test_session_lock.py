"""Keys lock when the session locks or the machine suspends: logind's Session.Lock and
Manager.PrepareForSleep(true) on a private "system" bus, the freedesktop / GNOME ScreenSaver
ActiveChanged(true) on a private session bus (real dbus-daemons; signals really emitted)."""

from __future__ import annotations

import pytest
from envtools import start_session_bus, wait_for
from fakes import MemoryKeychain
from jeepney import DBusAddress, new_signal
from jeepney.bus_messages import message_bus
from softhsm import PIN

from gui_approver.core.keys import pkcs11
from gui_approver.core.keys.store import KeyStore
from gui_approver.core.sessionlock import LOGIND, SessionLockWatcher
from gui_approver.secret import Secret

INDEX = "sparse+http://127.0.0.1:9/index/"


@pytest.fixture
def buses(tmp_path):
    system = start_session_bus(tmp_path / "system")
    session = start_session_bus(tmp_path / "session")
    try:
        yield system, session
    finally:
        system.stop()
        session.stop()


class Locks:
    def __init__(self):
        self.reasons: list[str] = []

    def __call__(self, reason):
        self.reasons.append(reason)


class Watcher(SessionLockWatcher):
    locks: Locks  # what the fixture hands it, for the tests to read


@pytest.fixture
def watcher(buses):
    system, session = buses
    locks = Locks()
    w = Watcher(locks, system_address=system.address, session_address=session.address)
    w.start()
    assert w.ready.wait(10)
    w.locks = locks
    yield w
    w.stop()


def emit(bus, path, iface, member, *args, own=None):
    with bus.connect() as conn:
        if own:
            conn.send_and_get_reply(message_bus.RequestName(own), timeout=5)
        sig = "b" if args else None
        conn.send(
            new_signal(DBusAddress(path, interface=iface), member, sig, tuple(args))
            if sig
            else new_signal(DBusAddress(path, interface=iface), member)
        )
        # A round trip makes sure the signal left before the connection closes.
        conn.send_and_get_reply(message_bus.GetId(), timeout=5)


def test_logind_lock_and_suspend(buses, watcher):
    system, _session = buses
    # Not from logind: ignored (only logind's signals count on the system bus).
    emit(system, "/org/freedesktop/login1/session/c1", "org.freedesktop.login1.Session", "Lock")
    emit(
        system,
        "/org/freedesktop/login1",
        "org.freedesktop.login1.Manager",
        "PrepareForSleep",
        False,
        own=LOGIND,
    )  # resuming: no lock
    emit(
        system,
        "/org/freedesktop/login1/session/c1",
        "org.freedesktop.login1.Session",
        "Lock",
        own=LOGIND,
    )
    wait_for(lambda: watcher.locks.reasons == ["session locked"], timeout=5, what="the Lock signal")
    emit(
        system,
        "/org/freedesktop/login1",
        "org.freedesktop.login1.Manager",
        "PrepareForSleep",
        True,
        own=LOGIND,
    )
    wait_for(
        lambda: watcher.locks.reasons == ["session locked", "suspend"],
        timeout=5,
        what="PrepareForSleep(true)",
    )


@pytest.mark.parametrize("iface", ["org.freedesktop.ScreenSaver", "org.gnome.ScreenSaver"])
def test_screensaver_active_changed(buses, watcher, iface):
    _system, session = buses
    path = "/" + iface.replace(".", "/")
    emit(session, path, iface, "ActiveChanged", False)
    emit(session, path, iface, "ActiveChanged", True)
    wait_for(
        lambda: watcher.locks.reasons == ["screen saver"], timeout=5, what="ActiveChanged(true)"
    )


def test_session_lock_locks_passphrase_and_hardware_keys(buses, softhsm, tmp_path):
    system, session = buses
    softhsm.init_token("gat-token")
    store = KeyStore(MemoryKeychain(), tmp_path / "keys.json")
    pw = store.create(registry="pw", index_url=INDEX + "pw", passphrase=Secret("pass-8181"))
    store.unlock(pw, Secret("pass-8181"))
    info = pkcs11.backend().generate(
        softhsm.module, "pkcs11:token=gat-token;id=%05", Secret(PIN), label="x"
    )
    pkcs11.backend().logout_all()
    hw = store.add_hardware(info, registry="hw", index_url=INDEX, subject=None)
    store.unlock(hw, Secret(PIN))
    assert store.is_unlocked(pw) and store.is_unlocked(hw)
    w = SessionLockWatcher(
        lambda _r: store.lock(), system_address=system.address, session_address=session.address
    )
    w.start()
    try:
        assert w.ready.wait(10)
        emit(session, "/org/gnome/ScreenSaver", "org.gnome.ScreenSaver", "ActiveChanged", True)
        wait_for(
            lambda: not store.is_unlocked(pw) and not store.is_unlocked(hw),
            timeout=5,
            what="the keys to lock",
        )
    finally:
        w.stop()


def test_no_bus_is_not_an_error():
    w = SessionLockWatcher(lambda _r: None, system_address="", session_address="")
    w.start()
    assert w.ready.is_set()
    w.stop()
    bad = SessionLockWatcher(
        lambda _r: None, system_address="unix:path=/nonexistent/bus", session_address=""
    )
    bad.start()
    assert bad.ready.wait(5)
    bad.stop()

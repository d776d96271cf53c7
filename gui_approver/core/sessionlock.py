"""Lock every unlocked key when the desktop session locks or the machine suspends. Qt-free.

Watches D-Bus with jeepney (pure Python, already a keyring dependency) on one thread per bus:

* system bus, from logind (``org.freedesktop.login1`` only): ``Session.Lock`` and
  ``Manager.PrepareForSleep(true)``;
* session bus: ``org.freedesktop.ScreenSaver`` and ``org.gnome.ScreenSaver``
  ``ActiveChanged(true)``.

Each makes ``on_lock(reason)`` run, which forgets unlocked passphrase keys and logs out of
hardware tokens. A signal can only ever lock (never unlock), so a spurious one costs a
passphrase or PIN, nothing more. A bus that is not there is skipped (logged once).
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)

LOGIND = "org.freedesktop.login1"
#: (bus, sender or None, interface, member, reason); the signal's first argument must be
#: true where a reason is given for a boolean signal.
_RULES: tuple[tuple[str, str | None, str, str, str], ...] = (
    ("system", LOGIND, "org.freedesktop.login1.Session", "Lock", "session locked"),
    ("system", LOGIND, "org.freedesktop.login1.Manager", "PrepareForSleep", "suspend"),
    ("session", None, "org.freedesktop.ScreenSaver", "ActiveChanged", "screen saver"),
    ("session", None, "org.gnome.ScreenSaver", "ActiveChanged", "screen saver"),
)
_BOOL_MEMBERS = ("PrepareForSleep", "ActiveChanged")


def _default_address(bus: str) -> str | None:
    if bus == "session":
        return os.environ.get("DBUS_SESSION_BUS_ADDRESS") or None
    return os.environ.get("DBUS_SYSTEM_BUS_ADDRESS") or (
        "unix:path=/run/dbus/system_bus_socket"
        if os.path.exists("/run/dbus/system_bus_socket")
        else None
    )


class SessionLockWatcher:
    """``on_lock(reason)`` on session lock / suspend / screen saver. ``start()``/``stop()``.

    ``system_address``/``session_address``: bus addresses (default: the environment's,
    ``""`` to skip that bus). ``ready`` is set once every reachable bus is subscribed."""

    def __init__(
        self,
        on_lock: Callable[[str], object],
        *,
        system_address: str | None = None,
        session_address: str | None = None,
    ) -> None:
        self.on_lock = on_lock
        self.addresses = {
            "system": _default_address("system") if system_address is None else system_address,
            "session": (
                _default_address("session") if session_address is None else session_address
            ),
        }
        self.ready = threading.Event()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._pending = 0
        self._count = threading.Lock()
        self._conns: list[Any] = []

    def start(self) -> None:
        buses = [b for b, addr in self.addresses.items() if addr]
        self._pending = len(buses)
        if not buses:
            self.ready.set()
            return
        for bus in buses:
            t = threading.Thread(
                target=self._run, args=(bus,), name=f"lock-watch-{bus}", daemon=True
            )
            self._threads.append(t)
            t.start()

    def stop(self) -> None:
        self._stop.set()
        with self._count:
            conns = list(self._conns)
        for conn in conns:  # wakes a thread blocked in receive() at once
            with contextlib.suppress(Exception):
                conn.sock.shutdown(2)
        for t in self._threads:
            t.join(timeout=2)
        self._threads.clear()

    def _subscribed(self) -> None:
        with self._count:
            self._pending -= 1
            if self._pending <= 0:
                self.ready.set()

    def _run(self, bus: str) -> None:
        try:
            from jeepney import MatchRule
            from jeepney.bus_messages import message_bus
            from jeepney.io.blocking import open_dbus_connection
        except ImportError:
            log.warning("jeepney is missing: keys are not locked on session lock")
            self._subscribed()
            return
        address = self.addresses[bus]
        try:
            conn = open_dbus_connection(bus=address)
        except Exception as exc:  # noqa: BLE001 - no such bus: nothing to watch
            log.info("no %s bus to watch for session lock (%s)", bus, type(exc).__name__)
            self._subscribed()
            return
        with self._count:
            self._conns.append(conn)
        rules: list[tuple[Any, str, str]] = []
        try:
            for rbus, sender, iface, member, reason in _RULES:
                if rbus != bus:
                    continue
                local = MatchRule(type="signal", interface=iface, member=member)
                # The bus filters by sender (it resolves logind's well-known name to its
                # owner); locally the message only names the owner's unique name.
                wire = (
                    MatchRule(type="signal", interface=iface, member=member, sender=sender)
                    if sender
                    else local
                )
                conn.send_and_get_reply(message_bus.AddMatch(wire), timeout=5)
                rules.append((local, member, reason))
        except Exception as exc:  # noqa: BLE001
            log.warning("could not watch the %s bus for session lock (%s)", bus, type(exc).__name__)
            with contextlib.suppress(Exception):
                conn.close()
            self._subscribed()
            return
        self._subscribed()
        try:
            while not self._stop.is_set():
                try:
                    msg = conn.receive(timeout=0.5)
                except TimeoutError:
                    continue
                for rule, member, reason in rules:
                    if not rule.matches(msg):
                        continue
                    if member in _BOOL_MEMBERS:
                        body = msg.body
                        if not (body and body[0] is True):
                            continue
                    log.info("locking keys: %s", reason)
                    try:
                        self.on_lock(reason)
                    except Exception:
                        log.exception("locking keys on %s failed", reason)
                    break
        except Exception as exc:  # noqa: BLE001 - the bus went away
            if not self._stop.is_set():
                log.info("stopped watching the %s bus (%s)", bus, type(exc).__name__)
        finally:
            with contextlib.suppress(Exception):
                conn.close()

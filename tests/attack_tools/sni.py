"""The tray over D-Bus: a StatusNotifierWatcher for the test bus, and the tray attack.

Qt puts its tray icon on D-Bus (StatusNotifierItem + com.canonical.dbusmenu) when a
``org.kde.StatusNotifierWatcher`` with a registered host is on the session bus. Then *any*
process of the same user can read the tray menu and trigger its actions, and call
Activate/SecondaryActivate on the icon. This tool plays both sides, using jeepney only:

  sni.py watcher           own org.kde.StatusNotifierWatcher, print "ready", serve forever
  sni.py attack            trigger every tray action except Quit (and Activate the icon);
                           print JSON {"items": [...], "labels": [...], "triggered": [...]}
  sni.py quit              trigger the tray's Quit action

Run with DBUS_SESSION_BUS_ADDRESS pointing at the bus the app uses.
"""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Any

from jeepney import DBusAddress, MessageType, new_error, new_method_call, new_method_return
from jeepney.bus_messages import message_bus
from jeepney.io.blocking import open_dbus_connection

WATCHER = "org.kde.StatusNotifierWatcher"
WATCHER_PATH = "/StatusNotifierWatcher"
ITEM_IFACE = "org.kde.StatusNotifierItem"
MENU_IFACE = "com.canonical.dbusmenu"
PROPS = "org.freedesktop.DBus.Properties"

INTROSPECTION = """<!DOCTYPE node PUBLIC "-//freedesktop//DTD D-BUS Object Introspection 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/introspect.dtd">
<node>
  <interface name="org.kde.StatusNotifierWatcher">
    <method name="RegisterStatusNotifierItem"><arg name="service" type="s" direction="in"/></method>
    <method name="RegisterStatusNotifierHost"><arg name="service" type="s" direction="in"/></method>
    <property name="RegisteredStatusNotifierItems" type="as" access="read"/>
    <property name="IsStatusNotifierHostRegistered" type="b" access="read"/>
    <property name="ProtocolVersion" type="i" access="read"/>
    <signal name="StatusNotifierItemRegistered"><arg type="s"/></signal>
    <signal name="StatusNotifierItemUnregistered"><arg type="s"/></signal>
    <signal name="StatusNotifierHostRegistered"/>
  </interface>
  <interface name="org.freedesktop.DBus.Properties">
    <method name="Get"><arg type="s" direction="in"/><arg type="s" direction="in"/>
      <arg type="v" direction="out"/></method>
    <method name="GetAll"><arg type="s" direction="in"/><arg type="a{sv}" direction="out"/></method>
  </interface>
  <interface name="org.freedesktop.DBus.Introspectable">
    <method name="Introspect"><arg type="s" direction="out"/></method>
  </interface>
</node>
"""


def serve_watcher() -> None:
    conn = open_dbus_connection(bus="SESSION")
    reply = conn.send_and_get_reply(message_bus.RequestName(WATCHER, 4))  # DO_NOT_QUEUE
    if reply.body[0] != 1:
        sys.exit(f"could not own {WATCHER}: {reply.body}")
    items: list[str] = []
    print("ready", flush=True)

    def props() -> dict[str, tuple[str, object]]:
        return {
            "RegisteredStatusNotifierItems": ("as", list(items)),
            "IsStatusNotifierHostRegistered": ("b", True),
            "ProtocolVersion": ("i", 0),
        }

    while True:
        msg = conn.receive()
        if msg.header.message_type != MessageType.method_call:
            continue
        fields = msg.header.fields
        iface = fields.get(2)  # HeaderFields.interface
        member = fields.get(3)
        try:
            if member == "Introspect":
                out = new_method_return(msg, "s", (INTROSPECTION,))
            elif iface == PROPS and member == "Get":
                out = new_method_return(msg, "v", (props()[msg.body[1]],))
            elif iface == PROPS and member == "GetAll":
                out = new_method_return(msg, "a{sv}", (props(),))
            elif member == "RegisterStatusNotifierItem":
                service = msg.body[0]
                if not service.startswith(":") and "/" not in service:
                    items.append(service)
                else:
                    items.append(fields.get(7) or service)  # the sender
                out = new_method_return(msg)
            elif member == "RegisterStatusNotifierHost":
                out = new_method_return(msg)
            else:
                out = new_error(msg, "org.freedesktop.DBus.Error.UnknownMethod")
        except (KeyError, IndexError):
            out = new_error(msg, "org.freedesktop.DBus.Error.InvalidArgs")
        conn.send(out)


def _walk(layout: tuple[Any, ...], out: list[tuple[int, str]]) -> None:
    item_id, props, children = layout
    label = props.get("label", ("s", ""))[1]
    out.append((item_id, label))
    for _sig, child in children:
        _walk(child, out)


def _items(conn) -> list[str]:
    watcher = DBusAddress(WATCHER_PATH, WATCHER, PROPS)
    reply = conn.send_and_get_reply(
        new_method_call(watcher, "Get", "ss", (WATCHER, "RegisteredStatusNotifierItems"))
    )
    return list(reply.body[0][1])


def _menu(conn, service: str) -> tuple[DBusAddress, list[tuple[int, str]]]:
    item = DBusAddress("/StatusNotifierItem", service, PROPS)
    path = conn.send_and_get_reply(new_method_call(item, "Get", "ss", (ITEM_IFACE, "Menu")))
    menu = DBusAddress(path.body[0][1], service, MENU_IFACE)
    layout = conn.send_and_get_reply(new_method_call(menu, "GetLayout", "iias", (0, -1, [])))
    entries: list[tuple[int, str]] = []
    _walk(layout.body[1], entries)
    return menu, entries


def _click(conn, menu: DBusAddress, item_id: int) -> str:
    conn.send_and_get_reply(new_method_call(menu, "AboutToShow", "i", (item_id,)))
    reply = conn.send_and_get_reply(
        new_method_call(
            menu, "Event", "isvu", (item_id, "clicked", ("i", 0), int(time.time()) & 0xFFFFFFFF)
        )
    )
    return "error" if reply.header.message_type == MessageType.error else "ok"


def attack(quit_only: bool) -> None:
    conn = open_dbus_connection(bus="SESSION")
    result: dict[str, list[Any]] = {"items": [], "labels": [], "triggered": []}
    for service in _items(conn):
        result["items"].append(service)
        menu, entries = _menu(conn, service)
        result["labels"] += [label for _i, label in entries if label]
        for item_id, label in entries:
            if not label or (label.replace("&", "").lower() == "quit") != quit_only:
                continue
            result["triggered"].append([label, _click(conn, menu, item_id)])
        if not quit_only:
            icon = DBusAddress("/StatusNotifierItem", service, ITEM_IFACE)
            for member in ("Activate", "SecondaryActivate"):
                reply = conn.send_and_get_reply(new_method_call(icon, member, "ii", (1, 1)))
                ok = reply.header.message_type != MessageType.error
                result["triggered"].append([member, "ok" if ok else "error"])
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    if not os.environ.get("DBUS_SESSION_BUS_ADDRESS"):
        sys.exit("DBUS_SESSION_BUS_ADDRESS is not set")
    cmd = sys.argv[1] if len(sys.argv) > 1 else ""
    if cmd == "watcher":
        serve_watcher()
    elif cmd in ("attack", "quit"):
        attack(quit_only=cmd == "quit")
    else:
        sys.exit(__doc__)

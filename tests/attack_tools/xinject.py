"""Input injection with libX11/libXi/libXtst through ctypes (no extra packages).

  xinject.py devices                      the X input devices (JSON)
  xinject.py device-click X Y             move the pointer to X,Y and click button 1, both
                                          through XTEST aimed at the *real* pointer slave
                                          (XTestFakeDevice*Event on "Xvfb mouse")
  xinject.py device-button                press+release button 1 there, without moving
  xinject.py device-keys KEY...           keys through XTEST aimed at the real keyboard slave
  xinject.py warp X Y                     XWarpPointer (what any client may do)
  xinject.py cover X Y W H [--fight]      map an override-redirect window there, print
                                          "mapped", keep it until stdin closes; --fight
                                          raises it again every 50 ms (a window that
                                          insists on staying over the dialog)
  xinject.py race TITLE DX DY             wait for a window whose name starts with TITLE to
                                          be mapped, then at once click at (right-DX,
                                          bottom-DY) through the real pointer slave and type
                                          Tab, space through the real keyboard slave; print
                                          {"ms_after_map": ...}

"Aimed at the real device" is the hole the dialog cannot close on X11: the server reports
such events as coming from the hardware slave, exactly like a person's. Under Xvfb there is
no other way to produce real-device input, so the tests use it both to demonstrate that
hole and as the genuine-user path. KEY names are X keysym names (Tab, space, Return).
"""

from __future__ import annotations

import ctypes
import json
import select
import sys
import time
from typing import Any

V = ctypes.c_void_p
x11 = ctypes.CDLL("libX11.so.6")
xi = ctypes.CDLL("libXi.so.6")
xtst = ctypes.CDLL("libXtst.so.6")

x11.XOpenDisplay.restype = V
x11.XOpenDisplay.argtypes = [ctypes.c_char_p]
x11.XDefaultRootWindow.restype = ctypes.c_ulong
x11.XDefaultRootWindow.argtypes = [V]
x11.XSync.argtypes = [V, ctypes.c_int]
x11.XFlush.argtypes = [V]
x11.XStringToKeysym.restype = ctypes.c_ulong
x11.XStringToKeysym.argtypes = [ctypes.c_char_p]
x11.XKeysymToKeycode.restype = ctypes.c_ubyte
x11.XKeysymToKeycode.argtypes = [V, ctypes.c_ulong]
x11.XWarpPointer.argtypes = [
    V,
    ctypes.c_ulong,
    ctypes.c_ulong,
    ctypes.c_int,
    ctypes.c_int,
    ctypes.c_uint,
    ctypes.c_uint,
    ctypes.c_int,
    ctypes.c_int,
]
x11.XCreateSimpleWindow.restype = ctypes.c_ulong
x11.XCreateSimpleWindow.argtypes = [
    V,
    ctypes.c_ulong,
    ctypes.c_int,
    ctypes.c_int,
    ctypes.c_uint,
    ctypes.c_uint,
    ctypes.c_uint,
    ctypes.c_ulong,
    ctypes.c_ulong,
]
x11.XMapRaised.argtypes = [V, ctypes.c_ulong]
x11.XRaiseWindow.argtypes = [V, ctypes.c_ulong]
x11.XFetchName.argtypes = [V, ctypes.c_ulong, ctypes.POINTER(ctypes.c_char_p)]
x11.XFree.argtypes = [V]
x11.XSelectInput.argtypes = [V, ctypes.c_ulong, ctypes.c_long]
x11.XNextEvent.argtypes = [V, V]
x11.XGetWindowAttributes.argtypes = [V, ctypes.c_ulong, V]
xi.XOpenDevice.restype = V
xi.XOpenDevice.argtypes = [V, ctypes.c_ulong]
xi.XListInputDevices.restype = V
xi.XListInputDevices.argtypes = [V, ctypes.POINTER(ctypes.c_int)]
xtst.XTestFakeDeviceMotionEvent.argtypes = [
    V,
    V,
    ctypes.c_int,
    ctypes.c_int,
    ctypes.POINTER(ctypes.c_int),
    ctypes.c_int,
    ctypes.c_ulong,
]
xtst.XTestFakeDeviceButtonEvent.argtypes = [
    V,
    V,
    ctypes.c_uint,
    ctypes.c_int,
    V,
    ctypes.c_int,
    ctypes.c_ulong,
]
xtst.XTestFakeDeviceKeyEvent.argtypes = [
    V,
    V,
    ctypes.c_uint,
    ctypes.c_int,
    V,
    ctypes.c_int,
    ctypes.c_ulong,
]


class XDeviceInfo(ctypes.Structure):
    _fields_ = [
        ("id", ctypes.c_ulong),
        ("type", ctypes.c_ulong),
        ("name", ctypes.c_char_p),
        ("num_classes", ctypes.c_int),
        ("use", ctypes.c_int),
        ("classes", V),
    ]


IS_X_EXTENSION_KEYBOARD, IS_X_EXTENSION_POINTER = 3, 4
SUBSTRUCTURE_NOTIFY_MASK = 1 << 19
MAP_NOTIFY = 19
CW_OVERRIDE_REDIRECT = 1 << 9


class XMapEvent(ctypes.Structure):
    _fields_ = [
        ("type", ctypes.c_int),
        ("serial", ctypes.c_ulong),
        ("send_event", ctypes.c_int),
        ("display", V),
        ("event", ctypes.c_ulong),
        ("window", ctypes.c_ulong),
        ("override_redirect", ctypes.c_int),
    ]


class XWindowAttributes(ctypes.Structure):
    _fields_ = [
        ("x", ctypes.c_int),
        ("y", ctypes.c_int),
        ("width", ctypes.c_int),
        ("height", ctypes.c_int),
        ("pad", ctypes.c_char * 256),
    ]


def devices(dpy: int) -> list[dict[str, Any]]:
    n = ctypes.c_int()
    ptr = xi.XListInputDevices(dpy, ctypes.byref(n))
    infos = ctypes.cast(ptr, ctypes.POINTER(XDeviceInfo))
    return [
        {"id": infos[i].id, "name": infos[i].name.decode(), "use": infos[i].use}
        for i in range(n.value)
    ]


def real_device(dpy: int, use: int) -> int:
    for d in devices(dpy):
        if d["use"] == use and "XTEST" not in d["name"]:
            device: int = xi.XOpenDevice(dpy, d["id"])
            return device
    raise SystemExit(f"no real device of use {use}")


def device_move(dpy: int, x: int, y: int) -> None:
    mouse = real_device(dpy, IS_X_EXTENSION_POINTER)
    axes = (ctypes.c_int * 2)(x, y)
    xtst.XTestFakeDeviceMotionEvent(dpy, mouse, 0, 0, axes, 2, 0)


def device_button(dpy: int) -> None:
    mouse = real_device(dpy, IS_X_EXTENSION_POINTER)
    xtst.XTestFakeDeviceButtonEvent(dpy, mouse, 1, 1, None, 0, 0)
    xtst.XTestFakeDeviceButtonEvent(dpy, mouse, 1, 0, None, 0, 0)


def device_keys(dpy: int, keys: list[str]) -> None:
    kbd = real_device(dpy, IS_X_EXTENSION_KEYBOARD)
    for key in keys:
        code = x11.XKeysymToKeycode(dpy, x11.XStringToKeysym(key.encode()))
        if not code:
            raise SystemExit(f"unknown key {key!r}")
        xtst.XTestFakeDeviceKeyEvent(dpy, kbd, code, 1, None, 0, 0)
        xtst.XTestFakeDeviceKeyEvent(dpy, kbd, code, 0, None, 0, 0)


def window_name(dpy: int, window: int) -> str:
    name = ctypes.c_char_p()
    if x11.XFetchName(dpy, window, ctypes.byref(name)) and name.value is not None:
        return name.value.decode(errors="replace")
    return ""


def race(dpy: int, title: str, dx: int, dy: int) -> dict[str, Any]:
    root = x11.XDefaultRootWindow(dpy)
    x11.XSelectInput(dpy, root, SUBSTRUCTURE_NOTIFY_MASK)
    x11.XSync(dpy, 0)
    print("watching", flush=True)
    event = ctypes.create_string_buffer(192)
    while True:
        x11.XNextEvent(dpy, event)
        ev = XMapEvent.from_buffer(event)
        if ev.type == MAP_NOTIFY and window_name(dpy, ev.window).startswith(title):
            break
    mapped = time.monotonic()
    attrs = XWindowAttributes()
    x11.XGetWindowAttributes(dpy, ev.window, ctypes.byref(attrs))
    device_move(dpy, attrs.x + attrs.width - dx, attrs.y + attrs.height - dy)
    device_button(dpy)
    device_keys(dpy, ["Tab", "space"])
    x11.XSync(dpy, 0)
    return {
        "ms_after_map": round((time.monotonic() - mapped) * 1000, 1),
        "window": ev.window,
        "geometry": [attrs.x, attrs.y, attrs.width, attrs.height],
    }


def main(argv: list[str]) -> dict[str, Any]:
    dpy = x11.XOpenDisplay(None)
    if not dpy:
        raise SystemExit("cannot open the display")
    cmd, args = (argv[0], argv[1:]) if argv else ("", [])
    out: dict[str, Any] = {"done": cmd}
    if cmd == "devices":
        out["devices"] = devices(dpy)
    elif cmd == "device-click":
        device_move(dpy, int(args[0]), int(args[1]))
        x11.XSync(dpy, 0)
        device_button(dpy)
    elif cmd == "device-button":
        device_button(dpy)
    elif cmd == "device-keys":
        device_keys(dpy, args)
    elif cmd == "warp":
        x11.XWarpPointer(
            dpy, 0, x11.XDefaultRootWindow(dpy), 0, 0, 0, 0, int(args[0]), int(args[1])
        )
    elif cmd == "cover":
        x, y, w, h = (int(a) for a in args[:4])
        win = x11.XCreateSimpleWindow(dpy, x11.XDefaultRootWindow(dpy), x, y, w, h, 0, 0, 0xCC3333)
        x11.XChangeWindowAttributes.argtypes = [V, ctypes.c_ulong, ctypes.c_ulong, V]
        x11.XChangeWindowAttributes(dpy, win, CW_OVERRIDE_REDIRECT, _override_redirect_attrs())
        x11.XMapRaised(dpy, win)
        x11.XSync(dpy, 0)
        print(json.dumps({"mapped": win}), flush=True)
        fight = "--fight" in args
        raises = 0
        while not select.select([sys.stdin], [], [], 0.05 if fight else None)[0]:
            x11.XRaiseWindow(dpy, win)
            x11.XSync(dpy, 0)
            raises += 1
        return {"done": "cover", "raises": raises}
    elif cmd == "race":
        out.update(race(dpy, args[0], int(args[1]), int(args[2])))
    else:
        raise SystemExit(__doc__)
    x11.XSync(dpy, 0)
    return out


class XSetWindowAttributes(ctypes.Structure):
    _fields_ = [
        ("background_pixmap", ctypes.c_ulong),
        ("background_pixel", ctypes.c_ulong),
        ("border_pixmap", ctypes.c_ulong),
        ("border_pixel", ctypes.c_ulong),
        ("bit_gravity", ctypes.c_int),
        ("win_gravity", ctypes.c_int),
        ("backing_store", ctypes.c_int),
        ("backing_planes", ctypes.c_ulong),
        ("backing_pixel", ctypes.c_ulong),
        ("save_under", ctypes.c_int),
        ("event_mask", ctypes.c_long),
        ("do_not_propagate_mask", ctypes.c_long),
        ("override_redirect", ctypes.c_int),
        ("colormap", ctypes.c_ulong),
        ("cursor", ctypes.c_ulong),
    ]


def _override_redirect_attrs() -> ctypes.c_void_p:
    attrs = XSetWindowAttributes()
    attrs.override_redirect = 1
    _keep.append(attrs)
    return ctypes.cast(ctypes.byref(attrs), V)


_keep: list[Any] = []

if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1:])), flush=True)

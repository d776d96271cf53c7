"""The X11 input-provenance guard: drop injected input while an approval dialog is open.

On X11 every client can inject input: XTEST (``xdotool``, AT-SPI's generateMouseEvent,
on-screen keyboards), ``XSendEvent`` (``xdotool --window``) and pointer warps. Qt's own event
APIs cannot tell any of these from a person (the events say "Virtual core pointer",
``spontaneous()`` is true). The raw X events can:

* XInput2 pointer events (Qt uses XI2 for the mouse) carry a ``sourceid``: the slave device
  the event came from. XTEST events come from the "... XTEST pointer/keyboard" slaves, which
  the server marks with the ``XTEST Device`` property; warps come from the master itself.
* Core key events (Qt reads keys from core events) carry no device, but XI2 *raw* key events
  selected on the root window on Qt's own connection arrive just before each key event with
  its source device and the same server time and keycode, so they can be matched.
* ``XSendEvent`` events carry the ``send_event`` flag, set by the server.

So, while a protected dialog exists, this filter (a :class:`QAbstractNativeEventFilter` on
Qt's connection) records every key, button and touch event that is provably from a non-XTEST
slave device, so the dialog can check the exact event it is handling: only those may act on
Approve. Other input (XTEST: on-screen keyboards, voice control, remote desktop, software
KVMs) passes on, so it can still deny, and the dialog refuses it on Approve and says so.
Forged (``send_event``) input and focus events, which no input tool needs, are dropped;
and it tracks whether the pointer was last moved by a trusted device (a warp onto Approve
followed by a real click elsewhere-intended is refused). It also asks for VisibilityNotify
on the dialog so a window covering it disarms Approve.

It cannot tell XTEST aimed at a *real* device (``XTestFakeDeviceButtonEvent`` on the
hardware slave) or a uinput device from a person: those are real devices as far as the
server knows. Without XInput2 it cannot tell anything, and approval is refused.

Everything talks to libxcb / libxcb-xinput through ctypes on Qt's own ``xcb_connection_t``.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import logging
import os
import struct
from collections import deque
from dataclasses import dataclass
from typing import Any

from PySide6.QtCore import QAbstractNativeEventFilter, QByteArray, QCoreApplication, QEvent
from PySide6.QtGui import QGuiApplication, QInputEvent, QKeyEvent, QMouseEvent
from PySide6.QtWidgets import QWidget

from gui_approver.errors import DisplayError
from gui_approver.ui.guard import FROM_SOFTWARE, POINTER_MOVED_BY_SOFTWARE, InputGuard

log = logging.getLogger(__name__)

# Core event codes.
KEY_PRESS, KEY_RELEASE, BUTTON_PRESS, BUTTON_RELEASE, MOTION_NOTIFY = 2, 3, 4, 5, 6
ENTER_NOTIFY, LEAVE_NOTIFY, FOCUS_IN, FOCUS_OUT = 7, 8, 9, 10
VISIBILITY_NOTIFY, MAPPING_NOTIFY, GENERIC_EVENT = 15, 34, 35
XKB_NEW_KEYBOARD_NOTIFY, XKB_MAP_NOTIFY = 0, 1
SYNTHETIC = 0x80
# XInput2 event types.
XI_KEY_PRESS, XI_KEY_RELEASE, XI_BUTTON_PRESS, XI_BUTTON_RELEASE, XI_MOTION = 2, 3, 4, 5, 6
XI_ENTER, XI_LEAVE, XI_FOCUS_IN, XI_FOCUS_OUT, XI_HIERARCHY_CHANGED = 7, 8, 9, 10, 11
XI_RAW_KEY_PRESS, XI_RAW_KEY_RELEASE, XI_RAW_MOTION = 13, 14, 17
XI_RAW_BUTTON_PRESS, XI_RAW_BUTTON_RELEASE = 15, 16
XI_RAW_EVENTS = frozenset({13, 14, 15, 16, 17, 22, 23, 24})
XI_DEVICE_EVENTS = frozenset({2, 3, 4, 5, 6, 18, 19, 20})  # key/button/motion/touch
XI_KEY_EVENTS = frozenset({2, 3})
#: The raw event type that accompanies each device event type.
RAW_OF = {2: 13, 3: 14, 4: 15, 5: 16, 6: 17, 18: 22, 19: 23, 20: 24}
XI_KIND = {2: "key-press", 3: "key-release", 4: "button-press", 5: "button-release", 6: "motion"}
XI_CROSSING_EVENTS = frozenset({7, 8, 9, 10})
XI_GESTURE_EVENTS = frozenset(range(27, 33))
XI_ALL_DEVICES, XI_ALL_MASTER_DEVICES = 0, 1
# XIDeviceInfo.use
XI_MASTER_POINTER, XI_MASTER_KEYBOARD, XI_SLAVE_POINTER, XI_SLAVE_KEYBOARD, XI_FLOATING = (
    1,
    2,
    3,
    4,
    5,
)
VISIBILITY_CHANGE_MASK = 1 << 16
CW_EVENT_MASK = 1 << 11
VISIBILITY_UNOBSCURED = 0
MAX_DROP_LOGS = 20

NO_XI2_PROBLEM = (
    "Approving is disabled: this X11 session does not report which device input comes from "
    "({why}), so gui-approver cannot tell your mouse and keyboard from a program typing into "
    "the dialog. You can only deny here. Restart gui-approver with XInput2 (X server with "
    "XInput 2.2, QT_XCB_NO_XI2 unset) or on Wayland."
)


def _kind_of(event: QInputEvent) -> str | None:
    """The filter's name for a Qt mouse or key press/release, else None."""
    press = event.type() in (QEvent.Type.MouseButtonPress, QEvent.Type.KeyPress)
    if isinstance(event, QMouseEvent):
        return "button-press" if press else "button-release"
    if isinstance(event, QKeyEvent):
        return "key-press" if press else "key-release"
    return None


class _Cookie(ctypes.Structure):
    _fields_ = [("sequence", ctypes.c_uint)]


class _ScreenIterator(ctypes.Structure):
    _fields_ = [("data", ctypes.c_void_p), ("rem", ctypes.c_int), ("index", ctypes.c_int)]


@dataclass(frozen=True)
class Device:
    id: int
    use: int
    name: str
    xtest: bool
    enabled: bool

    @property
    def trusted(self) -> bool:
        """A slave (or floating) device that is not an XTEST device."""
        return (
            self.enabled
            and not self.xtest
            and self.use in (XI_SLAVE_POINTER, XI_SLAVE_KEYBOARD, XI_FLOATING)
        )

    def describe(self) -> str:
        kind = (
            "XTEST device"
            if self.xtest
            else (
                "master device" if self.use in (XI_MASTER_POINTER, XI_MASTER_KEYBOARD) else "device"
            )
        )
        return f"{kind} {self.name!r} (id {self.id})"


class XcbError(DisplayError):
    """libxcb / XInput2 refused a call the input guard needs."""


class _Xcb:
    """The few libxcb / libxcb-xinput calls we need, on Qt's connection."""

    def __init__(self, connection: int) -> None:
        self.conn = ctypes.c_void_p(connection)
        try:
            self.xcb = ctypes.CDLL("libxcb.so.1")
            self.xi = ctypes.CDLL("libxcb-xinput.so.0")
        except OSError as exc:
            raise XcbError(f"libxcb-xinput is missing ({exc})") from None
        self.libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        self.libc.free.argtypes = [ctypes.c_void_p]
        x, xi = self.xcb, self.xi
        vp, u16, u32 = ctypes.c_void_p, ctypes.c_uint16, ctypes.c_uint32
        x.xcb_get_extension_data.restype = vp
        x.xcb_get_extension_data.argtypes = [vp, vp]
        x.xcb_get_setup.restype = vp
        x.xcb_get_setup.argtypes = [vp]
        x.xcb_setup_roots_iterator.restype = _ScreenIterator
        x.xcb_setup_roots_iterator.argtypes = [vp]
        x.xcb_screen_next.restype = None
        x.xcb_screen_next.argtypes = [ctypes.POINTER(_ScreenIterator)]
        x.xcb_request_check.restype = vp
        x.xcb_request_check.argtypes = [vp, _Cookie]
        x.xcb_flush.argtypes = [vp]
        x.xcb_intern_atom.restype = _Cookie
        x.xcb_intern_atom.argtypes = [vp, ctypes.c_uint8, u16, ctypes.c_char_p]
        x.xcb_intern_atom_reply.restype = vp
        x.xcb_intern_atom_reply.argtypes = [vp, _Cookie, vp]
        x.xcb_get_window_attributes.restype = _Cookie
        x.xcb_get_window_attributes.argtypes = [vp, u32]
        x.xcb_get_window_attributes_reply.restype = vp
        x.xcb_get_window_attributes_reply.argtypes = [vp, _Cookie, vp]
        x.xcb_change_window_attributes_checked.restype = _Cookie
        x.xcb_change_window_attributes_checked.argtypes = [vp, u32, u32, vp]
        xi.xcb_input_xi_query_device.restype = _Cookie
        xi.xcb_input_xi_query_device.argtypes = [vp, u16]
        xi.xcb_input_xi_query_device_reply.restype = vp
        xi.xcb_input_xi_query_device_reply.argtypes = [vp, _Cookie, vp]
        xi.xcb_input_xi_list_properties.restype = _Cookie
        xi.xcb_input_xi_list_properties.argtypes = [vp, u16]
        xi.xcb_input_xi_list_properties_reply.restype = vp
        xi.xcb_input_xi_list_properties_reply.argtypes = [vp, _Cookie, vp]
        xi.xcb_input_xi_get_selected_events.restype = _Cookie
        xi.xcb_input_xi_get_selected_events.argtypes = [vp, u32]
        xi.xcb_input_xi_get_selected_events_reply.restype = vp
        xi.xcb_input_xi_get_selected_events_reply.argtypes = [vp, _Cookie, vp]
        xi.xcb_input_xi_select_events_checked.restype = _Cookie
        xi.xcb_input_xi_select_events_checked.argtypes = [vp, u32, u16, vp]

    # -- helpers ---------------------------------------------------------------------------
    def _take_reply(self, ptr: int | None, what: str) -> bytes:
        if not ptr:
            raise XcbError(f"{what} failed")
        try:
            length = struct.unpack_from("=I", ctypes.string_at(ptr, 8), 4)[0]
            return ctypes.string_at(ptr, 32 + 4 * length)
        finally:
            self.libc.free(ptr)

    def _check(self, cookie: _Cookie, what: str) -> None:
        err = self.xcb.xcb_request_check(self.conn, cookie)
        if err:
            code = ctypes.string_at(err, 2)[1]
            self.libc.free(err)
            raise XcbError(f"{what} failed with X error {code}")

    # -- queries ---------------------------------------------------------------------------
    def xinput_opcode(self) -> int | None:
        """XInputExtension's major opcode, or None when the server lacks it (no round trip
        when Qt has asked already)."""
        ext_id = ctypes.addressof(ctypes.c_char.in_dll(self.xi, "xcb_input_id"))
        reply = self.xcb.xcb_get_extension_data(self.conn, ext_id)
        if not reply:
            return None
        data = ctypes.string_at(reply, 12)
        return data[9] if data[8] else None

    def xkb_first_event(self) -> int | None:
        """The XKB extension's first event code (Qt has queried XKB already), or None."""
        try:
            xkb = ctypes.CDLL("libxcb-xkb.so.1")
        except OSError:
            return None
        ext_id = ctypes.addressof(ctypes.c_char.in_dll(xkb, "xcb_xkb_id"))
        reply = self.xcb.xcb_get_extension_data(self.conn, ext_id)
        if not reply:
            return None
        data = ctypes.string_at(reply, 12)
        return data[10] if data[8] else None

    def roots(self) -> list[int]:
        it = self.xcb.xcb_setup_roots_iterator(self.xcb.xcb_get_setup(self.conn))
        out = []
        while it.rem > 0:
            out.append(struct.unpack("=I", ctypes.string_at(it.data, 4))[0])
            self.xcb.xcb_screen_next(ctypes.byref(it))
        return out

    def intern_atom(self, name: str) -> int:
        raw = name.encode()
        cookie = self.xcb.xcb_intern_atom(self.conn, 1, len(raw), raw)
        reply = self._take_reply(
            self.xcb.xcb_intern_atom_reply(self.conn, cookie, None), "InternAtom"
        )
        return int(struct.unpack_from("=I", reply, 8)[0])

    def query_devices(self) -> list[tuple[int, int, str, bool]]:
        """(id, use, name, enabled) of every input device."""
        cookie = self.xi.xcb_input_xi_query_device(self.conn, XI_ALL_DEVICES)
        reply = self._take_reply(
            self.xi.xcb_input_xi_query_device_reply(self.conn, cookie, None), "XIQueryDevice"
        )
        (count,) = struct.unpack_from("=H", reply, 8)
        out, off = [], 32
        for _ in range(count):
            devid, use, _attach, nclasses, name_len, enabled = struct.unpack_from(
                "=HHHHHB", reply, off
            )
            off += 12
            name = reply[off : off + name_len].decode("utf-8", "replace")
            off += (name_len + 3) & ~3
            for _ in range(nclasses):
                (clen,) = struct.unpack_from("=H", reply, off + 2)
                off += 4 * clen
            out.append((devid, use, name, bool(enabled)))
        return out

    def device_properties(self, devid: int) -> set[int]:
        cookie = self.xi.xcb_input_xi_list_properties(self.conn, devid)
        reply = self._take_reply(
            self.xi.xcb_input_xi_list_properties_reply(self.conn, cookie, None), "XIListProperties"
        )
        (count,) = struct.unpack_from("=H", reply, 8)
        return set(struct.unpack_from(f"={count}I", reply, 32))

    def add_xi_selection(self, window: int, additions: dict[int, int]) -> None:
        """OR ``additions`` ({deviceid: mask}) into this client's XI2 selection on
        ``window`` (XISelectEvents replaces per device, and Qt has its own on the root)."""
        cookie = self.xi.xcb_input_xi_get_selected_events(self.conn, window)
        reply = self._take_reply(
            self.xi.xcb_input_xi_get_selected_events_reply(self.conn, cookie, None),
            "XIGetSelectedEvents",
        )
        (count,) = struct.unpack_from("=H", reply, 8)
        masks: dict[int, int] = {}
        off = 32
        for _ in range(count):
            devid, words = struct.unpack_from("=HH", reply, off)
            off += 4
            value = 0
            for i, w in enumerate(struct.unpack_from(f"={words}I", reply, off)):
                value |= w << (32 * i)
            off += 4 * words
            masks[devid] = value
        for devid, bits in additions.items():
            masks[devid] = masks.get(devid, 0) | bits
        buf = b""
        for devid, value in masks.items():
            words = max(1, (value.bit_length() + 31) // 32)
            buf += struct.pack("=HH", devid, words)
            buf += b"".join(
                struct.pack("=I", (value >> (32 * i)) & 0xFFFFFFFF) for i in range(words)
            )
        cbuf = ctypes.create_string_buffer(buf, len(buf))
        cookie = self.xi.xcb_input_xi_select_events_checked(self.conn, window, len(masks), cbuf)
        self._check(cookie, "XISelectEvents")

    def add_event_mask(self, window: int, mask: int) -> None:
        cookie = self.xcb.xcb_get_window_attributes(self.conn, window)
        reply = self._take_reply(
            self.xcb.xcb_get_window_attributes_reply(self.conn, cookie, None), "GetWindowAttributes"
        )
        (current,) = struct.unpack_from("=I", reply, 36)  # your_event_mask
        value = ctypes.c_uint32(current | mask)
        cookie = self.xcb.xcb_change_window_attributes_checked(
            self.conn, window, CW_EVENT_MASK, ctypes.byref(value)
        )
        self._check(cookie, "ChangeWindowAttributes")


class _Filter(QAbstractNativeEventFilter):
    def __init__(self, guard: X11InputGuard) -> None:
        super().__init__()
        self.guard = guard

    def nativeEventFilter(
        self, eventType: QByteArray | bytes | bytearray | memoryview, message: int
    ) -> object:
        kind = eventType.data() if isinstance(eventType, QByteArray) else bytes(eventType)
        if kind != b"xcb_generic_event_t":
            return False, 0
        return self.guard.filter_event(int(message)), 0


class X11InputGuard(InputGuard):
    """See the module docstring. One per application; dialogs call protect/unprotect."""

    def __init__(self, xcb: _Xcb | None, problem: str | None = None) -> None:
        super().__init__()
        self.xcb = xcb
        self.problem = problem
        self.xi_opcode: int | None = None
        self.xkb_event: int | None = None
        self.devices: dict[int, Device] = {}
        self._devices_dirty = True
        self._xtest_atom = 0
        self._raw: deque[tuple[int, int, int, int]] = deque(maxlen=256)
        self._last_drop: tuple[str, int] | None = None
        self._trusted: deque[tuple[str, int, bool]] = deque(maxlen=32)
        self.pointer_trusted = False
        self._protected: dict[int, QWidget] = {}
        self._visibility: dict[int, int] = {}
        self._drops: dict[str, int] = {}
        self._filter: _Filter | None = None

    # -- construction ----------------------------------------------------------------------
    @classmethod
    def for_application(cls, app: QCoreApplication | None) -> X11InputGuard:
        native: Any = app.nativeInterface() if isinstance(app, QGuiApplication) else None
        connection = int(native.connection()) if native is not None else 0
        if not connection:
            return cls(None, NO_XI2_PROBLEM.format(why="no X connection is available"))
        try:
            xcb = _Xcb(connection)
        except XcbError as exc:
            return cls(None, NO_XI2_PROBLEM.format(why=str(exc)))
        guard = cls(xcb)
        guard._start(app)
        return guard

    def _start(self, app: QCoreApplication | None) -> None:
        assert self.xcb is not None
        if os.environ.get("QT_XCB_NO_XI2") is not None:
            self.problem = NO_XI2_PROBLEM.format(
                why="QT_XCB_NO_XI2 is set, so Qt reads the mouse without XInput2"
            )
        self.xi_opcode = self.xcb.xinput_opcode()
        self.xkb_event = self.xcb.xkb_first_event()
        if self.xi_opcode is None:
            self.problem = NO_XI2_PROBLEM.format(why="the X server has no XInput extension")
            return
        try:
            self._xtest_atom = self.xcb.intern_atom("XTEST Device")
            raw = sum(1 << t for t in XI_RAW_EVENTS)
            for root in self.xcb.roots():
                self.xcb.add_xi_selection(
                    root, {XI_ALL_MASTER_DEVICES: raw, XI_ALL_DEVICES: 1 << XI_HIERARCHY_CHANGED}
                )
            self.xcb.xcb.xcb_flush(self.xcb.conn)
            self._refresh_devices()
        except XcbError as exc:
            self.problem = NO_XI2_PROBLEM.format(why=f"XInput2 is unavailable: {exc}")
            return
        if app is not None:
            self._filter = _Filter(self)
            app.installNativeEventFilter(self._filter)

    def _refresh_devices(self) -> None:
        assert self.xcb is not None
        devices = {}
        for devid, use, name, enabled in self.xcb.query_devices():
            xtest = "XTEST" in name
            if not xtest and self._xtest_atom:
                with contextlib.suppress(XcbError):
                    xtest = self._xtest_atom in self.xcb.device_properties(devid)
            devices[devid] = Device(devid, use, name, xtest, enabled)
        self.devices = devices
        self._devices_dirty = False

    def device(self, devid: int) -> Device | None:
        if self.xcb is not None and (self._devices_dirty or devid not in self.devices):
            with contextlib.suppress(XcbError):
                self._refresh_devices()
        return self.devices.get(devid)

    def _source(self, devid: int) -> tuple[bool, str]:
        dev = self.device(devid)
        if dev is None:
            return False, f"unknown device id {devid}"
        return dev.trusted, dev.describe()

    # -- InputGuard ------------------------------------------------------------------------
    @property
    def engaged(self) -> bool:
        return bool(self._protected)

    def protect(self, widget: QWidget) -> None:
        wid = int(widget.winId())
        self._protected[wid] = widget
        self._visibility.pop(wid, None)
        if self.xcb is not None:
            try:
                self.xcb.add_event_mask(wid, VISIBILITY_CHANGE_MASK)
                self.xcb.xcb.xcb_flush(self.xcb.conn)
            except XcbError as exc:
                log.warning("input guard: cannot watch the dialog's visibility (%s)", exc)
                self._visibility[wid] = VISIBILITY_UNOBSCURED

    def unprotect(self, widget: QWidget) -> None:
        for wid, w in list(self._protected.items()):
            if w is widget:
                del self._protected[wid]
                self._visibility.pop(wid, None)
        if not self._protected and self._drops:
            log.info(
                "input guard: while the dialog was open: %s",
                ", ".join(f"{n} {k}" for k, n in sorted(self._drops.items())),
            )
            self._drops.clear()

    def is_obscured(self, widget: QWidget) -> bool:
        if self.xcb is None:
            return False
        for wid, w in self._protected.items():
            if w is widget:
                return self._visibility.get(wid) != VISIBILITY_UNOBSCURED
        return True

    def accept_approval_event(self, event: QInputEvent) -> bool:
        why = self.refusal(event)
        if why == POINTER_MOVED_BY_SOFTWARE:
            log.info(
                "input guard: refused a real click on Approve: the pointer was "
                "last moved there by a program (warp or XTEST), not the mouse"
            )
        elif why is not None and self.available:
            log.info(
                "input guard: refused an Approve %s that did not come from a real device",
                _kind_of(event),
            )
        return why is None

    def refusal(self, event: QInputEvent) -> str | None:
        if not self.available:
            return self.problem
        wanted = _kind_of(event)
        if wanted is None:
            return FROM_SOFTWARE
        stamp = int(event.timestamp())
        for kind, time, pointer_ok in reversed(self._trusted):
            if kind == wanted and time == stamp:
                if kind.startswith("button-") and not pointer_ok:
                    return POINTER_MOVED_BY_SOFTWARE
                return None
        return FROM_SOFTWARE

    def stats(self) -> dict[str, int]:
        return dict(self._drops)

    # -- the filter ------------------------------------------------------------------------
    def _untrusted(self, kind: str, source: str, stamp: int | None = None) -> bool:
        """Input that cannot approve but may do anything else: count it, pass it on."""
        if stamp is not None:
            if self._last_drop == (kind, stamp):
                return False  # the master's copy of an event already counted for the slave
            self._last_drop = (kind, stamp)
        key = f"untrusted {kind}"
        n = self._drops.get(key, 0) + 1
        self._drops[key] = n
        if n <= MAX_DROP_LOGS:
            log.info(
                "input guard: untrusted %s from %s: passed on, it cannot approve", kind, source
            )
        return False

    def _drop(self, kind: str, source: str, stamp: int | None = None) -> bool:
        if stamp is not None:
            if self._last_drop == (kind, stamp):
                return True  # the master's copy of an event already counted for the slave
            self._last_drop = (kind, stamp)
        n = self._drops.get(kind, 0) + 1
        self._drops[kind] = n
        if n <= MAX_DROP_LOGS:
            log.info("input guard: dropped %s from %s", kind, source)
        return True

    def _set_problem(self, problem: str) -> None:
        if self.problem is None:
            self.problem = problem
            log.warning("input guard: approval refused: %s", problem)
            self.changed.emit()

    def filter_event(self, ptr: int) -> bool:
        """True to drop the event. Never raises: on an internal error, input is dropped
        while a dialog is open."""
        try:
            return self._filter_event(ptr)
        except Exception:
            log.exception("input guard: filter error")
            return self.engaged

    def _filter_event(self, ptr: int) -> bool:
        head = ctypes.string_at(ptr, 32)
        code = head[0] & 0x7F
        synthetic = bool(head[0] & SYNTHETIC)
        if code == GENERIC_EVENT:
            if head[1] != self.xi_opcode:
                return False
            (length,) = struct.unpack_from("=I", head, 4)
            return self._filter_xi(ctypes.string_at(ptr, 36 + 4 * length), synthetic)
        if code == VISIBILITY_NOTIFY:
            window, state = struct.unpack_from("=IB", head, 4)
            if window in self._protected:
                self._visibility[window] = state
                self.changed.emit()
            return False
        if not self.engaged:
            return False
        if code == MAPPING_NOTIFY or (
            code == self.xkb_event and head[1] in (XKB_NEW_KEYBOARD_NOTIFY, XKB_MAP_NOTIFY)
        ):
            # Someone changed what keys or buttons mean (xmodmap, setxkbmap, a program
            # turning the letters you type into Tab and Space): start arming again.
            log.debug("mapping event %d/%d", code, head[1])
            self.input_reset.emit("the keyboard or pointer mapping changed")
            return False
        if code in (KEY_PRESS, KEY_RELEASE):
            return self._filter_core_key(head, code, synthetic)
        if code in (BUTTON_PRESS, BUTTON_RELEASE, MOTION_NOTIFY):
            if synthetic:
                return self._drop("a synthetic mouse event", "XSendEvent")
            # Qt reads the mouse through XInput2 when it can; a core pointer event means it
            # does not, and then nothing tells us where the mouse input comes from: approval
            # is refused, but the mouse still works for Deny.
            self.pointer_trusted = False
            self._set_problem(NO_XI2_PROBLEM.format(why="Qt is reading the mouse without XInput2"))
            return self._untrusted("core mouse event", "a session without XInput2 mouse input")
        if code in (ENTER_NOTIFY, LEAVE_NOTIFY, FOCUS_IN, FOCUS_OUT) and synthetic:
            return self._drop("a synthetic crossing/focus event", "XSendEvent")
        return False

    def _raw_source(self, raw_type: int, time: int, detail: int | None) -> int | None:
        """The source device of the raw event that goes with a device event, if any."""
        for rtype, rtime, rdetail, source in reversed(self._raw):
            if rtype == raw_type and rtime == time and (detail is None or rdetail == detail):
                return source
        return None

    def _filter_core_key(self, head: bytes, code: int, synthetic: bool) -> bool:
        kind = "key-press" if code == KEY_PRESS else "key-release"
        if synthetic:
            return self._drop(f"a synthetic {kind}", "XSendEvent")
        keycode = head[1]
        (time,) = struct.unpack_from("=I", head, 4)
        raw_type = XI_RAW_KEY_PRESS if code == KEY_PRESS else XI_RAW_KEY_RELEASE
        source = self._raw_source(raw_type, time, keycode)
        if source is None:
            return self._untrusted(kind, "no input device (no matching raw event)")
        trusted, what = self._source(source)
        if not trusted:
            return self._untrusted(kind, what, stamp=time)
        self._trusted.append((kind, time, True))
        return False

    def _filter_xi(self, ev: bytes, synthetic: bool) -> bool:
        (evtype,) = struct.unpack_from("=H", ev, 8)
        if evtype in XI_RAW_EVENTS:
            time, detail, source = struct.unpack_from("=IIH", ev, 12)
            self._raw.append((evtype, time, detail, source))
            return False
        if evtype == XI_HIERARCHY_CHANGED:
            self._devices_dirty = True
            if self.engaged:
                self.input_reset.emit("input devices were added or removed")
            return False
        if not self.engaged:
            return False
        if evtype in XI_DEVICE_EVENTS:
            (time,) = struct.unpack_from("=I", ev, 12)
            (source,) = struct.unpack_from("=H", ev, 56)
            kind = XI_KIND.get(evtype, "touch event")
            if synthetic:
                return self._drop(f"a synthetic XI2 {kind}", "XSendEvent")
            trusted, what = self._source(source)
            # The event must also have a raw twin from the same device: warps and other
            # server-made pointer moves have none (and report the last real slave as source).
            detail = struct.unpack_from("=I", ev, 16)[0] if evtype in XI_KEY_EVENTS else None
            if trusted and self._raw_source(RAW_OF[evtype], time, detail) != source:
                trusted, what = False, f"no device ({what} reported, but no raw event: a warp?)"
            if evtype == XI_MOTION:
                self.pointer_trusted = trusted
                if not trusted:
                    self._drops["untrusted motion"] = self._drops.get("untrusted motion", 0) + 1
                return False
            if not trusted:
                return self._untrusted(kind, what, stamp=time)
            self._trusted.append((kind, time, self.pointer_trusted))
            return False
        if evtype in XI_CROSSING_EVENTS:
            if synthetic:
                return self._drop("a synthetic XI2 crossing event", "XSendEvent")
            if evtype == XI_ENTER:
                # The pointer came in: only a real device's move (which has a raw motion
                # event) counts; a warp, a window mapped or moved under the pointer, or XTEST
                # means a click needs a real move first.
                time, source = struct.unpack_from("=IH", ev, 12)
                self.pointer_trusted = (
                    self._source(source)[0]
                    and self._raw_source(XI_RAW_MOTION, time, None) == source
                )
            return False
        # The dialog has no use for touchpad gestures: drop them all.
        return evtype in XI_GESTURE_EVENTS

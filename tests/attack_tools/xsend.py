"""Forged X events with XSendEvent, written with python-xlib (Debian python3-xlib).

Runs under the system python3:

  xsend.py click WINDOW X Y       ButtonPress + ButtonRelease (button 1) at window-relative
                                  X,Y, sent to WINDOW (and, with the time of the last
                                  real event, as close to genuine as a client can make it)
  xsend.py keys WINDOW KEY...     KeyPress + KeyRelease per keysym name (Tab, space, Return)
  xsend.py focus WINDOW           a forged FocusIn (to fake "the dialog is active")
  xsend.py close WINDOW           WM_DELETE_WINDOW, what a window manager's close button
                                  sends (not input; the dialog treats it as Deny)
  xsend.py remap KEYCODE KEYSYM.. change what a key means (what xmodmap does; any client
                                  may); prints the previous keysyms to restore them with

The X server sets the ``send_event`` flag on everything sent this way; a client cannot clear
it. WINDOW is a decimal or 0x-hex window id. Prints one JSON object.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from Xlib import XK, X, display
from Xlib.protocol import event


def remap(d: display.Display, keycode: int, names: list[str]) -> dict[str, Any]:
    old = d.get_keyboard_mapping(keycode, 1)[0]
    names_of = {v: k[3:] for k, v in vars(XK).items() if k.startswith("XK_")}
    old_names = [names_of.get(k, "NoSymbol") for k in old]
    new = [XK.string_to_keysym(n) if n != "NoSymbol" else 0 for n in names]
    d.change_keyboard_mapping(keycode, [new + [0] * (len(old) - len(new))])
    d.sync()
    return {"keycode": keycode, "old": old_names, "new": names}


def main(argv: list[str]) -> dict[str, Any]:
    d = display.Display()
    if argv[0] == "remap":
        return remap(d, int(argv[1]), argv[2:])
    cmd, wid = argv[0], int(argv[1], 0)
    win = d.create_resource_object("window", wid)
    root = d.screen().root
    geo = win.get_geometry()
    origin = win.translate_coords(root, 0, 0)
    ox, oy = -origin.x, -origin.y
    sent = []
    if cmd == "click":
        x, y = int(argv[2]), int(argv[3])
        for kind, mask in (
            (event.ButtonPress, X.ButtonPressMask),
            (event.ButtonRelease, X.ButtonReleaseMask),
        ):
            ev = kind(
                time=X.CurrentTime,
                root=root,
                window=win,
                child=X.NONE,
                root_x=ox + x,
                root_y=oy + y,
                event_x=x,
                event_y=y,
                state=0 if kind is event.ButtonPress else X.Button1Mask,
                same_screen=1,
                detail=1,
            )
            win.send_event(ev, event_mask=mask, propagate=False)
            sent.append(kind.__name__)
    elif cmd == "keys":
        for name in argv[2:]:
            code = d.keysym_to_keycode(XK.string_to_keysym(name))
            for kind, mask in (
                (event.KeyPress, X.KeyPressMask),
                (event.KeyRelease, X.KeyReleaseMask),
            ):
                ev = kind(
                    time=X.CurrentTime,
                    root=root,
                    window=win,
                    child=X.NONE,
                    root_x=0,
                    root_y=0,
                    event_x=0,
                    event_y=0,
                    state=0,
                    same_screen=1,
                    detail=code,
                )
                win.send_event(ev, event_mask=mask, propagate=False)
                sent.append(f"{kind.__name__}:{name}")
    elif cmd == "focus":
        ev = event.FocusIn(window=win, mode=X.NotifyNormal, detail=X.NotifyNonlinear)
        win.send_event(ev, event_mask=X.FocusChangeMask, propagate=False)
        sent.append("FocusIn")
    elif cmd == "close":
        protocols = d.intern_atom("WM_PROTOCOLS")
        delete = d.intern_atom("WM_DELETE_WINDOW")
        ev = event.ClientMessage(
            window=win, client_type=protocols, data=(32, [delete, X.CurrentTime, 0, 0, 0])
        )
        win.send_event(ev, event_mask=0, propagate=False)
        sent.append("WM_DELETE_WINDOW")
    else:
        raise SystemExit(__doc__)
    d.sync()
    return {"sent": sent, "window": wid, "size": [geo.width, geo.height]}


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1:])), flush=True)

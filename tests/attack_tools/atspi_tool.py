"""AT-SPI from another process: what a screen reader sees, and what a worm would try.

Runs under the *system* python3 with python3-pyatspi (Debian), not the venv:

  atspi_tool.py apps                       names of the applications on the a11y bus
  atspi_tool.py dump TITLE                 the window whose name starts with TITLE: every
                                           node's role, name, text, actions, states, extents
  atspi_tool.py press TITLE BUTTON         everything AT-SPI offers to "press" BUTTON: each
                                           listed action, DoAction(0..2) even when none is
                                           listed, Component.GrabFocus
  atspi_tool.py mouse X Y [b1c|b1p|b1r]    Registry.generateMouseEvent (XTEST underneath)
  atspi_tool.py keys KEY...                Registry.generateKeyboardEvent by keysym name
                                           (space, Return, Tab, Escape)

Every command prints one JSON object. The bus is found the way every AT-SPI client finds it
(AT_SPI_BUS_ADDRESS, the X root property AT_SPI_BUS, or org.a11y.Bus on the session bus).
"""

from __future__ import annotations

import json
import sys
from typing import Any

import pyatspi

KEYSYMS = {"space": 0x20, "Return": 0xFF0D, "Tab": 0xFF09, "Escape": 0xFF1B}


def apps() -> list[Any]:
    desk = pyatspi.Registry.getDesktop(0)
    return [desk.getChildAtIndex(i) for i in range(desk.childCount)]


def find_window(title: str):
    for app in apps():
        if app is None:
            continue
        for i in range(app.childCount):
            win = app.getChildAtIndex(i)
            if win is not None and (win.name or "").startswith(title):
                return win
    return None


def nodes(acc, depth: int = 0):
    yield depth, acc
    for i in range(acc.childCount):
        child = acc.getChildAtIndex(i)
        if child is not None:
            yield from nodes(child, depth + 1)


def describe(acc) -> dict[str, Any]:
    info = {"role": acc.getRoleName(), "name": acc.name, "description": acc.description}
    try:
        text = acc.queryText()
        info["text"] = text.getText(0, -1)
    except NotImplementedError:
        pass
    try:
        action = acc.queryAction()
        info["actions"] = [action.getName(i) for i in range(action.nActions)]
    except NotImplementedError:
        info["actions"] = []
    states = acc.getState()
    info["states"] = [pyatspi.stateToString(s) for s in states.getStates()]
    try:
        ext = acc.queryComponent().getExtents(pyatspi.DESKTOP_COORDS)
        info["extents"] = [ext.x, ext.y, ext.width, ext.height]
    except NotImplementedError:
        pass
    return info


def find_button(win, name: str):
    for _depth, acc in nodes(win):
        if acc.getRoleName() == "push button" and (acc.name or "").startswith(name):
            return acc
    return None


def press(title: str, name: str) -> dict[str, Any]:
    win = find_window(title)
    if win is None:
        return {"found": False}
    button = find_button(win, name)
    if button is None:
        return {"found": False, "window": True}
    out: dict[str, Any] = {"found": True, "button": describe(button), "attempts": []}
    try:
        action = button.queryAction()
        listed = action.nActions
        for i in range(max(listed, 0) + 3):  # beyond the listed ones too
            try:
                out["attempts"].append([f"DoAction({i})", bool(action.doAction(i))])
            except Exception as exc:  # report it, keep attacking
                out["attempts"].append([f"DoAction({i})", f"error: {type(exc).__name__}"])
    except NotImplementedError:
        out["attempts"].append(["Action interface", "absent"])
    try:
        out["attempts"].append(["GrabFocus", bool(button.queryComponent().grabFocus())])
    except Exception as exc:
        out["attempts"].append(["GrabFocus", f"error: {type(exc).__name__}"])
    return out


def main(argv: list[str]) -> dict[str, Any]:
    cmd, args = (argv[0], argv[1:]) if argv else ("", [])
    if cmd == "apps":
        return {"apps": [a.name for a in apps() if a is not None]}
    if cmd == "dump":
        win = find_window(args[0])
        if win is None:
            return {"found": False}
        return {"found": True, "nodes": [dict(describe(a), depth=d) for d, a in nodes(win)]}
    if cmd == "press":
        return press(args[0], args[1])
    if cmd == "mouse":
        x, y = int(args[0]), int(args[1])
        kind = args[2] if len(args) > 2 else "b1c"
        pyatspi.Registry.generateMouseEvent(x, y, kind)
        return {"sent": [x, y, kind]}
    if cmd == "keys":
        for key in args:
            pyatspi.Registry.generateKeyboardEvent(KEYSYMS[key], None, pyatspi.KEY_SYM)
        return {"sent": args}
    raise SystemExit(__doc__)


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1:])), flush=True)

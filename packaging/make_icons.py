#!/usr/bin/env python3
"""Generate gui-approver's icons: SVG masters, then PNGs rendered from them with QtSvg.

    .venv/bin/python packaging/make_icons.py          # (re)write every icon
    .venv/bin/python packaging/make_icons.py --check  # exit 1 if a committed SVG is stale

Outputs (all committed):

* ``resources/icons/<name>.svg``: the masters (``app`` and the four tray states);
* ``resources/icons/hicolor/{N}x{N}/apps/<APP_ID>.png`` and ``hicolor/scalable/apps/<APP_ID>.svg``:
  the application icon laid out like an icon theme, ready to copy into ``share/icons``;
* ``gui_approver/desktop/icons/<name>.svg`` and ``<name>-<N>.png``: the runtime copies shipped in the
  Python package (``gui_approver.desktop.integration.icon_path(state, size)`` finds them).

Design rules for the tray states (they must read on light *and* dark panels, and must not rely
on colour alone): every shape has a dark outer outline and a white inner outline around a
mid-tone fill, and each state has its own silhouette or glyph:

* ``idle``    shield with a check mark
* ``pending`` shield with an exclamation mark, plus a round badge on the top-right corner
* ``locked``  a padlock (no shield at all)
* ``auto``    shield with a lightning bolt (auto-approve-loopback is on)

The geometry is drawn on a 64x64 grid; strokes are thick enough to survive 16 px.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
APP_ID = "io.github.gui_approver"
NAMES = ("app", "idle", "pending", "locked", "auto")
APP_SIZES = (16, 22, 24, 32, 48, 64, 128, 256)
TRAY_SIZES = (16, 22, 24, 32, 48, 64)

DARK = "#1b1f24"
LIGHT = "#ffffff"
COLOURS = {
    "app": "#2563eb",
    "idle": "#2563eb",
    "pending": "#f59e0b",
    "locked": "#64748b",
    "auto": "#9333ea",
}

SHIELD = "M32 4 L56 12 V30 C56 45 46 55 32 61 C18 55 8 45 8 30 V12 Z"


def _shield(fill: str) -> str:
    return (
        f'  <path d="{SHIELD}" fill="{DARK}" stroke="{DARK}" stroke-width="6" '
        'stroke-linejoin="round"/>\n'
        f'  <path d="{SHIELD}" fill="{fill}" stroke="{LIGHT}" stroke-width="2.5" '
        'stroke-linejoin="round"/>\n'
    )


def _outlined_stroke(d: str, width: float) -> str:
    """A white stroke with a dark halo (glyphs on the coloured fill)."""
    return (
        f'  <path d="{d}" fill="none" stroke="{DARK}" stroke-width="{width + 4:g}" '
        'stroke-linecap="round" stroke-linejoin="round"/>\n'
        f'  <path d="{d}" fill="none" stroke="{LIGHT}" stroke-width="{width:g}" '
        'stroke-linecap="round" stroke-linejoin="round"/>\n'
    )


def _glyph(name: str) -> str:
    if name in ("app", "idle"):
        return _outlined_stroke("M19 32 L28 41 L45 22", 6)
    if name == "pending":
        # Dark exclamation mark on amber (high contrast), then a red badge at the corner.
        return (
            f'  <path d="M32 17 V35" fill="none" stroke="{DARK}" stroke-width="7" '
            'stroke-linecap="round"/>\n'
            f'  <circle cx="32" cy="46" r="4.5" fill="{DARK}"/>\n'
            f'  <circle cx="52" cy="12" r="10" fill="{DARK}"/>\n'
            f'  <circle cx="52" cy="12" r="7.5" fill="#dc2626" stroke="{LIGHT}" '
            'stroke-width="2.5"/>\n'
        )
    if name == "auto":
        bolt = "M37 11 L17 36 H30 L26 53 L47 25 H34 L40 11 Z"
        return (
            f'  <path d="{bolt}" fill="{DARK}" stroke="{DARK}" stroke-width="5" '
            'stroke-linejoin="round"/>\n'
            f'  <path d="{bolt}" fill="{LIGHT}" stroke="{LIGHT}" stroke-width="1" '
            'stroke-linejoin="round"/>\n'
        )
    raise ValueError(name)


def _padlock() -> str:
    shackle = "M21 30 V21 A11 11 0 0 1 43 21 V30"
    body = 'x="10" y="28" width="44" height="32" rx="6"'
    fill = COLOURS["locked"]
    return (
        f'  <path d="{shackle}" fill="none" stroke="{DARK}" stroke-width="11" '
        'stroke-linecap="round"/>\n'
        f'  <path d="{shackle}" fill="none" stroke="#cbd5e1" stroke-width="5" '
        'stroke-linecap="round"/>\n'
        f'  <rect {body} fill="{DARK}" stroke="{DARK}" stroke-width="6"/>\n'
        f'  <rect {body} fill="{fill}" stroke="{LIGHT}" stroke-width="2.5"/>\n'
        f'  <circle cx="32" cy="41" r="5" fill="{LIGHT}" stroke="{DARK}" stroke-width="1.5"/>\n'
        f'  <path d="M32 44 V52" fill="none" stroke="{DARK}" stroke-width="5.5" '
        'stroke-linecap="round"/>\n'
        f'  <path d="M32 44 V52" fill="none" stroke="{LIGHT}" stroke-width="3" '
        'stroke-linecap="round"/>\n'
    )


TITLES = {
    "app": "gui-approver",
    "idle": "gui-approver: idle",
    "pending": "gui-approver: a request is waiting for you",
    "locked": "gui-approver: the keychain is locked",
    "auto": "gui-approver: auto-approve for loopback registries is on",
}


def svg(name: str) -> str:
    if name not in NAMES:
        raise ValueError(f"unknown icon {name!r}")
    body = _padlock() if name == "locked" else _shield(COLOURS[name]) + _glyph(name)
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<svg xmlns="http://www.w3.org/2000/svg" version="1.1" width="64" height="64" '
        'viewBox="0 0 64 64">\n'
        f"  <title>{TITLES[name]}</title>\n"
        f"{body}"
        "</svg>\n"
    )


def render_png(svg_text: str, size: int, out: Path) -> None:
    from PySide6.QtCore import QByteArray, Qt
    from PySide6.QtGui import QImage, QPainter
    from PySide6.QtSvg import QSvgRenderer

    renderer = QSvgRenderer(QByteArray(svg_text.encode()))
    if not renderer.isValid():
        raise RuntimeError(f"QtSvg cannot parse the SVG for {out}")
    image = QImage(size, size, QImage.Format.Format_ARGB32_Premultiplied)
    image.fill(Qt.GlobalColor.transparent)
    painter = QPainter(image)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform)
    renderer.render(painter)
    painter.end()
    out.parent.mkdir(parents=True, exist_ok=True)
    if not image.convertToFormat(QImage.Format.Format_ARGB32).save(str(out), "PNG"):
        raise RuntimeError(f"could not write {out}")


def outputs(repo: Path = REPO) -> dict[Path, str | tuple[str, int]]:
    """Every output path -> SVG text, or (SVG text, size) for a PNG."""
    res = repo / "resources" / "icons"
    pkg = repo / "gui_approver" / "desktop" / "icons"
    out: dict[Path, str | tuple[str, int]] = {}
    for name in NAMES:
        text = svg(name)
        out[res / f"{name}.svg"] = text
        out[pkg / f"{name}.svg"] = text
        for size in APP_SIZES if name == "app" else TRAY_SIZES:
            out[pkg / f"{name}-{size}.png"] = (text, size)
    app = svg("app")
    out[res / "hicolor" / "scalable" / "apps" / f"{APP_ID}.svg"] = app
    for size in APP_SIZES:
        out[res / "hicolor" / f"{size}x{size}" / "apps" / f"{APP_ID}.png"] = (app, size)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true",
                        help="only check that the committed SVGs match this generator")
    parser.add_argument("--repo", type=Path, default=REPO, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    plan = outputs(args.repo)
    if args.check:
        stale = [p for p, v in plan.items() if isinstance(v, str)
                 and (not p.is_file() or p.read_text("utf-8") != v)]
        missing = [p for p, v in plan.items() if not isinstance(v, str) and not p.is_file()]
        for p in stale + missing:
            print(f"stale or missing: {p.relative_to(args.repo)}", file=sys.stderr)
        return 1 if stale or missing else 0
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtGui import QGuiApplication

    _app = QGuiApplication.instance() or QGuiApplication([])
    for path, value in plan.items():
        if isinstance(value, str):
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(value, "utf-8")
        else:
            render_png(value[0], value[1], path)
    print(f"wrote {len(plan)} files")
    return 0


if __name__ == "__main__":
    sys.exit(main())

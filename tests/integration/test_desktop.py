"""Desktop integration: icons, the menu entry and metainfo (validated by the freedesktop
tools), and `gui-approver autostart` / `gui-approver desktop` against temporary XDG dirs."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from gui_approver.desktop import integration as desktop

REPO = Path(__file__).resolve().parents[2]
CLI = str(Path(sys.executable).parent / "gui-approver")
RESOURCES = REPO / "resources"


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([CLI, *args], capture_output=True, text=True, env=env, timeout=60)


def tool(name: str, package: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(
            f"{name} is missing: install the Debian package {package} "
            "(packaging/bootstrap.sh test does)"
        )
    return path


def desktop_file_validate(path: Path) -> None:
    result = subprocess.run(
        [tool("desktop-file-validate", "desktop-file-utils"), str(path)],
        capture_output=True,
        text=True,
    )
    # It prints hints too; only errors and warnings count (and make the exit status non-zero).
    assert result.returncode == 0, result.stdout + result.stderr
    bad = [ln for ln in result.stdout.splitlines() if ": error:" in ln or ": warning:" in ln]
    assert bad == [], bad


def appstream_validate(path: Path) -> None:
    result = subprocess.run(
        [tool("appstreamcli", "appstream"), "validate", "--no-net", "--no-color", str(path)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    bad = [ln for ln in result.stdout.splitlines() if ln.startswith(("E:", "W:"))]
    assert bad == [], bad


def parse_exec(value: str) -> list[str]:
    """Split an Exec value as the Desktop Entry spec says a launcher must."""
    # 1. string-value escapes, 2. quoting, 3. %% -> %.
    unescaped = value.replace("\\\\", "\x00").replace("\\s", " ").replace("\x00", "\\")
    args: list[str] = []
    cur: str | None = None
    i = 0
    quoted = False
    while i < len(unescaped):
        c = unescaped[i]
        if quoted:
            if c == "\\" and i + 1 < len(unescaped) and unescaped[i + 1] in '"`$\\':
                cur = (cur or "") + unescaped[i + 1]
                i += 2
                continue
            if c == '"':
                quoted = False
            else:
                cur = (cur or "") + c
        elif c == '"':
            quoted = True
            cur = cur or ""
        elif c == " ":
            if cur is not None:
                args.append(cur)
            cur = None
        else:
            cur = (cur or "") + c
        i += 1
    if cur is not None:
        args.append(cur)
    return [a.replace("%%", "%") for a in args]


def entry_values(text: str) -> dict[str, str]:
    lines = text.splitlines()
    assert lines[0] == "[Desktop Entry]"
    return dict(line.split("=", 1) for line in lines[1:] if line and not line.startswith("#"))


# -- icons -------------------------------------------------------------------------------------


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", path
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


@pytest.mark.parametrize("state", desktop.ICON_NAMES)
def test_every_icon_exists_in_every_size(state):
    svg = desktop.icon_path(state)
    assert svg.is_file() and svg.read_text().startswith("<?xml")
    for size in desktop.icon_sizes(state):
        assert png_size(desktop.icon_path(state, size)) == (size, size)


def test_icon_path_rejects_unknown_state_and_size():
    with pytest.raises(ValueError, match="unknown icon"):
        desktop.icon_path("bogus")
    with pytest.raises(ValueError, match="no 17px"):
        desktop.icon_path("idle", 17)
    assert desktop.APP_ICON_SIZES == (16, 22, 24, 32, 48, 64, 128, 256)


def test_committed_icons_match_the_generator():
    result = subprocess.run(
        [sys.executable, str(REPO / "packaging" / "make_icons.py"), "--check"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    for name in desktop.ICON_NAMES:
        assert (RESOURCES / "icons" / f"{name}.svg").read_bytes() == desktop.icon_path(
            name
        ).read_bytes()
    hicolor = RESOURCES / "icons" / "hicolor"
    for size in desktop.APP_ICON_SIZES:
        theme_png = hicolor / f"{size}x{size}" / "apps" / f"{desktop.APP_ID}.png"
        assert theme_png.read_bytes() == desktop.icon_path("app", size).read_bytes()
    assert (
        hicolor / "scalable" / "apps" / f"{desktop.APP_ID}.svg"
    ).read_bytes() == desktop.icon_path("app").read_bytes()


def _luma_image(state: str, size: int, background: tuple[int, int, int]) -> list[float]:
    """The icon composited on ``background``, as grey levels (colour thrown away)."""
    from PySide6.QtGui import QImage

    img = QImage(str(desktop.icon_path(state, size))).convertToFormat(QImage.Format.Format_ARGB32)
    out = []
    for y in range(size):
        for x in range(size):
            c = img.pixelColor(x, y)
            a = c.alphaF()
            rgb = [
                a * v + (1 - a) * b
                for v, b in zip((c.red(), c.green(), c.blue()), background, strict=True)
            ]
            out.append(0.2126 * rgb[0] + 0.7152 * rgb[1] + 0.0722 * rgb[2])
    return out


@pytest.mark.parametrize("size", [16, 22, 32])
def test_tray_states_differ_by_shape_not_only_colour(qapp, size):
    # Compare the icons in *grey levels* only: a difference that survives losing all hue is
    # a difference of shape/glyph, which is what colour-blind users and monochrome panels see.
    states = desktop.TRAY_STATES
    grey = {s: _luma_image(s, size, (128, 128, 128)) for s in states}
    for i, a in enumerate(states):
        for b in states[i + 1 :]:
            # A pixel counts as different only when its grey level differs a lot.
            differing = sum(abs(p - q) > 60 for p, q in zip(grey[a], grey[b], strict=True))
            assert differing >= 0.08 * size * size, (a, b, differing)


@pytest.mark.parametrize("state", desktop.TRAY_STATES)
@pytest.mark.parametrize("panel", [(242, 242, 242), (30, 30, 30)], ids=["light", "dark"])
def test_tray_icons_stand_out_on_light_and_dark_panels(qapp, state, panel):
    from PySide6.QtGui import QImage

    size = 22
    img = QImage(str(desktop.icon_path(state, size))).convertToFormat(QImage.Format.Format_ARGB32)
    pixels = _luma_image(state, size, panel)
    panel_luma = 0.2126 * panel[0] + 0.7152 * panel[1] + 0.0722 * panel[2]
    opaque = [p for i, p in enumerate(pixels) if img.pixelColor(i % size, i // size).alpha() > 200]
    # Enough of the icon contrasts strongly with the panel behind it (its outline/glyph).
    contrasting = sum(abs(p - panel_luma) > 100 for p in opaque)
    assert contrasting >= 0.15 * len(opaque), (state, contrasting, len(opaque))


# -- menu entry and metainfo -------------------------------------------------------------------


def test_resources_are_what_the_module_generates():
    assert (RESOURCES / desktop.DESKTOP_FILE).read_text() == desktop.desktop_entry()
    assert (RESOURCES / f"{desktop.APP_ID}.metainfo.xml").read_text() == desktop.metainfo_xml()


def test_desktop_file_validates():
    path = RESOURCES / desktop.DESKTOP_FILE
    desktop_file_validate(path)
    values = entry_values(path.read_text())
    assert values["Icon"] == desktop.APP_ID
    assert parse_exec(values["Exec"]) == ["gui-approver", "app"]


def test_metainfo_validates_and_is_consistent():
    path = RESOURCES / f"{desktop.APP_ID}.metainfo.xml"
    appstream_validate(path)
    text = path.read_text()
    assert f"<id>{desktop.APP_ID}</id>" in text
    assert f'<launchable type="desktop-id">{desktop.DESKTOP_FILE}</launchable>' in text
    assert f'<icon type="stock">{desktop.APP_ID}</icon>' in text
    from gui_approver import __version__

    assert f'<release version="{__version__}"' in text


@pytest.mark.parametrize(
    "path",
    [
        "/opt/gui approver/bin/gui-approver",
        '/opt/we"ird/$HOME/`x`/back\\slash/100%/gui-approver',
        "/usr/bin/gui-approver",
    ],
)
def test_exec_quoting_round_trips(path, tmp_path):
    text = desktop.desktop_entry(path, icon="/x/app.svg", autostart=True)
    values = entry_values(text)
    assert parse_exec(values["Exec"]) == [path, "app"]
    f = tmp_path / "t.desktop"
    f.write_text(text)
    desktop_file_validate(f)


# -- autostart ---------------------------------------------------------------------------------


def test_autostart_enable_status_disable(tmp_path):
    config = Path(os.environ["XDG_CONFIG_HOME"])  # a fresh temporary dir (conftest)
    home = tmp_path / "home"
    home.mkdir()
    env = dict(os.environ, HOME=str(home))
    target = config / "autostart" / "gui-approver.desktop"

    st = run_cli("autostart", "status", "--json", env=env)
    assert st.returncode == 0 and json.loads(st.stdout) == {"enabled": False, "path": str(target)}
    on = run_cli("autostart", "enable", env=env)
    assert on.returncode == 0, on.stderr
    assert str(target) in on.stdout
    desktop_file_validate(target)
    values = entry_values(target.read_text())
    argv = parse_exec(values["Exec"])
    assert argv == [CLI, "app"]  # the absolute path of this installation's gui-approver
    assert Path(argv[0]).is_absolute() and os.access(argv[0], os.X_OK)
    assert values["X-GNOME-Autostart-enabled"] == "true"
    assert Path(values["Icon"]).is_file()
    assert json.loads(run_cli("autostart", "status", "--json", env=env).stdout)["enabled"]

    # enabling twice is fine and leaves one file
    assert run_cli("autostart", "enable", env=env).returncode == 0
    assert sorted(p.name for p in target.parent.iterdir()) == ["gui-approver.desktop"]

    off = run_cli("autostart", "disable", env=env)
    assert off.returncode == 0 and not target.exists()
    again = run_cli("autostart", "disable", env=env)
    assert again.returncode == 0 and "was not enabled" in again.stdout
    assert list(home.iterdir()) == []  # HOME itself was never written


def test_autostart_exec_override_and_relative_xdg_config_home(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    exe = tmp_path / "my bin" / "gui-approver"
    # A relative XDG_CONFIG_HOME is invalid (XDG spec): ~/.config is used instead.
    env = dict(os.environ, HOME=str(home), XDG_CONFIG_HOME="relative/config")
    result = run_cli("autostart", "enable", "--exec", str(exe), env=env)
    assert result.returncode == 0, result.stderr
    target = home / ".config" / "autostart" / "gui-approver.desktop"
    assert parse_exec(entry_values(target.read_text())["Exec"]) == [str(exe), "app"]
    desktop_file_validate(target)


def test_autostart_in_process_api():
    path = desktop.enable_autostart(Path("/usr/local/bin/gui-approver"))
    assert path == desktop.autostart_path()
    assert desktop.autostart_entry() is not None
    assert desktop.disable_autostart() is True
    assert desktop.disable_autostart() is False
    assert desktop.autostart_entry() is None


# -- menu entry install ------------------------------------------------------------------------


def test_desktop_install_and_uninstall(tmp_path):
    data = Path(os.environ["XDG_DATA_HOME"])
    home = tmp_path / "home"
    home.mkdir()
    env = dict(os.environ, HOME=str(home))
    result = run_cli("desktop", "install", env=env)
    assert result.returncode == 0, result.stderr
    entry = data / "applications" / "gui-approver.desktop"
    desktop_file_validate(entry)
    assert parse_exec(entry_values(entry.read_text())["Exec"]) == [CLI, "app"]
    metainfo = data / "metainfo" / f"{desktop.APP_ID}.metainfo.xml"
    appstream_validate(metainfo)
    for size in desktop.APP_ICON_SIZES:
        icon = data / "icons" / "hicolor" / f"{size}x{size}" / "apps" / f"{desktop.APP_ID}.png"
        assert icon.read_bytes() == desktop.icon_path("app", size).read_bytes()
    assert (data / "icons" / "hicolor" / "scalable" / "apps" / f"{desktop.APP_ID}.svg").is_file()

    result = run_cli("desktop", "uninstall", env=env)
    assert result.returncode == 0, result.stderr
    assert [p for p in data.rglob("*") if p.is_file()] == []
    assert list(home.iterdir()) == []

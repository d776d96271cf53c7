"""Fixtures for a real, isolated test environment (no mocks). Helpers: tests/envtools.py.

Layout (this directory is on sys.path, so the helper modules here import from every subdir):
  unit/         pure in-process and fast (`make check`): no keychain daemon, app subprocess,
                cargo or X server; a unit test asking for such a fixture is a collection error
  integration/  real gnome-keyring, app/bridge subprocesses, sockets, the HTTP registry, SoftHSM2
  e2e/          the real cargo (marked ``e2e`` here)
  gui/          Qt widgets (pytest-qt, offscreen) and windows/attacks under Xvfb (marked ``gui``)

Isolation applied to *every* test (nothing to request):
  * at start-up the pytest process drops DBUS_SESSION_BUS_ADDRESS, PYTHON_KEYRING_BACKEND,
    GNOME_KEYRING_*, DISPLAY, WAYLAND_DISPLAY, XAUTHORITY and sets QT_QPA_PLATFORM=offscreen,
    so no test reaches the developer's keychain, bus or screen by accident;
  * per test (autouse ``_isolated_process_env``): XDG_CONFIG/DATA/STATE/CACHE_HOME point into
    a fresh temporary tree, XDG_RUNTIME_DIR at a fresh 0700 dir, and keyring's cached
    backend is forgotten before and after. Without a keychain fixture, keyring therefore
    detects its ``fail`` backend and raises NoKeyringError.

Fixtures:
  secret_service (function)  private dbus-daemon + unlocked gnome-keyring; env of this process
                             points at it and keyring re-detected SecretService. Yields
                             envtools.SecretService: .env, .lock(), .unlock(), .is_locked(),
                             .address, .runtime_dir, .bus, .keyring. Function-scoped: a fresh
                             keychain per test costs ~30 ms, so no state leaks between tests.
  no_keychain (function)     AppEnv (a dict) for a subprocess with *no* keychain backend (no
                             bus address, no PYTHON_KEYRING_BACKEND); also applied to
                             os.environ, where keyring detects ``fail.Keyring``.
  app_env (function)         AppEnv (a dict, plus ``.dirs``: envtools.AppDirs) to launch the
                             app/bridge with secret_service's keychain, offscreen Qt, the venv
                             first on PATH; also applied to os.environ.
  xvfb_display (session)     envtools.Display: .display (":N"), .number, .env, .process.
  gui_env (function)         app_env + DISPLAY of xvfb_display and QT_QPA_PLATFORM=xcb
                             (subprocesses only; in-process Qt stays offscreen).
  gui_app (function)         factory: gui_app(store, settings=None, *, start=True, **kw) -> a
                             ui.app.GuiApp (started unless start=False); every app it made and
                             not yet stopped is stopped in teardown, newest first.
  harness (function)         the e2e harness (tests/cargo_harness.py): the app in-process, the
                             demo registry, a CARGO_HOME pointing the real cargo at the bridge;
                             .run(args, cwd, decide=["approve"|"deny", ...]), .dialogs.
  node_verifier (session)    envtools.NodeVerifier, callable: node_verifier(token, public_pem)
                             -> {"payload": dict, "payload_raw": str, "footer": str | None};
                             raises envtools.NodeVerifyError. One node process for the session
                             (~1 ms a token); envtools.node_verify is the one-shot equivalent.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import envtools
import pytest
import softhsm as softhsm_tools
from cargo_harness import harness  # noqa: F401 - the e2e harness fixture
from hypothesis import settings
from watch_tools import cli_env, world  # noqa: F401 - the watch tests' fixtures

if TYPE_CHECKING:
    from gui_approver.core.keys.store import KeyStore
    from gui_approver.core.settings import Settings
    from gui_approver.ui.app import GuiApp

settings.register_profile("ci", max_examples=10_000, deadline=None, database=None)
settings.register_profile("dev", max_examples=300, deadline=None, database=None)

# Variables removed from the pytest process itself at start-up.
_PROCESS_LEAKY_VARS = (
    "DBUS_SESSION_BUS_ADDRESS",
    "DBUS_STARTER_ADDRESS",
    "DBUS_STARTER_BUS_TYPE",
    "PYTHON_KEYRING_BACKEND",
    "GNOME_KEYRING_CONTROL",
    "GNOME_KEYRING_PID",
    "DISPLAY",
    "WAYLAND_DISPLAY",
    "XAUTHORITY",
)


def pytest_configure(config: pytest.Config) -> None:
    for var in _PROCESS_LEAKY_VARS:
        os.environ.pop(var, None)
    # Before pytest-qt's session-wide QApplication exists: in-process Qt never needs a screen.
    os.environ["QT_QPA_PLATFORM"] = "offscreen"
    # Hypothesis: `ci` (make test, CI) runs the full 10,000 cases per parser; `dev` (make
    # check, a bare pytest) a few hundred. HYPOTHESIS_PROFILE picks one explicitly.
    settings.load_profile(
        os.environ.get("HYPOTHESIS_PROFILE") or ("ci" if os.environ.get("CI") else "dev")
    )


TESTS = Path(__file__).resolve().parent
# Directory -> marker applied to every test in it.
_DIR_MARKERS = {"e2e": "e2e", "gui": "gui"}
# Fixtures that start a real component: not in unit/.
# (Qt widgets, even offscreen, are gui/ tests.)
_NOT_IN_UNIT = frozenset(
    {
        "secret_service",
        "app_env",
        "gui_env",
        "no_keychain",
        "xvfb_display",
        "node_verifier",
        "softhsm",
        "harness",
        "qtbot",
        "qapp",
        "gui_app",
    }
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    bad = []
    for item in items:
        try:
            kind = item.path.resolve().relative_to(TESTS).parts[0]
        except ValueError:
            continue
        marker = _DIR_MARKERS.get(kind)
        if marker is not None:
            item.add_marker(marker)
        if kind == "unit":
            real = _NOT_IN_UNIT.intersection(getattr(item, "fixturenames", ()))
            if real:
                bad.append(f"{item.nodeid} uses {', '.join(sorted(real))}")
    if bad:
        raise pytest.UsageError(
            "tests/unit/ is for in-process tests; move these to tests/integration/ (or e2e/, "
            "gui/):\n  " + "\n  ".join(bad)
        )


class AppEnv(dict[str, str]):
    """An environment dict for subprocesses, with the directories it points at."""

    dirs: envtools.AppDirs


def _apply(monkeypatch: pytest.MonkeyPatch, env: dict[str, str], keys: list[str]) -> None:
    for key in keys:
        if key in env:
            monkeypatch.setenv(key, env[key])
        else:
            monkeypatch.delenv(key, raising=False)


_APP_KEYS = [
    "PATH",
    "VIRTUAL_ENV",
    "XDG_RUNTIME_DIR",
    "XDG_CONFIG_HOME",
    "XDG_DATA_HOME",
    "XDG_STATE_HOME",
    "XDG_CACHE_HOME",
    "CARGO_HOME",
    "QT_QPA_PLATFORM",
    "DBUS_SESSION_BUS_ADDRESS",
    "PYTHON_KEYRING_BACKEND",
]


@pytest.fixture(autouse=True)
def _isolated_process_env(
    monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[None]:
    root = tmp_path_factory.mktemp("xdg")
    runtime = envtools.make_runtime_dir("gat-t-")
    for name in ("CONFIG", "DATA", "STATE", "CACHE"):
        d = root / name.lower()
        d.mkdir()
        monkeypatch.setenv(f"XDG_{name}_HOME", str(d))
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(runtime))
    monkeypatch.delenv("DBUS_SESSION_BUS_ADDRESS", raising=False)
    monkeypatch.delenv("PYTHON_KEYRING_BACKEND", raising=False)
    envtools.forget_keyring_backend()
    try:
        yield
    finally:
        envtools.forget_keyring_backend()
        shutil.rmtree(runtime, ignore_errors=True)


@pytest.fixture
def secret_service(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Iterator[envtools.SecretService]:
    ss = envtools.start_secret_service(tmp_path_factory.mktemp("secret-service"))
    try:
        for key, value in ss.env.items():
            monkeypatch.setenv(key, value)
        monkeypatch.delenv("PYTHON_KEYRING_BACKEND", raising=False)
        backend = envtools.redetect_keyring()
        module = type(backend).__module__
        if module != envtools.SECRET_SERVICE_BACKEND_MODULE:
            pytest.fail(f"keyring picked {module}.{type(backend).__name__}, not SecretService")
        yield ss
    finally:
        envtools.forget_keyring_backend()
        ss.stop()


def _make_app_env(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    keychain: envtools.SecretService | None,
) -> AppEnv:
    dirs = envtools.make_app_dirs(
        tmp_path / "app-env", runtime_dir=keychain.runtime_dir if keychain else None
    )
    env = AppEnv(envtools.app_env_for(dirs, keychain_env=keychain.env if keychain else None))
    env.dirs = dirs
    _apply(monkeypatch, env, _APP_KEYS)
    envtools.forget_keyring_backend()
    return env


@pytest.fixture
def app_env(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, secret_service: envtools.SecretService
) -> Iterator[AppEnv]:
    env = _make_app_env(tmp_path, monkeypatch, secret_service)
    yield env
    env.dirs.cleanup()


@pytest.fixture
def no_keychain(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[AppEnv]:
    env = _make_app_env(tmp_path, monkeypatch, None)
    try:
        backend = envtools.redetect_keyring()
        if type(backend).__module__ != "keyring.backends.fail":
            pytest.fail(f"expected no keyring backend, keyring found {backend!r}")
        yield env
    finally:
        envtools.forget_keyring_backend()
        env.dirs.cleanup()


@pytest.fixture(scope="session")
def xvfb_display(tmp_path_factory: pytest.TempPathFactory) -> Iterator[envtools.Display]:
    display = envtools.start_xvfb(tmp_path_factory.mktemp("xvfb"))
    try:
        yield display
    finally:
        display.stop()


@pytest.fixture
def gui_env(app_env: AppEnv, xvfb_display: envtools.Display) -> AppEnv:
    env = AppEnv(app_env)
    env.dirs = app_env.dirs
    env["DISPLAY"] = xvfb_display.display
    env["QT_QPA_PLATFORM"] = "xcb"
    return env


@pytest.fixture
def gui_app(qtbot: Any) -> Iterator[Callable[..., GuiApp]]:
    from gui_approver.core.settings import Settings
    from gui_approver.ui.app import GuiApp

    made: list[GuiApp] = []

    def make(
        store: KeyStore, settings: Settings | None = None, *, start: bool = True, **kw: Any
    ) -> GuiApp:
        gui = GuiApp(store, settings if settings is not None else Settings(), **kw)
        made.append(gui)
        if start:
            gui.start()
        return gui

    yield make
    for gui in reversed(made):
        if not gui._stopped:
            gui.stop()


@pytest.fixture(scope="session")
def node_verifier() -> Iterator[envtools.NodeVerifier]:
    try:
        verifier = envtools.NodeVerifier()
    except envtools.EnvToolError as exc:
        pytest.fail(str(exc))
    try:
        yield verifier
    finally:
        verifier.close()


@pytest.fixture
def softhsm(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Iterator[softhsm_tools.SoftHsm]:
    """A private SoftHSM2 (own SOFTHSM2_CONF and token dir; no token yet: ``.init_token()``).
    SOFTHSM2_CONF is set in this process; gui-approver's PKCS#11 backend is reset (module
    unloaded) before and after, so each test sees only its own tokens."""
    from gui_approver.core.keys import pkcs11

    hsm = softhsm_tools.make_softhsm(tmp_path_factory.mktemp("softhsm"))
    pkcs11.reset_backend()
    monkeypatch.setenv("SOFTHSM2_CONF", str(hsm.conf))
    try:
        yield hsm
    finally:
        pkcs11.reset_backend()

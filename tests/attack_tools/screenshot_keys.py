"""Screenshots of the key manager (two sample keys) and of the new-key wizard's result page.

Run with the project's venv from the repository root::

    .venv/bin/python tests/attack_tools/screenshot_keys.py            # offscreen platform
    .venv/bin/python tests/attack_tools/screenshot_keys.py --xvfb     # a private Xvfb (xcb)

Writes ``resources/screenshots/keys.png``, ``key-result.png``, ``wizard-kind.png`` (crates.io
chosen: bearer token only) and ``wizard-token.png`` (or into ``--out DIR``). Everything is
real and private: a fresh gnome-keyring on its own D-Bus, XDG dirs and CARGO_HOME in a
temporary directory (tests/envtools.py); nothing touches the caller's keychain, config or
display.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO))

import envtools  # noqa: E402

DEMO_INDEX = "sparse+http://127.0.0.1:8765/index/"


def _settle(app) -> None:
    for _ in range(5):
        app.processEvents()


def render(out: Path, tmp: Path) -> list[Path]:
    # Imported only now: the environment (keychain bus, XDG dirs, platform) is in place.
    from PySide6.QtWidgets import QApplication

    from gui_approver.core.keys.store import KeyringKeychain, KeyStore
    from gui_approver.secret import Secret
    from gui_approver.ui.keys import KeyManagerWindow, NewKeyWizard

    app = QApplication.instance() or QApplication(["gui-approver"])
    QApplication.setApplicationDisplayName("gui-approver")
    store = KeyStore(KeyringKeychain())
    main = store.create(
        registry="my-registry",
        index_url="sparse+https://my.registry.example/index/",
        subject="alice",
        expires="2027-06-30",
    )
    from gui_approver.core.keys import flows

    flows.add_token(
        store,
        Secret("cioSampleTokenForTheScreenshot0123"),
        registry="crates-io",
        expires="2027-01-31",
        scopes="publish-update; crates: tokio-frobnicate",
        passphrase=Secret("correct horse battery staple"),
        origin="cli",
    )
    store.signing_key(main)  # a real use, so "Last used" shows a time

    written = []
    window = KeyManagerWindow(store, cargo_home=Path(os.environ["CARGO_HOME"]))
    window.show()
    window.select(main.kip)
    _settle(app)
    window.resize(window.sizeHint().expandedTo(window.size()))
    _settle(app)
    path = out / "keys.png"
    window.grab().save(str(path))
    written.append(path)

    data_dir = tmp / "demo-registry"
    data_dir.mkdir()
    wizard = NewKeyWizard(store, cargo_home=Path(os.environ["CARGO_HOME"]), demo_data_dir=data_dir)
    wizard.show()
    page = wizard.registry_page
    page.other.setChecked(True)
    page.name_edit.setText("local-demo")
    page.index_edit.setText(DEMO_INDEX)
    wizard.next()
    wizard.options_page.subject.setText("alice")
    wizard.options_page.expiry.choose("1y")
    wizard.next()
    if wizard.currentId() != NewKeyWizard.PAGE_RESULT:
        raise SystemExit(
            f"the wizard did not reach its result page: {wizard.options_page.error.text()}"
        )
    wizard.result_page.demo.register()
    _settle(app)
    wizard.resize(wizard.sizeHint().expandedTo(wizard.size()))
    _settle(app)
    path = out / "key-result.png"
    wizard.grab().save(str(path))
    written.append(path)
    wizard.close()

    # The kind choice: crates.io takes only its bearer token (issue 11).
    fresh = KeyStore(KeyringKeychain(), tmp / "fresh" / "keys.json")
    wizard = NewKeyWizard(fresh, cargo_home=Path(os.environ["CARGO_HOME"]))
    wizard.show()
    wizard.registry_page.crates_io.setChecked(True)
    _settle(app)
    wizard.resize(wizard.sizeHint().expandedTo(wizard.size()))
    _settle(app)
    path = out / "wizard-kind.png"
    wizard.grab().save(str(path))
    written.append(path)
    wizard.next()
    _settle(app)
    path = out / "wizard-token.png"
    wizard.grab().save(str(path))
    written.append(path)
    wizard.close()
    window.close()
    return written


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--xvfb", action="store_true", help="render on a private Xvfb (xcb)")
    parser.add_argument("--out", type=Path, default=REPO / "resources" / "screenshots")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="gat-shots-") as tmpname:
        tmp = Path(tmpname)
        with envtools.start_secret_service(tmp / "keychain") as ss:
            display = envtools.start_xvfb(tmp / "xvfb") if args.xvfb else None
            try:
                dirs = envtools.make_app_dirs(tmp / "app", runtime_dir=ss.runtime_dir)
                env = envtools.app_env_for(
                    dirs, keychain_env=ss.env, display=display.display if display else None
                )
                for var in envtools.LEAKY_ENV_VARS:
                    os.environ.pop(var, None)
                os.environ.update(env)
                envtools.forget_keyring_backend()
                for path in render(args.out, tmp):
                    print(path)
            finally:
                if display is not None:
                    display.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())

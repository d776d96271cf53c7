"""Screenshots of the hardware-key parts: the wizard's "On a hardware key" page, the PIN prompt
and "Touch your security key now", against a private SoftHSM2 token.

    .venv/bin/python tests/attack_tools/screenshot_hardware.py [--xvfb] [--out DIR]

Writes ``key-hardware.png``, ``pin-prompt.png`` and ``touch.png`` into
``resources/screenshots`` (or ``--out``). Private keychain, XDG dirs and SoftHSM2 config.
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
import softhsm  # noqa: E402


def _settle(app) -> None:
    for _ in range(5):
        app.processEvents()


def render(out: Path, hsm: softhsm.SoftHsm) -> list[Path]:
    from PySide6.QtWidgets import QApplication

    from gui_approver.core.keys import pkcs11
    from gui_approver.core.keys.store import KeyringKeychain, KeyStore
    from gui_approver.secret import Secret
    from gui_approver.ui.keys import NewKeyWizard
    from gui_approver.ui.passphrase import PassphraseDialog, TouchPrompt

    app = QApplication.instance() or QApplication(["gui-approver"])
    QApplication.setApplicationDisplayName("gui-approver")
    store = KeyStore(KeyringKeychain())
    info = pkcs11.backend().generate(
        hsm.module, "pkcs11:token=YubiKey%20PIV;id=%01", Secret(softhsm.PIN), label="PIV AUTH key"
    )
    pkcs11.backend().logout_all()
    written = []
    wizard = NewKeyWizard(store, cargo_home=Path(os.environ["CARGO_HOME"]))
    wizard.show()
    page = wizard.registry_page
    page.other.setChecked(True)
    page.name_edit.setText("my-registry")
    page.index_edit.setText("sparse+https://my.registry.example/index/")
    wizard.next()
    opts = wizard.options_page
    opts.on_hardware.setChecked(True)
    assert opts.hardware is not None
    opts.hardware.module.setEditText(hsm.module)
    opts.hardware.scan()
    opts.hardware.choice.setCurrentIndex(1)
    opts.hardware.pin.setText("123456")
    _settle(app)
    wizard.resize(wizard.sizeHint().expandedTo(wizard.size()))
    _settle(app)
    for name, widget in (("key-hardware.png", wizard),):
        path = out / name
        widget.grab().save(str(path))
        written.append(path)
    opts.hardware.pin.clear()
    wizard.close()
    rec = store.add_hardware(
        info,
        registry="my-registry",
        index_url="sparse+https://my.registry.example/index/",
        subject=None,
    )
    dialog = PassphraseDialog(rec, "enter the PIN of the security key to sign", deadline=None)
    dialog.show()
    _settle(app)
    path = out / "pin-prompt.png"
    dialog.grab().save(str(path))
    written.append(path)
    dialog.close()
    touch = TouchPrompt(rec)
    touch.show()
    _settle(app)
    path = out / "touch.png"
    touch.grab().save(str(path))
    written.append(path)
    return written


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--xvfb", action="store_true", help="render on a private Xvfb (xcb)")
    parser.add_argument("--out", type=Path, default=REPO / "resources" / "screenshots")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="gat-shots-") as tmpname:
        tmp = Path(tmpname)
        hsm = softhsm.make_softhsm(tmp / "softhsm")
        hsm.init_token("YubiKey PIV")
        os.environ.update(hsm.env)
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
                for path in render(args.out, hsm):
                    print(path)
            finally:
                if display is not None:
                    display.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())

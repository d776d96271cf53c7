"""One error model: every public exception is a GuiApproverError with a hint and an exit code;
one conversion to cargo's answer; the CLI's main maps errors to exit codes."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import pytest

import gui_approver
from gui_approver import errors
from gui_approver.cli import main as cli_main
from gui_approver.client import protocol


def _all_modules() -> list[str]:
    return [
        m.name
        for m in pkgutil.walk_packages(gui_approver.__path__, "gui_approver.")
        if not m.name.endswith("__main__")
    ]


def test_every_public_exception_is_in_the_one_hierarchy() -> None:
    strays = []
    for name in _all_modules():
        module = importlib.import_module(name)
        for attr, obj in vars(module).items():
            if (
                inspect.isclass(obj)
                and issubclass(obj, BaseException)
                and obj.__module__ == name
                and not attr.startswith("_")
                and not issubclass(obj, errors.GuiApproverError)
            ):
                strays.append(f"{name}.{attr}")
    assert strays == []


def test_cargo_error_puts_the_hint_in_the_message_not_in_caused_by() -> None:
    exc = errors.KeyLocked("the key is locked", hint="run gui-approver key unlock")
    body = protocol.cargo_error(exc)["Err"]
    assert body == {
        "kind": "other",
        "message": "gui-approver: the key is locked\n  hint: run gui-approver key unlock",
    }
    assert protocol.validate_response(protocol.cargo_error(errors.BridgeError("x")))


@pytest.mark.parametrize(
    ("exc", "code"),
    [
        (errors.ConfigError("bad config"), 1),
        (errors.UsageError("bad usage"), 2),
        (errors.AlreadyRunning("already running"), 0),
    ],
)
def test_cli_main_maps_errors_to_exit_codes(monkeypatch, capsys, exc, code) -> None:
    def boom(_args: object) -> int:
        raise exc

    parser = cli_main.build_parser()
    monkeypatch.setattr(cli_main, "build_parser", lambda: parser)
    parser.set_defaults(func=boom)
    monkeypatch.setattr(parser, "parse_args", lambda argv=None: parser.parse_known_args([])[0])
    assert cli_main.main([]) == code
    assert str(exc) in capsys.readouterr().err

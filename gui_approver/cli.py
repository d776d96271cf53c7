"""``gui-approver``: the app and its subcommands. Heavy modules are imported lazily."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from typing import Any

from gui_approver import __version__
from gui_approver.errors import GuiApproverError

log = logging.getLogger("gui_approver")


def _setup_logging(verbose: bool, to_file: bool = False) -> None:
    root = logging.getLogger("gui_approver")
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    if root.handlers:
        return
    err = logging.StreamHandler(sys.stderr)
    err.setLevel(logging.DEBUG if verbose else logging.WARNING)
    err.setFormatter(logging.Formatter("gui-approver: %(message)s"))
    root.addHandler(err)
    if to_file:
        from logging.handlers import RotatingFileHandler
        from pathlib import Path

        import platformdirs

        log_dir = Path(platformdirs.user_log_dir("gui-approver"))
        try:
            log_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
            fh = RotatingFileHandler(
                log_dir / "gui-approver.log", maxBytes=1_000_000, backupCount=3
            )
        except OSError as exc:
            root.warning("cannot write the log file in %s (%s)", log_dir, exc.strerror)
            return
        fh.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        root.addHandler(fh)


def _store() -> Any:
    from gui_approver.keys import KeyringKeychain, KeyStore

    return KeyStore(KeyringKeychain())


def _print_json(obj: Any) -> None:
    print(json.dumps(obj, indent=2))


# -- app -----------------------------------------------------------------------------------


def cmd_app(args: argparse.Namespace) -> int:
    _setup_logging(args.verbose, to_file=True)
    if args.no_gui:
        from gui_approver.headless import run_headless

        return run_headless(auto_approve_loopback=args.auto_approve_loopback)
    from gui_approver.ui.app import run_app

    return run_app(auto_approve_loopback=args.auto_approve_loopback)


# -- keys ------------------------------------------------------------------------------------


def _record_json(rec: Any) -> dict[str, Any]:
    return dict(rec.to_json())


def cmd_key_new(args: argparse.Namespace) -> int:
    from gui_approver import cargo_config

    index = args.index or cargo_config.registry_index(args.registry)
    if not index:
        raise GuiApproverError(
            f"registry {args.registry} is not in {cargo_config.config_path()}; pass --index URL"
        )
    store = _store()
    rec = store.create(registry=args.registry, index_url=index, subject=args.subject)
    if args.json:
        _print_json(_record_json(rec))
    else:
        print(f"Created a key for registry {rec.registry} ({rec.index_url}).")
        print("Register this public key with the registry:")
        print(f"  {rec.public}")
        print(f"key id: {rec.kip}")
        if rec.subject:
            print(f"subject: {rec.subject}")
    return 0


def _find(store: Any, registry: str) -> Any:
    rec = store.find_by_registry(registry) or store.find(registry)
    if rec is None:
        from gui_approver.errors import KeyNotFound

        raise KeyNotFound(f"no key for registry {registry}",
                          hint=f"create one: gui-approver key new --registry {registry}")
    return rec


def cmd_key_show(args: argparse.Namespace) -> int:
    from gui_approver.keys import parse_public_paserk

    rec = _find(_store(), args.registry)
    if args.pem:
        from cryptography.hazmat.primitives import serialization

        pem = parse_public_paserk(rec.public).public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        print(pem.decode().rstrip())
        return 0
    if args.json:
        _print_json(_record_json(rec))
    else:
        print(f"registry: {rec.registry}\nindex:    {rec.index_url}\npublic:   {rec.public}")
        print(f"key id:   {rec.kip}\nsubject:  {rec.subject or '(none)'}\ncreated:  {rec.created}")
    return 0


def cmd_key_list(args: argparse.Namespace) -> int:
    records = _store().list()
    if args.json:
        _print_json([_record_json(r) for r in records])
        return 0
    if not records:
        print("No keys yet. Create one: gui-approver key new --registry NAME [--index URL]")
        return 0
    for r in records:
        print(f"{r.registry}\t{r.kip}\t{r.index_url}\t{r.subject or '-'}\t{r.created}")
    return 0


def cmd_key_delete(args: argparse.Namespace) -> int:
    store = _store()
    rec = _find(store, args.registry)
    if not args.yes:
        if not sys.stdin.isatty():
            raise GuiApproverError("refusing to delete a key without confirmation; pass --yes")
        answer = input(f"Delete the key {rec.kip} for registry {rec.registry}? "
                       f"Type the registry name to confirm: ")
        if answer.strip() != rec.registry:
            print("Not deleted.", file=sys.stderr)
            return 1
    store.delete(rec)
    print(f"Deleted the key for registry {rec.registry} ({rec.kip}).")
    return 0


def cmd_configure_cargo(args: argparse.Namespace) -> int:
    from gui_approver import cargo_config

    index = args.index or cargo_config.registry_index(args.registry)
    change = cargo_config.plan_configure(args.registry, index, bridge=args.bridge)
    for w in change.warnings:
        print(f"warning: {w}", file=sys.stderr)
    if not change.changed:
        print(f"{change.path} already uses gui-approver for registry {args.registry}.")
        return 0
    if args.dry_run:
        print(change.diff(), end="")
        return 0
    backup = cargo_config.apply(change)
    print(f"Configured registry {args.registry} in {change.path} to use gui-approver.")
    if backup:
        print(f"Backup of the previous file: {backup}")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    from gui_approver import ipc, protocol

    pong = ipc.ping()
    info: dict[str, Any] = {
        "running": pong is not None,
        "pid": pong.get("pid") if pong else None,
        "socket": protocol.socket_path(),
    }
    try:
        info["keys"] = [r.registry for r in _store().list()]
    except GuiApproverError as exc:
        info["keys_error"] = str(exc)
    if args.json:
        _print_json(info)
    else:
        state = f"running (pid {info['pid']})" if info["running"] else "not running"
        print(f"gui-approver {__version__}: {state}\nsocket: {info['socket']}")
        print(f"keys: {', '.join(info.get('keys', [])) or '(none)'}")
    return 0 if info["running"] else 3


# -- parser ----------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="gui-approver",
        description="Sign cargo's asymmetric tokens only after you approve the exact crate.",
    )
    p.add_argument("--version", action="version", version=f"gui-approver {__version__}")
    p.add_argument("-v", "--verbose", action="store_true", help="log more (never secrets)")
    p.set_defaults(func=cmd_app, auto_approve_loopback=False, no_gui=False)
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    app = sub.add_parser("app", help="run the tray app (the default)")
    app.add_argument("--auto-approve-loopback", action="store_true",
                     help="approve mutations for registries on 127.0.0.0/8, ::1 or localhost "
                          "without a dialog (demos, benchmarks, unattended tests)")
    app.add_argument("--no-gui", action="store_true",
                     help="run without Qt: reads are signed, mutations need "
                          "--auto-approve-loopback and a loopback registry, else denied")
    app.add_argument("--started-by-bridge", action="store_true", help=argparse.SUPPRESS)
    app.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS)
    app.set_defaults(func=cmd_app)

    key = sub.add_parser("key", help="manage signing keys")
    ksub = key.add_subparsers(dest="key_command", metavar="ACTION", required=True)
    new = ksub.add_parser("new", help="create a key for a registry")
    new.add_argument("--registry", required=True)
    new.add_argument("--index", help="index URL (default: from $CARGO_HOME/config.toml)")
    new.add_argument("--subject", help="key subject, if the registry asks for one")
    new.add_argument("--json", action="store_true")
    new.set_defaults(func=cmd_key_new)
    show = ksub.add_parser("show", help="show a registry's public key")
    show.add_argument("--registry", required=True)
    show.add_argument("--json", action="store_true")
    show.add_argument("--pem", action="store_true", help="print the public key as PEM")
    show.set_defaults(func=cmd_key_show)
    lst = ksub.add_parser("list", help="list keys")
    lst.add_argument("--json", action="store_true")
    lst.set_defaults(func=cmd_key_list)
    delete = ksub.add_parser("delete", help="delete a registry's key")
    delete.add_argument("--registry", required=True)
    delete.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    delete.set_defaults(func=cmd_key_delete)

    cc = sub.add_parser("configure-cargo", help="point cargo at gui-approver for a registry")
    cc.add_argument("--registry", required=True)
    cc.add_argument("--index", help="index URL (not needed for crates-io)")
    cc.add_argument("--dry-run", action="store_true", help="print the diff, change nothing")
    cc.add_argument("--bridge", help=argparse.SUPPRESS)
    cc.set_defaults(func=cmd_configure_cargo)

    st = sub.add_parser("status", help="is the app running, socket path, keys")
    st.add_argument("--json", action="store_true")
    st.set_defaults(func=cmd_status)

    from gui_approver import registry, verify

    verify.add_verify_parser(sub)
    registry.add_registry_parsers(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.func is not cmd_app:
        _setup_logging(getattr(args, "verbose", False))
    try:
        rc: int = args.func(args)
        return rc
    except GuiApproverError as exc:
        print(f"gui-approver: error: {exc.full()}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130

"""``gui-approver watch``: one pass of the watch from the command line, and its list."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from gui_approver.errors import GuiApproverError


def _keys() -> Any:
    from gui_approver.core.keys.store import KeyringKeychain, KeyStore

    return KeyStore(KeyringKeychain())


def _watch(args: argparse.Namespace) -> Any:
    from gui_approver.core.watch import Watch, app_registries

    return Watch(
        crates_io_index=getattr(args, "crates_io_index", None),
        timeout=getattr(args, "timeout", None) or 10.0,
        registries=lambda: app_registries(_keys()),
    )


def _print_alert(alert: Any) -> None:
    print(f"ALERT {alert.id}: {alert.message}")


def cmd_watch(args: argparse.Namespace) -> int:
    """``watch --once``: exit 0 no open alert, 1 open alerts, 2 error (nothing raised for it)."""
    if not args.once:
        print(
            "gui-approver: error: say --once (the app watches while it runs), or use "
            "watch add|remove|list|expect|yank|revoke",
            file=sys.stderr,
        )
        return 2
    try:
        result = _watch(args).run_once(args.registry)
    except GuiApproverError as exc:
        print(f"gui-approver: error: {exc.full()}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(result.to_json(), indent=2))
    else:
        for alert in result.open_alerts:
            _print_alert(alert)
        if result.open_alerts:
            print(
                "  mark one as expected: gui-approver watch expect ID [--elsewhere]; "
                "yank it: gui-approver watch yank ID"
            )
        elif not result.errors:
            print(
                f"no alerts ({result.crates} crate(s) in {result.registries} "
                f"registr{'y' if result.registries == 1 else 'ies'} checked)"
            )
    for err in result.errors:
        print(f"gui-approver: error: {err}", file=sys.stderr)
    code: int = result.exit_code
    return code


def _tokens() -> Any:
    """The app's bearer tokens (reading the list needs no keychain; a token itself does)."""
    from gui_approver.core.watch import keychain_tokens

    return keychain_tokens(_keys())


def cmd_watch_list(args: argparse.Namespace) -> int:
    w = _watch(args)
    watched = w.watched(args.registry)
    tokens = _tokens()

    def needs_token(url: str) -> bool:
        if not w.needs_new_token(url):
            return False
        try:
            current = tokens(url)
        except GuiApproverError:
            current = None
        return bool(w.needs_new_token(url, current))

    if args.json:
        print(
            json.dumps(
                [
                    {
                        "registry": x.name,
                        "index_url": x.index_url,
                        "crates": list(x.crates),
                        "published_elsewhere": sorted(w.elsewhere(x.index_url)),
                        "needs_new_token": needs_token(x.index_url),
                    }
                    for x in watched
                ],
                indent=2,
            )
        )
        return 0
    if not watched:
        print(
            "Nothing is watched yet (crates you publish through gui-approver are "
            "watched automatically; add others with gui-approver watch add)."
        )
    for x in watched:
        extra = " (needs a new token)" if needs_token(x.index_url) else ""
        print(f"{x.label} [{x.index_url}]{extra}: {', '.join(x.crates)}")
    return 0


def cmd_watch_revoke(args: argparse.Namespace) -> int:
    """Revoke the registry's stored bearer token at the registry, then delete it."""
    from gui_approver.errors import UsageError

    w = _watch(args)
    url = w.resolve_registry(args.registry)
    stored = _tokens()(url)
    if stored is None:
        raise GuiApproverError(
            f"gui-approver keeps no bearer token for registry {args.registry}",
            hint="only a bearer token stored with gui-approver token add/import-cargo can be "
            "revoked from here",
        )
    if not args.yes:
        if not sys.stdin.isatty():
            raise UsageError("refusing to revoke a token without confirmation; pass --yes")
        answer = input(
            f"Revoke the bearer token sha256:{stored.fingerprint} of {stored.registry}"
            " at the registry and delete it? Nothing can publish with it afterwards. "
            "Type the registry name to confirm: "
        )
        if answer.strip() != stored.registry:
            print("Not revoked.", file=sys.stderr)
            return 1
    w.revoke_stored(url, stored)
    print(
        f"Revoked the bearer token sha256:{stored.fingerprint} of {stored.registry} at the "
        "registry and deleted it from the keychain. To publish again, store a new one: "
        f"gui-approver token add --registry {stored.registry}"
    )
    return 0


def cmd_watch_add(args: argparse.Namespace) -> int:
    url = _watch(args).add(args.registry, args.crate, args.index)
    print(f"Watching {', '.join(args.crate)} on {args.registry} ({url}).")
    return 0


def cmd_watch_remove(args: argparse.Namespace) -> int:
    _watch(args).remove(args.registry, args.crate)
    print(f"No longer watching {', '.join(args.crate)} on {args.registry}.")
    return 0


def cmd_watch_expect(args: argparse.Namespace) -> int:
    alert = _watch(args).mark_expected(args.id, elsewhere=args.elsewhere)
    print(f"Marked as expected: {alert.message}")
    if args.elsewhere:
        print(
            f"New versions and yanks of {alert.crate} on {alert.label} are now expected "
            "from elsewhere (no alerts)."
        )
    return 0


def cmd_watch_yank(args: argparse.Namespace) -> int:
    proc = _watch(args).yank(args.id)
    sys.stderr.write(proc.stderr)
    return 0 if proc.returncode == 0 else 1


def add_parsers(sub: Any) -> None:
    w = sub.add_parser(
        "watch",
        help="notice versions of your crates that nobody approved here",
        description="The crates you published or yanked through gui-approver (and those added "
        "with 'watch add') are checked against their registry's sparse index; a version, "
        "checksum or yank nobody approved on this machine raises an alert. The app does this "
        "every watch_interval_minutes; --once does one pass (for cron or CI) and exits 0 "
        "(no open alert), 1 (open alerts, printed) or 2 (an error: network, bad index).",
    )
    w.add_argument("--once", action="store_true", help="do one pass and print the open alerts")
    w.add_argument("--registry", metavar="NAME", help="only this registry")
    w.add_argument("--json", action="store_true")
    w.add_argument(
        "--crates-io-index",
        metavar="URL",
        help="read crates.io's sparse index from URL (default https://index.crates.io/,"
        " or $GUI_APPROVER_CRATES_IO_INDEX)",
    )
    w.add_argument("--timeout", type=float, metavar="SECONDS", help="per request (default 10)")
    w.set_defaults(func=cmd_watch)
    ws = w.add_subparsers(dest="watch_command", metavar="ACTION")
    lst = ws.add_parser("list", help="the watched crates per registry")
    lst.add_argument("--registry", metavar="NAME")
    lst.add_argument("--json", action="store_true")
    lst.set_defaults(func=cmd_watch_list)
    add = ws.add_parser("add", help="watch crates by hand")
    add.add_argument("--registry", required=True, metavar="NAME")
    add.add_argument("--index", metavar="URL", help="index URL (default: from cargo's config)")
    add.add_argument("crate", nargs="+")
    add.set_defaults(func=cmd_watch_add)
    rm = ws.add_parser("remove", help="stop watching crates")
    rm.add_argument("--registry", required=True, metavar="NAME")
    rm.add_argument("crate", nargs="+")
    rm.set_defaults(func=cmd_watch_remove)
    exp = ws.add_parser("expect", help="mark an alert as expected (it was me / my CI)")
    exp.add_argument("id")
    exp.add_argument(
        "--elsewhere",
        action="store_true",
        help="also expect this crate to be published elsewhere from now on",
    )
    exp.set_defaults(func=cmd_watch_expect)
    yank = ws.add_parser("yank", help="cargo yank an alert's version (asks for approval)")
    yank.add_argument("id")
    yank.set_defaults(func=cmd_watch_yank)
    rev = ws.add_parser(
        "revoke",
        help="revoke a registry's stored bearer token at the registry "
        "(DELETE /api/v1/tokens/current), then delete it",
    )
    rev.add_argument("--registry", required=True, metavar="NAME")
    rev.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    rev.set_defaults(func=cmd_watch_revoke)

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
    from gui_approver.core.keys.store import KeyringKeychain, KeyStore

    return KeyStore(KeyringKeychain())


def _print_json(obj: Any) -> None:
    print(json.dumps(obj, indent=2))


# -- app -----------------------------------------------------------------------------------


def cmd_app(args: argparse.Namespace) -> int:
    _setup_logging(args.verbose, to_file=True)
    if args.no_gui:
        from gui_approver.core.headless import run_headless

        return run_headless(auto_approve_loopback=args.auto_approve_loopback)
    from gui_approver.client.display import NO_DISPLAY_HINT, display_problem

    problem = display_problem()
    if problem is not None:
        # Before Qt starts: without a display it aborts with a core dump.
        raise GuiApproverError(problem, hint=NO_DISPLAY_HINT)
    from gui_approver.ui.app import run_app

    return run_app(
        auto_approve_loopback=args.auto_approve_loopback, first_run=not args.started_by_bridge
    )


# -- keys ------------------------------------------------------------------------------------


def _record_json(rec: Any) -> dict[str, Any]:
    return dict(rec.to_json())


def _expiry(value: str | None) -> str | None:
    """``none``, ``90d``, ``1y`` or a date -> ISO date (UTC) or None."""
    from gui_approver.core.keys.flows import expiry_date

    return expiry_date(value)


def _passphrase(args: argparse.Namespace, *, confirm: bool) -> Any:
    """The passphrase from --passphrase-file (``-`` = stdin) or a tty prompt, else None."""
    from pathlib import Path

    from gui_approver.core.keys.strength import check_passphrase
    from gui_approver.secret import Secret

    context = [str(getattr(args, "registry", "") or "")]
    source = getattr(args, "passphrase_file", None)
    if source:
        try:
            text = sys.stdin.readline() if source == "-" else Path(source).read_text("utf-8")
        except OSError as exc:
            raise GuiApproverError(f"cannot read the passphrase file ({exc.strerror})") from None
        first = text.splitlines()[0] if text.strip() else ""
        if not first:
            raise GuiApproverError("the passphrase file is empty")
        check_passphrase(Secret(first), context=context)
        return Secret(first)
    if not getattr(args, "passphrase", False):
        return None
    if not sys.stdin.isatty():
        raise GuiApproverError(
            "no terminal to ask for a passphrase; pass --passphrase-file FILE (or - for stdin)"
        )
    import getpass

    first = getpass.getpass("Passphrase for the key: ")
    if confirm and getpass.getpass("Repeat the passphrase: ") != first:
        raise GuiApproverError("the passphrases differ; nothing was created")
    if not first:
        raise GuiApproverError("an empty passphrase protects nothing")
    check_passphrase(Secret(first), context=context)
    return Secret(first)


def _print_new_key(rec: Any, heading: str) -> None:
    print(heading)
    print("Register this public key with the registry (paste it on its key page):")
    print(f"  {rec.public}")
    print(f"key id: {rec.kip}")
    if rec.subject:
        print(f"subject: {rec.subject}")
    if rec.expires:
        print(f"expires: {rec.expires}")
    print(f"protection: {rec.protection}")
    if rec.hardware is not None:
        print(f"token key: {rec.hardware.uri}\nmodule: {rec.hardware.module}")
        attrs = dict(rec.hardware.attributes)
        print(
            "as read back from the token: "
            + ", ".join(
                f"{name.upper()}={'yes' if attrs[name] else 'no'}"
                for name in (
                    "always_sensitive",
                    "never_extractable",
                    "local",
                    "always_authenticate",
                )
                if name in attrs
            )
        )
        if rec.hardware.touch_policy:
            print(f"touch policy: {rec.hardware.touch_policy}")


def _read_secret(args: argparse.Namespace, prompt: str, *, what: str = "PIN") -> Any:
    """A PIN or passphrase: from --pin-file (``-`` = stdin), a no-echo tty prompt, or the
    first line of stdin when it is not a tty. Never from an argument or the environment."""
    from pathlib import Path

    from gui_approver.secret import Secret

    source = getattr(args, "pin_file", None)
    if source:
        try:
            text = sys.stdin.readline() if source == "-" else Path(source).read_text("utf-8")
        except OSError as exc:
            raise GuiApproverError(f"cannot read the {what} file ({exc.strerror})") from None
    elif sys.stdin.isatty():
        import getpass

        text = getpass.getpass(prompt)
    else:
        text = sys.stdin.readline()
    first = text.splitlines()[0] if text.strip() else ""
    if not first:
        raise GuiApproverError(f"no {what} was given; nothing was changed")
    return Secret(first)


def _hardware_key_new(args: argparse.Namespace, index: str, expires: str | None) -> int:
    store = _store()
    store.check_free(args.registry, index)  # before asking for the PIN
    from gui_approver.core.keys.bearer import bearer_store

    held = bearer_store(store).find_by_registry(args.registry) or bearer_store(store).find(index)
    if held is not None:
        raise GuiApproverError(
            f"registry {held.registry} already has a bearer token "
            f"({held.fingerprint}); a registry takes either a bearer token "
            "or an asymmetric key"
        )
    info = _make_hardware_key(args)
    rec = store.add_hardware(
        info,
        registry=args.registry,
        index_url=index,
        subject=args.subject,
        expires=expires,
        origin="cli",
    )
    if args.json:
        _print_json(_record_json(rec))
        return 0
    verb = "Adopted" if args.use_existing else "Generated"
    _print_new_key(
        rec,
        f"{verb} a key on token {info.token_label!r} for registry "
        f"{rec.registry} ({rec.index_url}).",
    )
    return 0


def _make_hardware_key(args: argparse.Namespace) -> Any:
    """Generate (or with --use-existing adopt) the P-384 key at --pkcs11 URI; a KeyInfo."""
    from gui_approver.core.keys import pkcs11

    if args.passphrase or args.passphrase_file:
        raise GuiApproverError(
            "a hardware key is protected by its token's PIN; --passphrase does not apply"
        )
    uri = pkcs11.parse_uri(args.pkcs11)
    if uri.type == "public":
        raise GuiApproverError(
            "the --pkcs11 URI names a public key; name the private key "
            "(type=private) or leave type out"
        )
    module = pkcs11.find_module(args.pkcs11, args.module)
    label = uri.token or "the token"
    pin = _read_secret(args, f"PIN of {label}: ")
    b = pkcs11.backend()
    if args.use_existing:
        if uri.id is None and uri.object is None:
            raise GuiApproverError(
                "--use-existing needs the key's id= or object= in the URI",
                hint="`gui-approver hardware list` prints the URI of each P-384 key",
            )
        info = b.adopt(module, args.pkcs11, pin)
    else:
        info = b.generate(module, args.pkcs11, pin, label=f"gui-approver {args.registry}")
    b.logout_all()
    return info


def cmd_key_new(args: argparse.Namespace) -> int:
    from gui_approver.core import cargo_config, validate
    from gui_approver.core.keys import flows

    validate.check_registry_name(args.registry)
    if args.index:
        args.index = validate.check_index_url(args.index)
    flows.refuse_crates_io_key(args.registry, args.index)
    index = args.index or cargo_config.registry_index(args.registry)
    if not index:
        raise GuiApproverError(
            f"registry {args.registry} is not in {cargo_config.config_path()}; pass --index URL"
        )
    flows.refuse_crates_io_key(args.registry, index)
    expires = _expiry(args.expires)
    if args.pkcs11:
        return _hardware_key_new(args, index, expires)
    for flag, given in (
        ("--module", args.module),
        ("--pin-file", args.pin_file),
        ("--use-existing", args.use_existing),
    ):
        if given:
            raise GuiApproverError(f"{flag} needs --pkcs11 URI (a key on a hardware token)")
    passphrase = _passphrase(args, confirm=True)
    store = _store()
    rec = flows.create_key(
        store,
        registry=args.registry,
        index_url=index,
        subject=args.subject,
        expires=expires,
        passphrase=passphrase,
        origin="cli",
    )
    if args.json:
        _print_json(_record_json(rec))
    else:
        _print_new_key(rec, f"Created a key for registry {rec.registry} ({rec.index_url}).")
    return 0


def _find(store: Any, registry: str) -> Any:
    rec = store.find_by_registry(registry) or store.find(registry)
    if rec is None:
        from gui_approver.errors import KeyNotFound

        raise KeyNotFound(
            f"no key for registry {registry}",
            hint=f"create one: gui-approver key new --registry {registry}",
        )
    return rec


def cmd_key_show(args: argparse.Namespace) -> int:
    from gui_approver.core.keys import flows

    rec = _find(_store(), args.registry)
    if args.pem:
        print(flows.public_pem(rec.public))
        return 0
    if args.json:
        _print_json(_record_json(rec))
    else:
        print(f"registry: {rec.registry}\nindex:    {rec.index_url}\npublic:   {rec.public}")
        print(f"key id:   {rec.kip}\nsubject:  {rec.subject or '(none)'}\ncreated:  {rec.created}")
        print(f"protection: {rec.protection}")
        if rec.hardware is not None:
            print(f"token key:  {rec.hardware.uri}\nmodule:     {rec.hardware.module}")
    return 0


def cmd_key_list(args: argparse.Namespace) -> int:
    from gui_approver.core.keys.bearer import bearer_store

    store = _store()
    records = store.list()
    tokens = bearer_store(store).list()
    used = store.last_used()
    if args.json:
        _print_json(
            [
                {**_record_json(r), "kind": "asymmetric", "last_used": used.get(r.kip)}
                for r in records
            ]
            + [_token_json(t) for t in tokens]
        )
        return 0
    if not records and not tokens:
        print(
            "No keys or tokens yet. Create a key: gui-approver key new --registry NAME "
            "[--index URL]; keep a bearer token (crates.io): gui-approver token import-cargo"
        )
        return 0
    rows = [
        [
            "REGISTRY",
            "KIND",
            "KEY ID",
            "SUBJECT",
            "CREATED",
            "EXPIRES",
            "PROTECTION",
            "LAST USED",
            "STATUS",
        ]
    ]
    rows += [
        [
            r.registry,
            "asymmetric",
            r.kip,
            r.subject or "-",
            r.created,
            r.expires or "never",
            r.protection,
            used.get(r.kip, "never"),
            r.status,
        ]
        for r in records
    ]
    rows += [
        [
            t.registry,
            "token",
            f"sha256:{t.fingerprint}",
            "-",
            t.added,
            t.expires or "unknown",
            t.protection,
            "-",
            "active",
        ]
        for t in tokens
    ]
    if sys.stdout.isatty():
        # A person reads it: aligned columns. Scripts (a pipe) keep one tab between fields.
        widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
        for row in rows:
            print("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip())
    else:
        for row in rows:
            print("\t".join(row))
    return 0


def cmd_key_export(args: argparse.Namespace) -> int:
    """Print the PUBLIC key (the secret never leaves the keychain)."""

    from gui_approver.core.keys import flows

    store = _store()
    rec = store.find_pending(args.registry) if args.pending else _find(store, args.registry)
    if rec is None:
        raise GuiApproverError(f"registry {args.registry} has no pending successor key")
    if args.format == "pem":
        print(flows.public_pem(rec.public))
    elif args.format == "json":
        _print_json(
            {
                "registry": rec.registry,
                "index_url": rec.index_url,
                "public": rec.public,
                "kip": rec.kip,
                "subject": rec.subject,
            }
        )
    else:
        print(rec.public)
    return 0


def cmd_key_rotate(args: argparse.Namespace) -> int:
    store = _store()
    if args.confirm:
        pending = store.find_pending(args.registry)
        if pending is not None and not args.no_check:
            from gui_approver.core.keys.acceptance import check_accepted

            verdict = check_accepted(store, pending)
            if verdict.accepted is False:
                raise GuiApproverError(
                    f"{verdict.why}: it is not registered yet, so the old key "
                    f"({_find(store, args.registry).kip}) was kept and still signs",
                    hint=f"register the new key (gui-approver key export --registry "
                    f"{args.registry} --pending) and confirm again, or pass --no-check",
                )
            note = (
                verdict.why + "."
                if verdict.accepted
                else f"note: could not check that the registry accepts the new key: {verdict.why}."
            )
            print(note, file=sys.stderr)
        new = store.finish_rotation(args.registry)
        if args.json:
            _print_json(_record_json(new))
        else:
            print(
                f"Registry {new.registry} now signs with {new.kip}; the old key was deleted"
                " (a key on a hardware token stays on the token)."
            )
        return 0
    old = _find(store, args.registry)
    pending = store.find_pending(args.registry)
    if pending is None and args.pkcs11:
        expires = _expiry(args.expires)
        pending = store.start_rotation(old, expires=expires, hardware=_make_hardware_key(args))
    elif pending is None:
        pending = store.start_rotation(
            old, expires=_expiry(args.expires), passphrase=_passphrase(args, confirm=True)
        )
    if args.json:
        _print_json({"old": _record_json(old), "new": _record_json(pending)})
        return 0
    _print_new_key(pending, f"Created the successor key for registry {old.registry}.")
    print(f"The old key ({old.kip}) keeps signing until you confirm the new one is registered:")
    print(f"  gui-approver key rotate --registry {old.registry} --confirm")
    return 0


def cmd_key_import_cargo(args: argparse.Namespace) -> int:
    from gui_approver.core import cargo_config
    from gui_approver.core.keys import flows
    from gui_approver.core.keys.store import SigningKey

    found = [
        f
        for f in cargo_config.find_cargo_secrets()
        if args.registry is None or f.registry == args.registry
    ]
    if not found:
        where = cargo_config.cargo_home()
        raise GuiApproverError(
            f"no cargo:paseto secret-key found in {where}/credentials.toml"
            f" or config.toml" + (f" for registry {args.registry}" if args.registry else "")
        )
    store = _store()
    results = []
    reports: list[list[str]] = []
    for item in found:
        try:
            key = SigningKey.from_paserk(item.secret)
        except ValueError as exc:
            raise GuiApproverError(
                f"the secret-key for {item.registry} in {item.path} is not usable ({exc})"
            ) from None
        index = cargo_config.registry_index(item.registry)
        if not index:
            raise GuiApproverError(
                f"registry {item.registry} has no index in "
                f"{cargo_config.config_path()}; nothing was imported"
            )
        if args.dry_run:
            results.append(
                {
                    "registry": item.registry,
                    "file": str(item.path),
                    "public": key.public_paserk,
                    "kip": key.kip,
                    "imported": False,
                }
            )
            reports.append(flows.import_report(item.registry, item.path, key, dry_run=True))
            continue
        flows.import_cargo_key(store, item, key, index, origin="cli")
        results.append(
            {
                "registry": item.registry,
                "file": str(item.path),
                "public": key.public_paserk,
                "kip": key.kip,
                "imported": True,
            }
        )
        reports.append(flows.import_report(item.registry, item.path, key))
    if args.json:
        _print_json(results)
        return 0
    for lines in reports:
        print("\n".join(lines))
    return 0


def cmd_key_lock(args: argparse.Namespace) -> int:
    from gui_approver.core import ipc

    reply = ipc.request_lock()
    if reply is None:
        info: dict[str, Any] = {"running": False, "locked": 0}
        text = "gui-approver is not running, so no key is unlocked."
    else:
        info = {"running": True, "locked": reply.get("count", 0)}
        text = (
            f"Locked {info['locked']} unlocked key(s) or token login(s); the next use asks "
            "for the passphrase or PIN."
        )
    if args.json:
        _print_json(info)
    else:
        print(text)
    return 0


def cmd_key_unlock(args: argparse.Namespace) -> int:
    from gui_approver.core import ipc

    rec = _find(_store(), args.registry)
    if rec.protection == "keychain":
        print(f"The key for registry {rec.registry} is in the keychain and needs no unlocking.")
        return 0
    if ipc.ping() is None:
        raise GuiApproverError(
            "gui-approver is not running, so there is nothing to unlock",
            hint="start it (gui-approver app) and run this again",
        )
    if rec.protection == "hardware":
        assert rec.hardware is not None
        secret = _read_secret(
            args,
            f"PIN of token {rec.hardware.token or '(hardware key)'} for registry {rec.registry}: ",
        )
    else:
        secret = _read_secret(
            args, f"Passphrase of the key for registry {rec.registry}: ", what="passphrase"
        )
    reply = ipc.request_unlock(rec.registry, secret)
    if reply is None:
        raise GuiApproverError("gui-approver did not answer; nothing was unlocked")
    message = str(reply.get("message") or "")
    if not reply.get("ok"):
        raise GuiApproverError(message or "the app refused to unlock the key")
    print(message)
    return 0


def cmd_hardware_list(args: argparse.Namespace) -> int:
    import os

    from gui_approver.core.keys import pkcs11
    from gui_approver.core.keys.store import _PUBLIC_PREFIX, _b64e, paserk_pid

    modules = (
        [args.module] if args.module else [m for m in pkcs11.default_modules() if os.path.isfile(m)]
    )
    result: list[dict[str, Any]] = []
    for module in modules:
        entry: dict[str, Any] = {"module": module, "tokens": []}
        try:
            tokens = pkcs11.backend().list_tokens(module)
        except GuiApproverError as exc:
            if args.module:
                raise
            entry["error"] = str(exc)
            tokens = []
        for t in tokens:
            keys = []
            for k in t.keys:
                public = _PUBLIC_PREFIX + _b64e(k.point)
                keys.append(
                    {
                        "uri": k.uri,
                        "id": k.id,
                        "label": k.label,
                        "curve": "P-384",
                        "public": public,
                        "kip": paserk_pid(public),
                    }
                )
            entry["tokens"].append(
                {
                    "label": t.label,
                    "manufacturer": t.manufacturer,
                    "model": t.model,
                    "serial": t.serial,
                    "slot_id": t.slot_id,
                    "flags": t.flags,
                    "uri": t.uri,
                    "keys": keys,
                    "other_keys": t.other_keys,
                }
            )
        result.append(entry)
    if args.json:
        _print_json({"modules": result})
        return 0
    if not result:
        print(
            "No PKCS#11 module found at the default paths ("
            + ", ".join(pkcs11.default_modules())
            + "); name one with --module PATH."
        )
        return 0
    for entry in result:
        print(f"module {entry['module']}" + (f": {entry['error']}" if "error" in entry else ""))
        if not entry["tokens"] and "error" not in entry:
            print("  (no token present)")
        for t in entry["tokens"]:
            print(
                f"  token {t['label']!r} ({t['manufacturer']} {t['model']}, serial "
                f"{t['serial'] or '-'})  {t['uri']}"
            )
            for k in t["keys"]:
                print(
                    f"    P-384 key id {k['id'] or '-'} {k['label']!r}\n      uri:    {k['uri']}"
                    f"\n      public: {k['public']}"
                )
            if not t["keys"]:
                print(
                    f"    no P-384 key (create one: gui-approver key new --pkcs11 '{t['uri']}' …)"
                )
            if t["other_keys"]:
                print(f"    ({t['other_keys']} key(s) on other curves/types, not usable)")
    return 0


def cmd_key_delete(args: argparse.Namespace) -> int:
    store = _store()
    rec = _find(store, args.registry)
    used = store.last_used().get(rec.kip)
    signed = f" It last signed at {used}." if used else " It has never signed anything."
    if not args.yes:
        if not sys.stdin.isatty():
            raise GuiApproverError(
                "refusing to delete a key without confirmation; pass --yes"
                + (f" (it last signed at {used})" if used else "")
            )
        answer = input(
            f"Delete the key {rec.kip} for registry {rec.registry}?{signed} "
            f"Type the registry name to confirm: "
        )
        if answer.strip() != rec.registry:
            print("Not deleted.", file=sys.stderr)
            return 1
    store.delete(rec)
    print(f"Deleted the key for registry {rec.registry} ({rec.kip}).")
    return 0


def cmd_keys(args: argparse.Namespace) -> int:
    from gui_approver.ui.keys import run_keys_window

    return run_keys_window()


# -- bearer tokens ------------------------------------------------------------------------------


def _token_json(t: Any) -> dict[str, Any]:
    return {**t.to_json(), "kind": "token"}


def _read_token(prompt: str) -> Any:
    """The token from a no-echo tty prompt, or the first line of stdin when it is not a tty."""
    from gui_approver.secret import Secret

    if sys.stdin.isatty():
        import getpass

        text = getpass.getpass(prompt)
    else:
        text = sys.stdin.readline()
    text = text.strip()
    if not text:
        raise GuiApproverError("no token was given; nothing was stored")
    return Secret(text)


def _token_passphrase(args: argparse.Namespace) -> Any:
    if getattr(args, "passphrase_file", None) == "-" and not sys.stdin.isatty():
        raise GuiApproverError(
            "stdin carries the token; pass the passphrase in a file "
            "(--passphrase-file FILE) or on the terminal (--passphrase)"
        )
    return _passphrase(args, confirm=True)


def _print_token(t: Any) -> None:
    print(f"registry:    {t.registry}\nkind:        token (bearer)\nindex:       {t.index_url}")
    print(f"fingerprint: sha256:{t.fingerprint}\nadded:       {t.added}")
    print(f"expires:     {t.expires or 'unknown'}\nscopes:      {t.scopes_text()}")
    print(f"protection:  {t.protection}\norigin:      {t.origin}")
    if t.silent_reads:
        print("reads:       released WITHOUT a dialog (this token can also publish)")


def cmd_token_add(args: argparse.Namespace) -> int:
    from gui_approver.core.keys import flows

    index = flows.index_for(args.registry, args.index)
    expires = _expiry(args.expires)
    passphrase = _token_passphrase(args)
    token = _read_token(f"Bearer token for {args.registry} (not shown): ")
    rec = flows.add_token(
        _store(),
        token,
        registry=args.registry,
        index_url=index,
        expires=expires,
        scopes=args.scopes,
        passphrase=passphrase,
        origin="cli",
    )
    del token
    if args.json:
        _print_json(_token_json(rec))
        return 0
    print(
        f"Stored the bearer token for registry {rec.registry} in the keychain "
        f"(sha256:{rec.fingerprint}, protection {rec.protection})."
    )
    print(
        f"Point cargo at gui-approver for it: gui-approver configure-cargo --registry "
        f"{rec.registry}" + ("" if args.registry == "crates-io" else f" --index {index}")
    )
    return 0


def cmd_token_import_cargo(args: argparse.Namespace) -> int:
    from gui_approver.core.keys import flows

    results = flows.import_cargo_tokens(
        _store(), registry=args.registry, dry_run=args.dry_run, origin="cli"
    )
    if args.json:
        _print_json(
            [
                {
                    "registry": r.registry,
                    "file": str(r.path),
                    "index_url": r.index_url,
                    "fingerprint": r.fingerprint,
                    "imported": r.imported,
                    "config": str(r.config_path) if r.config_path else None,
                }
                for r in results
            ]
        )
        return 0
    for r in results:
        if args.dry_run:
            print(
                f"Would move the token of registry {r.registry} (sha256:{r.fingerprint}) "
                f"from {r.path} into the keychain and point cargo at gui-approver for it."
            )
            continue
        print(
            f"Moved the token of registry {r.registry} (sha256:{r.fingerprint}) from "
            f"{r.path} into the keychain."
        )
        print(f"  {r.path}: the token line is gone, everything else is unchanged.")
        print(
            f"  {r.config_path}: cargo now asks gui-approver for {r.registry}'s token"
            + (f" (backup: {r.backup})" if r.backup else "")
            + "."
        )
        print("  Every publish, yank and owner change now waits for your approval.")
    return 0


def cmd_token_show(args: argparse.Namespace) -> int:
    from gui_approver.core.keys import flows

    rec = flows.find_token(_store(), args.registry)
    if args.json:
        _print_json(_token_json(rec))
    else:
        _print_token(rec)
    return 0


def cmd_token_list(args: argparse.Namespace) -> int:
    from gui_approver.core.keys.bearer import bearer_store

    tokens = bearer_store(_store()).list()
    if args.json:
        _print_json([_token_json(t) for t in tokens])
        return 0
    if not tokens:
        print("No bearer tokens yet. Move cargo's: gui-approver token import-cargo")
        return 0
    print("REGISTRY\tFINGERPRINT\tADDED\tEXPIRES\tSCOPES\tPROTECTION\tORIGIN\tREADS")
    for t in tokens:
        print(
            "\t".join(
                [
                    t.registry,
                    f"sha256:{t.fingerprint}",
                    t.added,
                    t.expires or "unknown",
                    t.scopes_text(),
                    t.protection,
                    t.origin,
                    "no dialog (warning)" if t.silent_reads else "dialog",
                ]
            )
        )
    return 0


def cmd_token_delete(args: argparse.Namespace) -> int:
    from gui_approver.core.keys import flows

    rec = flows.find_token(_store(), args.registry)
    if not args.yes:
        if not sys.stdin.isatty():
            raise GuiApproverError("refusing to delete a token without confirmation; pass --yes")
        answer = input(
            f"Delete the bearer token sha256:{rec.fingerprint} of registry "
            f"{rec.registry} from the keychain? Type the registry name to confirm: "
        )
        if answer.strip() != rec.registry:
            print("Not deleted.", file=sys.stderr)
            return 1
    flows.delete_token(_store(), rec.registry)
    print(
        f"Deleted the bearer token of registry {rec.registry} (sha256:{rec.fingerprint}). "
        "It still works at the registry until you revoke it there."
    )
    return 0


def cmd_token_rotate(args: argparse.Namespace) -> int:
    from gui_approver.core.keys import flows

    store = _store()
    flows.find_token(store, args.registry)
    expires = _expiry(args.expires)
    passphrase = _token_passphrase(args)
    token = _read_token(f"New bearer token for {args.registry} (not shown): ")
    old, new = flows.rotate_token(
        store,
        args.registry,
        token,
        expires=expires,
        scopes=args.scopes,
        passphrase=passphrase,
        origin="cli",
    )
    del token
    if args.json:
        _print_json({"old": _token_json(old), "new": _token_json(new)})
        return 0
    print(
        f"Registry {new.registry} now uses the token sha256:{new.fingerprint}; the old one "
        f"(sha256:{old.fingerprint}) was deleted from the keychain."
    )
    print("Revoke the old token at the registry (crates.io: Account Settings, API Tokens).")
    return 0


def cmd_token_allow_reads(args: argparse.Namespace) -> int:
    from gui_approver.core.keys import flows
    from gui_approver.core.keys.bearer import bearer_store

    store = _store()
    rec = flows.find_token(store, args.registry)
    rec = bearer_store(store).set_silent_reads(rec, args.state == "on")
    if rec.silent_reads:
        print(
            f"warning: reads of registry {rec.registry} now get its bearer token without a "
            "dialog; that token can also publish."
        )
    else:
        print(f"Reads of registry {rec.registry} that need its token ask first.")
    return 0


def _confirm(question: str, *, yes: bool, refusal: str) -> None:
    """Ask ``question`` on a terminal (y/N), or need ``--yes`` without one; raise if not."""
    if yes:
        return
    if not sys.stdin.isatty():
        raise GuiApproverError(f"{refusal}; nothing was changed", hint="pass --yes to do it")
    answer = input(f"{question} [y/N] ").strip().lower()
    if answer not in ("y", "yes"):
        raise GuiApproverError(f"not confirmed; nothing was changed ({refusal})")


def _recorded_index(store: Any, registry: str) -> str | None:
    """The index URL the registry's key (or bearer token) was made for, if any."""
    from gui_approver.core.keys.bearer import bearer_store

    rec = store.find_by_registry(registry) or bearer_store(store).find_by_registry(registry)
    return rec.index_url if rec is not None else None


def cmd_configure_cargo(args: argparse.Namespace) -> int:
    from gui_approver.core import cargo_config, validate
    from gui_approver.core.keys import flows

    validate.check_registry_name(args.registry)
    store = _store()
    recorded = (
        None if args.registry == cargo_config.CRATES_IO else _recorded_index(store, args.registry)
    )
    if args.index:
        index: str | None = validate.check_index_url(args.index)
    else:
        # The index the key was made for: cargo then asks for exactly that key.
        index = recorded or cargo_config.registry_index(args.registry)
    current = cargo_config.registry_index(args.registry)
    if (
        args.registry != cargo_config.CRATES_IO
        and index
        and current
        and current != index
        and not args.dry_run
    ):
        mismatch = (
            f"; the key for {args.registry} was made for {recorded}"
            if recorded and recorded != index
            else ""
        )
        _confirm(
            f"Registry {args.registry} already uses the index {current} in "
            f"{cargo_config.config_path()}. Change it to {index}{mismatch}?",
            yes=args.yes,
            refusal=f"registry {args.registry} already has the index {current}; "
            f"changing it to {index} needs confirmation{mismatch}",
        )
    change = flows.plan_configure(store, args.registry, index, bridge=args.bridge)
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
    from gui_approver.client import paths
    from gui_approver.core import ipc

    pong = ipc.ping()
    info: dict[str, Any] = {
        "running": pong is not None,
        "pid": pong.get("pid") if pong else None,
        "socket": paths.socket_path(),
    }
    try:
        from gui_approver.core.keys.bearer import bearer_store

        store = _store()
        records = store.list()
        tokens = bearer_store(store).list()
        info["keys"] = [r.registry for r in records]
        info["key_protection"] = {r.registry: r.protection for r in records}
        info["tokens"] = [t.registry for t in tokens]
        info["registries"] = [{"registry": r.registry, "kind": "asymmetric"} for r in records] + [
            {"registry": t.registry, "kind": "token"} for t in tokens
        ]
    except GuiApproverError as exc:
        info["keys_error"] = str(exc)
    from gui_approver.core import cargo_config

    try:
        info["backups_with_secrets"] = [str(p) for p, _f in cargo_config.backups_with_secrets()]
        for w in cargo_config.backup_warnings():
            print(f"warning: {w}", file=sys.stderr)
    except OSError:
        pass
    if args.json:
        _print_json(info)
    else:
        state = f"running (pid {info['pid']})" if info["running"] else "not running"
        print(f"gui-approver {__version__}: {state}\nsocket: {info['socket']}")
        prot = info.get("key_protection", {})
        print(
            "keys: "
            + (", ".join(f"{k} ({prot.get(k, '?')})" for k in info.get("keys", [])) or "(none)")
        )
        print(f"bearer tokens: {', '.join(info.get('tokens', [])) or '(none)'}")
    return 0 if info["running"] else 3


# -- parser ----------------------------------------------------------------------------------


def cmd_inspect(args: argparse.Namespace) -> int:
    from gui_approver.review.inspect import inspect_file, to_json, to_text

    contents = inspect_file(args.file, name=args.name, vers=args.vers)
    if args.json:
        _print_json(to_json(contents))
    else:
        print(to_text(contents))
    return 0 if contents.listing_verified else 2


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="gui-approver",
        description="Sign cargo's asymmetric tokens only after you approve the exact crate.",
    )
    p.add_argument("--version", action="version", version=f"gui-approver {__version__}")
    p.add_argument("-v", "--verbose", action="store_true", help="log more (never secrets)")
    p.set_defaults(func=cmd_app, auto_approve_loopback=False, no_gui=False, started_by_bridge=False)
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    app = sub.add_parser("app", help="run the tray app (the default)")
    app.add_argument(
        "--auto-approve-loopback",
        action="store_true",
        help="approve mutations for registries on 127.0.0.0/8, ::1 or localhost "
        "without a dialog (demos, benchmarks, unattended tests)",
    )
    app.add_argument(
        "--no-gui",
        action="store_true",
        help="run without Qt: reads are signed, mutations need "
        "--auto-approve-loopback and a loopback registry, else denied",
    )
    app.add_argument("--started-by-bridge", action="store_true", help=argparse.SUPPRESS)
    app.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS)
    app.set_defaults(func=cmd_app)

    key = sub.add_parser("key", help="manage signing keys")
    ksub = key.add_subparsers(dest="key_command", metavar="ACTION", required=True)

    def passphrase_opts(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--passphrase",
            action="store_true",
            help="protect the key with a passphrase (asked on the terminal)",
        )
        p.add_argument(
            "--passphrase-file",
            metavar="FILE",
            help="read the passphrase from the first line of FILE (- for stdin)",
        )

    def hardware_opts(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--pkcs11",
            metavar="URI",
            help="make the key on a hardware token (YubiKey, smart card, TPM) named "
            "by an RFC 7512 pkcs11: URI, e.g. 'pkcs11:token=NAME;id=%%01'",
        )
        p.add_argument(
            "--module",
            metavar="PATH",
            help="the token's PKCS#11 module (default: the URI's module-path, else "
            "p11-kit, OpenSC, ykcs11 and SoftHSM2 at their Debian paths)",
        )
        p.add_argument(
            "--pin-file",
            metavar="FILE",
            help="read the token PIN from the first line of FILE (- for stdin); "
            "default: a no-echo prompt, or stdin when it is not a terminal",
        )
        p.add_argument(
            "--use-existing",
            action="store_true",
            help="use the P-384 key already on the token at the URI (e.g. made "
            "with ykman in a PIV slot) instead of generating one",
        )

    new = ksub.add_parser("new", help="create a key for a registry")
    new.add_argument("--registry", required=True)
    new.add_argument("--index", help="index URL (default: from $CARGO_HOME/config.toml)")
    new.add_argument("--subject", help="key subject, if the registry asks for one")
    new.add_argument("--expires", help="none (default), 90d, 1y, or a date YYYY-MM-DD")
    passphrase_opts(new)
    hardware_opts(new)
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
    export = ksub.add_parser("export", help="print a registry's public key")
    export.add_argument("--registry", required=True)
    export.add_argument("--format", choices=("paserk", "pem", "json"), default="paserk")
    export.add_argument("--pending", action="store_true", help="the pending successor key")
    export.set_defaults(func=cmd_key_export)
    rotate = ksub.add_parser("rotate", help="create a successor key; --confirm switches to it")
    rotate.add_argument("--registry", required=True)
    rotate.add_argument(
        "--confirm",
        action="store_true",
        help="the new key is registered: use it and delete the old one",
    )
    rotate.add_argument(
        "--no-check",
        action="store_true",
        help="with --confirm: do not first ask the registry whether it accepts the new key",
    )
    rotate.add_argument("--expires", help="expiry of the new key (none, 90d, 1y, YYYY-MM-DD)")
    passphrase_opts(rotate)
    hardware_opts(rotate)
    rotate.add_argument("--json", action="store_true")
    rotate.set_defaults(func=cmd_key_rotate)
    imp = ksub.add_parser(
        "import-cargo",
        help="move cargo:paseto secret keys from credentials.toml into the "
        "keychain and switch cargo to gui-approver",
    )
    imp.add_argument("--registry", help="only this registry")
    imp.add_argument("--dry-run", action="store_true", help="show what would be imported")
    imp.add_argument("--json", action="store_true")
    imp.set_defaults(func=cmd_key_import_cargo)
    unlock = ksub.add_parser(
        "unlock",
        help="give the running app a key's passphrase or "
        "token PIN (asked on the terminal, or stdin)",
    )
    unlock.add_argument("--registry", required=True)
    unlock.set_defaults(func=cmd_key_unlock)
    lock = ksub.add_parser(
        "lock",
        help="make the running app forget unlocked passphrase keys and log out of hardware tokens",
    )
    lock.add_argument("--json", action="store_true")
    lock.set_defaults(func=cmd_key_lock)
    delete = ksub.add_parser("delete", help="delete a registry's key")
    delete.add_argument("--registry", required=True)
    delete.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    delete.set_defaults(func=cmd_key_delete)

    tok = sub.add_parser(
        "token",
        help="manage bearer tokens (crates.io and other registries that take bearer tokens)",
    )
    tsub = tok.add_subparsers(dest="token_command", metavar="ACTION", required=True)
    tadd = tsub.add_parser(
        "add",
        help="store a registry's bearer token in the keychain "
        "(read from a no-echo prompt, or stdin)",
    )
    tadd.add_argument("--registry", required=True)
    tadd.add_argument("--index", help="index URL (default: crates.io's, or from config.toml)")
    tadd.add_argument("--expires", help="when the token expires: 90d, 1y or YYYY-MM-DD")
    tadd.add_argument(
        "--scopes",
        help="the scopes the token has, as you created it "
        "(e.g. 'publish-update; crates: foo, foo-*')",
    )
    passphrase_opts(tadd)
    tadd.add_argument("--json", action="store_true")
    tadd.set_defaults(func=cmd_token_add)
    timp = tsub.add_parser(
        "import-cargo",
        help="move cargo's plaintext token (credentials.toml) into the "
        "keychain and point cargo at gui-approver",
    )
    timp.add_argument("--registry", help="only this registry (crates-io for crates.io)")
    timp.add_argument("--dry-run", action="store_true", help="show what would be moved")
    timp.add_argument("--json", action="store_true")
    timp.set_defaults(func=cmd_token_import_cargo)
    tshow = tsub.add_parser("show", help="show what is known about a registry's token")
    tshow.add_argument("--registry", required=True)
    tshow.add_argument("--json", action="store_true")
    tshow.set_defaults(func=cmd_token_show)
    tlist = tsub.add_parser("list", help="list bearer tokens")
    tlist.add_argument("--json", action="store_true")
    tlist.set_defaults(func=cmd_token_list)
    tdel = tsub.add_parser("delete", help="delete a registry's token from the keychain")
    tdel.add_argument("--registry", required=True)
    tdel.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    tdel.set_defaults(func=cmd_token_delete)
    trot = tsub.add_parser("rotate", help="replace a registry's token by a new one")
    trot.add_argument("--registry", required=True)
    trot.add_argument("--expires", help="when the new token expires: 90d, 1y or YYYY-MM-DD")
    trot.add_argument("--scopes", help="the new token's scopes (default: the old ones)")
    passphrase_opts(trot)
    trot.add_argument("--json", action="store_true")
    trot.set_defaults(func=cmd_token_rotate)
    tread = tsub.add_parser(
        "silent-reads",
        help="on: release the token for reads of an auth-required "
        "registry without a dialog (not recommended)",
    )
    tread.add_argument("--registry", required=True)
    tread.add_argument("state", choices=("on", "off"))
    tread.set_defaults(func=cmd_token_allow_reads)

    cc = sub.add_parser("configure-cargo", help="point cargo at gui-approver for a registry")
    cc.add_argument(
        "--registry",
        required=True,
        metavar="NAME",
        help="the registry's name, as in cargo --registry NAME (crates-io for crates.io)",
    )
    cc.add_argument(
        "--index",
        metavar="URL",
        help="its index URL, e.g. sparse+https://my.registry/index/ (default: "
        "the index its key was made for, else the one in cargo's config; "
        "not needed for crates-io)",
    )
    cc.add_argument("--dry-run", action="store_true", help="print the diff, change nothing")
    cc.add_argument(
        "--yes", action="store_true", help="change a registry's existing index without asking"
    )
    cc.add_argument("--bridge", help=argparse.SUPPRESS)
    cc.set_defaults(func=cmd_configure_cargo)

    st = sub.add_parser("status", help="is the app running, socket path, keys")
    st.add_argument("--json", action="store_true")
    st.set_defaults(func=cmd_status)

    ins = sub.add_parser(
        "inspect",
        help="show the review the approval dialog would show for a .crate file",
        description="Verify and list a .crate exactly as the approval dialog does. Exit "
        "status 0: verified (the list is exactly what cargo unpacks); 2: not verified.",
    )
    ins.add_argument("file", metavar="FILE.crate")
    ins.add_argument("--name", help="crate name (default: from NAME-VERS.crate)")
    ins.add_argument("--vers", help="crate version (default: from NAME-VERS.crate)")
    ins.add_argument("--json", action="store_true", help="machine-readable output")
    ins.set_defaults(func=cmd_inspect)

    kw = sub.add_parser("keys", help="open the key manager window")
    kw.set_defaults(func=cmd_keys)

    hw = sub.add_parser("hardware", help="PKCS#11 tokens (YubiKey, smart card, TPM)")
    hwsub = hw.add_subparsers(dest="hardware_command", metavar="ACTION", required=True)
    hwl = hwsub.add_parser("list", help="the tokens and P-384 keys a module exposes (no PIN)")
    hwl.add_argument(
        "--module",
        metavar="PATH",
        help="this PKCS#11 module only (default: p11-kit proxy, OpenSC, ykcs11, "
        "SoftHSM2 at their Debian paths)",
    )
    hwl.add_argument("--json", action="store_true")
    hwl.set_defaults(func=cmd_hardware_list)

    from gui_approver.cli import watch_cmd
    from gui_approver.demo import run as demo
    from gui_approver.desktop import integration as desktop
    from gui_approver.registry import server as registry
    from gui_approver.registry import verify

    verify.add_verify_parser(sub)
    desktop.add_parsers(sub)
    demo.add_parsers(sub)
    registry.add_registry_parsers(sub)
    watch_cmd.add_parsers(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    from gui_approver.core.hardening import harden_process

    # First: this process may hold an unlocked key or a passphrase (see core/hardening.py).
    harden_process()
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.func is not cmd_app:
        _setup_logging(getattr(args, "verbose", False))
    try:
        rc: int = args.func(args)
        return rc
    except GuiApproverError as exc:  # the one place that maps errors to exit codes
        print(f"gui-approver: error: {exc.full()}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130

"""Issue 12 item 8: editing cargo's config never spreads a secret and never breaks dotfiles.

- the new file is written through ``mkstemp`` with its final mode: a file holding a ``token``
  or ``secret-key`` is never group/other-readable, not even for a moment;
- a symlinked ``config.toml`` / ``credentials.toml`` (dotfile managers) stays a symlink and its
  target is edited;
- a backup never holds a ``token`` or ``secret-key``; ``key import-cargo`` also takes the
  imported secret out of older backups; ``configure-cargo`` and ``status`` warn about old
  backups that still hold one;
- two backups made in the same second both survive.

The CLI runs as a real subprocess with a private keychain (``app_env``).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from envtools import gui_approver as cli

from gui_approver.core import cargo_config
from gui_approver.core.keys.store import KeyringKeychain, KeyStore, SigningKey

LOCAL = "sparse+http://127.0.0.1:8765/index/"
BRIDGE = "/opt/ga/bin/cargo-credential-gui-approver"
TOKEN = "cio-plaintext-token-5f2b7c"


def files_holding(root: Path, needle: str) -> list[Path]:
    out = []
    for p in root.rglob("*"):
        if p.is_file() and not p.is_symlink() and needle in p.read_text(errors="replace"):
            out.append(p)
    return sorted(out)


def test_a_backup_never_holds_a_secret(app_env):
    home = Path(app_env["CARGO_HOME"])
    secret = SigningKey.generate().secret_paserk().expose()
    (home / "config.toml").write_text(
        "# my settings\n[registries.local]\n"
        f'index = "{LOCAL}"\nsecret-key = "{secret}"\n\n'
        f'[registry]\ntoken = "{TOKEN}"\n[net]\nretry = 3\n'
    )
    r = cli(app_env, "configure-cargo", "--registry", "local", "--index", LOCAL, "--bridge", BRIDGE)
    assert r.returncode == 0, r.stderr
    backups = list(home.glob("config.toml.bak-*"))
    assert len(backups) == 1
    text = backups[0].read_text()
    assert secret not in text and TOKEN not in text
    assert "# my settings" in text and "retry = 3" in text and LOCAL in text
    assert files_holding(home, secret) == [home / "config.toml"]  # only where it was


def test_import_cargo_takes_the_secret_out_of_older_backups(app_env):
    home = Path(app_env["CARGO_HOME"])
    secret = SigningKey.generate().secret_paserk().expose()
    body = f'[registries.local]\nindex = "{LOCAL}"\nsecret-key = "{secret}"\n'
    (home / "config.toml").write_text(body)
    # what an older gui-approver (or the user) left behind
    (home / "config.toml.bak-20261101-101010").write_text(body)
    (home / "credentials.toml.bak-20261101-101011").write_text(
        f'[registries.local]\nsecret-key = "{secret}"\n'
    )
    r = cli(app_env, "key", "import-cargo", "--registry", "local")
    assert r.returncode == 0, r.stderr
    assert "only in the keychain" in r.stdout
    assert files_holding(home, secret) == []
    assert (home / "config.toml.bak-20261101-101010").exists()  # kept, minus the secret
    assert LOCAL in (home / "config.toml.bak-20261101-101010").read_text()
    assert KeyStore(KeyringKeychain()).find(LOCAL) is not None


def test_old_backups_holding_a_secret_are_warned_about(app_env):
    home = Path(app_env["CARGO_HOME"])
    old = home / "credentials.toml.bak-20261101-101011"
    old.write_text(f'[registry]\ntoken = "{TOKEN}"\n')
    r = cli(app_env, "configure-cargo", "--registry", "local", "--index", LOCAL, "--bridge", BRIDGE)
    assert r.returncode == 0, r.stderr
    assert str(old) in r.stderr and "token" in r.stderr
    assert TOKEN not in r.stderr + r.stdout
    s = cli(app_env, "status")
    assert str(old) in s.stderr + s.stdout
    assert TOKEN not in s.stderr + s.stdout


def test_a_symlinked_config_stays_a_symlink(app_env, tmp_path):
    home = Path(app_env["CARGO_HOME"])
    dotfiles = tmp_path / "dotfiles"
    dotfiles.mkdir()
    target = dotfiles / "cargo-config.toml"
    target.write_text("[net]\nretry = 3\n")
    target.chmod(0o640)
    (home / "config.toml").symlink_to(target)
    r = cli(app_env, "configure-cargo", "--registry", "local", "--index", LOCAL, "--bridge", BRIDGE)
    assert r.returncode == 0, r.stderr
    link = home / "config.toml"
    assert link.is_symlink() and os.readlink(link) == str(target)
    assert "credential-provider" in target.read_text() and "retry = 3" in target.read_text()
    assert stat.S_IMODE(target.stat().st_mode) == 0o640


def test_import_cargo_keeps_a_symlinked_credentials_file(app_env, tmp_path):
    home = Path(app_env["CARGO_HOME"])
    (home / "config.toml").write_text(f'[registries.local]\nindex = "{LOCAL}"\n')
    secret = SigningKey.generate().secret_paserk().expose()
    target = tmp_path / "credentials.toml"
    target.write_text(f'[registries.local]\nsecret-key = "{secret}"\n[registry]\ntoken = "t"\n')
    target.chmod(0o600)
    (home / "credentials.toml").symlink_to(target)
    r = cli(app_env, "key", "import-cargo", "--registry", "local")
    assert r.returncode == 0, r.stderr
    assert (home / "credentials.toml").is_symlink()
    assert secret not in target.read_text() and 'token = "t"' in target.read_text()
    assert stat.S_IMODE(target.stat().st_mode) == 0o600


def test_a_file_holding_a_token_is_never_group_or_world_readable(app_env, monkeypatch):
    """Written through mkstemp with its final mode: the temporary file that holds the token
    is never created 0644 (umask 022) and fixed afterwards."""
    import io

    home = Path(app_env["CARGO_HOME"])
    config = home / "config.toml"
    config.write_text(f'[registry]\ntoken = "{TOKEN}"\n')
    config.chmod(0o600)
    old_umask = os.umask(0o022)
    created: dict[str, int] = {}  # path -> mode right after the file was created
    replaced: list[tuple[str, str, bool]] = []
    real_os_open, real_io_open, real_replace = os.open, io.open, os.replace

    def note(path) -> None:
        p = os.fspath(path) if isinstance(path, str | os.PathLike) else None
        if p and p.startswith(str(home)) and p not in created and os.path.exists(p):
            created[p] = stat.S_IMODE(os.stat(p).st_mode)

    def watching_os_open(path, flags, *a, **kw):
        fd = real_os_open(path, flags, *a, **kw)
        if flags & os.O_CREAT:
            note(path)
        return fd

    def watching_io_open(file, mode="r", *a, **kw):
        fh = real_io_open(file, mode, *a, **kw)
        if any(m in mode for m in "wax"):
            note(file)
        return fh

    def watching_replace(src, dst, *a, **kw):
        text = Path(src).read_text(errors="replace")
        replaced.append((os.fspath(src), os.fspath(dst), TOKEN in text))
        return real_replace(src, dst, *a, **kw)

    monkeypatch.setattr(os, "open", watching_os_open)
    monkeypatch.setattr(io, "open", watching_io_open)
    monkeypatch.setattr(os, "replace", watching_replace)
    try:
        change = cargo_config.plan_configure("local", LOCAL, bridge=BRIDGE, home=home)
        cargo_config.apply(change)
    finally:
        monkeypatch.undo()
        os.umask(old_umask)
    writes = [(src, holds) for src, dst, holds in replaced if dst == str(config)]
    assert writes and all(holds for _src, holds in writes)
    for src, _holds in writes:
        assert created.get(src, 0o777) & 0o077 == 0, (src, oct(created.get(src, 0)))
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    assert TOKEN in config.read_text()  # configure-cargo does not delete the user's token


def test_a_new_file_holding_a_secret_is_private_and_a_readable_one_is_warned_about(app_env):
    home = Path(app_env["CARGO_HOME"])
    target = home / "fresh.toml"
    cargo_config.write_config(target, f'[registry]\ntoken = "{TOKEN}"\n')
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    plain = home / "plain.toml"
    cargo_config.write_config(plain, "[net]\nretry = 2\n")
    assert stat.S_IMODE(plain.stat().st_mode) == 0o644
    config = home / "config.toml"
    config.write_text(f'[registry]\ntoken = "{TOKEN}"\n')
    config.chmod(0o644)
    r = cli(app_env, "configure-cargo", "--registry", "local", "--index", LOCAL, "--bridge", BRIDGE)
    assert r.returncode == 0, r.stderr
    assert "readable by other users" in r.stderr and TOKEN not in r.stderr


def test_backups_made_in_the_same_second_both_survive(app_env, monkeypatch):
    home = Path(app_env["CARGO_HOME"])
    config = home / "config.toml"
    config.write_text("[net]\nretry = 1\n")
    monkeypatch.setattr(
        "gui_approver.core.cargo_config.time.strftime", lambda fmt, *a: "20261130-111111"
    )
    first = cargo_config.plan_configure("one", LOCAL, bridge=BRIDGE, home=home)
    b1 = cargo_config.apply(first)
    second = cargo_config.plan_configure("two", LOCAL + "2", bridge=BRIDGE, home=home)
    b2 = cargo_config.apply(second)
    assert b1 is not None and b2 is not None and b1 != b2
    assert b1.read_text() == "[net]\nretry = 1\n"
    assert b2.read_text() == first.after
    assert len(list(home.glob("config.toml.bak-*"))) == 2

"""Where the app's socket lives, and whether its directory is private.

On the bridge's hot path: built on the ``posix`` module itself, not ``os`` (whose import,
with ``posixpath`` and ``collections.abc``, is a tenth of the bridge's start-up).
"""

from __future__ import annotations

import posix

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (mypy knows the name)
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Final


SOCKET_NAME: Final = "ipc.sock"
_S_IFMT = 0o170000
_S_IFDIR = 0o040000


def environ() -> dict[str, str]:
    """The process environment as text (what ``os.environ`` holds)."""
    return {
        k.decode("utf-8", "surrogateescape"): v.decode("utf-8", "surrogateescape")
        for k, v in posix.environ.items()
    }


def is_dir(path: str) -> bool:
    try:
        return posix.stat(path).st_mode & _S_IFMT == _S_IFDIR
    except OSError:
        return False


def exists(path: str) -> bool:
    try:
        posix.stat(path)
    except OSError:
        return False
    return True


def _home(env: Mapping[str, str]) -> str:
    home = env.get("HOME")
    if home:
        return home
    import pwd

    return pwd.getpwuid(posix.getuid()).pw_dir


def socket_dir(env: Mapping[str, str] | None = None) -> str:
    """``$XDG_RUNTIME_DIR/gui-approver``, else a per-user dir under the cache dir."""
    env = environ() if env is None else env
    override = env.get("GUI_APPROVER_RUNTIME_DIR")
    if override:
        return override
    runtime = env.get("XDG_RUNTIME_DIR")
    if runtime and runtime.startswith("/") and is_dir(runtime):
        return runtime.rstrip("/") + "/gui-approver"
    cache = env.get("XDG_CACHE_HOME") or _home(env).rstrip("/") + "/.cache"
    return f"{cache.rstrip('/')}/gui-approver/run-{posix.getuid()}"


def socket_path(env: Mapping[str, str] | None = None) -> str:
    return socket_dir(env).rstrip("/") + "/" + SOCKET_NAME


def check_private_dir(path: str) -> str | None:
    """Return why ``path`` is unsafe for our socket, or None when it is ours and 0700."""
    try:
        st = posix.lstat(path)
    except FileNotFoundError:
        return f"{path} does not exist"
    if st.st_mode & _S_IFMT != _S_IFDIR:
        return f"{path} is not a directory"
    uid = posix.getuid()
    if st.st_uid != uid:
        return f"{path} is owned by uid {st.st_uid}, not by you (uid {uid})"
    if st.st_mode & 0o077:
        return f"{path} is accessible by other users (mode {st.st_mode & 0o7777:o})"
    return None

"""Where the app's socket lives, and whether its directory is private (standard library)."""

from __future__ import annotations

import os
import stat

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (mypy knows the name)
if TYPE_CHECKING:
    from typing import Final


SOCKET_NAME: Final = "ipc.sock"


def socket_dir(env: dict[str, str] | None = None) -> str:
    """``$XDG_RUNTIME_DIR/gui-approver``, else a per-user dir under the cache dir."""
    env = dict(os.environ) if env is None else env
    override = env.get("GUI_APPROVER_RUNTIME_DIR")
    if override:
        return override
    runtime = env.get("XDG_RUNTIME_DIR")
    if runtime and os.path.isabs(runtime) and os.path.isdir(runtime):
        return os.path.join(runtime, "gui-approver")
    cache = env.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(cache, "gui-approver", f"run-{os.getuid()}")


def socket_path(env: dict[str, str] | None = None) -> str:
    return os.path.join(socket_dir(env), SOCKET_NAME)


def check_private_dir(path: str) -> str | None:
    """Return why ``path`` is unsafe for our socket, or None when it is ours and 0700."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return f"{path} does not exist"
    if not stat.S_ISDIR(st.st_mode):
        return f"{path} is not a directory"
    if st.st_uid != os.getuid():
        return f"{path} is owned by uid {st.st_uid}, not by you (uid {os.getuid()})"
    if st.st_mode & 0o077:
        return f"{path} is accessible by other users (mode {stat.S_IMODE(st.st_mode):o})"
    return None

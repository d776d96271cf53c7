"""Make the process that holds keys unreadable to other processes of the same user.

An unlocked key lives in this process's memory. A same-user process could otherwise read it
through ``/proc/PID/mem`` or ``ptrace`` (wherever Yama's ptrace scope is 0 or absent), and a
crash could write it into a core file. :func:`harden_process` turns both off at the start of
the app and of the CLI: ``PR_SET_DUMPABLE`` 0 (no ptrace attach, ``/proc/PID/mem`` and
friends owned by root) and ``RLIMIT_CORE`` 0 (soft and hard). The stdlib-only bridge that
cargo starts holds no key and is not touched.
"""

from __future__ import annotations

import logging
import sys

log = logging.getLogger(__name__)

PR_SET_DUMPABLE = 4


def harden_process() -> bool:
    """Non-dumpable, no core files. Returns True when both took effect (Linux); never
    raises: a platform without ``prctl`` is logged and carries on."""
    ok = True
    try:
        import resource

        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    except (ImportError, OSError, ValueError) as exc:
        log.warning("could not turn off core dumps (%s)", exc)
        ok = False
    if not sys.platform.startswith("linux"):
        return False
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0:
            log.warning("could not make the process non-dumpable (errno %d)", ctypes.get_errno())
            return False
    except (OSError, AttributeError) as exc:
        log.warning("could not make the process non-dumpable (%s)", exc)
        return False
    return ok

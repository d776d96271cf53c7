"""Who asked: the process chain behind a credential request. Qt-free.

The bridge reports its own pid, parent pid and working directory; a process can claim
anything, so the kernel's word (the ``SO_PEERCRED`` pid of the connected socket, passed as
``peer_pid``) is preferred, and a disagreement is flagged. From that pid the chain

    bridge (cargo-credential-gui-approver) -> cargo -> shell / IDE / terminal / session

is read with psutil: pid, executable, command line and working directory of each process,
up to a terminal, IDE or session process, pid 1, or ``max_depth`` ancestors. The result is a
frozen :class:`RequesterInfo` with a one-line summary for the dialog such as

    cargo publish in ~/src/foo, started from bash in xterm

and, where the chain cannot be read (the process exited, access denied), a summary that says
so: ``requester could not be verified: ...``. Nothing here raises.

Everything is informational: a process of the same user can imitate any of it. It helps a
person notice a publish they did not start; the checksum binding is what protects the key.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass, replace
from typing import Final

import psutil

from gui_approver.client.framing import Provenance
from gui_approver.review.locate import CargoContext
from gui_approver.review.text import escape_text

MAX_DEPTH: Final = 8
MAX_ARGS: Final = 64
MAX_LINE: Final = 400

SHELLS: Final = frozenset(
    {
        "bash",
        "sh",
        "dash",
        "zsh",
        "fish",
        "ksh",
        "mksh",
        "tcsh",
        "csh",
        "nu",
        "elvish",
        "xonsh",
        "pwsh",
        "ion",
        "oil",
        "osh",
        "busybox",
    }
)
TERMINALS: Final = frozenset(
    {
        "xterm",
        "uxterm",
        "gnome-terminal-server",
        "gnome-terminal",
        "konsole",
        "kitty",
        "alacritty",
        "wezterm",
        "wezterm-gui",
        "foot",
        "footclient",
        "tilix",
        "terminator",
        "urxvt",
        "rxvt",
        "st",
        "xfce4-terminal",
        "mate-terminal",
        "lxterminal",
        "qterminal",
        "terminology",
        "sakura",
        "guake",
        "yakuake",
        "kgx",
        "ptyxis",
        "ptyxis-agent",
        "blackbox",
        "warp",
        "ghostty",
        "contour",
        "cool-retro-term",
        "eterm",
        "hyper",
    }
)
MULTIPLEXERS: Final = frozenset({"tmux", "tmux: server", "screen", "zellij", "byobu"})
IDES: Final = frozenset(
    {
        "code",
        "code-oss",
        "codium",
        "vscodium",
        "cursor",
        "windsurf",
        "zed",
        "zed-editor",
        "clion",
        "rustrover",
        "idea",
        "pycharm",
        "intellij-idea-ultimate",
        "fleet",
        "emacs",
        "vim",
        "nvim",
        "gvim",
        "helix",
        "hx",
        "kate",
        "kdevelop",
        "sublime_text",
        "lapce",
        "gnome-builder",
    }
)
SESSIONS: Final = frozenset(
    {
        "sshd",
        "sshd-session",
        "login",
        "systemd",
        "init",
        "gnome-session-binary",
        "gnome-shell",
        "plasmashell",
        "kwin_x11",
        "kwin_wayland",
        "xinit",
        "lightdm",
        "gdm-session-worker",
        "sddm-helper",
        "startplasma-x11",
        "startplasma-wayland",
        "xfce4-session",
        "cron",
        "crond",
        "containerd-shim",
        "docker-init",
        "runc",
    }
)
INTERPRETERS: Final = ("python", "node", "perl", "ruby", "java")


@dataclass(frozen=True)
class ProcessInfo:
    """One process in the chain. Strings are escaped for display."""

    pid: int
    name: str
    role: str  # "bridge" | "cargo" | "shell" | "terminal" | "ide" | "multiplexer" |
    #            "session" | "other"
    exe: str | None = None
    cmdline: tuple[str, ...] = ()
    cwd: str | None = None
    uid: int | None = None
    started: float | None = None  # psutil create_time (seconds since the epoch)
    error: str | None = None  # what could not be read

    def label(self) -> str:
        """``bash``, or ``python3 (pytest)`` / ``bash (-c)`` for an interpreter or shell
        running a script rather than a person's commands."""
        if self.name.startswith(INTERPRETERS) or self.role == "shell":
            args = self.cmdline[1:6]
            for i, arg in enumerate(args):
                if arg == "-c":
                    return f"{self.name} (-c)"
                if arg == "-m" and i + 1 < len(args):
                    return f"{self.name} (-m {args[i + 1][:60]})"
                if arg and not arg.startswith("-"):
                    return f"{self.name} ({os.path.basename(arg)[:60]})"
        return self.name

    def describe(self, home: str | None = None) -> str:
        cmd = " ".join(_home(a, home) for a in self.cmdline) or "?"
        text = f"{self.role:<11} pid {self.pid:<7} {cmd}"
        if self.exe and (not self.cmdline or os.path.basename(self.exe) not in self.cmdline[0]):
            text += f"  [exe {_home(self.exe, home)}]"
        if self.cwd:
            text += f"  (in {_home(self.cwd, home)})"
        if self.error:
            text += f"  ({self.error})"
        return text if len(text) <= MAX_LINE else text[: MAX_LINE - 1] + "…"


@dataclass(frozen=True)
class RequesterInfo:
    """Who asked, as far as it could be established."""

    verified: bool
    summary: str
    pid: int | None  # the bridge pid that was examined
    pid_source: str  # "kernel" | "self-reported" | "none"
    bridge: ProcessInfo | None = None
    cargo: ProcessInfo | None = None
    ancestors: tuple[ProcessInfo, ...] = ()  # cargo's parent first
    warnings: tuple[str, ...] = ()
    #: what the contents lookup needs to know about cargo (None when cargo was not read)
    context: CargoContext | None = None
    home: str | None = None

    @property
    def chain(self) -> tuple[ProcessInfo, ...]:
        return tuple(p for p in (self.bridge, self.cargo) if p is not None) + self.ancestors

    def lines(self) -> list[str]:
        out = [self.summary]
        out.extend(f"! {w}" for w in self.warnings)
        out.extend("  " + p.describe(self.home) for p in self.chain)
        return out


def _home(text: str, home: str | None) -> str:
    if home and home != "/" and (text == home or text.startswith(home.rstrip("/") + "/")):
        return "~" + text[len(home.rstrip("/")) :]
    return text


def _classify(name: str) -> str:
    if name in ("cargo", "cargo.exe"):
        return "cargo"
    if name in SHELLS:
        return "shell"
    if name in TERMINALS:
        return "terminal"
    if name in MULTIPLEXERS or name.startswith("tmux"):
        return "multiplexer"
    if name in IDES or name.startswith(("code", "jetbrains", "rustrover")):
        return "ide"
    if name in SESSIONS:
        return "session"
    return "other"


def _role(name: str, exe: str | None) -> str:
    """By the process name first (what the kernel calls it), else by its executable."""
    role = _classify(name)
    if role == "other" and exe:
        role = _classify(os.path.basename(exe))
    return role


_PROCESS_ERRORS = (psutil.Error, OSError, ValueError)


def _read(proc: psutil.Process, role: str | None = None) -> ProcessInfo:
    """Everything displayable about ``proc``; parts that cannot be read are left out."""
    errors: list[str] = []
    name = "?"
    exe: str | None = None
    cmdline: tuple[str, ...] = ()
    cwd: str | None = None
    uid: int | None = None
    started: float | None = None
    with proc.oneshot():
        try:
            name = escape_text(proc.name(), 200)
        except psutil.AccessDenied:
            errors.append("name: access denied")
        with contextlib.suppress(*_PROCESS_ERRORS):
            started = proc.create_time()
        with contextlib.suppress(*_PROCESS_ERRORS):
            uid = proc.uids().real
        try:
            exe = escape_text(proc.exe(), 1024) or None
        except psutil.AccessDenied:
            errors.append("executable: access denied")
        try:
            raw = proc.cmdline()
            cmdline = tuple(escape_text(a, 1024) for a in raw[:MAX_ARGS])
            if len(raw) > MAX_ARGS:
                cmdline += (f"… ({len(raw) - MAX_ARGS} more arguments)",)
        except psutil.AccessDenied:
            errors.append("command line: access denied")
        try:
            cwd = escape_text(proc.cwd(), 2048) or None
        except psutil.AccessDenied:
            errors.append("working directory: access denied")
    return ProcessInfo(
        pid=proc.pid,
        name=name,
        role=role or _role(name, exe),
        exe=exe,
        cmdline=cmdline,
        cwd=cwd,
        uid=uid,
        started=started,
        error="; ".join(errors) or None,
    )


_CONTEXT_ENV: Final = ("CARGO_TARGET_DIR", "CARGO_BUILD_TARGET_DIR", "CARGO_HOME")


def _cargo_context(proc: psutil.Process) -> CargoContext:
    """Raw (unescaped) facts the ``.crate`` lookup needs: cwd, argv, env, open .crate files."""
    cwd: str | None = None
    cmdline: tuple[str, ...] = ()
    env: list[tuple[str, str]] = []
    open_crates: list[str] = []
    with contextlib.suppress(*_PROCESS_ERRORS):
        cwd = proc.cwd()
    with contextlib.suppress(*_PROCESS_ERRORS):
        cmdline = tuple(proc.cmdline()[:256])
    try:
        environ = proc.environ()
        env = [(k, environ[k]) for k in _CONTEXT_ENV if k in environ]
    except _PROCESS_ERRORS:
        pass
    with contextlib.suppress(*_PROCESS_ERRORS):
        open_crates = [f.path for f in proc.open_files() if f.path.endswith(".crate")][:256]
    return CargoContext(cwd=cwd, cmdline=cmdline, env=tuple(env), open_crates=tuple(open_crates))


_VALUE_OPTIONS: Final = frozenset({"--config", "-Z", "-C", "--color", "--explain"})


def cargo_subcommand(cmdline: tuple[str, ...]) -> str | None:
    """``publish`` for ``cargo +stable -v publish --registry x``."""
    args = list(cmdline[1:])
    i = 0
    while i < len(args):
        arg = args[i]
        if arg in _VALUE_OPTIONS:
            i += 2
            continue
        if arg.startswith(("-", "+")):
            i += 1
            continue
        return arg
    return None


def owner_changes(cmdline: tuple[str, ...]) -> str | None:
    """What ``cargo owner`` was told to do, from its command line: "add alice, bob; remove
    carol", "list the owners", or None when it is not ``cargo owner`` or says nothing."""
    if cargo_subcommand(cmdline) != "owner":
        return None
    add: list[str] = []
    remove: list[str] = []
    listing = False
    args = list(cmdline[1:])
    i = 0
    while i < len(args):
        arg = args[i]
        for long, short, into in (("--add", "-a", add), ("--remove", "-r", remove)):
            if arg in (long, short) and i + 1 < len(args):
                into.extend(x for x in args[i + 1].split(",") if x)
                i += 1
            elif arg.startswith(long + "="):
                into.extend(x for x in arg[len(long) + 1 :].split(",") if x)
            elif arg.startswith(short) and len(arg) > 2 and not arg.startswith("--"):
                into.extend(x for x in arg[2:].split(",") if x)
        if arg in ("--list", "-l"):
            listing = True
        i += 1
    parts = []
    if add:
        parts.append("add " + ", ".join(add))
    if remove:
        parts.append("remove " + ", ".join(remove))
    if listing:
        parts.append("list the owners")
    return "; ".join(parts) or None


def _unverified(
    reason: str,
    pid: int | None,
    source: str,
    warnings: list[str],
    home: str | None,
    *,
    bridge: ProcessInfo | None = None,
    cargo: ProcessInfo | None = None,
    ancestors: tuple[ProcessInfo, ...] = (),
    context: CargoContext | None = None,
) -> RequesterInfo:
    return RequesterInfo(
        verified=False,
        summary=f"requester could not be verified: {reason}",
        pid=pid,
        pid_source=source,
        bridge=bridge,
        cargo=cargo,
        ancestors=ancestors,
        warnings=tuple(warnings),
        context=context,
        home=home,
    )


def _gone(exc: BaseException, what: str) -> str:
    if isinstance(exc, psutil.NoSuchProcess | psutil.ZombieProcess):
        return f"{what} has already exited"
    if isinstance(exc, psutil.AccessDenied):
        return f"access to {what} was denied"
    return f"{what} could not be read ({type(exc).__name__})"


def resolve_requester(
    provenance: Provenance,
    peer_pid: int | None = None,
    *,
    max_depth: int = MAX_DEPTH,
    home: str | None = None,
) -> RequesterInfo:
    """Resolve the chain behind a request. ``peer_pid``: the kernel's pid for the connected
    bridge (``SO_PEERCRED``), preferred over ``provenance.pid``. Never raises."""
    if home is None:
        home = os.path.expanduser("~")
    try:
        return _resolve(provenance, peer_pid, max_depth, home)
    except Exception as exc:  # noqa: BLE001 - informational; never break the signing path
        return _unverified(
            f"internal error ({type(exc).__name__})", peer_pid or provenance.pid, "none", [], home
        )


def _resolve(prov: Provenance, peer_pid: int | None, max_depth: int, home: str) -> RequesterInfo:
    warnings: list[str] = []
    if peer_pid is not None and peer_pid > 0:
        pid: int | None = peer_pid
        source = "kernel"
        if prov.pid is not None and prov.pid != peer_pid:
            warnings.append(
                f"the requester said it is pid {prov.pid}, but the kernel says pid {peer_pid}"
            )
    elif prov.pid is not None and prov.pid > 0:
        pid = prov.pid
        source = "self-reported"
        warnings.append("the pid was reported by the requester itself, not by the kernel")
    else:
        return _unverified(
            "the requesting process is unknown (no pid)", None, "none", warnings, home
        )
    try:
        bridge_proc = psutil.Process(pid)
        bridge = _read(bridge_proc, "bridge")
    except Exception as exc:  # noqa: BLE001
        return _unverified(
            _gone(exc, f"the requesting process (pid {pid})"), pid, source, warnings, home
        )
    if bridge.uid is not None and bridge.uid != os.getuid():
        warnings.append(f"the requesting process runs as uid {bridge.uid}, not as you")
    if "--cargo-plugin" not in bridge.cmdline:
        warnings.append(
            f"the requesting process ({bridge.label()}) is not a credential provider that "
            "cargo started (no --cargo-plugin argument)"
        )
    if (
        prov.cwd is not None
        and bridge.cwd is not None
        and escape_text(prov.cwd, 2048) != (bridge.cwd)
    ):
        warnings.append(
            f"the requester said its directory is {_home(escape_text(prov.cwd), home)}, "
            f"but it is {_home(bridge.cwd, home)}"
        )
    try:
        parent = bridge_proc.parent()
    except Exception as exc:  # noqa: BLE001
        return _unverified(
            _gone(exc, "the parent of the requesting process"),
            pid,
            source,
            warnings,
            home,
            bridge=bridge,
        )
    if parent is None or parent.pid <= 1:
        return _unverified(
            "the process that started the credential provider (cargo) has already exited",
            pid,
            source,
            warnings,
            home,
            bridge=bridge,
        )
    if prov.ppid is not None and prov.ppid != parent.pid and source == "kernel":
        warnings.append(
            f"the requester said its parent is pid {prov.ppid}, but it is pid {parent.pid}"
        )
    try:
        cargo = _read(parent)
        context = _cargo_context(parent)
    except Exception as exc:  # noqa: BLE001
        return _unverified(
            _gone(exc, f"the parent process (pid {parent.pid})"),
            pid,
            source,
            warnings,
            home,
            bridge=bridge,
        )
    is_cargo = cargo.role == "cargo"
    if not is_cargo:
        cargo = replace(cargo, role="parent")
    ancestors = _ancestors(parent, max_depth)
    if not is_cargo:
        return _unverified(
            f"the credential provider was started by {cargo.label()} (pid {cargo.pid}), "
            "not by cargo",
            pid,
            source,
            warnings,
            home,
            bridge=bridge,
            cargo=cargo,
            ancestors=ancestors,
            context=context,
        )
    summary = _summary(cargo, ancestors, home)
    if warnings:
        summary += f" [! {warnings[0]}]"
    return RequesterInfo(
        verified=source == "kernel" and not warnings,
        summary=summary,
        pid=pid,
        pid_source=source,
        bridge=bridge,
        cargo=cargo,
        ancestors=ancestors,
        warnings=tuple(warnings),
        context=context,
        home=home,
    )


def _ancestors(start: psutil.Process, max_depth: int) -> tuple[ProcessInfo, ...]:
    out: list[ProcessInfo] = []
    proc: psutil.Process | None = start
    for _ in range(max_depth):
        try:
            proc = proc.parent() if proc is not None else None
        except Exception:  # noqa: BLE001
            break
        if proc is None or proc.pid <= 1:
            break
        try:
            info = _read(proc)
        except Exception as exc:  # noqa: BLE001
            out.append(
                ProcessInfo(pid=proc.pid, name="?", role="other", error=_gone(exc, "this process"))
            )
            break
        out.append(info)
        if info.role in ("terminal", "ide", "session"):
            break
    return tuple(out)


def _summary(cargo: ProcessInfo, ancestors: tuple[ProcessInfo, ...], home: str) -> str:
    sub = cargo_subcommand(cargo.cmdline)
    text = f"cargo {sub}" if sub else "cargo"
    if cargo.cwd:
        text += f" in {_home(cargo.cwd, home)}"
    # Skip rustup's proxy ("cargo" -> rustup -> toolchain cargo) when naming the starter.
    starters = [a for a in ancestors if a.role != "cargo" and a.name != "rustup"]
    if not starters:
        return text + ", started by a process that could not be identified"
    first = starters[0]
    text += f", started from {first.label()}"
    host = next(
        (a for a in starters[1:] if a.role in ("terminal", "ide", "multiplexer", "session")),
        None,
    )
    if host is not None:
        text += f" in {host.label()}"
    return text


__all__ = ["ProcessInfo", "RequesterInfo", "cargo_subcommand", "owner_changes", "resolve_requester"]

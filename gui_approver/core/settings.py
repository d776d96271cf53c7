"""User settings (TOML in the user config dir). Qt-free.

An invalid file never stops the app: it starts with defaults and reports what was wrong.
The file is never rewritten behind the user's back.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Settings:
    approval_timeout: float = 120.0
    reads_need_approval: bool = False
    arming_delay: float = 1.0
    paranoid_accessibility: bool = False
    idle_lock_minutes: float = 15.0
    history_size_mb: float = 50.0
    max_pending: int = 10
    #: Minutes between two passes of the watch while the app runs (0: no watch).
    watch_interval_minutes: float = 15.0

    def validate(self) -> list[str]:
        problems = []
        # Under 30 s there is no time to read the dialog.
        if not 30 <= self.approval_timeout <= 3600:
            problems.append("approval_timeout must be between 30 and 3600 seconds")
        if not 1.0 <= self.arming_delay <= 10:
            problems.append("arming_delay must be between 1 and 10 seconds")
        if not 1 <= self.max_pending <= 100:
            problems.append("max_pending must be between 1 and 100")
        if self.watch_interval_minutes != 0 and not 1 <= self.watch_interval_minutes <= 1440:
            problems.append("watch_interval_minutes must be 0 (off) or between 1 and 1440")
        if not 0 <= self.idle_lock_minutes <= 10080:
            problems.append("idle_lock_minutes must be 0 (never) or up to 10080 (a week)")
        if not 0 <= self.history_size_mb <= 100_000:
            problems.append("history_size_mb must be between 0 and 100000")
        return problems


def default_path() -> Path:
    import platformdirs

    return Path(platformdirs.user_config_dir("gui-approver")) / "settings.toml"


def load(path: Path | None = None) -> tuple[Settings, list[str]]:
    """Return the settings and a list of problems (empty when the file is fine or absent)."""
    path = path or default_path()
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return Settings(), []
    except OSError as exc:
        return Settings(), [f"{path}: cannot read ({exc.strerror}); using defaults"]
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        return Settings(), [f"{path}: not UTF-8 ({exc.reason} at byte {exc.start}); using defaults"]
    except tomllib.TOMLDecodeError as exc:
        # tomllib's message ends with "(at line N, column M)": keep it, it says where.
        return Settings(), [f"{path}: invalid TOML: {exc}; using defaults"]
    known = {f.name: f for f in fields(Settings)}
    values: dict[str, Any] = {}
    problems = []
    for key, value in data.items():
        f = known.get(key)
        if f is None:
            problems.append(f"{path}: unknown setting {key!r} ignored")
            continue
        default = getattr(Settings(), key)
        if isinstance(default, bool):
            ok = isinstance(value, bool)
        elif isinstance(default, int):
            ok = type(value) is int
        else:
            ok = type(value) in (int, float)
        if not ok:
            problems.append(f"{path}: {key} has the wrong type; using the default")
            continue
        values[key] = float(value) if isinstance(default, float) else value
    settings = replace(Settings(), **values)
    bad = settings.validate()
    if bad:
        return Settings(), [f"{path}: {p}; using defaults" for p in bad]
    return settings, problems


def _toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    raise TypeError(f"cannot write {type(value).__name__} to the settings file")


def dumps(settings: Settings) -> str:
    """The settings file's text: every setting, one ``key = value`` line each."""
    lines = ["# gui-approver settings (written by its Settings window)"]
    lines += [f"{f.name} = {_toml_value(getattr(settings, f.name))}" for f in fields(Settings)]
    return "\n".join(lines) + "\n"


def save(settings: Settings, path: Path | None = None) -> Path:
    """Write ``settings`` (all of them) to ``path`` atomically and return the path.

    Only called when the user presses Save. Raises ValueError for settings that do not
    validate (nothing is written) and OSError when the file cannot be written.
    """
    bad = settings.validate()
    if bad:
        raise ValueError("; ".join(bad))
    path = path or default_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(dumps(settings))
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path

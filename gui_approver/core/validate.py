"""The checks the CLI and the GUI share for what a user types: registry names, index URLs.

Each ``*_problem`` function returns None when the value is fine, else a sentence saying why
(the GUI shows it next to the field); each ``check_*`` raises :class:`ConfigError` with that
sentence and a hint (the CLI prints it). Nothing here touches a file or the keychain.
"""

from __future__ import annotations

import re
import urllib.parse

from gui_approver.errors import ConfigError

#: What cargo accepts after ``--registry`` (and as a ``[registries.NAME]`` key we write).
REGISTRY_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
#: Index URL schemes cargo understands (after an optional ``sparse+`` prefix).
INDEX_SCHEMES = ("http", "https", "file", "ssh", "git")


def registry_name_problem(name: str) -> str | None:
    if not name:
        return "enter the registry's name"
    if not REGISTRY_NAME.fullmatch(name):
        if len(name) > 64:
            return f"the registry name {name[:20]!r}… is longer than 64 characters"
        return (
            f"the registry name {name!r} may contain only letters, digits, - and _ "
            "(as in cargo --registry NAME)"
        )
    return None


def index_url_problem(url: str) -> str | None:
    url = url.strip()
    if not url:
        return "enter the registry's index URL"
    if any(c.isspace() or ord(c) < 32 for c in url):
        return f"the index URL {url!r} contains spaces or control characters"
    parsed = urllib.parse.urlsplit(url.removeprefix("sparse+"))
    if parsed.scheme not in INDEX_SCHEMES or not (parsed.netloc or parsed.scheme == "file"):
        return (
            f"{url!r} is not an index URL: it must look like sparse+https://host/index/ "
            "(or a git https:// URL)"
        )
    if url.startswith("sparse+") and parsed.scheme not in ("http", "https"):
        return f"{url!r}: a sparse index is served over http(s)"
    return None


def check_registry_name(name: str) -> str:
    problem = registry_name_problem(name)
    if problem is not None:
        raise ConfigError(
            f"{problem}; nothing was changed",
            hint="registry names are letters, digits, - and _, e.g. my-registry",
        )
    return name


def check_index_url(url: str) -> str:
    problem = index_url_problem(url)
    if problem is not None:
        raise ConfigError(
            f"{problem}; nothing was changed",
            hint="the index URL is on the registry's documentation page, e.g. "
            "sparse+https://my.registry/index/",
        )
    return url.strip()

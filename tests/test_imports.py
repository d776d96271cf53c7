"""Architecture: only gui_approver/ui imports Qt; the bridge stays small."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "gui_approver"
CORE = sorted(
    "gui_approver." + ".".join(p.relative_to(PKG).with_suffix("").parts)
    for p in PKG.rglob("*.py")
    if p.stem not in ("__main__", "__init__") and p.relative_to(PKG).parts[0] != "ui"
)


def imported_after(module: str) -> set[str]:
    code = (
        "import sys, json; before = set(sys.modules); import " + module + "; "
        "print(json.dumps(sorted(set(sys.modules) - before)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    return set(json.loads(out.stdout))


@pytest.mark.parametrize("module", CORE)
def test_core_modules_never_import_qt(module):
    loaded = imported_after(module)
    assert not {m for m in loaded if m.startswith(("PySide6", "shiboken6"))}, module


def test_bridge_imports_only_stdlib_and_protocol():
    loaded = imported_after("gui_approver.client.bridge")
    ours = {m for m in loaded if m.startswith("gui_approver")}
    assert ours == {"gui_approver", "gui_approver.client", "gui_approver.client.bridge",
                    "gui_approver.client.protocol", "gui_approver.secret", "gui_approver.errors"}
    stdlib = set(sys.stdlib_module_names)
    third_party = {m for m in loaded if m.split(".")[0] not in stdlib and
                   not m.startswith("gui_approver") and not m.startswith("_")}
    assert third_party == set(), third_party
    for heavy in ("cryptography", "keyring", "pyseto", "PySide6", "subprocess"):
        assert heavy not in loaded


def test_no_qt_import_statement_outside_ui():
    offenders = []
    for path in PKG.rglob("*.py"):
        if "ui" in path.relative_to(PKG).parts[:1]:
            continue
        for line in path.read_text().splitlines():
            s = line.strip()
            if s.startswith(("import PySide6", "from PySide6")):
                offenders.append(str(path))
    assert offenders == []

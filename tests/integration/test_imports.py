"""Architecture. The import contracts live in pyproject.toml ([tool.importlinter]) and run in
`make lint`; these tests show that they bite, and check what import-linter cannot see: what
the bridge really loads at run time, and that cli reaches ui only inside its handlers."""

from __future__ import annotations

import ast
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PKG = ROOT / "gui_approver"
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def imported_after(module: str) -> set[str]:
    code = (
        "import sys, json; before = set(sys.modules); import " + module + "; "
        "print(json.dumps(sorted(set(sys.modules) - before)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return set(json.loads(out.stdout))


def test_bridge_imports_only_stdlib_and_protocol():
    loaded = imported_after("gui_approver.client.bridge")
    ours = {m for m in loaded if m.startswith("gui_approver")}
    assert ours == {
        "gui_approver",
        "gui_approver.client",
        "gui_approver.client.bridge",
        "gui_approver.client.protocol",
        "gui_approver.client.records",
        "gui_approver.client.framing",
        "gui_approver.client.paths",
        "gui_approver.secret",
        "gui_approver.errors",
    }
    stdlib = set(sys.stdlib_module_names)
    third_party = {
        m
        for m in loaded
        if m.split(".")[0] not in stdlib
        and not m.startswith("gui_approver")
        and not m.startswith("_")
    }
    assert third_party == set(), third_party
    for heavy in ("cryptography", "keyring", "pyseto", "PySide6", "subprocess"):
        assert heavy not in loaded


def test_the_bridge_started_as_cargo_starts_it_skips_os_struct_and_typing():
    """Started `python -IS` (the launcher bootstrap writes), the bridge's hot path imports
    neither ``os`` (with posixpath and collections.abc) nor ``struct``, ``typing``, ``json``
    or ``re``: each is a measurable part of the start-up cargo waits for."""
    code = (
        "import sys; sys.path.insert(0, " + repr(str(ROOT)) + "); before = set(sys.modules);"
        " import gui_approver.client.bridge;"
        " print(' '.join(sorted(set(sys.modules) - before)))"
    )
    out = subprocess.run(
        [sys.executable, "-I", "-S", "-c", code], capture_output=True, text=True, check=True
    )
    loaded = set(out.stdout.split())
    assert "gui_approver.client.bridge" in loaded
    assert not loaded & {"os", "struct", "typing", "json", "re", "enum", "dataclasses"}, loaded


def test_cli_imports_ui_only_inside_handlers():
    for path in (PKG / "cli").rglob("*.py"):
        tree = ast.parse(path.read_text())
        for node in tree.body:  # module level only
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith(
                "gui_approver.ui"
            ):
                pytest.fail(f"{path.name}:{node.lineno} imports ui at module level")
            if isinstance(node, ast.Import) and any(
                a.name.startswith(("gui_approver.ui", "PySide6")) for a in node.names
            ):
                pytest.fail(f"{path.name}:{node.lineno} imports ui/Qt at module level")


def _lint_copy(tmp_path: Path) -> Path:
    """A copy of the package and its contracts, for planting a forbidden import."""
    shutil.copytree(
        PKG, tmp_path / "gui_approver", ignore=shutil.ignore_patterns("__pycache__", "icons")
    )
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


def _lint(where: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"],
        cwd=where,
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(where), "PATH": "/usr/bin:/bin"},
        timeout=120,
    )


@pytest.mark.parametrize(
    ("module", "line", "contract"),
    [
        ("client/bridge.py", "import keyring", "client (what cargo starts)"),
        ("core/audit.py", "import PySide6.QtCore", "only ui imports Qt"),
        (
            "registry/verify.py",
            "from gui_approver.core import tokens",
            "registry (the verifier) is independent of the signer",
        ),
        (
            "review/contents.py",
            "from gui_approver.core.keys import store",
            "review shows, grants nothing",
        ),
        ("ui/activity.py", "from gui_approver.registry import verify", "ui never imports"),
        ("core/settings.py", "from gui_approver.ui import guard", "layers"),
    ],
)
def test_the_contracts_fail_on_a_forbidden_import(tmp_path, module, line, contract):
    where = _lint_copy(tmp_path)
    clean = _lint(where)
    assert clean.returncode == 0, clean.stdout[-3000:] + clean.stderr[-2000:]
    target = where / "gui_approver" / module
    target.write_text(target.read_text() + f"\n{line}  # planted by the test\n")
    planted = _lint(where)
    assert planted.returncode != 0
    broken = [ln for ln in planted.stdout.splitlines() if ln.endswith(" BROKEN")]
    assert len(broken) >= 1 and any(ln.startswith(contract) for ln in broken), broken

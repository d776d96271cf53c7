"""gui-approver inspect as a process: flags a build script and a proc-macro crate."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import hostile_archives as h
import pytest


def test_inspect_flags_build_script_and_proc_macro(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = h.crate(
        "pm",
        "0.2.0",
        {"src/lib.rs": b"", "build.rs": b"fn main() {}\n"},
        build="build.rs",
        proc_macro=True,
    )
    p = tmp_path / "pm-0.2.0.crate"
    p.write_bytes(data)
    proc = subprocess.run(
        [sys.executable, "-m", "gui_approver", "inspect", str(p), "--json"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert any(f.startswith("build script: build.rs") for f in doc["flags"])
    assert any(f.startswith("proc-macro crate") for f in doc["flags"])

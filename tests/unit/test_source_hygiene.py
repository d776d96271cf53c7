"""The package's text cites nothing a reader of the repository cannot open: no issue numbers
(they live in the tracker, not in the code) and no files outside the repository."""

from __future__ import annotations

import re
from pathlib import Path

PKG = Path(__file__).resolve().parents[2] / "gui_approver"
CITES = re.compile(r"\bissue #?\d+|\(#\d+\)|\.\./shared/|\bshared/docs/")


def test_no_comment_cites_an_issue_or_a_file_outside_the_repository():
    found = [
        f"{p.relative_to(PKG)}:{n}: {line.strip()}"
        for p in sorted(PKG.rglob("*.py"))
        for n, line in enumerate(p.read_text().splitlines(), 1)
        if CITES.search(line)
    ]
    assert found == []

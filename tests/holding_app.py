"""``python tests/holding_app.py SECONDS [--auto-approve-loopback]``: ``gui-approver app
--no-gui`` (the same start-up: hardening, logging to stderr and the log file, the headless
app) with :class:`fakes.HoldThenDeny` as its approver, so a test can kill the app while a
bridge waits for a decision. The package has no switch for this: the approver is injected."""

from __future__ import annotations

import sys

from fakes import HoldThenDeny

from gui_approver.cli.main import _setup_logging
from gui_approver.core.hardening import harden_process
from gui_approver.core.headless import run_headless


def main(argv: list[str]) -> int:
    harden_process()
    _setup_logging(False, to_file=True)
    hold = HoldThenDeny(float(argv[0]))
    try:
        return run_headless(
            auto_approve_loopback="--auto-approve-loopback" in argv[1:], approver=hold
        )
    finally:
        hold.release()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

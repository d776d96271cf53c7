"""PyInstaller entry point of the ``gui-approver`` executable (the console script's twin)."""

import sys

from gui_approver.cli import main

sys.exit(main())

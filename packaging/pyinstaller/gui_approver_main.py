"""PyInstaller entry point of the ``gui-approver`` executable (the console script's twin)."""

import sys

from gui_approver.cli.main import main

sys.exit(main())

import sys

from gui_approver.cli import main

sys.exit(main())

import sys

from gui_approver.cli.main import main

sys.exit(main())

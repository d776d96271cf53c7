"""The key manager and the new-key wizard (Qt). The windows are built from ``widgets``; the
flows they run are ``gui_approver.core.keys.flows``, shared with the CLI."""

from gui_approver.ui.keys.dialogs import ConfigureCargoDialog
from gui_approver.ui.keys.widgets import CargoConfigView, format_when, short_kip
from gui_approver.ui.keys.window import COLUMNS, KeyManagerWindow, run_keys_window
from gui_approver.ui.keys.wizard import NewKeyWizard

__all__ = [
    "COLUMNS",
    "CargoConfigView",
    "ConfigureCargoDialog",
    "KeyManagerWindow",
    "NewKeyWizard",
    "format_when",
    "run_keys_window",
    "short_kip",
]

"""Everything that imports PySide6 lives in this package."""

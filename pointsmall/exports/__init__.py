"""Exports: every staff and merchant table as CSV (streamed) or XLSX, in the user's language."""

"""Cells of exported files: values a spreadsheet shows as given and never runs as formulas."""

import csv
import io
import re
from collections.abc import Iterable
from datetime import date, datetime
from decimal import Decimal

BOM = "\ufeff"  # without it Excel reads UTF-8 as the local code page and garbles Chinese
# A text cell starting with one of these is a formula to a spreadsheet (CSV injection).
# The full-width forms count too: a Chinese input method types them.
FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "\n", "＝", "＋", "－", "＠")
# XML 1.0 forbids these in an XLSX cell (openpyxl refuses them); a CSV keeps them.
CONTROL_CHARACTERS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")
KEPT = (int, Decimal, date)  # numbers and dates (datetime is a date)


def safe_cell(value):
    """Return `value` as a cell: numbers and dates stay as they are, text never starts a formula."""
    if value is None:
        return ""
    if isinstance(value, KEPT) and not isinstance(value, bool):
        return value
    text = str(value)
    return "'" + text if text.startswith(FORMULA_START) else text


def csv_value(value) -> str:
    """Return a safe cell as CSV text (times to the second, without a time zone)."""
    cell = safe_cell(value)
    if isinstance(cell, datetime):
        return cell.strftime("%Y-%m-%d %H:%M:%S")
    return cell.isoformat() if isinstance(cell, date) else str(cell)


def xlsx_value(value):
    """Return a safe cell for openpyxl: text without the control characters XML forbids."""
    cell = safe_cell(value)
    return CONTROL_CHARACTERS.sub("", cell) if isinstance(cell, str) else cell


class CsvLines:
    """Turn rows into CSV text (CRLF lines, as Excel writes them), a batch at a time."""

    def __init__(self) -> None:
        self._buffer = io.StringIO()
        self._writer = csv.writer(self._buffer, lineterminator="\r\n")

    def add(self, cells: Iterable) -> None:
        self._writer.writerow([csv_value(c) for c in cells])

    def take(self) -> str:
        """Return the text added since the last take."""
        text = self._buffer.getvalue()
        self._buffer.seek(0)
        self._buffer.truncate()
        return text


def csv_line(cells: Iterable) -> str:
    """Return one CSV line of safe cells."""
    lines = CsvLines()
    lines.add(cells)
    return lines.take()

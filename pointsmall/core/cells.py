"""Cells of exported files: values a spreadsheet shows as given and never runs as formulas.

Every file the app writes for a spreadsheet (CSV or XLSX, staff's or a merchant's) takes its
cells from `safe_cell`, which defuses the text as it is finally written: after whatever the
format has to drop (XML forbids most control characters), never before.
"""

import csv
import io
import re
import unicodedata
from collections.abc import Iterable
from datetime import date, datetime
from decimal import Decimal

BOM = "\ufeff"  # without it Excel reads UTF-8 as the local code page and garbles Chinese
# The signs that start a formula (CSV injection). A Chinese input method types the
# full-width forms, and spreadsheets read them (and the small and super/subscript forms,
# which NFKC folds into the ASCII ones) as the plain signs.
FORMULA_SIGNS = frozenset("=+-@\u2212")
# Characters that start a cell a spreadsheet may run, whatever follows (OWASP's list).
FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "\n", "＝", "＋", "－", "＠")
# What a spreadsheet may skip in front of a formula: spaces of every width, tabs, line
# breaks, control and invisible format characters (zero-width space, BOM, direction marks).
SKIPPED_CATEGORIES = frozenset({"Cc", "Cf", "Zs", "Zl", "Zp"})
# XML 1.0 forbids these in an XLSX cell (openpyxl refuses them); a CSV keeps them.
CONTROL_CHARACTERS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")
KEPT = (int, float, Decimal, date)  # numbers and dates (datetime is a date)


def could_run(text: str) -> bool:
    """Return whether a spreadsheet could read `text` as a formula (or a DDE command)."""
    if text[:1].isalnum():  # most text: a letter, a digit or a Chinese character first
        return False
    if text.startswith(FORMULA_START):
        return True
    for character in text:
        if character.isspace() or unicodedata.category(character) in SKIPPED_CATEGORIES:
            continue
        return (character in FORMULA_SIGNS
                or unicodedata.normalize("NFKC", character)[:1] in FORMULA_SIGNS)
    return False


def defuse(text: str) -> str:
    """Return `text` as a spreadsheet shows it and never runs it: behind an apostrophe."""
    return "'" + text if could_run(text) else text


def safe_cell(value, *, xml: bool = False):
    """Return `value` as a cell as finally written: numbers and dates stay as they are,
    text (without the control characters XML forbids, when `xml`) never starts a formula."""
    if value is None:
        return ""
    if isinstance(value, KEPT) and not isinstance(value, bool):
        return value
    text = str(value)
    if xml:
        text = CONTROL_CHARACTERS.sub("", text)
    return defuse(text)


def csv_value(value) -> str:
    """Return a safe cell as CSV text (times to the second, without a time zone)."""
    cell = safe_cell(value)
    if isinstance(cell, datetime):
        return cell.strftime("%Y-%m-%d %H:%M:%S")
    return cell.isoformat() if isinstance(cell, date) else str(cell)


def xlsx_value(value):
    """Return a safe cell for openpyxl: text without the control characters XML forbids."""
    return safe_cell(value, xml=True)


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

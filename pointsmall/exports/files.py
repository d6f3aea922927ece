"""Files from rows: CSV as a stream of text, XLSX written to a temporary file.

A CSV is produced as the rows arrive, so memory stays flat however many there are. An
XLSX is a zip archive whose directory comes last: it cannot be sent before it is whole,
so openpyxl's write-only mode spools the sheet to disk row by row, the archive is built in
a temporary file, and that file is sent (and deleted when the response is closed).
"""

import tempfile
from collections.abc import Iterable, Iterator
from typing import IO

import openpyxl
from openpyxl.cell import WriteOnlyCell
from openpyxl.cell.cell import ERROR_CODES
from openpyxl.utils import get_column_letter

from pointsmall.core.cells import BOM, CsvLines, xlsx_value

ROWS_PER_CHUNK = 1000
SHEET_TITLE_FORBIDDEN = str.maketrans({c: " " for c in "[]:*?/\\"})


def csv_stream(headers: list[str], rows: Iterable[Iterable]) -> Iterator[str]:
    """Yield a CSV with a BOM (Excel then reads UTF-8 Chinese), a chunk of rows at a time."""
    lines = CsvLines()
    lines.add(headers)
    yield BOM + lines.take()
    for count, row in enumerate(rows, 1):
        lines.add(row)
        if count % ROWS_PER_CHUNK == 0:
            yield lines.take()
    yield lines.take()


def xlsx_cell(sheet, value):
    """Return a safe cell for `sheet`: text is always a string cell, numbers and dates are
    themselves.

    openpyxl types text as a string unless it starts with "=" (a formula; `safe_cell`
    never leaves one) or is an error code ("#N/A"): those are given as cells typed "s" by
    hand. Every other text goes in as it is, typed "s" by openpyxl's reused cell: a cell
    object of our own for each would make a large export half as slow again.
    """
    value = xlsx_value(value)
    if not isinstance(value, str) or not (value in ERROR_CODES or value.startswith("=")):
        return value
    cell = WriteOnlyCell(sheet, value)
    cell.data_type = "s"
    return cell


def xlsx_file(title: str, headers: list[str], rows: Iterable[Iterable]) -> IO[bytes]:
    """Write the rows to a temporary XLSX file and return it, open at its start."""
    workbook = openpyxl.Workbook(write_only=True)
    sheet = workbook.create_sheet(title.translate(SHEET_TITLE_FORBIDDEN)[:31] or "Sheet1")
    for number, header in enumerate(headers, 1):
        sheet.column_dimensions[get_column_letter(number)].width = max(10, 2 * len(header) + 4)
    sheet.freeze_panes = "A2"
    sheet.append([xlsx_cell(sheet, h) for h in headers])
    for row in rows:
        sheet.append([xlsx_cell(sheet, cell) for cell in row])
    # Handed to the response, which closes (and so deletes) it once it is sent.
    out = tempfile.TemporaryFile(suffix=".xlsx")  # noqa: SIM115
    try:
        workbook.save(out)
    except BaseException:
        out.close()
        raise
    out.seek(0)
    return out

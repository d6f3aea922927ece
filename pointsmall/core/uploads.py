"""Uploaded spreadsheets (CSV or XLSX), read within bounds: a file that claims or holds more
than a sheet of the page's size is refused before it costs the worker memory or time.

An XLSX is a zip of XML parts that openpyxl parses, some whole (a tree in memory), the
sheet row by row. So before openpyxl opens it: the zip may unzip to at most `unzipped`
bytes (zipfile stops a member at its declared size, so a lying header fails its checksum),
deflated or stored only. Then every part is read twice as a stream, in constant memory:
its "<" and "=" counted at C speed against `nodes` (what a tree of it would cost; far fewer
for the parts always parsed whole), then parsed by expat and refused at the first row past
`lines`, cell past `columns`, row with more cells, declared dimension beyond either, or
DTD. Then openpyxl reads the sheet in read-only mode, without trusting the declared
dimension (which would pad every row to its width). A deadline bounds the whole read.
"""

import csv
import io
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from xml.parsers import expat

import openpyxl
from flask_babel import gettext as _
from openpyxl.utils.cell import range_boundaries

MAX_COLUMNS = 256  # the old Excel's limit (IV): a real sign-in or volunteer sheet has a few
MAX_UNZIPPED = 32 * 1024 * 1024
MAX_MEMBERS = 1_000
# Every "<" opens or closes an element and every "=" gives an attribute its value, so their
# count bounds the nodes of an XML part; a tree costs up to about 100 bytes a node, so a part
# of 800,000 marks is at most some 80 MB whole. A sheet of 10,000 rows of 8 cells as Excel
# writes them has about 500,000.
MAX_NODES = 800_000
# Under gunicorn's 30 s, so that a slow file gets the page's answer, not a killed worker; a
# sheet of 10,000 rows of 8 columns took 11 s on a machine busy at a load of 14 (2 cores).
SECONDS = 20.0
# Parts that openpyxl always parses whole, by these names: a real one is a few thousand
# nodes, so they get a tenth of a sheet's allowance (a styles part at the full one takes
# as long to parse as a sheet of 10,000 rows).
TREE_PARTS = frozenset({"[Content_Types].xml", "_rels/.rels", "xl/workbook.xml",
                        "xl/_rels/workbook.xml.rels", "xl/styles.xml", "docProps/core.xml",
                        "docProps/app.xml", "docProps/custom.xml"})
TREE_PART_NODES = 80_000
CHUNK = 64 * 1024
ZIP_METHODS = (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED)  # what Excel writes; LZMA can ask
# for a dictionary of gigabytes


class SheetRefused(Exception):
    """The upload cannot be read within bounds; `reason` says why, for the page to word.

    unreadable, not_text (a CSV in no known encoding), too_large, too_many_rows,
    too_many_columns, too_slow.
    """

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Bounds:
    """How much of an upload may be read: `lines` is the last line a sheet may use."""

    lines: int
    columns: int = MAX_COLUMNS
    unzipped: int = MAX_UNZIPPED
    nodes: int = MAX_NODES
    seconds: float = SECONDS


class Deadline:
    def __init__(self, seconds: float) -> None:
        self.end = time.monotonic() + seconds

    def check(self) -> None:
        if time.monotonic() > self.end:
            raise SheetRefused("too_slow")


def refusal_message(reason: str) -> str:
    """Return the words for a refusal that every upload page words alike."""
    if reason == "too_many_columns":
        return _("The file has more than %(n)d columns. Please keep only the columns the "
                 "page asks for.", n=MAX_COLUMNS)
    if reason == "too_large":
        return _("The file is too large once unpacked. Please save only the sheet that is "
                 "needed, as XLSX or CSV, and upload it again.")
    if reason == "too_slow":
        return _("The file takes too long to read. Please save it as CSV and upload it again.")
    return _("This is not a readable CSV file.")


def is_xlsx(filename: str, data: bytes) -> bool:
    """Return whether an upload is an XLSX (a zip) rather than a CSV."""
    return data.startswith(b"PK\x03\x04") or filename.lower().endswith(".xlsx")


def sheet_lines(filename: str, data: bytes, bounds: Bounds) -> Iterator[tuple[int, list]]:
    """Yield (line as the spreadsheet numbers it, cells) for each row of a CSV or of an
    XLSX's first sheet, or raise SheetRefused as soon as the file proves too much."""
    deadline = Deadline(bounds.seconds)
    if is_xlsx(filename, data):
        return _xlsx_lines(data, bounds, deadline)
    return _csv_lines(data, bounds, deadline)


def decode_text(data: bytes) -> str:
    """Return the text of a CSV saved as UTF-8 (with or without BOM) or GBK."""
    for encoding in ("utf-8-sig", "gb18030"):
        try:
            text = data.decode(encoding)
        except UnicodeDecodeError:
            continue
        if "\x00" not in text:  # UTF-16 and binary files decode to text full of NULs
            return text
    raise SheetRefused("not_text")


def _csv_lines(data: bytes, bounds: Bounds, deadline: Deadline) -> Iterator[tuple[int, list]]:
    reader = csv.reader(io.StringIO(decode_text(data), newline=""))
    try:
        for line, cells in enumerate(reader, 1):
            if line > bounds.lines:
                raise SheetRefused("too_many_rows")
            if len(cells) > bounds.columns:
                raise SheetRefused("too_many_columns")
            deadline.check()
            yield line, cells
    except csv.Error:  # a field over the csv module's size limit, a stray quote
        raise SheetRefused("unreadable") from None


def _xlsx_lines(data: bytes, bounds: Bounds, deadline: Deadline) -> Iterator[tuple[int, list]]:
    check_xlsx(data, bounds, deadline)
    try:
        book = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except Exception:  # openpyxl raises many kinds for a broken file
        raise SheetRefused("unreadable") from None
    try:
        sheet = book.worksheets[0]
        sheet.reset_dimensions()  # rows as wide as their cells, not as the dimension claims
        for line, cells in enumerate(sheet.iter_rows(values_only=True), 1):
            if line > bounds.lines:
                raise SheetRefused("too_many_rows")
            deadline.check()
            yield line, list(cells)
    except SheetRefused:
        raise
    except Exception:  # as above: read-only sheets are parsed while iterated
        raise SheetRefused("unreadable") from None
    finally:
        book.close()


def check_xlsx(data: bytes, bounds: Bounds, deadline: Deadline) -> None:
    """Refuse an XLSX that unzips, or whose XML parts grow, beyond `bounds`."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, OSError, ValueError, EOFError):
        raise SheetRefused("unreadable") from None
    with archive:
        members = archive.infolist()
        if len(members) > MAX_MEMBERS or sum(m.file_size for m in members) > bounds.unzipped:
            raise SheetRefused("too_large")
        if any(m.compress_type not in ZIP_METHODS for m in members):
            raise SheetRefused("unreadable")
        try:
            # First the marks, at C speed, so that a flood of nodes is refused before the
            # stream parser spends a Python call on each of them.
            for member in members:
                _count_marks(archive, member, bounds, deadline)
            for member in members:
                _scan_part(archive, member, bounds, deadline)
        except (zipfile.BadZipFile, OSError, EOFError, RuntimeError, ValueError):
            raise SheetRefused("unreadable") from None  # a bad checksum, encryption


def _count_marks(archive: zipfile.ZipFile, member: zipfile.ZipInfo, bounds: Bounds,
                 deadline: Deadline) -> None:
    marks = 0
    allowed = min(bounds.nodes, TREE_PART_NODES) if member.filename in TREE_PARTS else (
        bounds.nodes)
    with archive.open(member) as part:
        while chunk := part.read(CHUNK):
            deadline.check()
            marks += chunk.count(b"<") + chunk.count(b"=")
            if marks > allowed:
                raise SheetRefused("too_large")


def _scan_part(archive: zipfile.ZipFile, member: zipfile.ZipInfo, bounds: Bounds,
               deadline: Deadline) -> None:
    scan = _PartScan(bounds)
    parser = expat.ParserCreate()  # names as written ("c", "x:c"): faster than resolved
    parser.StartElementHandler = scan.start
    parser.StartDoctypeDeclHandler = scan.doctype
    with archive.open(member) as part:
        try:
            while chunk := part.read(CHUNK):
                deadline.check()
                parser.Parse(chunk, False)
            parser.Parse(b"", True)
        except expat.ExpatError:
            return  # not XML (a picture), or broken: openpyxl refuses it if it reads it


class _PartScan:
    """Follow a sheet's rows and cells; raise SheetRefused at the first one out of bounds."""

    def __init__(self, bounds: Bounds) -> None:
        self.bounds = bounds
        self.rows = self.cells = 0

    def doctype(self, *_args) -> None:
        raise SheetRefused("unreadable")  # an XLSX part has none; a DTD can expand entities

    def start(self, name: str, attributes: dict) -> None:
        tag = name.rpartition(":")[2]
        if tag == "row":
            self.rows, self.cells = self.rows + 1, 0
            self._within(self.rows, 1)
            if "r" in attributes:
                self._within(_number(attributes["r"]), 1)
        elif tag == "c":
            self.cells += 1
            self._within(1, self.cells)
            if "r" in attributes:
                self._within_range(attributes["r"])
        elif tag == "dimension" and "ref" in attributes:
            self._within_range(attributes["ref"])

    def _within_range(self, ref: str) -> None:
        try:
            _min_col, _min_row, max_col, max_row = range_boundaries(ref.replace("$", ""))
        except (ValueError, TypeError):
            raise SheetRefused("unreadable") from None
        self._within(max_row, max_col)

    def _within(self, row: int | None, column: int | None) -> None:
        if row is not None and row > self.bounds.lines:
            raise SheetRefused("too_many_rows")
        if column is not None and column > self.bounds.columns:
            raise SheetRefused("too_many_columns")


def _number(text: str) -> int:
    if not text.isdigit() or len(text) > 9:
        raise SheetRefused("too_many_rows" if text.isdigit() else "unreadable")
    return int(text)


"""Spreadsheet bombs: small uploads that claim or unpack into far more than a sheet holds.

Used by tests/exports/test_upload_bombs.py and benchmarks/upload_bombs.py. Each builder returns
(file name, bytes); every XLSX has the volunteer import's header, which holds the sign-in
sheet's phone column too.
"""

import io
import struct
import zipfile

import openpyxl

HEADER = ["姓名", "手机号", "微网格", "加入日期", "是否上榜"]
MAIN = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
SHEET = "xl/worksheets/sheet1.xml"
MB = 1024 * 1024


def _cell(ref: str, text: str) -> str:
    return f'<c r="{ref}" t="inlineStr"><is><t>{text}</t></is></c>'


def _header_row() -> str:
    return '<row r="1">' + "".join(_cell(f"{'ABCDE'[n]}1", h) for n, h in enumerate(HEADER)) \
        + "</row>"


def _xlsx(parts: dict[str, object]) -> bytes:
    """An XLSX as openpyxl writes it, with `parts` replaced: bytes, or a function that
    writes the part to an open member (so that a huge part is never whole in memory)."""
    book = openpyxl.Workbook()
    book.active.append(HEADER)
    plain = io.BytesIO()
    book.save(plain)
    out = io.BytesIO()
    with zipfile.ZipFile(plain) as source, \
            zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as target:
        for name in source.namelist():
            if name not in parts:
                target.writestr(name, source.read(name))
        for name, part in parts.items():
            if callable(part):
                with target.open(name, "w") as member:
                    part(member)
            else:
                target.writestr(name, part)
    return out.getvalue()


def _sheet(rows_xml: str, dimension: str = "A1:E1") -> bytes:
    return (f'<worksheet xmlns="{MAIN}"><dimension ref="{dimension}"/><sheetData>'
            f"{_header_row()}{rows_xml}</sheetData></worksheet>").encode()


def dimension_bomb() -> tuple[str, bytes]:
    """A few kilobytes that claim A1:XFD1048576, with one row at the sheet's last line."""
    last = f'<row r="1048576">{_cell("A1048576", "x")}</row>'
    return "dimension.xlsx", _xlsx({SHEET: _sheet(last, "A1:XFD1048576")})


def far_column_bomb() -> tuple[str, bytes]:
    """A cell in the sheet's last column (XFD), with no dimension to tell."""
    sheet = _sheet(f'<row r="2">{_cell("XFD2", "x")}</row>').replace(
        b'<dimension ref="A1:E1"/>', b"")
    return "far-column.xlsx", _xlsx({SHEET: sheet})


def many_columns_bomb(cells: int = 20_000) -> tuple[str, bytes]:
    """A row of `cells` cells with no references: only counting tells how wide it is."""
    return "wide.xlsx", _xlsx({SHEET: _sheet('<row r="2">' + "<c><v>1</v></c>" * cells
                                             + "</row>")})


def zip_bomb(megabytes: int = 110) -> tuple[str, bytes]:
    """A sheet whose XML unzips to `megabytes` MB (blanks between the rows)."""
    def write(member) -> None:
        head, tail = _sheet("").split(b"</sheetData>")
        member.write(head)
        blanks = b" " * MB
        for _ in range(megabytes):
            member.write(blanks)
        member.write(b"</sheetData>" + tail)
    return "zip-bomb.xlsx", _xlsx({SHEET: write})


def lying_zip_bomb(megabytes: int = 110) -> tuple[str, bytes]:
    """The zip bomb with its sheet's size in the zip's directory rewritten to 1 KB."""
    _name, data = zip_bomb(megabytes)
    patched = bytearray(data)
    # zipfile reads a member's size from the central directory (and stops there).
    struct.pack_into("<I", patched, _central(patched, SHEET) + 24, 1024)
    return "lying.xlsx", bytes(patched)


def _central(data: bytearray, name: str) -> int:
    position = data.find(b"PK\x01\x02")
    while position >= 0:
        length = struct.unpack_from("<H", data, position + 28)[0]
        if data[position + 46:position + 46 + length] == name.encode():
            return position
        position = data.find(b"PK\x01\x02", position + 4)
    raise LookupError(name)


def node_bomb(elements: int = 1_000_000, part: str = "xl/styles.xml") -> tuple[str, bytes]:
    """A styles part (or `part`) of a million empty elements: 4 MB of XML, a tree of
    hundreds of megabytes."""
    root = "worksheet" if part == SHEET else "styleSheet"
    xml = f'<{root} xmlns="{MAIN}">'.encode() + b"<a/>" * elements + f"</{root}>".encode()
    return "nodes.xlsx", _xlsx({part: xml})


def many_parts_bomb(parts: int = 5_000) -> tuple[str, bytes]:
    """A workbook with thousands of empty extra parts, each a directory entry to parse."""
    return "parts.xlsx", _xlsx({f"xl/extra/{n}.xml": b"" for n in range(parts)})


def csv_blank_lines(lines: int = 1_000_000) -> tuple[str, bytes]:
    """A CSV of the header and a million empty lines."""
    return "blank.csv", (",".join(HEADER) + "\r\n" + "\r\n" * lines).encode("utf-8-sig")


def csv_wide(commas: int = 1_000_000) -> tuple[str, bytes]:
    """A CSV whose second line has a million empty fields."""
    return "wide.csv", (",".join(HEADER) + "\r\n" + "," * commas + "\r\n").encode("utf-8-sig")


# name: (builder, why it is refused)
BOMBS = {
    "dimension": (dimension_bomb, "too_many_rows"),
    "far column": (far_column_bomb, "too_many_columns"),
    "many columns": (many_columns_bomb, "too_many_columns"),
    "zip bomb": (zip_bomb, "too_large"),
    "lying zip bomb": (lying_zip_bomb, "unreadable"),
    "node bomb": (node_bomb, "too_large"),
    "styles flood": (lambda: node_bomb(100_000), "too_large"),  # within a sheet's allowance
    "many parts": (many_parts_bomb, "too_large"),
    "csv blank lines": (csv_blank_lines, "too_many_rows"),
    "csv wide": (csv_wide, "too_many_columns"),
}

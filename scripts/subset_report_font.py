"""Cut the report PDF's Chinese font down to what Simplified Chinese reports use.

From Debian's fonts-noto-cjk (NotoSansCJK-Regular.ttc, face 2: Noto Sans CJK SC), keep
ASCII, Latin-1, general punctuation, arrows, maths, shapes and signs, CJK punctuation,
full-width forms and every character of GB2312 (its symbols and the 6,763 hanzi of
levels 1 and 2):

    .venv/bin/python scripts/subset_report_font.py \
        /usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc \
        pointsmall/static/vendor/fonts/NotoSansSC-Report.otf
"""

import contextlib
import sys

from fontTools import subset
from fontTools.ttLib import TTFont

SC_FACE = 2  # JP, KR, SC, TC, HK in the collection


def gb2312() -> set[int]:
    """Every character GB2312 encodes (rows 1-9 symbols, rows 16-87 hanzi)."""
    found = set()
    for row in range(0xA1, 0xF8):
        for cell in range(0xA1, 0xFF):
            with contextlib.suppress(UnicodeDecodeError):  # unassigned cells
                found.add(ord(bytes((row, cell)).decode("gb2312")))
    return found


def wanted() -> set[int]:
    ranges = [(0x20, 0x7E), (0xA0, 0xFF), (0x2010, 0x206F), (0x2190, 0x21FF),  # arrows
              (0x2200, 0x22FF), (0x25A0, 0x25FF), (0x2600, 0x27BF),  # maths, shapes, signs
              (0x3000, 0x303F), (0xFF00, 0xFFEF)]
    return gb2312() | {c for low, high in ranges for c in range(low, high + 1)} | {0xFFFD}


def main(source: str, target: str) -> None:
    font = TTFont(source, fontNumber=SC_FACE, recalcTimestamp=False)  # the same bytes each run
    options = subset.Options()
    options.layout_features = []  # fpdf2 shapes nothing here: no OpenType layout needed
    options.name_IDs = ["*"]
    options.notdef_outline = True
    options.hinting = False
    options.desubroutinize = False
    options.drop_tables += ["VORG", "vhea", "vmtx", "BASE"]  # horizontal text only
    subsetter = subset.Subsetter(options)
    subsetter.populate(unicodes=wanted())
    subsetter.subset(font)
    font.save(target)


if __name__ == "__main__":
    main(*sys.argv[1:3])

"""The monthly report as an A4 PDF (fpdf2), in the page's language, with a vendored CJK font.

The font is Noto Sans CJK SC cut down to GB2312 and punctuation (static/vendor/fonts, see
its README): it needs nothing installed on the machine. A character it lacks (a rare hanzi
in a name, an emoji) prints as a placeholder rather than failing the PDF.
"""

from collections.abc import Sequence
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

from flask_babel import gettext as _
from fontTools.ttLib import TTFont
from fpdf import FPDF
from fpdf.fonts import FontFace

from pointsmall.core.labels import CATEGORY_LABELS, TIER_LABELS

if TYPE_CHECKING:  # monthly imports this module (lazily, for fpdf2's memory): no cycle
    from pointsmall.reports.monthly import MonthlyReport

FONT = Path(__file__).resolve().parent.parent / "static" / "vendor" / "fonts" / \
    "NotoSansSC-Report.otf"
PLACEHOLDER = "□"
GREY = (235, 235, 235)


@cache
def _covered() -> frozenset[int]:
    """The characters the vendored font can draw."""
    return frozenset(TTFont(FONT, lazy=True)["cmap"].getBestCmap())


def printable(text: object) -> str:
    """Return `text` with every character the font lacks replaced by a placeholder."""
    covered = _covered()
    return "".join(c if ord(c) in covered or c in "\n\t" else PLACEHOLDER for c in str(text))


def _n(value: int) -> str:
    return f"{value:,}"


class ReportPDF(FPDF):
    def __init__(self, title: str, footer: str):
        super().__init__(orientation="portrait", unit="mm", format="A4")
        self.report_title, self.report_footer = title, footer
        self.set_margins(15, 15, 15)
        self.set_auto_page_break(True, margin=18)
        self.add_font("report", fname=str(FONT))
        self.set_font("report", size=10)
        self.set_title(title)
        self.set_creator("Points Mall")

    def footer(self):
        self.set_y(-12)
        self.set_font("report", size=8)
        self.cell(0, 5, printable(f"{self.report_footer} · {self.page_no()}/{{nb}}"),
                  align="C")

    def heading(self, text: str) -> None:
        if self.will_page_break(22):
            self.add_page()
        self.ln(3)
        self.set_font("report", size=12.5)
        self.cell(0, 7, printable(text), new_x="LMARGIN", new_y="NEXT")
        self.set_font("report", size=10)

    def line_of_text(self, text: str, size: float = 10) -> None:
        self.set_font("report", size=size)
        self.multi_cell(0, 5.2, printable(text), new_x="LMARGIN", new_y="NEXT")
        self.set_font("report", size=10)

    def figures(self, headings: Sequence[str] | None, rows: Sequence[Sequence[object]],
                widths: Sequence[float], *, text_columns: int = 1) -> None:
        """A table of text columns, then numbers; rows never split."""
        align = (*("LEFT",) * text_columns, *("RIGHT",) * (len(widths) - text_columns))
        self.set_fill_color(255)
        with self.table(col_widths=tuple(widths), width=sum(widths), align="LEFT",
                        text_align=align, line_height=6.2, padding=(0.6, 1.5),
                        borders_layout="HORIZONTAL_LINES", cell_fill_mode="NONE",
                        first_row_as_headings=headings is not None,
                        headings_style=FontFace(emphasis="NONE", fill_color=GREY)) as table:
            for row in ([headings] if headings is not None else []) + list(rows):
                cells = table.row()
                for value in row:
                    cells.cell(printable(_n(value) if isinstance(value, int) else value))
        self.ln(2)


def render_pdf(report: "MonthlyReport") -> bytes:
    """Lay the report out on A4 pages and return the PDF's bytes."""
    month = f"{report.month:%Y-%m}"
    # Labels are looked up outside f-strings, where pybabel finds them.
    heading = " · ".join((_("Monthly report"), report.community.name))
    title = " · ".join((heading, month))
    pdf = ReportPDF(title, title)
    pdf.add_page()
    pdf.set_font("report", size=16)
    pdf.multi_cell(0, 8, printable(heading), new_x="LMARGIN", new_y="NEXT")
    pdf.line_of_text(": ".join((_("Month"), month)), size=11)
    pdf.line_of_text(_("Generated at %(time)s (local time)",
                       time=report.generated_at.strftime("%Y-%m-%d %H:%M")), size=9)

    m, y = report.this_month, report.year_to_date
    pdf.heading(_("Points"))
    rows = [(_("Outstanding at the start"), m.opening, y.opening),
            (_("Issued"), m.issued, y.issued), (_("Redeemed"), m.redeemed, y.redeemed),
            (_("Expired"), m.expired, y.expired)]
    if m.other or y.other:
        rows.append((_("Other movements"), m.other, y.other))
    rows.append((_("Outstanding at the end"), m.closing, y.closing))
    pdf.figures(("", _("This month"), _("Year to date")), rows, (80, 45, 45))
    terms = [(_("Issued"), m.issued), ("− " + _("Redeemed"), m.redeemed),
             ("− " + _("Expired"), m.expired)]
    if m.other:
        terms.append(("+ " + _("Other movements"), m.other))
    terms.append(("= " + _("Change in outstanding"), m.change))
    pdf.line_of_text(" ".join(f"{label} {_n(value)}" for label, value in terms)
                     + f" ({_n(m.opening)} → {_n(m.closing)})")
    c = report.reconciled
    if c.ok:
        pdf.line_of_text("✓ " + _("Ledger check now: outstanding %(outstanding)s equals what "
                                  "the volunteers' accounts hold (%(held)s).",
                                  outstanding=_n(c.outstanding), held=_n(c.held)))
    else:
        pdf.set_text_color(180, 0, 0)
        pdf.line_of_text("⚠ " + _("Ledger check now: outstanding %(outstanding)s, but the "
                                  "volunteers' accounts hold %(held)s. The figures do not "
                                  "reconcile: run the ledger verification.",
                                  outstanding=_n(c.outstanding), held=_n(c.held)))
        pdf.set_text_color(0, 0, 0)
    pdf.ln(2)
    _history_chart(pdf, report)
    pdf.figures((_("Month"), _("Issued"), _("Redeemed"), _("Expired"), _("Outstanding")),
                [(f"{p.month:%Y-%m}", p.issued, p.redeemed, p.expired, p.outstanding)
                 for p in report.history], (30, 35, 35, 35, 35))

    v, a = report.volunteers, report.activities
    pdf.heading(_("Volunteers"))
    pdf.figures(None, [(_("Active volunteers now"), v.total),
                       (_("Joined in the month"), v.joined),
                       (_("Awarded points in the 30 days to the month's end"), v.active_30),
                       (_("Awarded points in the 90 days to the month's end"), v.active_90)],
                (130, 40))
    pdf.heading(_("Activities"))
    pdf.figures(None, [(_("Activities held"), a.held),
                       (_("Attendance (marked present)"), a.attended)], (130, 40))

    pdf.heading(_("Redemptions handed over in the month"))
    none = [(_("None in this month."), "", "")]
    pdf.figures((_("Merchant"), _("Redemptions"), _("Points")),
                [(s.label, s.count, s.points) for s in report.by_merchant] or none,
                (100, 35, 35))
    pdf.figures((_("Category"), _("Redemptions"), _("Points")),
                [(str(CATEGORY_LABELS.get(s.key, s.key)), s.count, s.points)
                 for s in report.by_category] or none, (100, 35, 35))

    pdf.heading(_("Tiers now"))
    pdf.figures((_("Tier"), _("Volunteers")),
                [(str(TIER_LABELS[t]) if t else _("No tier"), count)
                 for t, count in report.tiers.counts.items()], (100, 35))
    pdf.figures((_("Rank"), _("Volunteer"), _("Contribution")),
                [(str(t.rank), t.name, t.merit) for t in report.tiers.top]
                or [("", _("No contribution in the tier window yet."), "")], (20, 100, 40),
                text_columns=2)
    pdf.line_of_text(_("Top 10 by contribution in the tier window; names of volunteers who "
                       "chose not to appear are masked."), size=8.5)

    w = report.waiting
    pdf.heading(_("Waiting now"))
    pdf.figures(("", _("How many"), _("Points")),
                [(_("Award batches waiting for approval"), w.batches, w.batch_points),
                 (_("Redemptions reserved, not yet collected"), w.reserved,
                  w.reserved_points)], (110, 30, 30))
    return bytes(pdf.output())


def _history_chart(pdf: ReportPDF, report: "MonthlyReport") -> None:
    """Bars of the last twelve months: issued, redeemed, expired side by side, in greys."""
    rows, height, width = report.history, 32.0, 170.0
    top = max([1, *(max(r.issued, r.redeemed, r.expired) for r in rows)])
    if pdf.will_page_break(height + 12):
        pdf.add_page()
    x0, y0 = pdf.l_margin, pdf.get_y() + 2
    group = width / len(rows)
    bar = group * 0.8 / 3
    pdf.set_draw_color(150, 150, 150)
    pdf.line(x0, y0 + height, x0 + width, y0 + height)
    shades = (0, 110, 190)
    for i, r in enumerate(rows):
        for j, value in enumerate((r.issued, r.redeemed, r.expired)):
            h = height * max(value, 0) / top
            if h > 0:
                pdf.set_fill_color(shades[j])
                pdf.rect(x0 + i * group + group * 0.1 + j * bar, y0 + height - h, bar, h,
                         style="F")
        pdf.set_xy(x0 + i * group, y0 + height + 0.5)
        pdf.set_font("report", size=7)
        pdf.cell(group, 4, f"{r.month:%y-%m}", align="C")
    x, y = x0, y0 + height + 5
    pdf.set_font("report", size=7.5)
    for shade, name in zip(shades, (_("Issued"), _("Redeemed"), _("Expired")), strict=True):
        pdf.set_fill_color(shade)
        pdf.rect(x, y + 1, 3, 3, style="F")
        label = printable(name)
        pdf.set_xy(x + 4, y)
        pdf.cell(pdf.get_string_width(label) + 4, 5, label)
        x = pdf.get_x() + 2
    pdf.cell(0, 5, printable(": ".join((_("Largest"), _n(top)))))
    pdf.set_font("report", size=10)
    pdf.set_draw_color(0, 0, 0)
    pdf.set_xy(x0, y + 7)

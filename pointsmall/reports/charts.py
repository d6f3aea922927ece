"""Charts drawn on the server as SVG: no script, no library, readable on a phone.

Each chart scales to the width of its box (a viewBox, no fixed size), names itself for
screen readers, and gives every bar a <title> with its number; pages put the same numbers
in a table one tap away.
"""

from collections.abc import Sequence
from dataclasses import dataclass

from markupsafe import Markup, escape

WIDTH, HEIGHT = 360, 200
LEFT, RIGHT, TOP, BOTTOM = 44, 8, 22, 28


@dataclass(frozen=True)
class Series:
    """A named row of numbers, drawn in the colour of its CSS class."""

    name: str
    values: Sequence[int]
    css: str


def nice_ceiling(value: int) -> int:
    """Return the smallest 1, 2 or 5 times a power of ten that is at least `value`."""
    if value <= 0:
        return 0
    step = 1
    while True:
        for factor in (1, 2, 5):
            if step * factor >= value:
                return step * factor
        step *= 10


def short(value: int) -> str:
    """Write a number in at most five characters: 1234 -> 1.2k, 3500000 -> 3.5M."""
    sign, value = ("-" if value < 0 else ""), abs(value)
    for limit, suffix in ((1_000_000_000, "G"), (1_000_000, "M"), (1_000, "k")):
        if value >= limit:
            shown = f"{value / limit:.1f}".removesuffix(".0")
            return f"{sign}{shown}{suffix}"
    return f"{sign}{value}"


def bars(title: str, labels: Sequence[str], series: Sequence[Series], *,
         line: Series | None = None) -> Markup:
    """Grouped vertical bars, one group per label, and optionally a line across them."""
    values = [v for s in series for v in s.values] + (list(line.values) if line else [])
    top = nice_ceiling(max([0, *values]))
    bottom = -nice_ceiling(-min([0, *values]))
    span = (top - bottom) or 1
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def y(value: int) -> float:
        return TOP + plot_h * (top - value) / span

    parts = [_open(title)]
    for tick in sorted({top, 0, bottom}):
        parts.append(f'<line class="grid" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y(tick):.1f}" '
                     f'y2="{y(tick):.1f}"/>'
                     f'<text class="tick" x="{LEFT - 4}" y="{y(tick) + 4:.1f}" '
                     f'text-anchor="end">{short(tick)}</text>')
    groups = max(1, len(labels))
    group_w = plot_w / groups
    bar_w = group_w * 0.8 / max(1, len(series))
    for i, label in enumerate(labels):
        x0 = LEFT + i * group_w + group_w * 0.1
        for j, s in enumerate(series):
            value = s.values[i]
            y_top, y_bottom = sorted((y(value), y(0)))
            parts.append(
                f'<rect class="{escape(s.css)}" x="{x0 + j * bar_w:.1f}" y="{y_top:.1f}" '
                f'width="{max(bar_w - 1, 1):.1f}" height="{max(y_bottom - y_top, 0.5):.1f}">'
                f'<title>{escape(label)} {escape(s.name)}: {value:,}</title></rect>')
        if groups <= 12 or i % 2 == 0:
            parts.append(f'<text class="label" x="{LEFT + (i + 0.5) * group_w:.1f}" '
                         f'y="{HEIGHT - BOTTOM + 14}" text-anchor="middle">{escape(label)}'
                         f'</text>')
    if line is not None and line.values:
        points = " ".join(f"{LEFT + (i + 0.5) * group_w:.1f},{y(v):.1f}"
                          for i, v in enumerate(line.values))
        parts.append(f'<polyline class="{escape(line.css)}" points="{points}"><title>'
                     f'{escape(line.name)}</title></polyline>')
    parts.append(_legend([*series, *([line] if line else [])]))
    parts.append("</svg>")
    return Markup("".join(parts))


def hbars(title: str, labels: Sequence[str], series: Sequence[Series]) -> Markup:
    """Horizontal bars, one row per label (breakdowns, communities side by side)."""
    rows = max(1, len(labels))
    row_h = 12 * max(1, len(series)) + 8
    height = TOP + rows * row_h + 8
    label_w = 96
    plot_w = WIDTH - label_w - RIGHT - 36
    top = nice_ceiling(max([0, *(v for s in series for v in s.values)])) or 1
    parts = [_open(title, height)]
    for i, label in enumerate(labels):
        y0 = TOP + i * row_h
        parts.append(f'<text class="label" x="{label_w - 4}" y="{y0 + row_h / 2 + 2:.1f}" '
                     f'text-anchor="end">{escape(_clip(label))}</text>')
        for j, s in enumerate(series):
            value = max(0, s.values[i])
            w = plot_w * value / top
            y = y0 + 4 + j * 12
            parts.append(
                f'<rect class="{escape(s.css)}" x="{label_w}" y="{y}" width="{max(w, 0.5):.1f}" '
                f'height="10"><title>{escape(label)} {escape(s.name)}: {s.values[i]:,}</title>'
                f'</rect><text class="tick" x="{label_w + w + 3:.1f}" y="{y + 9}">'
                f'{short(s.values[i])}</text>')
    parts.append(_legend(series))
    parts.append("</svg>")
    return Markup("".join(parts))


def _open(title: str, height: int = HEIGHT) -> str:
    return (f'<svg class="chart" viewBox="0 0 {WIDTH} {height}" role="img" '
            f'aria-label="{escape(title)}" xmlns="http://www.w3.org/2000/svg">'
            f'<title>{escape(title)}</title>')


def _legend(series: Sequence[Series]) -> str:
    parts, x = [], LEFT
    for s in series:
        parts.append(f'<rect class="{escape(s.css)}" x="{x}" y="6" width="10" height="10"/>'
                     f'<text class="legend" x="{x + 13}" y="15">{escape(s.name)}</text>')
        x += 20 + 12 * len(s.name) if not s.name.isascii() else 20 + 7 * len(s.name)
    return "".join(parts)


def _clip(label: str, limit: int = 8) -> str:
    return label if len(label) <= limit else label[:limit - 1] + "…"

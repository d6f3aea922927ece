"""CSV files for staff: the community's volunteers, streamed, and the blank import template."""

import csv
import io
from collections.abc import Iterable, Iterator

import sqlalchemy as sa
import sqlalchemy.orm as so

from pointsmall import communities
from pointsmall.auth.models import User
from pointsmall.volunteers.importer import COLUMNS
from pointsmall.volunteers.models import Volunteer

BOM = "\ufeff"  # without it Excel reads UTF-8 as the local code page and garbles Chinese
STATUS_HEADER = {"zh": "状态", "en": "status"}
YES_NO = {"zh": ("是", "否"), "en": ("yes", "no")}
# A cell starting with one of these is a formula to a spreadsheet (CSV injection).
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
BATCH = 500


def safe_cell(value) -> str:
    """Return the cell as text that a spreadsheet shows and never runs as a formula."""
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(FORMULA_START) else text


def csv_line(cells: Iterable) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\r\n").writerow([safe_cell(c) for c in cells])
    return buffer.getvalue()


def headers(language: str) -> list[str]:
    """Return the import columns' headers in Chinese ("zh") or English ("en")."""
    return [zh if language == "zh" else en for _field, zh, en, _required in COLUMNS]


def template_csv() -> bytes:
    """Return the blank import file: UTF-8 with BOM and the Chinese headers."""
    return (BOM + csv_line(headers("zh"))).encode("utf-8")


def volunteer_lines(session: so.Session, community_id: int, query: sa.Select, language: str,
                    status_labels: dict[str, str]) -> Iterator[str]:
    """Yield the CSV of the volunteers `query` finds, a batch of rows at a time."""
    paths = {grid.id: grid.path for grid in communities.community_grids(session, community_id)}
    yes, no = YES_NO[language]
    yield BOM + csv_line([*headers(language), STATUS_HEADER[language]])
    rows = session.execute(
        query.with_only_columns(User.name, User.phone, Volunteer.grid_id, Volunteer.joined_on,
                                Volunteer.show_on_leaderboard, Volunteer.status)
        .execution_options(yield_per=BATCH))
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    for count, (name, phone, grid_id, joined_on, show, status) in enumerate(rows, 1):
        writer.writerow([safe_cell(c) for c in (
            name, phone, paths.get(grid_id, ""), joined_on.isoformat(), yes if show else no,
            status_labels.get(status, status))])
        if count % BATCH == 0:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()

"""CSV files for staff: the community's volunteers, streamed, and the blank import template."""

from collections.abc import Iterator

import sqlalchemy as sa
import sqlalchemy.orm as so

from pointsmall.auth.models import User
from pointsmall.core.cells import BOM, csv_line
from pointsmall.exports.files import csv_stream
from pointsmall.exports.query import keyset
from pointsmall.people import communities
from pointsmall.people.importer import COLUMNS
from pointsmall.people.models import Volunteer

STATUS_HEADER = {"zh": "状态", "en": "status"}
YES_NO = {"zh": ("是", "否"), "en": ("yes", "no")}


def headers(language: str) -> list[str]:
    """Return the import columns' headers in Chinese ("zh") or English ("en")."""
    return [zh if language == "zh" else en for _field, zh, en, _required in COLUMNS]


def export_headers(language: str) -> list[str]:
    """Return the export's headers: the import columns (so a file goes back in) and status."""
    return [*headers(language), STATUS_HEADER[language]]


def template_csv() -> bytes:
    """Return the blank import file: UTF-8 with BOM and the Chinese headers."""
    return (BOM + csv_line(headers("zh"))).encode("utf-8")


def volunteer_rows(session: so.Session, community_id: int, query: sa.Select, language: str,
                   status_labels: dict[str, str]) -> Iterator[list]:
    """Yield the volunteers `query` finds (by name) as export rows, a chunk at a time."""
    paths = {grid.id: grid.path for grid in communities.community_grids(session, community_id)}
    yes, no = YES_NO[language]
    rows = keyset(session, query.with_only_columns(
        User.name, Volunteer.id, User.phone, Volunteer.grid_id, Volunteer.joined_on,
        Volunteer.show_on_leaderboard, Volunteer.status), width=2)
    for name, _id, phone, grid_id, joined_on, show, status in rows:
        yield [name, phone, paths.get(grid_id, ""), joined_on, yes if show else no,
               status_labels.get(status, status)]


def volunteer_lines(session: so.Session, community_id: int, query: sa.Select, language: str,
                    status_labels: dict[str, str]) -> Iterator[str]:
    """Yield the CSV of the volunteers `query` finds, a batch of rows at a time."""
    return csv_stream(export_headers(language), volunteer_rows(
        session, community_id, query, language, status_labels))

"""Bulk import of volunteers from CSV or XLSX: check every row, then create all or none."""

import re
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime

import sqlalchemy as sa
import sqlalchemy.orm as so
from flask_babel import gettext as _
from flask_babel import ngettext

import ledger
from pointsmall.auth import names
from pointsmall.auth.models import UNUSABLE, SignInName, User
from pointsmall.core import audit, uploads
from pointsmall.core.errors import AppError
from pointsmall.people import communities, service
from pointsmall.people.communities import Grid, community_scope
from pointsmall.people.models import Volunteer, volunteer_address

# One request holds the whole file in one transaction; larger batches should be split
# into several files of at most this many rows.
MAX_ROWS = 10_000
# The last line a sheet may use: the rows, the header and room for blank lines or a title.
MAX_LINES = MAX_ROWS + 1_000

# (field, Chinese header, English header, required); the Chinese headers are the default.
COLUMNS = (
    ("name", "姓名", "name", True),
    ("phone", "手机号", "phone", True),
    ("grid", "微网格", "grid", True),
    ("joined_on", "加入日期", "joined_on", True),
    ("show_on_leaderboard", "是否上榜", "show_on_leaderboard", False),
)
HEADER_ALIASES = {"手机号码": "phone", "手机": "phone", "网格": "grid", "micro_grid": "grid"}
YES = {"是", "y", "yes", "true", "1", "上榜"}
NO = {"否", "n", "no", "false", "0", "不上榜"}
DATE = re.compile(r"^(\d{4})[-/.年](\d{1,2})[-/.月](\d{1,2})日?(?:[ T].*)?$")
# Which column a field error of service.clean_fields belongs to.
ERROR_COLUMN = {"grid_id": "grid", "username": "phone"}
IN_CHUNK = 500


@dataclass(frozen=True)
class RowError:
    line: int | None
    column: str
    message: str


class ImportRefused(AppError):
    """The file cannot be imported as it is; nothing was written."""

    status = 422
    code = "import_refused"

    def __init__(self, message: str, rows: list[RowError] | None = None):
        self.rows = rows or []
        errors: dict[str, list[str]] = {}
        for row in self.rows:
            errors.setdefault(f"{row.line}:{row.column}", []).append(row.message)
        super().__init__(message, errors)


def import_volunteers(session: so.Session, community_id: int, filename: str,
                      data: bytes) -> list[int]:
    """Create a volunteer for every row of the file, or raise ImportRefused for all of it.

    Return the new volunteers' ids.
    """
    lines = read_lines(filename, data)
    columns = _find_header(lines)
    rows = []
    for line, cells in lines:
        if any(_text(c) for c in cells):
            rows.append((line, {field: _text(cells[i]) if i < len(cells) else ""
                                for field, (i, _header) in columns.items()}))
            if len(rows) > MAX_ROWS:
                raise ImportRefused(_refusal_message("too_many_rows", xlsx=False))
    if not rows:
        raise ImportRefused(_("The file has a header but no volunteers."))
    cleaned = check_rows(session, community_id, rows, columns)
    try:
        volunteers = create_volunteers(session, community_id, cleaned)
    except sa.exc.IntegrityError as error:
        # Someone registered one of these phone numbers since the file was checked.
        raise ImportRefused(_("Some of these phone numbers were registered meanwhile. "
                              "Please upload the file again.")) from error
    audit.record(session, "volunteer.import", filename[:120], community_id=community_id,
                 count=len(volunteers))
    return volunteers


def unknown_columns(filename: str, data: bytes) -> list[str]:
    """Return the headers of the file's columns that the import does not keep (备注...)."""
    known = {zh for _f, zh, _en, _r in COLUMNS} | {en for _f, _zh, en, _r in COLUMNS}
    known |= set(HEADER_ALIASES)
    for _line, cells in read_lines(filename, data):
        headers = [_text(c) for c in cells]
        if any(headers):
            return [h for h in headers
                    if h and re.sub(r"[\s*]", "", h).lower() not in known]
    return []


def check_upload(filename: str, data: bytes) -> None:
    """Refuse, in the request, a file whose size or shape is beyond bounds, before a large
    one is queued as a job: a bomb is refused at once, not by a worker later."""
    if data.startswith(b"\xd0\xcf\x11\xe0"):
        raise ImportRefused(_("Old Excel files (.xls) are not supported. Please save the "
                              "file as XLSX or CSV."))
    xlsx = uploads.is_xlsx(filename, data)
    bounds = uploads.Bounds(lines=MAX_LINES)
    try:
        if xlsx:
            uploads.check_xlsx(data, bounds, uploads.Deadline(bounds.seconds))
        else:
            for _line in uploads.sheet_lines(filename, data, bounds):
                pass
    except uploads.SheetRefused as refusal:
        raise ImportRefused(_refusal_message(refusal.reason, xlsx)) from refusal


def read_lines(filename: str, data: bytes) -> Iterator[tuple[int, list]]:
    """Yield (line as the spreadsheet shows it, cells) for every row of a CSV or XLSX."""
    if data.startswith(b"\xd0\xcf\x11\xe0"):
        raise ImportRefused(_("Old Excel files (.xls) are not supported. Please save the "
                              "file as XLSX or CSV."))
    xlsx = uploads.is_xlsx(filename, data)
    try:
        yield from uploads.sheet_lines(filename, data, uploads.Bounds(lines=MAX_LINES))
    except uploads.SheetRefused as refusal:
        raise ImportRefused(_refusal_message(refusal.reason, xlsx)) from refusal


def _refusal_message(reason: str, xlsx: bool) -> str:
    if reason == "too_many_rows":
        return _("The file has more than %(n)d rows. Please split it into files of at most "
                 "%(n)d rows.", n=MAX_ROWS)
    if reason == "not_text":
        return _("The file is neither UTF-8 nor GBK text. Please save it as \"CSV UTF-8\" "
                 "or as XLSX and upload it again.")
    if reason == "unreadable" and xlsx:
        return _("This is not a readable XLSX file.")
    return uploads.refusal_message(reason)


def _find_header(lines: Iterator[tuple[int, list]]) -> dict[str, tuple[int, str]]:
    """Read up to the header row; return {field: (column index, header as written)}."""
    known = {zh: field for field, zh, _en, _req in COLUMNS}
    known |= {en: field for field, _zh, en, _req in COLUMNS} | HEADER_ALIASES
    for _line, cells in lines:
        headers = [_text(c) for c in cells]
        if not any(headers):
            continue
        columns: dict[str, tuple[int, str]] = {}
        for index, header in enumerate(headers):
            field = known.get(re.sub(r"[\s*]", "", header).lower())
            if field and field not in columns:
                columns[field] = (index, header)
        missing = [f"{zh} ({en})" for field, zh, en, required in COLUMNS
                   if required and field not in columns]
        if missing:
            raise ImportRefused(_("Missing columns: %(columns)s. The first row must name "
                                  "the columns.", columns=", ".join(missing)))
        return columns
    raise ImportRefused(_("The file is empty."))


def check_rows(session: so.Session, community_id: int, rows: list[tuple[int, dict]],
               columns: dict[str, tuple[int, str]]) -> list[service.VolunteerFields]:
    """Check every row; return the cleaned rows or raise ImportRefused listing every error."""
    # Held here, the grids stay in the session's identity map, so clean_fields' look-up of
    # a row's grid costs no query.
    loaded = communities.community_grids(session, community_id)
    grids = grid_lookup(loaded)
    phones = [names.normalise_phone(raw["phone"]) for _line, raw in rows]
    owners = names.owners(session, phones)
    errors: list[RowError] = []
    cleaned: list[service.VolunteerFields] = []
    first_line: dict[str, int] = {}
    for (line, raw), phone in zip(rows, phones, strict=True):
        problems: dict[str, list[str]] = {}
        fields, found = service.clean_fields(session, community_id, {
            "name": raw["name"], "phone": raw["phone"], "grid_id": grids.get(_key(raw["grid"])),
            "joined_on": _date(raw["joined_on"]),
        }, phone_owners=owners)
        for field, messages in found.items():
            problems[ERROR_COLUMN.get(field, field)] = list(messages)
        if "grid" in problems:
            problems["grid"] = [_("A micro-grid is required.") if not raw["grid"] else
                                _("No micro-grid named \"%(grid)s\" in this community.",
                                  grid=raw["grid"])]
        if "phone" not in problems:
            if phone in first_line:
                problems["phone"] = [_("The same phone number is on line %(line)d.",
                                       line=first_line[phone])]
            first_line.setdefault(phone, line)
        show = _yes_no(raw.get("show_on_leaderboard", ""))
        if show is None:
            problems["show_on_leaderboard"] = [_("Write 是 or 否 (yes or no).")]
        for field, messages in problems.items():
            header = columns.get(field, (0, field))[1]
            errors.extend(RowError(line, header, message) for message in messages)
        if fields is not None and not problems:
            fields.show_on_leaderboard = show
            cleaned.append(fields)
    if errors:
        raise ImportRefused(ngettext(
            "%(num)d problem found; nothing was imported. Please correct the file and upload "
            "it again.",
            "%(num)d problems found; nothing was imported. Please correct the file and upload "
            "it again.", len(errors)), errors)
    return cleaned


def create_volunteers(session: so.Session, community_id: int,
                      rows: list[service.VolunteerFields]) -> list[int]:
    """Create checked volunteers in bulk, as service.create_volunteer does one at a time.

    Return their ids. Their passwords are unusable until staff reset one: hashing thousands
    is slow on purpose.
    """
    session.flush()
    # Plain executemany statements, then one read of the new ids: the unit of work, or
    # inserts with RETURNING, take seconds for thousands of rows.
    session.execute(sa.insert(User), [
        {"username": f.phone, "phone": f.phone, "name": f.name, "role": "volunteer",
         "community_id": community_id, "password_hash": UNUSABLE + secrets.token_hex(16)}
        for f in rows])
    user_ids = dict(_rows_where_in(session, User.phone, User.id, [f.phone for f in rows]))
    # The ORM claims a user's sign-in names; these bulk rows claim theirs here.
    session.execute(sa.insert(SignInName), [
        {"name": f.phone, "kind": "phone", "user_id": user_ids[f.phone]} for f in rows])
    session.execute(sa.insert(Volunteer), [
        {"user_id": user_ids[f.phone], "community_id": community_id, "grid_id": f.grid_id,
         "joined_on": f.joined_on, "show_on_leaderboard": f.show_on_leaderboard,
         "status": "active"} for f in rows])
    volunteer_ids = [volunteer_id for _user_id, volunteer_id in
                     _rows_where_in(session, Volunteer.user_id, Volunteer.id, user_ids.values())]
    ledger.open_accounts(session, [(volunteer_address(v, asset), asset)
                                   for v in volunteer_ids for asset in ("POINTS", "MERIT")],
                         scope=community_scope(community_id))
    return volunteer_ids


def grid_lookup(grids: list[Grid]) -> dict[str, int]:
    """Map micro-grids by name and by "grid/micro-grid" path to their ids."""
    lookup = {}
    for grid in grids:
        if grid.level == "micro":
            lookup[_key(grid.name)] = grid.id
            lookup[_key(f"{grid.parent.name}/{grid.name}")] = grid.id
    return lookup


def _rows_where_in(session: so.Session, key, value, keys) -> list[tuple]:
    """Return (key, value) of the rows whose `key` is one of `keys`, a chunk at a time."""
    keys = sorted(set(keys))
    return [tuple(row) for start in range(0, len(keys), IN_CHUNK)
            for row in session.execute(sa.select(key, value)
                                       .where(key.in_(keys[start:start + IN_CHUNK])))]


def _text(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        value = int(value)  # a phone number typed into a number cell
    if isinstance(value, datetime):
        value = value.date()
    if isinstance(value, date):
        return value.isoformat()
    return str(value).strip()


def _key(grid: str) -> str:
    return re.sub(r"\s", "", grid.replace("／", "/")).lower()


def _date(text: str) -> str | date:
    """Read 2024-03-01, 2024/3/1, 2024.3.1 or 2024年3月1日; leave anything else as it is."""
    match = DATE.match(text)
    if match:
        try:
            return date(*(int(part) for part in match.groups()))
        except ValueError:
            pass
    return text


def _yes_no(text: str) -> bool | None:
    text = text.strip().lower()
    if not text or text in YES:
        return True
    return False if text in NO else None

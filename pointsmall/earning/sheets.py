"""Sign-in sheets: find volunteers of a community by the phone numbers on a CSV or XLSX."""

import sqlalchemy as sa
import sqlalchemy.orm as so
from flask_babel import gettext as _

from pointsmall.auth.models import User
from pointsmall.core import uploads
from pointsmall.earning.errors import invalid
from pointsmall.people.models import Volunteer

PHONE_HEADERS = ("手机号", "手机", "电话", "phone", "mobile")
MAX_ROWS = 10_000


def volunteers_by_phone(session: so.Session, community_id: int, phones: list[str]) -> list[int]:
    """Return the volunteer ids for these phone numbers; refuse any that is not ours."""
    wanted = [p.strip().replace(" ", "").replace("-", "") for p in phones if p.strip()]
    if not wanted:
        raise invalid("phone", _("Give at least one mobile number."))
    found = dict(session.execute(
        sa.select(User.phone, Volunteer.id).join(Volunteer, Volunteer.user_id == User.id)
        .where(User.phone.in_(wanted), Volunteer.community_id == community_id)).all())
    unknown = [p for p in wanted if p not in found]
    if unknown:
        raise invalid("phone", _("Not volunteers of this community: %(phones)s.",
                                 phones=", ".join(unknown[:20])))
    return [found[p] for p in wanted]


def read_sign_in_sheet(session: so.Session, community_id: int, upload) -> list[int]:
    """Read the phone column of an uploaded CSV (UTF-8 or GBK) or XLSX sign-in sheet."""
    data = upload.read()
    name = getattr(upload, "filename", "") or ""
    rows = _sheet_rows(name, data)
    if not rows:
        raise invalid("file", _("The sheet is empty."))
    header = [str(h or "").strip().lower() for h in rows[0]]
    column = next((i for i, h in enumerate(header) if h in PHONE_HEADERS), None)
    if column is None:
        raise invalid("file", _("The sheet needs a column named 手机号 (phone)."))
    phones = [_text(row[column]) for row in rows[1:]
              if len(row) > column and row[column] not in (None, "")]
    return sorted(set(volunteers_by_phone(session, community_id, phones)))


def _sheet_rows(name: str, data: bytes) -> list[list]:
    """Return the rows of the sheet (the header and at most MAX_ROWS more), or refuse it."""
    xlsx = uploads.is_xlsx(name, data)
    try:
        return [cells for _line, cells in uploads.sheet_lines(
            name, data, uploads.Bounds(lines=MAX_ROWS + 1))]
    except uploads.SheetRefused as refusal:
        raise invalid("file", _refusal_message(refusal.reason, xlsx)) from refusal


def _refusal_message(reason: str, xlsx: bool) -> str:
    if reason == "too_many_rows":
        return _("At most %(n)d rows in one sheet.", n=MAX_ROWS)
    if reason == "not_text":
        return _("The file is neither UTF-8 nor GBK text.")
    if reason == "unreadable" and xlsx:
        return _("The file is not a readable XLSX workbook.")
    return uploads.refusal_message(reason)


def _text(value) -> str:
    """Return a cell as typed: a phone number in a number cell without its ".0"."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()

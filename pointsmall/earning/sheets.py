"""Sign-in sheets: find volunteers of a community by the phone numbers on a CSV or XLSX."""

import csv
import io
from itertools import islice

import sqlalchemy as sa
import sqlalchemy.orm as so
from flask_babel import gettext as _

from pointsmall.auth.models import User
from pointsmall.earning.errors import invalid
from pointsmall.volunteers.models import Volunteer

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
    name = (getattr(upload, "filename", "") or "").lower()
    rows = _xlsx_rows(data) if name.endswith(".xlsx") else _csv_rows(data)
    if not rows:
        raise invalid("file", _("The sheet is empty."))
    header = [str(h or "").strip().lower() for h in rows[0]]
    column = next((i for i, h in enumerate(header) if h in PHONE_HEADERS), None)
    if column is None:
        raise invalid("file", _("The sheet needs a column named 手机号 (phone)."))
    if len(rows) > MAX_ROWS + 1:
        raise invalid("file", _("At most %(n)d rows in one sheet.", n=MAX_ROWS))
    phones = [str(row[column]).strip() for row in rows[1:]
              if len(row) > column and row[column] not in (None, "")]
    return sorted(set(volunteers_by_phone(session, community_id, phones)))


def _csv_rows(data: bytes) -> list[list[str]]:
    for encoding in ("utf-8-sig", "gb18030"):
        try:
            text = data.decode(encoding)
        except UnicodeDecodeError:
            continue
        try:
            return list(islice(csv.reader(io.StringIO(text)), MAX_ROWS + 2))
        except csv.Error:
            break
    raise invalid("file", _("The file is neither UTF-8 nor GBK text."))


def _xlsx_rows(data: bytes) -> list[list]:
    from openpyxl import load_workbook

    try:
        book = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except Exception:  # openpyxl raises many kinds for a broken file
        raise invalid("file", _("The file is not a readable XLSX workbook.")) from None
    # Read-only sheets are parsed while iterated, so a broken file fails here too; and no
    # more rows are read than a sheet may have, however many the file unzips into.
    try:
        rows = islice(book.worksheets[0].iter_rows(values_only=True), MAX_ROWS + 2)
        return [["" if c is None else (str(int(c)) if isinstance(c, float) else str(c))
                 for c in row] for row in rows]
    except Exception:  # as above
        raise invalid("file", _("The file is not a readable XLSX workbook.")) from None
    finally:
        book.close()

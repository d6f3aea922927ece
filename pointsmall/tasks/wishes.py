"""Residents' micro-wishes and problem reports: posted without an account from the grid
station's QR poster, limited per phone and per address, screened by staff, followed by
the resident at their link."""

import re
import secrets
from datetime import datetime, timedelta

import sqlalchemy as sa
import sqlalchemy.orm as so
from flask_babel import gettext as _
from flask_babel import ngettext

from ledger import utcnow
from pointsmall.core import attempts, audit
from pointsmall.core.errors import NotFound, TooManyAttempts, ValidationFailed
from pointsmall.core.photos import save_item_photo
from pointsmall.people.communities import Grid, community_grids
from pointsmall.tasks import board
from pointsmall.tasks.errors import WrongState, invalid
from pointsmall.tasks.models import Assignment, Wish

PHONE = re.compile(r"^1[3-9]\d{9}$")
CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
WINDOW = timedelta(hours=1)
PER_PHONE = 4  # a fifth wish within the hour is refused
PER_ADDRESS = 20


def grid_for_poster(session: so.Session, grid_id: int) -> Grid:
    """Return the grid a station's poster names."""
    grid = session.get(Grid, grid_id) if isinstance(grid_id, int) else None
    if grid is None:
        raise NotFound("grid")
    return grid


def _count(session: so.Session, scope: str, key: str, limit: int) -> None:
    """Count this post against `key`, or refuse it when the hour's posts are used up."""
    try:
        attempts.reserve(session, scope, key, limit, WINDOW)
    except attempts.AttemptsExceeded as exceeded:
        raise TooManyAttempts(ngettext(
            "Too many posts from here; please try again in %(num)d minute.",
            "Too many posts from here; please try again in %(num)d minutes.",
            exceeded.minutes), exceeded.retry_after) from None


def post_wish(session: so.Session, grid_id: int, raw: dict, *, address: str,
              photo=None, now: datetime | None = None) -> Wish:
    """Take a resident's wish or report; refused (and nothing kept) when it is invalid or
    the phone or the address has posted too often this hour."""
    grid = grid_for_poster(session, grid_id)
    errors: dict[str, list[str]] = {}
    name = str(raw.get("name") or "").strip()
    if not name or len(name) > 40:
        errors["name"] = [_("A name or nickname of at most 40 characters.")]
    phone = re.sub(r"[\s-]", "", str(raw.get("phone") or ""))
    if not PHONE.match(phone):
        errors["phone"] = [_("An 11-digit mobile number, so that we can follow up.")]
    text = str(raw.get("text") or "").strip()
    if not text:
        errors["text"] = [_("Say what you wish for, or what the problem is.")]
    elif len(text) > 500:
        errors["text"] = [_("At most 500 characters.")]
    kind = raw.get("kind") or "wish"
    if kind not in ("wish", "report"):
        errors["kind"] = [_("A wish or a problem report.")]
    if errors:
        raise ValidationFailed(errors)
    # Counted in one conditional UPDATE each, so a flood in parallel gets no further than
    # one in a row; a refusal rolls the transaction back with the counts it took.
    _count(session, "wish-phone", phone, PER_PHONE)
    _count(session, "wish-address", address or "-", PER_ADDRESS)
    picture = None
    if photo:
        picture = save_item_photo(photo, _("This file is not a picture we can read."))
    wish = Wish(community_id=grid.community_id, grid_id=grid.id, code=_new_code(), kind=kind,
                name=name, phone=phone, text=text, photo=picture, created_at=now or utcnow())
    session.add(wish)
    session.flush()
    audit.record(session, "wish.post", f"wish:{wish.id}", community_id=grid.community_id,
                 kind=kind)
    return wish


def _new_code() -> str:
    return "".join(secrets.choice(CODE_ALPHABET) for _ in range(10))


def wish_by_code(session: so.Session, code: str) -> Wish:
    """Return the wish a resident's code names."""
    code = re.sub(r"[\s-]", "", str(code or "")).upper()
    wish = session.scalar(sa.select(Wish).where(Wish.code == code)) if code else None
    if wish is None:
        raise NotFound("wish")
    return wish


def followed(session: so.Session, wish: Wish) -> Wish:
    """Return the wish whose progress a resident sees: a merged one shows the other's."""
    seen = set()
    while wish.status == "merged" and wish.merged_into_id and wish.id not in seen:
        seen.add(wish.id)
        wish = session.get(Wish, wish.merged_into_id)
    return wish


def task_progress(session: so.Session, wish: Wish) -> list[Assignment]:
    if wish.task_id is None:
        return []
    return list(session.scalars(sa.select(Assignment).where(
        Assignment.task_id == wish.task_id).order_by(Assignment.id)))


def get_wish(session: so.Session, wish_id: int, community_id: int, *,
             lock: bool = False) -> Wish:
    """Return a wish of `community_id`; another community's is not found."""
    return board.of_community(session, Wish, wish_id, community_id, lock=lock)


def community_wishes(session: so.Session, community_id: int, *, status: str | None = None,
                     limit: int = 100) -> list[Wish]:
    """Return the community's wishes, those waiting for screening first."""
    query = sa.select(Wish).where(Wish.community_id == community_id)
    if status:
        query = query.where(Wish.status == status)
    return list(session.scalars(query.order_by(
        sa.case((Wish.status == "new", 0), else_=1), Wish.id.desc()).limit(limit)))


def _screenable(session: so.Session, actor, wish_id: int) -> Wish:
    wish = get_wish(session, wish_id, actor.community_id, lock=True)
    if wish.status != "new":
        raise WrongState(_("This wish has already been screened."))
    return wish


def publish_wish(session: so.Session, actor, wish_id: int, raw: dict, *,
                 now: datetime | None = None) -> Wish:
    """Publish a wish as a task of its grid (the resident's phone stays with the wish)."""
    wish = _screenable(session, actor, wish_id)
    raw = {"grid_id": wish.grid_id, "description": wish.text, **raw}
    task = board.publish_task(session, actor.community_id, raw, actor=actor, source="wish",
                              now=now)
    wish.status, wish.task_id = "published", task.id
    wish.screened_at, wish.screened_by = now or utcnow(), actor.id
    session.flush()
    audit.record(session, "wish.publish", f"wish:{wish.id}", community_id=wish.community_id,
                 actor=actor, task_id=task.id)
    return wish


def merge_wish(session: so.Session, actor, wish_id: int, into_id: int) -> Wish:
    """Merge a wish into another of the community; the resident follows the other's progress."""
    wish = _screenable(session, actor, wish_id)
    if into_id == wish.id:
        raise invalid("into_id", _("Choose another wish."))
    try:
        target = get_wish(session, into_id, actor.community_id)
    except NotFound:
        raise invalid("into_id", _("Choose another wish of your community.")) from None
    wish.status, wish.merged_into_id = "merged", target.id
    wish.screened_at, wish.screened_by = utcnow(), actor.id
    session.flush()
    audit.record(session, "wish.merge", f"wish:{wish.id}", community_id=wish.community_id,
                 actor=actor, into=target.id)
    return wish


def close_wish(session: so.Session, actor, wish_id: int, *, reason: str) -> Wish:
    """Close a wish with a reason the resident reads at their link."""
    reason = (reason or "").strip()
    if not reason or len(reason) > 200:
        raise invalid("reason", _("Say why, in at most 200 characters."))
    wish = _screenable(session, actor, wish_id)
    wish.status, wish.close_reason = "closed", reason
    wish.screened_at, wish.screened_by = utcnow(), actor.id
    session.flush()
    audit.record(session, "wish.close", f"wish:{wish.id}", community_id=wish.community_id,
                 actor=actor, reason=reason)
    return wish


def rate_result(session: so.Session, code: str, *, rating: int, comment: str = "") -> Wish:
    """Let the resident rate the result once the task was accepted; once."""
    wish = wish_by_code(session, code)
    wish = session.scalar(sa.select(Wish).where(Wish.id == wish.id).with_for_update()
                          .execution_options(populate_existing=True))
    errors = {}
    if isinstance(rating, bool) or not isinstance(rating, int) or not 1 <= rating <= 5:
        errors["rating"] = [_("Rate from 1 to 5.")]
    comment = (comment or "").strip()
    if len(comment) > 200:
        errors["comment"] = [_("At most 200 characters.")]
    if errors:
        raise ValidationFailed(errors)
    if not any(a.state == "accepted" for a in task_progress(session, wish)):
        raise WrongState(_("You can rate the result once the task has been done and checked."))
    if wish.resident_rating is not None:
        raise WrongState(_("You have already rated this result. Thank you!"))
    wish.resident_rating, wish.resident_comment = rating, comment
    session.flush()
    audit.record(session, "wish.rate", f"wish:{wish.id}", community_id=wish.community_id,
                 rating=rating)
    return wish


def masked_phone(phone: str) -> str:
    return phone[:3] + "****" + phone[-4:] if len(phone) == 11 else "****"


def wishes_grids(session: so.Session, community_id: int) -> list[Grid]:
    """Return the community's grids, for their stations' posters."""
    return community_grids(session, community_id)

"""Create, change, suspend and find volunteers, always inside one community."""

import secrets
from dataclasses import dataclass
from datetime import date

import sqlalchemy as sa
import sqlalchemy.orm as so
from flask_babel import gettext as _
from werkzeug.security import generate_password_hash

import ledger
from pointsmall.auth import names
from pointsmall.auth.models import User
from pointsmall.auth.names import PHONE, normalise_phone
from pointsmall.auth.service import revoke_all_tokens
from pointsmall.core import audit
from pointsmall.core.clock import local_today
from pointsmall.core.errors import NotFound, ValidationFailed
from pointsmall.people.communities import Grid, community_scope
from pointsmall.people.models import STATUSES, Volunteer

NAME_MAX = 40


@dataclass
class VolunteerFields:
    name: str
    phone: str
    grid_id: int
    joined_on: date
    show_on_leaderboard: bool = True


def clean_fields(session: so.Session, community_id: int, raw: dict,
                 volunteer_id: int | None = None, *,
                 phone_owners: dict[str, tuple[int, str]] | None = None
                 ) -> tuple[VolunteerFields | None, dict]:
    """Check a volunteer's fields; return the cleaned values or the errors by field.

    A phone number may not be anyone else's sign-in name, in any community. `phone_owners`
    (names.owners of the phones, looked up beforehand) saves a bulk import a query a row.
    """
    errors: dict[str, list[str]] = {}
    name = str(raw.get("name") or "").strip()
    if not name:
        errors["name"] = [_("A name is required.")]
    elif len(name) > NAME_MAX:
        errors["name"] = [_("A name has at most %(n)d characters.", n=NAME_MAX)]
    phone = normalise_phone(raw.get("phone"))
    if not PHONE.match(phone):
        errors["phone"] = [_("Not a mainland mobile number (11 digits starting with 1).")]
    else:
        owner = (phone_owners if phone_owners is not None else
                 names.owners(session, [phone])).get(phone)
        own_user = (session.scalar(sa.select(Volunteer.user_id)
                                   .where(Volunteer.id == volunteer_id))
                    if volunteer_id else None)
        problem = names.phone_problem(owner, own_user)
        if problem:
            errors["phone"] = [problem]
    grid_id = _as_int(raw.get("grid_id"))
    grid = session.get(Grid, grid_id) if grid_id else None
    if grid is None or grid.community_id != community_id:
        errors["grid_id"] = [_("Unknown grid.")]
    joined_on = raw.get("joined_on")
    if isinstance(joined_on, str):
        try:
            joined_on = date.fromisoformat(joined_on.strip())
        except ValueError:
            joined_on = None
    if not isinstance(joined_on, date):
        errors["joined_on"] = [_("A date like 2024-03-01 is required.")]
    elif joined_on > local_today():
        errors["joined_on"] = [_("The join date cannot be in the future.")]
    if errors:
        return None, errors
    return VolunteerFields(name, phone, grid.id, joined_on,
                           bool(raw.get("show_on_leaderboard", True))), {}


def create_volunteer(session: so.Session, community_id: int, raw: dict, *,
                     username: str | None = None, password: str | None = None,
                     password_hash: str | None = None,
                     audit_it: bool = True) -> tuple[Volunteer, str]:
    """Create a volunteer, their sign-in and their POINTS and MERIT accounts.

    Return the volunteer and the initial password to hand to them. With `password_hash`
    (bulk imports, the demo) no password is made: hashing is slow on purpose. Their
    username (the phone number unless given) and phone number must be free sign-in names
    across the deployment.
    """
    fields, errors = clean_fields(session, community_id, raw)
    if errors:
        raise ValidationFailed(errors)
    username = (username or "").strip() or fields.phone
    if username != fields.phone:
        problem = names.username_problem(session, username, own_phone=fields.phone)
        if problem:
            raise ValidationFailed({"username": [problem]})
    user = User(username=username, phone=fields.phone, name=fields.name, role="volunteer",
                community_id=community_id)
    if password_hash:
        password, user.password_hash = "", password_hash
    else:
        password = password or new_password()
        user.set_password(password)
    volunteer = Volunteer(user=user, community_id=community_id, grid_id=fields.grid_id,
                          joined_on=fields.joined_on,
                          show_on_leaderboard=fields.show_on_leaderboard)
    session.add(volunteer)
    try:
        session.flush()
    except sa.exc.IntegrityError as error:
        if not names.is_name_clash(error):
            raise
        # Another request took the name since it was checked; the caller rolls back.
        raise ValidationFailed({"phone": [_("This phone number is already the sign-in name "
                                            "of another account.")]}) from None
    for asset in ("POINTS", "MERIT"):
        ledger.open_account(session, volunteer.account(asset), asset,
                            scope=community_scope(community_id))
    if audit_it:
        audit.record(session, "volunteer.create", f"volunteer:{volunteer.id}",
                     community_id=community_id, name=fields.name)
    return volunteer, password


def update_volunteer(session: so.Session, volunteer: Volunteer, raw: dict) -> Volunteer:
    """Change a volunteer's name, phone, grid, join date and leaderboard choice."""
    fields, errors = clean_fields(session, volunteer.community_id, raw, volunteer.id)
    if errors:
        raise ValidationFailed(errors)
    before = {"name": volunteer.user.name, "phone": volunteer.user.phone,
              "grid_id": volunteer.grid_id, "joined_on": volunteer.joined_on.isoformat()}
    if volunteer.user.username == volunteer.user.phone:
        volunteer.user.username = fields.phone  # who signs in by phone keeps doing so
    volunteer.user.name, volunteer.user.phone = fields.name, fields.phone
    volunteer.grid_id, volunteer.joined_on = fields.grid_id, fields.joined_on
    volunteer.show_on_leaderboard = fields.show_on_leaderboard
    session.flush()
    audit.record(session, "volunteer.update", f"volunteer:{volunteer.id}",
                 community_id=volunteer.community_id, before=before)
    return volunteer


def set_status(session: so.Session, volunteer: Volunteer, status: str) -> Volunteer:
    """Mark a volunteer active, suspended or left; only active volunteers may sign in."""
    if status not in STATUSES:
        raise ValidationFailed({"status": [_("Unknown status.")]})
    previous = volunteer.status
    volunteer.status = status
    volunteer.user.active = status == "active"
    session.flush()
    audit.record(session, "volunteer.status", f"volunteer:{volunteer.id}",
                 community_id=volunteer.community_id, before=previous, after=status)
    return volunteer


def reset_password(session: so.Session, volunteer: Volunteer) -> str:
    """Give a volunteer a new random password (ending their sessions); return it."""
    password = new_password()
    volunteer.user.set_password(password)
    revoke_all_tokens(session, volunteer.user)  # a lost phone's token stops working too
    session.flush()
    audit.record(session, "volunteer.reset_password", f"volunteer:{volunteer.id}",
                 community_id=volunteer.community_id)
    return password


# A first sign-in code is random (about 50 bits), handed out once and meant to be changed;
# so it is hashed quickly, or a roster of thousands would take minutes.
FIRST_CODE_HASH = "pbkdf2:sha256:2000"


def first_sign_in_codes(session: so.Session, community_id: int,
                        volunteer_ids: list[int]) -> list[tuple[Volunteer, str]]:
    """Give each volunteer a new one-time code to sign in with for the first time."""
    volunteers = session.scalars(sa.select(Volunteer).where(
        Volunteer.id.in_(volunteer_ids), Volunteer.community_id == community_id)).all()
    made = []
    for volunteer in sorted(volunteers, key=lambda v: v.id):
        code = new_password()
        volunteer.user.password_hash = generate_password_hash(code, FIRST_CODE_HASH)
        volunteer.user.session_version += 1
        made.append((volunteer, code))
    session.flush()
    audit.record(session, "volunteer.first_codes", "", community_id=community_id,
                 count=len(made))
    return made


def get_volunteer(session: so.Session, volunteer_id: int, community_id: int) -> Volunteer:
    """Return the volunteer if they belong to `community_id`; otherwise NotFound."""
    volunteer = session.get(Volunteer, volunteer_id)
    if volunteer is None or volunteer.community_id != community_id:
        raise NotFound("volunteer")
    return volunteer


def search_volunteers(session: so.Session, community_id: int, *, q: str = "",
                      grid_id: int | None = None, status: str | None = None) -> sa.Select:
    """Return the query for a community's volunteers matching the filters, by name."""
    query = (sa.select(Volunteer).join(Volunteer.user)
             .where(Volunteer.community_id == community_id)
             .order_by(User.name, Volunteer.id))
    q = (q or "").strip()
    if q:
        like = "%" + q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        query = query.where(sa.or_(User.name.like(like, escape="\\"),
                                   User.phone.like(like, escape="\\")))
    if grid_id:
        query = query.where(sa.or_(Volunteer.grid_id == grid_id,
                                   Volunteer.grid_id.in_(sa.select(Grid.id)
                                                         .where(Grid.parent_id == grid_id))))
    if status in STATUSES:
        query = query.where(Volunteer.status == status)
    return query


def change_volunteer(session: so.Session, volunteer: Volunteer, changes: dict) -> Volunteer:
    """Change only the given fields of a volunteer; the others keep their values."""
    current = {"name": volunteer.name, "phone": volunteer.phone, "grid_id": volunteer.grid_id,
               "joined_on": volunteer.joined_on,
               "show_on_leaderboard": volunteer.show_on_leaderboard}
    return update_volunteer(session, volunteer, {**current, **changes})


def volunteer_balances(session: so.Session, volunteers: list[Volunteer]
                       ) -> dict[int, tuple[ledger.AccountBalance, ledger.AccountBalance]]:
    """Return each volunteer's POINTS and MERIT balances, read in one query."""
    addresses = [v.account(asset) for v in volunteers for asset in ("POINTS", "MERIT")]
    found = ledger.balances(session, addresses) if addresses else {}

    def of(volunteer: Volunteer, asset: str) -> ledger.AccountBalance:
        address = volunteer.account(asset)
        return found.get(address) or ledger.AccountBalance(address, asset, 0, 0)

    return {v.id: (of(v, "POINTS"), of(v, "MERIT")) for v in volunteers}


def new_password() -> str:
    """Return a random password that is easy to read aloud (no 0/O, 1/l)."""
    alphabet = "abcdefghjkmnpqrstuvwxyz23456789"
    return "".join(secrets.choice(alphabet) for _ in range(10))


def _as_int(value) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None

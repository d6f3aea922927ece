"""Users with one role each, the names they sign in with, and hashed API tokens."""

from datetime import datetime
from typing import TYPE_CHECKING

import sqlalchemy as sa
import sqlalchemy.orm as so
from flask_login import UserMixin
from werkzeug.security import check_password_hash, generate_password_hash

from ledger import utcnow
from pointsmall.core.attempts import AttemptCounter  # noqa: F401  (re-exported)
from pointsmall.extensions import db

if TYPE_CHECKING:
    from pointsmall.people.models import Volunteer

ROLES = ("volunteer", "merchant", "staff", "admin")
# A password_hash that starts so matches no password (imported users, until a reset).
UNUSABLE = "!"


class User(UserMixin, db.Model):
    """Someone who signs in: a volunteer, merchant staff, community staff or an admin."""

    __tablename__ = "users"
    __table_args__ = (
        sa.CheckConstraint("role IN ('volunteer', 'merchant', 'staff', 'admin')",
                           name="role_known"),
        # Staff and volunteers belong to a community; merchant staff to a merchant.
        sa.CheckConstraint(
            "(role NOT IN ('staff', 'volunteer') OR community_id IS NOT NULL)"
            " AND (role <> 'merchant' OR merchant_id IS NOT NULL)",
            name="scope_present",
        ),
    )

    id: so.Mapped[int] = so.mapped_column(primary_key=True)
    username: so.Mapped[str] = so.mapped_column(sa.String(64), unique=True)
    phone: so.Mapped[str | None] = so.mapped_column(sa.String(11), unique=True)
    name: so.Mapped[str] = so.mapped_column(sa.String(40))
    role: so.Mapped[str] = so.mapped_column(sa.String(10))
    community_id: so.Mapped[int | None] = so.mapped_column(sa.ForeignKey("communities.id"),
                                                           index=True)
    merchant_id: so.Mapped[int | None] = so.mapped_column(sa.ForeignKey("merchants.id"))
    password_hash: so.Mapped[str] = so.mapped_column(sa.String(256))
    active: so.Mapped[bool] = so.mapped_column(default=True)
    # Bumped on password change or reset: it signs every session, so old ones end.
    session_version: so.Mapped[int] = so.mapped_column(default=1)
    created_at: so.Mapped[datetime] = so.mapped_column(default=utcnow)

    # The volunteer this user is, if any: read with a bearer token's user, or when asked.
    volunteer: so.Mapped["Volunteer | None"] = so.relationship(viewonly=True, uselist=False)

    def set_password(self, password: str) -> None:
        self.password_hash = generate_password_hash(password)
        self.session_version = (self.session_version or 0) + 1

    def check_password(self, password: str) -> bool:
        return password_matches(self.password_hash, password)

    def get_id(self) -> str:
        return f"{self.id}:{self.session_version}"

    @property
    def is_active(self) -> bool:
        return self.active

    @property
    def is_staff(self) -> bool:
        return self.role == "staff"

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


def password_matches(password_hash: str, password: str) -> bool:
    """Check `password` against a stored hash (slow on purpose: the hash's own cost)."""
    return check_password_hash(password_hash, password)


class SignInName(db.Model):
    """A name someone signs in with, a username or a phone number: it reaches one account.

    Usernames and phone numbers share this one namespace across every community, so a
    username can never be another person's phone number. The rows follow the users' own
    columns (see `_claim_names`); the primary key is what refuses a second claim.
    """

    __tablename__ = "sign_in_names"
    __table_args__ = (
        sa.CheckConstraint("kind IN ('username', 'phone')", name="kind_known"),
    )

    name: so.Mapped[str] = so.mapped_column(sa.String(64), primary_key=True)
    user_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("users.id"), index=True)
    # 'phone' when the name is the user's phone number (also when it is their username).
    kind: so.Mapped[str] = so.mapped_column(sa.String(8))


def sign_in_names(username: str, phone: str | None) -> list[dict]:
    """Return the sign-in name rows of a user with this username and phone."""
    rows = [{"name": phone, "kind": "phone"}] if phone else []
    if username != phone:
        rows.append({"name": username, "kind": "username"})
    return rows


@sa.event.listens_for(User, "after_insert")
def _claim_names(mapper, connection: sa.Connection, user: User) -> None:
    # Every way of creating a user through the ORM claims its names in the same flush;
    # bulk inserts (the roster import) insert the rows themselves.
    connection.execute(sa.insert(SignInName), [
        {**row, "user_id": user.id} for row in sign_in_names(user.username, user.phone)])


@sa.event.listens_for(User, "after_update")
def _follow_names(mapper, connection: sa.Connection, user: User) -> None:
    state = sa.inspect(user)
    if not (state.attrs.username.history.has_changes()
            or state.attrs.phone.history.has_changes()):
        return
    connection.execute(sa.delete(SignInName).where(SignInName.user_id == user.id))
    _claim_names(mapper, connection, user)


class ApiToken(db.Model):
    """A bearer token for machines and the mobile client; only its hash is stored."""

    __tablename__ = "api_tokens"

    id: so.Mapped[int] = so.mapped_column(primary_key=True)
    user_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("users.id"), index=True)
    name: so.Mapped[str] = so.mapped_column(sa.String(80), default="")
    prefix: so.Mapped[str] = so.mapped_column(sa.String(12))
    token_hash: so.Mapped[str] = so.mapped_column(sa.String(64), unique=True)
    created_at: so.Mapped[datetime] = so.mapped_column(default=utcnow)
    last_used_at: so.Mapped[datetime | None]
    revoked_at: so.Mapped[datetime | None]

    user: so.Mapped[User] = so.relationship()

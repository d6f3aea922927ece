"""Users with one role each, and hashed API tokens."""

from datetime import datetime
from typing import TYPE_CHECKING

import sqlalchemy as sa
import sqlalchemy.orm as so
from flask_login import UserMixin
from werkzeug.security import check_password_hash, generate_password_hash

from ledger import utcnow
from merchants.attempts import ThrottleEvent  # noqa: F401  (re-exported)
from pointsmall.extensions import db

if TYPE_CHECKING:
    from pointsmall.volunteers.models import Volunteer

ROLES = ("volunteer", "merchant", "staff", "admin")


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
        return check_password_hash(self.password_hash, password)

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

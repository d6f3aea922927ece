"""A volunteer: a user of role volunteer with a micro-grid, a join date and two accounts."""

from datetime import date, datetime

import sqlalchemy as sa
import sqlalchemy.orm as so

from ledger import utcnow
from pointsmall.auth.models import User
from pointsmall.extensions import db
from pointsmall.people.communities import Grid

STATUSES = ("active", "suspended", "left")


class Volunteer(db.Model):
    __tablename__ = "volunteers"
    __table_args__ = (
        sa.CheckConstraint("status IN ('active', 'suspended', 'left')", name="status_known"),
        sa.Index("ix_volunteers_community_status", "community_id", "status"),
    )

    id: so.Mapped[int] = so.mapped_column(primary_key=True)
    user_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("users.id"), unique=True)
    community_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("communities.id"))
    grid_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("grids.id"), index=True)
    joined_on: so.Mapped[date]
    status: so.Mapped[str] = so.mapped_column(sa.String(10), default="active")
    show_on_leaderboard: so.Mapped[bool] = so.mapped_column(default=True)
    created_at: so.Mapped[datetime] = so.mapped_column(default=utcnow)

    user: so.Mapped[User] = so.relationship(lazy="joined", innerjoin=True)
    grid: so.Mapped[Grid] = so.relationship(lazy="joined", innerjoin=True)

    @property
    def name(self) -> str:
        return self.user.name

    @property
    def phone(self) -> str:
        return self.user.phone or ""

    def account(self, asset: str) -> str:
        """Return the address of this volunteer's ledger account for `asset`."""
        return volunteer_address(self.id, asset)


def volunteer_address(volunteer_id: int, asset: str) -> str:
    return f"volunteer:{volunteer_id}:{asset.lower()}"

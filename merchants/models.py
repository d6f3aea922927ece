"""Merchants: partner shops and the community's charity supermarket (爱心超市)."""

from datetime import datetime

import sqlalchemy as sa
import sqlalchemy.orm as so

from ledger.clock import utcnow
from ledger.models import Base

MERCHANT_KINDS = ("partner", "charity")


class Merchant(Base):
    __tablename__ = "merchants"
    __table_args__ = (sa.CheckConstraint("kind IN ('partner', 'charity')", name="kind_known"),)

    id: so.Mapped[int] = so.mapped_column(primary_key=True)
    name: so.Mapped[str] = so.mapped_column(sa.String(80))
    kind: so.Mapped[str] = so.mapped_column(sa.String(10), default="partner")
    community_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("communities.id"), index=True)
    address: so.Mapped[str] = so.mapped_column(sa.String(200), default="")
    active: so.Mapped[bool] = so.mapped_column(default=True)
    created_at: so.Mapped[datetime] = so.mapped_column(default=utcnow)

    def account(self) -> str:
        """Return the address of the POINTS account that receives this merchant's redemptions."""
        return f"merchant:{self.id}:points"

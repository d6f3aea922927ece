"""Merchants, their items, redemptions and settlement statements."""

from datetime import date, datetime

import sqlalchemy as sa
import sqlalchemy.orm as so

from ledger import Base, utcnow

MERCHANT_KINDS = ("partner", "charity")
ITEM_STATUSES = ("approved", "proposed", "rejected")
REDEMPTION_STATUSES = ("reserved", "fulfilled", "cancelled", "expired", "refunded")
TIERS = ("bronze", "silver", "gold")

merchant_communities = sa.Table(
    "merchant_communities",
    Base.metadata,
    sa.Column("merchant_id", sa.ForeignKey("merchants.id"), primary_key=True),
    sa.Column("community_id", sa.ForeignKey("communities.id"), primary_key=True),
)


class Merchant(Base):
    """A partner shop or a community's charity supermarket (爱心超市)."""

    __tablename__ = "merchants"
    __table_args__ = (sa.CheckConstraint("kind IN ('partner', 'charity')", name="kind_known"),)

    id: so.Mapped[int] = so.mapped_column(primary_key=True)
    name: so.Mapped[str] = so.mapped_column(sa.String(80))
    kind: so.Mapped[str] = so.mapped_column(sa.String(10), default="partner")
    # The community whose staff manage this merchant, its items and its settlement.
    community_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("communities.id"), index=True)
    address: so.Mapped[str] = so.mapped_column(sa.String(200), default="")
    opening_hours: so.Mapped[str] = so.mapped_column(sa.String(120), default="",
                                                     server_default="")
    contact: so.Mapped[str] = so.mapped_column(sa.String(80), default="", server_default="")
    active: so.Mapped[bool] = so.mapped_column(default=True)
    created_at: so.Mapped[datetime] = so.mapped_column(default=utcnow)

    def account(self) -> str:
        """Return the POINTS account that receives this merchant's redemptions."""
        return merchant_address(self.id)

    def settlement_account(self) -> str:
        """Return the POINTS account settled points move to when a period is closed."""
        return f"merchant:{self.id}:settled"


def merchant_address(merchant_id: int) -> str:
    return f"merchant:{merchant_id}:points"


def merchant_scope(merchant_id: int) -> str:
    """Return the ledger scope of a merchant's till account: its flows are summed per day."""
    return f"merchant:{merchant_id}"


class Item(Base):
    """Something a volunteer can redeem: goods with stock, or a service without."""

    __tablename__ = "items"
    __table_args__ = (
        sa.CheckConstraint("price > 0", name="price_positive"),
        sa.CheckConstraint("stock IS NULL OR stock >= 0", name="stock_not_negative"),
        sa.CheckConstraint("monthly_limit IS NULL OR monthly_limit > 0", name="limit_positive"),
        sa.CheckConstraint("status IN ('approved', 'proposed', 'rejected')", name="status_known"),
        sa.CheckConstraint("min_tier IS NULL OR min_tier IN ('bronze', 'silver', 'gold')",
                           name="tier_known"),
        sa.Index("ix_items_merchant_status", "merchant_id", "status", "active"),
    )

    id: so.Mapped[int] = so.mapped_column(primary_key=True)
    merchant_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("merchants.id"))
    name: so.Mapped[str] = so.mapped_column(sa.String(80))
    description: so.Mapped[str] = so.mapped_column(sa.Text, default="")
    category: so.Mapped[str] = so.mapped_column(sa.String(30), default="", index=True)
    photo: so.Mapped[str | None] = so.mapped_column(sa.String(80))
    price: so.Mapped[int] = so.mapped_column(sa.BigInteger)
    # None: unlimited (a service); otherwise units left, reserved ones already taken off.
    stock: so.Mapped[int | None] = so.mapped_column(sa.Integer)
    monthly_limit: so.Mapped[int | None] = so.mapped_column(sa.Integer)
    min_tier: so.Mapped[str | None] = so.mapped_column(sa.String(10))
    valid_from: so.Mapped[date | None]
    valid_to: so.Mapped[date | None]
    active: so.Mapped[bool] = so.mapped_column(default=True)
    status: so.Mapped[str] = so.mapped_column(sa.String(10), default="approved")
    proposed_by: so.Mapped[int | None] = so.mapped_column(sa.Integer)
    created_at: so.Mapped[datetime] = so.mapped_column(default=utcnow)

    merchant: so.Mapped[Merchant] = so.relationship(lazy="joined", innerjoin=True)


class Redemption(Base):
    """A volunteer's claim on an item: points held, stock reserved, a code to show."""

    __tablename__ = "redemptions"
    __table_args__ = (
        sa.CheckConstraint("quantity > 0", name="quantity_positive"),
        sa.CheckConstraint("points > 0", name="points_positive"),
        sa.CheckConstraint(
            "status IN ('reserved', 'fulfilled', 'cancelled', 'expired', 'refunded')",
            name="status_known"),
        sa.Index("ix_redemptions_volunteer", "volunteer_id", "id"),
        sa.Index("ix_redemptions_merchant_fulfilled", "merchant_id", "fulfilled_at"),
        sa.Index("ix_redemptions_status_expiry", "status", "expires_at"),
        sa.Index("ix_redemptions_limit", "volunteer_id", "item_id", "created_at"),
    )

    id: so.Mapped[int] = so.mapped_column(primary_key=True)
    code: so.Mapped[str] = so.mapped_column(sa.String(16), unique=True)
    idempotency_key: so.Mapped[str] = so.mapped_column(sa.String(240), unique=True)
    request_hash: so.Mapped[str] = so.mapped_column(sa.String(64))
    item_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("items.id"))
    merchant_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("merchants.id"))
    # The marketplace knows a volunteer only as an id and a ledger account.
    volunteer_id: so.Mapped[int] = so.mapped_column(sa.Integer)
    volunteer_account: so.Mapped[str] = so.mapped_column(sa.String(200))
    volunteer_label: so.Mapped[str] = so.mapped_column(sa.String(40), default="")
    quantity: so.Mapped[int] = so.mapped_column(sa.Integer)
    unit_price: so.Mapped[int] = so.mapped_column(sa.BigInteger)
    points: so.Mapped[int] = so.mapped_column(sa.BigInteger)
    stock_kept: so.Mapped[bool] = so.mapped_column(default=True)
    status: so.Mapped[str] = so.mapped_column(sa.String(10), default="reserved")
    hold_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("ledger_holds.id"))
    transaction_id: so.Mapped[int | None] = so.mapped_column(
        sa.ForeignKey("ledger_transactions.id"))
    refund_transaction_id: so.Mapped[int | None] = so.mapped_column(
        sa.ForeignKey("ledger_transactions.id"))
    created_at: so.Mapped[datetime] = so.mapped_column(default=utcnow)
    expires_at: so.Mapped[datetime]
    fulfilled_at: so.Mapped[datetime | None]
    fulfilled_by: so.Mapped[int | None] = so.mapped_column(sa.Integer)
    closed_at: so.Mapped[datetime | None]
    refund_reason: so.Mapped[str] = so.mapped_column(sa.String(200), default="")

    item: so.Mapped[Item] = so.relationship(lazy="joined", innerjoin=True)


class Statement(Base):
    """A merchant's frozen settlement for a period: written once, never changed."""

    __tablename__ = "statements"
    __table_args__ = (
        sa.UniqueConstraint("merchant_id", "period_start"),
        sa.CheckConstraint("period_end > period_start", name="period_ordered"),
    )

    id: so.Mapped[int] = so.mapped_column(primary_key=True)
    merchant_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("merchants.id"), index=True)
    period_start: so.Mapped[datetime]
    period_end: so.Mapped[datetime]
    redeemed_points: so.Mapped[int] = so.mapped_column(sa.BigInteger)
    refunded_points: so.Mapped[int] = so.mapped_column(sa.BigInteger)
    net_points: so.Mapped[int] = so.mapped_column(sa.BigInteger)
    fen_per_point: so.Mapped[int] = so.mapped_column(sa.Integer, default=0)
    amount_fen: so.Mapped[int] = so.mapped_column(sa.BigInteger, default=0)
    transaction_id: so.Mapped[int | None] = so.mapped_column(
        sa.ForeignKey("ledger_transactions.id"))
    closed_by: so.Mapped[int | None] = so.mapped_column(sa.Integer)
    closed_at: so.Mapped[datetime] = so.mapped_column(default=utcnow)

    merchant: so.Mapped[Merchant] = so.relationship(lazy="joined", innerjoin=True)


class StatementLine(Base):
    """One redemption (or its refund) counted in a statement; a redemption counts once each."""

    __tablename__ = "statement_lines"
    __table_args__ = (sa.UniqueConstraint("redemption_id", "kind"),)

    id: so.Mapped[int] = so.mapped_column(primary_key=True)
    statement_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("statements.id"), index=True)
    redemption_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("redemptions.id"))
    kind: so.Mapped[str] = so.mapped_column(sa.String(10))
    points: so.Mapped[int] = so.mapped_column(sa.BigInteger)
    at: so.Mapped[datetime]

"""Tables of the double-entry ledger: assets, accounts, balances, transactions, postings, holds."""

from datetime import date, datetime
from typing import Any

import sqlalchemy as sa
import sqlalchemy.orm as so

from ledger.clock import utcnow

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# Points are whole numbers; one posting may move at most a trillion of them, so no sum of
# postings on one account can approach the 64-bit limit.
MAX_AMOUNT = 10**12
HASH_LEN = 64
KEY_LEN = 200
# A client's own request key (an API's Idempotency-Key header, a page's form key) is 1 to
# REQUEST_KEY_LEN characters: with the prefix that scopes it (`redemption:volunteer:42:`)
# it fits in KEY_LEN, and in the key columns of the ledger's callers.
REQUEST_KEY_LEN = 64


def covers(posted: str, pending: str, allow_negative: str = "allow_negative") -> str:
    """The no-overdraft rule, as SQL over the given column expressions.

    Written here once: the balance rows' CHECK constraint and every statement that checks a
    write before making it (ledger.driver) spell it from this function.
    """
    return f"({allow_negative} OR {posted} - {pending} >= 0)"


class Base(so.DeclarativeBase):
    """Declarative base whose metadata every layer of Points Mall shares."""

    metadata = sa.MetaData(naming_convention=NAMING_CONVENTION)


class Asset(Base):
    """A kind of unit the ledger counts (POINTS, MERIT); assets are data, not code."""

    __tablename__ = "ledger_assets"

    code: so.Mapped[str] = so.mapped_column(sa.String(16), primary_key=True)
    name: so.Mapped[str] = so.mapped_column(sa.String(80))


class Account(Base):
    """An addressable account holding one asset; its money lives in one or more balance rows."""

    __tablename__ = "ledger_accounts"
    __table_args__ = (
        # Only accounts that may go negative (issuance, system) are striped: they have no
        # floor to check, so spreading them over rows lets awards run without one hot lock.
        sa.CheckConstraint("stripes >= 1 AND (stripes = 1 OR allow_negative)", name="stripes"),
    )

    id: so.Mapped[int] = so.mapped_column(sa.BigInteger, primary_key=True)
    address: so.Mapped[str] = so.mapped_column(sa.String(200), unique=True)
    asset_code: so.Mapped[str] = so.mapped_column(sa.ForeignKey("ledger_assets.code"))
    allow_negative: so.Mapped[bool] = so.mapped_column(sa.Boolean, default=False)
    stripes: so.Mapped[int] = so.mapped_column(sa.Integer, default=1)
    # The application's label for a group of accounts whose flows are summed per day
    # (`community:3`); None for accounts no report sums.
    scope: so.Mapped[str | None] = so.mapped_column(sa.String(60), index=True)
    created_at: so.Mapped[datetime] = so.mapped_column(sa.DateTime, default=utcnow)


class Balance(Base):
    """One stripe of an account: cached posted and pending amounts and its hash-chain head."""

    __tablename__ = "ledger_balances"
    __table_args__ = (
        sa.UniqueConstraint("account_id", "stripe"),
        sa.CheckConstraint("pending >= 0", name="pending_not_negative"),
        sa.CheckConstraint(covers("posted", "pending"), name="no_overdraft"),
    )

    id: so.Mapped[int] = so.mapped_column(sa.BigInteger, primary_key=True)
    account_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("ledger_accounts.id"))
    stripe: so.Mapped[int] = so.mapped_column(sa.Integer, default=0)
    allow_negative: so.Mapped[bool] = so.mapped_column(sa.Boolean, default=False)
    posted: so.Mapped[int] = so.mapped_column(sa.BigInteger, default=0)
    pending: so.Mapped[int] = so.mapped_column(sa.BigInteger, default=0)
    seq: so.Mapped[int] = so.mapped_column(sa.BigInteger, default=0)
    head_hash: so.Mapped[str] = so.mapped_column(sa.String(HASH_LEN))


class Transaction(Base):
    """A balanced set of postings written at once under one idempotency key; never changed."""

    __tablename__ = "ledger_transactions"

    id: so.Mapped[int] = so.mapped_column(sa.BigInteger, primary_key=True)
    idempotency_key: so.Mapped[str] = so.mapped_column(sa.String(KEY_LEN), unique=True)
    request_hash: so.Mapped[str] = so.mapped_column(sa.String(HASH_LEN))
    kind: so.Mapped[str] = so.mapped_column(sa.String(40))
    memo: so.Mapped[str] = so.mapped_column(sa.Text, default="")
    meta: so.Mapped[dict[str, Any]] = so.mapped_column(sa.JSON, default=dict)
    reverses_id: so.Mapped[int | None] = so.mapped_column(
        sa.ForeignKey("ledger_transactions.id"), unique=True
    )
    created_at: so.Mapped[datetime] = so.mapped_column(sa.DateTime, default=utcnow)
    hash: so.Mapped[str] = so.mapped_column(sa.String(HASH_LEN))

    postings: so.Mapped[list["Posting"]] = so.relationship(
        order_by="Posting.id", viewonly=True
    )


class Posting(Base):
    """One signed amount on one account stripe, chained to the stripe's previous posting."""

    __tablename__ = "ledger_postings"
    __table_args__ = (
        sa.UniqueConstraint("balance_id", "seq"),
        sa.Index("ix_ledger_postings_account_history", "account_id", "id"),
        sa.CheckConstraint("amount <> 0", name="amount_not_zero"),
        sa.CheckConstraint("seq >= 1", name="seq_positive"),
    )

    id: so.Mapped[int] = so.mapped_column(sa.BigInteger, primary_key=True)
    transaction_id: so.Mapped[int] = so.mapped_column(
        sa.ForeignKey("ledger_transactions.id"), index=True
    )
    account_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("ledger_accounts.id"))
    balance_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("ledger_balances.id"))
    asset_code: so.Mapped[str] = so.mapped_column(sa.ForeignKey("ledger_assets.code"))
    amount: so.Mapped[int] = so.mapped_column(sa.BigInteger)
    seq: so.Mapped[int] = so.mapped_column(sa.BigInteger)
    balance_after: so.Mapped[int] = so.mapped_column(sa.BigInteger)
    hash: so.Mapped[str] = so.mapped_column(sa.String(HASH_LEN))


HOLD_STATUSES = ("open", "posted", "voided", "expired")


class Hold(Base):
    """A reservation of an amount on a source account, later posted to a destination or released."""

    __tablename__ = "ledger_holds"
    __table_args__ = (
        sa.CheckConstraint("amount > 0", name="amount_positive"),
        sa.CheckConstraint(
            "status IN ('open', 'posted', 'voided', 'expired')", name="status_known"
        ),
        sa.CheckConstraint(
            "posted_amount IS NULL OR (posted_amount > 0 AND posted_amount <= amount)",
            name="posted_within_hold",
        ),
        sa.Index("ix_ledger_holds_open_expiry", "status", "expires_at"),
    )

    id: so.Mapped[int] = so.mapped_column(sa.BigInteger, primary_key=True)
    idempotency_key: so.Mapped[str] = so.mapped_column(sa.String(KEY_LEN), unique=True)
    request_hash: so.Mapped[str] = so.mapped_column(sa.String(HASH_LEN))
    account_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("ledger_accounts.id"))
    balance_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("ledger_balances.id"), index=True)
    destination_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("ledger_accounts.id"))
    asset_code: so.Mapped[str] = so.mapped_column(sa.ForeignKey("ledger_assets.code"))
    amount: so.Mapped[int] = so.mapped_column(sa.BigInteger)
    status: so.Mapped[str] = so.mapped_column(sa.String(10), default="open")
    kind: so.Mapped[str] = so.mapped_column(sa.String(40))
    memo: so.Mapped[str] = so.mapped_column(sa.Text, default="")
    meta: so.Mapped[dict[str, Any]] = so.mapped_column(sa.JSON, default=dict)
    created_at: so.Mapped[datetime] = so.mapped_column(sa.DateTime, default=utcnow)
    expires_at: so.Mapped[datetime | None] = so.mapped_column(sa.DateTime)
    resolved_at: so.Mapped[datetime | None] = so.mapped_column(sa.DateTime)
    resolution_key: so.Mapped[str | None] = so.mapped_column(sa.String(KEY_LEN), unique=True)
    posted_amount: so.Mapped[int | None] = so.mapped_column(sa.BigInteger)
    transaction_id: so.Mapped[int | None] = so.mapped_column(
        sa.ForeignKey("ledger_transactions.id")
    )

    @property
    def is_open(self) -> bool:
        return self.status == "open"


class Flow(Base):
    """Derived: the credits and debits one kind of transaction made on a scope on one day.

    Written in the same transaction as the postings it sums (see ledger.flows); like the
    cached balances, its rows change, and `verify` checks them against the postings.
    """

    __tablename__ = "ledger_flows"
    __table_args__ = (
        sa.CheckConstraint("credits >= 0 AND debits >= 0 AND postings >= 0",
                           name="sums_not_negative"),
    )

    scope: so.Mapped[str] = so.mapped_column(sa.String(60), primary_key=True)
    asset_code: so.Mapped[str] = so.mapped_column(sa.ForeignKey("ledger_assets.code"),
                                                  primary_key=True)
    kind: so.Mapped[str] = so.mapped_column(sa.String(40), primary_key=True)
    day: so.Mapped[date] = so.mapped_column(sa.Date, primary_key=True)
    slot: so.Mapped[int] = so.mapped_column(sa.SmallInteger, primary_key=True)
    credits: so.Mapped[int] = so.mapped_column(sa.BigInteger, default=0)
    debits: so.Mapped[int] = so.mapped_column(sa.BigInteger, default=0)
    postings: so.Mapped[int] = so.mapped_column(sa.BigInteger, default=0)

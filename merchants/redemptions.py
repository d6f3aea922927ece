"""The redemption lifecycle: reserve, confirm at the counter, cancel, expire, refund.

Each state change is one database transaction in which the redemption row, the item's
stock and the ledger hold move together. Locks are taken in one order everywhere
(redemption row, ledger hold, balance rows, item row), so concurrent changes queue
instead of deadlocking.
"""

import secrets
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from functools import cache

import sqlalchemy as sa
import sqlalchemy.orm as so
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm.attributes import set_committed_value

import ledger
from ledger import REQUEST_KEY_LEN, attach, check_key, request_hash, utcnow
from merchants.errors import (
    InvalidKey,
    InvalidQuantity,
    ItemUnavailable,
    OutOfStock,
    OverPersonalLimit,
    ReasonRequired,
    RedemptionConflict,
    RedemptionNotFulfilled,
    RedemptionNotReserved,
    TierTooLow,
    UnknownItem,
    UnknownRedemption,
)
from merchants.models import TIERS, Item, Merchant, Redemption, merchant_address
from merchants.visibility import serves

# 31 symbols: digits and capitals without 0/O, 1/I/L. Ten of them carry 49.5 bits.
CODE_ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"
CODE_LENGTH = 10
MAX_QUANTITY = 99
LIVE = ("reserved", "fulfilled")

_INSERT_UNLESS_TAKEN = (
    postgresql.insert(Redemption.__table__)
    .on_conflict_do_nothing(index_elements=[Redemption.__table__.c.idempotency_key])
    .returning(Redemption.__table__.c.id))

# The kind of a redemption's hold: released with the redemption (`expire_due`, `cancel`),
# never by the ledger's own sweeper, so that the redemption and its stock go with it.
HOLD_KIND = "redemption"


@dataclass(frozen=True)
class Redeemer:
    """The volunteer as the marketplace knows them: an id, an account, a label, a tier."""

    id: int
    account: str
    label: str
    community_id: int
    tier: str | None = None
    # Working a tier out costs queries: given this, it is asked only by tier-gated items.
    tier_of: Callable[[], str | None] | None = field(default=None, compare=False, repr=False)

    def current_tier(self) -> str | None:
        return self.tier_of() if self.tier_of is not None else self.tier


def new_code() -> str:
    return "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))


def normalise_code(typed: str) -> str:
    """Return a typed or scanned code in stored form (upper case, no spaces or dashes)."""
    return "".join(ch for ch in (typed or "").upper() if ch.isalnum())[:32]


def format_code(code: str) -> str:
    """Return a code as shown to people: two groups of five."""
    return f"{code[:5]}-{code[5:]}"


def reserve(session: so.Session, redeemer: Redeemer, item_id: int, quantity: int, *,
            key: str, hold_days: int = 7, today: date | None = None,
            month_start: datetime | None = None, now: datetime | None = None) -> Redemption:
    """Hold the points and reserve the stock for `quantity` of an item; issue a code.

    `today` and `month_start` come from the caller in the deployment's time zone; the
    same `key` from the same volunteer answers the first redemption again.
    """
    if isinstance(quantity, bool) or not isinstance(quantity, int) or not (
            1 <= quantity <= MAX_QUANTITY):
        raise InvalidQuantity(quantity)
    now = now or utcnow()
    today = today or now.date()
    month_start = month_start or now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    if not isinstance(key, str) or not key.strip() or len(key) > REQUEST_KEY_LEN:
        raise InvalidKey()
    full_key = f"volunteer:{redeemer.id}:{check_key(key)}"
    fingerprint = request_hash("redeem", item_id=item_id, quantity=quantity)
    # bool is an int to Python: True must not stand for item 1.
    is_id = isinstance(item_id, int) and not isinstance(item_id, bool)
    # The item, if this volunteer may redeem there, and what the key already made: one trip.
    row = session.execute(_item_and_key(), {
        "item_id": item_id, "community_id": redeemer.community_id, "key": full_key,
    }).first() if is_id else None
    if row is None:
        # No such item for this volunteer (any more): a retry is still answered.
        earlier = _by_key(session, full_key, fingerprint)
        if earlier is not None:
            return earlier
        raise UnknownItem(item_id)
    item, earlier_id, earlier_hash = row
    if earlier_id is not None:
        if earlier_hash != fingerprint:
            raise RedemptionConflict(full_key.split(":", 2)[-1])
        return session.get(Redemption, earlier_id)
    try:
        return _reserve(session, redeemer, item, quantity, full_key, fingerprint,
                        hold_days, today, month_start, now)
    except ledger.IdempotencyConflict:
        # A concurrent twin with the same key committed while we waited on the volunteer's
        # balance row: its hold has our key with another expiry. ledger.hold refuses
        # before it writes, so nothing of ours is in the transaction: answer with the
        # twin's redemption, as a retry would.
        earlier = _by_key(session, full_key, fingerprint)
        if earlier is None:
            raise
        return earlier


@cache
def _item_and_key() -> sa.Select:
    """An item with its merchant, if it serves a community, beside what a key made.

    Built once, on first use (every model mapped by then), with bound parameters."""
    def by_key(column):
        return (sa.select(column).where(Redemption.idempotency_key == sa.bindparam("key"))
                .scalar_subquery())

    return (sa.select(Item, by_key(Redemption.id), by_key(Redemption.request_hash))
            .join(Item.merchant).options(so.contains_eager(Item.merchant))
            .where(Item.id == sa.bindparam("item_id"),
                   serves(sa.bindparam("community_id"))))


def _reserve(session, redeemer, item, quantity, full_key, fingerprint, hold_days, today,
             month_start, now) -> Redemption:
    _check_available(item, today)
    if item.min_tier:
        tier = redeemer.current_tier()
        if tier is None or TIERS.index(tier) < TIERS.index(item.min_tier):
            raise TierTooLow(item.id, item.min_tier, tier)
    points = item.price * quantity
    # A refusal may follow a write only for an item with stock or a monthly limit: its
    # writes go in a savepoint, so a refusal leaves the transaction as it found it. For
    # other items every refusal comes before the first write (ledger.hold refuses before
    # it writes), and the savepoint's two round trips are saved.
    guarded = item.stock is not None or item.monthly_limit is not None
    with session.begin_nested() if guarded else nullcontext():
        written = _hold_and_write(session, redeemer, item, quantity, points, full_key,
                                  fingerprint, hold_days, month_start, now)
    if written is None:
        return _by_key(session, full_key, fingerprint)
    redemption = attach(session, Redemption, *written)
    set_committed_value(redemption, "item", item)
    return redemption


def _hold_and_write(session, redeemer, item, quantity, points, full_key, fingerprint,
                    hold_days, month_start, now) -> tuple[int, dict] | None:
    """Hold the points, write the redemption, take the stock; None if a twin has the key.

    Returns the redemption's id and the values written.
    """
    # The hold locks the volunteer's balance row: from here on this volunteer's other
    # redemptions wait for us, so the monthly count below cannot be raced.
    held = ledger.hold(
        session, redeemer.account, merchant_address(item.merchant_id), points,
        key=f"redemption:{full_key}", kind=HOLD_KIND, memo=item.name,
        expires_at=now + timedelta(days=hold_days),
        meta={"item_id": item.id, "quantity": quantity}, now=now)
    values = {
        "code": new_code(), "idempotency_key": full_key, "request_hash": fingerprint,
        "item_id": item.id, "merchant_id": item.merchant_id, "volunteer_id": redeemer.id,
        "volunteer_account": redeemer.account, "volunteer_label": redeemer.label,
        "quantity": quantity, "unit_price": item.price, "points": points,
        "stock_kept": item.stock is not None, "status": "reserved", "hold_id": held.id,
        "created_at": now, "expires_at": held.expires_at, "refund_reason": "",
        "transaction_id": None, "refund_transaction_id": None, "fulfilled_at": None,
        "fulfilled_by": None, "closed_at": None}
    # Written before the stock is taken: if a twin with our key committed while we waited
    # on the balance row (and ledger.hold answered with its hold), the key is taken and
    # nothing of ours has been written yet.
    redemption_id = session.execute(_INSERT_UNLESS_TAKEN, values).scalar_one_or_none()
    if redemption_id is None:
        return None
    if item.monthly_limit is not None:
        taken = session.scalar(
            sa.select(sa.func.coalesce(sa.func.sum(Redemption.quantity), 0)).where(
                Redemption.volunteer_id == redeemer.id, Redemption.item_id == item.id,
                Redemption.status.in_(LIVE), Redemption.created_at >= month_start,
                Redemption.id != redemption_id))  # ours is written already: not counted
        if taken + quantity > item.monthly_limit:
            raise OverPersonalLimit(item.id, item.monthly_limit, int(taken))
    if item.stock is not None:
        taken = session.execute(
            sa.update(Item).where(Item.id == item.id, Item.stock >= quantity)
            .values(stock=Item.stock - quantity)
            .execution_options(synchronize_session=False))
        if taken.rowcount != 1:
            left = session.scalar(sa.select(Item.stock).where(Item.id == item.id))
            raise OutOfStock(item.id, quantity, left)
        session.expire(item, ["stock"])  # taken by a Core UPDATE: read it afresh when asked
    return redemption_id, values


def _check_available(item: Item, today: date) -> None:
    if not item.active or item.status != "approved" or not item.merchant.active:
        raise ItemUnavailable(item.id, "inactive")
    if item.valid_from and today < item.valid_from:
        raise ItemUnavailable(item.id, "not_yet_valid")
    if item.valid_to and today > item.valid_to:
        raise ItemUnavailable(item.id, "no_longer_valid")


_KEY_LOOKUP = sa.select(Redemption.id, Redemption.request_hash).where(
    Redemption.idempotency_key == sa.bindparam("key"))


def _by_key(session: so.Session, full_key: str, fingerprint: str) -> Redemption | None:
    # The common answer is "no such key": two columns are asked for, the row only if found.
    found = session.execute(_KEY_LOOKUP, {"key": full_key}).first()
    if found is None:
        return None
    if found.request_hash != fingerprint:
        raise RedemptionConflict(full_key.split(":", 2)[-1])
    return session.get(Redemption, found.id)


_UPDATE_BY_ID = sa.update(Redemption.__table__).where(
    Redemption.__table__.c.id == sa.bindparam("redemption_id"))


def find_by_code(session: so.Session, merchant_id: int, code: str, *,
                 lock: bool = False) -> Redemption:
    """Return the merchant's redemption with this code; another merchant's is unknown.

    With `lock`, the row is locked for the rest of the transaction and read afresh, as
    `confirm_found` needs it.
    """
    found = session.scalar(by_code(code, lock=lock))
    if found is None or found.merchant_id != merchant_id:
        raise UnknownRedemption()
    return found


def by_code(code: str, *, lock: bool = False) -> sa.Select:
    """The statement that reads the redemption with a code (any merchant's), as find_by_code."""
    # The item and its merchant come in the same round trip: the counter shows the item,
    # and the confirmation's record names the merchant's community.
    query = (sa.select(Redemption).where(Redemption.code == normalise_code(code))
             .options(so.joinedload(Redemption.item).joinedload(Item.merchant)))
    if lock:
        query = query.with_for_update(of=Redemption).execution_options(populate_existing=True)
    return query


def _lock(session: so.Session, condition) -> Redemption | None:
    return session.scalar(
        sa.select(Redemption).where(condition).with_for_update(of=Redemption)
        .execution_options(populate_existing=True))


def confirm(session: so.Session, merchant_id: int, code: str, *, confirmed_by: int,
            now: datetime | None = None) -> Redemption:
    """Hand the item over: post the held points to the merchant, once."""
    return confirm_found(session, find_by_code(session, merchant_id, code, lock=True),
                         confirmed_by=confirmed_by, now=now)


def confirm_found(session: so.Session, redemption: Redemption, *, confirmed_by: int,
                  now: datetime | None = None) -> Redemption:
    """Confirm a redemption found by `find_by_code(..., lock=True)` in this transaction.

    ledger.post_hold refuses before it writes, so a refusal leaves nothing to undo here.
    """
    now = now or utcnow()
    if redemption.status != "reserved":
        raise RedemptionNotReserved(redemption.id, redemption.status)
    if now >= redemption.expires_at:
        raise RedemptionNotReserved(redemption.id, "expired")
    tx = ledger.post_hold(session, redemption.hold_id,
                          key=f"redemption:{redemption.id}:confirm", now=now)
    changes = {"status": "fulfilled", "transaction_id": tx.id, "fulfilled_at": now,
               "fulfilled_by": confirmed_by}
    session.execute(_UPDATE_BY_ID, {"redemption_id": redemption.id, **changes})
    for attribute, value in changes.items():
        set_committed_value(redemption, attribute, value)
    return redemption


def cancel(session: so.Session, volunteer_id: int, redemption_id: int, *,
           now: datetime | None = None) -> Redemption:
    """Let the volunteer take back a reserved redemption: points and stock return."""
    redemption = _lock(session, Redemption.id == redemption_id) if isinstance(
        redemption_id, int) else None
    if redemption is None or redemption.volunteer_id != volunteer_id:
        raise UnknownRedemption()
    if redemption.status != "reserved":
        raise RedemptionNotReserved(redemption.id, redemption.status)
    with session.begin_nested():
        _release(session, [redemption], "cancelled", now or utcnow())
    return redemption


def expire_due(session: so.Session, *, now: datetime | None = None,
               limit: int = 500) -> list[int]:
    """Expire reserved redemptions past their deadline; safe to run in parallel, repeatedly."""
    now = now or utcnow()
    with session.begin_nested():
        due = list(session.scalars(
            sa.select(Redemption)
            .where(Redemption.status == "reserved", Redemption.expires_at <= now)
            .order_by(Redemption.id).limit(limit)
            .with_for_update(skip_locked=True, of=Redemption)
            .execution_options(populate_existing=True)))
        _release(session, due, "expired", now)
    return [r.id for r in due]


def _release(session: so.Session, redemptions: list[Redemption], status: str,
             now: datetime) -> None:
    """Void the holds of locked, reserved redemptions, return their stock, close them.

    Locks go in one order, each kind in id order: the ledger locks the holds and then the
    balance rows (ledger.void_holds), then the items here. Released one by one, redemption
    after redemption, the locks would interleave (hold, balance, item, hold, balance, ...)
    and cross a volunteer's reservation (balance, item): a deadlock. A hold the ledger's own
    sweeper (`flask ledger expire-holds`) has released already is left as it is.
    """
    if not redemptions:
        return
    ledger.void_holds(session, [(r.hold_id, f"redemption:{r.id}:{status}")
                                for r in redemptions], now=now)
    items = sorted({r.item_id for r in redemptions if r.stock_kept})
    if items:
        session.execute(sa.select(Item.id).where(Item.id.in_(items)).order_by(Item.id)
                        .with_for_update())
    for redemption in redemptions:
        _return_stock(session, redemption)
        redemption.status, redemption.closed_at = status, now
    session.flush()


def _return_stock(session: so.Session, redemption: Redemption) -> None:
    if redemption.stock_kept:
        session.execute(
            sa.update(Item).where(Item.id == redemption.item_id, Item.stock.is_not(None))
            .values(stock=Item.stock + redemption.quantity)
            .execution_options(synchronize_session=False))
        session.expire(redemption.item, ["stock"])


def refund(session: so.Session, redemption_id: int, *, reason: str,
           merchant_id: int | None = None, community_id: int | None = None,
           now: datetime | None = None) -> Redemption:
    """Give back a fulfilled redemption: reverse its points and return its stock.

    A merchant refunds its own redemptions; staff (community_id) those of merchants
    their community manages.
    """
    reason = (reason or "").strip()
    if not reason or len(reason) > 200:
        raise ReasonRequired()
    redemption = _lock(session, Redemption.id == redemption_id) if isinstance(
        redemption_id, int) else None
    if redemption is None or not _may_refund(session, redemption, merchant_id, community_id):
        raise UnknownRedemption()
    if redemption.status != "fulfilled":
        raise RedemptionNotFulfilled(redemption.id, redemption.status)
    now = now or utcnow()
    with session.begin_nested():
        tx = ledger.reverse(session, redemption.transaction_id,
                            key=f"redemption:{redemption.id}:refund", memo=reason,
                            kind="refund", meta={"redemption_id": redemption.id}, now=now)
        _return_stock(session, redemption)
        redemption.status, redemption.refund_transaction_id = "refunded", tx.id
        redemption.refund_reason, redemption.closed_at = reason, now
        session.flush()
    return redemption


def _may_refund(session: so.Session, redemption: Redemption, merchant_id: int | None,
                community_id: int | None) -> bool:
    if merchant_id is not None:
        return redemption.merchant_id == merchant_id
    if community_id is not None:
        return session.get(Merchant, redemption.merchant_id).community_id == community_id
    return False


def volunteer_redemptions(session: so.Session, volunteer_id: int, *, limit: int = 50,
                          before: int | None = None) -> list[Redemption]:
    """Return a volunteer's redemptions, newest first."""
    query = (sa.select(Redemption).where(Redemption.volunteer_id == volunteer_id)
             .order_by(Redemption.id.desc()).limit(limit))
    if before:
        query = query.where(Redemption.id < before)
    return list(session.scalars(query))


def get_for_volunteer(session: so.Session, volunteer_id: int, redemption_id: int) -> Redemption:
    found = session.get(Redemption, redemption_id)
    if found is None or found.volunteer_id != volunteer_id:
        raise UnknownRedemption()
    return found

"""Two-phase holds: reserve an amount now, post it (all or part) or release it later."""

from datetime import datetime

import sqlalchemy as sa
import sqlalchemy.orm as so

from ledger import chain
from ledger.accounts import get_accounts
from ledger.errors import (
    AssetMismatch,
    HoldAlreadyPosted,
    HoldAlreadyVoided,
    HoldAmountExceeded,
    HoldExpired,
    IdempotencyConflict,
    InsufficientFunds,
    InvalidTransaction,
    UnknownHold,
)
from ledger.models import Account, Balance, Hold, Transaction
from ledger.writes import (
    check_amount,
    check_key,
    check_memo,
    check_now,
    check_text,
    check_time,
    find_by_key,
    lock_balances,
    lock_balances_by_id,
    new_transaction,
    once,
    post_entries,
    stripe_for,
)

_NOT_OPEN = {"posted": HoldAlreadyPosted, "voided": HoldAlreadyVoided, "expired": HoldExpired}


def hold(session: so.Session, source: str, destination: str, amount: int, *, key: str,
         kind: str, expires_at: datetime | None = None, memo: str = "",
         meta: dict | None = None, now: datetime | None = None) -> Hold:
    """Reserve `amount` on `source` for `destination`; available = posted - pending."""
    check_key(key)
    check_amount(amount)
    kind, memo, meta = check_text(kind, memo, meta)
    now = check_now(now)
    if expires_at is not None:
        expires_at = check_time(expires_at, "expires_at")
    if source == destination:
        raise InvalidTransaction("a hold's source and destination differ")
    request_hash = chain.request_hash(
        "hold", source=source, destination=destination, amount=amount, kind=kind, memo=memo,
        meta=meta, expires_at=expires_at,
    )

    def write() -> Hold:
        # Checked here, after the key was looked up: a retry of a hold that was made in time
        # answers that hold even once its deadline has passed.
        if expires_at is not None and expires_at <= now:
            raise InvalidTransaction("a hold must expire in the future")
        accounts = get_accounts(session, [source, destination])
        src, dst = accounts[source], accounts[destination]
        if src.asset_code != dst.asset_code:
            raise AssetMismatch(destination, dst.asset_code, src.asset_code)
        stripe = stripe_for(src)
        balance = lock_balances(session, [(src.id, stripe)])[(src.id, stripe)]
        available = balance.posted - balance.pending
        if not balance.allow_negative and available < amount:
            raise InsufficientFunds(source, amount, available)
        balance.pending += amount
        row = Hold(
            idempotency_key=key, request_hash=request_hash, account_id=src.id,
            balance_id=balance.id, destination_id=dst.id, asset_code=src.asset_code,
            amount=amount, status="open", kind=kind, memo=memo, meta=meta, created_at=now,
            expires_at=expires_at,
        )
        session.add(row)
        session.flush()
        return row

    return once(session, Hold, key, request_hash, write)


def post_hold(session: so.Session, hold_id: int, *, key: str, amount: int | None = None,
              memo: str | None = None, now: datetime | None = None) -> Transaction:
    """Post an open hold to its destination, all of it or `amount` of it, releasing the rest."""
    check_key(key)
    if not _is_id(hold_id):
        raise UnknownHold(hold_id)
    if amount is not None:
        check_amount(amount)
    if memo is not None:
        check_memo(memo)
    request_hash = chain.request_hash("post_hold", hold_id=hold_id, amount=amount, memo=memo)
    now = check_now(now)

    def refuse_key_of_another_resolution() -> None:
        # The key may already have voided (or posted) another hold: that is a conflict too.
        earlier = session.scalar(sa.select(Hold).where(Hold.resolution_key == key))
        if earlier is not None and (earlier.id != hold_id or earlier.status != "posted"):
            raise IdempotencyConflict(key)

    def write() -> Transaction:
        row = _lock_hold(session, hold_id)
        if row.status == "posted" and row.resolution_key == key:
            # A concurrent twin of this very request posted it while we waited on the lock.
            return find_by_key(session, Transaction, key, request_hash)
        _refuse_unless_open(row)
        if row.expires_at is not None and row.expires_at <= now:
            raise HoldExpired(row.id)
        posted = row.amount if amount is None else amount
        if posted > row.amount:
            raise HoldAmountExceeded(row.id, row.amount, posted)
        src = session.get(Account, row.account_id)
        dst = session.get(Account, row.destination_id)
        tx = new_transaction(session, key=key, request_hash=request_hash, kind=row.kind,
                             memo=row.memo if memo is None else memo,
                             meta={**row.meta, "hold_id": row.id}, now=now)
        dst_stripe = stripe_for(dst)
        locked = lock_balances(session, [(src.id, _stripe(session, row)), (dst.id, dst_stripe)])
        src_balance = next(b for b in locked.values() if b.id == row.balance_id)
        src_balance.pending -= row.amount
        post_entries(session, tx, [
            (src, src_balance, -posted), (dst, locked[(dst.id, dst_stripe)], posted),
        ])
        row.status, row.posted_amount, row.transaction_id = "posted", posted, tx.id
        row.resolved_at, row.resolution_key = now, key
        session.flush()
        return tx

    refuse_key_of_another_resolution()
    return once(session, Transaction, key, request_hash, write,
                refuse_key_of_another_resolution)


def void_hold(session: so.Session, hold_id: int, *, key: str,
              now: datetime | None = None) -> Hold:
    """Release an open hold, returning its amount to the available balance."""
    check_key(key)
    now = check_now(now)
    earlier = session.scalar(sa.select(Hold).where(Hold.resolution_key == key))
    if earlier is not None:
        if earlier.id != hold_id or earlier.status != "voided":
            raise IdempotencyConflict(key)
        return earlier
    with session.begin_nested():
        row = _lock_hold(session, hold_id)
        if row.status == "voided" and row.resolution_key == key:
            return row
        _refuse_unless_open(row)
        _release(session, row, "voided", key, now)
    return row


def expire_holds(session: so.Session, *, now: datetime | None = None,
                 limit: int = 1000) -> list[int]:
    """Release open holds past their deadline; safe to run in several processes at once."""
    now = check_now(now)
    with session.begin_nested():
        due = list(session.scalars(
            sa.select(Hold)
            .where(Hold.status == "open", Hold.expires_at <= now)
            .order_by(Hold.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
            .execution_options(populate_existing=True)
        ))
        # Lock every balance row concerned at once, in id order: released one by one in hold
        # order, two sweepers would lock the same rows in different orders and deadlock.
        balances = lock_balances_by_id(session, {row.balance_id for row in due})
        for row in due:
            balances[row.balance_id].pending -= row.amount
            row.status, row.resolved_at, row.resolution_key = "expired", now, None
        session.flush()
    return [row.id for row in due]


def get_hold(session: so.Session, hold_id: int) -> Hold:
    """Return the hold with this id or raise UnknownHold."""
    row = session.get(Hold, hold_id) if _is_id(hold_id) else None
    if row is None:
        raise UnknownHold(hold_id)
    return row


def find_hold(session: so.Session, key: str) -> Hold | None:
    """Return the hold created under idempotency key `key`, if any."""
    return session.scalar(sa.select(Hold).where(Hold.idempotency_key == key))


def _lock_hold(session: so.Session, hold_id: int) -> Hold:
    if not _is_id(hold_id):
        raise UnknownHold(hold_id)
    row = session.scalar(
        sa.select(Hold).where(Hold.id == hold_id).with_for_update()
        .execution_options(populate_existing=True)
    )
    if row is None:
        raise UnknownHold(hold_id)
    return row


def _refuse_unless_open(row: Hold) -> None:
    if row.status != "open":
        raise _NOT_OPEN[row.status](row.id)


def _release(session: so.Session, row: Hold, status: str, key: str | None,
             now: datetime) -> None:
    balance = lock_balances_by_id(session, [row.balance_id])[row.balance_id]
    balance.pending -= row.amount
    row.status, row.resolved_at, row.resolution_key = status, now, key
    session.flush()


def _stripe(session: so.Session, row: Hold) -> int:
    return session.get(Balance, row.balance_id).stripe


def _is_id(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


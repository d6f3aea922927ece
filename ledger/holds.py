"""Two-phase holds: reserve an amount now, post it (all or part) or release it later."""

import random
from collections.abc import Sequence
from datetime import datetime

import sqlalchemy as sa
import sqlalchemy.orm as so
from sqlalchemy.orm.attributes import set_committed_value

from ledger import chain
from ledger.driver import HOLD_COLUMNS, Driver
from ledger.errors import (
    AssetMismatch,
    HoldAlreadyPosted,
    HoldAlreadyVoided,
    HoldAmountExceeded,
    HoldExpired,
    IdempotencyConflict,
    InsufficientFunds,
    InvalidTransaction,
    UnknownAccount,
    UnknownHold,
)
from ledger.models import Balance, Hold, Transaction
from ledger.writes import (
    LockedAccount,
    attach,
    check_amount,
    check_key,
    check_memo,
    check_now,
    check_text,
    check_time,
    find_by_key,
    lock_balances_by_id,
    transaction_values,
    write_new,
)

_NOT_OPEN = {"posted": HoldAlreadyPosted, "voided": HoldAlreadyVoided, "expired": HoldExpired}


def hold(session: so.Session, source: str, destination: str, amount: int, *, key: str,
         kind: str, expires_at: datetime | None = None, memo: str = "",
         meta: dict | None = None, now: datetime | None = None) -> Hold:
    """Reserve `amount` on `source` for `destination`; available = posted - pending.

    One statement (ledger.driver): lock the source's stripe, check, insert the hold unless a
    twin took its key, add to pending. It writes only if every rule holds, so a refusal
    needs no savepoint; the rules here only name it from what the statement read.
    """
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
    values = {
        "idempotency_key": key, "request_hash": request_hash, "amount": amount,
        "status": "open", "kind": kind, "memo": memo, "meta": meta, "created_at": now,
        "expires_at": expires_at,
    }
    session.flush()
    driver = Driver(session)
    found = driver.hold(values, source=source, destination=destination,
                        pick=random.getrandbits(30))
    if found is None:
        earlier = find_by_key(session, Hold, key, request_hash)
        if earlier is not None:
            return earlier
        raise UnknownAccount(source)
    (src_id, asset, balance_id, _allow_negative, posted, pending, dst_id, dst_asset, taken,
     covered, hold_id) = found
    if hold_id is None:
        # Nothing was written: name the refusal from what the statement read, or answer
        # with the hold the key made (a retry, or a concurrent twin that committed it
        # while we waited on the balance row).
        earlier = find_by_key(session, Hold, key, request_hash)
        if taken is None:
            if earlier is None and expires_at is not None and expires_at <= now:
                raise InvalidTransaction("a hold must expire in the future")
            if dst_id is None:
                raise UnknownAccount(destination)
            if asset != dst_asset:
                raise AssetMismatch(destination, dst_asset, asset)
            if earlier is None and not covered:
                raise InsufficientFunds(source, amount, posted - pending)
        if earlier is None:  # cannot be: the statement and the checks above disagree
            raise InvalidTransaction(f"hold {key!r} was neither written nor found")
        return earlier
    values.update(account_id=src_id, balance_id=balance_id, destination_id=dst_id,
                  asset_code=asset)
    _refresh_balance(session, balance_id, pending=pending + amount)
    return attach(session, Hold, hold_id, values)


class _HoldRow:
    """A hold's row as ledger.driver locks it (HOLD_COLUMNS), by attribute."""

    __slots__ = HOLD_COLUMNS

    def __init__(self, values: tuple) -> None:
        for name, value in zip(HOLD_COLUMNS, values, strict=True):
            setattr(self, name, value)


def post_hold(session: so.Session, hold_id: int, *, key: str, amount: int | None = None,
              memo: str | None = None, now: datetime | None = None) -> Transaction:
    """Post an open hold to its destination, all of it or `amount` of it, releasing the rest.

    Two statements (ledger.driver): lock the hold, reading what its key already did, and
    then both ends; write the transaction with its postings, balances and flows and mark
    the hold posted, if both ends stay covered. Every refusal comes before the first write,
    so none needs a savepoint.
    """
    check_key(key)
    if not _is_id(hold_id):
        raise UnknownHold(hold_id)
    if amount is not None:
        check_amount(amount)
    if memo is not None:
        check_memo(memo)
    request_hash = chain.request_hash("post_hold", hold_id=hold_id, amount=amount, memo=memo)
    now = check_now(now)
    session.flush()
    driver = Driver(session)
    locked = driver.lock_hold_and_ends(hold_id, key, random.getrandbits(30))
    row = _HoldRow(locked[0][:len(HOLD_COLUMNS)]) if locked else None
    ends_rows = [r[len(HOLD_COLUMNS):] for r in locked if r[len(HOLD_COLUMNS)] is not None]
    # The key may already have resolved another hold, or voided this one: a conflict.
    if row is not None and (row.key_resolved_other is not None or (
            row.resolution_key == key and row.status != "posted")):
        raise IdempotencyConflict(key)
    if row is None:
        if find_by_key(session, Transaction, key, request_hash) is not None:
            raise IdempotencyConflict(key)  # the key of another transaction
        raise UnknownHold(hold_id)
    if row.key_tx is not None or (row.status == "posted" and row.resolution_key == key):
        # A retry; or a twin that posted it while we waited on the lock (the row is read
        # after the wait, the subquery before it); or the key of something else
        # (find_by_key raises the conflict).
        return find_by_key(session, Transaction, key, request_hash)
    if row.status != "open":
        raise _NOT_OPEN[row.status](row.id)
    if row.expires_at is not None and row.expires_at <= now:
        raise HoldExpired(row.id)
    posted = row.amount if amount is None else amount
    if posted > row.amount:
        raise HoldAmountExceeded(row.id, row.amount, posted)
    ends = [LockedAccount(r[:LockedAccount.COLUMNS]) for r in ends_rows]
    src = next(e for e in ends if e.balance_id == row.balance_id)
    dst = next(e for e in ends if e.id == row.destination_id and e is not src)
    src.pending -= row.amount
    entries = [(src, src, -posted), (dst, dst, posted)]
    values = transaction_values(key=key, request_hash=request_hash, kind=row.kind,
                                memo=row.memo if memo is None else memo,
                                meta={**row.meta, "hold_id": row.id}, now=now)
    tx = write_new(session, driver, values, ends_rows[0][LockedAccount.COLUMNS], entries,
                   posts_hold=(row.id, posted))
    if tx is None:
        return find_by_key(session, Transaction, key, request_hash)
    changes = {"status": "posted", "posted_amount": posted, "transaction_id": tx.id,
               "resolved_at": now, "resolution_key": key}
    stale = session.identity_map.get(so.util.identity_key(Hold, row.id))
    if stale is not None:
        for attribute, value in changes.items():
            set_committed_value(stale, attribute, value)
    return tx


def _refresh_balance(session: so.Session, balance_id: int, **values) -> None:
    """Tell a Balance the session holds what a Core statement just wrote to its row."""
    balance = session.identity_map.get(so.util.identity_key(Balance, balance_id))
    if balance is not None:
        for attribute, value in values.items():
            set_committed_value(balance, attribute, value)


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
    if not _is_id(hold_id):
        raise UnknownHold(hold_id)
    with session.begin_nested():
        row = next(iter(_lock_holds(session, [hold_id])), None)
        if row is None:
            raise UnknownHold(hold_id)
        if row.status == "voided" and row.resolution_key == key:
            return row
        if row.status != "open":
            raise _NOT_OPEN[row.status](row.id)
        _release(session, [(row, key)], "voided", now)
    return row


def void_holds(session: so.Session, holds: Sequence[tuple[int, str]], *,
               now: datetime | None = None) -> dict[int, Hold]:
    """Release those of these (hold id, key) that are still open, each under its key.

    For a caller that releases many at once (a sweep of expired redemptions) or must know
    a hold's state before it goes on: the holds are locked in id order, then the stripes
    of the open ones in id order, as every writer of the ledger locks them. Holds no longer
    open (posted, expired by `expire_holds`, voided) are left as they are. Return every
    hold by id, fresh.
    """
    now = check_now(now)
    keys = {}
    for hold_id, key in holds:
        if not _is_id(hold_id):
            raise UnknownHold(hold_id)
        keys[hold_id] = check_key(key)
    if len(set(keys.values())) != len(keys):
        raise IdempotencyConflict(next(k for k in keys.values()
                                       if list(keys.values()).count(k) > 1))
    for hold_id, key in session.execute(
            sa.select(Hold.id, Hold.resolution_key)
            .where(Hold.resolution_key.in_(list(keys.values())))):
        if keys.get(hold_id) != key:
            raise IdempotencyConflict(key)  # the key already resolved another hold
    with session.begin_nested():
        rows = _lock_holds(session, list(keys))
        _release(session, [(row, keys[row.id]) for row in rows if row.status == "open"],
                 "voided", now)
    return {row.id: row for row in rows}


def expire_holds(session: so.Session, *, now: datetime | None = None,
                 limit: int = 1000, leave_kinds: Sequence[str] = ()) -> list[int]:
    """Release open holds past their deadline; safe to run in several processes at once.

    Holds of `leave_kinds` are left to their owner, which releases them with its own record
    (a redemption's hold goes with the redemption and its stock).
    """
    now = check_now(now)
    with session.begin_nested():
        due = list(session.scalars(
            sa.select(Hold)
            .where(Hold.status == "open", Hold.expires_at <= now,
                   Hold.kind.not_in(leave_kinds))
            .order_by(Hold.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
            .execution_options(populate_existing=True)
        ))
        _release(session, [(row, None) for row in due], "expired", now)
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


def _lock_holds(session: so.Session, ids: list[int]) -> list[Hold]:
    """Lock holds in id order and return them fresh."""
    return list(session.scalars(
        sa.select(Hold).where(Hold.id.in_(ids)).order_by(Hold.id).with_for_update()
        .execution_options(populate_existing=True)
    ))


def _release(session: so.Session, rows: list[tuple[Hold, str | None]], status: str,
             now: datetime) -> None:
    """Release locked, open holds (each with its resolution key): their stripes' pending
    goes down. Every stripe concerned is locked at once, in id order: released one by one
    in hold order, two sweepers would lock the same rows in different orders and deadlock."""
    if not rows:
        return
    balances = lock_balances_by_id(session, {row.balance_id for row, _key in rows})
    for row, key in rows:
        balances[row.balance_id].pending -= row.amount
        row.status, row.resolved_at, row.resolution_key = status, now, key
    session.flush()


def _is_id(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


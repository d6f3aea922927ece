"""Two-phase holds: reserve an amount now, post it (all or part) or release it later."""

import random
from datetime import datetime

import sqlalchemy as sa
import sqlalchemy.orm as so
from sqlalchemy.dialects import sqlite
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
from ledger.models import Account, Balance, Hold, Transaction
from ledger.writes import (
    LockedAccount,
    attach,
    check_amount,
    check_funds,
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


_HOLDS, _ACCOUNTS, _BALANCES = Hold.__table__, Account.__table__, Balance.__table__
_TRANSACTIONS = Transaction.__table__
_DESTINATION = _ACCOUNTS.alias("destination")
_OTHER_HOLD = _HOLDS.alias("other_hold")

# hold() on SQLite, in one round trip: the source account and one stripe of it, locked; the
# destination's id and asset; and whether the idempotency key already made a hold.
# (PostgreSQL does the whole hold in one statement: ledger.driver._PG_HOLD.)
_LOCK_SOURCE = (
    sa.select(_ACCOUNTS.c.id, _ACCOUNTS.c.asset_code, _BALANCES.c.id, _BALANCES.c.allow_negative,
              _BALANCES.c.posted, _BALANCES.c.pending,
              sa.select(_DESTINATION.c.id).where(_DESTINATION.c.address == sa.bindparam("dst"))
              .scalar_subquery(),
              sa.select(_DESTINATION.c.asset_code)
              .where(_DESTINATION.c.address == sa.bindparam("dst")).scalar_subquery(),
              sa.select(_HOLDS.c.id).where(_HOLDS.c.idempotency_key == sa.bindparam("key"))
              .scalar_subquery())
    .join_from(_ACCOUNTS, _BALANCES, _BALANCES.c.account_id == _ACCOUNTS.c.id)
    .where(_ACCOUNTS.c.address == sa.bindparam("src"),
           _BALANCES.c.stripe == sa.bindparam("pick", type_=sa.Integer) % _ACCOUNTS.c.stripes)
    .with_for_update(of=_BALANCES, key_share=True)
)
_INSERT_HOLD_UNLESS_TAKEN = (
    sqlite.insert(_HOLDS).on_conflict_do_nothing(index_elements=[_HOLDS.c.idempotency_key])
    .returning(_HOLDS.c.id))
_ADD_PENDING = (_BALANCES.update().where(_BALANCES.c.id == sa.bindparam("b_id"))
                .values(pending=_BALANCES.c.pending + sa.bindparam("b_amount")))
# post_hold(), first round trip: the hold, locked, and what its key and resolution key
# already did.
_LOCK_HOLD = (
    sa.select(_HOLDS, sa.select(_TRANSACTIONS.c.id)
              .where(_TRANSACTIONS.c.idempotency_key == sa.bindparam("key"))
              .scalar_subquery().label("key_tx"),
              sa.select(_OTHER_HOLD.c.id)
              .where(_OTHER_HOLD.c.resolution_key == sa.bindparam("key"),
                     _OTHER_HOLD.c.id != sa.bindparam("hold_id"))
              .scalar_subquery().label("key_resolved_other"))
    .where(_HOLDS.c.id == sa.bindparam("hold_id"))
    .with_for_update(of=_HOLDS)
)
def hold(session: so.Session, source: str, destination: str, amount: int, *, key: str,
         kind: str, expires_at: datetime | None = None, memo: str = "",
         meta: dict | None = None, now: datetime | None = None) -> Hold:
    """Reserve `amount` on `source` for `destination`; available = posted - pending.

    One statement on PostgreSQL (ledger.driver); on SQLite three: find and lock (the key
    checked in the same trip), insert the hold unless a twin took its key, add to pending.
    Every refusal comes before the first write, so none needs a savepoint.
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
    pick = random.getrandbits(30)
    if driver.postgres:
        found = driver.hold(values, source=source, destination=destination, pick=pick)
    else:
        found = driver.connection.execute(_LOCK_SOURCE, {
            "src": source, "dst": destination, "key": key, "pick": pick}).first()
    if found is None:
        earlier = find_by_key(session, Hold, key, request_hash)
        if earlier is not None:
            return earlier
        raise UnknownAccount(source)
    src_id, asset, balance_id, allow_negative, posted, pending, dst_id, dst_asset, taken = (
        found[:9])
    # On PostgreSQL the statement wrote the hold if every rule below held; the rules then
    # only name a refusal (or find the twin that took the key), and never follow a write.
    written = found[9] if driver.postgres else None
    if written is None:
        if taken is not None:
            # A retry: the first answer, even once its deadline has passed (checked below only
            # for new holds).
            return find_by_key(session, Hold, key, request_hash)
        if expires_at is not None and expires_at <= now:
            # A twin may have made it in time while we waited on the lock: its hold answers.
            earlier = find_by_key(session, Hold, key, request_hash)
            if earlier is not None:
                return earlier
            raise InvalidTransaction("a hold must expire in the future")
        if dst_id is None:
            raise UnknownAccount(destination)
        if asset != dst_asset:
            raise AssetMismatch(destination, dst_asset, asset)
        if not allow_negative and posted - pending < amount:
            # The key was read before the wait on the lock: a twin that committed meanwhile may
            # be what spent the points, and its hold is then the answer, as for a retry.
            earlier = find_by_key(session, Hold, key, request_hash)
            if earlier is not None:
                return earlier
            raise InsufficientFunds(source, amount, posted - pending)
    values.update(account_id=src_id, balance_id=balance_id, destination_id=dst_id,
                  asset_code=asset)
    if driver.postgres:
        hold_id = written  # with the pending, by the same statement
    else:
        hold_id = driver.connection.execute(
            _INSERT_HOLD_UNLESS_TAKEN, values).scalar_one_or_none()
        if hold_id is not None:
            driver.connection.execute(_ADD_PENDING, {"b_id": balance_id, "b_amount": amount})
    if hold_id is None:
        # Every rule held, so a concurrent twin committed the key while we waited on the
        # balance row.
        earlier = find_by_key(session, Hold, key, request_hash)
        if earlier is None:  # cannot be: the statement and the checks above disagree
            raise InvalidTransaction(f"hold {key!r} was neither written nor found")
        return earlier
    _refresh_balance(session, balance_id, pending=pending + amount)
    return attach(session, Hold, hold_id, values)


class _HoldRow:
    """A hold's row as the PostgreSQL lock reads it (HOLD_COLUMNS), by attribute."""

    __slots__ = HOLD_COLUMNS

    def __init__(self, values: tuple) -> None:
        for name, value in zip(HOLD_COLUMNS, values, strict=True):
            setattr(self, name, value)


def post_hold(session: so.Session, hold_id: int, *, key: str, amount: int | None = None,
              memo: str | None = None, now: datetime | None = None) -> Transaction:
    """Post an open hold to its destination, all of it or `amount` of it, releasing the rest.

    Two statements on PostgreSQL (ledger.driver): lock the hold, reading what its key
    already did, and then both ends; write the transaction with its postings, balances
    and flows and mark the hold posted. On SQLite the same steps take a few more. Every
    refusal comes before the first write, so none needs a savepoint.
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
    pick = random.getrandbits(30)
    if driver.postgres:
        locked = driver.lock_hold_and_ends(hold_id, key, pick)
        row = _HoldRow(locked[0][:len(HOLD_COLUMNS)]) if locked else None
        ends_rows = [r[len(HOLD_COLUMNS):] for r in locked if r[len(HOLD_COLUMNS)] is not None]
    else:
        row = driver.connection.execute(_LOCK_HOLD, {"hold_id": hold_id, "key": key}).first()
        ends_rows = None
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
    if not driver.postgres:  # PostgreSQL locked the ends with the hold
        ends_rows = driver.lock_ends(row.balance_id, row.destination_id, pick)
    rows = ends_rows
    ends = [LockedAccount(r[:12]) for r in rows]
    src = next(e for e in ends if e.balance_id == row.balance_id)
    dst = next(e for e in ends if e.id == row.destination_id and e is not src)
    src.pending -= row.amount
    entries = [(src, src, -posted), (dst, dst, posted)]
    check_funds(entries)
    values = transaction_values(key=key, request_hash=request_hash, kind=row.kind,
                                memo=row.memo if memo is None else memo,
                                meta={**row.meta, "hold_id": row.id}, now=now)
    tx = write_new(session, driver, values, rows[0][12], entries, posts_hold=(row.id, posted))
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


def _is_id(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


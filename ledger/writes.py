"""What every write shares: validate, lock, check, chain, and write through the driver.

A refusal leaves the caller's other work untouched and writes nothing of its own: transfers,
holds and posts make every check before their first write and meet a concurrent twin of
their key with INSERT ... ON CONFLICT DO NOTHING; a reversal runs in a savepoint of the
caller's transaction (`once`). Balance rows are locked in ascending id order (SELECT ...
FOR NO KEY UPDATE), which keeps concurrent writers from deadlocking on each other. The
writes themselves go through ledger.driver, whose statements check the no-overdraft rule
before they write (`write_new`); batches of awards have their own (ledger.batch).
"""

import random
from collections.abc import Callable, Container, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TypeVar

import sqlalchemy as sa
import sqlalchemy.orm as so
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm.attributes import set_committed_value

from ledger import chain, flows
from ledger.clock import utcnow
from ledger.driver import Driver
from ledger.errors import (
    IdempotencyConflict,
    InsufficientFunds,
    InvalidAmount,
    InvalidTransaction,
    LedgerError,
    UnbalancedTransaction,
    UnknownAccount,
)
from ledger.models import KEY_LEN, MAX_AMOUNT, Account, Balance, Transaction

T = TypeVar("T")


@dataclass(frozen=True)
class Leg:
    """One side of a transfer: a signed amount (credit positive, debit negative) on an address."""

    address: str
    amount: int


def check_amount(amount: object, *, signed: bool = False) -> int:
    """Return `amount` if it is a whole, non-zero number of points within bounds."""
    if isinstance(amount, bool) or not isinstance(amount, int):
        raise InvalidAmount(amount, "amounts are whole numbers")
    if amount == 0:
        raise InvalidAmount(amount, "amounts are not zero")
    if not signed and amount < 0:
        raise InvalidAmount(amount, "amounts are positive")
    if abs(amount) > MAX_AMOUNT:
        raise InvalidAmount(amount, f"amounts are at most {MAX_AMOUNT}")
    return amount


def check_key(key: object) -> str:
    """Return `key` if it is a usable idempotency key."""
    if not isinstance(key, str) or not key.strip() or len(key) > KEY_LEN or not _storable(key):
        raise InvalidTransaction(f"an idempotency key is a non-empty text of at most {KEY_LEN}")
    return key


def check_memo(memo: object) -> str:
    """Return `memo` if it is a text the ledger can store and seal."""
    if not isinstance(memo, str) or len(memo) > 2000 or not _storable(memo):
        raise InvalidTransaction("a memo is a text of at most 2000 chars")
    return memo


def check_time(value: object, what: str = "a time") -> datetime:
    """Return `value` as naive UTC, the form in which the ledger stores and seals times."""
    if not isinstance(value, datetime):
        raise InvalidTransaction(f"{what} is a datetime")
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    return value


def check_now(now: object) -> datetime:
    """Return the caller's `now` as naive UTC, or the current time when none is given."""
    return utcnow() if now is None else check_time(now, "now")


def _storable(text: str) -> bool:
    # PostgreSQL text holds no NUL character, and hashing needs text that encodes as UTF-8.
    if "\x00" in text:
        return False
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


def check_text(kind: object, memo: object, meta: object) -> tuple[str, str, dict]:
    """Return kind, memo and metadata if they have the shapes the ledger stores."""
    if not isinstance(kind, str) or not kind or len(kind) > 40 or not _storable(kind):
        raise InvalidTransaction("a transaction kind is a non-empty text of at most 40 chars")
    check_memo(memo)
    meta = {} if meta is None else meta
    if not isinstance(meta, dict):
        raise InvalidTransaction("metadata is a JSON object")
    try:
        chain.canonical(meta).encode()
    except (TypeError, ValueError) as exc:
        raise InvalidTransaction(f"metadata must be plain JSON: {exc}") from None
    return kind, memo, meta


def find_by_key(session: so.Session, model: type[T], key: str, request_hash: str) -> T | None:
    """Return the row written under `key`, or None; raise if it answered another request."""
    # The common answer is "no such key": ask for two columns, load the row only if found.
    table = model.__table__
    statement = _KEY_LOOKUPS.get(table)
    if statement is None:
        statement = _KEY_LOOKUPS[table] = sa.select(table.c.id, table.c.request_hash).where(
            table.c.idempotency_key == sa.bindparam("key"))
    session.flush()
    found = session.connection().execute(statement, {"key": key}).first()
    if found is None:
        return None
    if found[1] != request_hash:
        raise IdempotencyConflict(key)
    return session.get(model, found[0])


def once(session: so.Session, model: type[T], key: str, request_hash: str,
         write: Callable[[], T], on_integrity_error: Callable[[], None] | None = None) -> T:
    """Run `write` in a savepoint unless `key` already did; a concurrent twin yields its result."""
    existing = find_by_key(session, model, key, request_hash)
    if existing is not None:
        return existing
    try:
        with session.begin_nested():
            return write()
    except IntegrityError:
        # Another transaction committed the same key while we waited on its row: answer
        # with its result, as a retry would.
        existing = find_by_key(session, model, key, request_hash)
        if existing is not None:
            return existing
        if on_integrity_error is not None:
            on_integrity_error()
        raise
    except LedgerError:
        # A refusal (say, not enough points) may only mean that a concurrent twin with the
        # same key went first and spent them: then its result is the answer, as for a retry.
        existing = find_by_key(session, model, key, request_hash)
        if existing is not None:
            return existing
        raise


def stripe_for(account: Account) -> int:
    """Pick the stripe a posting lands on: the only one, or any of a striped account's."""
    return 0 if account.stripes == 1 else random.randrange(account.stripes)


class LockedAccount:
    """An account and the one balance stripe of it that this transaction locked: plain values.

    The write path of `transfer` reads and writes these with Core statements; the ORM
    unit of work costs several times more than the database work of a transfer.
    """

    __slots__ = ("address", "id", "asset_code", "stripes", "scope", "balance_id", "stripe",
                 "allow_negative", "posted", "pending", "seq", "head_hash")

    # The stripe columns of ledger.driver's answers, in order.
    COLUMNS = 12

    def __init__(self, row: sa.Row) -> None:
        (self.id, self.address, self.asset_code, self.stripes, self.scope, self.balance_id,
         self.stripe, self.allow_negative, self.posted, self.pending, self.seq,
         self.head_hash) = row


_KEY_LOOKUPS: dict[sa.Table, sa.Select] = {}

def refuse_unknown(addresses: Iterable[str], found: Container[str]) -> None:
    """Raise UnknownAccount for the first of `addresses` that is not in `found`."""
    for address in addresses:
        if address not in found:
            raise UnknownAccount(address)


def lock_balances_by_id(session: so.Session, ids: Iterable[int]) -> dict[int, Balance]:
    """Lock the balance rows with these ids in id order and return them fresh."""
    return {b.id: b for b in _lock(session, Balance.id.in_(set(ids)))}


def _lock(session: so.Session, condition: sa.ColumnElement[bool]) -> list[Balance]:
    # FOR NO KEY UPDATE: postings and holds referencing the row may still be inserted.
    return list(session.scalars(
        sa.select(Balance)
        .where(condition)
        .order_by(Balance.id)
        .with_for_update(key_share=True)
        .execution_options(populate_existing=True)
    ))


def transaction_values(*, key: str, request_hash: str, kind: str, memo: str, meta: dict,
                       now: datetime, reverses_id: int | None = None) -> dict:
    """The columns of a new transaction row, sealed."""
    return {
        "idempotency_key": key, "request_hash": request_hash, "kind": kind, "memo": memo,
        "meta": meta, "reverses_id": reverses_id, "created_at": now,
        "hash": chain.transaction_hash(key, kind, memo, meta, reverses_id, now),
    }


def write_new(session: so.Session, driver: Driver, values: dict, tx_id: int,
              entries: list[tuple[Account | LockedAccount, Balance | LockedAccount, int]],
              *, posts_hold: tuple[int, int] | None = None) -> Transaction | None:
    """Insert a transaction and post its entries, on stripes locked with `tx_id` drawn.

    A hold's post and a reversal come here (a transfer is one statement of its own, a
    batch has ledger.batch). One statement: it writes only if every stripe stays covered,
    and raises InsufficientFunds, having written nothing, for the first that would not.
    `posts_hold`, (hold id, amount posted): the locked, open hold this transaction posts,
    marked posted with it. Return None, having written nothing, when a twin holds the key.
    """
    flow_rows = flows.rows(
        (account.scope, account.asset_code, values["kind"], values["created_at"], amount)
        for account, _balance, amount in entries)
    pending = [balance.pending for _account, balance, _amount in entries]
    chained = chain_entries(tx_id, values["hash"], entries)
    written, short = driver.write_transaction(values, tx_id, chained, pending, flow_rows,
                                              posts_hold)
    if short is not None:
        for (account, balance, amount), (_a, balance_id, *_rest) in zip(entries, chained,
                                                                         strict=True):
            if balance_id == short:
                raise InsufficientFunds(account.address, -amount,
                                        balance.posted - balance.pending)
    if written is None:
        return None
    refresh(session, entries, chained)
    return attach(session, Transaction, tx_id, values)


def chain_entries(tx_id: int, tx_hash: str,
                  entries: Iterable[tuple[Account | LockedAccount, Balance | LockedAccount, int]]
                  ) -> list[tuple[int, int, str, int, int, int, str]]:
    """Each entry's posting, chained onto its stripe: (account id, balance id, asset,
    amount, seq, balance after, hash)."""
    chained = []
    for account, balance, amount in entries:
        balance_id = balance.id if isinstance(balance, Balance) else balance.balance_id
        posted = balance.posted + amount
        seq = balance.seq + 1
        chained.append((account.id, balance_id, account.asset_code, amount, seq, posted,
                        chain.posting_hash(balance.head_hash, balance_id, seq, tx_id, tx_hash,
                                           account.id, account.asset_code, amount, posted)))
    return chained


def refresh(session: so.Session,
            entries: list[tuple[Account | LockedAccount, Balance | LockedAccount, int]],
            chained: list[tuple[int, int, str, int, int, int, str]]) -> None:
    """Give the locked rows, and the session's copies of them, the figures just written."""
    for (_account, balance, _amount), (_a, balance_id, _s, _m, seq, posted, digest) in zip(
            entries, chained, strict=True):
        held = balance.pending
        if isinstance(balance, LockedAccount):
            balance.posted, balance.seq, balance.head_hash = posted, seq, digest
            balance = session.identity_map.get(so.util.identity_key(Balance, balance_id))
            if balance is None:
                continue
        for attribute, value in (("posted", posted), ("pending", held), ("seq", seq),
                                 ("head_hash", digest)):
            set_committed_value(balance, attribute, value)


def attach(session: so.Session, model: type[T], row_id: int, values: dict) -> T:
    """Return the row a Core INSERT wrote as an object of the session, as if loaded."""
    obj = model(id=row_id, **values)
    so.make_transient_to_detached(obj)
    stale = session.identity_map.get(so.util.identity_key(model, row_id))
    if stale is not None:  # an object the session kept of a row since rolled back
        session.expunge(stale)
    session.add(obj)
    return obj


def check_balanced(entries: Iterable[tuple[Account, int]]) -> None:
    """Refuse postings that do not sum to zero for every asset."""
    totals: dict[str, int] = {}
    for account, amount in entries:
        totals[account.asset_code] = totals.get(account.asset_code, 0) + amount
    for asset, total in sorted(totals.items()):
        if total != 0:
            raise UnbalancedTransaction(asset, total)

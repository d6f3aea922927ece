"""Transfers between accounts and reversals of them."""

from collections.abc import Sequence
from datetime import datetime

import sqlalchemy as sa
import sqlalchemy.orm as so

from ledger import chain
from ledger.driver import Driver
from ledger.errors import (
    AlreadyReversed,
    AssetMismatch,
    CannotReverseReversal,
    InsufficientFunds,
    InvalidTransaction,
    UnknownTransaction,
)
from ledger.models import Account, Posting, Transaction
from ledger.writes import (
    Leg,
    check_amount,
    check_balanced,
    check_funds,
    check_key,
    check_now,
    check_text,
    find_by_key,
    lock_accounts,
    lock_balances_by_id,
    new_transaction,
    once,
    post_entries,
    refuse_unknown,
    transaction_values,
    write_new,
)


def transfer(session: so.Session, legs: Sequence[Leg], *, key: str, kind: str, memo: str = "",
             meta: dict | None = None, asset: str | None = None,
             now: datetime | None = None) -> Transaction:
    """Post balanced legs as one transaction, once per idempotency key."""
    check_key(key)
    kind, memo, meta = check_text(kind, memo, meta)
    now = check_now(now)
    if not isinstance(legs, Sequence) or len(legs) < 2:
        raise InvalidTransaction("a transaction has two or more postings")
    for leg in legs:
        if not isinstance(leg, Leg) or not isinstance(leg.address, str):
            raise InvalidTransaction("postings are given as Leg(address, amount)")
        check_amount(leg.amount, signed=True)
    addresses = [leg.address for leg in legs]
    if len(set(addresses)) != len(addresses):
        raise InvalidTransaction("an account appears twice in one transaction")
    request_hash = chain.request_hash(
        "transfer", legs=[[leg.address, leg.amount] for leg in legs], kind=kind, memo=memo,
        meta=meta, asset=asset,
    )

    # No savepoint (a transfer is the hot path): one statement finds the accounts, locks a
    # balance stripe of each in id order and tells whether the key is taken; every refusal
    # comes before anything is written; a key taken meanwhile by a concurrent twin is no
    # error but its answer. The statements go straight to the driver (ledger.driver).
    session.flush()
    driver = Driver(session)
    locked, key_taken, tx_id = lock_accounts(driver, addresses, key)
    if key_taken is not False:
        existing = find_by_key(session, Transaction, key, request_hash)
        if existing is not None:
            return existing
    refuse_unknown(addresses, locked)
    entries = [(locked[leg.address], leg.amount) for leg in legs]
    for account, _ in entries:
        if asset is not None and account.asset_code != asset:
            raise AssetMismatch(account.address, account.asset_code, asset)
    check_balanced(entries)
    entries = [(account, account, amount) for account, amount in entries]
    try:
        check_funds(entries)
    except InsufficientFunds:
        # Perhaps a concurrent twin with this key went first and spent the points while we
        # waited on the lock: then its transaction is the answer, as for a retry.
        twin = find_by_key(session, Transaction, key, request_hash)
        if twin is not None:
            return twin
        raise
    values = transaction_values(key=key, request_hash=request_hash, kind=kind, memo=memo,
                                meta=meta, now=now)
    tx = write_new(session, driver, values, tx_id, entries)
    if tx is None:
        twin = find_by_key(session, Transaction, key, request_hash)
        if twin is None:  # taken by a transaction that then rolled back: not possible
            raise AssertionError(f"idempotency key {key!r} is taken by no transaction")
        return twin
    return tx


def move(session: so.Session, source: str, destination: str, amount: int, *, key: str,
         kind: str, memo: str = "", meta: dict | None = None, asset: str | None = None,
         now: datetime | None = None) -> Transaction:
    """Move a positive `amount` from `source` to `destination`."""
    check_amount(amount)
    return transfer(session, [Leg(source, -amount), Leg(destination, amount)], key=key,
                    kind=kind, memo=memo, meta=meta, asset=asset, now=now)


def reverse(session: so.Session, transaction_id: int, *, key: str, memo: str = "",
            kind: str = "reversal", meta: dict | None = None,
            now: datetime | None = None) -> Transaction:
    """Undo a posted transaction once, putting every amount back where it came from."""
    check_key(key)
    kind, memo, meta = check_text(kind, memo, meta)
    now = check_now(now)
    if isinstance(transaction_id, bool) or not isinstance(transaction_id, int):
        raise UnknownTransaction(transaction_id)
    request_hash = chain.request_hash("reverse", transaction_id=transaction_id, kind=kind,
                                      memo=memo, meta=meta)

    def already_reversed() -> None:
        reversal = session.scalar(
            sa.select(Transaction.id).where(Transaction.reverses_id == transaction_id)
        )
        if reversal is not None:
            raise AlreadyReversed(transaction_id, reversal)

    def write() -> Transaction:
        original = session.get(Transaction, transaction_id)
        if original is None:
            raise UnknownTransaction(transaction_id)
        if original.reverses_id is not None:
            raise CannotReverseReversal(transaction_id)
        try:
            already_reversed()
        except AlreadyReversed:
            # A twin of this very request may have committed since the key was looked up.
            twin = find_by_key(session, Transaction, key, request_hash)
            if twin is not None:
                return twin
            raise
        postings = session.scalars(
            sa.select(Posting).where(Posting.transaction_id == transaction_id)
            .order_by(Posting.id)
        ).all()
        accounts = {
            a.id: a for a in session.scalars(
                sa.select(Account).where(Account.id.in_({p.account_id for p in postings}))
            )
        }
        tx = new_transaction(session, key=key, request_hash=request_hash, kind=kind, memo=memo,
                             meta=meta, now=now, reverses_id=transaction_id)
        # Each amount returns to the very stripe it came from.
        locked = lock_balances_by_id(session, [p.balance_id for p in postings])
        post_entries(session, tx, [
            (accounts[p.account_id], locked[p.balance_id], -p.amount) for p in postings
        ])
        return tx

    return once(session, Transaction, key, request_hash, write, already_reversed)


"""Transfers between accounts and reversals of them."""

import random
from collections.abc import Sequence
from datetime import datetime

import sqlalchemy as sa
import sqlalchemy.orm as so

from ledger import chain, flows
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
    LockedAccount,
    attach,
    chain_entries,
    check_amount,
    check_balanced,
    check_key,
    check_now,
    check_text,
    find_by_key,
    once,
    refresh,
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

    values = transaction_values(key=key, request_hash=request_hash, kind=kind, memo=memo,
                                meta=meta, now=now)
    # No savepoint (a transfer is the hot path): the one statement (ledger.driver) writes
    # only if every rule passes, and a key taken meanwhile by a concurrent twin is no error
    # but its answer.
    session.flush()
    driver = Driver(session)
    rows = driver.transfer([(leg.address, leg.amount) for leg in legs], values,
                           pick=random.getrandbits(30), asset=asset,
                           day=flows.day_of(values["created_at"]),
                           slot=random.randrange(flows.SLOTS))
    tx_id = rows[0][13] if rows else None
    if tx_id is None:
        # Nothing was written: a rule refused it, the key had an earlier answer, or a twin
        # took the key meanwhile.
        return _refused(session, legs, values, asset, rows)
    entries = []
    amounts = {leg.address: leg.amount for leg in legs}
    for row in rows:
        account = LockedAccount(row[:LockedAccount.COLUMNS])
        entries.append((account, account, amounts[account.address]))
    chained = chain_entries(tx_id, values["hash"], entries)
    for (*_, digest), row in zip(chained, rows, strict=True):
        if digest != row[14]:
            # The statement chained a posting differently from ledger.chain: raising here
            # rolls the caller's transaction back rather than commit a chain verify refuses.
            raise AssertionError(f"the chain hash written for balance {row[5]} is {row[14]}, "
                                 f"ledger.chain makes it {digest}")
    refresh(session, entries, chained)
    return attach(session, Transaction, tx_id, values)


def _refused(session: so.Session, legs: Sequence[Leg], values: dict, asset: str | None,
             rows: list[tuple]) -> Transaction:
    """Name the refusal of a transfer that wrote nothing, or answer with the key's transaction.

    `rows` are the stripes as the statement locked them: each says whether its leg was
    covered, the rule itself being the statement's alone.
    """
    key, request_hash = values["idempotency_key"], values["request_hash"]
    if not rows or rows[0][12] is not None:
        existing = find_by_key(session, Transaction, key, request_hash)
        if existing is not None:
            return existing
    locked = {row[1]: (LockedAccount(row[:LockedAccount.COLUMNS]), row[15]) for row in rows}
    refuse_unknown([leg.address for leg in legs], locked)
    entries = [(locked[leg.address][0], leg.amount) for leg in legs]
    for account, _ in entries:
        if asset is not None and account.asset_code != asset:
            raise AssetMismatch(account.address, account.asset_code, asset)
    check_balanced(entries)
    for account, amount in entries:
        if not locked[account.address][1]:
            # Perhaps a concurrent twin with this key went first and spent the points while
            # we waited on the lock: then its transaction is the answer, as for a retry.
            twin = find_by_key(session, Transaction, key, request_hash)
            if twin is not None:
                return twin
            raise InsufficientFunds(account.address, -amount, account.posted - account.pending)
    return _twin(session, values)


def _twin(session: so.Session, values: dict) -> Transaction:
    """The transaction of a concurrent twin that took the key while this one waited."""
    twin = find_by_key(session, Transaction, values["idempotency_key"], values["request_hash"])
    if twin is None:
        # Nothing written, every rule passed here, and no transaction holds the key: the
        # database refused a rule this code accepts (the SQL and Python rules disagree).
        raise AssertionError(f"transfer {values['idempotency_key']!r} was refused by the "
                             "database for no reason the ledger names")
    return twin


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
        # Each amount returns to the very stripe it came from.
        driver = Driver(session)
        rows = driver.lock_balances([p.balance_id for p in postings])
        locked = {row[5]: LockedAccount(row[:LockedAccount.COLUMNS]) for row in rows}
        entries = [(accounts[p.account_id], locked[p.balance_id], -p.amount)
                   for p in postings]
        values = transaction_values(key=key, request_hash=request_hash, kind=kind, memo=memo,
                                    meta=meta, now=now, reverses_id=transaction_id)
        try:
            written = write_new(session, driver, values, rows[0][-1], entries)
        except InsufficientFunds:
            # A concurrent reversal of the same transaction may be what took the points
            # back while we waited on the balance rows: then that is the refusal to name.
            already_reversed()
            raise
        return written or _twin(session, values)

    return once(session, Transaction, key, request_hash, write, already_reversed)


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
    check_funds,
    check_key,
    check_now,
    check_text,
    find_by_key,
    lock_accounts,
    lock_balances_by_id,
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
    # No savepoint (a transfer is the hot path): every refusal comes before anything is
    # written, and a key taken meanwhile by a concurrent twin is no error but its answer.
    # The statements go straight to the driver (ledger.driver).
    session.flush()
    driver = Driver(session)
    if driver.postgres:
        return _transfer_in_one_statement(session, driver, legs, values, asset)
    locked, key_taken = lock_accounts(driver, addresses, key)
    entries = _checked(session, legs, values, asset, locked, key_taken)
    if isinstance(entries, Transaction):
        return entries
    return write_new(session, driver, values, None, entries) or _twin(session, values)


def _checked(session: so.Session, legs: Sequence[Leg], values: dict, asset: str | None,
             locked: dict[str, LockedAccount], key_taken: bool | None
             ) -> list[tuple[LockedAccount, LockedAccount, int]] | Transaction:
    """Apply every rule to the locked accounts: the entries to post, or the key's answer.

    Raise the refusal a rule makes, unless the key's earlier transaction answers instead.
    """
    key, request_hash = values["idempotency_key"], values["request_hash"]
    if key_taken is not False:
        existing = find_by_key(session, Transaction, key, request_hash)
        if existing is not None:
            return existing
    refuse_unknown([leg.address for leg in legs], locked)
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
    return entries


def _twin(session: so.Session, values: dict) -> Transaction:
    """The transaction of a concurrent twin that took the key while this one waited."""
    twin = find_by_key(session, Transaction, values["idempotency_key"], values["request_hash"])
    if twin is None:
        # Nothing written, every rule passed here, and no transaction holds the key: the
        # database refused a rule this code accepts (the SQL and Python rules disagree).
        raise AssertionError(f"transfer {values['idempotency_key']!r} was refused by the "
                             "database for no reason the ledger names")
    return twin


def _transfer_in_one_statement(session: so.Session, driver: Driver, legs: Sequence[Leg],
                               values: dict, asset: str | None) -> Transaction:
    """PostgreSQL: lock, check and write in one statement; name any refusal from its answer."""
    rows = driver.transfer([(leg.address, leg.amount) for leg in legs], values,
                           pick=random.getrandbits(30), asset=asset,
                           day=flows.day_of(values["created_at"]),
                           slot=random.randrange(flows.SLOTS))
    tx_id = rows[0][13] if rows else None
    if tx_id is None:
        # Nothing was written: a rule refused it (named here from the rows as they were
        # locked), the key had an earlier answer, or a twin took the key meanwhile.
        locked = {row[1]: LockedAccount(row[:12]) for row in rows}
        entries = _checked(session, legs, values, asset, locked,
                           rows[0][12] is not None if rows else None)
        return entries if isinstance(entries, Transaction) else _twin(session, values)
    entries = []
    amounts = {leg.address: leg.amount for leg in legs}
    for row in rows:
        account = LockedAccount(row[:12])
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
        locked = lock_balances_by_id(session, [p.balance_id for p in postings])
        entries = [(accounts[p.account_id], locked[p.balance_id], -p.amount) for p in postings]
        try:
            check_funds(entries)
        except InsufficientFunds:
            # A concurrent reversal of the same transaction may be what took the points
            # back while we waited on the balance rows: then that is the refusal to name.
            already_reversed()
            raise
        values = transaction_values(key=key, request_hash=request_hash, kind=kind, memo=memo,
                                    meta=meta, now=now, reverses_id=transaction_id)
        return write_new(session, Driver(session), values, None, entries) or _twin(
            session, values)

    return once(session, Transaction, key, request_hash, write, already_reversed)


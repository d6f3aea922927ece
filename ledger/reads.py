"""Reads: balances and an account's history, newest first, with the balance after each row."""

import json
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
import sqlalchemy.orm as so

from ledger.accounts import get_account
from ledger.errors import UnknownAccount
from ledger.models import Account, Balance, Posting, Transaction


@dataclass(frozen=True)
class AccountBalance:
    """What an account holds: posted, reserved by open holds, and free to spend."""

    address: str
    asset: str
    posted: int
    pending: int

    @property
    def available(self) -> int:
        return self.posted - self.pending


@dataclass(frozen=True)
class HistoryEntry:
    """One posting on the account as its owner would read it."""

    posting_id: int
    transaction_id: int
    kind: str
    memo: str
    meta: dict
    amount: int
    balance_after: int
    created_at: datetime
    reverses_id: int | None


@dataclass(frozen=True)
class HistoryPage:
    entries: list[HistoryEntry]
    next_cursor: int | None


def balance(session: so.Session, address: str) -> AccountBalance:
    """Return the posted, pending and available amounts of the account at `address`."""
    account = get_account(session, address)
    posted, pending = session.execute(
        sa.select(sa.func.coalesce(sa.func.sum(Balance.posted), 0),
                  sa.func.coalesce(sa.func.sum(Balance.pending), 0))
        .where(Balance.account_id == account.id)
    ).one()
    return AccountBalance(address, account.asset_code, int(posted), int(pending))


def balances(session: so.Session, addresses: list[str]) -> dict[str, AccountBalance]:
    """Return the balances of several accounts in one query; unknown addresses are left out."""
    rows = session.execute(
        sa.select(Account.address, Account.asset_code, sa.func.sum(Balance.posted),
                  sa.func.sum(Balance.pending))
        .join(Balance, Balance.account_id == Account.id)
        .where(Account.address.in_(addresses))
        .group_by(Account.address, Account.asset_code)
    )
    return {a: AccountBalance(a, asset, int(p), int(h)) for a, asset, p, h in rows}


def history(session: so.Session, address: str, *, limit: int = 50,
            before: int | None = None) -> HistoryPage:
    """Return up to `limit` postings older than the cursor `before`, newest first."""
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 500:
        raise ValueError("limit is a whole number from 1 to 500")
    if before is not None and (isinstance(before, bool) or not isinstance(before, int)):
        raise ValueError("before is the next_cursor of an earlier page")
    # Columns, not ORM objects, and statements built once: a page is read on every visit to a
    # volunteer's history.
    account = session.execute(_ACCOUNT, {"address": address}).first()
    if account is None:
        raise UnknownAccount(address)
    before = _NO_CURSOR if before is None else max(min(before, _NO_CURSOR), 0)
    rows = session.execute(_PAGE, {"account_id": account.id, "limit": limit + 1,
                                   "before": before}).all()
    more = len(rows) > limit
    rows = rows[:limit]
    if account.stripes == 1:
        afters = [row.balance_after for row in rows]
    else:
        # A striped account's rows carry per-stripe running totals; derive the account's
        # from its current total less everything posted after each row.
        afters = _striped_balances_after(session, account.id, rows)
    loads = json.loads
    entries = [
        HistoryEntry(posting_id, tx_id, kind, memo, {} if meta == "{}" else loads(meta), amount,
                     after, created_at, reverses_id)
        for (posting_id, tx_id, kind, memo, meta, amount, _, created_at, reverses_id), after
        in zip(rows, afters, strict=True)
    ]
    return HistoryPage(entries, entries[-1].posting_id if more else None)


_ACCOUNT = sa.select(Account.id, Account.stripes).where(Account.address == sa.bindparam("address"))
_POSTINGS, _TRANSACTIONS = Posting.__table__, Transaction.__table__
_ACCOUNT_ID = sa.bindparam("account_id", type_=sa.BigInteger)
_BEFORE = sa.bindparam("before", type_=sa.BigInteger)
_ZERO = sa.literal(0, sa.BigInteger)
_PAGE = (
    sa.select(_POSTINGS.c.id, _POSTINGS.c.transaction_id, _TRANSACTIONS.c.kind,
              _TRANSACTIONS.c.memo, sa.cast(_TRANSACTIONS.c.meta, sa.Text), _POSTINGS.c.amount,
              _POSTINGS.c.balance_after, _TRANSACTIONS.c.created_at, _TRANSACTIONS.c.reverses_id)
    .join_from(_POSTINGS, _TRANSACTIONS, _TRANSACTIONS.c.id == _POSTINGS.c.transaction_id)
    # "account_id = :account_id AND id < :before ORDER BY id DESC", spelled as a range over
    # (account_id, id) and ordered by both: only the (account_id, id) index yields that
    # order, so the planner cannot walk the primary key backwards filtering on the account,
    # which it may choose for a busy account whose postings are all old (128 ms for 50,000
    # postings among a million, where the index takes a fraction of a millisecond).
    .where(sa.tuple_(_POSTINGS.c.account_id, _POSTINGS.c.id) > sa.tuple_(_ACCOUNT_ID, _ZERO),
           sa.tuple_(_POSTINGS.c.account_id, _POSTINGS.c.id) < sa.tuple_(_ACCOUNT_ID, _BEFORE))
    .order_by(_POSTINGS.c.account_id.desc(), _POSTINGS.c.id.desc())
    .limit(sa.bindparam("limit"))
)
_NO_CURSOR = 2**63 - 1


def _striped_balances_after(session: so.Session, account_id: int,
                            postings: list[sa.Row]) -> list[int]:
    if not postings:
        return []
    total = session.scalar(
        sa.select(sa.func.coalesce(sa.func.sum(Balance.posted), 0))
        .where(Balance.account_id == account_id)
    )
    newer = session.scalar(
        sa.select(sa.func.coalesce(sa.func.sum(Posting.amount), 0))
        .where(Posting.account_id == account_id, Posting.id > postings[0].id)
    )
    running = int(total) - int(newer)
    afters = []
    for posting in postings:
        afters.append(running)
        running -= posting.amount
    return afters

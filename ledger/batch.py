"""Many transfers at once: the same rules as `transfer`, in a handful of statements.

Awarding a thousand attendees is one request; posting a thousand transactions one by one
costs thousands of round trips. Here every account is read in one query, every balance row
locked in one query (in id order), and the transactions, postings and balance changes are
written in bulk. Any key seen before sends the whole batch down the one-by-one path, which
answers repeated keys exactly as `transfer` does.
"""

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

import sqlalchemy as sa
import sqlalchemy.orm as so
from sqlalchemy.exc import IntegrityError

from ledger import chain, flows
from ledger.clock import utcnow
from ledger.errors import InsufficientFunds, InvalidTransaction
from ledger.models import Account, Balance, Posting, Transaction
from ledger.transfers import transfer
from ledger.writes import (
    Leg,
    check_amount,
    check_balanced,
    check_key,
    check_text,
    refuse_unknown,
    stripe_for,
)

_ACCOUNTS, _BALANCES = Account.__table__, Balance.__table__
_TRANSACTIONS, _POSTINGS = Transaction.__table__, Posting.__table__
# Rows per UPDATE ... FROM (VALUES ...): four parameters each, well under SQLite's limit.
_UPDATE_CHUNK = 1000


@dataclass(frozen=True)
class TransferRequest:
    """One transfer of a batch: its legs, idempotency key, kind, memo and metadata."""

    legs: Sequence[Leg]
    key: str
    kind: str
    memo: str = ""
    meta: dict = field(default_factory=dict)


def transfer_many(session: so.Session, requests: Sequence[TransferRequest], *,
                  now: datetime | None = None) -> list[Transaction]:
    """Post every request as its own transaction, all or none, once per key."""
    if not requests:
        return []
    now = now or utcnow()
    checked = [_check(request) for request in requests]
    keys = [request.key for request in requests]
    if len(set(keys)) != len(keys):
        raise InvalidTransaction("a key appears twice in one batch")
    seen = session.scalar(sa.select(sa.func.count()).select_from(Transaction)
                          .where(Transaction.idempotency_key.in_(keys)))
    if seen:
        return _one_by_one(session, requests, now)
    try:
        with session.begin_nested():
            return _bulk(session, requests, checked, now)
    except IntegrityError:
        # A concurrent batch wrote one of these keys first: let `transfer` sort it out.
        return _one_by_one(session, requests, now)


def _check(request: TransferRequest) -> tuple[str, str, dict, str]:
    check_key(request.key)
    kind, memo, meta = check_text(request.kind, request.memo, request.meta)
    if len(request.legs) < 2:
        raise InvalidTransaction("a transaction has two or more postings")
    for leg in request.legs:
        if not isinstance(leg, Leg):
            raise InvalidTransaction("postings are given as Leg(address, amount)")
        check_amount(leg.amount, signed=True)
    addresses = [leg.address for leg in request.legs]
    if len(set(addresses)) != len(addresses):
        raise InvalidTransaction("an account appears twice in one transaction")
    fingerprint = chain.request_hash(
        "transfer", legs=[[leg.address, leg.amount] for leg in request.legs], kind=kind,
        memo=memo, meta=meta, asset=None)
    return kind, memo, meta, fingerprint


def _bulk(session: so.Session, requests: Sequence[TransferRequest],
          checked: list[tuple[str, str, dict, str]], now: datetime) -> list[Transaction]:
    accounts = _accounts(session, list({leg.address for r in requests for leg in r.legs}))
    plans = []
    for request in requests:
        entries = [(accounts[leg.address], leg.amount) for leg in request.legs]
        check_balanced(entries)
        plans.append([(account, stripe_for(account), amount) for account, amount in entries])
    values = [
        {"idempotency_key": request.key, "request_hash": fingerprint, "kind": kind,
         "memo": memo, "meta": meta, "reverses_id": None, "created_at": now,
         "hash": chain.transaction_hash(request.key, kind, memo, meta, None, now)}
        for request, (kind, memo, meta, fingerprint) in zip(requests, checked, strict=True)
    ]
    # Plain statements, not the unit of work: one multi-row INSERT ... RETURNING for the
    # transactions, one executemany for the postings, one UPDATE ... FROM (VALUES ...) per
    # thousand balance rows. The returned transactions are plain objects outside the session.
    connection = session.connection()
    ids = connection.execute(
        _TRANSACTIONS.insert().returning(_TRANSACTIONS.c.id, sort_by_parameter_order=True),
        values).scalars().all()
    transactions = [Transaction(id=tx_id, **row) for tx_id, row in zip(ids, values, strict=True)]
    wanted = sorted({(a.id, s) for plan in plans for a, s, _ in plan})
    rows = connection.execute(
        sa.select(_BALANCES.c.id, _BALANCES.c.account_id, _BALANCES.c.stripe,
                  _BALANCES.c.allow_negative, _BALANCES.c.posted, _BALANCES.c.pending,
                  _BALANCES.c.seq, _BALANCES.c.head_hash)
        .where(sa.tuple_(_BALANCES.c.account_id, _BALANCES.c.stripe).in_(wanted))
        .order_by(_BALANCES.c.id)
        .with_for_update(key_share=True)
    ).all()
    state = {(r.account_id, r.stripe): {"id": r.id, "allow_negative": r.allow_negative,
                                         "posted": r.posted, "pending": r.pending,
                                         "seq": r.seq, "head_hash": r.head_hash}
             for r in rows}
    postings = []
    posting_hash = chain.posting_hash
    for tx, plan in zip(transactions, plans, strict=True):
        for account, stripe, amount in plan:
            balance = state[(account.id, stripe)]
            posted = balance["posted"] + amount
            if not balance["allow_negative"] and posted - balance["pending"] < 0:
                raise InsufficientFunds(account.address, -amount,
                                        balance["posted"] - balance["pending"])
            seq = balance["seq"] + 1
            digest = posting_hash(balance["head_hash"], balance["id"], seq, tx.id, tx.hash,
                                  account.id, account.asset_code, amount, posted)
            postings.append({"transaction_id": tx.id, "account_id": account.id,
                             "balance_id": balance["id"], "asset_code": account.asset_code,
                             "amount": amount, "seq": seq, "balance_after": posted,
                             "hash": digest})
            balance.update(posted=posted, seq=seq, head_hash=digest)
    connection.execute(_POSTINGS.insert(), postings)
    flows.add(session, ((account.scope, account.asset_code, tx.kind, tx.created_at, amount)
                        for tx, plan in zip(transactions, plans, strict=True)
                        for account, _stripe, amount in plan))
    _write_balances(connection, list(state.values()))
    # Balance objects already in the session are stale now.
    for obj in list(session.identity_map.values()):
        if isinstance(obj, Balance):
            session.expire(obj)
    return transactions


def _write_balances(connection: sa.Connection, changed: list[dict]) -> None:
    """Set posted, seq and head of many balance rows: on PostgreSQL one UPDATE ... FROM
    (VALUES ...) per thousand rows; SQLite, which has no column list on a VALUES alias, an
    executemany (cheap there: no round trips)."""
    if connection.dialect.name != "postgresql":
        connection.execute(
            _BALANCES.update().where(_BALANCES.c.id == sa.bindparam("b_id"))
            .values(posted=sa.bindparam("b_posted"), seq=sa.bindparam("b_seq"),
                    head_hash=sa.bindparam("b_head_hash")),
            [{"b_id": b["id"], "b_posted": b["posted"], "b_seq": b["seq"],
              "b_head_hash": b["head_hash"]} for b in changed])
        return
    for start in range(0, len(changed), _UPDATE_CHUNK):
        chunk = changed[start:start + _UPDATE_CHUNK]
        given = sa.values(sa.column("id", sa.BigInteger), sa.column("posted", sa.BigInteger),
                          sa.column("seq", sa.BigInteger), sa.column("head_hash", sa.String),
                          name="given").data(
            [(b["id"], b["posted"], b["seq"], b["head_hash"]) for b in chunk])
        connection.execute(
            _BALANCES.update().where(_BALANCES.c.id == given.c.id)
            .values(posted=given.c.posted, seq=given.c.seq, head_hash=given.c.head_hash))


def _accounts(session: so.Session, addresses: list[str]) -> dict[str, sa.Row]:
    """Find accounts by address as plain rows (id, address, asset, stripes, scope)."""
    found = {}
    for start in range(0, len(addresses), 1000):
        for row in session.connection().execute(
                sa.select(_ACCOUNTS.c.id, _ACCOUNTS.c.address, _ACCOUNTS.c.asset_code,
                          _ACCOUNTS.c.stripes, _ACCOUNTS.c.scope)
                .where(_ACCOUNTS.c.address.in_(addresses[start:start + 1000]))):
            found[row.address] = row
    refuse_unknown(addresses, found)
    return found


def _one_by_one(session: so.Session, requests: Sequence[TransferRequest],
                now: datetime) -> list[Transaction]:
    with session.begin_nested():
        return [transfer(session, request.legs, key=request.key, kind=request.kind,
                         memo=request.memo, meta=request.meta, now=now)
                for request in requests]

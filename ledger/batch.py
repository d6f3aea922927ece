"""Many transfers at once: the same rules as `transfer`, in a handful of statements.

Awarding a thousand attendees is one request; posting a thousand transactions one by one
costs thousands of round trips. Here every account is read in one query, every balance row
locked in one query (in id order), and the transactions, postings and balance changes are
written in bulk. Any key seen before sends the whole batch down the one-by-one path, which
answers repeated keys exactly as `transfer` does.
"""

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

import sqlalchemy as sa
import sqlalchemy.orm as so
from sqlalchemy.exc import IntegrityError

from ledger import chain, flows
from ledger.errors import InvalidTransaction
from ledger.models import Account, Balance, Posting, Transaction, covers
from ledger.transfers import transfer
from ledger.writes import (
    Leg,
    check_amount,
    check_balanced,
    check_key,
    check_now,
    check_text,
    refuse_unknown,
    stripe_for,
)

_ACCOUNTS, _BALANCES = Account.__table__, Balance.__table__
_TRANSACTIONS, _POSTINGS = Transaction.__table__, Posting.__table__


@dataclass(frozen=True)
class TransferRequest:
    """One transfer of a batch: its legs, idempotency key, kind, memo and metadata."""

    legs: Sequence[Leg]
    key: str
    kind: str
    memo: str = ""
    meta: dict = field(default_factory=dict)


def transfer_many(session: so.Session, requests: Sequence[TransferRequest], *,
                  now: datetime | None = None) -> list["Transaction | Posted"]:
    """Post every request as its own transaction, all or none, once per key."""
    if not requests:
        return []
    now = check_now(now)
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
    except (IntegrityError, _Short):
        # A concurrent batch wrote one of these keys first, or a posting would take a stripe
        # below its floor: `transfer` sorts the first out and names the second.
        return _one_by_one(session, requests, now)


class _Short(Exception):
    """A posting of the batch would take its stripe below its floor: nothing is kept."""


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
          checked: list[tuple[str, str, dict, str]], now: datetime) -> list["Posted"]:
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
    # Plain statements, not the unit of work, each taking its rows as arrays (one constant
    # statement, a handful of parameters, whatever the count). What comes back
    # are plain records of the transactions, not ORM objects: a thousand of those cost more
    # than the database work.
    connection = session.connection()
    # Balances first, then keys, as `transfer` does: a batch and a transfer (or two batches)
    # sharing keys meet on the balance locks in id order instead of deadlocking on the keys.
    wanted = sorted({(a.id, s) for plan in plans for a, s, _ in plan})
    rows = _lock_balances(connection, wanted)
    ids = _insert_transactions(connection, values, now)
    transactions = [Posted(id=ids[row["idempotency_key"]], **row) for row in values]
    state = {(r.account_id, r.stripe): {"id": r.id, "posted": r.posted, "seq": r.seq,
                                         "head_hash": r.head_hash}
             for r in rows}
    postings = []
    posting_hash = chain.posting_hash
    for tx, plan in zip(transactions, plans, strict=True):
        for account, stripe, amount in plan:
            balance = state[(account.id, stripe)]
            posted = balance["posted"] + amount
            seq = balance["seq"] + 1
            digest = posting_hash(balance["head_hash"], balance["id"], seq, tx.id, tx.hash,
                                  account.id, account.asset_code, amount, posted)
            postings.append({"transaction_id": tx.id, "account_id": account.id,
                             "balance_id": balance["id"], "asset_code": account.asset_code,
                             "amount": amount, "seq": seq, "balance_after": posted,
                             "hash": digest})
            balance.update(posted=posted, seq=seq, head_hash=digest)
    _insert_postings(connection, postings)
    flows.add(session, ((account.scope, account.asset_code, tx.kind, tx.created_at, amount)
                        for tx, plan in zip(transactions, plans, strict=True)
                        for account, _stripe, amount in plan))
    _write_balances(connection, list(state.values()))
    # Balance objects already in the session are stale now.
    for obj in list(session.identity_map.values()):
        if isinstance(obj, Balance):
            session.expire(obj)
    return transactions


@dataclass(frozen=True)
class Posted:
    """A transaction written by the batch path: the values of its row."""

    id: int
    idempotency_key: str
    request_hash: str
    kind: str
    memo: str
    meta: dict
    reverses_id: int | None
    created_at: datetime
    hash: str


def _insert_transactions(connection: sa.Connection, values: list[dict],
                         now: datetime) -> dict[str, int]:
    """Insert the transaction rows; return their ids by idempotency key."""
    return dict(connection.execute(_INSERT_TRANSACTIONS, {
        "keys": [v["idempotency_key"] for v in values],
        "hashes": [v["request_hash"] for v in values],
        "kinds": [v["kind"] for v in values], "memos": [v["memo"] for v in values],
        "metas": [json.dumps(v["meta"]) for v in values],
        "seals": [v["hash"] for v in values], "now": now}).all())


def _lock_balances(connection: sa.Connection, wanted: list[tuple[int, int]]) -> list[sa.Row]:
    """Lock the (account, stripe) balance rows in id order and return them."""
    return connection.execute(_LOCK_BALANCES, {
        "accounts": [a for a, _s in wanted], "stripes": [s for _a, s in wanted]}).all()


_INSERT_TRANSACTIONS = sa.text(
    "INSERT INTO ledger_transactions"
    " (idempotency_key, request_hash, kind, memo, meta, reverses_id, created_at, hash)"
    " SELECT given.key, given.request_hash, given.kind, given.memo, given.meta, NULL, :now,"
    " given.seal"
    " FROM unnest(CAST(:keys AS varchar[]), CAST(:hashes AS varchar[]),"
    " CAST(:kinds AS varchar[]), CAST(:memos AS text[]), CAST(:metas AS json[]),"
    " CAST(:seals AS varchar[])) AS given (key, request_hash, kind, memo, meta, seal)"
    " RETURNING idempotency_key, id")
# FOR NO KEY UPDATE, in id order: postings may still reference the rows meanwhile, and
# concurrent writers lock in one order.
_LOCK_BALANCES = sa.text(
    "SELECT b.id, b.account_id, b.stripe, b.posted, b.seq, b.head_hash"
    " FROM ledger_balances AS b"
    " JOIN unnest(CAST(:accounts AS bigint[]), CAST(:stripes AS integer[]))"
    " AS wanted (account_id, stripe)"
    " ON b.account_id = wanted.account_id AND b.stripe = wanted.stripe"
    " ORDER BY b.id FOR NO KEY UPDATE OF b")


def _write_balances(connection: sa.Connection, changed: list[dict]) -> None:
    """Set posted, seq and head of many balance rows: one UPDATE from arrays."""
    connection.execute(_UPDATE_BALANCES, {
        "ids": [b["id"] for b in changed], "posted": [b["posted"] for b in changed],
        "seqs": [b["seq"] for b in changed], "heads": [b["head_hash"] for b in changed]})


def _insert_postings(connection: sa.Connection, postings: list[dict]) -> None:
    """Insert many postings in one statement, each only if its stripe stays covered (the
    stripes are locked: their pending cannot move); raise _Short if one would not."""
    inserted = connection.execute(_INSERT_POSTINGS, {
        column: [p[column] for p in postings] for column in _POSTING_ARRAYS}).scalar_one()
    if inserted != len(postings):
        raise _Short()


_UPDATE_BALANCES = sa.text(
    "UPDATE ledger_balances AS b SET posted = given.posted, seq = given.seq,"
    " head_hash = given.head_hash"
    " FROM unnest(CAST(:ids AS bigint[]), CAST(:posted AS bigint[]), CAST(:seqs AS bigint[]),"
    " CAST(:heads AS varchar[])) AS given (id, posted, seq, head_hash)"
    " WHERE b.id = given.id")
_POSTING_ARRAYS = {"transaction_id": "bigint", "account_id": "bigint", "balance_id": "bigint",
                   "asset_code": "varchar", "amount": "bigint", "seq": "bigint",
                   "balance_after": "bigint", "hash": "varchar"}
_INSERT_POSTINGS = sa.text(
    f"WITH inserted AS (INSERT INTO ledger_postings ({', '.join(_POSTING_ARRAYS)})"
    f" SELECT {', '.join('given.' + c for c in _POSTING_ARRAYS)} FROM unnest("
    + ", ".join(f"CAST(:{c} AS {t}[])" for c, t in _POSTING_ARRAYS.items())
    + f") WITH ORDINALITY AS given ({', '.join(_POSTING_ARRAYS)}, ord)"
    " JOIN ledger_balances AS b ON b.id = given.balance_id"
    f" WHERE {covers('given.balance_after', 'b.pending', 'b.allow_negative')}"
    " ORDER BY given.ord RETURNING 1) SELECT count(*) FROM inserted")


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

"""The ledger's statements, in the database driver's own calls, under the session's transaction.

A transfer is a handful of small statements; building and running them through
SQLAlchemy's execution layer cost more client CPU than the driver and the hashing put
together, and each round trip to the server costs both sides more than the work it carries
(see benchmarks/README.md). Here they are fixed SQL texts sent straight to the DB-API
connection that the session's transaction already holds, so the work still commits or rolls
back with everything else the caller did.

Each write is one statement that checks before it writes: data-modifying CTEs lock the
balance stripes in id order, check the no-overdraft rule (`ledger.models.covers`, the same
text as the CHECK constraint), insert the transaction (ON CONFLICT DO NOTHING: a twin of
the key yields nothing, and nothing else is written), chain the postings, update the
balances and add the daily flows. A refusal writes nothing and answers the figures that
name it. A transfer does all of it in one round trip (`_transfer`), chaining in SQL
(`chain.posting_hash_sql`); a hold's post locks the hold and its two ends (drawing the
transaction id) and then writes, chained in Python (`_write`); a hold is one statement
(`_HOLD`). Statements are prepared on the server (psycopg prepares one per text and
parameter types), with a text per number of legs so that the generic plan is a good one.

Driver errors are raised as SQLAlchemy's DBAPIError family, as the rest of the ledger
raises them, so retries and error pages treat every write alike.
"""

import json
from collections.abc import Sequence
from datetime import date
from typing import Any

import sqlalchemy.orm as so

from ledger.chain import posting_hash_sql
from ledger.models import covers

_ACCOUNT_COLUMNS = (
    "a.id, a.address, a.asset_code, a.stripes, a.scope, b.id, b.stripe, b.allow_negative,"
    " b.posted, b.pending, b.seq, b.head_hash"
)
_NEXT_ID = "(SELECT nextval('ledger_transactions_id_seq'))"
# Balance stripes by id, locked in id order, with the id of a transaction about to be
# written (its chain needs it): what a reversal writes on.
_LOCK_BALANCES = (
    f"SELECT {_ACCOUNT_COLUMNS}, {_NEXT_ID}"
    " FROM ledger_accounts a JOIN ledger_balances b ON b.account_id = a.id"
    " WHERE b.id = ANY(%s::bigint[]) ORDER BY b.id FOR NO KEY UPDATE OF b"
)
# A hold's post, first round trip: the hold, locked, with what its key already did; then,
# if it is open, both ends locked in id order as _LOCK_BALANCES locks them (the hold's row
# is read, and locked, before the ends: the lateral subquery needs its values). One row per
# end; a single row with no end when the hold is not open; none for no hold.
HOLD_COLUMNS = (
    "id", "idempotency_key", "request_hash", "account_id", "balance_id", "destination_id",
    "asset_code", "amount", "status", "kind", "memo", "meta", "created_at", "expires_at",
    "resolved_at", "resolution_key", "posted_amount", "transaction_id", "key_tx",
    "key_resolved_other")
_LOCK_HOLD_AND_ENDS = f"""
WITH h AS MATERIALIZED (
    SELECT {", ".join("h." + c for c in HOLD_COLUMNS[:-2])},
           (SELECT t.id FROM ledger_transactions t WHERE t.idempotency_key = %(key)s)
               AS key_tx,
           (SELECT o.id FROM ledger_holds o
            WHERE o.resolution_key = %(key)s AND o.id <> %(hold_id)s::bigint)
               AS key_resolved_other
    FROM ledger_holds h WHERE h.id = %(hold_id)s::bigint
    FOR UPDATE OF h
)
SELECT h.*, e.*
FROM h LEFT JOIN LATERAL (
    SELECT {_ACCOUNT_COLUMNS}, {_NEXT_ID}
    FROM ledger_accounts a JOIN ledger_balances b ON b.account_id = a.id
    WHERE h.status = 'open' AND b.id IN (h.balance_id, (
        SELECT ob.id FROM ledger_balances ob JOIN ledger_accounts d ON d.id = ob.account_id
        WHERE d.id = h.destination_id AND ob.stripe = %(pick)s::int %% d.stripes))
    ORDER BY b.id
    FOR NO KEY UPDATE OF b
) e ON true
"""
_TRANSACTION_COLUMNS = (
    "idempotency_key, request_hash, kind, memo, meta, reverses_id, created_at, hash")
_FLOW_COLUMNS = "scope, asset_code, kind, day, slot, credits, debits, postings"
_FLOW_SUMS = (
    "credits = f.credits + excluded.credits, debits = f.debits + excluded.debits,"
    " postings = f.postings + excluded.postings")

# Texts are built once per number of legs (and of flow rows): fixed-size VALUES lists
# rather than arrays, so that the planner's generic plan for a prepared statement is as
# good as a custom one and is kept, instead of planning every execution again.
_WRITES: dict[tuple[int, int, bool], str] = {}
# The hold a transaction posts, marked by the write's statement.
_POSTED_HOLD = """
, posted_hold AS (
    UPDATE ledger_holds SET status = 'posted', posted_amount = %s::bigint,
        transaction_id = %s::bigint, resolved_at = %s::timestamp, resolution_key = %s
    WHERE id = %s::bigint AND EXISTS (SELECT FROM t)
)"""


def _marks(n: int, casts: Sequence[str]) -> str:
    row = "(" + ", ".join(f"%s::{cast}" for cast in casts) + ")"
    return ", ".join([row] * n)


def _write(n: int, flows: int, posts_hold: bool) -> str:
    """A transaction of `n` postings chained in Python, onto stripes this transaction locked.

    `v` holds each stripe's figures after the write; `short` the stripes those would take
    below their floor. Only when there are none is the transaction inserted (unless its key
    is taken), and every other write hangs on that insert. The answer: the new
    transaction's id (None if nothing was written) and the first short stripe, if any.
    """
    if (n, flows, posts_hold) not in _WRITES:
        flow_part = "" if not flows else f"""
, flows AS (
    INSERT INTO ledger_flows AS f ({_FLOW_COLUMNS})
    SELECT v.* FROM t, (VALUES {_marks(flows, (
        "text", "text", "text", "date", "smallint", "bigint", "bigint", "bigint"))})
        AS v ({_FLOW_COLUMNS})
    ON CONFLICT (scope, asset_code, kind, day, slot) DO UPDATE SET {_FLOW_SUMS}
)"""
        hold_part = _POSTED_HOLD if posts_hold else ""
        _WRITES[n, flows, posts_hold] = f"""
WITH v AS (
    SELECT * FROM (VALUES {_marks(n, ("bigint", "bigint", "bigint", "bigint", "text"))})
        AS v (id, posted, pending, seq, head_hash)
), short AS (
    SELECT b.id FROM ledger_balances b JOIN v ON v.id = b.id
    WHERE NOT {covers("v.posted", "v.pending", "b.allow_negative")}
), t AS (
    INSERT INTO ledger_transactions (id, {_TRANSACTION_COLUMNS})
    SELECT %s, %s, %s, %s, %s, %s::json, %s::bigint, %s::timestamp, %s
    WHERE NOT EXISTS (SELECT FROM short)
    ON CONFLICT (idempotency_key) DO NOTHING
    RETURNING id
), balances AS (
    UPDATE ledger_balances AS b
    SET posted = v.posted, pending = v.pending, seq = v.seq, head_hash = v.head_hash
    FROM v WHERE b.id = v.id AND EXISTS (SELECT FROM t)
), postings AS (
    INSERT INTO ledger_postings
        (transaction_id, account_id, balance_id, asset_code, amount, seq, balance_after, hash)
    SELECT t.id, p.account_id, p.balance_id, p.asset_code, p.amount, p.seq, p.balance_after,
           p.hash
    FROM t, (VALUES {_marks(n, (
        "int", "bigint", "bigint", "text", "bigint", "bigint", "bigint", "text"))})
        AS p (ord, account_id, balance_id, asset_code, amount, seq, balance_after, hash)
    ORDER BY p.ord
){flow_part}{hold_part}
SELECT (SELECT id FROM t), (SELECT min(id) FROM short)
"""
    return _WRITES[n, flows, posts_hold]


# A hold in one round trip: lock one stripe of the source, insert the hold if every rule
# holds, add it to the stripe's pending. The row returned is the locked stripe as hold()
# reads it, whether the hold is covered, then the new hold's id (None if nothing was
# written): hold() names a refusal from it.
_HOLD = f"""
WITH s AS (
    SELECT a.id AS account_id, a.asset_code, b.id AS balance_id, b.allow_negative, b.posted,
           b.pending,
           (SELECT d.id FROM ledger_accounts d WHERE d.address = %(dst)s) AS dst_id,
           (SELECT d.asset_code FROM ledger_accounts d WHERE d.address = %(dst)s) AS dst_asset,
           (SELECT h.id FROM ledger_holds h WHERE h.idempotency_key = %(key)s) AS taken,
           {covers("b.posted", "(b.pending + %(amount)s::bigint)", "b.allow_negative")}
               AS covered
    FROM ledger_accounts a JOIN ledger_balances b ON b.account_id = a.id
    WHERE a.address = %(src)s AND b.stripe = %(pick)s::int %% a.stripes
    FOR NO KEY UPDATE OF b
), h AS (
    INSERT INTO ledger_holds (idempotency_key, request_hash, account_id, balance_id,
        destination_id, asset_code, amount, status, kind, memo, meta, created_at, expires_at)
    SELECT %(key)s, %(request_hash)s, s.account_id, s.balance_id, s.dst_id, s.asset_code,
           %(amount)s::bigint, 'open', %(kind)s, %(memo)s, %(meta)s::json,
           %(created_at)s::timestamp, %(expires_at)s::timestamp
    FROM s
    WHERE s.taken IS NULL
      AND (%(expires_at)s::timestamp IS NULL
           OR %(expires_at)s::timestamp > %(created_at)s::timestamp)
      AND s.dst_id IS NOT NULL AND s.dst_asset = s.asset_code
      AND s.covered
    ON CONFLICT (idempotency_key) DO NOTHING
    RETURNING id, balance_id
), pending AS (
    -- From the locked row's figure, not the snapshot's (see _transfer's balances).
    UPDATE ledger_balances AS b SET pending = s.pending + %(amount)s::bigint
    FROM h, s WHERE b.id = h.balance_id
)
SELECT s.account_id, s.asset_code, s.balance_id, s.allow_negative, s.posted, s.pending,
       s.dst_id, s.dst_asset, s.taken, s.covered, (SELECT h.id FROM h)
FROM s
"""

_TRANSFERS: dict[int, str] = {}


def _transfer(n: int) -> str:
    """A whole transfer of `n` legs in one statement: lock, check, write, answer.

    `locked` finds the accounts and locks one balance stripe of each in id order (a
    concurrent writer's rows are read as that writer committed them), and says of each
    whether its leg keeps it covered; `go` holds one row only if every rule passes (every
    account found, one asset if the caller named it, balanced per asset, every stripe
    covered, the key not yet used), and every write hangs on it; the chain hashes are
    `chain.posting_hash_sql`. The answer is every locked row, with the key's earlier
    transaction, the new one, each stripe's new head and whether it was covered, from which
    the caller names a refusal, finds a twin, or carries on.
    """
    if n not in _TRANSFERS:
        legs = ", ".join(f"(%(a{i})s::text, %(m{i})s::bigint, {i})" for i in range(n))
        _TRANSFERS[n] = f"""
WITH locked AS MATERIALIZED (
    SELECT a.id AS account_id, a.address, a.asset_code, a.stripes, a.scope,
           b.id AS balance_id, b.stripe, b.allow_negative, b.posted, b.pending, b.seq,
           b.head_hash, v.amount, v.ord,
           {covers("(b.posted + v.amount)", "b.pending", "b.allow_negative")} AS covered
    FROM (VALUES {legs}) AS v (address, amount, ord)
    JOIN ledger_accounts a ON a.address = v.address
    JOIN ledger_balances b ON b.account_id = a.id AND b.stripe = %(pick)s::int %% a.stripes
    ORDER BY b.id
    FOR NO KEY UPDATE OF b
), taken AS (
    SELECT id FROM ledger_transactions WHERE idempotency_key = %(key)s
), go AS (
    SELECT 1 FROM locked
    HAVING count(*) = {n}
       AND bool_and(covered)
       AND (%(asset)s::text IS NULL OR bool_and(asset_code = %(asset)s::text))
       AND NOT EXISTS (SELECT FROM taken)
       AND NOT EXISTS (SELECT FROM locked GROUP BY asset_code HAVING sum(amount) <> 0)
), t AS (
    INSERT INTO ledger_transactions ({_TRANSACTION_COLUMNS})
    SELECT %(key)s, %(request_hash)s, %(kind)s, %(memo)s, %(meta)s::json, NULL,
           %(created_at)s::timestamp, %(hash)s
    FROM go
    ON CONFLICT (idempotency_key) DO NOTHING
    RETURNING id
), chained AS (
    SELECT l.*, t.id AS transaction_id, l.seq + 1 AS new_seq, l.posted + l.amount AS after,
           {posting_hash_sql("l.head_hash", "l.balance_id", "l.seq + 1", "t.id",
                             "%(hash)s::text", "l.account_id", "l.asset_code", "l.amount",
                             "l.posted + l.amount")} AS hash
    FROM locked l, t
), balances AS (
    -- Every figure from the locked row (pending too): the row the statement's snapshot
    -- holds may be older, if a concurrent writer changed it while this one waited.
    UPDATE ledger_balances AS b
    SET posted = c.after, pending = c.pending, seq = c.new_seq, head_hash = c.hash
    FROM chained c WHERE b.id = c.balance_id
), postings AS (
    INSERT INTO ledger_postings
        (transaction_id, account_id, balance_id, asset_code, amount, seq, balance_after, hash)
    SELECT transaction_id, account_id, balance_id, asset_code, amount, new_seq, after, hash
    FROM chained ORDER BY ord
), flows AS (
    INSERT INTO ledger_flows AS f ({_FLOW_COLUMNS})
    SELECT scope, asset_code, %(kind)s, %(day)s::date, %(slot)s::smallint,
           sum(greatest(amount, 0)), sum(greatest(-amount, 0)), count(*)
    FROM chained WHERE scope IS NOT NULL
    -- In code-point order, as ledger.flows.rows sorts the rows the other writers add.
    GROUP BY scope, asset_code ORDER BY scope COLLATE "C", asset_code COLLATE "C"
    ON CONFLICT (scope, asset_code, kind, day, slot) DO UPDATE SET {_FLOW_SUMS}
)
SELECT l.account_id, l.address, l.asset_code, l.stripes, l.scope, l.balance_id, l.stripe,
       l.allow_negative, l.posted, l.pending, l.seq, l.head_hash,
       (SELECT id FROM taken), (SELECT id FROM t), c.hash, l.covered
FROM locked l LEFT JOIN chained c ON c.balance_id = l.balance_id
ORDER BY l.balance_id
"""
    return _TRANSFERS[n]


class Driver:
    """The DB-API connection under a session's current transaction."""

    __slots__ = ("connection", "raw")

    def __init__(self, session: so.Session) -> None:
        self.connection = session.connection()
        self.raw = self.connection.connection.driver_connection

    def execute(self, sql: str, params: Any = None) -> list[tuple]:
        """Run one statement (prepared on the server) and return its rows.

        An error, or an interruption, goes through the engine's own handling, as for any
        statement SQLAlchemy runs: `handle_error` listeners see it, a lost connection
        invalidates the pool, and a driver error is raised as the matching DBAPIError.
        """
        try:
            # Every statement sent here returns rows (SELECT or RETURNING).
            return self.raw.execute(sql, params, prepare=True).fetchall()
        except BaseException as error:
            # SQLAlchemy's handling, through the one method that holds it (private, stable
            # across 2.0 and 2.1; tests/ledger/test_ledger_transfers.py checks what it does here).
            self.connection._handle_dbapi_exception(error, sql, params, None, None)

    def transfer(self, legs: Sequence[tuple[str, int]], values: dict, *, pick: int,
                 asset: str | None, day: date, slot: int) -> list[tuple]:
        """A whole transfer in one statement (see `_transfer`).

        Each row: the 12 columns of a locked stripe (as LockedAccount reads them), then the
        id of a transaction that already holds the key, the id of the one written (None if
        nothing was written), the stripe's new chain head and whether its leg is covered.
        """
        params: dict[str, Any] = {
            "pick": pick, "key": values["idempotency_key"], "asset": asset,
            "request_hash": values["request_hash"], "kind": values["kind"],
            "memo": values["memo"], "meta": json.dumps(values["meta"]),
            "created_at": values["created_at"], "hash": values["hash"], "day": day,
            "slot": slot}
        for i, (address, amount) in enumerate(legs):
            params[f"a{i}"], params[f"m{i}"] = address, amount
        return self.execute(_transfer(len(legs)), params)

    def hold(self, values: dict, *, source: str, destination: str, pick: int) -> tuple | None:
        """A whole hold in one statement (see `_HOLD`); None if there is no source."""
        rows = self.execute(_HOLD, {
            "src": source, "dst": destination, "pick": pick,
            "key": values["idempotency_key"], "request_hash": values["request_hash"],
            "amount": values["amount"], "kind": values["kind"], "memo": values["memo"],
            "meta": json.dumps(values["meta"]), "created_at": values["created_at"],
            "expires_at": values["expires_at"]})
        return rows[0] if rows else None

    def lock_balances(self, ids: Sequence[int]) -> list[tuple]:
        """Lock balance stripes by id, in id order; each row as LockedAccount reads it, then
        the id of the transaction about to be written."""
        return self.execute(_LOCK_BALANCES, [sorted(set(ids))])

    def lock_hold_and_ends(self, hold_id: int, key: str, pick: int) -> list[tuple]:
        """A hold and, if it is open, both its ends, locked in one statement.

        Each row: the hold's HOLD_COLUMNS, then an end as `lock_balances` gives it (None
        throughout when the hold is not open). No row: no such hold.
        """
        return self.execute(_LOCK_HOLD_AND_ENDS, {"hold_id": hold_id, "key": key,
                                                  "pick": pick})

    def write_transaction(self, values: dict, tx_id: int, postings: Sequence[tuple],
                          pending: Sequence[int], flows: Sequence[dict],
                          posts_hold: tuple[int, int] | None = None
                          ) -> tuple[int | None, int | None]:
        """Insert a transaction with its postings, balances and flows, if it is covered.

        `postings` are (account id, balance id, asset, amount, seq, balance after, hash),
        the chain already computed against `tx_id`, drawn beforehand when the stripes were
        locked; `pending` the balances' pending amounts to write with them; `flows` are
        ledger.flows rows; `posts_hold` the (id, amount posted) of the hold the transaction
        posts, marked posted by the same statement. Return the transaction's id (None when
        nothing was written: a twin holds the key, or a stripe would go short) and the
        first stripe that would go short (None when all are covered).
        """
        params: list[Any] = []
        for (_a, balance, _s, _m, seq, after, digest), held in zip(postings, pending,
                                                                   strict=True):
            params += (balance, after, held, seq, digest)
        params += (
            tx_id, values["idempotency_key"], values["request_hash"], values["kind"],
            values["memo"], json.dumps(values["meta"]), values["reverses_id"],
            values["created_at"], values["hash"])
        for i, posting in enumerate(postings):
            params += (i, *posting)
        for f in flows:
            params += (f["scope"], f["asset_code"], f["kind"], f["day"], f["slot"],
                       f["credits"], f["debits"], f["postings"])
        if posts_hold is not None:
            hold_id, amount = posts_hold
            params += (amount, tx_id, values["created_at"], values["idempotency_key"], hold_id)
        rows = self.execute(_write(len(postings), len(flows), posts_hold is not None), params)
        return rows[0][0], rows[0][1]

"""The transfer hot path in the database driver's own calls, under the session's transaction.

A transfer is a handful of small statements; building and running them through
SQLAlchemy's execution layer cost more client CPU than the driver and the hashing put
together, and each round trip to the server costs both sides more than the work it carries
(see benchmarks/README.md). Here they are fixed SQL texts sent straight to the DB-API
connection that the session's transaction already holds, so the work still commits or rolls
back with everything else the caller did:

- PostgreSQL, a transfer in one round trip (`_pg_transfer`): data-modifying CTEs lock the
  balance stripes in id order, check every rule, insert the transaction (ON CONFLICT DO
  NOTHING: a twin of the key yields nothing, and nothing else is written), chain the
  postings (SHA-256 in SQL over the text `chain.posting_hash` hashes, which `verify`
  recomputes in Python), update the balances and add the daily flows. A hold's post locks
  its two ends (drawing the transaction id) and then writes the same way (`_pg_write`).
  Statements are prepared on the server (psycopg prepares one per text and parameter
  types), with a text per number of legs so that the generic plan is a good one.
- SQLite, which has no data-modifying CTEs: lock (the immediate transaction already holds
  the database), insert the transaction, then the balances, postings and flows, as separate
  statements of the `sqlite3` module.

Driver errors are raised as SQLAlchemy's DBAPIError family, as the rest of the ledger
raises them, so retries and error pages treat both paths alike.
"""

import json
from collections.abc import Sequence
from datetime import date, datetime
from typing import Any

import sqlalchemy.orm as so

_ACCOUNT_COLUMNS = (
    "a.id, a.address, a.asset_code, a.stripes, a.scope, b.id, b.stripe, b.allow_negative,"
    " b.posted, b.pending, b.seq, b.head_hash"
)
_KEY_TAKEN = "(SELECT t.id FROM ledger_transactions t WHERE t.idempotency_key = {key})"
_NEXT_ID = "(SELECT nextval('ledger_transactions_id_seq'))"
_BOTH_ENDS = (
    " FROM ledger_accounts a JOIN ledger_balances b ON b.account_id = a.id"
    # Both rows by primary key (an OR across the join would scan every balance row).
    " WHERE b.id IN ({source}, (SELECT ob.id FROM ledger_balances ob"
    " JOIN ledger_accounts d ON d.id = ob.account_id"
    " WHERE d.id = {destination} AND ob.stripe = {pick} {mod} d.stripes))"
    " ORDER BY b.id"
)
_PG_LOCK_ENDS = (
    f"SELECT {_ACCOUNT_COLUMNS}, {_NEXT_ID}"
    + _BOTH_ENDS.format(source="%s", destination="%s", pick="%s::int", mod="%%")
    + " FOR NO KEY UPDATE OF b"
)
# A hold's post on PostgreSQL, first round trip: the hold, locked, with what its key already
# did; then, if it is open, both ends locked in id order as _PG_LOCK_ENDS locks them (the
# hold's row is read, and locked, before the ends: the lateral subquery needs its values).
# One row per end; a single row with no end when the hold is not open; none for no hold.
HOLD_COLUMNS = (
    "id", "idempotency_key", "request_hash", "account_id", "balance_id", "destination_id",
    "asset_code", "amount", "status", "kind", "memo", "meta", "created_at", "expires_at",
    "resolved_at", "resolution_key", "posted_amount", "transaction_id", "key_tx",
    "key_resolved_other")
_PG_LOCK_HOLD_AND_ENDS = f"""
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
_SQLITE_LOCK_ENDS = f"SELECT {_ACCOUNT_COLUMNS}, NULL" + _BOTH_ENDS.format(
    source="?", destination="?", pick="?", mod="%")
_TRANSACTION_COLUMNS = (
    "idempotency_key, request_hash, kind, memo, meta, reverses_id, created_at, hash")
_FLOW_COLUMNS = "scope, asset_code, kind, day, slot, credits, debits, postings"
_FLOW_SUMS = (
    "credits = f.credits + excluded.credits, debits = f.debits + excluded.debits,"
    " postings = f.postings + excluded.postings")

# PostgreSQL texts are built once per number of legs (and of flow rows): fixed-size VALUES
# lists rather than arrays, so that the planner's generic plan for a prepared statement is
# as good as a custom one and is kept, instead of planning every execution again.
_PG_WRITES: dict[tuple[int, int, bool], str] = {}
# The hold a transaction posts, marked by the write's statement (on SQLite, right after it).
_PG_POSTED_HOLD = """
, posted_hold AS (
    UPDATE ledger_holds SET status = 'posted', posted_amount = %s::bigint,
        transaction_id = %s::bigint, resolved_at = %s::timestamp, resolution_key = %s
    WHERE id = %s::bigint AND EXISTS (SELECT FROM t)
)"""
_SQLITE_POSTED_HOLD = (
    "UPDATE ledger_holds SET status = 'posted', posted_amount = ?, transaction_id = ?,"
    " resolved_at = ?, resolution_key = ? WHERE id = ?")


def _marks(n: int, casts: Sequence[str]) -> str:
    row = "(" + ", ".join(f"%s::{cast}" for cast in casts) + ")"
    return ", ".join([row] * n)


def _pg_write(n: int, flows: int, posts_hold: bool) -> str:
    if (n, flows, posts_hold) not in _PG_WRITES:
        flow_part = "" if not flows else f"""
, flows AS (
    INSERT INTO ledger_flows AS f ({_FLOW_COLUMNS})
    SELECT v.* FROM t, (VALUES {_marks(flows, (
        "text", "text", "text", "date", "smallint", "bigint", "bigint", "bigint"))})
        AS v ({_FLOW_COLUMNS})
    ON CONFLICT (scope, asset_code, kind, day, slot) DO UPDATE SET {_FLOW_SUMS}
)"""
        hold_part = _PG_POSTED_HOLD if posts_hold else ""
        _PG_WRITES[n, flows, posts_hold] = f"""
WITH t AS (
    INSERT INTO ledger_transactions (id, {_TRANSACTION_COLUMNS})
    VALUES (%s, %s, %s, %s, %s, %s::json, %s::bigint, %s::timestamp, %s)
    ON CONFLICT (idempotency_key) DO NOTHING
    RETURNING id
), balances AS (
    UPDATE ledger_balances AS b
    SET posted = v.posted, pending = v.pending, seq = v.seq, head_hash = v.head_hash
    FROM (VALUES {_marks(n, ("bigint", "bigint", "bigint", "bigint", "text"))})
        AS v (id, posted, pending, seq, head_hash)
    WHERE b.id = v.id AND EXISTS (SELECT FROM t)
), postings AS (
    INSERT INTO ledger_postings
        (transaction_id, account_id, balance_id, asset_code, amount, seq, balance_after, hash)
    SELECT t.id, v.account_id, v.balance_id, v.asset_code, v.amount, v.seq, v.balance_after,
           v.hash
    FROM t, (VALUES {_marks(n, (
        "int", "bigint", "bigint", "text", "bigint", "bigint", "bigint", "text"))})
        AS v (ord, account_id, balance_id, asset_code, amount, seq, balance_after, hash)
    ORDER BY v.ord
){flow_part}{hold_part}
SELECT id FROM t
"""
    return _PG_WRITES[n, flows, posts_hold]


# A hold in one round trip: lock one stripe of the source, insert the hold if every rule
# holds (the same rules ledger.holds.hold checks in Python, in the same order, to name a
# refusal), add it to the stripe's pending. The row returned is the locked stripe as
# hold() reads it, then the new hold's id (None if nothing was written).
_PG_HOLD = """
WITH s AS (
    SELECT a.id AS account_id, a.asset_code, b.id AS balance_id, b.allow_negative, b.posted,
           b.pending,
           (SELECT d.id FROM ledger_accounts d WHERE d.address = %(dst)s) AS dst_id,
           (SELECT d.asset_code FROM ledger_accounts d WHERE d.address = %(dst)s) AS dst_asset,
           (SELECT h.id FROM ledger_holds h WHERE h.idempotency_key = %(key)s) AS taken
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
      AND (s.allow_negative OR s.posted - s.pending >= %(amount)s::bigint)
    ON CONFLICT (idempotency_key) DO NOTHING
    RETURNING id, balance_id
), pending AS (
    UPDATE ledger_balances AS b SET pending = b.pending + %(amount)s::bigint
    FROM h WHERE b.id = h.balance_id
)
SELECT s.account_id, s.asset_code, s.balance_id, s.allow_negative, s.posted, s.pending,
       s.dst_id, s.dst_asset, s.taken, (SELECT h.id FROM h)
FROM s
"""

_PG_TRANSFERS: dict[int, str] = {}


def _pg_transfer(n: int) -> str:
    """A whole transfer of `n` legs in one statement: lock, check, write, answer.

    `locked` finds the accounts and locks one balance stripe of each in id order (a
    concurrent writer's rows are read as that writer committed them); `go` holds one row
    only if every rule passes (every account found, one asset if the caller named it,
    balanced per asset, no floor crossed, the key not yet used), and every write hangs on
    it; the chain hashes are SHA-256 over the very text `chain.posting_hash` hashes. The
    answer is every locked row, with the key's earlier transaction, the new one and each
    stripe's new head, from which the caller names a refusal, finds a twin, or carries on.
    """
    if n not in _PG_TRANSFERS:
        legs = ", ".join(f"(%(a{i})s::text, %(m{i})s::bigint, {i})" for i in range(n))
        _PG_TRANSFERS[n] = f"""
WITH locked AS MATERIALIZED (
    SELECT a.id AS account_id, a.address, a.asset_code, a.stripes, a.scope,
           b.id AS balance_id, b.stripe, b.allow_negative, b.posted, b.pending, b.seq,
           b.head_hash, v.amount, v.ord
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
       AND bool_and(allow_negative OR posted - pending + amount >= 0)
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
           encode(sha256(convert_to(concat_ws('|', l.head_hash, l.balance_id, l.seq + 1, t.id,
               %(hash)s::text, l.account_id, l.asset_code, l.amount, l.posted + l.amount),
               'UTF8')), 'hex') AS hash
    FROM locked l, t
), balances AS (
    UPDATE ledger_balances AS b SET posted = c.after, seq = c.new_seq, head_hash = c.hash
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
       (SELECT id FROM taken), (SELECT id FROM t), c.hash
FROM locked l LEFT JOIN chained c ON c.balance_id = l.balance_id
ORDER BY l.balance_id
"""
    return _PG_TRANSFERS[n]


_SQLITE_LOCKS: dict[int, str] = {}
_SQLITE_INSERT_TRANSACTION = (
    f"INSERT INTO ledger_transactions ({_TRANSACTION_COLUMNS})"
    " VALUES (:key, :request_hash, :kind, :memo, :meta, :reverses_id, :created_at, :hash)"
    " ON CONFLICT (idempotency_key) DO NOTHING RETURNING id"
)
_SQLITE_UPDATE_BALANCE = (
    "UPDATE ledger_balances SET posted = ?, pending = ?, seq = ?, head_hash = ? WHERE id = ?"
)
_SQLITE_INSERT_POSTING = (
    "INSERT INTO ledger_postings"
    " (transaction_id, account_id, balance_id, asset_code, amount, seq, balance_after, hash)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)
_SQLITE_ADD_FLOW = (
    f"INSERT INTO ledger_flows AS f ({_FLOW_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
    f" ON CONFLICT (scope, asset_code, kind, day, slot) DO UPDATE SET {_FLOW_SUMS}"
)


def _sqlite_lock(n: int) -> str:
    if n not in _SQLITE_LOCKS:
        marks = ", ".join(f":a{i}" for i in range(n))
        _SQLITE_LOCKS[n] = (
            f"SELECT {_ACCOUNT_COLUMNS}, {_KEY_TAKEN.format(key=':key')}, NULL"
            " FROM ledger_accounts a JOIN ledger_balances b ON b.account_id = a.id"
            f" WHERE a.address IN ({marks}) AND b.stripe = :pick % a.stripes ORDER BY b.id"
        )
    return _SQLITE_LOCKS[n]


def _sqlite_time(value: datetime) -> str:
    # The text SQLAlchemy's SQLite DateTime stores, microseconds always written.
    return value.strftime("%Y-%m-%d %H:%M:%S.%f")


class Driver:
    """The DB-API connection under a session's current transaction, and its dialect."""

    __slots__ = ("connection", "dialect", "raw", "postgres")

    def __init__(self, session: so.Session) -> None:
        self.connection = session.connection()
        self.dialect = self.connection.dialect
        self.raw = self.connection.connection.driver_connection
        self.postgres = self.dialect.name == "postgresql"

    def execute(self, sql: str, params: Any = None, *, many: bool = False) -> list[tuple]:
        """Run one statement and return its rows (or run it for each of many parameter sets).

        An error, or an interruption, goes through the engine's own handling, as for any
        statement SQLAlchemy runs: `handle_error` listeners see it, a lost connection
        invalidates the pool, and a driver error is raised as the matching DBAPIError.
        """
        try:
            if many:
                cursor = self.raw.cursor()
                cursor.executemany(sql, params)
                return []
            # Every statement sent here returns rows (SELECT or RETURNING).
            if self.postgres:
                return self.raw.execute(sql, params, prepare=True).fetchall()
            return self.raw.execute(sql, params).fetchall()
        except BaseException as error:
            # SQLAlchemy's handling, through the one method that holds it (private, stable
            # across 2.0 and 2.1; tests/test_ledger_transfers.py checks what it does here).
            self.connection._handle_dbapi_exception(error, sql, params, None, None)

    def lock_accounts(self, addresses: list[str], key: str, pick: int) -> list[tuple]:
        """SQLite: one stripe of each account (the transaction holds the database), in id
        order; each row ends with the key's earlier transaction, then None."""
        params: dict[str, Any] = {f"a{i}": a for i, a in enumerate(addresses)}
        params.update(key=key, pick=pick)
        return self.execute(_sqlite_lock(len(addresses)), params)

    def transfer(self, legs: Sequence[tuple[str, int]], values: dict, *, pick: int,
                 asset: str | None, day: date, slot: int) -> list[tuple]:
        """PostgreSQL: a whole transfer in one statement (see `_pg_transfer`).

        Each row: the 12 columns of a locked stripe as `lock_accounts` gives them, then the
        id of a transaction that already holds the key, the id of the one written (None if
        nothing was written) and the stripe's new chain head.
        """
        params: dict[str, Any] = {
            "pick": pick, "key": values["idempotency_key"], "asset": asset,
            "request_hash": values["request_hash"], "kind": values["kind"],
            "memo": values["memo"], "meta": json.dumps(values["meta"]),
            "created_at": values["created_at"], "hash": values["hash"], "day": day,
            "slot": slot}
        for i, (address, amount) in enumerate(legs):
            params[f"a{i}"], params[f"m{i}"] = address, amount
        return self.execute(_pg_transfer(len(legs)), params)

    def hold(self, values: dict, *, source: str, destination: str, pick: int) -> tuple | None:
        """PostgreSQL: a whole hold in one statement (see `_PG_HOLD`); None if no source."""
        rows = self.execute(_PG_HOLD, {
            "src": source, "dst": destination, "pick": pick,
            "key": values["idempotency_key"], "request_hash": values["request_hash"],
            "amount": values["amount"], "kind": values["kind"], "memo": values["memo"],
            "meta": json.dumps(values["meta"]), "created_at": values["created_at"],
            "expires_at": values["expires_at"]})
        return rows[0] if rows else None

    def next_transaction_id(self) -> int:
        """PostgreSQL: draw the id of a transaction about to be written (its chain needs it)."""
        return self.execute(f"SELECT {_NEXT_ID}")[0][0]

    def lock_ends(self, source_balance: int, destination: int, pick: int) -> list[tuple]:
        """Lock a source stripe and one stripe of the destination account, in id order.

        Each row ends with the next transaction id on PostgreSQL (None on SQLite).
        """
        if self.postgres:
            return self.execute(_PG_LOCK_ENDS, [source_balance, destination, pick])
        return self.execute(_SQLITE_LOCK_ENDS, [source_balance, destination, pick])

    def lock_hold_and_ends(self, hold_id: int, key: str, pick: int) -> list[tuple]:
        """PostgreSQL: a hold and, if it is open, both its ends, locked in one statement.

        Each row: the hold's HOLD_COLUMNS, then an end as `lock_ends` gives it (None
        throughout when the hold is not open). No row: no such hold.
        """
        return self.execute(_PG_LOCK_HOLD_AND_ENDS, {"hold_id": hold_id, "key": key,
                                                     "pick": pick})

    def write_transaction(self, values: dict, tx_id: int | None, postings: Sequence[tuple],
                          pending: Sequence[int], flows: Sequence[dict],
                          posts_hold: tuple[int, int] | None = None) -> int | None:
        """Insert a transaction unless its key is taken, with its postings, balances and flows.

        `postings` are (account id, balance id, asset, amount, seq, balance after, hash),
        the chain already computed against `tx_id`, drawn beforehand by `lock_ends`;
        `pending` the balances' pending amounts to write with them; `flows` are
        ledger.flows rows; `posts_hold` the (id, amount posted) of the hold the transaction
        posts, marked posted by the same statement. Return the transaction's id, or None
        when a twin holds the key (then nothing was written). PostgreSQL only: on SQLite
        the chain needs the id the insert gives, so `insert_transaction` then
        `write_postings`.
        """
        params: list[Any] = [
            tx_id, values["idempotency_key"], values["request_hash"], values["kind"],
            values["memo"], json.dumps(values["meta"]), values["reverses_id"],
            values["created_at"], values["hash"]]
        for (_a, balance, _s, _m, seq, after, digest), held in zip(postings, pending,
                                                                   strict=True):
            params += (balance, after, held, seq, digest)
        for i, posting in enumerate(postings):
            params += (i, *posting)
        for f in flows:
            params += (f["scope"], f["asset_code"], f["kind"], f["day"], f["slot"],
                       f["credits"], f["debits"], f["postings"])
        if posts_hold is not None:
            hold_id, amount = posts_hold
            params += (amount, tx_id, values["created_at"], values["idempotency_key"], hold_id)
        rows = self.execute(_pg_write(len(postings), len(flows), posts_hold is not None),
                            params)
        return rows[0][0] if rows else None

    def insert_transaction(self, values: dict) -> int | None:
        """SQLite: insert the transaction unless its key is taken; return its id or None."""
        rows = self.execute(_SQLITE_INSERT_TRANSACTION, {
            "key": values["idempotency_key"], "request_hash": values["request_hash"],
            "kind": values["kind"], "memo": values["memo"], "meta": json.dumps(values["meta"]),
            "reverses_id": values["reverses_id"],
            "created_at": _sqlite_time(values["created_at"]), "hash": values["hash"]})
        return rows[0][0] if rows else None

    def write_postings(self, tx_id: int, postings: Sequence[tuple], pending: Sequence[int],
                       flows: Sequence[dict], posts_hold: tuple[int, int] | None = None,
                       created_at: datetime | None = None, key: str | None = None) -> None:
        """SQLite: the postings, the balances they move, the flows and the hold posted (see
        `write_transaction`), statement by statement."""
        self.execute(_SQLITE_UPDATE_BALANCE, [
            (after, held, seq, digest, balance)
            for (_a, balance, _s, _m, seq, after, digest), held in zip(postings, pending,
                                                                       strict=True)
        ], many=True)
        self.execute(_SQLITE_INSERT_POSTING, [(tx_id, *posting) for posting in postings],
                     many=True)
        if flows:
            self.execute(_SQLITE_ADD_FLOW, [
                (f["scope"], f["asset_code"], f["kind"], _sqlite_day(f["day"]), f["slot"],
                 f["credits"], f["debits"], f["postings"]) for f in flows], many=True)
        if posts_hold is not None:
            hold_id, amount = posts_hold
            self.execute(_SQLITE_POSTED_HOLD, [
                (amount, tx_id, _sqlite_time(created_at), key, hold_id)], many=True)


def _sqlite_day(value: date) -> str:
    return value.isoformat()

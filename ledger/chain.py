"""Hashes that seal transactions and chain each balance stripe's postings in order.

Changing an amount, a memo or a cached figure, deleting a posting or slipping one in out of
order breaks a hash that `verify` recomputes from the rows.
"""

import hashlib
import json
from collections.abc import Iterable
from datetime import datetime
from typing import Any


def canonical(value: Any) -> str:
    """Return a stable JSON text for a request or a row's content."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False, default=_plain)


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"cannot hash a {type(value).__name__}")


def digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def request_hash(operation: str, **request: Any) -> str:
    """Fingerprint a write request, so that a reused idempotency key can be compared."""
    return digest(canonical({"op": operation, **request}))


def genesis_hash(balance_id: int) -> str:
    """Return the hash an empty balance stripe starts its chain from."""
    return digest(f"genesis|{balance_id}")


def transaction_hash(key: str, kind: str, memo: str, meta: dict, reverses_id: int | None,
                     created_at: datetime) -> str:
    """Seal a transaction's own fields."""
    return digest(canonical([key, kind, memo, meta, reverses_id, created_at]))


def posting_hash(prev_hash: str, balance_id: int, seq: int, transaction_id: int,
                 transaction_hash_: str, account_id: int, asset: str, amount: int,
                 balance_after: int) -> str:
    """Chain one posting onto the previous hash of its balance stripe."""
    return digest(
        f"{prev_hash}|{balance_id}|{seq}|{transaction_id}|{transaction_hash_}|"
        f"{account_id}|{asset}|{amount}|{balance_after}"
    )


def seal(heads: Iterable[tuple[int, int, str]]) -> str:
    """Fold every stripe's (balance id, seq, head hash) into one value to record off-database."""
    h = hashlib.sha256()
    for balance_id, seq, head in heads:
        h.update(f"{balance_id}|{seq}|{head};".encode())
    return h.hexdigest()

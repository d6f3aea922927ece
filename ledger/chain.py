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
    if (type(key) is str and type(kind) is str and type(memo) is str
            and type(created_at) is datetime and (reverses_id is None or type(reverses_id) is int)):
        # The very text canonical() gives for this list, spelled out: verify seals every
        # transaction, and json.dumps with sort_keys and a default costs several times more.
        return digest(
            f"[{_string(key)},{_string(kind)},{_string(memo)},"
            f"{'{}' if type(meta) is dict and not meta else canonical(meta)},"
            f"{'null' if reverses_id is None else reverses_id},"
            f"{_string(created_at.isoformat())}]"
        )
    return digest(canonical([key, kind, memo, meta, reverses_id, created_at]))


# How json.dumps(..., ensure_ascii=False) writes a string.
_string = json.encoder.encode_basestring


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

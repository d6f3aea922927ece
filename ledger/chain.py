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


# A posting's hash: SHA-256, in hex, of these fields joined by "|" (as UTF-8 text), the
# first being the previous hash of its balance stripe. This is the formula's one
# definition: `posting_hash` computes it in Python (writes that chain in Python, and
# verify, which must not trust anything stored in the database, functions included) and
# `posting_hash_sql` spells the same formula for the statements that chain in SQL.
POSTING_FIELDS = ("prev_hash", "balance_id", "seq", "transaction_id", "transaction_hash",
                  "account_id", "asset", "amount", "balance_after")
_SEPARATOR = "|"


def posting_hash(*fields: object) -> str:
    """Chain one posting onto the previous hash of its stripe; fields in POSTING_FIELDS order."""
    return hashlib.sha256(_SEPARATOR.join(map(str, fields)).encode()).hexdigest()


def posting_hash_sql(*expressions: str) -> str:
    """The SQL expression of `posting_hash` over column expressions in POSTING_FIELDS order."""
    if len(expressions) != len(POSTING_FIELDS):
        raise TypeError(f"a posting hash takes {len(POSTING_FIELDS)} fields")
    return (f"encode(sha256(convert_to(concat_ws('{_SEPARATOR}', {', '.join(expressions)}),"
            " 'UTF8')), 'hex')")


def seal(heads: Iterable[tuple[int, int, str]]) -> str:
    """Fold every stripe's (balance id, seq, head hash) into one value to record off-database."""
    h = hashlib.sha256()
    for balance_id, seq, head in heads:
        h.update(f"{balance_id}|{seq}|{head};".encode())
    return h.hexdigest()

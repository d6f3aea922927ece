"""Retrying a unit of work on transient conflicts (deadlocks, serialization failures)."""

import random
import time
from collections.abc import Callable
from typing import TypeVar

import sqlalchemy.orm as so
from sqlalchemy.exc import DBAPIError

T = TypeVar("T")

# PostgreSQL: serialization_failure, deadlock_detected, lock_not_available.
RETRYABLE_SQLSTATES = {"40001", "40P01", "55P03"}


def is_retryable(error: BaseException) -> bool:
    """Tell whether a database error is a transient conflict worth retrying."""
    if not isinstance(error, DBAPIError):
        return False
    orig = error.orig
    sqlstate = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
    return sqlstate in RETRYABLE_SQLSTATES


def run_in_transaction(session: so.Session, work: Callable[[so.Session], T], *,
                       attempts: int = 5) -> T:
    """Run `work` and commit; on a deadlock or serialization failure roll back and run again."""
    for attempt in range(1, attempts + 1):
        try:
            result = work(session)
            session.commit()
            return result
        except DBAPIError as error:
            session.rollback()
            if attempt == attempts or not is_retryable(error):
                raise
            time.sleep(random.uniform(0, 0.01 * 2**attempt))
        except BaseException:
            session.rollback()
            raise
    raise AssertionError("unreachable")

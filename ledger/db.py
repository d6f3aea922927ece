"""Engine set-up the ledger relies on, and retrying a unit of work on transient conflicts."""

import random
import time
from collections.abc import Callable
from typing import TypeVar

import sqlalchemy as sa
import sqlalchemy.orm as so
from sqlalchemy.exc import DBAPIError

T = TypeVar("T")

# PostgreSQL: serialization_failure, deadlock_detected, lock_not_available.
RETRYABLE_SQLSTATES = {"40001", "40P01", "55P03"}


def configure_engine(engine: sa.Engine) -> sa.Engine:
    """Make SQLite write transactions immediate (one writer at a time, waiting, never failing)."""
    if engine.dialect.name != "sqlite":
        return engine

    @sa.event.listens_for(engine, "connect")
    def _connect(dbapi_connection, _record):
        # Let SQLAlchemy, not the driver, decide when a transaction begins.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.execute("PRAGMA busy_timeout = 30000")
        if engine.url.database not in (None, "", ":memory:"):
            cursor.execute("PRAGMA journal_mode = WAL")
            cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.close()

    @sa.event.listens_for(engine, "begin")
    def _begin(connection):
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def is_retryable(error: BaseException) -> bool:
    """Tell whether a database error is a transient conflict worth retrying."""
    if not isinstance(error, DBAPIError):
        return False
    orig = error.orig
    sqlstate = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
    if sqlstate in RETRYABLE_SQLSTATES:
        return True
    return "database is locked" in str(orig)


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

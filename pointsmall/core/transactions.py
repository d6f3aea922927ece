"""One user action, one database transaction: its writes and its audit entry together.

Every feature's use cases run their writes inside `committed(session)`, so the page, the
API and the command line never commit around them, and a refusal leaves nothing written.
"""

from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy.orm as so


@contextmanager
def committed(session: so.Session) -> Iterator[None]:
    """Commit an action's writes with its audit entry, or roll all back on a refusal.

    The commit keeps the rows loaded: the page or the API answers from the values the
    transaction has just written instead of reading each row back.
    """
    try:
        yield
    except BaseException:
        session.rollback()
        raise
    real = session() if isinstance(session, so.scoped_session) else session
    kept, real.expire_on_commit = real.expire_on_commit, False
    try:
        real.commit()
    finally:
        real.expire_on_commit = kept

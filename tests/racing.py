"""Races on PostgreSQL: sessions that really commit, and jobs released together.

conftest loads this module as a plugin for its `racing` fixture; `race` runs the jobs of a
race (the market's and the sign-in attempts' tests keep variants of their own that report
outcomes differently).
"""

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
import sqlalchemy as sa
import sqlalchemy.orm as so

import ledger


@pytest.fixture
def racing(engine) -> so.sessionmaker:
    """Sessions that really commit, each on its own connection (no pool to queue on).

    The app's pool holds 15 connections: 50 racers would queue for one at the start line.
    """
    racers = sa.create_engine(engine.url.render_as_string(hide_password=False),
                              poolclass=sa.pool.NullPool)
    yield so.sessionmaker(bind=racers)
    racers.dispose()


def race(app, Session: so.sessionmaker, jobs) -> list[tuple[object, BaseException | None]]:
    """Run each job in its own thread, app context and committed session, together; return
    each job's (value, error)."""
    barrier = threading.Barrier(len(jobs), timeout=60)

    def run(job):
        with app.app_context(), Session() as session:
            session.connection()  # connected before the start line, not after
            barrier.wait()
            try:
                return ledger.run_in_transaction(session, job), None
            except Exception as error:  # the outcome under test
                return None, error

    with ThreadPoolExecutor(max_workers=len(jobs)) as pool:
        return list(pool.map(run, jobs))

"""Parallel guessing, on PostgreSQL: the limits hold exactly, however many tries at once.

Every racer runs in its own thread with its own session that really commits (as the page
and the API do after a failure), and all are released together by a barrier once they have
their connection.
"""

import threading
import uuid
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import pytest
import sqlalchemy as sa
import sqlalchemy.orm as so

from pointsmall.auth import models as auth_models
from pointsmall.auth import service as auth_service
from pointsmall.auth.models import SignInName, User
from pointsmall.market import actions
from tests.builders import PASSWORD_HASH

pytestmark = pytest.mark.postgres

RACERS = 50


def race(base_app, Session: so.sessionmaker, job: Callable[[so.Session], object],
         n: int = RACERS) -> Counter:
    """Run `job` in `n` threads at once; return how many ended in each way."""
    barrier = threading.Barrier(n, timeout=60)

    def run(_):
        with base_app.test_request_context(), Session() as session:
            session.connection()  # connected before the start line, not after
            barrier.wait()
            try:
                job(session)
                outcome = "ok"
            except Exception as error:  # the outcome under test
                outcome = type(error).__name__
            session.commit()  # a failure is remembered, as the page and the API do
            return outcome

    with ThreadPoolExecutor(max_workers=n) as pool:
        return Counter(pool.map(run, range(n)))


@pytest.fixture
def staff_login(base_app, racing):
    """A committed staff account; yields its username, and deletes it afterwards."""
    username = f"racer{uuid.uuid4().hex[:8]}"
    with base_app.app_context(), racing() as s:
        user = User(username=username, name="赛跑者", role="admin", password_hash=PASSWORD_HASH)
        s.add(user)
        s.commit()
        user_id = user.id
    yield username
    with racing() as s:
        s.execute(sa.delete(SignInName).where(SignInName.user_id == user_id))
        s.execute(sa.delete(User).where(User.id == user_id))
        s.commit()


@pytest.fixture
def counted_checks(monkeypatch):
    """Count the password checks, from every thread."""
    checks = Counter()
    real = auth_models.check_password_hash
    lock = threading.Lock()

    def counting(stored, password):
        with lock:
            checks["password"] += 1
        return real(stored, password)

    monkeypatch.setattr(auth_models, "check_password_hash", counting)
    return checks


def test_fifty_parallel_wrong_passwords_get_exactly_five_checked(
        base_app, racing, staff_login, counted_checks):
    def guess(session):
        auth_service.authenticate(session, staff_login, "wrong-password", "10.9.8.7")

    outcomes = race(base_app, racing, guess)

    assert outcomes == {"SignInFailed": 5, "TooManyAttempts": RACERS - 5}
    assert counted_checks["password"] == 5


def test_fifty_parallel_wrong_passwords_for_an_unknown_name_get_the_same_answers(
        base_app, racing, counted_checks):
    name = f"nobody{uuid.uuid4().hex[:8]}"

    def guess(session):
        auth_service.authenticate(session, name, "wrong-password", "10.9.8.8")

    outcomes = race(base_app, racing, guess)

    assert outcomes == {"SignInFailed": 5, "TooManyAttempts": RACERS - 5}
    assert counted_checks["password"] == 5


def test_fifty_parallel_wrong_codes_get_exactly_ten_answered(base_app, racing):
    merchant_user = 10**9 + uuid.uuid4().int % 10**8  # the key the counter counts under

    def guess(session):
        actions.find_counted(session, 1, merchant_user, f"WRONG{uuid.uuid4().hex[:5]}")

    outcomes = race(base_app, racing, guess)

    assert outcomes == {"UnknownRedemption": actions.CODE_LIMIT,
                        "AttemptsExceeded": RACERS - actions.CODE_LIMIT}

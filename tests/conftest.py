"""Fixtures: a database built by the migrations, and a rolled-back transaction per test.

The suite runs on a fresh PostgreSQL database created for this run and dropped afterwards,
so parallel runs never see each other's rows: on TEST_DATABASE_URL's server when it names
one, otherwise on an embedded server started for this run in a temporary folder (stopped
and deleted at the end).
"""

import functools
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import sqlalchemy as sa
import sqlalchemy.orm as so
from flask import g, request_started
from flask_migrate import upgrade

import ledger
from pointsmall import create_app
from pointsmall.config import database_url as normalise_url
from pointsmall.core import embedded_db
from pointsmall.extensions import db
from tests.builders import joined_to

PG_URL = os.environ.get("TEST_DATABASE_URL")

# Builder fixtures (make_community, make_staff, make_volunteer, ...) and the racers' sessions
# for every module.
pytest_plugins = ["tests.builders", "tests.racing"]


@pytest.fixture(scope="session")
def server_url() -> Iterator[str]:
    """The URL of the PostgreSQL server the suite runs on (its maintenance database)."""
    if PG_URL:
        yield normalise_url(PG_URL, "")
        return
    with embedded_db.temporary() as server:
        yield server.url()


@contextmanager
def empty_database(server_url: str, prefix: str) -> Iterator[str]:
    """Yield the URL of a new, empty database of its own on `server_url`; drop it after."""
    server = sa.make_url(server_url)
    name = f"pointsmall_{prefix}_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(server, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
    try:
        yield server.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


@pytest.fixture(scope="session")
def own_database(server_url):
    """Make a database of a test's own: `with own_database("jobs") as url:` (dropped after)."""
    return functools.partial(empty_database, server_url)


@pytest.fixture(scope="session")
def database_url(own_database) -> Iterator[str]:
    with own_database("test") as url:
        yield url


@pytest.fixture
def pgdata() -> Iterator[Path]:
    """A data folder for an embedded server of the test's own (see embedded_db.temporary
    for why not in tmp_path); whatever server this process started there is stopped after."""
    folder = Path(tempfile.mkdtemp(prefix="pointsmall-test-"))
    try:
        yield folder / "postgres"
    finally:
        embedded_db.release(folder / "postgres")
        shutil.rmtree(folder, ignore_errors=True)


def migrated_app(database_url: str, **config):
    """Build a test app on `database_url`, its schema built by the migrations as in production."""
    app = create_app({
        "TESTING": True,
        "SECRET_KEY": "test-secret",
        "SQLALCHEMY_DATABASE_URI": database_url,
        **config,
    })
    with app.app_context():
        upgrade()
        db.session.remove()
    request_started.connect(_fresh_g, app, weak=False)
    return app


@pytest.fixture(scope="session")
def own_app(own_database):
    """Build an app on a database of its own: `with own_app("jobs", **config) as app:`
    (its connections closed and the database dropped after)."""
    @contextmanager
    def build(prefix: str, **config) -> Iterator:
        with own_database(prefix) as url:
            app = migrated_app(url, **config)
            try:
                yield app
            finally:
                with app.app_context():
                    db.session.remove()
                    db.engine.dispose()
    return build


@pytest.fixture(scope="session")
def base_app(database_url, tmp_path_factory):
    """The app the tests share."""
    return migrated_app(database_url)


def _fresh_g(sender, **extra) -> None:
    """Start each request with an empty `g`, as in production.

    A test's requests share the app context the `app` fixture pushed, and with it `g`,
    where Flask-Login caches the signed-in user, Flask-WTF the CSRF token and Flask-Babel
    the locale: left there, one client's sign-in or language would leak into the next.
    """
    g._get_current_object().__dict__.clear()


@pytest.fixture(scope="session")
def engine(base_app) -> sa.Engine:
    with base_app.app_context():
        return db.engine


@pytest.fixture(scope="session")
def dialect(engine) -> str:
    return engine.dialect.name


@pytest.fixture
def connection(engine) -> Iterator[sa.Connection]:
    """A connection inside a transaction that is rolled back after the test."""
    with engine.connect() as conn:
        outer = conn.begin()
        yield conn
        if outer.is_active:
            outer.rollback()


@pytest.fixture
def session(connection) -> Iterator[so.Session]:
    """A session whose commits are savepoints of the test's rolled-back transaction."""
    with so.Session(bind=connection, join_transaction_mode="create_savepoint") as s:
        yield s


@pytest.fixture
def app(base_app, connection):
    """The app, its db.session joined to the test's rolled-back transaction."""
    with joined_to(base_app, connection):
        yield base_app


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def committed(engine) -> so.sessionmaker:
    """Sessions that really commit, for tests of concurrent transactions."""
    return so.sessionmaker(bind=engine)


@pytest.fixture
def make_account(session):
    """Build an account, optionally funded from a fresh issuance account."""
    def build(address: str | None = None, *, points: int = 0, asset: str = "POINTS",
              allow_negative: bool = False, stripes: int = 1, s: so.Session | None = None):
        s = s or session
        address = address or f"volunteer:{uuid.uuid4().hex[:10]}:{asset.lower()}"
        ledger.open_account(s, address, asset, allow_negative=allow_negative, stripes=stripes)
        if points:
            issuance = ledger.open_account(
                s, f"community:test:issuance:{asset.lower()}", asset, allow_negative=True,
                stripes=4)
            ledger.move(s, issuance.address, address, points,
                        key=f"fund:{address}:{uuid.uuid4().hex}", kind="award")
        return address

    return build

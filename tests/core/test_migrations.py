"""The migrations build exactly the tables the models describe, and can be undone and redone."""

from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from flask_migrate import downgrade, upgrade

import ledger
from pointsmall import create_app
from pointsmall.extensions import db


def schema_differences(connection: sa.Connection) -> list:
    """Return what autogenerate would write to make the database match the models."""
    context = MigrationContext.configure(connection, opts={
        "compare_type": True, "include_name": not_the_queues})
    return compare_metadata(context, ledger.Base.metadata)


def not_the_queues(name, type_, parent_names) -> bool:
    """Leave out the job queue's own tables (procrastinate's schema, applied by 0009)."""
    return not (type_ == "table" and (name or "").startswith("procrastinate_"))


def user_triggers(connection: sa.Connection) -> set[str]:
    query = "SELECT tgname FROM pg_trigger WHERE NOT tgisinternal"
    return set(connection.scalars(sa.text(query)))


@pytest.fixture
def fresh_database_url(own_database) -> Iterator[str]:
    """An empty database on the suite's server, dropped afterwards."""
    with own_database("migrations") as url:
        yield url


def test_every_model_is_covered_by_the_migrations(engine):
    # The app's models share the ledger's metadata; all of them must be registered.
    assert db.metadata is ledger.Base.metadata
    assert {"ledger_postings", "ledger_transactions", "ledger_holds"} <= set(
        ledger.Base.metadata.tables)
    with engine.connect() as connection:
        assert schema_differences(connection) == []


def test_the_migrations_seed_both_assets_and_install_the_append_only_triggers(engine):
    with engine.connect() as connection:
        assets = set(connection.scalars(sa.text("SELECT code FROM ledger_assets")))
        triggers = user_triggers(connection)
    assert {"POINTS", "MERIT"} <= assets
    assert {"ledger_postings_append_only", "ledger_transactions_append_only"} <= triggers


def test_the_migrations_downgrade_to_nothing_and_upgrade_again_cleanly(fresh_database_url):
    app = create_app({"TESTING": True, "SECRET_KEY": "test-secret",
                      "SQLALCHEMY_DATABASE_URI": fresh_database_url})
    with app.app_context():
        try:
            upgrade()
            with db.engine.connect() as connection:
                triggers = user_triggers(connection)
                assert schema_differences(connection) == []
            assert triggers

            downgrade(revision="base")
            with db.engine.connect() as connection:
                assert set(sa.inspect(connection).get_table_names()) <= {"alembic_version"}
                assert user_triggers(connection) == set()

            upgrade()
            with db.engine.connect() as connection:
                assert schema_differences(connection) == []
                assert user_triggers(connection) == triggers
                assert set(connection.scalars(sa.text("SELECT code FROM ledger_assets"))) == {
                    "POINTS", "MERIT"}
        finally:
            db.session.remove()
            db.engine.dispose()


def test_a_ledger_built_by_the_migrations_accepts_writes_and_verifies(fresh_database_url):
    app = create_app({"TESTING": True, "SECRET_KEY": "test-secret",
                      "SQLALCHEMY_DATABASE_URI": fresh_database_url})
    with app.app_context():
        try:
            upgrade()
            session = db.session
            ledger.open_account(session, "community:1:issuance:points", "POINTS",
                                allow_negative=True, stripes=4)
            ledger.open_account(session, "volunteer:1:points", "POINTS")
            ledger.move(session, "community:1:issuance:points", "volunteer:1:points", 10,
                        key="award:1", kind="award")
            session.commit()
            assert ledger.balance(session, "volunteer:1:points").posted == 10
            assert ledger.verify(session).ok
        finally:
            db.session.remove()
            db.engine.dispose()


def test_the_sign_in_names_migration_renames_a_username_that_is_another_users_phone(
        fresh_database_url, capsys):
    app = create_app({"TESTING": True, "SECRET_KEY": "test-secret",
                      "SQLALCHEMY_DATABASE_URI": fresh_database_url})
    with app.app_context():
        try:
            upgrade(revision="0008_activity_keys")
            with db.engine.begin() as connection:
                # 1 took 2's phone as a username (the older account); 3 signs in by its own
                # phone; 4 has a username of its own and a phone.
                for id_, username, phone in ((1, "13900000002", None),
                                             (2, "lihua", "13900000002"),
                                             (3, "13900000003", "13900000003"),
                                             (4, "wangfang", "13900000004")):
                    connection.execute(sa.text(
                        "INSERT INTO users (id, username, phone, name, role, password_hash,"
                        " active, session_version, created_at) VALUES (:id, :username,"
                        " :phone, 'x', 'admin', 'x', true, 1, '2026-01-01')"),
                        {"id": id_, "username": username, "phone": phone})

            upgrade()

            with db.engine.connect() as connection:
                usernames = dict(connection.execute(
                    sa.text("SELECT id, username FROM users")).all())
                names = dict(connection.execute(sa.text(
                    "SELECT name, user_id FROM sign_in_names")).all())
                renames = connection.execute(sa.text(
                    "SELECT target FROM audit_log WHERE action = 'user.rename'")).scalars().all()
        finally:
            db.session.remove()
            db.engine.dispose()
    assert usernames == {1: "13900000002-1", 2: "lihua", 3: "13900000003", 4: "wangfang"}
    assert names == {"13900000002-1": 1, "lihua": 2, "13900000002": 2, "13900000003": 3,
                     "wangfang": 4, "13900000004": 4}
    assert renames == ["user:1"]
    assert "'13900000002-1'" in capsys.readouterr().out

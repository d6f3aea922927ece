"""Command-line tools, configuration from the environment, and the health check."""

import os
import re
import stat
import subprocess
import sys
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

import ledger
from ledger.clock import utcnow
from pointsmall import ROOT, cli, create_app
from pointsmall.config import ConfigError, database_url, from_environment, secret_key
from pointsmall.core import embedded_db
from pointsmall.extensions import db


def key():
    return f"test:{uuid.uuid4().hex}"


def released(result) -> int:
    match = re.search(r"released (\d+) expired hold", result.output)
    assert match, result.output
    return int(match.group(1))


# ledger expire-holds

def test_expire_holds_releases_holds_past_their_deadline_and_a_second_run_releases_none(
        app, session, make_account):
    volunteer, merchant = make_account(points=100), make_account()
    past = utcnow() - timedelta(days=2)
    due = [ledger.hold(session, volunteer, merchant, n, key=key(), kind="deposit",
                       now=past, expires_at=past + timedelta(hours=1)) for n in (10, 20)]
    on_time = ledger.hold(session, volunteer, merchant, 30, key=key(), kind="deposit",
                          expires_at=utcnow() + timedelta(days=1))
    runner = app.test_cli_runner()

    first = runner.invoke(args=["ledger", "expire-holds"])
    second = runner.invoke(args=["ledger", "expire-holds"])

    assert first.exit_code == 0, first.output
    assert released(first) >= 2
    assert second.exit_code == 0, second.output
    assert released(second) == 0
    session.expire_all()
    assert [ledger.get_hold(session, h.id).status for h in due] == ["expired", "expired"]
    assert ledger.get_hold(session, on_time.id).status == "open"
    assert ledger.balance(session, volunteer) == ledger.AccountBalance(volunteer, "POINTS",
                                                                       100, 30)
    assert ledger.verify(session).ok


def test_expire_holds_works_through_several_batches(app, session, make_account):
    volunteer, merchant = make_account(points=100), make_account()
    past = utcnow() - timedelta(days=2)
    holds = [ledger.hold(session, volunteer, merchant, 1, key=key(), kind="deposit",
                         now=past, expires_at=past + timedelta(hours=1)) for _ in range(5)]

    result = app.test_cli_runner().invoke(args=["ledger", "expire-holds", "--batch", "2"])

    assert result.exit_code == 0, result.output
    assert released(result) >= 5
    session.expire_all()
    assert {ledger.get_hold(session, h.id).status for h in holds} == {"expired"}
    assert ledger.balance(session, volunteer).pending == 0


# Configuration

@pytest.mark.parametrize("given", [
    "postgres://points:secret@db.example:5432/mall",
    "postgresql://points:secret@db.example:5432/mall",
])
def test_the_plain_postgresql_urls_hosts_hand_out_use_psycopg(given, tmp_path):
    assert database_url(given, str(tmp_path)) == (
        "postgresql+psycopg://points:secret@db.example:5432/mall")


def test_a_url_naming_its_driver_is_kept_as_given(tmp_path):
    given = "postgresql+psycopg://points@db/mall"
    assert database_url(given, str(tmp_path)) == given


@pytest.mark.parametrize("given", ["sqlite:////var/lib/mall.db", "sqlite://"])
def test_a_sqlite_url_is_refused_with_one_sentence_that_says_what_to_do(
        given, monkeypatch, tmp_path, pgdata):
    monkeypatch.setenv("DATABASE_URL", given)
    monkeypatch.setenv("POINTSMALL_PGDATA", str(pgdata))

    with pytest.raises(ConfigError) as refused:
        from_environment(str(tmp_path))

    said = refused.value.format_message()
    assert "SQLite is no longer supported" in said
    assert "DATABASE_URL" in said and "\n" not in said
    assert not pgdata.exists()


def test_flask_says_a_sqlite_url_is_refused_in_one_line_without_a_traceback(tmp_path):
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{tmp_path / 'old.db'}",
           "SECRET_KEY": "s"}
    env.pop("POINTSMALL_ENV", None)

    done = subprocess.run([sys.executable, "-m", "flask", "--app", "pointsmall", "ledger",
                           "verify"], env=env, capture_output=True, text=True, timeout=120)

    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        "Error: SQLite is no longer supported: set DATABASE_URL to a PostgreSQL server "
        "(postgresql://...), or unset it to use the embedded PostgreSQL server"]
    assert not (tmp_path / "old.db").exists()


def test_without_a_database_url_the_app_runs_on_an_embedded_postgresql_server(
        monkeypatch, pgdata):
    instance = pgdata.parent
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.delenv("POINTSMALL_PGDATA", raising=False)
    monkeypatch.setenv("SECRET_KEY", "s")

    url = from_environment(str(instance))["SQLALCHEMY_DATABASE_URI"]
    engine = sa.create_engine(url)
    with engine.connect() as connection:
        name, version = connection.execute(sa.text(
            "SELECT current_database(), current_setting('server_version_num')::int")).one()
    engine.dispose()
    embedded_db.release(pgdata)

    assert name == "pointsmall"
    assert version >= 180000
    assert (pgdata / "PG_VERSION").read_text().strip() == "18"  # in instance/postgres
    assert not (pgdata / "postmaster.pid").exists()  # stopped: this process was its only user
    assert not list(instance.glob("*.db"))


def test_the_environment_chooses_the_database(monkeypatch, tmp_path):
    monkeypatch.setenv("SECRET_KEY", "s")
    monkeypatch.setenv("DATABASE_URL", "postgres://u@h/d")
    assert from_environment(str(tmp_path))["SQLALCHEMY_DATABASE_URI"] == (
        "postgresql+psycopg://u@h/d")
    assert not (tmp_path / "postgres").exists()


def test_the_embedded_server_keeps_its_data_in_instance_postgres_unless_told(
        monkeypatch, tmp_path):
    monkeypatch.delenv("POINTSMALL_PGDATA", raising=False)
    assert embedded_db.data_folder(str(ROOT / "instance")) == ROOT / "instance" / "postgres"
    monkeypatch.setenv("POINTSMALL_PGDATA", str(tmp_path / "elsewhere"))
    assert embedded_db.data_folder(str(ROOT / "instance")) == tmp_path / "elsewhere"


def test_the_app_without_a_database_url_uses_the_embedded_server(monkeypatch, pgdata):
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.delenv("POINTSMALL_ENV", raising=False)
    monkeypatch.setenv("POINTSMALL_PGDATA", str(pgdata))

    app = create_app({"SECRET_KEY": "s"})
    with app.app_context():
        assert db.session.scalar(sa.text("SELECT current_database()")) == "pointsmall"
        db.session.remove()
        db.engine.dispose()

    assert sa.make_url(app.config["SQLALCHEMY_DATABASE_URI"]).query["host"] == str(pgdata)
    assert Path(app.instance_path) == ROOT / "instance"


def test_production_without_a_secret_key_refuses_to_start(monkeypatch, tmp_path):
    monkeypatch.setenv("POINTSMALL_ENV", "production")
    monkeypatch.delenv("SECRET_KEY", raising=False)

    with pytest.raises(ConfigError):
        from_environment(str(tmp_path))
    with pytest.raises(ConfigError):
        create_app({"SQLALCHEMY_DATABASE_URI": "postgresql://u@h/d"})
    assert not (tmp_path / "secret_key").exists()


def test_production_with_a_secret_key_starts_with_secure_cookies(monkeypatch, tmp_path):
    monkeypatch.setenv("DATABASE_URL", "postgresql://u@h/d")
    monkeypatch.setenv("POINTSMALL_ENV", "production")
    monkeypatch.setenv("SECRET_KEY", "from-the-environment")

    settings = from_environment(str(tmp_path))

    assert settings["PRODUCTION"] is True
    assert settings["SECRET_KEY"] == "from-the-environment"
    assert settings["SESSION_COOKIE_SECURE"] is True


def test_development_generates_a_secret_key_once_and_keeps_it(monkeypatch, tmp_path):
    monkeypatch.setenv("DATABASE_URL", "postgresql://u@h/d")
    monkeypatch.delenv("POINTSMALL_ENV", raising=False)
    monkeypatch.delenv("SECRET_KEY", raising=False)

    first = from_environment(str(tmp_path))["SECRET_KEY"]
    second = from_environment(str(tmp_path))["SECRET_KEY"]

    assert first == second
    assert len(first) >= 32
    kept = tmp_path / "secret_key"
    assert kept.read_text().strip() == first
    assert stat.S_IMODE(kept.stat().st_mode) == 0o600
    assert from_environment(str(tmp_path))["PRODUCTION"] is False


def test_two_development_instances_get_different_keys(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    assert secret_key(None, str(a), False) != secret_key(None, str(b), False)


def test_a_secret_key_from_the_environment_wins_over_the_kept_one(monkeypatch, tmp_path):
    (tmp_path / "secret_key").write_text("kept")
    assert secret_key("given", str(tmp_path), False) == "given"
    assert secret_key(None, str(tmp_path), False) == "kept"


# Health and the demo

def test_the_health_check_answers_ok(client):
    response = client.get("/healthz")

    assert response.status_code == 200
    assert response.get_json()["status"] == "ok"


def test_the_demo_command_is_refused_in_production(app, session, monkeypatch):
    monkeypatch.setitem(app.config, "PRODUCTION", True)
    accounts = session.scalar(sa.select(sa.func.count(ledger.Account.id)))

    result = app.test_cli_runner().invoke(args=["demo"])

    assert result.exit_code == 1
    assert "refused" in result.output
    assert session.scalar(sa.select(sa.func.count(ledger.Account.id))) == accounts


def test_the_demo_server_is_refused_in_production(app, monkeypatch):
    monkeypatch.setitem(app.config, "PRODUCTION", True)
    served = []
    monkeypatch.setattr(cli, "run_simple", lambda *args, **kwargs: served.append(args))

    result = app.test_cli_runner().invoke(args=["start-demo"])

    assert result.exit_code == 1
    assert "refused" in result.output
    assert served == []

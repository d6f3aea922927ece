"""Configuration read from the environment."""

import os
import secrets
from pathlib import Path

import click

import ledger
from pointsmall.core import embedded_db


class ConfigError(click.ClickException, RuntimeError):
    """The deployment is configured in a way the app refuses to start with (a click error:
    `flask` prints its one sentence, no traceback)."""


def database_url(raw: str | None, instance_path: str) -> str:
    """Return a SQLAlchemy URL for `raw`, accepting the plain forms hosts hand out; without
    one, the embedded PostgreSQL server's (started or joined, see embedded_db)."""
    if not raw:
        return embedded_db.database_url(instance_path)
    if raw.startswith("sqlite:"):
        raise ConfigError(
            "SQLite is no longer supported: set DATABASE_URL to a PostgreSQL server "
            "(postgresql://...), or unset it to use the embedded PostgreSQL server")
    for prefix in ("postgres://", "postgresql://"):
        if raw.startswith(prefix):
            return "postgresql+psycopg://" + raw[len(prefix):]
    return raw


def secret_key(raw: str | None, instance_path: str, production: bool) -> str:
    """Return SECRET_KEY: from the environment, or kept in instance/ outside production."""
    if raw:
        return raw
    if production:
        raise ConfigError("SECRET_KEY must be set in production")
    path = Path(instance_path) / "secret_key"
    if path.exists():
        return path.read_text().strip()
    key = secrets.token_hex(32)
    path.write_text(key)
    path.chmod(0o600)
    return key


def from_environment(instance_path: str, overrides: dict | None = None) -> dict:
    """Build the app's settings from environment variables (`overrides` win)."""
    env = {**os.environ, **{k: v for k, v in (overrides or {}).items() if isinstance(v, str)}}
    production = env.get("POINTSMALL_ENV", "development") == "production"
    Path(instance_path).mkdir(parents=True, exist_ok=True)
    return {
        "ENV_NAME": "production" if production else "development",
        "PRODUCTION": production,
        "SECRET_KEY": secret_key(env.get("SECRET_KEY"), instance_path, production),
        # Tests name their database: no embedded server is started for them.
        "SQLALCHEMY_DATABASE_URI": (overrides or {}).get("SQLALCHEMY_DATABASE_URI")
        or database_url(env.get("DATABASE_URL"), instance_path),
        "SQLALCHEMY_ENGINE_OPTIONS": {"pool_pre_ping": True},
        "SESSION_COOKIE_HTTPONLY": True,
        "SESSION_COOKIE_SAMESITE": "Lax",
        "SESSION_COOKIE_SECURE": production,
        "HOLD_EXPIRY_BATCH": 1000,
        "REDEMPTION_HOLD_DAYS": int(env.get("REDEMPTION_HOLD_DAYS", "7")),
        # How many proxies (load balancers) in front of the app set X-Forwarded-* headers.
        "TRUSTED_PROXIES": int(env.get("TRUSTED_PROXIES", "0")),
        "UPLOAD_FOLDER": str(Path(instance_path) / "uploads"),
        "MAX_CONTENT_LENGTH": 5 * 1024 * 1024,
        # Longer addresses (path and query) answer 414; gunicorn's --limit-request-line
        # must stay above it (see the README) so that the app, not gunicorn, answers.
        "MAX_URL_LENGTH": int(env.get("MAX_URL_LENGTH", "4096")),
        "WTF_CSRF_TIME_LIMIT": None,
        "BABEL_DEFAULT_LOCALE": "zh_CN",
        "BABEL_DEFAULT_TIMEZONE": env.get("POINTSMALL_TIMEZONE", ledger.DEFAULT_ZONE),
        "API_TITLE": "Points Mall API",
        "API_VERSION": "v1",
        "OPENAPI_VERSION": "3.0.3",
        "OPENAPI_URL_PREFIX": "/api",
        "OPENAPI_JSON_PATH": "openapi.json",
        "API_SPEC_OPTIONS": {
            "components": {"securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"}}},
            "security": [{"bearer": []}],
        },
    }

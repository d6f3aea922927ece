"""Points Mall: the Flask application that composes the ledger and the marketplace."""

from pathlib import Path

from flask import Flask

import ledger
from pointsmall import config as config_module
from pointsmall.extensions import db, migrate

ROOT = Path(__file__).resolve().parent.parent


def create_app(config: dict | None = None) -> Flask:
    """Build the app from the environment, overridden by `config` (tests pass one)."""
    app = Flask(
        __name__,
        instance_path=str(ROOT / "instance"),
        template_folder=str(ROOT / "templates"),
    )
    overrides = dict(config or {})
    if "SQLALCHEMY_DATABASE_URI" in overrides:
        overrides["SQLALCHEMY_DATABASE_URI"] = config_module.database_url(
            overrides["SQLALCHEMY_DATABASE_URI"], app.instance_path)
    app.config.from_mapping(config_module.from_environment(app.instance_path))
    app.config.from_mapping(overrides)

    db.init_app(app)
    migrate.init_app(app, db, directory=str(ROOT / "migrations"), render_as_batch=True)
    with app.app_context():
        ledger.configure_engine(db.engine)

    from pointsmall import cli, errors, health

    app.register_blueprint(health.bp)
    errors.register(app)
    cli.register(app)
    return app

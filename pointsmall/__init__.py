"""Points Mall: the Flask application that composes the ledger and the marketplace."""

import random
import time
from pathlib import Path

from flask import Flask
from sqlalchemy.exc import DBAPIError
from werkzeug.middleware.proxy_fix import ProxyFix

import ledger
from pointsmall import config as config_module
from pointsmall.extensions import api, babel, csrf, db, login_manager, migrate

ROOT = Path(__file__).resolve().parent.parent
RETRIES = 3


class PointsMall(Flask):
    """Flask that runs a request again when the database reports a deadlock or a
    serialization failure: every write is idempotent, so a second run is safe, and the
    user never sees a transient conflict as an error."""

    def dispatch_request(self):
        for attempt in range(1, RETRIES + 1):
            try:
                return super().dispatch_request()
            except DBAPIError as error:
                db.session.rollback()
                if attempt == RETRIES or not ledger.is_retryable(error):
                    raise
                time.sleep(random.uniform(0, 0.02 * attempt))
        raise AssertionError("unreachable")


def create_app(config: dict | None = None) -> Flask:
    """Build the app from the environment, overridden by `config` (tests pass one)."""
    app = PointsMall(
        __name__,
        instance_path=str(ROOT / "instance"),
        template_folder=str(ROOT / "templates"),
    )
    overrides = dict(config or {})
    if "SQLALCHEMY_DATABASE_URI" in overrides:
        overrides["SQLALCHEMY_DATABASE_URI"] = config_module.database_url(
            overrides["SQLALCHEMY_DATABASE_URI"], app.instance_path)
    app.config.from_mapping(config_module.from_environment(app.instance_path, overrides))
    app.config.from_mapping(overrides)
    proxies = int(app.config.get("TRUSTED_PROXIES") or 0)
    if proxies:
        # Behind a load balancer: take the client's address and scheme from the
        # X-Forwarded-* headers the trusted proxies set (sign-in limits and the audit
        # log count addresses; check-in QR links need the public scheme and host).
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=proxies, x_proto=proxies,
                                x_host=proxies, x_prefix=proxies)

    from pointsmall.core import shell

    db.init_app(app)
    migrate.init_app(app, db, directory=str(ROOT / "migrations"))
    # The ledger sums each day's flows by the deployment's local day.
    ledger.set_flow_zone(app.config["BABEL_DEFAULT_TIMEZONE"])
    csrf.init_app(app)
    babel.init_app(app, locale_selector=shell.select_locale,
                   default_translation_directories=str(ROOT / "pointsmall" / "translations"))
    login_manager.init_app(app)
    login_manager.login_view = "auth.login"
    login_manager.login_message = None
    api.init_app(app)

    from pointsmall import cli, models  # noqa: F401  (models: every table in the metadata)
    from pointsmall.admin import views as admin
    from pointsmall.auth import views as auth_views
    from pointsmall.auth.api import register_api
    from pointsmall.core import errors, health, photos
    from pointsmall.earning import admin_views as rules_views
    from pointsmall.earning import staff_views as staff_earning_views
    from pointsmall.earning import views as earning_views
    from pointsmall.exports import views as export_views
    from pointsmall.home import views as home
    from pointsmall.jobs import views as job_views
    from pointsmall.market import counter as portal
    from pointsmall.market import mall
    from pointsmall.market import staff_views as market
    from pointsmall.people import views as volunteer_views
    from pointsmall.reports import monthly as monthly_report
    from pointsmall.reports import views as report_views
    from pointsmall.tasks import cli as task_cli
    from pointsmall.tasks import staff_views as staff_task_views
    from pointsmall.tasks import views as task_views

    shell.register(app)
    app.register_blueprint(health.bp)
    app.register_blueprint(home.bp)
    app.register_blueprint(auth_views.bp)
    app.register_blueprint(volunteer_views.bp)
    app.register_blueprint(admin.bp)
    app.register_blueprint(admin.staff_bp)
    app.register_blueprint(mall.bp)
    app.register_blueprint(market.bp)
    app.register_blueprint(photos.bp)
    app.register_blueprint(portal.bp)
    app.register_blueprint(earning_views.bp)
    app.register_blueprint(staff_earning_views.bp)
    app.register_blueprint(rules_views.bp)
    app.register_blueprint(export_views.bp)
    app.register_blueprint(report_views.bp)
    app.register_blueprint(monthly_report.bp)
    app.register_blueprint(job_views.bp)
    app.register_blueprint(task_views.bp)
    app.register_blueprint(staff_task_views.bp)
    task_cli.register(app)
    register_api(app)
    errors.register(app)
    cli.register(app)
    return app

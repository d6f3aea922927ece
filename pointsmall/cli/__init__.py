"""Command-line tools: `flask --app pointsmall ledger ...`, `jobs ...`, `demo`, `start-demo`."""

import sys

import click
import sqlalchemy as sa
from flask import Flask, current_app
from flask.cli import AppGroup
from flask_migrate import upgrade
from werkzeug.serving import run_simple

import ledger
from merchants import redemptions
from pointsmall.cli import demo
from pointsmall.core import audit
from pointsmall.earning.expiry import expire_points
from pointsmall.extensions import db
from pointsmall.jobs.cli import jobs_cli
from pointsmall.jobs.queue import WorkerThread
from pointsmall.market import actions as market_actions
from pointsmall.people.communities import Community
from pointsmall.reports.models import record_check

ledger_cli = AppGroup("ledger", help="Check and maintain the points ledger.")


@ledger_cli.command("verify")
@click.option("--batch", default=20_000, show_default=True, help="Rows fetched at a time.")
def verify_command(batch: int) -> None:
    """Recompute every ledger invariant; exit 1 naming each violating row."""
    report = ledger.verify(db.session, batch=batch)
    db.session.rollback()
    # Dashboards show their figures without a warning only after a clean run.
    record_check(db.session, report)
    db.session.commit()
    checked = ", ".join(f"{n} {what}" for what, n in report.counts.items())
    click.echo(f"checked {checked}")
    click.echo("checks: balanced, cached_posted, pending, no_overdraft, hash_chain, holds, "
               "flows")
    click.echo(f"seal {report.seal}")
    if report.ok:
        click.echo("ledger OK: no violations")
        return
    for violation in report.violations:
        click.echo(f"VIOLATION {violation}", err=True)
    click.echo(f"ledger BROKEN: {len(report.violations)} violation(s)", err=True)
    sys.exit(1)


@ledger_cli.command("expire-holds")
@click.option("--batch", default=1000, show_default=True, help="Holds released per commit.")
def expire_holds_command(batch: int) -> None:
    """Release every open hold past its deadline; safe to run twice at once."""
    total = drain(lambda s: expire_holds_audited(s, batch), batch)
    click.echo(f"released {total} expired hold(s)")


def expire_holds_audited(session, batch: int) -> list[int]:
    """Release one batch of holds past their deadline, audited as the system in the same
    transaction: how many, and how many points went back to whom they were held for."""
    released = ledger.expire_holds(session, limit=batch,
                                   leave_kinds=(redemptions.HOLD_KIND,))
    if released:
        held = session.scalar(sa.select(sa.func.sum(ledger.Hold.amount))
                              .where(ledger.Hold.id.in_(released)))
        audit.record(session, "ledger.expire_holds", "", actor=None, count=len(released),
                     points=int(held or 0))
    return released


@ledger_cli.command("rebuild-flows")
def rebuild_flows_command() -> None:
    """Recompute the daily flows from the postings (after changing POINTSMALL_TIMEZONE)."""
    counted = ledger.rebuild_flows(db.session)
    db.session.commit()
    click.echo(f"rebuilt the daily flows from {counted} posting(s) in {ledger.flow_zone()}")


def drain(work, batch: int) -> int:
    """Run `work` (one batch, one commit) until it returns fewer than `batch` rows."""
    total = 0
    while True:
        done = ledger.run_in_transaction(db.session, work)
        total += len(done)
        if len(done) < batch:
            return total


redemptions_cli = AppGroup("redemptions", help="Maintain the mall's redemptions.")


@redemptions_cli.command("expire")
@click.option("--batch", default=500, show_default=True, help="Redemptions expired per commit.")
def expire_redemptions_command(batch: int) -> None:
    """Expire reserved redemptions past their deadline; safe every minute, twice at once."""
    total = market_actions.expire_redemptions(db.session, batch=batch)
    click.echo(f"expired {total} redemption(s)")


points_cli = AppGroup("points", help="Maintain volunteers' points.")


@points_cli.command("expire")
def expire_points_command() -> None:
    """Move expired POINTS to each community's expired account; safe to run twice at once."""
    total = 0
    for community_id in db.session.scalars(sa.select(Community.id)).all():
        total += ledger.run_in_transaction(
            db.session, lambda s, c=community_id: expire_points(s, c))
    click.echo(f"expired {total} point(s)")


@click.command("demo")
def demo_command() -> None:
    """Seed the demo deployment (refused in production)."""
    _refuse_in_production()
    created = demo.seed(db.session)
    db.session.commit()
    click.echo("demo data seeded" if created else "demo data already present")


@click.command("start-demo")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True)
def start_demo_command(host: str, port: int) -> None:
    """Migrate, seed the demo when the database is empty, and serve it."""
    _refuse_in_production()
    upgrade()
    if demo.seed(db.session):
        click.echo("demo data seeded")
    db.session.commit()
    # Hand the connection back to the pool before serving.
    db.session.remove()
    click.echo(f"Points Mall demo: http://{host}:{port}/")
    click.echo(f"Sign in with admin, staff1, staff2, vol1 ... vol50, merchant1 or market1; "
               f"the password is {demo.PASSWORD}.")
    app = current_app._get_current_object()
    # Large exports, imports and PDFs run as jobs: a worker runs beside the server.
    worker = WorkerThread(app)
    worker.start()
    click.echo("A job worker runs beside the server (large exports, imports, PDFs).")
    try:
        # The Flask CLI refuses app.run(); serve with werkzeug directly (demo only).
        run_simple(host, port, app, threaded=True)
    finally:
        if worker is not None:
            worker.stop()


def _refuse_in_production() -> None:
    if current_app.config["PRODUCTION"]:
        raise click.ClickException("the demo is refused when POINTSMALL_ENV=production")


def register(app: Flask) -> None:
    """Attach the commands to `app`."""
    app.cli.add_command(ledger_cli)
    app.cli.add_command(redemptions_cli)
    app.cli.add_command(points_cli)
    app.cli.add_command(demo_command)
    app.cli.add_command(start_demo_command)
    app.cli.add_command(jobs_cli)

"""`flask --app pointsmall tasks release-lapsed`: run from cron every few minutes."""

import click
from flask import Flask
from flask.cli import AppGroup

from pointsmall.extensions import db
from pointsmall.tasks import use_cases

group = AppGroup("tasks", help="The task board.")


@group.command("release-lapsed")
def release_lapsed_command() -> None:
    """Return to the pool every claim not started in time."""
    count = use_cases.release_lapsed_claims(db.session)
    click.echo(f"released {count} claim(s)")


def register(app: Flask) -> None:
    app.cli.add_command(group)

"""`flask --app pointsmall jobs ...`: run a worker, delete expired files."""

import click
from flask import current_app
from flask.cli import AppGroup

from pointsmall.extensions import db
from pointsmall.jobs import queue, work

jobs_cli = AppGroup("jobs", help="Run the background jobs (large exports, imports, PDFs).")


@jobs_cli.command("worker")
@click.option("--once", is_flag=True, help="Stop when the queue is empty instead of waiting.")
@click.option("--name", default="worker", show_default=True, help="Shown in the logs.")
def worker_command(once: bool, name: str) -> None:
    """Run jobs as they are queued, until stopped (Ctrl-C or SIGTERM lets the job finish)."""
    queue.run_worker(current_app._get_current_object(), wait=not once, name=name)


@jobs_cli.command("cleanup")
def cleanup_command() -> None:
    """Delete finished jobs' files past their time (workers also do it every 10 minutes)."""
    deleted = work.delete_expired(db.session)
    db.session.commit()
    click.echo(f"deleted {deleted} expired job(s)")

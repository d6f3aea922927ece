"""Run one job in a worker: an export file, a roster import or a monthly report PDF.

The work runs as its owner, in a request context rebuilt from what the request kept
(query string, page language, address), so exports, the importer and the report read
the same values they read in a request. One run at a time per job: the run holds a
transaction-scoped advisory lock, and a job already finished is never run again.
"""

import logging
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import timedelta

import sqlalchemy as sa
import sqlalchemy.orm as so
from flask import Flask, current_app
from flask_babel import force_locale
from flask_login import login_user

from ledger import utcnow
from pointsmall.auth.models import User
from pointsmall.extensions import db
from pointsmall.jobs.models import UNFINISHED, BackgroundJob

log = logging.getLogger(__name__)

# The advisory-lock namespace of job runs (the other key is the job's id).
LOCK_SPACE = 7_202_612
# Progress is written at most this often (seconds), in a transaction of its own.
PROGRESS_EVERY = 0.5
FILE_HOURS = 24


class Progress:
    """Count rows as they pass and write the count where the page polls it."""

    def __init__(self, job_id: int, total: int | None = None):
        self.job_id, self.done, self.total = job_id, 0, total
        self._written = 0.0
        self._write(total=total)

    def _write(self, **values) -> None:
        with db.engine.begin() as connection:
            connection.execute(sa.update(BackgroundJob).where(
                BackgroundJob.id == self.job_id).values(done=self.done, **values))
        self._written = time.monotonic()

    def set_total(self, total: int | None) -> None:
        self.total = total
        self._write(total=total)

    def counting(self, rows: Iterable) -> Iterator:
        """Yield `rows`, counting them."""
        for row in rows:
            self.done += 1
            if time.monotonic() - self._written >= PROGRESS_EVERY:
                self._write()
            yield row
        self._write()


def run(app: Flask, job_id: int) -> None:
    """Run job `job_id` unless it is finished or another worker runs it right now."""
    with app.app_context():
        session = db.session
        try:
            got = session.scalar(sa.select(sa.func.pg_try_advisory_xact_lock(LOCK_SPACE, job_id)))
            job = session.get(BackgroundJob, job_id)
            if not got or job is None or job.status not in UNFINISHED:
                session.rollback()
                return
            with db.engine.begin() as connection:  # seen by the page before the work ends
                connection.execute(sa.update(BackgroundJob).where(
                    BackgroundJob.id == job_id).values(
                    status="running", attempts=BackgroundJob.attempts + 1, done=0,
                    started_at=utcnow()))
            owner = session.get(User, job.owner_id)
            with _as_owner(app, job, owner):
                status = RUNNERS[job.kind](job, Progress(job_id))
            _finish(job, status or "done")
            session.commit()
        except Exception:
            # The work failed: say so on the job's page. If even that cannot be written
            # (the database is gone), the error reaches the queue, which runs the job again.
            log.exception("job %s failed", job_id)
            session.rollback()
            _fail(job_id)
        finally:
            session.remove()


@contextmanager
def _as_owner(app: Flask, job: BackgroundJob, owner: User | None):
    params = job.params
    with app.test_request_context(
            "/", query_string=params.get("args") or {},
            environ_base={"REMOTE_ADDR": params.get("address") or ""}), \
            force_locale(params.get("locale") or "zh_CN"):
        if owner is not None:
            login_user(owner)
        yield


def _finish(job: BackgroundJob, status: str) -> None:
    now = utcnow()
    hours = current_app.config.get("JOB_FILE_HOURS", FILE_HOURS)
    job.status, job.finished_at, job.upload = status, now, None
    job.expires_at = now + timedelta(hours=hours)
    db.session.flush()


def _fail(job_id: int) -> None:
    job = db.session.get(BackgroundJob, job_id)
    if job is None:
        return
    job.result = {"error": True}
    _finish(job, "failed")
    db.session.commit()


def keep_file(job: BackgroundJob, filename: str, content_type: str, data: bytes) -> None:
    """Store the job's finished file (in the run's transaction)."""
    job.filename, job.content_type, job.size = filename, content_type, len(data)
    db.session.flush()
    # Sent in binary (%b): as a text parameter, bytea travels hex-escaped, twice its size,
    # and the escaped copy sits in memory beside the file.
    db.session.connection().connection.driver_connection.execute(
        "UPDATE background_jobs SET content = %b WHERE id = %s", (data, job.id))


def spooled() -> tempfile.SpooledTemporaryFile:
    """A file for a job's output: in memory while small, on disk past a few megabytes."""
    return tempfile.SpooledTemporaryFile(max_size=8 * 1024 * 1024)


# Each runner fills the job's result or file and may answer "failed" (a refused import).
# The features that queue work register their runner here (`@work.runner("export")`), so
# the job machinery knows no feature; create_app imports them all before any job runs.
Runner = Callable[[BackgroundJob, Progress], str | None]
RUNNERS: dict[str, Runner] = {}


def runner(kind: str) -> Callable[[Runner], Runner]:
    """Register the function that does jobs of `kind`."""
    def register(function: Runner) -> Runner:
        RUNNERS[kind] = function
        return function
    return register


# An unfinished job this old lost its queue entry (a restored backup, say): give it up.
ABANDONED_AFTER = timedelta(days=2)


def delete_expired(session: so.Session) -> int:
    """Delete finished jobs (and their files) past their time; return how many."""
    now = utcnow()
    result = session.execute(sa.delete(BackgroundJob).where(sa.or_(
        BackgroundJob.expires_at <= now,
        sa.and_(BackgroundJob.status.in_(UNFINISHED),
                BackgroundJob.created_at <= now - ABANDONED_AFTER))))
    return result.rowcount


def delete_expired_files(app: Flask) -> int:
    """Delete expired jobs in a transaction of their own (the worker's cleanup task)."""
    with app.app_context():
        try:
            deleted = delete_expired(db.session)
            db.session.commit()
            return deleted
        finally:
            db.session.remove()

"""Start a job for a request, find a user's own jobs, delete files past their time."""

import hashlib
import json

import sqlalchemy as sa
import sqlalchemy.orm as so
from flask import current_app, request
from flask_babel import get_locale
from flask_babel import gettext as _
from werkzeug.exceptions import NotFound

from ledger import utcnow
from pointsmall.core.errors import AppError
from pointsmall.jobs import queue
from pointsmall.jobs.models import UNFINISHED, BackgroundJob

# Defaults of the sizes past which work leaves the request (settings of the same names).
DEFAULTS = {
    "EXPORT_JOB_ROWS": 20_000,
    "IMPORT_JOB_BYTES": 256 * 1024,
    "REPORT_JOB_VOLUNTEERS": 5_000,
}


# How many of a user's jobs may wait or run at once (setting JOB_MAX_UNFINISHED): one
# user cannot keep the workers from everyone else's.
MAX_UNFINISHED = 5


class TooManyJobs(AppError):
    """The user has as many jobs waiting or running as one may; nothing was queued."""

    status = 429
    code = "too_many_jobs"

    def __init__(self, most: int):
        super().__init__(_("You have %(num)d files being prepared. Please wait until one "
                           "is ready, then ask again.", num=most))


def limit(name: str) -> int | None:
    """Return the size setting `name` (see DEFAULTS); None keeps all that work inline."""
    value = current_app.config.get(name, DEFAULTS[name])
    return None if value is None else int(value)


def runs_as_job(session: so.Session, name: str, size: int) -> bool:
    """Whether work of `size` (rows, bytes, volunteers) goes past setting `name`."""
    most = limit(name)
    return most is not None and size > most


def request_params(**params) -> dict:
    """Return `params` with what the request says that the work needs: language, address."""
    return {**params, "locale": str(get_locale() or "zh_CN"),
            "address": request.remote_addr or ""}


def start_job(session: so.Session, owner_id: int, kind: str, params: dict, title: str,
              upload: bytes | None = None) -> BackgroundJob:
    """Queue a job, or return the owner's unfinished job that asked the same (flushes).

    The queue's entry is written on the session's connection: both commit together.
    """
    twin_key = _twin_key(kind, params, upload)
    twin = _unfinished_twin(session, owner_id, twin_key)
    if twin is not None:
        return twin
    most = int(current_app.config.get("JOB_MAX_UNFINISHED", MAX_UNFINISHED))
    waiting = session.scalar(sa.select(sa.func.count()).select_from(BackgroundJob).where(
        BackgroundJob.owner_id == owner_id, BackgroundJob.status.in_(UNFINISHED)))
    if waiting >= most:
        raise TooManyJobs(most)
    job = BackgroundJob(owner_id=owner_id, kind=kind, params=params, title=title[:200],
                        twin_key=twin_key, upload=upload, status="queued", done=0,
                        attempts=0)
    try:
        with session.begin_nested():
            session.add(job)
            session.flush()
    except sa.exc.IntegrityError:
        # The same request, a moment earlier, from another tab: answer its job.
        return _unfinished_twin(session, owner_id, twin_key)
    queue.defer(job.id, session)
    return job


def _twin_key(kind: str, params: dict, upload: bytes | None) -> str:
    asked = {k: v for k, v in params.items() if k != "address"}
    text = json.dumps([kind, asked], sort_keys=True, default=str)
    digest = hashlib.sha256(text.encode())
    if upload is not None:
        digest.update(hashlib.sha256(upload).digest())
    return digest.hexdigest()


def _unfinished_twin(session: so.Session, owner_id: int, twin_key: str) -> BackgroundJob | None:
    return session.scalar(sa.select(BackgroundJob).where(
        BackgroundJob.owner_id == owner_id, BackgroundJob.twin_key == twin_key,
        BackgroundJob.status.in_(UNFINISHED)))


def own_job(session: so.Session, job_id: int, user_id: int) -> BackgroundJob:
    """Return the user's job `job_id`; 404 for anyone else's, as for one that never was."""
    job = session.get(BackgroundJob, job_id)
    if job is None or job.owner_id != user_id or _expired(job):
        raise NotFound()
    return job


def file_of(session: so.Session, job: BackgroundJob) -> bytes:
    """Return the job's file, read in binary (as text, bytea comes hex-escaped: twice)."""
    raw = session.connection().connection.driver_connection
    with raw.cursor(binary=True) as cursor:
        cursor.execute("SELECT content FROM background_jobs WHERE id = %s", (job.id,))
        return bytes(cursor.fetchone()[0])


def own_jobs(session: so.Session, user_id: int) -> list[BackgroundJob]:
    """Return the user's jobs whose files are still kept, newest first."""
    return [job for job in session.scalars(
        sa.select(BackgroundJob).where(BackgroundJob.owner_id == user_id)
        .order_by(BackgroundJob.id.desc()).limit(50)) if not _expired(job)]


def _expired(job: BackgroundJob) -> bool:
    return job.expires_at is not None and job.expires_at <= utcnow()

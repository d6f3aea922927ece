"""The job queue: procrastinate, on the app's own PostgreSQL database (no other server).

A request defers a job on its own database connection, so the job row the page reads and
the queue's entry commit together or not at all. Workers (`flask jobs worker`) claim
entries with `FOR UPDATE SKIP LOCKED` (one worker per job) and send a heartbeat; a job
left "doing" by a worker whose heartbeat stopped (killed, machine gone) is put back in
the queue by the next worker to start and by a check every minute.
"""

import asyncio
import logging
import threading
from functools import cache
from typing import Any

import procrastinate
import sqlalchemy as sa
from flask import Flask

from pointsmall.extensions import db
from pointsmall.jobs import work as runs

log = logging.getLogger(__name__)

RUN_JOB = "pointsmall.run_job"
QUEUE = "pointsmall"
# A worker sends a heartbeat every HEARTBEAT seconds; one silent for STALLED is dead.
HEARTBEAT = 10.0
STALLED = 60.0
# The queue's own rows of finished jobs (the job rows pages read expire on their own).
KEEP_QUEUE_ROWS_HOURS = 24


def conninfo(url: sa.URL | str) -> str:
    """Return the libpq URI of a SQLAlchemy URL (psycopg is procrastinate's driver too)."""
    return sa.make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def build_queue(url: sa.URL | str | None = None) -> procrastinate.App:
    """Return a procrastinate app with Points Mall's tasks, its pool on `url` (not opened).

    Each worker builds its own (its own pool); requests only defer on their connection.
    """
    connector = procrastinate.PsycopgConnector(conninfo=conninfo(url)) if url else \
        procrastinate.PsycopgConnector()
    queue = procrastinate.App(connector=connector)
    # A job whose failure could not even be recorded (the database went away) is run
    # again a little later; any other failure is recorded on the job's page instead.
    queue.task(name=RUN_JOB, queue=QUEUE, pass_context=True,
               retry=procrastinate.RetryStrategy(max_attempts=5, wait=30))(_run_job)
    queue.periodic(cron="* * * * *")(queue.task(
        name="pointsmall.requeue_stalled", queue=QUEUE, pass_context=True,
        queueing_lock="requeue_stalled")(_requeue_stalled_task))
    queue.periodic(cron="*/10 * * * *")(queue.task(
        name="pointsmall.delete_expired", queue=QUEUE, pass_context=True,
        queueing_lock="delete_expired")(_delete_expired_task))
    return queue


@cache
def _deferrer() -> procrastinate.App:
    # Never opened: requests defer on their own connection, not on a pool of its own.
    return build_queue()


def defer(job_id: int, session) -> None:
    """Queue job `job_id` on `session`'s connection: it is queued when the session commits."""
    raw = session.connection().connection.driver_connection
    _deferrer().configure_task(name=RUN_JOB, connection=raw,
                               queueing_lock=f"job-{job_id}").defer(job_id=job_id)


def _run_job(context: procrastinate.JobContext, job_id: int) -> None:
    runs.run(context.additional_context["flask_app"], job_id)


async def requeue_stalled(queue: procrastinate.App) -> int:
    """Put back in the queue every job whose worker stopped sending heartbeats."""
    stalled = await queue.job_manager.get_stalled_jobs(seconds_since_heartbeat=STALLED)
    for job in stalled:
        log.warning("job %s (%s) was left by a dead worker: queued again", job.id,
                    job.task_name)
        await queue.job_manager.retry_job(job)
    return len(stalled)


async def _requeue_stalled_task(context: procrastinate.JobContext, timestamp: int) -> None:
    await requeue_stalled(context.app)


async def _delete_expired_task(context: procrastinate.JobContext, timestamp: int) -> None:
    await context.app.job_manager.delete_old_jobs(nb_hours=KEEP_QUEUE_ROWS_HOURS,
                                                  include_failed=True)
    await asyncio.to_thread(runs.delete_expired_files,
                            context.additional_context["flask_app"])


def run_worker(app: Flask, *, wait: bool = True, name: str = "worker",
               **options: Any) -> None:
    """Run a worker on `app`'s database: forever, or (wait=False) until the queue is empty.

    It first queues again what dead workers left, then works through the queue.
    """
    asyncio.run(work(app, wait=wait, name=name, **options))


async def work(app: Flask, *, wait: bool = True, name: str = "worker", **options: Any) -> None:
    """Run a worker in the running event loop (see run_worker); cancel it to stop it."""
    with app.app_context():
        url = db.engine.url
    queue = build_queue(url)
    async with queue.open_async():
        await requeue_stalled(queue)
        await queue.run_worker_async(
            queues=[QUEUE], wait=wait, name=name, listen_notify=wait,
            install_signal_handlers=options.pop("install_signal_handlers", wait),
            update_heartbeat_interval=HEARTBEAT, stalled_worker_timeout=STALLED,
            delete_jobs="successful", additional_context={"flask_app": app}, **options)


class WorkerThread(threading.Thread):
    """A worker beside the demo's dev server, in a thread, stopped with it."""

    def __init__(self, app: Flask):
        super().__init__(name="jobs-worker", daemon=True)
        self.app = app
        self.loop = asyncio.new_event_loop()
        self.task: asyncio.Task | None = None
        self.stopping = threading.Event()

    def run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.task = self.loop.create_task(work(self.app, name="demo-worker",
                                               install_signal_handlers=False))
        if self.stopping.is_set():
            self.task.cancel()
        try:
            self.loop.run_until_complete(self.task)
        except asyncio.CancelledError:
            pass
        except Exception:
            log.exception("the demo's job worker stopped")
        finally:
            self.loop.close()

    def stop(self, timeout: float = 15.0) -> None:
        """Let the job under way finish, unregister the worker, and end the thread."""
        self.stopping.set()
        if self.task is not None and not self.loop.is_closed():
            self.loop.call_soon_threadsafe(self.task.cancel)
        self.join(timeout)

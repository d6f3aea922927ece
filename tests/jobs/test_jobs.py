"""Background jobs: big exports, large roster imports and big communities' report PDFs run
in queue workers; the owner watches a progress page and downloads the file, nobody else can.

Workers claim jobs on connections of their own, so these tests commit for real, in a
database of their own (created for this module, dropped after), and run the workers
synchronously: `run_worker(wait=False)` works through the queue and returns.
"""

import asyncio
import io
import re
import threading
from datetime import timedelta
from itertools import islice

import openpyxl
import pytest
import sqlalchemy as sa
from flask import current_app

from ledger.clock import utcnow
from pointsmall.extensions import db
from pointsmall.jobs import queue, work
from pointsmall.jobs.models import BackgroundJob
from pointsmall.people.models import Volunteer
from tests.builders import (
    build_admin,
    build_community,
    build_staff,
    build_volunteer,
    enter_session,
    pdf_text,
)

ROWS = 5  # exports past 5 rows become jobs here
IMPORT_BYTES = 300
REPORT_VOLUNTEERS = 3
ZH_JOURNAL = ["交易编号", "时间", "类型", "摘要", "账户", "资产", "金额", "变动后余额"]


@pytest.fixture(scope="module")
def jobs_app(own_app):
    with own_app("jobs", WTF_CSRF_ENABLED=False, EXPORT_JOB_ROWS=ROWS,
                 IMPORT_JOB_BYTES=IMPORT_BYTES, REPORT_JOB_VOLUNTEERS=REPORT_VOLUNTEERS) as app:
        yield app


@pytest.fixture
def app(jobs_app):
    with jobs_app.app_context():
        yield jobs_app
        db.session.remove()


@pytest.fixture
def place(app):
    """A community whose journal holds 12 rows (3 volunteers given points and merit)."""
    place = build_community()
    for _ in range(3):
        build_volunteer(place, points=10, merit=5)
    return place


class Client:
    """A signed-in test client that reads what workers committed since its last request.

    The test's requests share its app context, and so its session: forget what it read.
    """

    def __init__(self, app, user):
        self.client = app.test_client()
        enter_session(self.client, user)

    def get(self, path: str):
        db.session.expire_all()
        return self.client.get(path)

    def post(self, path: str, **options):
        db.session.expire_all()
        return self.client.post(path, **options)


def signed_in(app, user) -> Client:
    return Client(app, user)


def job_of(answer) -> BackgroundJob:
    assert answer.status_code == 303, answer.get_data(as_text=True)[:500]
    job_id = int(re.fullmatch(r".*/jobs/(\d+)", answer.headers["Location"]).group(1))
    db.session.expire_all()
    return db.session.get(BackgroundJob, job_id)


def run_workers() -> None:
    """Run a worker until the queue is empty."""
    queue.run_worker(current_app._get_current_object(), wait=False, name="test")
    db.session.expire_all()


def xlsx_rows(data: bytes) -> list[list]:
    sheet = openpyxl.load_workbook(io.BytesIO(data)).active
    return [[cell.value for cell in row] for row in sheet.iter_rows()]


def test_a_big_export_becomes_a_job_whose_page_shows_progress_then_the_download(
        app, place, monkeypatch):
    staff = build_staff(place)
    client = signed_in(app, staff)
    assert "较大的文件在后台生成" in client.get("/staff/exports").get_data(as_text=True)

    job = job_of(client.get("/staff/exports/journal.xlsx?start=2020-01-01"))
    page = client.get(f"/jobs/{job.id}").get_data(as_text=True)
    assert "等待处理" in page and "<progress" in page and 'http-equiv="refresh"' in page
    assert client.get(f"/jobs/{job.id}.json").json["status"] == "queued"
    # Asked again while it waits, the same export answers the same job.
    assert job_of(client.get("/staff/exports/journal.xlsx?start=2020-01-01")).id == job.id

    # Half-way through, as a worker writes it, the page counts the rows.
    monkeypatch.setattr(work, "PROGRESS_EVERY", 0)
    list(islice(work.Progress(job.id, total=12).counting(iter(range(12))), 6))
    page = client.get(f"/jobs/{job.id}").get_data(as_text=True)
    assert 'value="50"' in page and "6 / 12" in page
    assert client.get(f"/jobs/{job.id}.json").json["percent"] == 50

    run_workers()

    status = client.get(f"/jobs/{job.id}.json").json
    assert (status["status"], status["percent"], status["total"]) == ("done", 100, 12)
    page = client.get(f"/jobs/{job.id}").get_data(as_text=True)
    assert "http-equiv" not in page and f"/jobs/{job.id}/file" in page
    file = client.get(status["download"])
    assert file.status_code == 200 and file.mimetype.endswith("spreadsheetml.sheet")
    assert 'filename="journal-20200101.xlsx"' in file.headers["Content-Disposition"]
    rows = xlsx_rows(file.data)
    assert rows[0] == ZH_JOURNAL and len(rows) == 13
    assert sum(row[6] for row in rows[1:] if row[5] == "POINTS") == 0  # both ends of 3 awards


def test_a_small_export_answers_at_once_and_makes_no_job(app):
    small = build_community()
    build_volunteer(small, points=10)  # two journal rows
    staff = build_staff(small)
    client = signed_in(app, staff)

    for fmt in ("xlsx", "csv"):
        answer = client.get(f"/staff/exports/journal.{fmt}")
        assert answer.status_code == 200, answer.get_data(as_text=True)[:300]
    assert len(xlsx_rows(client.get("/staff/exports/journal.xlsx").data)) == 3
    assert db.session.scalar(sa.select(sa.func.count()).select_from(BackgroundJob).where(
        BackgroundJob.owner_id == staff.id)) == 0


def test_a_jobs_page_and_file_are_refused_to_anyone_but_its_owner(app, place):
    owner, colleague, admin = build_staff(place), build_staff(place), build_admin()
    job = job_of(signed_in(app, owner).get("/staff/exports/journal.csv"))
    run_workers()

    for user in (colleague, admin):
        other = signed_in(app, user)
        for path in (f"/jobs/{job.id}", f"/jobs/{job.id}.json", f"/jobs/{job.id}/file"):
            assert other.get(path).status_code == 404, (user.role, path)
        assert f"/jobs/{job.id}" not in other.get("/jobs").get_data(as_text=True)
    mine = signed_in(app, owner)
    assert mine.get(f"/jobs/{job.id}/file").status_code == 200
    assert f"/jobs/{job.id}" in mine.get("/jobs").get_data(as_text=True)
    assert app.test_client().get(f"/jobs/{job.id}/file").status_code == 302  # sign in first


def test_each_job_runs_once_when_two_workers_run_at_once(app, place):
    clients = [signed_in(app, build_staff(place)) for _ in range(2)]
    jobs = [job_of(client.get(f"/staff/exports/journal.csv?start=2020-01-0{day}"))
            for client in clients for day in range(1, 4)]
    start = threading.Barrier(2)

    def worker(name: str) -> None:
        start.wait()
        queue.run_worker(app, wait=False, name=name)

    threads = [threading.Thread(target=worker, args=(f"w{n}",)) for n in (1, 2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    db.session.expire_all()

    ran = [db.session.get(BackgroundJob, job.id) for job in jobs]
    assert [(job.status, job.attempts) for job in ran] == [("done", 1)] * 6
    assert all(job.content.count(b"\r\n") == 13 for job in ran)


def test_a_sixth_unfinished_job_is_refused_and_queues_nothing(app, place):
    staff = build_staff(place)
    client = signed_in(app, staff)
    for day in range(1, 6):
        job_of(client.get(f"/staff/exports/journal.csv?start=2019-01-0{day}"))

    answer = client.get("/staff/exports/journal.csv?start=2019-01-06")

    assert answer.status_code == 429
    assert "您已有 5 个文件正在生成" in answer.get_data(as_text=True)
    assert db.session.scalar(sa.select(sa.func.count()).select_from(BackgroundJob).where(
        BackgroundJob.owner_id == staff.id)) == 5
    run_workers()  # once they are done, the sixth is queued
    assert client.get("/staff/exports/journal.csv?start=2019-01-06").status_code == 303
    run_workers()


def claim_and_die(app, job_id: int) -> int:
    """Claim job `job_id` as a worker would, then send no more heartbeats (a killed worker)."""
    with app.app_context():
        url = db.engine.url

    async def claim() -> int:
        claimer = queue.build_queue(url)
        async with claimer.open_async():
            worker_id = await claimer.job_manager.register_worker()
            claimed = await claimer.job_manager.fetch_job(queues=[queue.QUEUE],
                                                          worker_id=worker_id)
            assert claimed.task_kwargs == {"job_id": job_id}, "the queue held another job"
            return worker_id

    return asyncio.run(claim())


def test_a_job_whose_worker_was_killed_runs_again_and_completes(app, place):
    staff = build_staff(place)
    client = signed_in(app, staff)
    job = job_of(client.get("/staff/exports/journal.xlsx?end=2099-12-31"))
    worker_id = claim_and_die(app, job.id)
    # The killed worker had started: the row says running, a few rows written.
    db.session.execute(sa.update(BackgroundJob).where(BackgroundJob.id == job.id).values(
        status="running", attempts=1, done=4, total=12))
    db.session.commit()

    run_workers()  # the claim still looks alive: nobody else takes the job
    assert client.get(f"/jobs/{job.id}.json").json["status"] == "running"

    db.session.execute(sa.text(
        "UPDATE procrastinate_workers SET last_heartbeat = now() - interval '10 minutes' "
        "WHERE id = :id"), {"id": worker_id})
    db.session.commit()
    run_workers()

    db.session.refresh(job)
    assert (job.status, job.attempts) == ("done", 2)
    assert len(xlsx_rows(client.get(f"/jobs/{job.id}/file").data)) == 13


def test_the_worker_command_runs_the_queued_jobs(app, place):
    client = signed_in(app, build_staff(place))
    job = job_of(client.get("/staff/exports/journal.csv?start=2018-01-01"))

    result = app.test_cli_runner().invoke(args=["jobs", "worker", "--once"])

    assert result.exit_code == 0, result.output
    assert client.get(f"/jobs/{job.id}.json").json["status"] == "done"


def test_a_job_that_a_live_worker_still_runs_is_not_run_a_second_time(app, place):
    client = signed_in(app, build_staff(place))
    job = job_of(client.get("/staff/exports/journal.csv?start=2021-01-01"))
    lock = sa.select(sa.func.pg_advisory_lock(work.LOCK_SPACE, job.id))
    with db.engine.connect() as running:  # a worker that looked dead but still runs it
        running.execute(lock)
        work.run(app, job.id)
        db.session.refresh(job)
        assert (job.status, job.attempts) == ("queued", 0)
        running.execute(sa.select(sa.func.pg_advisory_unlock(work.LOCK_SPACE, job.id)))

    run_workers()

    db.session.refresh(job)
    assert (job.status, job.attempts) == ("done", 1)


def roster(place, count: int, *, bad_line: int | None = None) -> bytes:
    lines = ["姓名,手机号,微网格,加入日期"]
    for n in range(count):
        phone = "12345" if n == bad_line else f"1370{place.id:03d}{n:04d}"
        lines.append(f"导入志愿者{n},{phone},{place.micro.name},2024-03-01")
    return ("\r\n".join(lines) + "\r\n").encode()


def upload(client, data: bytes):
    return client.post("/staff/volunteers/import", content_type="multipart/form-data",
                       data={"file": (io.BytesIO(data), "roster.csv")})


def volunteers_in(place) -> int:
    return db.session.scalar(sa.select(sa.func.count()).select_from(Volunteer).where(
        Volunteer.community_id == place.id))


def test_a_large_roster_import_runs_as_a_job_and_reports_its_result(app):
    place = build_community()
    client = signed_in(app, build_staff(place))
    data = roster(place, 12)
    assert len(data) > IMPORT_BYTES

    job = job_of(upload(client, data))
    assert volunteers_in(place) == 0
    run_workers()

    assert volunteers_in(place) == 12
    page = client.get(f"/jobs/{job.id}").get_data(as_text=True)
    assert "已导入 12 名微网格员" in page
    assert client.get(f"/jobs/{job.id}.json").json["result"] == {"imported": 12}


def test_a_large_roster_with_a_wrong_row_imports_nothing_and_the_job_names_the_row(app):
    place = build_community()
    client = signed_in(app, build_staff(place))

    job = job_of(upload(client, roster(place, 12, bad_line=4)))
    run_workers()

    assert volunteers_in(place) == 0
    page = client.get(f"/jobs/{job.id}").get_data(as_text=True)
    assert 'data-testid="import-errors"' in page and "<td>6</td>" in page  # line 6 of the file
    assert client.get(f"/jobs/{job.id}.json").json["status"] == "failed"


def test_a_big_communitys_monthly_pdf_is_a_job(app):
    place = build_community("阳光大社区")
    for _ in range(REPORT_VOLUNTEERS + 1):
        build_volunteer(place, points=10)
    client = signed_in(app, build_staff(place))

    job = job_of(client.get("/staff/reports/monthly.pdf?month=2026-03"))
    run_workers()

    pdf = client.get(f"/jobs/{job.id}/file")
    assert pdf.status_code == 200 and pdf.mimetype == "application/pdf"
    assert pdf.data.startswith(b"%PDF") and "阳光大社区" in pdf_text(pdf.data)
    assert f'monthly-report-{place.id}-2026-03.pdf' in pdf.headers["Content-Disposition"]


def test_a_finished_jobs_file_is_kept_for_a_day_then_deleted_by_the_cleanup(app, place):
    client = signed_in(app, build_staff(place))
    job = job_of(client.get("/staff/exports/journal.csv?end=2099-01-01"))
    run_workers()
    db.session.refresh(job)
    assert job.expires_at - job.finished_at == timedelta(hours=24)
    assert client.get(f"/jobs/{job.id}/file").status_code == 200

    job_id, job.expires_at = job.id, utcnow() - timedelta(seconds=1)
    db.session.commit()
    assert client.get(f"/jobs/{job.id}/file").status_code == 404
    result = app.test_cli_runner().invoke(args=["jobs", "cleanup"])
    assert result.exit_code == 0 and "deleted" in result.output
    db.session.expire_all()
    assert db.session.get(BackgroundJob, job_id) is None

"""Background export benchmark: a year's ledger journal (300,000 rows) as an XLSX job.

    .venv/bin/python benchmarks/export_job.py --pg postgresql://postgres@127.0.0.1:5432/test \
        [--transactions 150000] [--fmt xlsx]

Makes a database of its own on the --pg server (dropped at the end), builds the schema
with the app's migrations and loads --transactions award transactions of two postings
each over the last 365 days (150,000 -> 300,000 journal rows), as benchmarks/exports.py
does. Then, in a fresh child process (so that its peak memory is the export's), staff of
the community ask for /staff/exports/journal.<fmt> for the whole year: the request answers
with the job's page (timed), a worker runs the job (`run_worker(wait=False)`, timed), and
the file is downloaded from the job. Prints the request's time, the job's wall and CPU
time, the file's size and rows, and the child's resident memory before and at its peak.
"""

import argparse
import io
import json
import resource
import subprocess
import sys
import time
import uuid
from datetime import datetime, timedelta

import exports as journal_bench
import sqlalchemy as sa

YEAR = 365


def child(url: str, fmt: str) -> None:
    """Ask for the year's journal, run the job it becomes, download the file; print JSON."""
    from pointsmall import create_app
    from pointsmall.auth.models import User
    from pointsmall.extensions import db
    from pointsmall.jobs import queue
    from pointsmall.jobs.models import BackgroundJob

    app = create_app({"SQLALCHEMY_DATABASE_URI": url, "SECRET_KEY": "bench"})
    with app.app_context():
        staff = db.session.scalar(sa.select(User).where(User.username == "bench_staff"))
        user_id = staff.get_id()
        db.session.remove()
    client = app.test_client()
    with client.session_transaction() as session:
        session["_user_id"], session["_fresh"] = user_id, True
    before = journal_bench.rss_mb()
    today = datetime.now().date()  # noqa: DTZ005
    path = f"/staff/exports/journal.{fmt}?start={today - timedelta(days=YEAR)}&end={today}"

    wall = time.perf_counter()
    answer = client.get(path)
    asked_s = time.perf_counter() - wall
    assert answer.status_code == 303, answer.status_code
    peak_after_request = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    job_id = int(answer.headers["Location"].rsplit("/", 1)[1])

    wall, cpu = time.perf_counter(), time.process_time()
    queue.run_worker(app, wait=False, name="bench")
    job_s, job_cpu = time.perf_counter() - wall, time.process_time() - cpu
    peak_after_job = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    with app.app_context():
        job = db.session.get(BackgroundJob, job_id)
        status, total, done = job.status, job.total, job.done
        db.session.remove()
    wall = time.perf_counter()
    file = client.get(f"/jobs/{job_id}/file")
    download_s = time.perf_counter() - wall
    if fmt == "xlsx":
        import openpyxl

        sheet = openpyxl.load_workbook(io.BytesIO(file.data), read_only=True).active
        rows = sum(1 for _ in sheet.iter_rows()) - 1
    else:
        rows = file.data.count(b"\n") - 1
    print(json.dumps({
        "status": status, "total": total, "done": done, "rows_in_file": rows,
        "bytes": len(file.data), "request_s": round(asked_s, 2), "job_wall_s": round(job_s, 2),
        "job_cpu_s": round(job_cpu, 2), "download_s": round(download_s, 2),
        "rss_before_mb": round(before, 1),
        "peak_rss_after_request_mb": round(peak_after_request, 1),
        "peak_rss_after_job_mb": round(peak_after_job, 1),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pg", help="a PostgreSQL server URL (required)")
    parser.add_argument("--transactions", type=int, default=150_000)
    parser.add_argument("--volunteers", type=int, default=1000)
    parser.add_argument("--fmt", choices=("xlsx", "csv"), default="xlsx")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return
    if not args.pg:
        parser.error("--pg is required")
    from pointsmall.config import database_url

    server = sa.make_url(database_url(args.pg, ""))
    name = f"bench_export_job_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(server, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
    try:
        url = server.set(database=name).render_as_string(hide_password=False)
        started = time.perf_counter()
        journal_bench.DAYS = YEAR  # spread the transactions over a year
        journal_bench.build(url, args.transactions, args.volunteers)
        print(f"loaded {args.transactions} transactions, {2 * args.transactions} postings "
              f"over {YEAR} days in {time.perf_counter() - started:.0f} s")
        done = subprocess.run([sys.executable, __file__, "--child", url, args.fmt],
                              capture_output=True, text=True)
        if done.returncode:
            sys.exit(f"the export job failed:\n{done.stderr[-3000:]}")
        print(f"{args.fmt.upper()} year as a job", done.stdout.strip().splitlines()[-1])
    finally:
        with admin.connect() as connection:
            connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


if __name__ == "__main__":
    main()

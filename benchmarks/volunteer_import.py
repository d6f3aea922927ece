"""Volunteer import benchmark: prints seconds, asserts nothing.

    .venv/bin/python benchmarks/volunteer_import.py [--rows 5000] [--pg postgresql://...]

Builds a fresh database with the app's migrations (a database of its own, dropped at the
end, on the --pg server, or without --pg on an embedded PostgreSQL server started for the
run in a temporary folder and deleted afterwards), signs in as staff and
uploads a CSV of --rows new volunteers to POST /staff/volunteers/import through the Flask
test client: the whole request (parse, check every row, create users, volunteers and their
two ledger accounts, commit) is timed, plus the CPU time of this process.
"""

import argparse
import contextlib
import csv
import io
import time
import uuid

import sqlalchemy as sa
from flask_migrate import upgrade
from werkzeug.security import generate_password_hash

from pointsmall import create_app
from pointsmall.auth.models import User
from pointsmall.config import database_url
from pointsmall.core import embedded_db
from pointsmall.extensions import db
from pointsmall.people import communities


def volunteers_csv(rows: int) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["姓名", "手机号", "微网格", "加入日期", "是否上榜"])
    for n in range(rows):
        writer.writerow([f"志愿者{n}", f"150{n:08d}", f"{n % 5 + 1}栋", "2024-03-01", "是"])
    return buffer.getvalue().encode("utf-8-sig")


def run(url: str, rows: int) -> None:
    app = create_app({"SQLALCHEMY_DATABASE_URI": url, "SECRET_KEY": "bench",
                      "WTF_CSRF_ENABLED": False})
    with app.app_context():
        upgrade()
        community = communities.create_community(db.session, "基准社区")
        grid = communities.create_grid(db.session, community.id, "一网格")
        for n in range(1, 6):
            communities.create_grid(db.session, community.id, f"{n}栋", grid.id)
        db.session.add(User(username="bench_staff", name="staff", role="staff",
                            community_id=community.id,
                            password_hash=generate_password_hash("bench-pass")))
        db.session.commit()
        db.session.remove()
    client = app.test_client()
    client.post("/login", data={"login": "bench_staff", "password": "bench-pass"})
    data = volunteers_csv(rows)
    wall, cpu = time.perf_counter(), time.process_time()
    answer = client.post("/staff/volunteers/import", content_type="multipart/form-data",
                         data={"file": (io.BytesIO(data), "volunteers.csv")})
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    with app.app_context():
        count = db.session.scalar(sa.select(sa.func.count()).select_from(User)
                                  .where(User.role == "volunteer"))
        db.session.remove()
        db.engine.dispose()
    dialect = sa.make_url(url).get_backend_name()
    print(f"{dialect:10} {rows} rows ({len(data) / 1024:.0f} KB): HTTP {answer.status_code}, "
          f"{count} volunteers, {wall:.2f} s wall, {cpu:.2f} s CPU in this process")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=5000)
    parser.add_argument("--pg", help="a PostgreSQL server URL; a database is made on it "
                        "(default: an embedded server for this run)")
    args = parser.parse_args()
    with contextlib.ExitStack() as stack:
        if args.pg:
            server = sa.make_url(database_url(args.pg, ""))
        else:
            server = sa.make_url(stack.enter_context(embedded_db.temporary()).url())
        name = f"bench_import_{uuid.uuid4().hex[:8]}"
        admin = sa.create_engine(server, isolation_level="AUTOCOMMIT")
        with admin.connect() as connection:
            connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
        try:
            run(server.set(database=name).render_as_string(hide_password=False), args.rows)
        finally:
            with admin.connect() as connection:
                connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            admin.dispose()


if __name__ == "__main__":
    main()

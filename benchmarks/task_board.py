"""Task board benchmark (issue 17): prints numbers, asserts nothing.

    .venv/bin/python benchmarks/task_board.py --pg postgresql://postgres@127.0.0.1:5432/test

On the given PostgreSQL server it creates a database of its own (bench_tasks_<random>),
builds the schema with the app's migrations, and bulk-inserts with SQL (INSERT ... SELECT
generate_series) 10 communities x 20 grids x 25 micro-grids (5,000 micro-grids), 50,000
volunteers (ten per micro-grid), 200,000 tasks (four in five on micro-grids, one in five on
grids; about half claimable now, the rest closed, dispatched, full or past their deadline)
and about 57,000 assignments (accepted ones of closed tasks, live claims of open ones).

Then it measures, for --samples random volunteers: `tasks.board.open_tasks` (the query the
phone page and GET /api/v1/tasks run: open tasks of my micro-grid and the grid above, not
already mine, nearest grid first, soonest deadline first, 50 at most), and the whole phone
page GET /tasks and GET /api/v1/tasks through Flask's test client in-process (no network
hop; wall time, and the CPU time this process spent, which the other tenants of a shared
machine disturb less), beside GET /healthz (a route that does nothing: the floor of the web
stack on this machine at this moment). Median and p95 of each, the query plan of one call,
and the load average (the machine is shared; its speed swings with it).

The database is dropped at the end, whatever happens.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import time
import uuid
from pathlib import Path

import sqlalchemy as sa

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from flask_migrate import upgrade  # noqa: E402

from pointsmall import create_app  # noqa: E402
from pointsmall.auth.service import create_token  # noqa: E402
from pointsmall.config import database_url  # noqa: E402
from pointsmall.extensions import db  # noqa: E402
from pointsmall.people.models import Volunteer  # noqa: E402
from pointsmall.tasks import board  # noqa: E402

COMMUNITIES, GRIDS, MICROS, PER_MICRO = 10, 20, 25, 10
TASKS, ASSIGNMENTS_ACCEPTED, CLAIMS = 200_000, 120_000, 30_000

LOAD = [
    # communities and their grids
    """INSERT INTO communities (name, district, fen_per_point, created_at)
       SELECT '基准社区' || c, '基准区', 0, now() FROM generate_series(1, :communities) c""",
    """INSERT INTO grids (community_id, parent_id, level, name)
       SELECT c.id, NULL, 'grid', '网格' || g FROM communities c, generate_series(1, :grids) g""",
    """INSERT INTO grids (community_id, parent_id, level, name)
       SELECT p.community_id, p.id, 'micro', p.name || '-微' || m
       FROM grids p, generate_series(1, :micros) m WHERE p.level = 'grid'""",
    # volunteers: users and volunteers rows, ten to a micro-grid
    """INSERT INTO users (username, phone, name, role, community_id, password_hash, active,
                          session_version, created_at)
       SELECT 'bv' || g.id || '-' || k, '15' || lpad((g.id * 100 + k)::text, 9, '0'),
              '志愿者' || k, 'volunteer', g.community_id, '!', true, 1, now()
       FROM grids g, generate_series(1, :per_micro) k WHERE g.level = 'micro'""",
    """INSERT INTO volunteers (user_id, community_id, grid_id, joined_on, status,
                               show_on_leaderboard, created_at)
       SELECT u.id, u.community_id, split_part(substr(u.username, 3), '-', 1)::int,
              DATE '2023-01-01', 'active', true, now()
       FROM users u WHERE u.username LIKE 'bv%'""",
    # tasks: 4/5 on micro-grids, 1/5 on grids; open, closed, dispatched, overdue
    """INSERT INTO tasks (community_id, grid_id, title, description, place, points, merit,
                          people, taken, hours, deadline, photo_required, mode, status,
                          start_within_hours, source, created_at, first_claimed_at, closed_at)
       SELECT g.community_id, g.id, '基准任务' || t, '', '', 10, 10, 3,
              CASE WHEN t % 3 = 0 THEN 3 ELSE t % 3 END, 2.0,
              CASE WHEN t % 7 = 0 THEN now() - interval '1 day'
                   ELSE now() + (t % 240) * interval '1 hour' END,
              t % 2 = 0, CASE WHEN t % 11 = 0 THEN 'dispatch' ELSE 'open' END,
              CASE WHEN t % 3 = 0 THEN 'closed' ELSE 'open' END, 24, 'staff',
              now() - interval '5 days', now() - interval '4 days',
              CASE WHEN t % 3 = 0 THEN now() - interval '2 days' END
       FROM generate_series(1, :tasks) t
       JOIN (SELECT id, community_id, level,
                    row_number() OVER (PARTITION BY level ORDER BY id) - 1 AS n
             FROM grids) g
         ON g.level = CASE WHEN t % 5 = 0 THEN 'grid' ELSE 'micro' END
        AND g.n = (t * 7919) % CASE WHEN t % 5 = 0 THEN :n_grids ELSE :n_micros END""",
    # accepted assignments on closed tasks, live claims on open ones, by volunteers of the grid
    """INSERT INTO task_assignments (task_id, community_id, volunteer_id, state, dispatched,
                                     claimed_at, note, photos, reason, comment, rating,
                                     checked_at)
       SELECT t.id, t.community_id, v.id, 'accepted', false, now() - interval '4 days', '',
              '[]', '', '', 5, now() - interval '2 days'
       FROM (SELECT id, community_id, grid_id FROM tasks WHERE status = 'closed'
             ORDER BY id LIMIT :accepted) t
       JOIN (SELECT id, grid_id, row_number() OVER (PARTITION BY grid_id ORDER BY id) - 1 AS k
             FROM volunteers) v ON v.grid_id = t.grid_id AND v.k = t.id % :per_micro""",
    """INSERT INTO task_assignments (task_id, community_id, volunteer_id, state, dispatched,
                                     claimed_at, note, photos, reason, comment)
       SELECT t.id, t.community_id, v.id, 'claimed', false, now() - interval '1 hour', '',
              '[]', '', ''
       FROM (SELECT id, community_id, grid_id FROM tasks WHERE status = 'open' AND taken > 0
             ORDER BY id LIMIT :claims) t
       JOIN (SELECT id, grid_id, row_number() OVER (PARTITION BY grid_id ORDER BY id) - 1 AS k
             FROM volunteers) v ON v.grid_id = t.grid_id AND v.k = t.id % :per_micro""",
    "ANALYZE",
]


def load(app) -> None:
    with app.app_context():
        connection = db.session.connection()
        params = {"communities": COMMUNITIES, "grids": GRIDS, "micros": MICROS,
                  "per_micro": PER_MICRO, "tasks": TASKS,
                  "n_grids": COMMUNITIES * GRIDS, "n_micros": COMMUNITIES * GRIDS * MICROS,
                  "accepted": ASSIGNMENTS_ACCEPTED, "claims": CLAIMS}
        for statement in LOAD:
            started = time.perf_counter()
            if statement == "ANALYZE":
                db.session.commit()
                connection = db.session.connection()
            connection.execute(sa.text(statement), params)
            print(f"  {time.perf_counter() - started:6.1f}s  {statement.split()[0:3]}",
                  flush=True)
        db.session.commit()
        counts = {table: db.session.scalar(sa.text(f"SELECT count(*) FROM {table}"))
                  for table in ("grids", "volunteers", "tasks", "task_assignments")}
        open_now = db.session.scalar(sa.text(
            "SELECT count(*) FROM tasks WHERE status = 'open' AND mode = 'open'"
            " AND deadline > now() AND taken < people"))
        print(f"loaded: {counts}; claimable now: {open_now}")


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(share * (len(ordered) - 1))))]


def report(name: str, times: list[float], cpu: list[float] | None = None) -> None:
    print(f"{name:38s} n={len(times):4d}  median {statistics.median(times):7.2f} ms"
          f"  p95 {percentile(times, 0.95):7.2f} ms  max {max(times):7.2f} ms"
          + (f"  (CPU of this process: median {statistics.median(cpu):6.2f} ms)"
             if cpu else ""))


def measure(app, samples: int) -> None:
    rng = random.Random(17)
    with app.app_context():
        ids = db.session.scalars(sa.select(Volunteer.id)).all()
        chosen = [rng.choice(ids) for _ in range(samples)]
        found, times, cpu = [], [], []
        for volunteer_id in chosen:
            volunteer = db.session.get(Volunteer, volunteer_id)
            started, used = time.perf_counter(), time.process_time()
            listed = board.open_tasks(db.session, volunteer)
            times.append((time.perf_counter() - started) * 1000)
            cpu.append((time.process_time() - used) * 1000)
            found.append(len(listed))
            db.session.rollback()
        report("open_tasks() (one query)", times, cpu)
        print(f"  tasks listed per volunteer: median {statistics.median(found)},"
              f" min {min(found)}, max {max(found)}")
        volunteer = db.session.get(Volunteer, chosen[0])
        grids = board.grids_near(volunteer)
        plan = db.session.execute(sa.text(
            "EXPLAIN (ANALYZE, BUFFERS) SELECT tasks.id FROM tasks WHERE tasks.grid_id IN"
            " (:a, :b) AND status = 'open' AND mode = 'open' AND deadline > now()"
            " AND taken < people AND tasks.id NOT IN (SELECT task_id FROM task_assignments"
            " WHERE volunteer_id = :v AND state IN ('claimed','started','done','accepted'))"
            " ORDER BY CASE WHEN grid_id = :a THEN 0 ELSE 1 END, deadline, id LIMIT 50"),
            {"a": grids[0], "b": grids[-1], "v": volunteer.id}).scalars().all()
        print("plan of one call:\n    " + "\n    ".join(plan))
        people = {v: db.session.get(Volunteer, v).user for v in chosen[:samples // 2]}
        tokens = {v: create_token(db.session, user, "bench")[1] for v, user in people.items()}
        users = {v: user.get_id() for v, user in people.items()}
        db.session.commit()
    client = app.test_client()
    client.get("/healthz")  # the first request of a fresh app pays for its set-up
    for name, url in (("GET /healthz (the web stack's floor)", "/healthz"),
                      ("GET /tasks (phone page)", "/tasks"),
                      ("GET /api/v1/tasks", "/api/v1/tasks")):
        times, cpu = [], []
        for volunteer_id, user in users.items():
            headers = {}
            if url.startswith("/api/"):
                headers["Authorization"] = f"Bearer {tokens[volunteer_id]}"
            else:
                with client.session_transaction() as session:
                    session["_user_id"] = user
                    session["_fresh"] = True
            started, used = time.perf_counter(), time.process_time()
            answer = client.get(url, headers=headers)
            times.append((time.perf_counter() - started) * 1000)
            cpu.append((time.process_time() - used) * 1000)
            assert answer.status_code == 200, answer.status_code
        report(name, times, cpu)


def load_average() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg()) + f" on {os.cpu_count()} cores"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pg", required=True, help="a PostgreSQL server URL")
    parser.add_argument("--samples", type=int, default=400)
    args = parser.parse_args()
    server = sa.make_url(database_url(args.pg, ""))
    name = f"bench_tasks_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(server, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
    try:
        app = create_app({"SECRET_KEY": "bench", "SQLALCHEMY_DATABASE_URI":
                          server.set(database=name).render_as_string(hide_password=False)})
        with app.app_context():
            upgrade()
            db.session.remove()
        print(f"database {name}: loading", flush=True)
        load(app)
        print(f"load average before measuring: {load_average()}")
        measure(app, args.samples)
        print(f"load average after measuring: {load_average()}")
        with app.app_context():
            db.engine.dispose()
    finally:
        with admin.connect() as connection:
            connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


if __name__ == "__main__":
    main()

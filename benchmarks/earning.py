"""Earning benchmark: prints numbers, asserts nothing.

    .venv/bin/python benchmarks/earning.py --pg postgresql://postgres@127.0.0.1:5432/test

On the given PostgreSQL server it creates a database of its own (bench_earning_<random>),
builds the schema with the app's migrations, and measures:

- one award batch of 1,000 attendees, end to end through the JSON API
  (POST /api/v1/staff/activities/<id>/award with a bearer token and an Idempotency-Key),
  driven in-process by Flask's test client, so it counts routing, parsing, the service,
  the ledger writes, the commit and the response, but not a network hop;
- recomputing the tiers of 50,000 volunteers (tiers.standings for the whole community)
  with 1,250,000 award rows behind them (each award is four postings in the ledger, so
  this stands for 5,000,000 postings; tier maths reads the awards table, not postings).

The database is dropped at the end.
"""

from __future__ import annotations

import argparse
import platform
import random
import statistics
import sys
import time
import uuid
from datetime import date, timedelta
from pathlib import Path

import sqlalchemy as sa

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from flask_migrate import upgrade  # noqa: E402

import ledger  # noqa: E402
from ledger.clock import utcnow  # noqa: E402
from pointsmall import create_app  # noqa: E402
from pointsmall.auth.models import User  # noqa: E402
from pointsmall.auth.service import create_token  # noqa: E402
from pointsmall.config import database_url  # noqa: E402
from pointsmall.earning import activities, tiers  # noqa: E402
from pointsmall.earning.models import AwardBatch  # noqa: E402
from pointsmall.earning.rules import activity_type, ensure_rules  # noqa: E402
from pointsmall.extensions import db  # noqa: E402
from pointsmall.people.communities import create_community, create_grid  # noqa: E402


def bulk_volunteers(community_id: int, grid_id: int, n: int, prefix: str) -> list[int]:
    """Insert n volunteers (users + volunteers rows) fast; return their ids."""
    conn = db.session.connection().connection.driver_connection
    with conn.cursor() as cur:
        with cur.copy("COPY users (username, phone, name, role, community_id, password_hash,"
                      " active, session_version, created_at) FROM STDIN") as copy:
            now = utcnow()
            for i in range(n):
                copy.write_row((f"{prefix}{i}", f"1{prefix[-2:]}{i:08d}"[:11], f"志愿者{i}",
                                "volunteer", community_id, "!", True, 1, now))
        cur.execute("INSERT INTO volunteers (user_id, community_id, grid_id, joined_on, status,"
                    " show_on_leaderboard, created_at) SELECT id, community_id, %s, %s,"
                    " 'active', true, now() FROM users WHERE username LIKE %s RETURNING id",
                    (grid_id, date(2022, 5, 1), f"{prefix}%"))
        return [row[0] for row in cur.fetchall()]


def measure_award(app, client, rounds: int) -> list[float]:
    times = []
    with app.app_context():
        community = create_community(db.session, f"奖励基准{uuid.uuid4().hex[:6]}")
        grid = create_grid(db.session, community.id, "网格")
        rules = ensure_rules(db.session, community.id)
        rules.approval_people = rules.approval_points = 10**9  # measure posting, not waiting
        staff = User(username=f"bench-staff-{uuid.uuid4().hex[:6]}", name="基准", role="staff",
                     community_id=community.id, password_hash="!")
        db.session.add(staff)
        db.session.flush()
        _, token = create_token(db.session, staff, "bench")
        ids = bulk_volunteers(community.id, grid.id, 1000, f"a{uuid.uuid4().hex[:4]}")
        ledger.open_accounts(db.session, [(f"volunteer:{v}:{a.lower()}", a)
                                          for v in ids for a in ("POINTS", "MERIT")])
        kind = activity_type(db.session, community.id, "service")
        activity_ids = []
        for n in range(rounds):
            activity = activities.create_activity(db.session, community.id, {
                "type_id": kind.id, "title": f"大型志愿服务 {n}",
                "starts_at": utcnow() - timedelta(hours=2),
                "ends_at": utcnow() - timedelta(hours=1)}, by=staff.id)
            activities.mark_present(db.session, activity, ids)
            activity_ids.append(activity.id)
        db.session.commit()
    headers = {"Authorization": f"Bearer {token}"}
    for activity_id in activity_ids:
        started = time.perf_counter()
        response = client.post(f"/api/v1/staff/activities/{activity_id}/award", json={},
                               headers={**headers, "Idempotency-Key": uuid.uuid4().hex})
        times.append(time.perf_counter() - started)
        body = response.get_json()
        assert response.status_code == 201 and body["status"] == "posted", body
        assert len(body["awards"]) == 1000
    return times


def measure_tiers(app, volunteers: int, awards: int) -> tuple[float, float, dict]:
    with app.app_context():
        community = create_community(db.session, f"评定基准{uuid.uuid4().hex[:6]}")
        grid = create_grid(db.session, community.id, "网格")
        ids = bulk_volunteers(community.id, grid.id, volunteers, f"t{uuid.uuid4().hex[:4]}")
        batch = AwardBatch(community_id=community.id, idempotency_key=uuid.uuid4().hex,
                           status="posted", people=volunteers, requested_points=0)
        db.session.add(batch)
        db.session.flush()
        started = time.perf_counter()
        rng = random.Random(7)
        conn = db.session.connection().connection.driver_connection
        now = utcnow()
        with conn.cursor() as cur, cur.copy(
                "COPY awards (batch_id, community_id, volunteer_id, title, type_code,"
                " requested_points, points, merit, awarded_at, reversed_points,"
                " reversed_merit, reversal_reason) FROM STDIN") as copy:
            for i in range(awards):
                merit = rng.choice((10, 15, 20, 30))
                copy.write_row((batch.id, community.id, ids[i % len(ids)], "志愿服务", "service",
                                merit, merit, merit,
                                now - timedelta(days=rng.randint(0, 500)), 0, 0, ""))
        db.session.commit()
        load = time.perf_counter() - started
        db.session.execute(sa.text("ANALYZE awards"))
        db.session.commit()
        runs = []
        for _ in range(3):
            started = time.perf_counter()
            result = tiers.standings(db.session, community.id)
            runs.append(time.perf_counter() - started)
            db.session.rollback()
        counts: dict = {}
        for standing in result.values():
            counts[standing.tier] = counts.get(standing.tier, 0) + 1
        assert len(result) == volunteers
        return load, statistics.median(runs), counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pg", required=True)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--volunteers", type=int, default=50_000)
    parser.add_argument("--awards", type=int, default=1_250_000)
    args = parser.parse_args()
    server = sa.make_url(database_url(args.pg, ""))
    name = f"bench_earning_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(server, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.exec_driver_sql(f'CREATE DATABASE "{name}"')
    try:
        url = server.set(database=name).render_as_string(hide_password=False)
        app = create_app({"SQLALCHEMY_DATABASE_URI": url, "SECRET_KEY": "bench"})
        with app.app_context():
            upgrade()
        print(f"machine: {platform.node()} · {platform.processor() or platform.machine()} · "
              f"python {platform.python_version()}")
        times = measure_award(app, app.test_client(), args.rounds)
        print(f"award 1,000 attendees through the API: median {statistics.median(times):.3f} s, "
              f"min {min(times):.3f} s, max {max(times):.3f} s over {len(times)} batches "
              f"(target < 1 s)")
        load, median, counts = measure_tiers(app, args.volunteers, args.awards)
        print(f"tiers of {args.volunteers:,} volunteers over {args.awards:,} awards "
              f"(= {4 * args.awards:,} postings): median {median:.3f} s (target < 5 s); "
              f"load {load:.1f} s; tiers {counts}")
        with app.app_context():
            db.engine.dispose()
    finally:
        with admin.connect() as c:
            c.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


if __name__ == "__main__":
    main()

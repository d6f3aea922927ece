"""Does a failed sign-in take as long for an unknown name as for a real user? Prints medians.

    .venv/bin/python benchmarks/sign_in_timing.py [--pg postgresql://postgres@127.0.0.1:5432/test]
                                                  [--rounds 40]

Builds a database (a SQLite file in a temporary folder, or with --pg a database of its own
on that server, dropped at the end), creates one user whose password is hashed as the app
hashes (`User.set_password`), and then, alternating so that the machine's drift hits both
alike, asks `POST /api/v1/auth/tokens` for a token --rounds times each with:

- the real user's name and a wrong password;
- a name nobody has, and a password.

Between attempts the attempt counters are emptied (outside the timed part), so that the
limits do not answer instead of the password check. It prints the median and the 90th
percentile of each, in milliseconds, and their difference.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

import sqlalchemy as sa

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pg", help="a PostgreSQL server URL (default: SQLite)")
    parser.add_argument("--rounds", type=int, default=40)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        url, drop = database(args.pg, Path(folder))
        try:
            run(url, args.rounds)
        finally:
            drop()


def database(server: str | None, folder: Path):
    if not server:
        return f"sqlite:///{folder / 'timing.db'}", lambda: None
    from pointsmall.config import database_url

    base = sa.make_url(database_url(server, ""))
    name = f"bench_timing_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.exec_driver_sql(f'CREATE DATABASE "{name}"')

    def drop():
        with admin.connect() as connection:
            connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()

    return base.set(database=name).render_as_string(hide_password=False), drop


def run(url: str, rounds: int) -> None:
    from flask_migrate import upgrade

    from pointsmall import create_app
    from pointsmall.auth.models import AttemptCounter, User
    from pointsmall.extensions import db

    app = create_app({"TESTING": True, "SECRET_KEY": "bench", "SQLALCHEMY_DATABASE_URI": url})
    with app.app_context():
        upgrade()
        user = User(username="timed", name="计时", role="admin")
        user.set_password("the-right-password")
        db.session.add(user)
        db.session.commit()
        method = user.password_hash.split("$", 1)[0]
        client = app.test_client()
        times: dict[str, list[float]] = {"known user, wrong password": [], "unknown name": []}
        logins = {"known user, wrong password": "timed", "unknown name": "nobody-at-all"}
        for n in range(rounds + 2):  # the first two warm up
            for label, login in logins.items():
                db.session.execute(sa.delete(AttemptCounter))
                db.session.commit()
                start = time.perf_counter()
                answer = client.post("/api/v1/auth/tokens",
                                     json={"username": login, "password": "a-wrong-password"})
                took = (time.perf_counter() - start) * 1000
                assert answer.status_code == 401, answer.get_data(as_text=True)
                if n >= 2:
                    times[label].append(took)
        db.session.remove()
        db.engine.dispose()
    print(f"database: {sa.make_url(url).get_backend_name()}, password hash: {method}, "
          f"{rounds} rounds each")
    medians = {}
    for label, values in times.items():
        medians[label] = statistics.median(values)
        p90 = statistics.quantiles(values, n=10)[-1]
        print(f"  {label:28s} median {medians[label]:7.1f} ms   p90 {p90:7.1f} ms")
    known, unknown = medians.values()
    print(f"  difference of the medians    {known - unknown:+7.1f} ms")


if __name__ == "__main__":
    main()

"""Exports benchmark: a 1,000,000-row ledger journal as CSV and XLSX; prints numbers only.

    .venv/bin/python benchmarks/exports.py --pg postgresql://postgres@127.0.0.1:5432/test \
        [--transactions 500000] [--volunteers 1000] [--xlsx-days 100]

Makes a database of its own on the --pg server (dropped at the end), builds the schema with
the app's migrations, opens one community with --volunteers volunteers, and COPYs in
--transactions award transactions of two postings each (community issuance -> volunteer),
spread over 100 days: 1,000,000 journal rows by default. Hashes are placeholders: the
export does not read them (do not run `ledger verify` on this database).

Each export then runs in a fresh child process, as staff of the community, through the
Flask test client with the response read chunk by chunk as a browser would (nothing is
buffered): GET /staff/exports/journal.csv, and /staff/exports/journal.xlsx for the last
--xlsx-days days. The child reports wall and CPU time, time to the first byte, bytes and
rows, its resident memory (RSS) before the request and at each tenth of the file, and its
peak RSS (ru_maxrss) -- a child, so that the peak is the export's and not the loading's.
"""

import argparse
import io
import json
import os
import resource
import subprocess
import sys
import time
import uuid
from datetime import datetime, timedelta

import sqlalchemy as sa

DAYS = 100


def rss_mb() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def build(url: str, transactions: int, volunteers: int) -> None:
    """Migrate, open the community and its volunteers, COPY in the transactions."""
    from flask_migrate import upgrade

    from ledger.models import Account, Balance
    from pointsmall import create_app
    from pointsmall.auth.models import User
    from pointsmall.extensions import db
    from pointsmall.people import communities, service

    app = create_app({"SQLALCHEMY_DATABASE_URI": url, "SECRET_KEY": "bench"})
    with app.app_context():
        upgrade()
        community = communities.create_community(db.session, "基准社区")
        grid = communities.create_grid(db.session, community.id, "一网格")
        micro = communities.create_grid(db.session, community.id, "1栋", grid.id)
        db.session.add(User(username="bench_staff", name="staff", role="staff",
                            community_id=community.id, password_hash="x"))
        ids = []
        for n in range(volunteers):
            volunteer, _ = service.create_volunteer(
                db.session, community.id, {"name": f"志愿者{n}", "phone": f"150{n:08d}",
                                           "grid_id": micro.id,
                                           "joined_on": datetime(2024, 1, 1).date()},
                password_hash="x", audit_it=False)
            ids.append(volunteer.id)
        db.session.commit()
        balances = {address: (balance_id, stripe) for address, balance_id, stripe in
                    db.session.execute(sa.select(Account.address, Balance.id, Balance.stripe)
                                       .join(Balance, Balance.account_id == Account.id))}
        accounts = dict(db.session.execute(sa.select(Account.address, Account.id)).all())
        issuance = community.account("POINTS")
        stripes = [balance_id for balance_id, _stripe in
                   db.session.execute(sa.select(Balance.id, Balance.stripe).where(
                       Balance.account_id == accounts[issuance]).order_by(Balance.stripe))]
        first = datetime.now() - timedelta(days=DAYS)  # noqa: DTZ005  (naive UTC enough)
        step = timedelta(days=DAYS) / transactions
        raw = db.engine.raw_connection()
        try:
            cursor = raw.cursor()
            with cursor.copy("COPY ledger_transactions (id, idempotency_key, request_hash, kind,"
                             " memo, meta, created_at, hash) FROM STDIN") as copy:
                for n in range(1, transactions + 1):
                    copy.write_row((n, f"bench:{n}", "0" * 64, "award", f"巡查第{n % 97}次",
                                    "{}", first + step * n, "0" * 64))
            seq: dict[int, int] = {}
            after: dict[int, int] = {}
            with cursor.copy("COPY ledger_postings (id, transaction_id, account_id, balance_id,"
                             " asset_code, amount, seq, balance_after, hash) FROM STDIN") as copy:
                for n in range(1, transactions + 1):
                    amount = 10 + n % 7
                    volunteer = f"volunteer:{ids[n % len(ids)]}:points"
                    legs = ((accounts[issuance], stripes[n % len(stripes)], -amount),
                            (accounts[volunteer], balances[volunteer][0], amount))
                    for leg, (account_id, balance_id, signed) in enumerate(legs):
                        seq[balance_id] = seq.get(balance_id, 0) + 1
                        after[balance_id] = after.get(balance_id, 0) + signed
                        copy.write_row((2 * n - 1 + leg, n, account_id, balance_id, "POINTS",
                                        signed, seq[balance_id], after[balance_id], "0" * 64))
            cursor.execute("SELECT setval(pg_get_serial_sequence('ledger_transactions', 'id'),"
                           " %s)", (transactions,))
            cursor.execute("SELECT setval(pg_get_serial_sequence('ledger_postings', 'id'), %s)",
                           (2 * transactions,))
            raw.commit()
            cursor.execute("ANALYZE")
            raw.commit()
        finally:
            raw.close()
        db.session.remove()
        db.engine.dispose()


def child(url: str, path: str) -> None:
    """Download `path` as the community's staff, reading it as it streams; print JSON."""
    from pointsmall import create_app
    from pointsmall.auth.models import User
    from pointsmall.extensions import db

    # Every export in the request, however large (this measures the streaming path; see
    # export_job.py for the background job that large exports become).
    app = create_app({"SQLALCHEMY_DATABASE_URI": url, "SECRET_KEY": "bench",
                      "EXPORT_JOB_ROWS": None})
    with app.app_context():
        staff = db.session.scalar(sa.select(User).where(User.username == "bench_staff"))
        user_id = staff.get_id()
        db.session.remove()
    client = app.test_client()
    with client.session_transaction() as session:
        session["_user_id"], session["_fresh"] = user_id, True
    before = rss_mb()
    wall, cpu = time.perf_counter(), time.process_time()
    answer = client.get(path, buffered=False)
    size = rows = 0
    first_byte = None
    samples: list[float] = []
    sink = io.BytesIO() if path.split("?")[0].endswith(".xlsx") else None
    for piece in answer.response:
        piece = piece.encode() if isinstance(piece, str) else piece
        if first_byte is None:
            first_byte = time.perf_counter() - wall
        size += len(piece)
        rows += piece.count(b"\n")
        if sink is None and rows // 100_000 > len(samples):
            samples.append(round(rss_mb(), 1))
    answer.close()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    print(json.dumps({
        "status": answer.status_code, "streamed": answer.is_streamed, "bytes": size,
        "lines": rows, "wall_s": round(wall, 2), "cpu_s": round(cpu, 2),
        "first_byte_s": round(first_byte or 0, 3), "rss_before_mb": round(before, 1),
        "rss_every_100k_lines_mb": samples,
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}))


def run_child(url: str, path: str) -> dict:
    done = subprocess.run([sys.executable, __file__, "--child", url, path],
                          capture_output=True, text=True)
    if done.returncode:
        sys.exit(f"the export of {path} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def measure(url: str, xlsx_days: int) -> None:
    print("CSV  all", json.dumps(run_child(url, "/staff/exports/journal.csv")))
    today = datetime.now().date()  # noqa: DTZ005
    start = today - timedelta(days=xlsx_days)
    print(f"XLSX {xlsx_days} days", json.dumps(run_child(
        url, f"/staff/exports/journal.xlsx?start={start}&end={today}")))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pg", help="a PostgreSQL server URL; a database is made on it")
    parser.add_argument("--transactions", type=int, default=500_000)
    parser.add_argument("--volunteers", type=int, default=1000)
    parser.add_argument("--xlsx-days", type=int, default=DAYS)
    parser.add_argument("--keep", action="store_true", help="keep the database (print its URL)")
    parser.add_argument("--url", help="export from this database, built by an earlier --keep")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return
    if args.url:
        measure(args.url, args.xlsx_days)
        return
    if not args.pg:
        parser.error("--pg is required: a million rows are a PostgreSQL matter")
    from pointsmall.config import database_url

    server = sa.make_url(database_url(args.pg, ""))
    name = f"bench_exports_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(server, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
    try:
        url = server.set(database=name).render_as_string(hide_password=False)
        started = time.perf_counter()
        build(url, args.transactions, args.volunteers)
        print(f"loaded {args.transactions} transactions, {2 * args.transactions} postings, "
              f"{args.volunteers} volunteers in {time.perf_counter() - started:.0f} s")
        measure(url, args.xlsx_days)
    finally:
        if args.keep:
            print("kept:", url)
        else:
            with admin.connect() as connection:
                connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


if __name__ == "__main__":
    main()

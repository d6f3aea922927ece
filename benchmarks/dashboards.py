"""Dashboards benchmark (issue 6): prints numbers, asserts nothing.

    .venv/bin/python benchmarks/dashboards.py --pg postgresql://postgres@127.0.0.1:5432/test

On the given PostgreSQL server it creates a database of its own (bench_dash_<random>),
builds the schema with the app's migrations, and loads a district of 10 communities x
5,000 volunteers (accounts opened with the scope the app gives them) with a year of
history: 1,000,000 awards (4 postings each, with their activities, attendance, batches and
award rows), 400,000 fulfilled redemptions (2 postings each, with holds and redemption
rows) and 100,000 expiries (2 postings each): 5,000,000 postings. The bulk of it is written
by INSERT ... SELECT inside PostgreSQL. Hashes are placeholders (the hash chain is not what
this measures; do not run `ledger verify` on it); cached balances (posted, seq) are the
postings' sums and `ledger_flows` is what the write path would have written (computed
from the postings, local day in Asia/Shanghai, slot 0). One clean `ledger_checks` row.

Then, in-process through Flask's test client (no network hop), it measures
/staff/dashboard (signed in as staff of one community) and /admin/dashboard (as admin):
one cold request (the first of a fresh app) and --requests more; median and p95. And each
figures.* function the pages call, for one community and for the district.

The database is dropped at the end, whatever happens.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
import uuid
from datetime import timedelta
from pathlib import Path

import sqlalchemy as sa

ROOT = Path(__file__).resolve().parent.parent
for path in (ROOT, ROOT / "benchmarks"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

from earning import bulk_volunteers  # noqa: E402
from flask_migrate import upgrade  # noqa: E402

import ledger  # noqa: E402
from merchants.items import create_merchant  # noqa: E402
from merchants.models import Item  # noqa: E402
from pointsmall import create_app  # noqa: E402
from pointsmall.auth.models import User  # noqa: E402
from pointsmall.config import database_url  # noqa: E402
from pointsmall.core import clock  # noqa: E402
from pointsmall.extensions import db  # noqa: E402
from pointsmall.people.communities import community_scope, create_community, create_grid  # noqa: E402
from pointsmall.people.models import volunteer_address  # noqa: E402
from pointsmall.reports import figures  # noqa: E402
from pointsmall.reports.models import LedgerCheck  # noqa: E402
from pointsmall.reports.views import MONTHS  # noqa: E402

AWARDS_EACH = 20        # awards per volunteer (one per 18-day slot of the year)
GROUPS = 100            # an activity has volunteers/GROUPS attendees
REDEMPTIONS_EACH = 8    # redemptions per volunteer
EXPIRIES_EACH = 2       # expiries per volunteer, 5 points each
MERCHANTS = 3           # per community
ITEMS = 4               # per merchant
PRICES = (5, 6, 8, 10)
CATEGORIES = ("food", "grocery", "daily", "service")
STRIPES = 16            # the issuance accounts' (pointsmall.people.communities.ISSUANCE_STRIPES)


def load(app, communities: int, per_community: int) -> dict:
    """Create the district and its year of history; return what it made."""
    ids: dict = {"communities": [], "staff": {}, "admin": None}
    with app.app_context():
        session = db.session
        for c in range(communities):
            community = create_community(session, f"基准社区{c:02d}", district="基准区")
            grid = create_grid(session, community.id, "一网格")
            volunteers = bulk_volunteers(community.id, grid.id, per_community, f"d{c:02d}")
            ledger.open_accounts(session, [(volunteer_address(v, a), a)
                                           for v in volunteers for a in ("POINTS", "MERIT")],
                                 scope=community_scope(community.id))
            for m in range(MERCHANTS):
                merchant = create_merchant(session, community.id, name=f"商户{c:02d}-{m}")
                for j in range(ITEMS):
                    session.add(Item(merchant_id=merchant.id, name=f"商品{m}-{j}",
                                     category=CATEGORIES[j], price=PRICES[j], stock=None))
            staff = User(username=f"bench-staff-{c:02d}", name="基准员工", role="staff",
                         community_id=community.id, password_hash="!")
            session.add(staff)
            session.flush()
            ids["communities"].append(community.id)
            ids["staff"][community.id] = staff.id
            session.commit()
        admin = User(username="bench-admin", name="基准管理员", role="admin", password_hash="!")
        session.add(admin)
        session.commit()
        ids["admin"] = admin.id
        history(session, per_community)
        postings = session.scalar(sa.text("SELECT count(*) FROM ledger_postings"))
        session.add(LedgerCheck(ok=True, violations=0, postings=postings,
                                seal="benchmark: placeholder hashes, not verified"))
        session.commit()
    return ids


def history(session, per_community: int) -> None:
    """Write the year of history with INSERT ... SELECT, then balances and flows."""
    n_awards = AWARDS_EACH * GROUPS
    step = 365.0 / n_awards  # days between activities of a community
    p = {"V": per_community, "K": AWARDS_EACH, "G": GROUPS, "A": n_awards, "R": REDEMPTIONS_EACH,
         "E": EXPIRIES_EACH, "M": MERCHANTS, "I": ITEMS, "S": STRIPES, "step": step,
         "base": clock.utcnow().replace(hour=0, minute=0, second=0, microsecond=0)
         - timedelta(days=365)}
    conn = session.connection().connection.driver_connection
    zeros = "repeat('0', 64)"
    statements = [
        "SET LOCAL work_mem = '256MB'",
        # Foreign keys and the append-only guards are triggers: off for the bulk load, which
        # is consistent by construction (ids below are taken from the tables themselves).
        "SET LOCAL session_replication_role = replica",
        "UPDATE volunteers SET joined_on = date '2020-01-01' + (id * 37 % 2400)",
        """CREATE TEMP TABLE comm ON COMMIT DROP AS
           SELECT c.id AS cid, (row_number() OVER (ORDER BY c.id) - 1)::int AS cno,
             (SELECT id FROM ledger_accounts WHERE address = 'community:' || c.id
                || ':issuance:points') AS ip_acct,
             (SELECT id FROM ledger_accounts WHERE address = 'community:' || c.id
                || ':issuance:merit') AS im_acct,
             (SELECT id FROM ledger_accounts WHERE address = 'community:' || c.id
                || ':expired:points') AS ex_acct
           FROM communities c""",
        """ALTER TABLE comm ADD ip_bals bigint[], ADD im_bals bigint[], ADD ex_bal bigint""",
        """UPDATE comm SET
             ip_bals = (SELECT array_agg(id ORDER BY stripe) FROM ledger_balances
                        WHERE account_id = ip_acct),
             im_bals = (SELECT array_agg(id ORDER BY stripe) FROM ledger_balances
                        WHERE account_id = im_acct),
             ex_bal = (SELECT id FROM ledger_balances WHERE account_id = ex_acct)""",
        """CREATE TEMP TABLE vol ON COMMIT DROP AS
           SELECT v.id AS vid, comm.cid, comm.cno,
             (row_number() OVER (PARTITION BY v.community_id ORDER BY v.id) - 1)::int AS idx,
             pa.id AS p_acct, pb.id AS p_bal, ma.id AS m_acct, mb.id AS m_bal
           FROM volunteers v JOIN comm ON comm.cid = v.community_id
           JOIN ledger_accounts pa ON pa.address = 'volunteer:' || v.id || ':points'
           JOIN ledger_balances pb ON pb.account_id = pa.id
           JOIN ledger_accounts ma ON ma.address = 'volunteer:' || v.id || ':merit'
           JOIN ledger_balances mb ON mb.account_id = ma.id""",
        """CREATE TEMP TABLE typ ON COMMIT DROP AS
           SELECT id, community_id AS cid, code, name, points, merit,
             (row_number() OVER (PARTITION BY community_id ORDER BY id) - 1)::int AS ord
           FROM activity_types""",
        """CREATE TEMP TABLE shop ON COMMIT DROP AS
           SELECT i.id AS item_id, i.price, i.name, m.id AS merchant_id, comm.cid,
             (dense_rank() OVER (PARTITION BY m.community_id ORDER BY m.id) - 1)::int AS mno,
             (row_number() OVER (PARTITION BY m.id ORDER BY i.id) - 1)::int AS ino,
             a.id AS till_acct, b.id AS till_bal
           FROM items i JOIN merchants m ON m.id = i.merchant_id
           JOIN comm ON comm.cid = m.community_id
           JOIN ledger_accounts a ON a.address = 'merchant:' || m.id || ':points'
           JOIN ledger_balances b ON b.account_id = a.id""",
        # Activities: A per community, one every `step` days over the year.
        """INSERT INTO activities (id, community_id, type_id, title, place, starts_at, ends_at,
             points, merit, cancelled, created_at)
           SELECT comm.cno * %(A)s + a + 1, comm.cid, typ.id, typ.name || ' ' || a, '',
             %(base)s + a * %(step)s * interval '1 day',
             %(base)s + a * %(step)s * interval '1 day' + interval '2 hours',
             typ.points, typ.merit, false, %(base)s + a * %(step)s * interval '1 day'
                                           - interval '7 days'
           FROM comm CROSS JOIN generate_series(0, %(A)s - 1) a
           JOIN typ ON typ.cid = comm.cid AND typ.ord = a %% 6""",
        """INSERT INTO award_batches (id, community_id, activity_id, idempotency_key, status,
             people, requested_points, created_at, decided_at)
           SELECT id, community_id, id, 'bench-batch:' || id, 'posted', %(V)s / %(G)s,
             points * (%(V)s / %(G)s), ends_at, ends_at FROM activities""",
        # Award k of volunteer idx is at activity k*G + idx %% G: one per slot of the year.
        """CREATE TEMP TABLE aw ON COMMIT DROP AS
           SELECT vol.cno * %(V)s * %(K)s + vol.idx * %(K)s + k + 1 AS id, vol.*, act.id AS act,
             act.title, act.points, act.merit, act.starts_at,
             act.ends_at + interval '10 minutes' AS at, typ.code
           FROM vol CROSS JOIN generate_series(0, %(K)s - 1) k
           JOIN activities act ON act.id = vol.cno * %(A)s + k * %(G)s + vol.idx %% %(G)s + 1
           JOIN typ ON typ.id = act.type_id""",
        """INSERT INTO attendance (id, activity_id, volunteer_id, signed_up_at, present,
             checked_in_at, source)
           SELECT id, act, vid, starts_at - interval '3 days', true, starts_at, 'signup'
           FROM aw""",
        f"""INSERT INTO ledger_transactions (id, idempotency_key, request_hash, kind, memo, meta,
             created_at, hash)
           SELECT id, 'award:' || id, {zeros}, 'award', title, '{{}}', at, {zeros} FROM aw""",
        """INSERT INTO awards (id, batch_id, community_id, activity_id, volunteer_id, title,
             type_code, requested_points, points, merit, transaction_id, awarded_at,
             reversed_points, reversed_merit, reversal_reason)
           SELECT id, act, cid, act, vid, title, code, points, points, merit, id, at, 0, 0, ''
           FROM aw""",
        # Redemption r of volunteer idx: day 40 + 40r + (0..39), so never before the awards
        # that pay for it; item by (idx, r) among the community's merchants' items.
        """CREATE TEMP TABLE rd ON COMMIT DROP AS
           SELECT vol.cno * %(V)s * %(R)s + vol.idx * %(R)s + r + 1 AS id, vol.*, shop.item_id,
             shop.merchant_id, shop.price, shop.name, shop.till_acct, shop.till_bal,
             %(base)s + (40 + 40 * r + (vol.idx * 7 + r * 13) %% 40) * interval '1 day'
               + interval '2 hours' + (vol.idx %% 600) * interval '1 minute' AS created
           FROM vol CROSS JOIN generate_series(0, %(R)s - 1) r
           JOIN shop ON shop.cid = vol.cid AND shop.mno = (vol.idx + r) %% %(M)s
             AND shop.ino = (vol.idx * 3 + r) %% %(I)s""",
        f"""INSERT INTO ledger_transactions (id, idempotency_key, request_hash, kind, memo, meta,
             created_at, hash)
           SELECT (SELECT max(id) FROM aw) + id, 'redemption:post:' || id, {zeros},
             'redemption', name, '{{}}', created + interval '5 minutes', {zeros} FROM rd""",
        f"""INSERT INTO ledger_holds (id, idempotency_key, request_hash, account_id, balance_id,
             destination_id, asset_code, amount, status, kind, memo, meta, created_at,
             expires_at, resolved_at, resolution_key, posted_amount, transaction_id)
           SELECT id, 'redemption:' || id, {zeros}, p_acct, p_bal, till_acct, 'POINTS', price,
             'posted', 'redemption', name, '{{}}', created, created + interval '7 days',
             created + interval '5 minutes', 'redemption:post:' || id, price,
             (SELECT max(id) FROM aw) + id
           FROM rd""",
        """INSERT INTO redemptions (id, code, idempotency_key, request_hash, item_id,
             merchant_id, volunteer_id, volunteer_account, volunteer_label, quantity, unit_price,
             points, stock_kept, status, hold_id, transaction_id, created_at, expires_at,
             fulfilled_at, closed_at, refund_reason)
           SELECT id, 'B' || lpad(id::text, 12, '0'), 'bench:' || id, repeat('0', 64), item_id,
             merchant_id, vid, 'volunteer:' || vid || ':points', '', 1, price, price, false,
             'fulfilled', id, (SELECT max(id) FROM aw) + id, created,
             created + interval '7 days', created + interval '5 minutes',
             created + interval '5 minutes', ''
           FROM rd""",
        # Expiry e of volunteer idx: 5 points, day 150 + 180e, local midnight.
        """CREATE TEMP TABLE ex ON COMMIT DROP AS
           SELECT (SELECT max(id) FROM aw) + (SELECT max(id) FROM rd)
               + vol.cno * %(V)s * %(E)s + vol.idx * %(E)s + e + 1 AS id, vol.*,
             comm.ex_acct, comm.ex_bal,
             %(base)s + (150 + 180 * e) * interval '1 day' + interval '16 hours'
               + vol.idx * interval '1 second' AS at
           FROM vol JOIN comm USING (cid) CROSS JOIN generate_series(0, %(E)s - 1) e""",
        f"""INSERT INTO ledger_transactions (id, idempotency_key, request_hash, kind, memo, meta,
             created_at, hash)
           SELECT id, 'expire:' || id, {zeros}, 'expiry', '', '{{}}', at, {zeros} FROM ex""",
        # Postings in the order the writers make them.
        """CREATE TEMP TABLE pst ON COMMIT DROP AS
           SELECT aw.id AS txn, aw.at AS at, leg.*
           FROM aw JOIN comm USING (cid) CROSS JOIN LATERAL (VALUES
             (0, comm.ip_acct, comm.ip_bals[aw.id %% %(S)s + 1], 'POINTS', -aw.points),
             (1, aw.p_acct, aw.p_bal, 'POINTS', aw.points),
             (2, comm.im_acct, comm.im_bals[aw.id %% %(S)s + 1], 'MERIT', -aw.merit),
             (3, aw.m_acct, aw.m_bal, 'MERIT', aw.merit))
             AS leg (leg, account_id, balance_id, asset_code, amount)
           UNION ALL
           SELECT (SELECT max(id) FROM aw) + rd.id, rd.created + interval '5 minutes', leg.*
           FROM rd CROSS JOIN LATERAL (VALUES
             (0, rd.p_acct, rd.p_bal, 'POINTS', -rd.price),
             (1, rd.till_acct, rd.till_bal, 'POINTS', rd.price))
             AS leg (leg, account_id, balance_id, asset_code, amount)
           UNION ALL
           SELECT ex.id, ex.at, leg.*
           FROM ex CROSS JOIN LATERAL (VALUES
             (0, ex.p_acct, ex.p_bal, 'POINTS', -5),
             (1, ex.ex_acct, ex.ex_bal, 'POINTS', 5))
             AS leg (leg, account_id, balance_id, asset_code, amount)""",
        f"""INSERT INTO ledger_postings (transaction_id, account_id, balance_id, asset_code,
             amount, seq, balance_after, hash)
           SELECT txn, account_id, balance_id, asset_code, amount, row_number() OVER w,
             sum(amount) OVER w, {zeros}
           FROM pst WINDOW w AS (PARTITION BY balance_id ORDER BY at, txn, leg)
           ORDER BY at, txn, leg""",
        """UPDATE ledger_balances b SET posted = s.total, seq = s.n
           FROM (SELECT balance_id, sum(amount) AS total, count(*) AS n FROM ledger_postings
                 GROUP BY balance_id) s
           WHERE b.id = s.balance_id""",
        # What ledger.flows.add would have written, all in slot 0 (readers sum the slots).
        """INSERT INTO ledger_flows (scope, asset_code, kind, day, slot, credits, debits,
             postings)
           SELECT a.scope, p.asset_code, t.kind, (t.created_at + interval '8 hours')::date, 0,
             sum(greatest(p.amount, 0)), sum(greatest(-p.amount, 0)), count(*)
           FROM ledger_postings p JOIN ledger_accounts a ON a.id = p.account_id
           JOIN ledger_transactions t ON t.id = p.transaction_id
           WHERE a.scope IS NOT NULL
           GROUP BY 1, 2, 3, 4""",
    ]
    with conn.cursor() as cur:
        for sql in statements:
            started = time.perf_counter()
            cur.execute(sql, p if "%(" in sql else None)
            print(f"  {time.perf_counter() - started:6.1f} s  {cur.rowcount:>9} rows  "
                  f"{' '.join(sql.split())[:70]}", flush=True)
        for table in ("activities", "award_batches", "attendance", "awards",
                      "ledger_transactions", "ledger_holds", "redemptions"):
            cur.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'),"
                        f" (SELECT max(id) FROM {table}))")
        cur.execute("SELECT min(balance_after) FROM ledger_postings p JOIN ledger_accounts a"
                    " ON a.id = p.account_id WHERE NOT a.allow_negative")
        print(f"  lowest running balance of a no-overdraft account: {cur.fetchone()[0]}")
    session.commit()


def existing(app) -> dict:
    """The ids `load` returned, read back from a kept database."""
    with app.app_context():
        s = db.session
        communities = list(s.scalars(sa.text("SELECT id FROM communities ORDER BY id")))
        staff = dict(s.execute(sa.text(
            "SELECT community_id, id FROM users WHERE username LIKE 'bench-staff-%'")).all())
        admin = s.scalar(sa.text("SELECT id FROM users WHERE username = 'bench-admin'"))
        s.rollback()
    return {"communities": communities, "staff": staff, "admin": admin}


def vacuum(url: str) -> float:
    started = time.perf_counter()
    engine = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    with engine.connect() as c:
        c.exec_driver_sql("VACUUM ANALYZE")
    engine.dispose()
    return time.perf_counter() - started


def signed_in(app, user_id: int):
    client = app.test_client()
    with app.app_context():
        user = db.session.get(User, user_id)
        key = user.get_id()
    with client.session_transaction() as s:
        s["_user_id"] = key
        s["_fresh"] = True
    return client


def pages(app, path: str, user_id: int, requests: int) -> dict:
    client = signed_in(app, user_id)
    load_before = os.getloadavg()[0]
    started = time.perf_counter()
    response = client.get(path)
    cold = time.perf_counter() - started
    body = response.get_data(as_text=True)
    ok = response.status_code == 200
    times = []
    for _ in range(requests):
        started = time.perf_counter()
        response = client.get(path)
        times.append(time.perf_counter() - started)
        ok = ok and response.status_code == 200
    times.sort()
    return {"path": path, "cold": cold, "median": statistics.median(times),
            "p95": times[min(len(times) - 1, round(0.95 * (len(times) - 1)))],
            "min": times[0], "max": times[-1], "n": len(times), "ok": ok,
            "bytes": len(body), "load": (load_before, os.getloadavg()[0]),
            "warning": "flash-error" in body}


def timed(fn, runs: int) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
        db.session.rollback()
    return statistics.median(times)


def breakdown(app, community_ids: list[int], runs: int) -> tuple[list, list, bool]:
    """Median time of each figures.* call the two pages make."""
    with app.app_context():
        s = db.session
        one = community_ids[0]
        month = clock.month_start(clock.local_today())
        months = figures.months_ending(month, MONTHS)
        start, end = clock.local_month_bounds(month)
        community = [
            ("points_by_month (12 months)", lambda: figures.points_by_month(s, [one], months)),
            ("reconciliation", lambda: figures.reconciliation(s, [one])),
            ("people", lambda: figures.people(s, one, months)),
            ("activities_by_month", lambda: figures.activities_by_month(s, one, months)),
            ("redemptions_by (this month)", lambda: figures.redemptions_by(s, one, start, end)),
            ("tiers", lambda: figures.tiers(s, one)),
            ("waiting", lambda: figures.waiting(s, one)),
        ]
        year_months = [month.replace(month=m) for m in range(1, month.month + 1)]
        district = [
            ("communities", lambda: figures.communities(s)),
            ("points_by_month (all, year to date)",
             lambda: figures.points_by_month(s, community_ids, year_months)),
            ("reconciliation (all)", lambda: figures.reconciliation(s, community_ids)),
            ("people_of (all, grouped)",
             lambda: figures.people_of(s, community_ids, year_months)),
            ("activities_of (all, this month, grouped)",
             lambda: figures.activities_of(s, community_ids, [month])),
        ]
        first = [(name, timed(fn, runs)) for name, fn in community]
        second = [(name, timed(fn, runs)) for name, fn in district]
        reconciled = all(r.ok for r in figures.reconciliation(s, community_ids).values())
        db.session.rollback()
    return first, second, reconciled


def report(result: dict) -> None:
    ms = 1000
    print(f"{result['path']}: cold {result['cold'] * ms:.0f} ms; then {result['n']} requests: "
          f"median {result['median'] * ms:.0f} ms, p95 {result['p95'] * ms:.0f} ms "
          f"(min {result['min'] * ms:.0f}, max {result['max'] * ms:.0f}); all 200: "
          f"{result['ok']}; {result['bytes']:,} bytes; warning banner: {result['warning']}; "
          f"load {result['load'][0]:.1f}"
          f" -> {result['load'][1]:.1f}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pg", required=True)
    parser.add_argument("--communities", type=int, default=10)
    parser.add_argument("--volunteers", type=int, default=5_000, help="per community")
    parser.add_argument("--requests", type=int, default=30)
    parser.add_argument("--runs", type=int, default=5, help="per figures function")
    parser.add_argument("--keep", action="store_true", help="do not drop the database")
    parser.add_argument("--database", help="measure a database kept by an earlier --keep run "
                        "(migrated to head, not loaded again, not dropped)")
    args = parser.parse_args()
    server = sa.make_url(database_url(args.pg, ""))
    name = args.database or f"bench_dash_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(server, isolation_level="AUTOCOMMIT")
    if not args.database:
        with admin.connect() as c:
            c.exec_driver_sql(f'CREATE DATABASE "{name}"')
    try:
        url = server.set(database=name).render_as_string(hide_password=False)
        app = create_app({"SQLALCHEMY_DATABASE_URI": url, "SECRET_KEY": "bench"})
        with app.app_context():
            upgrade()
        print(f"machine: {platform.node()} · {os.cpu_count()} cores · "
              f"{platform.processor() or platform.machine()} · python "
              f"{platform.python_version()} · database {name}; load {os.getloadavg()}",
              flush=True)
        if args.database:
            ids = existing(app)
        else:
            started = time.perf_counter()
            ids = load(app, args.communities, args.volunteers)
            print(f"load {time.perf_counter() - started:.1f} s + VACUUM ANALYZE "
                  f"{vacuum(url):.1f} s", flush=True)
        with app.app_context():
            counts = {t: db.session.scalar(sa.text(f"SELECT count(*) FROM {t}")) for t in (
                "volunteers", "ledger_transactions", "ledger_postings", "awards", "attendance",
                "activities", "redemptions", "ledger_flows")}
            size = db.session.scalar(sa.text("SELECT pg_size_pretty(pg_database_size("
                                             "current_database()))"))
            mismatched = ledger.flows.mismatches(db.session)
            db.session.rollback()
            db.engine.dispose()
        print(f"{counts}; {size}; flows against postings: {len(mismatched)} mismatches",
              flush=True)
        # A fresh app: the first request pays for templates, compiled statements, connections.
        app = create_app({"SQLALCHEMY_DATABASE_URI": url, "SECRET_KEY": "bench"})
        community = ids["communities"][0]
        staff = pages(app, "/staff/dashboard", ids["staff"][community], args.requests)
        report(staff)
        district = pages(app, "/admin/dashboard", ids["admin"], args.requests)
        report(district)
        one, everyone, reconciled = breakdown(app, ids["communities"], args.runs)
        print(f"figures for community {community} (median of {args.runs}):")
        for label, seconds in one:
            print(f"  {label:<45} {seconds * 1000:8.1f} ms")
        print(f"figures for the district, {len(ids['communities'])} communities:")
        for label, seconds in everyone:
            print(f"  {label:<45} {seconds * 1000:8.1f} ms")
        print(f"every community reconciles: {reconciled}; targets: community < 300 ms, "
              f"district < 1 s; load now {os.getloadavg()}", flush=True)
        with app.app_context():
            db.engine.dispose()
    finally:
        if args.keep or args.database:
            print(f"kept database {name}")
        else:
            with admin.connect() as c:
                c.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


if __name__ == "__main__":
    main()

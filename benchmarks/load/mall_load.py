"""Load and faults against gunicorn on PostgreSQL (issue 7): prints numbers, then reconciles.

Three commands; the tests do not run them. Use a PostgreSQL cluster of your own for them
(the fault run restarts it), never the shared one on 5432:

    pg_createcluster 15 loadtest --port 5434 -- --auth=trust
    pg_ctlcluster --skip-systemctl-redirect 15 loadtest start
    PG=postgresql://postgres@127.0.0.1:5434/postgres
    .venv/bin/python benchmarks/load/mall_load.py seed   --pg $PG --state /tmp/mall-load.json
    .venv/bin/python benchmarks/load/mall_load.py load   --state /tmp/mall-load.json --rates 10,20
    .venv/bin/python benchmarks/load/mall_load.py faults --state /tmp/mall-load.json --rate 12 \\
        --pg-restart "pg_ctlcluster --skip-systemctl-redirect 15 loadtest restart -m fast"

`seed` creates a database of its own on the server (loadtest_<random>), migrates it with the
app's Alembic migrations, and builds with the app's own functions one community, 10 merchants
(8 partners, 2 charity supermarkets) with 4 items each (half with stock, half unlimited),
merchant and staff users, and 10,000 volunteers (the staff importer's bulk create), funds
every volunteer from the community's issuance account through `ledger.transfer`, then fills
the ledger to 1,000,000 postings with the COPY loader of benchmarks/ledger_throughput.py
(`bulk_group`, transfers between volunteers, every hash chained as the ledger writes it) and
checks `flask ledger verify`. It issues API tokens (in-process, `auth.service.create_token`)
for --active volunteers, every merchant user and the staff, and writes all of it to --state.

`load` starts `gunicorn -w 4` on that database and offers an open-loop (Poisson) load at each
rate in --rates (operations per second) for --seconds each, after a warm-up. An operation is
drawn from the issue's mix:

    60 %  volunteer reads:  GET /api/v1/me (balance), /me/history, /me/tier
    20 %  browsing:         GET /api/v1/items, /items/{id}
    10 %  redeem / cancel:  POST /api/v1/redemptions (Idempotency-Key), or cancel an open one
     7 %  merchant counter: GET /merchant/redemptions/{code}, POST .../confirm
     3 %  staff award:      POST /staff/activities, .../attendance (20 volunteers),
                            .../award (Idempotency-Key)

Every request that fails (connection error, timeout, 5xx) is retried with the same
Idempotency-Key until it gets an answer or --give-up seconds pass; a confirm or cancel whose
retry answers 409 is looked up (GET) to learn whether the first attempt took. It prints, per
rate, throughput, p50/p95/p99 per endpoint, the errors, and CPU (machine busy cores against
ours: gunicorn, this PostgreSQL cluster, this client). The highest rate held is the highest
with p99 < 300 ms on every endpoint and no error. Afterwards it reconciles (below).

`faults` runs the same mix at one --rate through a TCP proxy of its own that stands between
gunicorn and PostgreSQL, polls /healthz every 0.5 s, and meanwhile: kill -9 one gunicorn
worker; kill -9 the whole server (master and workers) and starts it again; restarts
PostgreSQL (--pg-restart, a shell command; refused on port 5432 unless --own-server); makes
the proxy refuse and drop every database connection for --refuse seconds. Then it checks
that the service answers again by itself and reconciles.

Reconciliation, after every run (exit status 1 on any mismatch): `flask ledger verify` is
clean; every acknowledged redemption, confirm, cancel and award batch is in the database
exactly once and in the state the client was told; a redemption's hold agrees with its status
(reserved/open, fulfilled/posted, cancelled/voided); nothing the clients never sent is there;
for every item with stock, stock = stock before - units of the run's live redemptions; for
every volunteer, the change of posted POINTS = awards - fulfilled redemptions acknowledged,
and pending = redemptions acknowledged and still reserved; each merchant's account grew by
its fulfilled redemptions. Operations left without an answer (given up) are reported: they
must be wholly present or wholly absent.

--json FILE writes every number.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing as mp
import os
import random
import shlex
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa
import sqlalchemy.orm  # noqa: F401  (sa.orm.Session)

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
for path in (ROOT, HERE.parent):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

import ledger_throughput  # noqa: E402  (benchmarks/: the COPY bulk loader)
import redemption_http as rh  # noqa: E402  (benchmarks/: gunicorn, CPU and percentiles)

BIN = Path(sys.executable).parent
FUNDING = 200_000  # points each volunteer starts with
STOCK = 1_000_000  # units of each stocked item: no run can sell out
P99_LIMIT_MS = 300.0
LOG = Path(os.environ.get("MALL_LOAD_LOG", "/tmp/mall_load_gunicorn.log"))
MIX = (("read", 60), ("browse", 20), ("redeem", 10), ("merchant", 7), ("staff", 3))


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


# --- seeding -----------------------------------------------------------------------------


def seed(args) -> int:
    server = rh.server_url(args.pg)
    name = f"loadtest_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(server, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
    admin.dispose()
    url = server.set(database=name).render_as_string(hide_password=False)
    log(f"database {name}: migrating")
    rh.migrate(url)
    started = time.perf_counter()
    state = build_people(url, args)
    log(f"people, merchants, items, tokens and funding in {time.perf_counter() - started:.1f} s")
    started = time.perf_counter()
    loaded = bulk_history(url, args.postings, args.load_procs)
    log(f"bulk history: {loaded['postings']} postings in the ledger "
        f"({time.perf_counter() - started:.1f} s)")
    ok, seconds, _ = flask_verify(url)
    log(f"flask ledger verify: {'clean' if ok else 'BROKEN'} in {seconds:.1f} s")
    state.update(url=url, server=args.pg, postings=loaded["postings"],
                 seeded_at=datetime.now(UTC).isoformat(timespec="seconds"))
    Path(args.state).write_text(json.dumps(state, ensure_ascii=False))
    log(f"state written to {args.state}")
    return 0 if ok else 1


def build_people(url: str, args) -> dict:
    import ledger
    from merchants import items as item_service
    from pointsmall import create_app
    from pointsmall.auth import service as auth_service
    from pointsmall.auth.models import User
    from pointsmall.earning import rules
    from pointsmall.extensions import db
    from pointsmall.people import communities, importer
    from pointsmall.people.service import VolunteerFields

    app = create_app({"SQLALCHEMY_DATABASE_URI": url, "SECRET_KEY": "seed"})
    rng = random.Random(7)
    with app.app_context():
        s = db.session
        community = communities.create_community(s, "压测社区", "压测街道")
        grid = communities.create_grid(s, community.id, "压测网格")
        micro = communities.create_grid(s, community.id, "压测微网格", grid.id)
        rules.ensure_rules(s, community.id)
        type_ids = [t.id for t in rules.activity_types(s, community.id)]
        merchants, item_rows, users = [], [], []
        for m in range(args.merchants):
            kind = "charity" if m < 2 else "partner"
            merchant = item_service.create_merchant(s, community.id, name=f"压测商户{m}",
                                                    kind=kind)
            user = User(username=f"load-m{m}", name=f"店员{m}", role="merchant",
                        merchant_id=merchant.id, password_hash="!unusable")
            s.add(user)
            users.append(user)
            for n in range(4):
                item = item_service.create_item(s, merchant.id, {
                    "name": f"商品{m}-{n}", "category": "grocery" if kind == "charity" else "food",
                    "price": rng.choice((5, 10, 20, 30, 50)),
                    "stock": STOCK if n % 2 == 0 else None, "active": True})
                s.flush()
                item_rows.append({"id": item.id, "merchant_id": merchant.id,
                                  "price": item.price, "stock": item.stock})
            merchants.append({"id": merchant.id, "user": user})
        staff = []
        for n in range(args.staff):
            user = User(username=f"load-staff{n}", name=f"工作人员{n}", role="staff",
                        community_id=community.id, password_hash="!unusable")
            s.add(user)
            staff.append(user)
        s.flush()
        fields_ = [VolunteerFields(name=f"志愿者{n}", phone=f"136{n:08d}", grid_id=micro.id,
                                   joined_on=date(2023, 5, 1)) for n in range(args.volunteers)]
        volunteer_ids = sorted(importer.create_volunteers(s, community.id, fields_))
        s.commit()
        log(f"{len(volunteer_ids)} volunteers created; funding them")
        issuer = community.account("POINTS")
        for start in range(0, len(volunteer_ids), 500):
            ids = volunteer_ids[start:start + 500]
            legs = [ledger.Leg(issuer, -FUNDING * len(ids))]
            legs += [ledger.Leg(f"volunteer:{v}:points", FUNDING) for v in ids]
            ledger.run_in_transaction(s, lambda s, legs=legs, start=start: ledger.transfer(
                s, legs, key=f"load:fund:{start}", kind="award", memo="load test funding"))
        active = volunteer_ids[:args.active]
        user_of = dict(s.execute(sa.text(
            "SELECT id, user_id FROM volunteers WHERE id = ANY(:ids)"), {"ids": active}).all())
        tokens = {}
        for volunteer_id in active:
            user = s.get(User, user_of[volunteer_id])
            tokens[volunteer_id] = auth_service.create_token(s, user, "load")[1]
        state = {
            "community_id": community.id, "type_ids": type_ids,
            "volunteer_ids": volunteer_ids,
            "volunteers": [{"id": v, "token": tokens[v]} for v in active],
            "merchants": [{"id": m["id"], "token": auth_service.create_token(
                s, m["user"], "load")[1]} for m in merchants],
            "staff": [auth_service.create_token(s, u, "load")[1] for u in staff],
            "items": item_rows,
        }
        s.commit()
        db.session.remove()
        db.engine.dispose()
    return state


def bulk_history(url: str, target: int, procs: int) -> dict:
    """Fill the ledger to `target` postings: ledger_throughput.bulk_group over volunteers."""
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        existing = conn.scalar(sa.text("SELECT count(*) FROM ledger_postings"))
        max_ids = {t: conn.scalar(sa.text(f"SELECT coalesce(max(id), 0) FROM {t}"))
                   for t in ("ledger_transactions", "ledger_postings")}
        rows = [tuple(r) for r in conn.execute(sa.text(
            "SELECT a.id, b.id, a.address, b.posted, b.seq, b.head_hash FROM ledger_accounts a"
            " JOIN ledger_balances b ON b.account_id = a.id"
            " WHERE a.address LIKE :pattern ORDER BY b.id"), {"pattern": "volunteer:%:points"})]
    engine.dispose()
    n_tx = max(0, (target - existing) // 2)
    groups = [rows[g::procs] for g in range(procs)]
    per = [n_tx // procs + (1 if g < n_tx % procs else 0) for g in range(procs)]
    tx0, p0 = max_ids["ledger_transactions"] + 1, max_ids["ledger_postings"] + 1
    base = datetime.now(UTC).replace(tzinfo=None) - timedelta(days=60)
    jobs = []
    for g in range(procs):
        jobs.append((url, g, per[g], tx0, p0, groups[g], 0.0, 4000 + g,
                     base + timedelta(days=g)))
        tx0 += per[g]
        p0 += 2 * per[g]
    with mp.get_context("fork").Pool(procs) as pool:
        pool.starmap(ledger_throughput.bulk_group, jobs)
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        for table in ("ledger_transactions", "ledger_postings"):
            conn.execute(sa.text(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                                 f"(SELECT max(id) FROM {table}))"))
    try:  # derived daily flows (migration 0005): recompute them from the postings
        from ledger import flows
    except ImportError:
        flows = None
    if flows is not None:
        with sa.orm.Session(engine) as s:
            flows.rebuild(s)
            s.commit()
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.exec_driver_sql("VACUUM ANALYZE")
        total = conn.scalar(sa.text("SELECT count(*) FROM ledger_postings"))
    engine.dispose()
    return {"postings": total}


def flask_verify(url: str) -> tuple[bool, float, str]:
    started = time.perf_counter()
    done = subprocess.run([str(BIN / "flask"), "--app", "pointsmall", "ledger", "verify"],
                          cwd=ROOT, env=rh.app_env(url), capture_output=True, text=True)
    output = (done.stdout + done.stderr).strip()
    return done.returncode == 0, time.perf_counter() - started, output


# --- what the clients saw ----------------------------------------------------------------


@dataclass
class Redemption:
    key: str
    volunteer: int  # index into state["volunteers"]
    volunteer_id: int
    item_id: int
    merchant: int  # index into state["merchants"]
    id: int | None = None
    code: str | None = None
    points: int = 0
    quantity: int = 1
    state: str = "sent"  # sent, reserved, fulfilled, cancelled
    busy: bool = False  # claimed by a client for a confirm or cancel
    uncertain: str = ""  # an operation on it that never got an answer


@dataclass
class Batch:
    key: str
    activity_id: int | None = None
    id: int | None = None
    awards: dict = field(default_factory=dict)  # volunteer id -> points
    uncertain: str = ""


@dataclass
class Books:
    """Everything the clients were told, and what they sent without an answer."""

    run: str
    redemptions: dict = field(default_factory=dict)  # key -> Redemption
    batches: dict = field(default_factory=dict)  # key -> Batch
    open: list = field(default_factory=list)  # reserved redemptions no client holds
    sequence: int = 0
    lost_answers: Counter = field(default_factory=Counter)  # found applied on retry
    retried_writes: Counter = field(default_factory=Counter)  # answered on a later attempt

    def next_key(self) -> str:
        self.sequence += 1
        return f"{self.run}:{self.sequence}"


@dataclass
class Tally:
    latencies: dict = field(default_factory=lambda: defaultdict(list))
    errors: Counter = field(default_factory=Counter)  # (endpoint, reason)
    ops: Counter = field(default_factory=Counter)
    failed_ops: Counter = field(default_factory=Counter)
    requests: int = 0
    dropped: int = 0  # arrivals refused because --max-inflight operations were running
    error_times: list = field(default_factory=list)  # time.monotonic() of each error


class Client:
    """The load's HTTP side: requests with retries, the operations of the mix."""

    def __init__(self, http, state: dict, books: Books, give_up: float, rng: random.Random):
        self.http, self.state, self.books, self.give_up, self.rng = (
            http, state, books, give_up, rng)
        self.tally = Tally()
        self.recording = True

    def use(self, tally: Tally) -> None:
        self.tally = tally

    async def call(self, endpoint: str, method: str, path: str, token: str, *,
                   json_body=None, key: str | None = None, params=None):
        """Send until answered (not 5xx) or give-up; return (response or None, attempts)."""
        headers = {"Authorization": f"Bearer {token}"}
        if key:
            headers["Idempotency-Key"] = key
        deadline = time.monotonic() + self.give_up
        attempt, pause = 0, 0.1
        while True:
            attempt += 1
            tally = self.tally
            started = time.perf_counter()
            try:
                answer = await self.http.request(method, path, headers=headers, json=json_body,
                                                 params=params)
            except Exception as error:  # noqa: BLE001  (counted; retried)
                tally.requests += 1
                tally.errors[endpoint, type(error).__name__] += 1
                tally.error_times.append((time.monotonic(), type(error).__name__))
            else:
                tally.requests += 1
                tally.latencies[endpoint].append(time.perf_counter() - started)
                if answer.status_code < 500:
                    if attempt > 1 and method == "POST":
                        self.books.retried_writes[endpoint] += 1
                    if answer.status_code >= 400 and not (attempt > 1
                                                          and answer.status_code == 409):
                        tally.errors[endpoint, answer.status_code] += 1
                    return answer, attempt
                tally.errors[endpoint, answer.status_code] += 1
                tally.error_times.append((time.monotonic(), answer.status_code))
            if time.monotonic() + pause > deadline:
                return None, attempt
            await asyncio.sleep(pause)
            pause = min(pause * 2, 2.0)

    # The operations ------------------------------------------------------------------

    def volunteer(self) -> tuple[int, dict]:
        index = self.rng.randrange(len(self.state["volunteers"]))
        return index, self.state["volunteers"][index]

    async def op_read(self) -> bool:
        _, v = self.volunteer()
        pick = self.rng.random()
        if pick < 0.5:
            answer, _ = await self.call("GET /me", "GET", "/api/v1/me", v["token"])
        elif pick < 0.9:
            answer, _ = await self.call("GET /me/history", "GET", "/api/v1/me/history",
                                        v["token"], params={"limit": 30})
        else:
            answer, _ = await self.call("GET /me/tier", "GET", "/api/v1/me/tier", v["token"])
        return answer is not None and answer.status_code == 200

    async def op_browse(self) -> bool:
        _, v = self.volunteer()
        if self.rng.random() < 0.6:
            answer, _ = await self.call("GET /items", "GET", "/api/v1/items", v["token"],
                                        params={"page": self.rng.choice((1, 1, 2))})
        else:
            item = self.rng.choice(self.state["items"])
            answer, _ = await self.call("GET /items/{id}", "GET", f"/api/v1/items/{item['id']}",
                                        v["token"])
        return answer is not None and answer.status_code == 200

    async def op_redeem(self) -> bool:
        if self.rng.random() < 0.15 and self.books.open:
            return await self.cancel()
        index, v = self.volunteer()
        item = self.rng.choice(self.state["items"])
        merchant = next(n for n, m in enumerate(self.state["merchants"])
                        if m["id"] == item["merchant_id"])
        r = Redemption(self.books.next_key(), index, v["id"], item["id"], merchant)
        self.books.redemptions[r.key] = r
        answer, _ = await self.call("POST /redemptions", "POST", "/api/v1/redemptions",
                                    v["token"], json_body={"item_id": item["id"], "quantity": 1},
                                    key=r.key)
        if answer is None:
            r.uncertain = "create"
            return False
        if answer.status_code != 201:
            r.state = f"refused {answer.status_code}"
            return False
        body = answer.json()
        r.id, r.code, r.points, r.quantity, r.state = (
            body["id"], body["code"], body["points"], body["quantity"], "reserved")
        self.books.open.append(r)
        return True

    def claim(self) -> Redemption | None:
        while self.books.open:
            r = self.books.open.pop(self.rng.randrange(len(self.books.open)))
            if r.state == "reserved" and not r.busy:
                r.busy = True
                return r
        return None

    async def cancel(self) -> bool:
        r = self.claim()
        if r is None:
            return True
        token = self.state["volunteers"][r.volunteer]["token"]
        answer, attempts = await self.call(
            "POST /redemptions/{id}/cancel", "POST", f"/api/v1/redemptions/{r.id}/cancel", token)
        return await self.settle(r, answer, attempts, "cancelled", token)

    async def op_merchant(self) -> bool:
        r = self.claim()
        if r is None:  # nothing to confirm: look at the month's statement instead
            m = self.rng.choice(self.state["merchants"])
            answer, _ = await self.call("GET /merchant/statement", "GET",
                                        "/api/v1/merchant/statement", m["token"])
            return answer is not None and answer.status_code == 200
        token = self.state["merchants"][r.merchant]["token"]
        answer, _ = await self.call("GET /merchant/redemptions/{code}", "GET",
                                    f"/api/v1/merchant/redemptions/{r.code}", token)
        if answer is None or answer.status_code != 200:
            r.busy = False
            self.books.open.append(r)
            return False
        answer, attempts = await self.call(
            "POST /merchant/redemptions/{code}/confirm", "POST",
            f"/api/v1/merchant/redemptions/{r.code}/confirm", token)
        return await self.settle(r, answer, attempts, "fulfilled", token)

    async def settle(self, r: Redemption, answer, attempts: int, goal: str, token: str) -> bool:
        """Record a confirm's or cancel's answer; a 409 on a retry is looked up."""
        r.busy = False
        if answer is None:
            r.uncertain = goal
            return False
        if answer.status_code == 200:
            r.state = goal
            return True
        if answer.status_code == 409 and attempts > 1:
            status = await self.lookup(r, goal, token)
            if status == goal:
                r.state = goal
                self.books.lost_answers[goal] += 1
                return True
            r.uncertain = goal
            return False
        r.uncertain = f"{goal}: {answer.status_code}"
        return False

    async def lookup(self, r: Redemption, goal: str, token: str) -> str | None:
        if goal == "fulfilled":
            answer, _ = await self.call("GET /merchant/redemptions/{code}", "GET",
                                        f"/api/v1/merchant/redemptions/{r.code}", token)
            return answer.json().get("status") if answer is not None else None
        answer, _ = await self.call("GET /redemptions", "GET", "/api/v1/redemptions", token,
                                    params={"before": r.id + 1, "limit": 1})
        if answer is None or answer.status_code != 200 or not answer.json():
            return None
        return answer.json()[0]["status"]

    async def op_staff(self) -> bool:
        token = self.rng.choice(self.state["staff"])
        now = datetime.now(UTC).replace(tzinfo=None)
        b = Batch(self.books.next_key())
        self.books.batches[b.key] = b
        answer, _ = await self.call("POST /staff/activities", "POST", "/api/v1/staff/activities",
                                    token, json_body={
                                        "type_id": self.rng.choice(self.state["type_ids"]),
                                        "title": f"压测活动 {b.key}", "place": "社区",
                                        "starts_at": (now - timedelta(hours=3)).isoformat(),
                                        "ends_at": (now - timedelta(hours=1)).isoformat()},
                                    key=f"a-{b.key.replace(':', '-')}")
        if answer is None or answer.status_code != 201:
            b.uncertain = "activity not created"
            return False
        b.activity_id = answer.json()["id"]
        people = self.rng.sample(self.state["volunteer_ids"], 20)
        answer, _ = await self.call(
            "POST /staff/activities/{id}/attendance", "POST",
            f"/api/v1/staff/activities/{b.activity_id}/attendance", token,
            json_body={"volunteer_ids": people})
        if answer is None or answer.status_code != 200:
            b.uncertain = "attendance not marked"
            return False
        answer, _ = await self.call(
            "POST /staff/activities/{id}/award", "POST",
            f"/api/v1/staff/activities/{b.activity_id}/award", token, json_body={},
            key=b.key.replace(":", "-"))
        if answer is None:
            b.uncertain = "award"
            return False
        if answer.status_code != 201:
            b.uncertain = f"award {answer.status_code}"
            return False
        body = answer.json()
        b.id = body["id"]
        b.awards = {a["volunteer_id"]: a["points"] for a in body["awards"]}
        if body["status"] != "posted":
            b.uncertain = f"batch {body['status']}"
        return True

    async def operation(self, kind: str) -> None:
        tally = self.tally
        try:
            ok = await getattr(self, f"op_{kind}")()
        except Exception as error:  # noqa: BLE001  (a bug in the client; counted)
            tally.errors[f"op {kind}", f"client {type(error).__name__}: {error}"] += 1
            ok = False
        tally.ops[kind] += 1
        if not ok:
            tally.failed_ops[kind] += 1


async def open_loop(client: Client, rate: float, seconds: float | None, max_inflight: int,
                    rng: random.Random, until: asyncio.Event | None = None
                    ) -> tuple[Tally, float]:
    """Start operations at Poisson arrivals of `rate` per second for `seconds` (or until
    `until` is set); then wait for all of them."""
    tally = Tally()
    client.use(tally)
    kinds, weights = zip(*MIX, strict=True)
    tasks: set = set()
    started = time.perf_counter()
    next_at = started
    while True:
        next_at += rng.expovariate(rate)
        if (seconds is not None and next_at - started > seconds) or (
                until is not None and until.is_set()):
            break
        delay = next_at - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        if len(tasks) >= max_inflight:
            tally.dropped += 1
            continue
        task = asyncio.create_task(client.operation(rng.choices(kinds, weights)[0]))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    offered_for = time.perf_counter() - started
    if tasks:
        await asyncio.gather(*tasks)
    return tally, offered_for


def summarise(rate: float, tally: Tally, seconds: float, cpu: dict | None = None) -> dict:
    row = {"rate": rate, "seconds": round(seconds, 1), "ops": sum(tally.ops.values()),
           "ops_per_s": round(sum(tally.ops.values()) / seconds, 1),
           "requests_per_s": round(tally.requests / seconds, 1),
           "errors": sum(tally.errors.values()) + tally.dropped, "dropped": tally.dropped,
           "error_kinds": {f"{e} {r}": n for (e, r), n in sorted(tally.errors.items(), key=str)},
           "failed_ops": dict(tally.failed_ops), "endpoints": {}}
    for endpoint, values in sorted(tally.latencies.items()):
        row["endpoints"][endpoint] = {"n": len(values), **{
            f"p{q}": round(rh.percentile(values, q) * 1000, 1) for q in (50, 95, 99)}}
    row["max_p99"] = max((e["p99"] for e in row["endpoints"].values()), default=0.0)
    row["held"] = row["errors"] == 0 and row["max_p99"] < P99_LIMIT_MS
    if cpu:
        row["cpu"] = cpu
    return row


def print_row(row: dict) -> None:
    print(f"rate {row['rate']:g} ops/s offered: {row['ops']} ops in {row['seconds']} s = "
          f"{row['ops_per_s']} ops/s, {row['requests_per_s']} requests/s; errors "
          f"{row['errors']} {row['error_kinds'] or ''}; max p99 {row['max_p99']} ms -> "
          f"{'held' if row['held'] else 'NOT held'}", flush=True)
    if "cpu" in row:
        print("   cpu: " + ", ".join(f"{k} {v}" for k, v in row["cpu"].items()))
    for endpoint, e in row["endpoints"].items():
        print(f"   {endpoint:<44} n={e['n']:<6} p50 {e['p50']:>7} p95 {e['p95']:>7} "
              f"p99 {e['p99']:>7} ms")


# --- CPU ---------------------------------------------------------------------------------


def busy_jiffies() -> tuple[int, int]:
    fields_ = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields_[3] + fields_[4]
    return sum(fields_) - idle, sum(fields_)


class Meter:
    """Cores busy on the machine against cores used by gunicorn, our PostgreSQL, this client."""

    def __init__(self, servers, pg_pids):
        self.servers, self.pg_pids = servers, pg_pids

    def pids(self) -> list[int]:
        found = []
        for server in self.servers():
            found += [server.pid, *rh.worker_pids(server)]
        return found + self.pg_pids()

    def start(self) -> None:
        self.wall = time.monotonic()
        self.busy = busy_jiffies()
        self.ours = rh.cpu_times(self.pids())
        self.client = time.process_time()

    def stop(self) -> dict:
        wall = time.monotonic() - self.wall
        busy, total = busy_jiffies()
        cores = os.cpu_count() or 1
        busy_cores = (busy - self.busy[0]) / max(1, total - self.busy[1]) * cores
        now = rh.cpu_times(self.pids())
        server = sum(t - self.ours.get(pid, 0.0) for pid, t in now.items())
        client = time.process_time() - self.client
        return {"busy_cores": round(busy_cores, 2),
                "ours_cores": round((server + client) / wall, 2),
                "client_cores": round(client / wall, 2),
                "load_avg": round(os.getloadavg()[0], 2)}


def postgres_pids(direct_url: str):
    """Return a function listing the processes of the PostgreSQL server (same machine)."""
    engine = sa.create_engine(direct_url)
    try:
        with engine.connect() as conn:
            data = conn.scalar(sa.text("SHOW data_directory"))
    except Exception:  # noqa: BLE001  (not superuser or not local: CPU is left out)
        data = None
    engine.dispose()

    def pids() -> list[int]:
        if not data:
            return []
        try:
            master = int(Path(data, "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return []
        return [master, *rh.worker_pids(type("P", (), {"pid": master}))]
    return pids


# --- the database proxy --------------------------------------------------------------------


class Proxy:
    """A TCP proxy to PostgreSQL that can refuse and drop every connection for a while."""

    def __init__(self, target_host: str, target_port: int):
        self.target = (target_host, target_port)
        self.port = rh.free_port()
        self.server = None
        self.pipes: set = set()

    async def start(self) -> None:
        self.server = await asyncio.start_server(self.accept, "127.0.0.1", self.port,
                                                 reuse_address=True)

    async def refuse(self) -> None:
        """Stop listening (connects are refused) and cut every open connection."""
        self.server.close()
        for writer in list(self.pipes):
            writer.transport.abort()
        self.pipes.clear()
        await self.server.wait_closed()

    async def accept(self, reader, writer) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.transport.abort()
            return
        self.pipes.update((writer, up_writer))

        async def pump(src, dst):
            try:
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            except (OSError, asyncio.CancelledError):
                pass
            finally:
                dst.transport.abort()
                self.pipes.discard(dst)

        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(pump(reader, up_writer), pump(up_reader, writer))


# --- gunicorn -----------------------------------------------------------------------------


class Server:
    def __init__(self, url: str, workers: int, port: int | None = None):
        self.url, self.workers = url, workers
        self.port = port or rh.free_port()
        self.process = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        """Start gunicorn and wait until /healthz answers 200."""
        import httpx

        self.spawn()
        for _ in range(300):
            if self.process.poll() is not None:
                raise RuntimeError(f"gunicorn exited; see {LOG}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.base}/healthz", timeout=1).status_code == 200:
                    return
            time.sleep(0.1)
        raise RuntimeError(f"gunicorn did not answer /healthz within 30 s; see {LOG}")

    def spawn(self) -> None:
        """Start gunicorn, its log in a file (a pipe would fill up and stall it)."""
        log_file = open(LOG, "ab")  # noqa: SIM115  (handed to the child)
        self.process = subprocess.Popen(
            [str(BIN / "gunicorn"), "-w", str(self.workers), "-b", f"127.0.0.1:{self.port}",
             "pointsmall:create_app()"], cwd=ROOT, env=rh.app_env(self.url),
            stdout=log_file, stderr=log_file, start_new_session=True)
        log_file.close()

    def kill(self) -> None:
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()

    def stop(self) -> None:
        if self.process is not None:
            rh.stop(self.process)


# --- reconciling --------------------------------------------------------------------------


def snapshot(url: str, state: dict) -> dict:
    """Balances, merchant balances and stock before a run."""
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        balances = {a: (int(p), int(h)) for a, p, h in conn.execute(sa.text(
            "SELECT a.address, sum(b.posted), sum(b.pending) FROM ledger_accounts a"
            " JOIN ledger_balances b ON b.account_id = a.id"
            " WHERE a.address LIKE :v OR a.address LIKE :m GROUP BY a.address"),
            {"v": "volunteer:%:points", "m": "merchant:%"})}
        stock = dict(conn.execute(sa.text("SELECT id, stock FROM items")).all())
    engine.dispose()
    return {"balances": balances, "stock": stock}


def reconcile(url: str, state: dict, books: Books, before: dict) -> tuple[list[str], dict]:
    """Return the problems found and a summary of what was checked."""
    problems: list[str] = []
    ok, seconds, output = flask_verify(url)
    if not ok:
        problems.append("flask ledger verify: " + output[-2000:])
    after = snapshot(url, state)
    engine = sa.create_engine(url)
    pattern = f"%:{books.run}:%"
    with engine.connect() as conn:
        rows = conn.execute(sa.text(
            "SELECT r.id, r.idempotency_key, r.status, r.points, r.quantity, r.item_id,"
            " r.volunteer_id, r.merchant_id, h.status AS hold_status FROM redemptions r"
            " JOIN ledger_holds h ON h.id = r.hold_id WHERE r.idempotency_key LIKE :p"),
            {"p": pattern}).all()
        batch_rows = conn.execute(sa.text(
            "SELECT id, idempotency_key, status FROM award_batches"
            " WHERE idempotency_key LIKE :p"), {"p": f"%:{books.run}-%"}).all()
        award_rows = conn.execute(sa.text(
            "SELECT a.batch_id, a.volunteer_id, a.points, a.activity_id FROM awards a"
            " JOIN award_batches b ON b.id = a.batch_id WHERE b.idempotency_key LIKE :p"),
            {"p": f"%:{books.run}-%"}).all()
        copies = conn.execute(sa.text(
            "SELECT title, count(*) FROM activities WHERE title LIKE :p GROUP BY title"
            " HAVING count(*) > 1"), {"p": f"%{books.run}:%"}).all()
        twice = conn.execute(sa.text(
            "SELECT a.activity_id, a.volunteer_id, count(*) FROM awards a"
            " JOIN award_batches b ON b.id = a.batch_id WHERE b.idempotency_key LIKE :p"
            " GROUP BY 1, 2 HAVING count(*) > 1"), {"p": f"%:{books.run}-%"}).all()
    engine.dispose()
    hold_for = {"reserved": "open", "fulfilled": "posted", "cancelled": "voided",
                "expired": "expired"}
    by_key = {}
    for row in rows:
        key = row.idempotency_key.split(":", 2)[2]
        if key in by_key:
            problems.append(f"redemption key {key} twice")
        by_key[key] = row
        if hold_for.get(row.status) != row.hold_status:
            problems.append(f"redemption {row.id} is {row.status}, its hold {row.hold_status}")
    acked = counts = Counter()
    unanswered = Counter()
    for key, r in books.redemptions.items():
        row = by_key.get(key)
        if r.uncertain:
            unanswered[f"{r.uncertain} -> {row.status if row is not None else 'absent'}"] += 1
        if r.state in ("reserved", "fulfilled", "cancelled"):
            acked["create"] += 1
            if row is None:
                problems.append(f"acknowledged redemption {r.id} ({key}) is missing")
                continue
            if row.id != r.id:
                problems.append(f"redemption {key}: acknowledged id {r.id}, database {row.id}")
            if r.state != "reserved":
                acked[r.state] += 1
            if row.status != r.state and not r.uncertain:
                problems.append(f"redemption {r.id}: acknowledged {r.state}, database "
                                f"{row.status}")
        elif row is not None and not r.uncertain:
            problems.append(f"redemption {row.id} ({key}) exists but was refused or never sent")
    unknown = set(by_key) - set(books.redemptions)
    if unknown:
        problems.append(f"{len(unknown)} redemptions with this run's keys no client sent")
    # Stock: each stocked item lost exactly the units of the run's live redemptions.
    live_units = Counter()
    for row in rows:
        if row.status in ("reserved", "fulfilled"):
            live_units[row.item_id] += row.quantity
    for item in state["items"]:
        if item["stock"] is None:
            continue
        expected = before["stock"][item["id"]] - live_units[item["id"]]
        if after["stock"][item["id"]] != expected:
            problems.append(f"item {item['id']}: stock {after['stock'][item['id']]}, expected "
                            f"{expected}")
    # Award batches: each acknowledged one once, posted, with the awards the client saw.
    batches_by_key = defaultdict(list)
    for row in batch_rows:
        batches_by_key[row.idempotency_key.rsplit(":", 1)[1]].append(row)
    awards_of = defaultdict(dict)
    for row in award_rows:
        awards_of[row.batch_id][row.volunteer_id] = row.points
    for key, b in books.batches.items():
        found = batches_by_key.get(key.replace(":", "-"), [])
        if len(found) > 1:
            problems.append(f"award batch {key} {len(found)} times")
        if b.id is not None:
            acked["award batch"] += 1
            if not found or found[0].id != b.id or found[0].status != "posted":
                problems.append(f"acknowledged award batch {b.id} ({key}): database {found}")
            elif awards_of[b.id] != b.awards:
                problems.append(f"award batch {b.id}: awards differ from the answer")
        elif b.uncertain:
            unanswered[f"award ({b.uncertain}) -> {'applied' if found else 'not applied'}"] += 1
    if twice:
        problems.append(f"{len(twice)} volunteers awarded twice for one activity")
    if copies:
        problems.append(f"{len(copies)} activities created more than once, e.g. {copies[:3]}")
    # Balances: what the acknowledged operations imply, per volunteer and merchant.
    awarded = Counter()
    for b in books.batches.values():
        if b.id is not None:
            awarded.update(b.awards)
    db_awarded = Counter()
    for row in award_rows:
        db_awarded[row.volunteer_id] += row.points
    spent, held, earned = Counter(), Counter(), Counter()
    uncertain_volunteers = set()
    for key, r in books.redemptions.items():
        if r.uncertain:
            uncertain_volunteers.add(r.volunteer_id)
            row = by_key.get(key)
            if row is None:
                continue
            status, points = row.status, row.points
        else:
            status, points = r.state, r.points
        if status == "fulfilled":
            spent[r.volunteer_id] += points
            earned[state["merchants"][r.merchant]["id"]] += points
        elif status == "reserved":
            held[r.volunteer_id] += points
    acked_batches = {b.id for b in books.batches.values() if b.id is not None}
    for batch_id, people in awards_of.items():
        if batch_id not in acked_batches:  # applied, though its answer never came
            uncertain_volunteers.update(people)
    checked = 0
    for volunteer_id in state["volunteer_ids"]:
        address = f"volunteer:{volunteer_id}:points"
        (p0, h0), (p1, h1) = before["balances"][address], after["balances"][address]
        gained = awarded[volunteer_id] if volunteer_id not in uncertain_volunteers \
            else db_awarded[volunteer_id]
        if p1 - p0 != gained - spent[volunteer_id] or h1 - h0 != held[volunteer_id]:
            problems.append(f"volunteer {volunteer_id}: posted {p0}->{p1}, pending {h0}->{h1}; "
                            f"acknowledged awards {gained}, fulfilled {spent[volunteer_id]}, "
                            f"reserved {held[volunteer_id]}")
        checked += 1
    if sum(db_awarded.values()) != sum(awarded.values()) and not any(
            b.uncertain for b in books.batches.values()):
        problems.append(f"awards in the database {sum(db_awarded.values())}, acknowledged "
                        f"{sum(awarded.values())}")
    for m in state["merchants"]:
        address = f"merchant:{m['id']}:points"
        delta = after["balances"][address][0] - before["balances"][address][0]
        if delta != earned[m["id"]]:
            problems.append(f"merchant {m['id']}: +{delta}, fulfilled {earned[m['id']]}")
    summary = {"verify": "clean" if ok else "BROKEN", "verify_seconds": round(seconds, 1),
               "acknowledged": dict(counts), "unanswered": dict(unanswered),
               "answers_lost_then_found": dict(books.lost_answers),
               "writes_answered_on_a_retry": dict(books.retried_writes),
               "volunteers_checked": checked, "problems": len(problems)}
    return problems, summary


# --- the runs -----------------------------------------------------------------------------


def load_state(args) -> dict:
    state = json.loads(Path(args.state).read_text())
    if args.url:
        state["url"] = args.url
    rh.migrate(state["url"])  # the schema may have moved on since the seed
    return state


def make_http(base: str, connections: int):
    import httpx

    return httpx.AsyncClient(
        base_url=base, timeout=httpx.Timeout(30.0, connect=5.0),
        limits=httpx.Limits(max_connections=connections, max_keepalive_connections=0))


def finish(args, state, books, before, results: dict) -> int:
    log("reconciling ...")
    problems, summary = reconcile(state["url"], state, books, before)
    results["reconciliation"] = summary
    results["problems"] = problems[:200]
    print(json.dumps(summary, ensure_ascii=False, indent=1))
    if problems:
        print(f"DOES NOT RECONCILE ({len(problems)}):\n  " + "\n  ".join(problems[:50]))
    else:
        print("reconciled: verify clean; every acknowledged operation present once; stock, "
              "balances and merchants agree")
    results.update(date=datetime.now(UTC).isoformat(timespec="seconds"), machine=rh.machine())
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1, ensure_ascii=False))
    return 1 if problems else 0


def run_load(args) -> int:
    state = load_state(args)
    books = Books(run=f"L{uuid.uuid4().hex[:6]}")
    before = snapshot(state["url"], state)
    server = Server(state["url"], args.workers)
    server.start()
    rows = []
    try:
        meter = Meter(lambda: [server.process], postgres_pids(state["url"]))

        async def main():
            rng = random.Random(args.seed)
            async with make_http(server.base, args.max_inflight) as http:
                client = Client(http, state, books, args.give_up, rng)
                for rate in args.rates:
                    if args.warmup:
                        await open_loop(client, rate, args.warmup, args.max_inflight, rng)
                    meter.start()
                    tally, seconds = await open_loop(client, rate, args.seconds,
                                                     args.max_inflight, rng)
                    rows.append(summarise(rate, tally, seconds, meter.stop()))
                    print_row(rows[-1])
        asyncio.run(main())
    finally:
        server.stop()
    held = [r for r in rows if r["held"]]
    best = max(held, key=lambda r: r["rate"]) if held else None
    print(f"highest load held (p99 < {P99_LIMIT_MS:g} ms on every endpoint, no error): "
          + (f"{best['rate']:g} ops/s offered, {best['ops_per_s']} ops/s, "
             f"{best['requests_per_s']} requests/s" if best else "none"))
    return finish(args, state, books, before, {
        "command": "load", "workers": args.workers, "rows": rows,
        "best": best and {k: best[k] for k in ("rate", "ops_per_s", "requests_per_s")}})


def run_faults(args) -> int:
    state = load_state(args)
    direct = sa.make_url(state["url"])
    if (direct.port or 5432) == 5432 and not args.own_server:
        raise SystemExit("the fault run restarts PostgreSQL: give it a cluster of its own "
                         "(not port 5432), or --own-server if this one is yours")
    books = Books(run=f"F{uuid.uuid4().hex[:6]}")
    before = snapshot(state["url"], state)
    proxy = Proxy(direct.host or "127.0.0.1", direct.port or 5432)
    via_proxy = direct.set(host="127.0.0.1", port=proxy.port).render_as_string(
        hide_password=False)
    server = Server(via_proxy, args.workers)
    events, health = [], []
    results: dict = {"command": "faults", "rate": args.rate, "workers": args.workers}

    def mark(what: str, t0: float) -> None:
        events.append((round(time.monotonic() - t0, 1), what))
        log(what)

    async def poll_health(http, t0: float, stop: asyncio.Event) -> None:
        while not stop.is_set():
            at = round(time.monotonic() - t0, 1)
            try:
                answer = await http.get("/healthz", timeout=2.0)
                health.append((at, answer.status_code, answer.json().get("status")))
            except Exception as error:  # noqa: BLE001
                health.append((at, None, type(error).__name__))
            await asyncio.sleep(0.5)

    async def healthy(probe, t0: float, limit: float = 180.0) -> float | None:
        """Wait until /healthz answers 200; return when (seconds since t0), None if never."""
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            with contextlib.suppress(Exception):
                if (await probe.get("/healthz", timeout=2.0)).status_code == 200:
                    return round(time.monotonic() - t0, 1)
            await asyncio.sleep(0.25)
        return None

    async def main():
        await proxy.start()
        await asyncio.to_thread(server.start)
        rng = random.Random(args.seed)
        t0 = time.monotonic()
        faults = []  # (name, started at, answering again at)
        async with make_http(server.base, args.max_inflight) as http, \
                make_http(server.base, 2) as probe:
            client = Client(http, state, books, args.give_up, rng)
            stop, stop_load = asyncio.Event(), asyncio.Event()
            poller = asyncio.create_task(poll_health(probe, t0, stop))
            load = asyncio.create_task(open_loop(client, args.rate, None, args.max_inflight,
                                                 rng, until=stop_load))
            await asyncio.sleep(args.settle)

            victim = rng.choice(rh.worker_pids(server.process))
            at = round(time.monotonic() - t0, 1)
            os.kill(victim, signal.SIGKILL)
            mark(f"kill -9 gunicorn worker {victim}", t0)
            faults.append(("kill -9 one gunicorn worker", at, await healthy(probe, t0)))
            await asyncio.sleep(args.settle)

            at = round(time.monotonic() - t0, 1)
            server.kill()
            mark("kill -9 the whole server (master and workers)", t0)
            await asyncio.sleep(2)
            server.spawn()
            mark("server started again (2 s later)", t0)
            faults.append(("kill -9 the whole server, start again 2 s later", at,
                           await healthy(probe, t0)))
            await asyncio.sleep(args.settle)

            at = round(time.monotonic() - t0, 1)
            mark(f"restart PostgreSQL: {args.pg_restart}", t0)
            done = await asyncio.to_thread(subprocess.run, shlex.split(args.pg_restart),
                                           capture_output=True, text=True)
            mark(f"PostgreSQL restarted (exit {done.returncode})", t0)
            faults.append(("restart PostgreSQL", at, await healthy(probe, t0)))
            await asyncio.sleep(args.settle)

            at = round(time.monotonic() - t0, 1)
            mark(f"database refuses connections for {args.refuse:g} s", t0)
            await proxy.refuse()
            refused = (time.monotonic() - t0, time.monotonic() - t0 + args.refuse)
            await asyncio.sleep(args.refuse)
            await proxy.start()
            mark("database accepts connections again", t0)
            faults.append((f"database refuses connections for {args.refuse:g} s", at,
                           await healthy(probe, t0)))
            await asyncio.sleep(args.settle)

            stop_load.set()
            tally, seconds = await load
            mark("load stopped; every operation answered or given up", t0)
            # Recovery: the service answers again with no help.
            recovered = None
            for _ in range(60):
                try:
                    h = await probe.get("/healthz")
                    v = state["volunteers"][0]
                    me = await probe.get("/api/v1/me",
                                         headers={"Authorization": f"Bearer {v['token']}"})
                    if h.status_code == 200 and me.status_code == 200:
                        recovered = round(time.monotonic() - t0, 1)
                        break
                except Exception:  # noqa: BLE001
                    pass
                await asyncio.sleep(0.5)
            stop.set()
            await poller
            await proxy.refuse()
            bounds = [at for _, at, _ in faults] + [seconds + 60.0]
            per_fault = []
            for n, (name, at, back) in enumerate(faults):
                window = [what for when, what in tally.error_times
                          if at <= when - t0 < bounds[n + 1]]
                said = Counter(f"{status or reason}" for when, status, reason in health
                               if at <= when < (back or bounds[n + 1]))
                per_fault.append({"fault": name, "at_s": at, "healthz_200_again_at_s": back,
                                  "failed_requests": dict(Counter(map(str, window))),
                                  "healthz_until_back": dict(said)})
            before_first = [w for when, w in tally.error_times if when - t0 < faults[0][1]]
            return tally, seconds, refused, recovered, per_fault, len(before_first)

    try:
        tally, seconds, refused, recovered, per_fault, early = asyncio.run(main())
    finally:
        server.stop()
    row = summarise(args.rate, tally, seconds)
    print_row(row)
    during = Counter(f"{status or reason}" for at, status, reason in health
                     if refused[0] + 0.5 <= at <= refused[1])
    timeline = []
    for at, status, reason in health:
        label = f"{status} {reason}" if status else reason
        if not timeline or timeline[-1][1] != label:
            timeline.append((at, label))
    print("events: " + "; ".join(f"{t} s {what}" for t, what in events))
    print("/healthz while the database refused connections: " + ", ".join(
        f"{k} x{n}" for k, n in during.items()))
    print("/healthz timeline (changes only): " + "; ".join(f"{t} s {w}" for t, w in timeline))
    print(f"service answered /healthz 200 and GET /api/v1/me 200 by itself at: {recovered} s")
    print(f"failed requests before the first fault: {early}")
    for fault in per_fault:
        print(f"  {fault['fault']} at {fault['at_s']} s: /healthz 200 again at "
              f"{fault['healthz_200_again_at_s']} s; /healthz said until then "
              f"{fault['healthz_until_back']}; failed requests (all retried) "
              f"{fault['failed_requests']}")
    results.update(row=row, events=events, healthz_while_refused=dict(during),
                   faults=per_fault, errors_before_first_fault=early,
                   healthz_timeline=timeline, recovered_at=recovered)
    code = finish(args, state, books, before, results)
    if recovered is None or "200" in during or not during:
        print("FAULTS: the service did not recover, or /healthz did not say unhealthy")
        code = 1
    return code


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("seed", help="build the database and write --state")
    p.add_argument("--pg", required=True, help="a PostgreSQL server URL (any database)")
    p.add_argument("--state", required=True)
    p.add_argument("--volunteers", type=int, default=10_000)
    p.add_argument("--active", type=int, default=2_000, help="volunteers with API tokens")
    p.add_argument("--merchants", type=int, default=10)
    p.add_argument("--staff", type=int, default=3)
    p.add_argument("--postings", type=int, default=1_000_000)
    p.add_argument("--load-procs", type=int, default=os.cpu_count() or 2)
    for name in ("load", "faults"):
        p = sub.add_parser(name)
        p.add_argument("--state", required=True)
        p.add_argument("--url", help="the database URL, if not the one in --state")
        p.add_argument("--workers", type=int, default=4, help="gunicorn workers")
        p.add_argument("--max-inflight", type=int, default=200)
        p.add_argument("--give-up", type=float, default=60.0,
                       help="seconds a request is retried before the client gives up")
        p.add_argument("--seed", type=int, default=1)
        p.add_argument("--json")
    sub.choices["load"].add_argument("--rates", type=lambda t: [float(x) for x in t.split(",")],
                                     default=[10.0, 20.0, 30.0, 40.0])
    sub.choices["load"].add_argument("--warmup", type=float, default=5.0)
    sub.choices["load"].add_argument("--seconds", type=float, default=60.0,
                                     help="measured seconds per rate")
    f = sub.choices["faults"]
    f.add_argument("--rate", type=float, default=15.0)
    f.add_argument("--refuse", type=float, default=10.0)
    f.add_argument("--settle", type=float, default=20.0,
                   help="seconds of plain load before the first fault and after each")
    f.add_argument("--pg-restart", default="pg_ctlcluster --skip-systemctl-redirect 15 "
                   "loadtest restart -m fast", help="a shell command that restarts PostgreSQL")
    f.add_argument("--own-server", action="store_true",
                   help="allow restarting a server on port 5432")
    args = parser.parse_args(argv)
    return {"seed": seed, "load": run_load, "faults": run_faults}[args.command](args)


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main())

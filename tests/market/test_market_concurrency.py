"""Races at the counter, on PostgreSQL: stock, points, confirm, cancel, expiry, retries.

Every racer runs in its own thread with its own session that really commits, and all of
a race's racers are released together by a barrier after they have their connection.
After each race the books must agree: `ledger.verify` is clean on a fresh session, and
for every item the stock left plus the units of live redemptions is the initial stock.
"""

import itertools
import os
import random
import subprocess
import sys
import threading
import uuid
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
import sqlalchemy.orm as so

import ledger
from ledger.clock import utcnow
from merchants import items, redemptions
from merchants.errors import MarketError, OutOfStock, RedemptionNotReserved
from merchants.models import Item, Redemption
from merchants.redemptions import Redeemer
from pointsmall.people import communities
from pointsmall.people import service as volunteers

pytestmark = [pytest.mark.postgres]

ROOT = Path(__file__).resolve().parents[2]
_phones = itertools.count(random.randrange(10**7))


# --- racing ---------------------------------------------------------------------------


@dataclass
class Outcome:
    value: object = None
    error: BaseException | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


def race(Session: so.sessionmaker, jobs: list[Callable[[so.Session], object]]) -> list[Outcome]:
    """Run each job in its own thread and committed session, all started together."""
    barrier = threading.Barrier(len(jobs), timeout=60)

    def run(job):
        with Session() as session:
            session.connection()  # connected before the start line, not after
            barrier.wait()
            try:
                return Outcome(value=ledger.run_in_transaction(session, job))
            except Exception as error:  # the outcome under test
                return Outcome(error=error)

    with ThreadPoolExecutor(max_workers=len(jobs)) as pool:
        return list(pool.map(run, jobs))


def errors_of(outcomes: list[Outcome]) -> Counter:
    return Counter(type(o.error).__name__ for o in outcomes if not o.ok)


# --- a world to race in ---------------------------------------------------------------


@dataclass
class Shop:
    community_id: int
    grid_id: int
    merchant_id: int
    merchant_account: str


@pytest.fixture
def world(base_app, racing):
    """Build a community with a merchant, its items and funded volunteers, all committed."""

    class World:
        def __init__(self):
            self.tag = uuid.uuid4().hex[:8]
            self.item_stock: dict[int, int] = {}
            with base_app.app_context(), racing() as s:
                community = communities.create_community(s, f"竞争社区{self.tag}")
                grid = communities.create_grid(s, community.id, f"网格{self.tag}")
                merchant = items.create_merchant(s, community.id, name=f"面馆{self.tag}")
                self.shop = Shop(community.id, grid.id, merchant.id, merchant.account())
                s.commit()

        def item(self, *, price: int, stock: int | None) -> int:
            with racing() as s:
                item = items.create_item(s, self.shop.merchant_id, {
                    "name": f"牛肉面{self.tag}", "price": price, "stock": stock,
                    "category": "food"})
                s.commit()
                if stock is not None:
                    self.item_stock[item.id] = stock
                return item.id

        def volunteers(self, n: int, *, points: int) -> list[Redeemer]:
            out = []
            with base_app.app_context(), racing() as s:
                for _ in range(n):
                    volunteer, _password = volunteers.create_volunteer(
                        s, self.shop.community_id,
                        {"name": "张三", "phone": f"158{next(_phones):08d}",
                         "grid_id": self.shop.grid_id, "joined_on": "2024-01-01"},
                        password_hash="unusable", audit_it=False)
                    account = volunteer.account("POINTS")
                    if points:
                        ledger.move(s, communities.issuance_address(self.shop.community_id,
                                                                    "POINTS"),
                                    account, points, key=f"fund:{account}", kind="award")
                    out.append(Redeemer(volunteer.id, account, "张*", self.shop.community_id))
                s.commit()
            return out

        def reserve(self, redeemer: Redeemer, item_id: int, *, quantity: int = 1,
                    now=None) -> tuple[int, str]:
            with racing() as s:
                found = redemptions.reserve(s, redeemer, item_id, quantity,
                                            key=uuid.uuid4().hex, now=now)
                s.commit()
                return found.id, found.code

        def balance(self, address: str) -> ledger.AccountBalance:
            with racing() as s:
                return ledger.balance(s, address)

        def redemptions(self, ids) -> dict[int, Redemption]:
            with racing(expire_on_commit=False) as s:
                rows = s.scalars(sa.select(Redemption).where(Redemption.id.in_(list(ids))))
                return {r.id: r for r in rows}

        def hold(self, hold_id: int) -> ledger.Hold:
            with racing() as s:
                found = s.get(ledger.Hold, hold_id)
                s.expunge(found)
                return found

        def stock(self, item_id: int) -> int | None:
            with racing() as s:
                return s.scalar(sa.select(Item.stock).where(Item.id == item_id))

        def check_books(self) -> None:
            """The ledger verifies, and every item's stock adds up with its live redemptions."""
            with racing() as s:
                report = ledger.verify(s)
                assert report.ok, [str(v) for v in report.violations]
                for item_id, initial in self.item_stock.items():
                    stock = s.scalar(sa.select(Item.stock).where(Item.id == item_id))
                    live = s.scalar(
                        sa.select(sa.func.coalesce(sa.func.sum(Redemption.quantity), 0))
                        .where(Redemption.item_id == item_id,
                               Redemption.status.in_(redemptions.LIVE)))
                    assert stock >= 0
                    assert stock + live == initial, (item_id, stock, live, initial)

    return World()


# --- the races --------------------------------------------------------------------------


def test_fifty_volunteers_racing_for_ten_units_get_exactly_ten(world, racing):
    item_id = world.item(price=5, stock=10)
    people = world.volunteers(50, points=10)
    seen, done = [], threading.Event()

    def watch():
        # Sample the stock all through the race: it never goes below zero.
        with racing() as s:
            while not done.is_set():
                seen.append(s.scalar(sa.select(Item.stock).where(Item.id == item_id)))
                s.rollback()

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        outcomes = race(racing, [
            lambda s, who=who: redemptions.reserve(s, who, item_id, 1, key="lunch").id
            for who in people])
    finally:
        done.set()
        watcher.join()

    winners = [o.value for o in outcomes if o.ok]
    assert len(winners) == 10 and len(set(winners)) == 10
    assert errors_of(outcomes) == Counter({"OutOfStock": 40})
    assert all(isinstance(o.error, OutOfStock) for o in outcomes if not o.ok)
    assert world.stock(item_id) == 0
    assert seen and min(seen) >= 0
    rows = world.redemptions(winners)
    assert {r.status for r in rows.values()} == {"reserved"}
    winner_ids = {r.volunteer_id for r in rows.values()}
    for who in people:
        held = world.balance(who.account)
        assert held.posted == 10
        assert held.pending == (5 if who.id in winner_ids else 0)
    world.check_books()


def test_thirty_parallel_redemptions_with_points_for_three_reserve_three(world, racing):
    item_id = world.item(price=10, stock=100)
    (who,) = world.volunteers(1, points=30)

    outcomes = race(racing, [
        lambda s, n=n: redemptions.reserve(s, who, item_id, 1, key=f"tap-{n}").id
        for n in range(30)])

    assert len([o for o in outcomes if o.ok]) == 3
    assert errors_of(outcomes) == Counter({"InsufficientFunds": 27})
    assert all(isinstance(o.error, ledger.InsufficientFunds) for o in outcomes if not o.ok)
    assert world.stock(item_id) == 97  # refused ones leaked no stock
    held = world.balance(who.account)
    assert (held.posted, held.pending, held.available) == (30, 30, 0)
    world.check_books()


def test_two_devices_confirming_one_code_confirm_it_once(world, racing):
    item_id = world.item(price=7, stock=20)
    people = world.volunteers(10, points=7)
    reserved = [world.reserve(who, item_id) for who in people]

    jobs = []
    for _id, code in reserved:
        for device in (1, 2):
            jobs.append(lambda s, code=code, device=device: redemptions.confirm(
                s, world.shop.merchant_id, code, confirmed_by=device).id)
    outcomes = race(racing, jobs)

    for n, (redemption_id, _code) in enumerate(reserved):
        pair = outcomes[2 * n:2 * n + 2]
        assert [o.ok for o in pair].count(True) == 1, pair
        loser = next(o for o in pair if not o.ok)
        assert isinstance(loser.error, RedemptionNotReserved)
        assert next(o for o in pair if o.ok).value == redemption_id
    rows = world.redemptions([r for r, _ in reserved])
    assert {r.status for r in rows.values()} == {"fulfilled"}
    assert world.balance(world.shop.merchant_account).posted == 70
    for who in people:
        assert (world.balance(who.account).posted, world.balance(who.account).pending) == (0, 0)
    for row in rows.values():
        assert world.hold(row.hold_id).status == "posted"
    assert world.stock(item_id) == 10
    world.check_books()


def test_cancel_racing_confirm_has_one_winner_and_the_ledger_agrees(world, racing):
    item_id = world.item(price=4, stock=30)
    people = world.volunteers(12, points=4)
    reserved = [(who, *world.reserve(who, item_id)) for who in people]

    jobs = []
    for who, redemption_id, code in reserved:
        jobs.append(lambda s, who=who, rid=redemption_id: redemptions.cancel(
            s, who.id, rid).status)
        jobs.append(lambda s, code=code: redemptions.confirm(
            s, world.shop.merchant_id, code, confirmed_by=1).status)
    outcomes = race(racing, jobs)

    rows = world.redemptions([rid for _, rid, _ in reserved])
    fulfilled = 0
    for n, (who, redemption_id, _code) in enumerate(reserved):
        cancelled, confirmed = outcomes[2 * n:2 * n + 2]
        assert cancelled.ok != confirmed.ok, (cancelled, confirmed)
        loser = confirmed if cancelled.ok else cancelled
        assert isinstance(loser.error, RedemptionNotReserved)
        row = rows[redemption_id]
        held = world.balance(who.account)
        hold = world.hold(row.hold_id)
        assert held.pending == 0
        if confirmed.ok:
            fulfilled += 1
            assert row.status == "fulfilled" and hold.status == "posted"
            assert held.posted == 0  # the points went to the merchant
        else:
            assert row.status == "cancelled" and hold.status == "voided"
            assert held.posted == 4  # the points came back
    assert world.balance(world.shop.merchant_account).posted == 4 * fulfilled
    assert world.stock(item_id) == 30 - fulfilled
    world.check_books()


def test_two_expiry_runs_at_once_expire_each_redemption_once(world, racing):
    item_id = world.item(price=3, stock=100)
    people = world.volunteers(8, points=30)
    long_ago = utcnow() - timedelta(days=8)  # reserved 8 days ago, held for 7: all due
    mine = {world.reserve(who, item_id, now=long_ago)[0] for who in people for _ in range(8)}
    assert world.stock(item_id) == 100 - 64

    def sweep(session):
        # A runner like the command: batches of 5, each committed, until nothing is left.
        swept = []
        while True:
            batch = ledger.run_in_transaction(
                session, lambda s: redemptions.expire_due(s, limit=5))
            swept.extend(batch)
            if not batch:
                return swept

    outcomes = race(racing, [sweep, sweep])

    assert all(o.ok for o in outcomes), outcomes
    first, second = (set(o.value) & mine for o in outcomes)
    assert not first & second  # no redemption expired by both
    assert first | second == mine
    assert sum(len(o.value) for o in outcomes) == len(set().union(*(o.value for o in outcomes)))
    rows = world.redemptions(mine)
    assert {r.status for r in rows.values()} == {"expired"}
    for row in rows.values():
        hold = world.hold(row.hold_id)
        assert (hold.status, hold.resolution_key) == (
            "voided", f"redemption:{row.id}:expired")
    assert world.stock(item_id) == 100  # each unit returned exactly once
    for who in people:
        assert (world.balance(who.account).posted, world.balance(who.account).pending) == (30, 0)
    world.check_books()


def test_the_expiry_command_run_twice_at_once(world, racing, engine):
    item_id = world.item(price=2, stock=50)
    people = world.volunteers(5, points=20)
    long_ago = utcnow() - timedelta(days=8)
    mine = {world.reserve(who, item_id, now=long_ago)[0] for who in people for _ in range(6)}

    env = {**os.environ, "DATABASE_URL": engine.url.render_as_string(hide_password=False),
           "SECRET_KEY": "test-secret"}
    flask = [sys.executable, "-m", "flask", "--app", "pointsmall", "redemptions", "expire",
             "--batch", "4"]
    runs = [subprocess.Popen(flask, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True) for _ in range(2)]
    results = [run.communicate(timeout=120) + (run.returncode,) for run in runs]

    assert [code for _out, _err, code in results] == [0, 0], results
    counts = [int(out.split()[1]) for out, _err, _code in results]
    assert sum(counts) >= len(mine)  # others' due ones may be swept too, but none twice
    rows = world.redemptions(mine)
    assert {r.status for r in rows.values()} == {"expired"}
    assert world.stock(item_id) == 50
    for who in people:
        assert world.balance(who.account).pending == 0
    world.check_books()


@pytest.mark.parametrize(("stock", "one_clock"), [(1, False), (None, False), (None, True)],
                         ids=["last-unit", "unlimited-own-clocks", "unlimited-one-clock"])
def test_twenty_retries_with_one_idempotency_key_make_one_redemption(world, racing, stock,
                                                                     one_clock):
    # Points for exactly one (and, for a stocked item, one unit left): a twin must answer,
    # not be refused. An item without stock or monthly limit is reserved without a
    # savepoint: a twin must be found by its key whether ledger.hold refuses ours (another
    # expiry: own clocks) or answers with the twin's hold (the same request to the
    # microsecond: one clock).
    item_id = world.item(price=9, stock=stock)
    (who,) = world.volunteers(1, points=9)
    at = {"now": datetime(2026, 12, 3, 8, 0)} if one_clock else {}

    outcomes = race(racing, [
        lambda s: redemptions.reserve(s, who, item_id, 1, key="tap-once", **at).id
        for _ in range(20)])

    assert errors_of(outcomes) == Counter()
    assert len({o.value for o in outcomes}) == 1
    with racing() as s:
        assert s.scalar(sa.select(sa.func.count(Redemption.id))
                        .where(Redemption.volunteer_id == who.id)) == 1
        account = ledger.get_account(s, who.account)
        assert s.scalar(sa.select(sa.func.count(ledger.Hold.id))
                        .where(ledger.Hold.account_id == account.id)) == 1
    held = world.balance(who.account)
    assert (held.posted, held.pending) == (9, 9)
    assert world.stock(item_id) == (0 if stock else None)
    world.check_books()


def test_twenty_retries_with_one_key_and_room_for_many_still_make_one(world, racing):
    item_id = world.item(price=2, stock=50)
    (who,) = world.volunteers(1, points=100)

    outcomes = race(racing, [
        lambda s: redemptions.reserve(s, who, item_id, 2, key="tap-twice").id
        for _ in range(20)])

    assert errors_of(outcomes) == Counter()
    assert len({o.value for o in outcomes}) == 1
    held = world.balance(who.account)
    assert (held.posted, held.pending) == (100, 4)
    assert world.stock(item_id) == 48
    world.check_books()


def test_the_ledger_hold_sweeper_racing_the_redemption_expiry(world, racing):
    # `flask ledger expire-holds` and `flask redemptions expire` may both run every minute.
    item_id = world.item(price=3, stock=100)
    people = world.volunteers(6, points=30)
    long_ago = utcnow() - timedelta(days=8)
    mine = {world.reserve(who, item_id, now=long_ago)[0] for who in people for _ in range(8)}

    def expire_redemptions(session):
        swept = []
        while batch := ledger.run_in_transaction(
                session, lambda s: redemptions.expire_due(s, limit=4)):
            swept.extend(batch)
        return swept

    def expire_holds(session):
        swept = []
        while batch := ledger.run_in_transaction(
                session, lambda s: ledger.expire_holds(s, limit=4)):
            swept.extend(batch)
        return swept

    outcomes = race(racing, [expire_redemptions, expire_holds, expire_redemptions,
                             expire_holds])

    assert all(o.ok for o in outcomes), [o.error for o in outcomes]
    rows = world.redemptions(mine)
    assert {r.status for r in rows.values()} == {"expired"}
    for row in rows.values():
        # Whoever came first released the hold, once.
        assert world.hold(row.hold_id).status in ("voided", "expired")
    assert world.stock(item_id) == 100
    for who in people:
        assert (world.balance(who.account).posted, world.balance(who.account).pending) == (30, 0)
    world.check_books()


def test_the_expiry_command_racing_new_reservations_never_deadlocks(world, racing):
    # Expiry releases hold -> balance -> item; a reservation locks balance -> item. Taken one
    # redemption after another those orders cross; taken kind by kind they cannot.
    first, second = world.item(price=2, stock=50), world.item(price=2, stock=50)
    people = world.volunteers(6, points=40)
    long_ago = utcnow() - timedelta(days=8)
    deadlocks = []

    def spot(context):  # run_in_transaction would retry one silently: count them instead
        if getattr(context.original_exception, "sqlstate", None) == "40P01":
            deadlocks.append(context.original_exception)

    sa.event.listen(racing.kw["bind"], "handle_error", spot)
    for _ in range(3):
        for n, who in enumerate(people):
            world.reserve(who, first if n % 2 else second, now=long_ago)
        jobs = [lambda s: redemptions.expire_due(s, limit=100)]
        for n, who in enumerate(people):
            item = second if n % 2 else first

            def reserve(s, who=who, item=item):
                return redemptions.reserve(s, who, item, 1, key=uuid.uuid4().hex).id

            jobs.append(reserve)
        outcomes = race(racing, jobs)
        assert all(o.ok for o in outcomes), [o.error for o in outcomes]
    assert deadlocks == []
    world.check_books()


def test_refusals_leave_nothing_even_for_callers_that_commit_after_them(world, racing):
    # Items without stock or a monthly limit are reserved without a savepoint: every
    # refusal must come before the first write. Here every racer catches its refusal and
    # commits anyway; afterwards each hold belongs to a redemption, the pending is exactly
    # what live redemptions hold, and no unit or monthly slot was given twice.
    unlimited = world.item(price=9, stock=None)
    stocked = world.item(price=2, stock=1)
    with racing() as s:
        limited = items.create_item(s, world.shop.merchant_id, {
            "name": f"限购{world.tag}", "price": 1, "stock": None, "monthly_limit": 1,
            "category": "food"}).id
        s.commit()
    (who,) = world.volunteers(1, points=20)

    def job(item_id: int, key: str) -> Callable[[so.Session], object]:
        def run(s: so.Session) -> object:
            try:
                return redemptions.reserve(s, who, item_id, 1, key=key).id
            except (MarketError, ledger.LedgerError) as refusal:
                return refusal  # and run_in_transaction commits
        return run

    jobs = ([job(unlimited, f"u-{n}") for n in range(8)]
            + [job(unlimited, "same") for _ in range(6)]
            + [job(stocked, f"s-{n}") for n in range(6)]
            + [job(limited, f"l-{n}") for n in range(6)])
    outcomes = race(racing, jobs)

    assert all(o.ok for o in outcomes), [o.error for o in outcomes if not o.ok][:3]
    refusals = Counter(type(o.value).__name__ for o in outcomes if not isinstance(o.value, int))
    assert set(refusals) <= {"InsufficientFunds", "OutOfStock", "OverPersonalLimit"}, refusals
    with racing() as s:
        account = ledger.get_account(s, who.account)
        rows = s.scalars(sa.select(Redemption).where(Redemption.volunteer_id == who.id)).all()
        holds = s.scalars(sa.select(ledger.Hold).where(
            ledger.Hold.account_id == account.id)).all()
        assert sorted(r.hold_id for r in rows) == sorted(h.id for h in holds)
        assert {o.value for o in outcomes if isinstance(o.value, int)} == {r.id for r in rows}
        per_item = Counter(r.item_id for r in rows)
        assert per_item[stocked] <= 1 and per_item[limited] <= 1
        assert sum(1 for r in rows if r.idempotency_key.endswith(":same")) <= 1
    held = world.balance(who.account)
    assert held.posted == 20
    assert held.pending == sum(r.points for r in rows) <= 20
    world.check_books()

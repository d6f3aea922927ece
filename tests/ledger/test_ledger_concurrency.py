"""Concurrent writers on PostgreSQL: real threads, each with its own committing session.

Every test starts its threads together on a barrier, runs each unit of work through
`ledger.run_in_transaction` (which retries deadlocks and serialization failures), checks
the outcome exactly, and then runs `verify` over the whole database of the run.
"""

import random
import threading
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
import sqlalchemy.orm as so
from sqlalchemy.exc import DBAPIError

import ledger
from ledger.models import Balance, Hold, Posting, Transaction

JOIN_TIMEOUT = 60


@dataclass
class Outcome:
    value: Any = None
    error: BaseException | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


def run_together(count: int, work: Callable[[int], Any]) -> list[Outcome]:
    """Run work(0) .. work(count - 1) on as many threads released at once; collect outcomes."""
    barrier = threading.Barrier(count)
    outcomes = [Outcome() for _ in range(count)]

    def target(index: int) -> None:
        try:
            barrier.wait(timeout=JOIN_TIMEOUT)
            outcomes[index].value = work(index)
        except BaseException as error:  # noqa: BLE001 - every outcome is inspected
            outcomes[index].error = error

    threads = [threading.Thread(target=target, args=(i,), daemon=True) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(JOIN_TIMEOUT)
    assert not any(t.is_alive() for t in threads), "a thread hung (deadlock?)"
    return outcomes


def no_database_errors(outcomes: list[Outcome]) -> None:
    """No deadlock, serialization failure or other database error reached a caller."""
    raw = [o.error for o in outcomes if isinstance(o.error, DBAPIError)]
    assert not raw, raw[:3]
    other = [o.error for o in outcomes
             if o.error is not None and not isinstance(o.error, ledger.LedgerError)]
    assert not other, other[:3]


def unit(committed: so.sessionmaker, work: Callable[[so.Session], Any]) -> Any:
    """Run one unit of work in a fresh committing session, as a request handler would."""
    with committed() as session:
        return ledger.run_in_transaction(session, work)


def uid() -> str:
    return uuid.uuid4().hex[:12]


def assert_verified(committed: so.sessionmaker) -> None:
    with committed() as session:
        report = ledger.verify(session)
    assert report.ok, [str(v) for v in report.violations]


def amounts(committed: so.sessionmaker, address: str) -> tuple[int, int]:
    with committed() as session:
        b = ledger.balance(session, address)
    return b.posted, b.pending


@pytest.fixture
def deadlocks(engine) -> Iterator[list[str]]:
    """Deadlocks the database reported to any connection during the test.

    The ledger takes its row locks in one order, so there should be none at all: a
    deadlock would be retried, but it costs a second of PostgreSQL's deadlock_timeout.
    """
    seen: list[str] = []

    def record(context) -> None:
        orig = getattr(context.original_exception, "sqlstate", None)
        if orig == "40P01":
            seen.append(str(context.original_exception).splitlines()[0])

    sa.event.listen(engine, "handle_error", record)
    try:
        yield seen
    finally:
        sa.event.remove(engine, "handle_error", record)


@pytest.fixture
def accounts(committed):
    """Open accounts (and fund them from a per-test issuance account) in committed rows."""
    issuance = f"community:{uid()}:issuance"

    def build(*funding: int, allow_negative: bool = False, stripes: int = 1) -> list[str]:
        addresses = [f"volunteer:{uid()}:points" for _ in funding]

        def work(s: so.Session) -> None:
            ledger.open_account(s, issuance, "POINTS", allow_negative=True, stripes=4)
            for address, points in zip(addresses, funding, strict=True):
                ledger.open_account(s, address, "POINTS", allow_negative=allow_negative,
                                    stripes=stripes)
                if points:
                    ledger.move(s, issuance, address, points, key=f"fund:{address}",
                                kind="award")

        unit(committed, work)
        return addresses

    return build


def test_fifty_spenders_on_an_account_funded_for_ten_spends(committed, accounts, deadlocks):
    volunteer, merchant = accounts(70, 0)
    done = threading.Event()
    seen: list[int] = []

    def watch() -> None:
        # Read the balance over and over while the spenders run: it is never below zero.
        with committed() as session:
            while not done.is_set():
                b = ledger.balance(session, volunteer)
                seen.append(b.available)
                session.rollback()

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        outcomes = run_together(50, lambda i: unit(committed, lambda s: ledger.move(
            s, volunteer, merchant, 7, key=f"spend:{volunteer}:{i}", kind="redeem").id))
    finally:
        done.set()
        watcher.join(JOIN_TIMEOUT)

    no_database_errors(outcomes)
    assert not deadlocks, deadlocks
    won = [o for o in outcomes if o.ok]
    refused = [o for o in outcomes if isinstance(o.error, ledger.InsufficientFunds)]
    assert (len(won), len(refused)) == (10, 40)
    assert len({o.value for o in won}) == 10
    assert amounts(committed, volunteer) == (0, 0)
    assert amounts(committed, merchant) == (70, 0)
    assert seen and min(seen) >= 0
    with committed() as session:
        account = ledger.get_account(session, volunteer)
        afters = session.scalars(
            sa.select(Posting.balance_after).where(Posting.account_id == account.id)).all()
    assert len(afters) == 11 and min(afters) == 0
    assert_verified(committed)


def test_twenty_threads_posting_and_voiding_one_hold_resolve_it_once(committed, accounts,
                                                                     deadlocks):
    volunteer, merchant = accounts(100, 0)
    held = unit(committed, lambda s: ledger.hold(
        s, volunteer, merchant, 30, key=f"hold:{volunteer}", kind="redeem").id)

    def work(i: int):
        if i % 2:
            return unit(committed, lambda s: ("posted", ledger.post_hold(
                s, held, key=f"post:{held}:{i}").id))
        return unit(committed, lambda s: ("voided", ledger.void_hold(
            s, held, key=f"void:{held}:{i}").id))

    outcomes = run_together(20, work)

    no_database_errors(outcomes)
    assert not deadlocks, deadlocks
    won = [o.value for o in outcomes if o.ok]
    assert len(won) == 1, won
    losers = [o.error for o in outcomes if not o.ok]
    assert len(losers) == 19 and all(isinstance(e, ledger.HoldNotOpen) for e in losers)
    status = won[0][0]
    expected_error = {"posted": ledger.HoldAlreadyPosted, "voided": ledger.HoldAlreadyVoided}
    assert all(type(e) is expected_error[status] for e in losers)
    with committed() as session:
        row = ledger.get_hold(session, held)
        assert row.status == status
        if status == "posted":
            assert row.transaction_id == won[0][1]
    if status == "posted":
        assert amounts(committed, volunteer) == (70, 0)
        assert amounts(committed, merchant) == (30, 0)
    else:
        assert amounts(committed, volunteer) == (100, 0)
        assert amounts(committed, merchant) == (0, 0)
    assert_verified(committed)


@pytest.mark.parametrize("operation", ["move", "hold", "post_hold", "void_hold", "reverse"])
def test_twenty_threads_with_one_key_write_once(committed, accounts, operation):
    volunteer, merchant = accounts(100, 0)
    key = f"{operation}:{uid()}"
    if operation in ("post_hold", "void_hold"):
        target = unit(committed, lambda s: ledger.hold(
            s, volunteer, merchant, 30, key=f"hold:{volunteer}", kind="redeem").id)
    elif operation == "reverse":
        target = unit(committed, lambda s: ledger.move(
            s, volunteer, merchant, 30, key=f"spend:{volunteer}", kind="redeem").id)

    def request(s: so.Session) -> int:
        if operation == "move":
            return ledger.move(s, volunteer, merchant, 30, key=key, kind="redeem").id
        if operation == "hold":
            return ledger.hold(s, volunteer, merchant, 30, key=key, kind="redeem").id
        if operation == "post_hold":
            return ledger.post_hold(s, target, key=key).id
        if operation == "void_hold":
            return ledger.void_hold(s, target, key=key).id
        return ledger.reverse(s, target, key=key).id

    outcomes = run_together(20, lambda i: unit(committed, request))

    no_database_errors(outcomes)
    assert all(o.ok for o in outcomes), [o.error for o in outcomes if not o.ok][:3]
    assert len({o.value for o in outcomes}) == 1
    expected = {
        "move": (70, 0), "hold": (100, 30), "post_hold": (70, 0), "void_hold": (100, 0),
        "reverse": (100, 0),
    }[operation]
    assert amounts(committed, volunteer) == expected
    with committed() as session:
        if operation in ("hold", "void_hold"):
            column = Hold.idempotency_key if operation == "hold" else Hold.resolution_key
            rows = session.scalars(sa.select(Hold.id).where(column == key)).all()
        else:
            rows = session.scalars(
                sa.select(Transaction.id).where(Transaction.idempotency_key == key)).all()
    assert rows == [outcomes[0].value]
    assert_verified(committed)


def test_one_key_with_two_different_requests_at_once_writes_one_of_them(committed, accounts):
    volunteer, merchant = accounts(100, 0)
    key = f"move:{uid()}"

    outcomes = run_together(20, lambda i: unit(committed, lambda s: ledger.move(
        s, volunteer, merchant, 5 + i % 2, key=key, kind="redeem").id))

    no_database_errors(outcomes)
    won = [o for o in outcomes if o.ok]
    conflicts = [o for o in outcomes if isinstance(o.error, ledger.IdempotencyConflict)]
    assert len(won) + len(conflicts) == 20 and won and conflicts
    assert len({o.value for o in won}) == 1
    with committed() as session:
        tx = session.scalar(sa.select(Transaction).where(Transaction.idempotency_key == key))
        moved = -sum(p.amount for p in tx.postings if p.amount < 0)
    # Everyone who got an answer got the one transaction; the losers asked for the other sum.
    assert moved in (5, 6)
    assert len(won) == 10
    assert amounts(committed, volunteer) == (100 - moved, 0)
    assert_verified(committed)


def test_transfers_both_ways_at_once_neither_deadlock_nor_lose_points(committed, accounts,
                                                                      deadlocks):
    a, b, c = accounts(5000, 5000, 5000)
    rounds, workers = 12, 12

    def work(i: int) -> Counter:
        rng = random.Random(i)
        moved: Counter = Counter()
        for r in range(rounds):
            x, y = rng.randint(1, 20), rng.randint(1, 20)
            if (i + r) % 3 == 0:
                # Three legs in a shuffled order: the locks are still taken in one order.
                legs = [ledger.Leg(a, -(x + y)), ledger.Leg(b, x), ledger.Leg(c, y)]
                rng.shuffle(legs)
                unit(committed, lambda s, legs=legs, r=r: ledger.transfer(
                    s, legs, key=f"three:{a}:{i}:{r}", kind="transfer"))
                moved[a] -= x + y
                moved[b] += x
                moved[c] += y
            else:
                src, dst = (a, b) if (i + r) % 2 else (b, a)
                unit(committed, lambda s, src=src, dst=dst, x=x, r=r: ledger.move(
                    s, src, dst, x, key=f"swap:{a}:{i}:{r}", kind="transfer"))
                moved[src] -= x
                moved[dst] += x
        return moved

    outcomes = run_together(workers, work)

    no_database_errors(outcomes)
    assert not deadlocks, deadlocks
    assert all(o.ok for o in outcomes), [o.error for o in outcomes if not o.ok][:3]
    total: Counter = Counter()
    for o in outcomes:
        total.update(o.value)
    for address in (a, b, c):
        assert amounts(committed, address) == (5000 + total[address], 0)
    with committed() as session:
        count = session.scalar(sa.select(sa.func.count(Transaction.id)).where(
            sa.or_(Transaction.idempotency_key.like(f"swap:{a}:%"),
                   Transaction.idempotency_key.like(f"three:{a}:%"))))
    assert count == rounds * workers
    assert_verified(committed)


def test_awards_from_one_striped_issuance_account_all_succeed(committed, deadlocks):
    issuance = f"community:{uid()}:issuance"
    volunteers = [f"volunteer:{uid()}:points" for _ in range(40)]

    def setup(s: so.Session) -> None:
        ledger.open_account(s, issuance, "POINTS", allow_negative=True, stripes=8)
        for address in volunteers:
            ledger.open_account(s, address, "POINTS")

    unit(committed, setup)
    workers, per_worker = 16, 8

    def work(i: int) -> Counter:
        awarded: Counter = Counter()
        for n in range(per_worker):
            volunteer = volunteers[(i * per_worker + n) % len(volunteers)]
            points = 1 + (i + n) % 9
            unit(committed, lambda s, v=volunteer, p=points, n=n: ledger.move(
                s, issuance, v, p, key=f"award:{issuance}:{i}:{n}", kind="award"))
            awarded[volunteer] += points
        return awarded

    outcomes = run_together(workers, work)

    no_database_errors(outcomes)
    assert not deadlocks, deadlocks
    assert all(o.ok for o in outcomes), [o.error for o in outcomes if not o.ok][:3]
    total: Counter = Counter()
    for o in outcomes:
        total.update(o.value)
    for volunteer in volunteers:
        assert amounts(committed, volunteer) == (total[volunteer], 0)
    grand = sum(total.values())
    assert amounts(committed, issuance) == (-grand, 0)
    with committed() as session:
        account = ledger.get_account(session, issuance)
        stripes = session.execute(
            sa.select(Balance.stripe, Balance.posted, Balance.seq)
            .where(Balance.account_id == account.id)).all()
    assert len(stripes) == 8
    assert sum(seq for _, _, seq in stripes) == workers * per_worker
    assert sum(posted for _, posted, _ in stripes) == -grand
    assert sum(1 for _, _, seq in stripes if seq) > 1  # the awards spread over the stripes
    assert_verified(committed)


def test_two_sweepers_at_once_expire_every_hold_exactly_once(committed, accounts, deadlocks):
    # A moment no other test's committed holds are likely to share.
    start = datetime(1990, 1, 1, 8, 0)
    volunteers = accounts(*[100] * 20)
    merchant, = accounts(0)
    per_volunteer = 10

    def setup(s: so.Session) -> list[int]:
        ids = []
        # Round robin, so that neighbouring hold ids sit on different balance rows.
        for n in range(per_volunteer):
            for v in volunteers:
                ids.append(ledger.hold(
                    s, v, merchant, 1 + n, key=f"hold:{v}:{n}", kind="redeem",
                    expires_at=start + timedelta(minutes=1 + n % 3), now=start).id)
        return ids

    ours = set(unit(committed, setup))
    for v in volunteers:
        assert amounts(committed, v) == (100, sum(1 + n for n in range(per_volunteer)))
    later = start + timedelta(minutes=5)

    def sweep(i: int) -> list[int]:
        # Small batches, each its own transaction, so the two sweepers interleave.
        released: list[int] = []
        while batch := unit(committed, lambda s: ledger.expire_holds(s, now=later, limit=25)):
            released += batch
        return released

    outcomes = run_together(2, sweep)

    no_database_errors(outcomes)
    assert not deadlocks, deadlocks
    assert all(o.ok for o in outcomes), [o.error for o in outcomes if not o.ok]
    first, second = (set(o.value) & ours for o in outcomes)
    assert not first & second, "a hold was released twice"
    assert first | second == ours
    assert sum(len(o.value) for o in outcomes) == len(set().union(*(o.value for o in outcomes)))

    for v in volunteers:
        assert amounts(committed, v) == (100, 0)
    with committed() as session:
        statuses = Counter(session.scalars(
            sa.select(Hold.status).where(Hold.id.in_(ours))).all())
        assert statuses == Counter({"expired": len(ours)})
        # Sweeping again finds nothing of ours.
        assert not set(ledger.expire_holds(session, now=later)) & ours
        session.rollback()
    assert_verified(committed)


def queue_behind(committed, first: tuple[str, Callable[[so.Session], object]],
                 second: tuple[str, Callable[[so.Session], object]]) -> dict:
    """Run `first` and keep its transaction (and the locks it took) open half a second
    while `second` starts and queues behind it. Return both answers by name: what each
    returned, or the ledger's refusal of the second."""
    (first_name, first_write), (second_name, second_write) = first, second
    locked, answers = threading.Event(), {}

    def run_first():
        with committed() as s:
            written = first_write(s)
            locked.set()
            # Hold the lock while the second queues behind it: until it waits on a lock
            # (on a busy machine it may take a while to get there), then a little more.
            with committed() as watch:
                for _ in range(100):
                    if watch.scalar(sa.text(
                            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type ="
                            " 'Lock' AND datname = current_database()")):
                        break
                    threading.Event().wait(0.05)
            threading.Event().wait(0.2)
            s.commit()
            answers[first_name] = written

    def run_second():
        locked.wait(5)
        try:
            with committed() as s:
                answers[second_name] = second_write(s)
                s.commit()
        except ledger.LedgerError as error:
            answers[second_name] = error

    threads = [threading.Thread(target=run_first), threading.Thread(target=run_second)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(15)
    return answers


def funded_pair(committed, *, held: int = 0) -> str:
    """Open `twin:<tag>:a`, funded with 50 (`held` of them held for `twin:<tag>:b`, under
    the key `held-<tag>`), and `twin:<tag>:b`; return the tag."""
    tag = uuid.uuid4().hex[:8]
    with committed() as s:
        ledger.open_account(s, f"twin:{tag}:issuance", "POINTS", allow_negative=True)
        ledger.open_account(s, f"twin:{tag}:a", "POINTS")
        ledger.open_account(s, f"twin:{tag}:b", "POINTS")
        ledger.move(s, f"twin:{tag}:issuance", f"twin:{tag}:a", 50, key=f"fund-{tag}",
                    kind="award")
        if held:
            ledger.hold(s, f"twin:{tag}:a", f"twin:{tag}:b", held, key=f"held-{tag}",
                        kind="redemption")
        s.commit()
    return tag


def race_twins(committed, write: Callable[[so.Session, str], int]) -> tuple[dict, str]:
    """Fund `twin:<tag>:a` with 50, then run `write` twice with one key: the first holds the
    balance lock a while, its twin queues behind it. Return both answers (an id or the
    ledger's refusal) and the tag."""
    tag = funded_pair(committed)
    answers = queue_behind(committed, ("first", lambda s: write(s, tag)),
                           ("twin", lambda s: write(s, tag)))
    return answers, tag


def test_a_twin_of_a_transfer_that_spent_everything_gets_its_result_not_insufficient_funds(
        committed):
    """T1 spends the whole balance with key K; T2, the same request with K, waits on the
    balance lock and must then answer T1's transaction, not 'not enough points'."""
    answers, tag = race_twins(committed, lambda s, tag: ledger.move(
        s, f"twin:{tag}:a", f"twin:{tag}:b", 50, key=f"spend-{tag}", kind="redemption").id)
    assert answers["twin"] == answers["first"]
    with committed() as s:
        assert ledger.balance(s, f"twin:{tag}:b").posted == 50


def test_a_twin_of_a_transfer_that_left_points_meets_it_on_the_key_and_writes_nothing(
        committed):
    """T1 moves 20 of 50 with key K; T2, the same request with K, waits on the balance lock,
    then finds points enough for itself, and must meet T1 on the key (the insert's ON
    CONFLICT), not write a second transaction."""
    answers, tag = race_twins(committed, lambda s, tag: ledger.move(
        s, f"twin:{tag}:a", f"twin:{tag}:b", 20, key=f"spend-{tag}", kind="redemption").id)
    assert answers["twin"] == answers["first"]
    with committed() as s:
        assert ledger.balance(s, f"twin:{tag}:a").posted == 30
        assert ledger.balance(s, f"twin:{tag}:b").posted == 20
        assert s.scalar(sa.select(sa.func.count(ledger.Transaction.id)).where(
            ledger.Transaction.idempotency_key == f"spend-{tag}")) == 1
        assert ledger.verify(s).ok


def test_a_transfer_that_waited_on_a_balance_lock_writes_from_the_committed_figures(
        committed):
    """T1 moves 30 of 50 and holds the lock; T2 (another key) moves 15 and waits: it must
    chain onto T1's posting and leave 5, not write from the figures it first read."""
    keys = iter(["first", "second"])
    answers, tag = race_twins(committed, lambda s, tag: ledger.move(
        s, f"twin:{tag}:a", f"twin:{tag}:b", 30 if (k := next(keys)) == "first" else 15,
        key=f"{k}-{tag}", kind="redemption").id)
    assert answers["twin"] != answers["first"]
    with committed() as s:
        assert ledger.balance(s, f"twin:{tag}:a").posted == 5
        after = s.scalars(sa.select(ledger.Posting.balance_after)
                          .join(ledger.Account, ledger.Account.id == ledger.Posting.account_id)
                          .where(ledger.Account.address == f"twin:{tag}:a")
                          .order_by(ledger.Posting.seq)).all()
        assert after == [50, 20, 5]
        assert ledger.verify(s).ok


def test_two_reversals_of_one_transaction_at_once_write_one_and_name_it_to_the_other(
        committed):
    """R1 reverses the funding of `a` (50) and holds the lock; R2, under another key, waits:
    it must be told the transaction is already reversed, not that `a` lacks the points."""
    keys = iter(["first", "second"])

    def reverse_funding(s, tag):
        funding = s.scalar(sa.select(ledger.Transaction.id).where(
            ledger.Transaction.idempotency_key == f"fund-{tag}"))
        return ledger.reverse(s, funding, key=f"{next(keys)}-{tag}").id

    answers, tag = race_twins(committed, reverse_funding)
    assert isinstance(answers["twin"], ledger.AlreadyReversed)
    assert answers["twin"].details["reversal_id"] == answers["first"]
    with committed() as s:
        assert ledger.balance(s, f"twin:{tag}:a").posted == 0
        assert ledger.verify(s).ok


def test_a_twin_of_a_hold_that_reserved_everything_gets_its_hold_not_insufficient_funds(
        committed):
    """H1 holds the whole balance with key K; H2, the same request with K, waits on the
    balance lock and must then answer H1's hold, not 'not enough points'."""
    answers, tag = race_twins(committed, lambda s, tag: ledger.hold(
        s, f"twin:{tag}:a", f"twin:{tag}:b", 50, key=f"hold-{tag}", kind="redemption").id)
    assert answers["twin"] == answers["first"]
    assert amounts(committed, f"twin:{tag}:a") == (50, 50)


def race_two_holds(committed, first: int, second: int) -> tuple[dict, str]:
    """As race_twins, with two holds of other keys from `twin:<tag>:a` (funded with 50):
    `first` points keep the balance lock while `second` points queue behind them."""
    keys = iter([("first", first), ("second", second)])

    def hold(s, tag):
        name, amount = next(keys)
        return ledger.hold(s, f"twin:{tag}:a", f"twin:{tag}:b", amount,
                           key=f"{name}-{tag}", kind="redemption").id

    return race_twins(committed, hold)


def test_a_hold_that_waited_on_a_balance_lock_adds_to_the_committed_pending(committed):
    """H1 holds 30 of 50 and keeps the lock; H2 (another key) holds 15 and waits. PostgreSQL
    does H2 in one statement (lock, check, insert, add pending): the pending it adds to and
    the available it checks must be H1's committed figures, not the statement's snapshot."""
    answers, tag = race_two_holds(committed, 30, 15)
    assert isinstance(answers["twin"], int) and answers["twin"] != answers["first"]
    assert amounts(committed, f"twin:{tag}:a") == (50, 45)
    assert_verified(committed)


def test_a_hold_that_waited_and_then_lacks_the_points_is_refused_and_writes_nothing(
        committed):
    """H1 holds 30 of 50; H2 (another key) asks for 25 while waiting on the lock: it sees the
    20 left once H1 commits, is refused, and leaves neither a hold nor any pending."""
    answers, tag = race_two_holds(committed, 30, 25)
    assert isinstance(answers["twin"], ledger.InsufficientFunds)
    assert answers["twin"].details["available"] == 20
    assert amounts(committed, f"twin:{tag}:a") == (50, 30)
    with committed() as s:
        assert s.scalars(sa.select(Hold.idempotency_key).where(
            Hold.idempotency_key.like(f"%-{tag}"))).all() == [f"first-{tag}"]


def test_a_post_that_waited_on_a_balance_lock_writes_from_the_committed_figures(committed):
    """A hold of 20 of 50 is open; a transfer of 30 from the same account holds its balance
    lock while the hold is posted. The post (hold, then both ends, in one statement) waits
    for the balance and must chain onto the transfer's posting: 50, 20, 0."""
    tag = uid()
    a, b = f"twin:{tag}:a", f"twin:{tag}:b"
    with committed() as s:
        ledger.open_account(s, f"twin:{tag}:issuance", "POINTS", allow_negative=True)
        ledger.open_account(s, a, "POINTS")
        ledger.open_account(s, b, "POINTS")
        ledger.move(s, f"twin:{tag}:issuance", a, 50, key=f"fund-{tag}", kind="award")
        held = ledger.hold(s, a, b, 20, key=f"hold-{tag}", kind="redemption").id
        s.commit()
    answers = queue_behind(
        committed,
        ("transfer", lambda s: ledger.move(s, a, b, 30, key=f"move-{tag}", kind="transfer").id),
        ("post", lambda s: ledger.post_hold(s, held, key=f"post-{tag}").id))
    assert isinstance(answers["post"], int), answers
    assert amounts(committed, a) == (0, 0)
    assert amounts(committed, b) == (50, 0)
    with committed() as s:
        after = s.scalars(sa.select(Posting.balance_after)
                          .join(ledger.Account, ledger.Account.id == Posting.account_id)
                          .where(ledger.Account.address == a).order_by(Posting.seq)).all()
        assert after == [50, 20, 0]
        assert ledger.get_hold(s, held).status == "posted"
    assert_verified(committed)


def test_posts_of_holds_both_ways_at_once_lock_their_ends_in_one_order(committed, accounts,
                                                                      deadlocks):
    """Posting a hold locks the hold and then both ends in one statement (a lateral
    subquery, ORDER BY b.id): x->y and y->x posts at once must neither deadlock nor lose
    a point, whichever end is the source."""
    x, y = accounts(1000, 1000)
    per_side = 15

    def make_holds(s: so.Session) -> list[int]:
        return [ledger.hold(s, src, dst, 10, key=f"both-ways:{src}:{n}", kind="redeem").id
                for n in range(per_side) for src, dst in ((x, y), (y, x))]

    holds = unit(committed, make_holds)

    outcomes = run_together(len(holds), lambda i: unit(committed, lambda s: ledger.post_hold(
        s, holds[i], key=f"both-ways:post:{holds[i]}").id))

    no_database_errors(outcomes)
    assert not deadlocks, deadlocks
    assert all(o.ok for o in outcomes), [o.error for o in outcomes if not o.ok][:3]
    assert len({o.value for o in outcomes}) == len(holds)
    assert amounts(committed, x) == (1000, 0)
    assert amounts(committed, y) == (1000, 0)
    with committed() as session:
        statuses = Counter(session.scalars(
            sa.select(Hold.status).where(Hold.id.in_(holds))).all())
    assert statuses == Counter({"posted": len(holds)})
    assert_verified(committed)


@pytest.mark.parametrize("write", ["transfer", "hold"])
def test_a_write_that_waited_on_a_release_spends_the_points_it_gave_back(committed, write):
    """A hold of 30 of 50 is being voided and keeps the balance lock; a transfer (or a hold)
    of 40 waits on it. Once the void commits the 40 fit (50 available), and the one statement
    that checks and writes must write them from the released figures: not fail the CHECK
    constraint on a row that mixes the new posted amount with the old pending one."""
    tag = funded_pair(committed, held=30)
    with committed() as s:
        hold_id = ledger.find_hold(s, f"held-{tag}").id
    second = {
        "transfer": lambda s: ledger.move(s, f"twin:{tag}:a", f"twin:{tag}:b", 40,
                                          key=f"spend-{tag}", kind="redemption").id,
        "hold": lambda s: ledger.hold(s, f"twin:{tag}:a", f"twin:{tag}:b", 40,
                                      key=f"spend-{tag}", kind="redemption").id,
    }[write]
    answers = queue_behind(
        committed, ("void", lambda s: ledger.void_hold(s, hold_id, key=f"void-{tag}").id),
        ("spend", second))
    assert isinstance(answers["spend"], int), answers
    assert amounts(committed, f"twin:{tag}:a") == ((10, 0) if write == "transfer" else (50, 40))
    assert_verified(committed)

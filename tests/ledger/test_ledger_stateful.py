"""A hypothesis state machine drives the ledger through random sequences of writes.

Transfers (some between accounts that may go negative, one of them striped), holds, full and
partial posts, voids, expiries on a fake clock, reversals, replayed idempotency keys and
requests that must be refused, each checked against a plain in-memory model after every
step; `verify` must be clean at the end of every run. Every run happens inside one
rolled-back transaction.
"""

import os
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
import sqlalchemy.orm as so
from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

import ledger
from ledger.models import Hold

# Accounts of the machine: three that may not go negative (funded at the start), one that
# may, and a striped one that may (the issuance account the others are funded from).
FLOORED = ("a", "b", "c")
NEGATIVE = ("n", "s")
NAMES = FLOORED + NEGATIVE
STRIPED = {"s": 4}
FUNDING = 100
# A time no other test's holds are likely to use, so expire_holds touches only ours.
START = datetime(2001, 1, 1, 9, 0)

# A few seconds in CI; LEDGER_STATEFUL_EXAMPLES=2000 for a long hunt.
EXAMPLES = int(os.environ.get("LEDGER_STATEFUL_EXAMPLES", "50"))

names = st.sampled_from(NAMES)
amounts = st.integers(min_value=1, max_value=80)


@dataclass
class ModelAccount:
    floored: bool
    posted: int = 0
    pending: int = 0

    @property
    def available(self) -> int:
        return self.posted - self.pending


@dataclass
class ModelHold:
    id: int
    source: str
    destination: str
    amount: int
    expires_at: datetime | None
    status: str = "open"


@dataclass
class ModelTransaction:
    id: int
    legs: list[tuple[str, int]]
    is_reversal: bool = False
    reversed: bool = False


@dataclass
class Done:
    """A request that succeeded: how to send it again, and what it answered."""

    op: str
    key: str
    # Keys live in three stores: transactions (transfers, posts, reversals), holds, and the
    # hold resolutions (posts and voids).
    namespace: str
    send: Callable[[datetime], Any]
    result_id: int
    extra: dict = field(default_factory=dict)


NOT_OPEN = {
    "posted": ledger.HoldAlreadyPosted,
    "voided": ledger.HoldAlreadyVoided,
    "expired": ledger.HoldExpired,
}


def make_machine(engine: sa.Engine) -> type[RuleBasedStateMachine]:
    class LedgerMachine(RuleBasedStateMachine):
        def __init__(self):
            super().__init__()
            self.connection = engine.connect()
            self.outer = self.connection.begin()
            self.session = so.Session(bind=self.connection,
                                      join_transaction_mode="create_savepoint")
            self.run_id = uuid.uuid4().hex[:12]
            self.counter = 0
            self.now = START
            self.address = {name: f"stateful:{self.run_id}:{name}" for name in NAMES}
            self.accounts = {name: ModelAccount(floored=name in FLOORED) for name in NAMES}
            self.holds: list[ModelHold] = []
            self.txs: list[ModelTransaction] = []
            self.done: list[Done] = []
            for name in NAMES:
                ledger.open_account(self.session, self.address[name], "POINTS",
                                    allow_negative=name in NEGATIVE,
                                    stripes=STRIPED.get(name, 1))
            self.merit = f"stateful:{self.run_id}:merit"
            ledger.open_account(self.session, self.merit, "MERIT")
            for name in FLOORED:
                self._move("s", name, FUNDING, key=self.fresh_key())

        def teardown(self):
            try:
                self.check_histories()
                report = ledger.verify(self.session)
                assert report.ok, [str(v) for v in report.violations]
            finally:
                self.session.close()
                if self.outer.is_active:
                    self.outer.rollback()
                self.connection.close()

        def check_histories(self) -> None:
            """Each account's history, read in pages, adds up to its balance row by row."""
            for name, model in self.accounts.items():
                entries, cursor = [], None
                while True:
                    page = ledger.history(self.session, self.address[name], limit=7,
                                          before=cursor)
                    entries += page.entries
                    if page.next_cursor is None:
                        break
                    cursor = page.next_cursor
                expected_after = model.posted
                for entry in entries:
                    assert entry.balance_after == expected_after, name
                    expected_after -= entry.amount
                assert expected_after == 0, name
                ids = [e.posting_id for e in entries]
                assert ids == sorted(ids, reverse=True)

        # -- helpers -------------------------------------------------------------------

        def fresh_key(self) -> str:
            self.counter += 1
            return f"stateful:{self.run_id}:{self.counter}"

        def _move(self, src: str, dst: str, amount: int, *, key: str) -> ledger.Transaction:
            """Send a transfer the model says must succeed, and record it."""
            addr = self.address

            def send(now: datetime) -> ledger.Transaction:
                return ledger.move(self.session, addr[src], addr[dst], amount, key=key,
                                   kind="transfer", now=now)

            tx = send(self.now)
            self.apply([(src, -amount), (dst, amount)])
            self.txs.append(ModelTransaction(tx.id, [(src, -amount), (dst, amount)]))
            self.done.append(Done("move", key, "tx", send, tx.id))
            return tx

        def apply(self, legs: list[tuple[str, int]]) -> None:
            for name, amount in legs:
                self.accounts[name].posted += amount

        def refused_by_floor(self, legs: list[tuple[str, int]]) -> bool:
            return any(
                self.accounts[name].floored and self.accounts[name].available + amount < 0
                for name, amount in legs
            )

        def draw_hold(self, data: st.DataObject) -> ModelHold:
            """Pick a hold, mostly an open one (resolved ones test the refusals)."""
            still_open = [h for h in self.holds if h.status == "open"]
            if still_open and data.draw(st.integers(0, 3), label="any?") < 3:
                return data.draw(st.sampled_from(still_open), label="hold")
            return data.draw(st.sampled_from(self.holds), label="hold")

        def draw_done(self, data: st.DataObject) -> Done:
            """Pick an earlier successful request, first choosing what kind of request."""
            ops = sorted({d.op for d in self.done})
            op = data.draw(st.sampled_from(ops), label="op")
            return data.draw(st.sampled_from([d for d in self.done if d.op == op]),
                             label="earlier")

        # -- transfers -----------------------------------------------------------------

        @rule(src=names, dst=names, amount=amounts)
        def move(self, src, dst, amount):
            key = self.fresh_key()
            legs = [(src, -amount), (dst, amount)]
            if src == dst:
                with pytest.raises(ledger.InvalidTransaction):
                    ledger.move(self.session, self.address[src], self.address[dst], amount,
                                key=key, kind="transfer", now=self.now)
            elif self.refused_by_floor(legs):
                with pytest.raises(ledger.InsufficientFunds):
                    ledger.move(self.session, self.address[src], self.address[dst], amount,
                                key=key, kind="transfer", now=self.now)
            else:
                self._move(src, dst, amount, key=key)
                event("move ok")

        @rule(src=names, first=names, second=names, x=amounts, y=amounts)
        def split(self, src, first, second, x, y):
            """One debit, two credits in a single transaction."""
            if len({src, first, second}) < 3:
                return
            key = self.fresh_key()
            legs = [(src, -(x + y)), (first, x), (second, y)]
            addr = self.address

            def send(now: datetime) -> ledger.Transaction:
                return ledger.transfer(
                    self.session, [ledger.Leg(addr[n], amt) for n, amt in legs], key=key,
                    kind="split", meta={"parts": 2}, now=now)

            if self.refused_by_floor(legs):
                with pytest.raises(ledger.InsufficientFunds):
                    send(self.now)
                return
            tx = send(self.now)
            event("split ok")
            self.apply(legs)
            self.txs.append(ModelTransaction(tx.id, legs))
            self.done.append(Done("split", key, "tx", send, tx.id))

        # -- holds ---------------------------------------------------------------------

        @rule(src=names, dst=names, amount=amounts,
              ttl=st.none() | st.integers(min_value=10, max_value=480))
        def hold(self, src, dst, amount, ttl):
            key = self.fresh_key()
            expires_at = None if ttl is None else self.now + timedelta(minutes=ttl)
            addr = self.address

            def send(now: datetime) -> Hold:
                return ledger.hold(self.session, addr[src], addr[dst], amount, key=key,
                                   kind="redeem", expires_at=expires_at, now=now)

            if src == dst:
                with pytest.raises(ledger.InvalidTransaction):
                    send(self.now)
                return
            account = self.accounts[src]
            if account.floored and account.available < amount:
                with pytest.raises(ledger.InsufficientFunds):
                    send(self.now)
                return
            row = send(self.now)
            event("hold ok")
            account.pending += amount
            self.holds.append(ModelHold(row.id, src, dst, amount, expires_at))
            self.done.append(Done("hold", key, "hold", send, row.id))

        @precondition(lambda self: self.holds)
        @rule(data=st.data(), partial=st.booleans())
        def post(self, data, partial):
            held = self.draw_hold(data)
            # A partial post, now and then more than the hold reserves.
            amount = data.draw(st.integers(1, held.amount) | st.just(held.amount + 1),
                               label="amount") if partial else None
            key = self.fresh_key()

            def send(now: datetime) -> ledger.Transaction:
                return ledger.post_hold(self.session, held.id, key=key, amount=amount, now=now)

            if held.status != "open":
                event(f"post refused: {held.status}")
                with pytest.raises(NOT_OPEN[held.status]):
                    send(self.now)
                return
            if held.expires_at is not None and held.expires_at <= self.now:
                event("post refused: past its deadline")
                with pytest.raises(ledger.HoldExpired):
                    send(self.now)
                return
            if amount is not None and amount > held.amount:
                event("post refused: too much")
                with pytest.raises(ledger.HoldAmountExceeded):
                    send(self.now)
                return
            tx = send(self.now)
            event("post ok, partial" if partial else "post ok, full")
            posted = held.amount if amount is None else amount
            self.accounts[held.source].pending -= held.amount
            legs = [(held.source, -posted), (held.destination, posted)]
            self.apply(legs)
            held.status = "posted"
            self.txs.append(ModelTransaction(tx.id, legs))
            self.done.append(Done("post", key, "tx", send, tx.id, {"hold_id": held.id}))
            assert tx.meta["hold_id"] == held.id

        @precondition(lambda self: self.holds)
        @rule(data=st.data())
        def void(self, data):
            held = self.draw_hold(data)
            key = self.fresh_key()

            def send(now: datetime) -> Hold:
                return ledger.void_hold(self.session, held.id, key=key, now=now)

            if held.status != "open":
                with pytest.raises(NOT_OPEN[held.status]):
                    send(self.now)
                return
            # A hold past its deadline but not yet swept may still be voided.
            row = send(self.now)
            event("void ok")
            assert row.id == held.id and row.status == "voided"
            self.accounts[held.source].pending -= held.amount
            held.status = "voided"
            self.done.append(Done("void", key, "resolution", send, row.id))

        @rule(minutes=st.integers(min_value=0, max_value=120), sweep=st.booleans())
        def tick(self, minutes, sweep):
            """Let time pass, then maybe sweep the holds past their deadline."""
            self.now += timedelta(minutes=minutes)
            if sweep:
                self.expire()

        def expire(self) -> None:
            released = set(ledger.expire_holds(self.session, now=self.now))
            due = {h.id for h in self.holds
                   if h.status == "open" and h.expires_at is not None
                   and h.expires_at <= self.now}
            ours = {h.id for h in self.holds}
            assert released & ours == due
            event(f"expired {min(len(due), 3)}{'+' if len(due) >= 3 else ''} holds")
            for held in self.holds:
                if held.id in due:
                    held.status = "expired"
                    self.accounts[held.source].pending -= held.amount
            # A second sweep at the same moment finds nothing of ours.
            assert not set(ledger.expire_holds(self.session, now=self.now)) & ours

        # -- reversals -----------------------------------------------------------------

        @precondition(lambda self: self.txs)
        @rule(data=st.data())
        def reverse(self, data):
            original = data.draw(st.sampled_from(self.txs), label="transaction")
            key = self.fresh_key()

            def send(now: datetime) -> ledger.Transaction:
                return ledger.reverse(self.session, original.id, key=key, memo="undo", now=now)

            if original.is_reversal:
                with pytest.raises(ledger.CannotReverseReversal):
                    send(self.now)
                return
            if original.reversed:
                with pytest.raises(ledger.AlreadyReversed):
                    send(self.now)
                return
            legs = [(name, -amount) for name, amount in original.legs]
            if self.refused_by_floor(legs):
                with pytest.raises(ledger.InsufficientFunds):
                    send(self.now)
                return
            tx = send(self.now)
            event("reverse ok")
            assert tx.reverses_id == original.id
            self.apply(legs)
            original.reversed = True
            self.txs.append(ModelTransaction(tx.id, legs, is_reversal=True))
            self.done.append(Done("reverse", key, "tx", send, tx.id))

        # -- idempotency ---------------------------------------------------------------

        @precondition(lambda self: self.done)
        @rule(data=st.data(), same=st.booleans(), probe=st.integers(min_value=0, max_value=2))
        def replay(self, data, same, probe):
            """Send an earlier key again, with the same request or with another one."""
            earlier = self.draw_done(data)
            if same:
                self.replay_same_request(earlier)
            else:
                self.replay_other_request(earlier, probe)

        def replay_same_request(self, earlier: Done) -> None:
            """The same key with the same request answers the first result and writes nothing."""
            event(f"replay {earlier.op}")
            again = earlier.send(self.now)
            assert again.id == earlier.result_id

        def replay_other_request(self, earlier: Done, probe: int) -> None:
            """The same key with another request is a conflict, and writes nothing."""
            event(f"conflict {earlier.op}")
            key, addr, s, now = earlier.key, self.address, self.session, self.now
            some_hold = self.holds[probe % len(self.holds)].id if self.holds else 10**12
            probes: dict[str, list[Callable[[], Any]]] = {
                "hold": [
                    lambda: ledger.hold(s, addr["a"], addr["b"], 1, key=key, kind="probe",
                                        now=now),
                ],
                # A key that posted, moved or reversed cannot do anything else.
                "tx": [
                    lambda: ledger.move(s, addr["a"], addr["b"], 1, key=key, kind="probe",
                                        now=now),
                    lambda: ledger.post_hold(s, some_hold, key=key, memo="probe", now=now),
                    lambda: ledger.reverse(s, self.txs[0].id, key=key, memo="probe", now=now),
                ],
                # A key that voided a hold can neither void another one nor post one.
                "resolution": [
                    lambda: ledger.void_hold(s, earlier.result_id + 10**9, key=key, now=now),
                    lambda: ledger.post_hold(s, some_hold, key=key, now=now),
                ],
            }
            candidates = probes[earlier.namespace]
            with pytest.raises(ledger.IdempotencyConflict):
                candidates[probe % len(candidates)]()

        # -- refusals ------------------------------------------------------------------

        @rule(which=st.integers(min_value=0, max_value=9),
              bad=st.sampled_from([0, -5, 1.5, True, "10", ledger.MAX_AMOUNT + 1]))
        def refuse(self, which, bad):
            """Malformed requests are refused with their own error and leave the key free."""
            addr, s, key = self.address, self.session, self.fresh_key()
            nobody = f"stateful:{self.run_id}:nobody"
            cases = [
                (ledger.InvalidAmount,
                 lambda: ledger.move(s, addr["s"], addr["a"], bad, key=key, kind="t",
                                     now=self.now)),
                (ledger.InvalidAmount,
                 lambda: ledger.hold(s, addr["s"], addr["a"], bad, key=key, kind="t",
                                     now=self.now)),
                (ledger.UnknownAccount,
                 lambda: ledger.move(s, addr["a"], nobody, 1, key=key, kind="t", now=self.now)),
                (ledger.UnbalancedTransaction,
                 lambda: ledger.transfer(s, [ledger.Leg(addr["s"], -5), ledger.Leg(addr["a"], 4)],
                                         key=key, kind="t", now=self.now)),
                (ledger.UnbalancedTransaction,  # POINTS out, MERIT in
                 lambda: ledger.move(s, addr["s"], self.merit, 1, key=key, kind="t",
                                     now=self.now)),
                (ledger.AssetMismatch,
                 lambda: ledger.hold(s, addr["s"], self.merit, 1, key=key, kind="t",
                                     now=self.now)),
                (ledger.InvalidTransaction,  # a hold that has already expired
                 lambda: ledger.hold(s, addr["s"], addr["a"], 1, key=key, kind="t",
                                     expires_at=self.now, now=self.now)),
                (ledger.UnknownHold,
                 lambda: ledger.post_hold(s, 10**12, key=key, now=self.now)),
                (ledger.UnknownHold, lambda: ledger.void_hold(s, 10**12, key=key)),
                (ledger.UnknownTransaction,
                 lambda: ledger.reverse(s, 10**12, key=key, now=self.now)),
            ]
            error, call = cases[which]
            with pytest.raises(error):
                call()
            # A refused request wrote nothing, so its key is still free.
            self._move("s", "n", 1, key=key)

        # -- the model, after every step -------------------------------------------------

        @invariant()
        def matches_model(self):
            got = ledger.balances(self.session, list(self.address.values()))
            for name, model in self.accounts.items():
                actual = got[self.address[name]]
                assert (actual.posted, actual.pending, actual.available) == (
                    model.posted, model.pending, model.available), name
                if model.floored:
                    assert actual.available >= 0
            if self.holds:
                statuses = dict(self.session.execute(
                    sa.select(Hold.id, Hold.status)
                    .where(Hold.id.in_([h.id for h in self.holds]))
                ).all())
                assert statuses == {h.id: h.status for h in self.holds}

        @invariant()
        def points_are_conserved(self):
            assert sum(a.posted for a in self.accounts.values()) == 0

    return LedgerMachine


def test_random_sequences_of_ledger_writes_match_the_model(engine):
    machine = make_machine(engine)
    run_state_machine_as_test(machine, settings=settings(
        max_examples=EXAMPLES, stateful_step_count=30, deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    ))

"""Many transfers at once: all or none, once per key, the same result as one by one."""

import uuid

import pytest
import sqlalchemy as sa

import ledger
from ledger import Leg, TransferRequest


def key():
    return f"test:{uuid.uuid4().hex}"


@pytest.fixture
def accounts(session, make_account):
    issuance = ledger.open_account(session, f"issuance:{uuid.uuid4().hex[:8]}", "POINTS",
                                   allow_negative=True, stripes=4).address
    people = [make_account(points=10) for _ in range(30)]
    return issuance, people


def counts(session):
    return (session.scalar(sa.select(sa.func.count(ledger.Transaction.id))),
            session.scalar(sa.select(sa.func.count(ledger.Posting.id))))


def test_a_batch_posts_every_transfer_and_verify_stays_clean(session, accounts):
    issuance, people = accounts
    requests = [TransferRequest([Leg(issuance, -n - 1), Leg(who, n + 1)], key(), "award")
                for n, who in enumerate(people)]
    before = counts(session)
    done = ledger.transfer_many(session, requests)
    assert [tx.idempotency_key for tx in done] == [r.key for r in requests]
    assert counts(session) == (before[0] + 30, before[1] + 60)
    assert [ledger.balance(session, who).posted for who in people] == [
        10 + n + 1 for n in range(30)]
    assert ledger.verify(session).ok


def test_a_repeated_batch_returns_the_first_results_and_writes_nothing(session, accounts):
    issuance, people = accounts
    requests = [TransferRequest([Leg(issuance, -5), Leg(who, 5)], key(), "award")
                for who in people[:5]]
    first = ledger.transfer_many(session, requests)
    before = counts(session)
    again = ledger.transfer_many(session, requests)
    assert [tx.id for tx in again] == [tx.id for tx in first]
    assert counts(session) == before
    assert ledger.balance(session, people[0]).posted == 15


def test_one_overdraft_refuses_the_whole_batch(session, accounts):
    issuance, people = accounts
    requests = [TransferRequest([Leg(issuance, -5), Leg(people[0], 5)], key(), "award"),
                TransferRequest([Leg(people[1], -11), Leg(people[2], 11)], key(), "gift")]
    before = counts(session)
    with pytest.raises(ledger.InsufficientFunds):
        ledger.transfer_many(session, requests)
    assert counts(session) == before
    assert ledger.balance(session, people[0]).posted == 10
    assert ledger.verify(session).ok


def test_a_batch_that_overdraws_on_the_way_is_refused_even_if_it_ends_in_credit(
        session, accounts):
    # Each transfer of a batch is checked as it comes, as one by one: a later award does
    # not pay for an earlier overdraft.
    issuance, people = accounts
    requests = [TransferRequest([Leg(people[1], -11), Leg(people[2], 11)], key(), "gift"),
                TransferRequest([Leg(issuance, -5), Leg(people[1], 5)], key(), "award")]
    before = counts(session)
    with pytest.raises(ledger.InsufficientFunds) as refused:
        ledger.transfer_many(session, requests)
    assert (refused.value.address, refused.value.needed, refused.value.available) == (
        people[1], 11, 10)
    assert counts(session) == before
    assert [ledger.balance(session, who).posted for who in people[:3]] == [10, 10, 10]
    assert ledger.verify(session).ok


def test_an_unknown_account_refuses_the_whole_batch(session, accounts):
    issuance, people = accounts
    requests = [TransferRequest([Leg(issuance, -5), Leg(people[0], 5)], key(), "award"),
                TransferRequest([Leg(issuance, -5), Leg("volunteer:nobody:points", 5)], key(),
                                "award")]
    before = counts(session)
    with pytest.raises(ledger.UnknownAccount):
        ledger.transfer_many(session, requests)
    assert counts(session) == before


def test_balances_the_session_holds_are_fresh_after_a_batch(session, accounts):
    issuance, people = accounts
    held = session.scalar(sa.select(ledger.Balance).join(
        ledger.Account, ledger.Account.id == ledger.Balance.account_id)
        .where(ledger.Account.address == people[3]))
    assert held.posted == 10
    ledger.transfer_many(session, [TransferRequest([Leg(issuance, -7), Leg(people[3], 7)],
                                                   key(), "award")])
    assert held.posted == 17


def test_an_aware_time_is_kept_as_naive_utc(session, accounts):
    from datetime import datetime, timedelta, timezone

    issuance, people = accounts
    shanghai = timezone(timedelta(hours=8))
    done = ledger.transfer_many(session, [TransferRequest(
        [Leg(issuance, -1), Leg(people[0], 1)], key(), "award")],
        now=datetime(2026, 4, 1, 0, 30, tzinfo=shanghai))
    assert done[0].created_at == datetime(2026, 3, 31, 16, 30)
    session.expire_all()
    stored = session.get(ledger.Transaction, done[0].id)
    assert stored.created_at == datetime(2026, 3, 31, 16, 30)
    assert ledger.verify(session).ok

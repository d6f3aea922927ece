"""Daily flows: every write adds its scoped postings to the local day's sums, in one go."""

import uuid
from datetime import date, datetime

import pytest
import sqlalchemy as sa

import ledger
from ledger import Leg, TransferRequest, flows


def key():
    return f"test:{uuid.uuid4().hex}"


@pytest.fixture
def scope():
    return f"community:t{uuid.uuid4().hex[:8]}"


@pytest.fixture
def people(session, scope):
    """An issuance account (no scope), two scoped volunteers and a scoped merchant till."""
    issuance = ledger.open_account(session, f"issuance:{uuid.uuid4().hex[:8]}", "POINTS",
                                   allow_negative=True, stripes=4).address
    ann = ledger.open_account(session, f"volunteer:{uuid.uuid4().hex[:8]}:points", "POINTS",
                              scope=scope).address
    bob = ledger.open_account(session, f"volunteer:{uuid.uuid4().hex[:8]}:points", "POINTS",
                              scope=scope).address
    till_scope = f"merchant:t{uuid.uuid4().hex[:8]}"
    till = ledger.open_account(session, f"merchant:{uuid.uuid4().hex[:8]}:points", "POINTS",
                               allow_negative=True, scope=till_scope).address
    return {"issuance": issuance, "ann": ann, "bob": bob, "till": till,
            "till_scope": till_scope}


def by_day(session, scope):
    return {(f.day, f.kind): (f.credits, f.debits, f.postings)
            for f in flows.daily(session, [scope])}


def test_a_transfer_adds_its_scoped_postings_to_the_local_day(session, people, scope):
    # 15:59 UTC is 23:59 in Shanghai; 16:00 UTC is the next local day.
    ledger.move(session, people["issuance"], people["ann"], 30, key=key(), kind="award",
                now=datetime(2026, 3, 31, 15, 59, 59))
    ledger.move(session, people["issuance"], people["bob"], 5, key=key(), kind="award",
                now=datetime(2026, 3, 31, 16, 0, 0))
    ledger.move(session, people["ann"], people["bob"], 7, key=key(), kind="gift",
                now=datetime(2026, 3, 31, 16, 0, 1))
    assert by_day(session, scope) == {
        (date(2026, 3, 31), "award"): (30, 0, 1),
        (date(2026, 4, 1), "award"): (5, 0, 1),
        # Both sides are in the scope: in and out on the same day.
        (date(2026, 4, 1), "gift"): (7, 7, 2),
    }
    assert ledger.verify(session).ok


def test_a_retried_key_adds_nothing_twice(session, people, scope):
    k = key()
    for _ in range(3):
        ledger.move(session, people["issuance"], people["ann"], 9, key=k, kind="award",
                    now=datetime(2026, 5, 2, 3, 0))
    assert by_day(session, scope) == {(date(2026, 5, 2), "award"): (9, 0, 1)}


def test_a_refused_transfer_adds_nothing(session, people, scope):
    ledger.move(session, people["issuance"], people["ann"], 10, key=key(), kind="award",
                now=datetime(2026, 5, 2, 3, 0))
    with pytest.raises(ledger.InsufficientFunds):
        ledger.move(session, people["ann"], people["till"], 11, key=key(), kind="redemption",
                    now=datetime(2026, 5, 2, 4, 0))
    assert by_day(session, scope) == {(date(2026, 5, 2), "award"): (10, 0, 1)}
    assert flows.daily(session, [people["till_scope"]]) == []


def test_holds_count_when_posted_and_reversals_under_their_own_kind(session, people, scope):
    ledger.move(session, people["issuance"], people["ann"], 100, key=key(), kind="award",
                now=datetime(2026, 6, 1, 2, 0))
    posted = ledger.hold(session, people["ann"], people["till"], 40, key=key(),
                         kind="redemption", now=datetime(2026, 6, 1, 3, 0))
    voided = ledger.hold(session, people["ann"], people["till"], 25, key=key(),
                         kind="redemption", now=datetime(2026, 6, 1, 3, 0))
    tx = ledger.post_hold(session, posted.id, key=key(), now=datetime(2026, 6, 2, 3, 0))
    ledger.void_hold(session, voided.id, key=key(), now=datetime(2026, 6, 2, 3, 0))
    ledger.reverse(session, tx.id, key=key(), kind="refund", now=datetime(2026, 6, 3, 3, 0))
    assert by_day(session, scope) == {
        (date(2026, 6, 1), "award"): (100, 0, 1),
        # A hold moves nothing until it posts; a voided one never does.
        (date(2026, 6, 2), "redemption"): (0, 40, 1),
        (date(2026, 6, 3), "refund"): (40, 0, 1),
    }
    assert by_day(session, people["till_scope"]) == {
        (date(2026, 6, 2), "redemption"): (40, 0, 1),
        (date(2026, 6, 3), "refund"): (0, 40, 1),
    }
    assert ledger.verify(session).ok


def test_a_batch_adds_its_postings_like_one_by_one_transfers(session, people, scope):
    requests = [TransferRequest([Leg(people["issuance"], -n), Leg(who, n)], key(), "award")
                for n, who in ((3, people["ann"]), (4, people["bob"]), (5, people["ann"]))]
    ledger.transfer_many(session, requests, now=datetime(2026, 7, 1, 1, 0))
    assert by_day(session, scope) == {(date(2026, 7, 1), "award"): (12, 0, 3)}
    assert ledger.verify(session).ok


def test_periods_sum_the_days_of_each_period(session, people, scope):
    for day, amount in ((date(2026, 1, 31), 1), (date(2026, 2, 1), 10), (date(2026, 2, 28), 100),
                        (date(2026, 3, 1), 1000)):
        # Noon local time is 04:00 UTC.
        ledger.move(session, people["issuance"], people["ann"], amount, key=key(), kind="award",
                    now=datetime(day.year, day.month, day.day, 4, 0))
    sums = flows.periods(session, [scope], [date(2026, 2, 1), date(2026, 3, 1),
                                            date(2026, 4, 1)])
    assert sums == {
        (scope, "POINTS", "award", -1): (1, 0),
        (scope, "POINTS", "award", 0): (110, 0),
        (scope, "POINTS", "award", 1): (1000, 0),
    }


def test_rebuild_recomputes_what_the_writes_kept(session, people, scope):
    for hour in range(0, 48, 5):
        ledger.move(session, people["issuance"], people["ann"], hour + 1, key=key(),
                    kind="award", now=datetime(2026, 8, 1 + hour // 24, hour % 24, 30))
    kept = by_day(session, scope)
    flows.rebuild(session)
    assert by_day(session, scope) == kept
    assert ledger.verify(session).ok


def test_verify_names_a_flow_that_disagrees_with_the_postings(session, people, scope):
    ledger.move(session, people["issuance"], people["ann"], 30, key=key(), kind="award",
                now=datetime(2026, 9, 1, 4, 0))
    session.execute(sa.update(ledger.Flow).where(ledger.Flow.scope == scope)
                    .values(credits=ledger.Flow.credits + 1))
    report = ledger.verify(session)
    assert [v.check for v in report.violations] == ["flows"]
    assert scope in report.violations[0].detail
    assert "+31" in report.violations[0].detail


def test_the_zone_decides_the_day(session, people, scope):
    try:
        flows.set_zone("UTC")
        ledger.move(session, people["issuance"], people["ann"], 2, key=key(), kind="award",
                    now=datetime(2026, 3, 31, 20, 0))
    finally:
        flows.set_zone("Asia/Shanghai")
    assert by_day(session, scope) == {(date(2026, 3, 31), "award"): (2, 0, 1)}


def test_a_scope_is_checked_and_kept_on_reopening(session, scope):
    address = f"volunteer:{uuid.uuid4().hex[:8]}:points"
    ledger.open_account(session, address, "POINTS", scope=scope)
    assert ledger.open_account(session, address, "POINTS", scope=scope).scope == scope
    with pytest.raises(ledger.AccountConflict):
        ledger.open_account(session, address, "POINTS", scope="community:other")
    with pytest.raises(ledger.InvalidTransaction):
        ledger.open_account(session, f"x:{uuid.uuid4().hex}", "POINTS", scope="x" * 61)

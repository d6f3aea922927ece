"""Transfers, moves and reversals: every rule, and every refusal writing nothing."""

import uuid
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest
import sqlalchemy as sa

import ledger
from ledger import Leg


def ledger_state(session):
    """Return what a refusal must leave untouched: row counts and every cached amount."""
    session.expire_all()
    return (
        session.scalar(sa.select(sa.func.count(ledger.Transaction.id))),
        session.scalar(sa.select(sa.func.count(ledger.Posting.id))),
        session.scalar(sa.select(sa.func.count(ledger.Hold.id))),
        session.execute(
            sa.select(ledger.Balance.id, ledger.Balance.posted, ledger.Balance.pending,
                      ledger.Balance.seq, ledger.Balance.head_hash)
            .order_by(ledger.Balance.id)
        ).all(),
    )


def postings_count(session):
    return session.scalar(sa.select(sa.func.count(ledger.Posting.id)))


def available(session, address):
    return ledger.balance(session, address).available


def key():
    return f"test:{uuid.uuid4().hex}"


def fresh(name):
    """An address of a community of its own (committed data of other tests never clashes)."""
    return f"community:{uuid.uuid4().hex[:8]}:{name}"


def assert_still_usable(session, make_account):
    """The caller's session answers queries and accepts the next write after a refusal."""
    payer, payee = make_account(points=5), make_account()
    ledger.move(session, payer, payee, 5, key=key(), kind="transfer")
    assert available(session, payee) == 5
    assert ledger.verify(session).ok


@pytest.fixture
def pair(make_account):
    """A volunteer with 100 points and a merchant with none."""
    return make_account(points=100), make_account("merchant:" + uuid.uuid4().hex[:8])


def test_a_move_takes_points_from_one_account_and_gives_them_to_the_other(session, pair):
    volunteer, merchant = pair
    tx = ledger.move(session, volunteer, merchant, 30, key=key(), kind="redemption",
                     memo="爱心超市 大米", meta={"redemption_id": 7})

    assert available(session, volunteer) == 70
    assert available(session, merchant) == 30
    assert sorted(p.amount for p in tx.postings) == [-30, 30]
    assert (tx.kind, tx.memo, tx.meta) == ("redemption", "爱心超市 大米", {"redemption_id": 7})
    assert ledger.verify(session).ok


BAD_AMOUNTS = [
    pytest.param(0, id="zero"),
    pytest.param(-5, id="negative"),
    pytest.param(1.0, id="float"),
    pytest.param(2.5, id="fraction"),
    pytest.param(Decimal("5"), id="decimal"),
    pytest.param("5", id="text"),
    pytest.param(True, id="bool"),
    pytest.param(None, id="none"),
    pytest.param(ledger.MAX_AMOUNT + 1, id="absurdly-large"),
    pytest.param(10**30, id="beyond-64-bits"),
]


@pytest.mark.parametrize("amount", BAD_AMOUNTS)
def test_a_move_of_a_bad_amount_is_refused_and_writes_nothing(session, make_account, pair,
                                                               amount):
    volunteer, merchant = pair
    before = ledger_state(session)

    with pytest.raises(ledger.InvalidAmount):
        ledger.move(session, volunteer, merchant, amount, key=key(), kind="transfer")

    assert ledger_state(session) == before
    assert available(session, volunteer) == 100
    assert_still_usable(session, make_account)


@pytest.mark.parametrize("amount", [p for p in BAD_AMOUNTS if p.id != "negative"])
def test_a_transfer_leg_of_a_bad_amount_is_refused_and_writes_nothing(session, make_account,
                                                                       pair, amount):
    volunteer, merchant = pair
    before = ledger_state(session)

    with pytest.raises(ledger.InvalidAmount):
        ledger.transfer(session, [Leg(volunteer, amount), Leg(merchant, amount)],
                        key=key(), kind="transfer")

    assert ledger_state(session) == before
    assert_still_usable(session, make_account)


def test_a_move_of_exactly_the_maximum_amount_is_allowed(session, make_account):
    issuance = make_account("community:big:issuance", allow_negative=True)
    volunteer = make_account()

    ledger.move(session, issuance, volunteer, ledger.MAX_AMOUNT, key=key(), kind="award")

    assert available(session, volunteer) == ledger.MAX_AMOUNT
    assert available(session, issuance) == -ledger.MAX_AMOUNT


def test_the_invalid_amount_error_names_the_amount_and_the_reason(session, pair):
    volunteer, merchant = pair
    with pytest.raises(ledger.InvalidAmount) as refused:
        ledger.move(session, volunteer, merchant, 2.5, key=key(), kind="transfer")
    assert refused.value.details == {"amount": "2.5", "reason": "amounts are whole numbers"}


@pytest.mark.parametrize("side", ["source", "destination"])
def test_a_move_involving_an_unknown_account_is_refused_and_writes_nothing(
        session, make_account, pair, side):
    volunteer, _ = pair
    ghost = "volunteer:does-not-exist:points"
    source, destination = (ghost, volunteer) if side == "source" else (volunteer, ghost)
    before = ledger_state(session)

    with pytest.raises(ledger.UnknownAccount) as refused:
        ledger.move(session, source, destination, 10, key=key(), kind="transfer")

    assert refused.value.address == ghost
    assert ledger_state(session) == before
    assert_still_usable(session, make_account)


def test_a_move_between_accounts_of_different_assets_is_refused_and_writes_nothing(
        session, make_account):
    points = make_account(points=50)
    merit = make_account(asset="MERIT")
    before = ledger_state(session)

    with pytest.raises(ledger.UnbalancedTransaction) as refused:
        ledger.move(session, points, merit, 10, key=key(), kind="transfer")

    assert refused.value.details["asset"] in ("MERIT", "POINTS")
    assert ledger_state(session) == before
    assert available(session, points) == 50
    assert_still_usable(session, make_account)


def test_a_transfer_naming_an_asset_refuses_an_account_of_another_asset(session, make_account):
    points = make_account(points=50)
    merit_a, merit_b = make_account(asset="MERIT", points=50), make_account(asset="MERIT")
    before = ledger_state(session)

    with pytest.raises(ledger.AssetMismatch) as refused:
        ledger.move(session, merit_a, merit_b, 10, key=key(), kind="transfer", asset="POINTS")
    assert refused.value.details == {"address": merit_a, "account_asset": "MERIT",
                                     "asset": "POINTS"}
    with pytest.raises(ledger.AssetMismatch):
        ledger.transfer(session, [Leg(points, -10), Leg(merit_b, 10)], key=key(),
                        kind="transfer", asset="POINTS")

    assert ledger_state(session) == before
    assert_still_usable(session, make_account)


def test_a_points_leg_balanced_by_a_merit_leg_is_unbalanced_and_writes_nothing(
        session, make_account):
    points = make_account(points=50)
    points_sink = make_account()
    merit = make_account(asset="MERIT")
    before = ledger_state(session)

    with pytest.raises(ledger.UnbalancedTransaction) as refused:
        ledger.transfer(session, [Leg(points, -10), Leg(points_sink, 5), Leg(merit, 5)],
                        key=key(), kind="transfer")

    assert refused.value.details in ({"asset": "MERIT", "total": 5},
                                     {"asset": "POINTS", "total": -5})
    assert ledger_state(session) == before
    assert_still_usable(session, make_account)


def test_postings_that_do_not_sum_to_zero_are_refused_and_write_nothing(session, make_account,
                                                                        pair):
    volunteer, merchant = pair
    before = ledger_state(session)

    with pytest.raises(ledger.UnbalancedTransaction) as refused:
        ledger.transfer(session, [Leg(volunteer, -10), Leg(merchant, 9)], key=key(),
                        kind="transfer")

    assert refused.value.details == {"asset": "POINTS", "total": -1}
    assert ledger_state(session) == before
    assert available(session, volunteer) == 100
    assert_still_usable(session, make_account)


@pytest.mark.parametrize("legs", [[], "one"], ids=["no-legs", "one-leg"])
def test_a_transaction_of_fewer_than_two_postings_is_refused(session, make_account, pair, legs):
    volunteer, _ = pair
    legs = [Leg(volunteer, 10)] if legs == "one" else legs
    before = ledger_state(session)

    with pytest.raises(ledger.InvalidTransaction):
        ledger.transfer(session, legs, key=key(), kind="transfer")

    assert ledger_state(session) == before
    assert_still_usable(session, make_account)


def test_an_account_named_twice_in_one_transaction_is_refused(session, make_account, pair):
    volunteer, merchant = pair
    before = ledger_state(session)

    with pytest.raises(ledger.InvalidTransaction):
        ledger.transfer(session, [Leg(volunteer, -10), Leg(volunteer, 10)], key=key(),
                        kind="transfer")
    with pytest.raises(ledger.InvalidTransaction):
        ledger.move(session, volunteer, volunteer, 10, key=key(), kind="transfer")
    with pytest.raises(ledger.InvalidTransaction):
        ledger.transfer(session, [Leg(volunteer, -20), Leg(merchant, 10), Leg(merchant, 10)],
                        key=key(), kind="transfer")

    assert ledger_state(session) == before
    assert_still_usable(session, make_account)


@pytest.mark.parametrize("bad_key", ["", "   ", None, 42, "k" * 201, "task\x00:1", "\ud800"])
def test_a_write_without_a_usable_idempotency_key_is_refused(session, make_account, pair,
                                                             bad_key):
    volunteer, merchant = pair
    before = ledger_state(session)

    with pytest.raises(ledger.InvalidTransaction):
        ledger.move(session, volunteer, merchant, 10, key=bad_key, kind="transfer")

    assert ledger_state(session) == before
    assert_still_usable(session, make_account)


def test_the_same_key_with_the_same_request_returns_the_first_transaction_and_writes_nothing(
        session, pair):
    volunteer, merchant = pair
    k = key()
    first = ledger.move(session, volunteer, merchant, 10, key=k, kind="award",
                        meta={"task": "T-1"})
    postings = postings_count(session)

    again = ledger.move(session, volunteer, merchant, 10, key=k, kind="award",
                        meta={"task": "T-1"})

    assert again.id == first.id
    assert postings_count(session) == postings
    assert available(session, volunteer) == 90
    assert available(session, merchant) == 10


def test_a_retry_answers_with_the_first_result_even_when_it_could_not_be_written_again(
        session, pair):
    volunteer, merchant = pair
    k = key()
    first = ledger.move(session, volunteer, merchant, 100, key=k, kind="transfer")

    # The volunteer now has nothing left; the retry must not be refused as an overdraft.
    again = ledger.move(session, volunteer, merchant, 100, key=k, kind="transfer")

    assert again.id == first.id
    assert available(session, volunteer) == 0


@pytest.mark.parametrize("change", [
    {"amount": 11}, {"kind": "refund"}, {"memo": "other"}, {"meta": {"task": "T-2"}},
    {"asset": "POINTS"}, {"swap": True},
])
def test_the_same_key_with_a_different_request_is_a_conflict_and_writes_nothing(
        session, make_account, pair, change):
    volunteer, merchant = pair
    k = key()
    ledger.move(session, volunteer, merchant, 10, key=k, kind="award", meta={"task": "T-1"})
    before = ledger_state(session)
    request = {"amount": 10, "kind": "award", "memo": "", "meta": {"task": "T-1"}, **change}
    source, destination = (merchant, volunteer) if request.pop("swap", False) else (
        volunteer, merchant)

    with pytest.raises(ledger.IdempotencyConflict) as refused:
        ledger.move(session, source, destination, key=k, **request)

    assert refused.value.key == k
    assert ledger_state(session) == before
    assert_still_usable(session, make_account)


def test_a_key_used_by_a_transfer_cannot_be_used_to_post_a_hold(session, pair):
    volunteer, merchant = pair
    k = key()
    ledger.move(session, volunteer, merchant, 10, key=k, kind="transfer")
    held = ledger.hold(session, volunteer, merchant, 20, key=key(), kind="redemption")
    before = ledger_state(session)

    with pytest.raises(ledger.IdempotencyConflict):
        ledger.post_hold(session, held.id, key=k)

    assert ledger_state(session) == before
    assert ledger.get_hold(session, held.id).status == "open"


def test_an_overdraft_is_refused_with_what_was_needed_and_available_and_writes_nothing(
        session, make_account, pair):
    volunteer, merchant = pair
    before = ledger_state(session)

    with pytest.raises(ledger.InsufficientFunds) as refused:
        ledger.move(session, volunteer, merchant, 101, key=key(), kind="redemption")

    assert (refused.value.address, refused.value.needed, refused.value.available) == (
        volunteer, 101, 100)
    assert ledger_state(session) == before
    assert available(session, volunteer) == 100
    assert available(session, merchant) == 0
    assert_still_usable(session, make_account)


def test_an_overdraft_counts_points_reserved_by_open_holds(session, make_account, pair):
    volunteer, merchant = pair
    ledger.hold(session, volunteer, merchant, 60, key=key(), kind="redemption")
    before = ledger_state(session)

    with pytest.raises(ledger.InsufficientFunds) as refused:
        ledger.move(session, volunteer, merchant, 41, key=key(), kind="redemption")

    assert (refused.value.needed, refused.value.available) == (41, 40)
    assert ledger_state(session) == before
    ledger.move(session, volunteer, merchant, 40, key=key(), kind="redemption")
    assert ledger.balance(session, volunteer) == ledger.AccountBalance(volunteer, "POINTS", 60, 60)


def test_a_refused_write_leaves_the_callers_earlier_work_in_place(session, make_account, pair):
    volunteer, merchant = pair
    ledger.move(session, volunteer, merchant, 30, key=key(), kind="transfer")

    with pytest.raises(ledger.InsufficientFunds):
        ledger.move(session, volunteer, merchant, 71, key=key(), kind="transfer")

    assert available(session, volunteer) == 70
    assert available(session, merchant) == 30
    assert ledger.verify(session).ok


def test_a_multi_leg_transfer_that_overdraws_one_account_writes_none_of_its_legs(
        session, make_account):
    rich, poor = make_account(points=100), make_account(points=5)
    merchant = make_account()
    before = ledger_state(session)

    with pytest.raises(ledger.InsufficientFunds) as refused:
        ledger.transfer(session, [Leg(rich, -50), Leg(poor, -10), Leg(merchant, 60)],
                        key=key(), kind="transfer")

    assert refused.value.address == poor
    assert ledger_state(session) == before
    assert (available(session, rich), available(session, poor)) == (100, 5)


def test_an_account_that_may_go_negative_can_go_below_zero(session, make_account):
    issuance = make_account(fresh("issuance:points"), allow_negative=True)
    volunteer = make_account()

    ledger.move(session, issuance, volunteer, 250, key=key(), kind="award")

    assert available(session, issuance) == -250
    assert available(session, volunteer) == 250
    assert ledger.verify(session).ok


def test_a_multi_asset_award_moves_points_and_merit_in_one_transaction(session, make_account):
    issuance_points = make_account(fresh("issuance:points"), allow_negative=True,
                                   stripes=4)
    issuance_merit = make_account(fresh("issuance:merit"), asset="MERIT",
                                  allow_negative=True, stripes=4)
    points, merit = make_account(), make_account(asset="MERIT")

    tx = ledger.transfer(session, [
        Leg(issuance_points, -20), Leg(points, 20), Leg(issuance_merit, -30), Leg(merit, 30),
    ], key=key(), kind="award", meta={"activity_id": 3})

    assert {(p.asset_code, p.amount) for p in tx.postings} == {
        ("POINTS", -20), ("POINTS", 20), ("MERIT", -30), ("MERIT", 30)}
    assert ledger.balance(session, points) == ledger.AccountBalance(points, "POINTS", 20, 0)
    assert ledger.balance(session, merit) == ledger.AccountBalance(merit, "MERIT", 30, 0)
    assert available(session, issuance_merit) == -30
    assert ledger.verify(session).ok


def test_a_reversal_puts_every_point_back_where_it_came_from(session, pair):
    volunteer, merchant = pair
    original = ledger.move(session, volunteer, merchant, 40, key=key(), kind="redemption")

    reversal = ledger.reverse(session, original.id, key=key(), memo="refund")

    assert reversal.reverses_id == original.id
    assert sorted(p.amount for p in reversal.postings) == [-40, 40]
    assert available(session, volunteer) == 100
    assert available(session, merchant) == 0
    assert ledger.verify(session).ok


def test_a_reversal_of_a_multi_asset_award_on_striped_accounts_restores_every_stripe(
        session, make_account):
    issuance = make_account(fresh("issuance:points"), allow_negative=True, stripes=8)
    issuance_merit = make_account(fresh("issuance:merit"), asset="MERIT",
                                  allow_negative=True, stripes=8)
    points, merit = make_account(), make_account(asset="MERIT")
    award = ledger.transfer(session, [
        Leg(issuance, -20), Leg(points, 20), Leg(issuance_merit, -5), Leg(merit, 5),
    ], key=key(), kind="award")

    ledger.reverse(session, award.id, key=key())

    for address in (issuance, issuance_merit, points, merit):
        assert available(session, address) == 0
    assert ledger.verify(session).ok


def test_reversing_twice_is_refused_naming_the_first_reversal(session, make_account, pair):
    volunteer, merchant = pair
    original = ledger.move(session, volunteer, merchant, 40, key=key(), kind="redemption")
    first = ledger.reverse(session, original.id, key=key())
    before = ledger_state(session)

    with pytest.raises(ledger.AlreadyReversed) as refused:
        ledger.reverse(session, original.id, key=key())

    assert refused.value.details == {"transaction_id": original.id, "reversal_id": first.id}
    assert ledger_state(session) == before
    assert available(session, volunteer) == 100
    assert_still_usable(session, make_account)


def test_retrying_a_reversal_with_its_key_returns_it_and_writes_nothing(session, pair):
    volunteer, merchant = pair
    original = ledger.move(session, volunteer, merchant, 40, key=key(), kind="redemption")
    k = key()
    first = ledger.reverse(session, original.id, key=k, memo="refund")
    before = ledger_state(session)

    assert ledger.reverse(session, original.id, key=k, memo="refund").id == first.id
    assert ledger_state(session) == before
    with pytest.raises(ledger.IdempotencyConflict):
        ledger.reverse(session, original.id, key=k, memo="another reason")


def test_reversing_a_reversal_is_refused(session, make_account, pair):
    volunteer, merchant = pair
    original = ledger.move(session, volunteer, merchant, 40, key=key(), kind="redemption")
    reversal = ledger.reverse(session, original.id, key=key())
    before = ledger_state(session)

    with pytest.raises(ledger.CannotReverseReversal) as refused:
        ledger.reverse(session, reversal.id, key=key())

    assert refused.value.details == {"transaction_id": reversal.id}
    assert ledger_state(session) == before
    assert_still_usable(session, make_account)


@pytest.mark.parametrize("transaction_id", [10**12, -1, "1", None, True])
def test_reversing_an_unknown_transaction_is_refused(session, pair, transaction_id):
    before = ledger_state(session)

    with pytest.raises(ledger.UnknownTransaction):
        ledger.reverse(session, transaction_id, key=key())

    assert ledger_state(session) == before


def test_a_reversal_that_would_overdraw_is_refused_and_writes_nothing(session, make_account,
                                                                       pair):
    volunteer, merchant = pair
    grocer = make_account()
    issuance = make_account(fresh("issuance:points"), allow_negative=True)
    award = ledger.move(session, issuance, volunteer, 50, key=key(), kind="award")
    # The volunteer spends everything, so taking the award back would overdraw.
    ledger.move(session, volunteer, grocer, 150, key=key(), kind="redemption")
    before = ledger_state(session)

    with pytest.raises(ledger.InsufficientFunds) as refused:
        ledger.reverse(session, award.id, key=key())

    assert (refused.value.address, refused.value.needed, refused.value.available) == (
        volunteer, 50, 0)
    assert ledger_state(session) == before
    assert available(session, volunteer) == 0
    assert available(session, issuance) == -50
    assert_still_usable(session, make_account)
    # Once the volunteer has points again the reversal goes through.
    ledger.move(session, issuance, volunteer, 50, key=key(), kind="award")
    ledger.reverse(session, award.id, key=key())
    assert (available(session, volunteer), available(session, issuance)) == (0, -50)


def test_a_reversal_of_a_posted_hold_refunds_the_volunteer(session, pair):
    volunteer, merchant = pair
    held = ledger.hold(session, volunteer, merchant, 30, key=key(), kind="redemption")
    posted = ledger.post_hold(session, held.id, key=key())

    ledger.reverse(session, posted.id, key=key(), kind="refund")

    assert available(session, volunteer) == 100
    assert available(session, merchant) == 0
    assert ledger.verify(session).ok


@pytest.mark.parametrize("bad", [
    {"kind": ""}, {"kind": "k" * 41}, {"kind": None}, {"memo": None}, {"memo": "m" * 2001},
    {"meta": []}, {"meta": {"when": object()}}, {"meta": {1: "a", "b": 2}},
    {"kind": "award\x00"}, {"memo": "大米\x00"}, {"memo": "\udc80"},
    {"meta": {"score": float("nan")}}, {"meta": {"score": float("inf")}},
    {"meta": {"note": "\ud800"}},
])
def test_a_transaction_with_a_malformed_kind_memo_or_metadata_is_refused(
        session, make_account, pair, bad):
    volunteer, merchant = pair
    before = ledger_state(session)
    request = {"kind": "transfer", **bad}

    with pytest.raises(ledger.InvalidTransaction):
        ledger.move(session, volunteer, merchant, 10, key=key(), **request)

    assert ledger_state(session) == before
    assert_still_usable(session, make_account)


def test_metadata_and_memo_in_any_language_are_stored_as_given_and_verify(session, pair):
    volunteer, merchant = pair
    meta = {"活动": "党员活动日", "ids": [1, 2**40], "ratio": 0.1, "nested": {"ok": True},
            "escaped": "a\u2028b\\u0000"}

    tx = ledger.move(session, volunteer, merchant, 10, key=key(), kind="award",
                     memo="社区志愿服务 ✓", meta=meta)

    session.expire_all()
    stored = session.get(ledger.Transaction, tx.id)
    assert (stored.memo, stored.meta) == ("社区志愿服务 ✓", meta)
    assert ledger.verify(session).ok


def test_a_time_with_a_timezone_is_stored_as_utc_and_verifies(session, pair):
    volunteer, merchant = pair
    beijing = datetime(2026, 5, 1, 20, 0, tzinfo=timezone(timedelta(hours=8)))

    tx = ledger.move(session, volunteer, merchant, 10, key=key(), kind="transfer", now=beijing)
    reversal = ledger.reverse(session, tx.id, key=key(), now=datetime(2026, 5, 2, tzinfo=UTC))

    session.expire_all()
    assert session.get(ledger.Transaction, tx.id).created_at == datetime(2026, 5, 1, 12, 0)
    assert session.get(ledger.Transaction, reversal.id).created_at == datetime(2026, 5, 2)
    assert ledger.verify(session).ok


@pytest.mark.parametrize("now", ["2026-05-01T12:00:00", 1777636800, datetime(2026, 5, 1).date()])
def test_a_time_that_is_not_a_datetime_is_refused(session, make_account, pair, now):
    volunteer, merchant = pair
    original = ledger.move(session, volunteer, merchant, 10, key=key(), kind="transfer")
    before = ledger_state(session)

    with pytest.raises(ledger.InvalidTransaction):
        ledger.move(session, volunteer, merchant, 10, key=key(), kind="transfer", now=now)
    with pytest.raises(ledger.InvalidTransaction):
        ledger.reverse(session, original.id, key=key(), now=now)

    assert ledger_state(session) == before
    assert_still_usable(session, make_account)


@pytest.mark.parametrize("address", [42, None, b"volunteer:1:points"])
def test_a_leg_whose_address_is_not_text_is_refused(session, make_account, pair, address):
    _, merchant = pair
    before = ledger_state(session)

    with pytest.raises(ledger.InvalidTransaction):
        ledger.transfer(session, [Leg(address, -1), Leg(merchant, 1)], key=key(),
                        kind="transfer")

    assert ledger_state(session) == before
    assert_still_usable(session, make_account)


def test_opening_an_account_twice_with_the_same_settings_returns_it(session):
    first = ledger.open_account(session, "volunteer:77:points", "POINTS")
    assert ledger.open_account(session, "volunteer:77:points", "POINTS").id == first.id


@pytest.mark.parametrize("settings", [
    {"asset": "MERIT"}, {"allow_negative": True}, {"allow_negative": True, "stripes": 2},
])
def test_reopening_an_account_with_other_settings_is_refused(session, settings):
    ledger.open_account(session, "volunteer:78:points", "POINTS")
    request = {"asset": "POINTS", **settings}
    with pytest.raises(ledger.AccountConflict):
        ledger.open_account(session, "volunteer:78:points", request.pop("asset"), **request)


def test_an_account_of_an_unknown_asset_is_refused(session):
    with pytest.raises(ledger.UnknownAsset):
        ledger.open_account(session, "volunteer:79:stars", "STARS")
    with pytest.raises(ledger.UnknownAccount):
        ledger.get_account(session, "volunteer:79:stars")


@pytest.mark.parametrize("settings", [
    {"stripes": 2}, {"stripes": 0, "allow_negative": True}, {"stripes": 65, "allow_negative": True},
    {"stripes": 2.0, "allow_negative": True},
])
def test_only_accounts_that_may_go_negative_are_striped_and_within_bounds(session, settings):
    with pytest.raises(ledger.InvalidTransaction):
        ledger.open_account(session, fresh("issuance"), "POINTS", **settings)


def test_balance_rows_the_session_already_holds_show_a_transfer_sent_through_the_driver(
        session, pair):
    # The hot path writes with the driver's own calls; objects the session loaded before
    # must not keep the old figures.
    volunteer, merchant = pair
    loaded = dict(session.execute(sa.select(ledger.Account.address, ledger.Balance)
                                  .join(ledger.Balance.__table__).where(
        ledger.Account.address.in_([volunteer, merchant]))).all())
    assert (loaded[volunteer].posted, loaded[merchant].posted) == (100, 0)

    ledger.move(session, volunteer, merchant, 30, key=key(), kind="redemption")

    assert (loaded[volunteer].posted, loaded[merchant].posted) == (70, 30)
    assert (loaded[volunteer].seq, loaded[merchant].seq) == (2, 1)
    assert ledger.verify(session).ok


def test_a_database_error_on_the_hot_path_is_sqlalchemys_and_writes_nothing(
        session, make_account, pair, monkeypatch):
    from ledger import driver

    volunteer, merchant = pair
    state = ledger_state(session)
    broken = "SELECT no_such_column FROM ledger_transactions WHERE id = {}"
    monkeypatch.setattr(driver, "_transfer", lambda n: broken.format("%(key)s"))

    with pytest.raises(sa.exc.DBAPIError), session.begin_nested():
        ledger.move(session, volunteer, merchant, 30, key=key(), kind="redemption")

    monkeypatch.undo()
    assert ledger_state(session) == state
    assert_still_usable(session, make_account)


def test_a_transfer_in_a_community_adds_to_its_flows_and_verify_agrees(session, make_account):
    scope = f"community:{uuid.uuid4().int % 10**6}"
    payer, payee = (ledger.open_account(session, f"volunteer:{uuid.uuid4().hex}:points",
                                        "POINTS", scope=scope).address for _ in range(2))
    ledger.move(session, make_account(points=100), payer, 100, key=key(), kind="transfer")

    ledger.move(session, payer, payee, 25, key=key(), kind="gift")
    ledger.move(session, payee, payer, 5, key=key(), kind="gift")

    gifts = [f for f in ledger.flows.daily(session, [scope]) if f.kind == "gift"]
    assert [(f.credits, f.debits, f.postings) for f in gifts] == [(30, 30, 4)]
    assert ledger.verify(session).ok


def test_a_database_error_on_the_hot_path_reaches_the_engines_error_handlers(
        session, pair, monkeypatch):
    # The driver's statements fail as SQLAlchemy's own do: `handle_error` listeners (retry
    # accounting, the deadlock watch of the concurrency tests) see them.
    from ledger import driver

    volunteer, merchant = pair
    seen = []
    engine = session.connection().engine
    listener = lambda context: seen.append(context.statement)  # noqa: E731
    sa.event.listen(engine, "handle_error", listener)
    broken = "SELECT no_such_column FROM ledger_transactions WHERE id = {}"
    monkeypatch.setattr(driver, "_transfer", lambda n: broken.format("%(key)s"))
    try:
        with pytest.raises(sa.exc.ProgrammingError), session.begin_nested():
            ledger.move(session, volunteer, merchant, 30, key=key(), kind="redemption")
    finally:
        sa.event.remove(engine, "handle_error", listener)
    assert seen == [broken.format("%(key)s")]


def test_chains_written_for_a_non_ascii_asset_and_extreme_amounts_verify(session):
    # On PostgreSQL the chain is hashed in SQL; verify recomputes it in Python.
    ledger.define_asset(session, "积分€", "test asset")
    issuance = ledger.open_account(session, f"community:{uuid.uuid4().hex}:issuance", "积分€",
                                   allow_negative=True, stripes=3).address
    first, second = (ledger.open_account(session, f"volunteer:{uuid.uuid4().hex}", "积分€")
                     .address for _ in range(2))
    top = ledger.MAX_AMOUNT

    ledger.transfer(session, [Leg(issuance, -top), Leg(first, top - 1), Leg(second, 1)],
                    key=key(), kind="award")
    ledger.move(session, first, issuance, top - 1, key=key(), kind="reversal")
    ledger.move(session, second, first, 1, key=key(), kind="gift")

    assert ledger.balance(session, first).posted == 1
    assert ledger.balance(session, issuance).posted == -1
    report = ledger.verify(session)
    assert report.ok, report.violations

"""Two-phase holds: reserve, post all or part, void, expire; each resolves once."""

import uuid
from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy as sa

import ledger

NOW = datetime(2026, 5, 1, 12, 0, 0)


def ledger_state(session):
    """Return what a refusal must leave untouched: row counts and every cached amount."""
    session.expire_all()
    return (
        session.scalar(sa.select(sa.func.count(ledger.Transaction.id))),
        session.scalar(sa.select(sa.func.count(ledger.Posting.id))),
        session.execute(
            sa.select(ledger.Hold.id, ledger.Hold.status, ledger.Hold.resolution_key)
            .order_by(ledger.Hold.id)
        ).all(),
        session.execute(
            sa.select(ledger.Balance.id, ledger.Balance.posted, ledger.Balance.pending,
                      ledger.Balance.seq)
            .order_by(ledger.Balance.id)
        ).all(),
    )


def amounts(session, address):
    """Return (posted, pending, available) as the account's owner sees them."""
    b = ledger.balance(session, address)
    return b.posted, b.pending, b.available


def key():
    return f"test:{uuid.uuid4().hex}"


@pytest.fixture
def pair(make_account):
    """A volunteer with 100 points and a merchant with none."""
    return make_account(points=100), make_account("merchant:" + uuid.uuid4().hex[:8])


def hold(session, pair, amount=40, **kwargs):
    volunteer, merchant = pair
    kwargs.setdefault("key", key())
    kwargs.setdefault("kind", "redemption")
    return ledger.hold(session, volunteer, merchant, amount, **kwargs)


def test_a_hold_reduces_the_available_balance_but_not_the_posted_one(session, pair):
    volunteer, merchant = pair

    held = hold(session, pair, 40)

    assert held.status == "open"
    assert amounts(session, volunteer) == (100, 40, 60)
    assert amounts(session, merchant) == (0, 0, 0)
    assert ledger.verify(session).ok


def test_a_hold_of_the_whole_available_balance_is_allowed(session, pair):
    volunteer, _ = pair
    hold(session, pair, 60)
    hold(session, pair, 40)
    assert amounts(session, volunteer) == (100, 100, 0)


def test_a_hold_over_the_available_balance_is_refused_and_writes_nothing(session, pair):
    volunteer, _ = pair
    hold(session, pair, 70)
    before = ledger_state(session)

    with pytest.raises(ledger.InsufficientFunds) as refused:
        hold(session, pair, 31)

    assert (refused.value.address, refused.value.needed, refused.value.available) == (
        volunteer, 31, 30)
    assert ledger_state(session) == before
    assert amounts(session, volunteer) == (100, 70, 30)
    hold(session, pair, 30)  # the session is still usable


@pytest.mark.parametrize("amount", [0, -1, 1.5, "10", True, ledger.MAX_AMOUNT + 1])
def test_a_hold_of_a_bad_amount_is_refused_and_writes_nothing(session, pair, amount):
    before = ledger_state(session)
    with pytest.raises(ledger.InvalidAmount):
        hold(session, pair, amount)
    assert ledger_state(session) == before


def test_posting_a_hold_in_full_moves_the_held_points_to_the_destination(session, pair):
    volunteer, merchant = pair
    held = hold(session, pair, 40)

    tx = ledger.post_hold(session, held.id, key=key())

    assert amounts(session, volunteer) == (60, 0, 60)
    assert amounts(session, merchant) == (40, 0, 40)
    assert sorted(p.amount for p in tx.postings) == [-40, 40]
    assert tx.meta["hold_id"] == held.id
    row = ledger.get_hold(session, held.id)
    assert (row.status, row.posted_amount, row.transaction_id) == ("posted", 40, tx.id)
    assert ledger.verify(session).ok


def test_posting_part_of_a_hold_moves_only_that_part_and_releases_the_rest(session, pair):
    volunteer, merchant = pair
    held = hold(session, pair, 40)

    tx = ledger.post_hold(session, held.id, key=key(), amount=25)

    assert amounts(session, volunteer) == (75, 0, 75)
    assert amounts(session, merchant) == (25, 0, 25)
    assert sorted(p.amount for p in tx.postings) == [-25, 25]
    assert ledger.get_hold(session, held.id).posted_amount == 25
    assert ledger.verify(session).ok


def test_posting_more_than_was_held_is_refused_and_writes_nothing(session, pair):
    volunteer, _ = pair
    held = hold(session, pair, 40)
    before = ledger_state(session)

    with pytest.raises(ledger.HoldAmountExceeded) as refused:
        ledger.post_hold(session, held.id, key=key(), amount=41)

    assert refused.value.details == {"hold_id": held.id, "held": 40, "requested": 41}
    assert ledger_state(session) == before
    assert amounts(session, volunteer) == (100, 40, 60)
    ledger.post_hold(session, held.id, key=key(), amount=40)  # the session is still usable
    assert amounts(session, volunteer) == (60, 0, 60)


@pytest.mark.parametrize("amount", [0, -5, 2.5, "5", True])
def test_posting_a_bad_amount_of_a_hold_is_refused_and_writes_nothing(session, pair, amount):
    held = hold(session, pair, 40)
    before = ledger_state(session)
    with pytest.raises(ledger.InvalidAmount):
        ledger.post_hold(session, held.id, key=key(), amount=amount)
    assert ledger_state(session) == before


def test_voiding_a_hold_gives_the_points_back_to_the_available_balance(session, pair):
    volunteer, merchant = pair
    held = hold(session, pair, 40)

    voided = ledger.void_hold(session, held.id, key=key())

    assert voided.status == "voided"
    assert amounts(session, volunteer) == (100, 0, 100)
    assert amounts(session, merchant) == (0, 0, 0)
    assert ledger.verify(session).ok


def test_posting_a_voided_hold_is_refused_and_writes_nothing(session, pair):
    held = hold(session, pair, 40)
    ledger.void_hold(session, held.id, key=key())
    before = ledger_state(session)

    with pytest.raises(ledger.HoldAlreadyVoided) as refused:
        ledger.post_hold(session, held.id, key=key())

    assert refused.value.hold_id == held.id
    assert ledger_state(session) == before
    assert amounts(session, pair[0]) == (100, 0, 100)


def test_voiding_a_posted_hold_is_refused_and_writes_nothing(session, pair):
    held = hold(session, pair, 40)
    ledger.post_hold(session, held.id, key=key())
    before = ledger_state(session)

    with pytest.raises(ledger.HoldAlreadyPosted) as refused:
        ledger.void_hold(session, held.id, key=key())

    assert refused.value.hold_id == held.id
    assert ledger_state(session) == before
    assert amounts(session, pair[1]) == (40, 0, 40)


def test_posting_a_hold_twice_with_different_keys_is_refused(session, pair):
    held = hold(session, pair, 40)
    ledger.post_hold(session, held.id, key=key())
    before = ledger_state(session)

    with pytest.raises(ledger.HoldAlreadyPosted):
        ledger.post_hold(session, held.id, key=key())

    assert ledger_state(session) == before


def test_posting_a_hold_after_its_deadline_is_refused_and_writes_nothing(session, pair):
    volunteer, merchant = pair
    held = hold(session, pair, 40, now=NOW, expires_at=NOW + timedelta(minutes=15))
    before = ledger_state(session)

    with pytest.raises(ledger.HoldExpired) as refused:
        ledger.post_hold(session, held.id, key=key(), now=NOW + timedelta(minutes=15))

    assert refused.value.hold_id == held.id
    assert ledger_state(session) == before
    assert amounts(session, merchant) == (0, 0, 0)
    # Before the deadline the same hold posts.
    ledger.post_hold(session, held.id, key=key(), now=NOW + timedelta(minutes=14))
    assert amounts(session, merchant) == (40, 0, 40)


def test_a_hold_cannot_be_given_a_deadline_in_the_past(session, pair):
    before = ledger_state(session)
    with pytest.raises(ledger.InvalidTransaction):
        hold(session, pair, 40, now=NOW, expires_at=NOW)
    assert ledger_state(session) == before


def test_expiring_holds_releases_only_those_past_their_deadline(session, pair):
    volunteer, _ = pair
    due = hold(session, pair, 10, now=NOW, expires_at=NOW + timedelta(minutes=5))
    on_time = hold(session, pair, 20, now=NOW, expires_at=NOW + timedelta(hours=1))
    no_deadline = hold(session, pair, 30, now=NOW)

    released = ledger.expire_holds(session, now=NOW + timedelta(minutes=30))

    assert due.id in released
    assert on_time.id not in released and no_deadline.id not in released
    assert ledger.get_hold(session, due.id).status == "expired"
    assert ledger.get_hold(session, on_time.id).status == "open"
    assert ledger.get_hold(session, no_deadline.id).status == "open"
    assert amounts(session, volunteer) == (100, 50, 50)
    assert ledger.verify(session).ok


def test_expiring_holds_twice_releases_nothing_the_second_time(session, pair):
    volunteer, _ = pair
    hold(session, pair, 10, now=NOW, expires_at=NOW + timedelta(minutes=5))
    later = NOW + timedelta(minutes=30)
    first = ledger.expire_holds(session, now=later)
    after_first = ledger_state(session)

    assert ledger.expire_holds(session, now=later) == []

    assert len(first) >= 1
    assert ledger_state(session) == after_first
    assert amounts(session, volunteer) == (100, 0, 100)


def test_an_expired_hold_can_be_neither_posted_nor_voided(session, pair):
    held = hold(session, pair, 10, now=NOW, expires_at=NOW + timedelta(minutes=5))
    ledger.expire_holds(session, now=NOW + timedelta(minutes=30))
    before = ledger_state(session)

    with pytest.raises(ledger.HoldExpired):
        ledger.post_hold(session, held.id, key=key(), now=NOW + timedelta(minutes=1))
    with pytest.raises(ledger.HoldExpired):
        ledger.void_hold(session, held.id, key=key())

    assert ledger_state(session) == before


def test_retrying_a_post_with_its_key_returns_the_first_transaction(session, pair):
    held = hold(session, pair, 40)
    k = key()
    first = ledger.post_hold(session, held.id, key=k, amount=30)
    before = ledger_state(session)

    again = ledger.post_hold(session, held.id, key=k, amount=30)

    assert again.id == first.id
    assert ledger_state(session) == before
    assert amounts(session, pair[1]) == (30, 0, 30)


def test_retrying_a_post_with_its_key_but_another_amount_is_a_conflict(session, pair):
    held = hold(session, pair, 40)
    k = key()
    ledger.post_hold(session, held.id, key=k, amount=30)
    before = ledger_state(session)

    with pytest.raises(ledger.IdempotencyConflict):
        ledger.post_hold(session, held.id, key=k, amount=40)

    assert ledger_state(session) == before


def test_retrying_a_void_with_its_key_returns_the_first_result(session, pair):
    held = hold(session, pair, 40)
    k = key()
    ledger.void_hold(session, held.id, key=k)
    before = ledger_state(session)

    again = ledger.void_hold(session, held.id, key=k)

    assert (again.id, again.status) == (held.id, "voided")
    assert ledger_state(session) == before
    assert amounts(session, pair[0]) == (100, 0, 100)


def test_voiding_another_hold_with_a_used_key_is_a_conflict_and_writes_nothing(session, pair):
    first, second = hold(session, pair, 10), hold(session, pair, 20)
    k = key()
    ledger.void_hold(session, first.id, key=k)
    before = ledger_state(session)

    with pytest.raises(ledger.IdempotencyConflict) as refused:
        ledger.void_hold(session, second.id, key=k)

    assert refused.value.key == k
    assert ledger_state(session) == before
    assert ledger.get_hold(session, second.id).status == "open"


def test_voiding_with_the_key_of_a_post_is_a_conflict_and_writes_nothing(session, pair):
    first, second = hold(session, pair, 10), hold(session, pair, 20)
    k = key()
    ledger.post_hold(session, first.id, key=k)
    before = ledger_state(session)

    with pytest.raises(ledger.IdempotencyConflict):
        ledger.void_hold(session, second.id, key=k)

    assert ledger_state(session) == before


def test_posting_with_the_key_of_a_void_is_a_conflict_and_writes_nothing(session, pair):
    first, second = hold(session, pair, 10), hold(session, pair, 20)
    k = key()
    ledger.void_hold(session, first.id, key=k)
    before = ledger_state(session)

    with pytest.raises(ledger.IdempotencyConflict):
        ledger.post_hold(session, second.id, key=k)

    assert ledger_state(session) == before
    assert ledger.get_hold(session, second.id).status == "open"
    ledger.post_hold(session, second.id, key=key())  # the session is still usable


def test_voiding_holds_releases_the_open_ones_and_leaves_the_others_as_they_are(
        session, pair):
    volunteer, _merchant = pair
    to_post, to_expire = (hold(session, pair, amount=10, now=NOW,
                               expires_at=NOW + timedelta(days=1)) for _ in range(2))
    ledger.post_hold(session, to_post.id, key=key(), now=NOW)
    ledger.expire_holds(session, now=NOW + timedelta(days=2))

    fresh = hold(session, pair, amount=20, now=NOW)
    keys = [(fresh.id, key()), (to_post.id, key()), (to_expire.id, key())]
    found = ledger.void_holds(session, keys, now=NOW)

    assert {i: h.status for i, h in found.items()} == {
        fresh.id: "voided", to_post.id: "posted", to_expire.id: "expired"}
    assert found[fresh.id].resolution_key == keys[0][1]
    assert amounts(session, volunteer) == (90, 0, 90)
    before = ledger_state(session)
    ledger.void_holds(session, keys, now=NOW)  # again: nothing more happens
    assert ledger_state(session) == before
    assert ledger.verify(session).ok


def test_voiding_holds_with_a_key_that_resolved_another_hold_is_a_conflict(session, pair):
    first, second = hold(session, pair, amount=10), hold(session, pair, amount=10)
    used = key()
    ledger.void_hold(session, first.id, key=used)
    before = ledger_state(session)
    with pytest.raises(ledger.IdempotencyConflict):
        ledger.void_holds(session, [(second.id, used)])
    again = key()
    with pytest.raises(ledger.IdempotencyConflict):
        ledger.void_holds(session, [(second.id, again), (first.id, again)])
    assert ledger_state(session) == before


def test_voiding_holds_with_a_bad_id_or_key_is_refused_and_writes_nothing(session, pair):
    held = hold(session, pair, amount=10)
    before = ledger_state(session)
    with pytest.raises(ledger.UnknownHold):
        ledger.void_holds(session, [(held.id, key()), (True, key())])
    with pytest.raises(ledger.InvalidTransaction):
        ledger.void_holds(session, [(held.id, "")])
    assert ledger_state(session) == before


def test_retrying_a_hold_with_its_key_returns_the_first_hold_and_reserves_nothing_more(
        session, pair):
    volunteer, _ = pair
    k = key()
    first = hold(session, pair, 40, key=k, memo="大米")
    before = ledger_state(session)

    assert hold(session, pair, 40, key=k, memo="大米").id == first.id
    assert ledger_state(session) == before
    with pytest.raises(ledger.IdempotencyConflict):
        hold(session, pair, 41, key=k, memo="大米")
    assert amounts(session, volunteer) == (100, 40, 60)


@pytest.mark.parametrize("side", ["source", "destination"])
def test_a_hold_on_an_unknown_account_is_refused_and_writes_nothing(session, pair, side):
    volunteer, _ = pair
    ghost = "volunteer:nobody:points"
    source, destination = (ghost, volunteer) if side == "source" else (volunteer, ghost)
    before = ledger_state(session)

    with pytest.raises(ledger.UnknownAccount) as refused:
        ledger.hold(session, source, destination, 10, key=key(), kind="redemption")

    assert refused.value.address == ghost
    assert ledger_state(session) == before


def test_a_hold_from_an_account_to_itself_is_refused(session, pair):
    volunteer, _ = pair
    with pytest.raises(ledger.InvalidTransaction):
        ledger.hold(session, volunteer, volunteer, 10, key=key(), kind="redemption")


def test_a_hold_across_assets_is_refused_and_writes_nothing(session, make_account, pair):
    volunteer, _ = pair
    merit = make_account(asset="MERIT")
    before = ledger_state(session)

    with pytest.raises(ledger.AssetMismatch) as refused:
        ledger.hold(session, volunteer, merit, 10, key=key(), kind="redemption")

    assert refused.value.details == {"address": merit, "account_asset": "MERIT",
                                     "asset": "POINTS"}
    assert ledger_state(session) == before


@pytest.mark.parametrize("hold_id", [10**12, -1, "1", None, 1.5, True, object()])
def test_resolving_an_unknown_hold_is_refused(session, hold_id):
    before = ledger_state(session)
    with pytest.raises(ledger.UnknownHold):
        ledger.post_hold(session, hold_id, key=key())
    with pytest.raises(ledger.UnknownHold):
        ledger.void_hold(session, hold_id, key=key())
    with pytest.raises(ledger.UnknownHold):
        ledger.get_hold(session, hold_id)
    assert ledger_state(session) == before


def test_a_hold_on_an_account_that_may_go_negative_can_reserve_beyond_zero(session,
                                                                           make_account):
    issuance = make_account(f"community:{uuid.uuid4().hex[:6]}:issuance:points",
                            allow_negative=True, stripes=4)
    volunteer = make_account()

    held = ledger.hold(session, issuance, volunteer, 500, key=key(), kind="award")
    ledger.post_hold(session, held.id, key=key(), amount=300)

    assert amounts(session, issuance) == (-300, 0, -300)
    assert amounts(session, volunteer) == (300, 0, 300)
    assert ledger.verify(session).ok


def test_posting_a_hold_may_give_its_own_memo_and_it_verifies(session, pair):
    held = hold(session, pair, 40, memo="大米 5kg")

    tx = ledger.post_hold(session, held.id, key=key(), memo="大米 5kg 已领取")

    assert tx.memo == "大米 5kg 已领取"
    assert ledger.verify(session).ok


@pytest.mark.parametrize("memo", [123, "m" * 2001, "a\x00b", b"bytes"])
def test_posting_a_hold_with_a_malformed_memo_is_refused_and_writes_nothing(session, pair,
                                                                            memo):
    held = hold(session, pair, 40)
    before = ledger_state(session)

    with pytest.raises(ledger.InvalidTransaction):
        ledger.post_hold(session, held.id, key=key(), memo=memo)

    assert ledger_state(session) == before
    ledger.post_hold(session, held.id, key=key())  # the session is still usable
    assert ledger.verify(session).ok


def test_a_deadline_with_a_timezone_is_kept_as_utc(session, pair):
    beijing = timezone(timedelta(hours=8))
    held = hold(session, pair, 10, now=NOW, expires_at=datetime(2026, 5, 1, 20, 30,
                                                                tzinfo=beijing))

    assert ledger.get_hold(session, held.id).expires_at == NOW + timedelta(minutes=30)
    with pytest.raises(ledger.HoldExpired):
        ledger.post_hold(session, held.id, key=key(),
                         now=datetime(2026, 5, 1, 20, 31, tzinfo=beijing))
    assert ledger.expire_holds(session, now=NOW + timedelta(minutes=29)) == []
    assert ledger.verify(session).ok


@pytest.mark.parametrize("when", ["2099-01-01", 4070908800])
def test_a_deadline_or_time_that_is_not_a_datetime_is_refused(session, pair, when):
    held = hold(session, pair, 10)
    before = ledger_state(session)

    with pytest.raises(ledger.InvalidTransaction):
        hold(session, pair, 10, expires_at=when)
    with pytest.raises(ledger.InvalidTransaction):
        ledger.post_hold(session, held.id, key=key(), now=when)
    with pytest.raises(ledger.InvalidTransaction):
        ledger.void_hold(session, held.id, key=key(), now=when)
    with pytest.raises(ledger.InvalidTransaction):
        ledger.expire_holds(session, now=when)

    assert ledger_state(session) == before


def test_find_hold_returns_the_hold_made_under_a_key(session, pair):
    k = key()
    held = hold(session, pair, 10, key=k)
    assert ledger.find_hold(session, k).id == held.id
    assert ledger.find_hold(session, key()) is None


def test_a_hold_and_its_post_are_stored_as_the_objects_say(session, pair):
    # Both are written by statements of their own (one each on PostgreSQL): the rows in
    # the database, read past the session's objects, say what the objects say.
    volunteer, merchant = pair
    now = datetime(2026, 12, 3, 9, 30, 15, 123456)
    hold_key, post_key = key(), key()
    held = ledger.hold(session, volunteer, merchant, 40, key=hold_key, kind="redemption",
                       memo="牛肉面", meta={"item_id": 7}, now=now,
                       expires_at=now + timedelta(days=7))
    table = ledger.Hold.__table__

    def stored():
        return session.execute(sa.select(table).where(table.c.id == held.id)).mappings().one()

    row = stored()
    assert (row["status"], row["amount"], row["kind"], row["memo"], row["meta"]) == (
        "open", 40, "redemption", "牛肉面", {"item_id": 7})
    assert (row["created_at"], row["expires_at"]) == (now, now + timedelta(days=7))
    assert (row["idempotency_key"], row["resolution_key"], row["transaction_id"]) == (
        hold_key, None, None)
    balances = ledger.Balance.__table__
    assert session.execute(sa.select(balances.c.pending).where(
        balances.c.id == row["balance_id"])).scalar_one() == 40

    tx = ledger.post_hold(session, held.id, key=post_key, amount=25,
                          now=now + timedelta(hours=1))

    row = stored()
    assert (row["status"], row["posted_amount"], row["transaction_id"]) == ("posted", 25, tx.id)
    assert (row["resolution_key"], row["resolved_at"]) == (post_key, now + timedelta(hours=1))
    assert amounts(session, volunteer) == (75, 0, 75)
    assert ledger.verify(session).ok

"""The marketplace services: reserve, confirm, cancel, expire, refund and close a period.

Each test runs in a rolled-back transaction, moves the clock by hand (naive UTC moments)
and ends with a clean `ledger.verify`.
"""

import uuid
from datetime import date, datetime, timedelta

import pytest
import sqlalchemy as sa

import ledger
from ledger.clock import utcnow
from merchants import redemptions, settlement
from merchants.errors import (
    InvalidPeriod,
    InvalidQuantity,
    ItemUnavailable,
    OutOfStock,
    OverPersonalLimit,
    PeriodAlreadyClosed,
    ReasonRequired,
    RedemptionConflict,
    RedemptionNotFulfilled,
    RedemptionNotReserved,
    TierTooLow,
    UnknownItem,
    UnknownRedemption,
)
from merchants.items import create_item, create_merchant
from merchants.models import Item, Redemption, Statement, StatementLine
from merchants.redemptions import CODE_ALPHABET, Redeemer
from pointsmall.people.communities import create_community

T0 = datetime(2025, 3, 10, 2, 0)  # 10:00 in Shanghai
TODAY = date(2025, 3, 10)
MONTH = datetime(2025, 3, 1)


@pytest.fixture(autouse=True)
def ledger_stays_consistent(session):
    yield
    report = ledger.verify(session)
    assert report.ok, [str(v) for v in report.violations]


class World:
    """A community with a partner shop and a charity supermarket, and builders for the rest."""

    def __init__(self, session):
        self.session = session
        self.community = create_community(session, f"测试社区{uuid.uuid4().hex[:8]}")
        self.shop = create_merchant(session, self.community.id, name="老街牛肉面")
        self.charity = create_merchant(session, self.community.id, name="爱心超市",
                                       kind="charity")

    def volunteer(self, points: int = 100, *, tier: str | None = None,
                  community_id: int | None = None) -> Redeemer:
        volunteer_id = uuid.uuid4().int % 10**9 + 10**9
        account = f"volunteer:{volunteer_id}:points"
        ledger.open_account(self.session, account, "POINTS")
        if points:
            ledger.move(self.session, self.community.account("POINTS"), account, points,
                        key=f"test:fund:{volunteer_id}", kind="award", now=T0 - timedelta(days=1))
        return Redeemer(volunteer_id, account, "张*", community_id or self.community.id, tier)

    def item(self, merchant=None, **fields) -> Item:
        raw = {"name": "招牌牛肉面", "price": 30, "stock": 5, **fields}
        return create_item(self.session, (merchant or self.shop).id, raw)

    def reserve(self, redeemer: Redeemer, item: Item, quantity: int = 1, *, key=None,
                now: datetime = T0) -> Redemption:
        return redemptions.reserve(self.session, redeemer, item.id, quantity,
                                   key=key or uuid.uuid4().hex, now=now, today=now.date(),
                                   month_start=MONTH)

    def confirm(self, redemption: Redemption, now: datetime = T0 + timedelta(hours=1)):
        return redemptions.confirm(self.session, redemption.merchant_id, redemption.code,
                                   confirmed_by=1, now=now)

    def points(self, redeemer_or_address) -> ledger.AccountBalance:
        address = getattr(redeemer_or_address, "account", redeemer_or_address)
        return ledger.balance(self.session, address)

    def stock(self, item: Item) -> int | None:
        return self.session.scalar(sa.select(Item.stock).where(Item.id == item.id))

    def snapshot(self, redeemer: Redeemer, item: Item) -> dict:
        """What a refusal must leave alone."""
        count = self.session.scalar
        balance = self.points(redeemer)
        return {
            "posted": balance.posted, "pending": balance.pending, "stock": self.stock(item),
            "redemptions": count(sa.select(sa.func.count()).select_from(Redemption)),
            "holds": count(sa.select(sa.func.count()).select_from(ledger.Hold)),
            "transactions": count(sa.select(sa.func.count()).select_from(ledger.Transaction)),
        }


@pytest.fixture
def world(session) -> World:
    return World(session)


# The lifecycle, step by step


def test_reserving_holds_the_points_takes_the_stock_and_issues_a_typeable_code(world):
    volunteer, item = world.volunteer(100), world.item(price=30, stock=5)

    redemption = world.reserve(volunteer, item)

    assert redemption.status == "reserved"
    assert redemption.points == 30 and redemption.quantity == 1
    assert len(redemption.code) == 10 and set(redemption.code) <= set(CODE_ALPHABET)
    assert redemption.expires_at == T0 + timedelta(days=7)
    balance = world.points(volunteer)
    assert (balance.posted, balance.pending, balance.available) == (100, 30, 70)
    assert world.stock(item) == 4
    assert world.points(world.shop.account()).posted == 0


def test_confirming_posts_the_held_points_to_the_merchant_once(world):
    volunteer, item = world.volunteer(100), world.item(price=30, stock=5)
    redemption = world.reserve(volunteer, item, 2)

    confirmed = world.confirm(redemption)

    assert confirmed.status == "fulfilled" and confirmed.fulfilled_by == 1
    balance = world.points(volunteer)
    assert (balance.posted, balance.pending) == (40, 0)
    assert world.points(world.shop.account()).posted == 60
    assert world.stock(item) == 3
    with pytest.raises(RedemptionNotReserved):
        world.confirm(redemption)
    assert world.points(world.shop.account()).posted == 60


def test_cancelling_returns_the_points_and_the_stock(world):
    volunteer, item = world.volunteer(100), world.item(price=30, stock=5)
    redemption = world.reserve(volunteer, item, 2)

    redemptions.cancel(world.session, volunteer.id, redemption.id, now=T0 + timedelta(hours=1))

    assert redemption.status == "cancelled"
    balance = world.points(volunteer)
    assert (balance.posted, balance.pending) == (100, 0)
    assert world.stock(item) == 5
    assert ledger.get_hold(world.session, redemption.hold_id).status == "voided"


def test_a_service_without_stock_stays_unlimited(world):
    volunteer, item = world.volunteer(100), world.item(stock=None, price=10)

    redemption = world.reserve(volunteer, item, 3)
    redemptions.cancel(world.session, volunteer.id, redemption.id)

    assert world.stock(item) is None
    assert redemption.stock_kept is False


def test_expire_due_expires_only_redemptions_past_their_deadline_and_only_once(world):
    volunteer, item = world.volunteer(100), world.item(price=10, stock=5)
    old = world.reserve(volunteer, item, now=T0)
    recent = world.reserve(volunteer, item, now=T0 + timedelta(days=3))

    expired = redemptions.expire_due(world.session, now=T0 + timedelta(days=7, minutes=1))
    again = redemptions.expire_due(world.session, now=T0 + timedelta(days=7, minutes=2))

    assert old.id in expired and recent.id not in expired
    assert old.id not in again
    assert (old.status, recent.status) == ("expired", "reserved")
    assert world.points(volunteer).pending == 10
    assert world.stock(item) == 4
    assert ledger.get_hold(world.session, old.hold_id).status == "voided"


def test_a_redemption_past_its_deadline_cannot_be_confirmed_even_before_the_sweep(world):
    volunteer, item = world.volunteer(100), world.item(price=10)
    redemption = world.reserve(volunteer, item)

    with pytest.raises(RedemptionNotReserved) as refused:
        world.confirm(redemption, now=T0 + timedelta(days=8))

    assert refused.value.current == "expired"
    assert world.points(world.shop.account()).posted == 0
    assert world.points(volunteer).pending == 10


def test_expiring_a_hold_the_ledger_already_released_still_returns_the_stock(world):
    volunteer, item = world.volunteer(100), world.item(price=10, stock=2)
    redemption = world.reserve(volunteer, item)
    ledger.expire_holds(world.session, now=T0 + timedelta(days=8))

    redemptions.expire_due(world.session, now=T0 + timedelta(days=8))

    assert redemption.status == "expired"
    assert world.stock(item) == 2
    assert world.points(volunteer).pending == 0


def test_a_refund_returns_the_points_and_the_stock(world):
    volunteer, item = world.volunteer(100), world.item(price=30, stock=5)
    redemption = world.confirm(world.reserve(volunteer, item, 2))

    redemptions.refund(world.session, redemption.id, reason="面已售罄", merchant_id=world.shop.id,
                       now=T0 + timedelta(days=1))

    assert redemption.status == "refunded" and redemption.refund_reason == "面已售罄"
    assert world.points(volunteer).posted == 100
    assert world.points(world.shop.account()).posted == 0
    assert world.stock(item) == 5


def test_staff_refund_only_their_communitys_merchants_and_merchants_only_their_own(world):
    volunteer, item = world.volunteer(100), world.item(price=30)
    redemption = world.confirm(world.reserve(volunteer, item))
    other = create_community(world.session, f"别的社区{uuid.uuid4().hex[:8]}")

    for scope in ({"merchant_id": world.charity.id}, {"community_id": other.id}, {}):
        with pytest.raises(UnknownRedemption):
            redemptions.refund(world.session, redemption.id, reason="试试", **scope)
    redemptions.refund(world.session, redemption.id, reason="顾客退货",
                       community_id=world.community.id)

    assert world.points(volunteer).posted == 100


def test_a_refund_needs_a_reason_and_a_fulfilled_redemption(world):
    volunteer, item = world.volunteer(100), world.item(price=30)
    reserved = world.reserve(volunteer, item)
    fulfilled = world.confirm(world.reserve(volunteer, item))

    with pytest.raises(RedemptionNotFulfilled):
        redemptions.refund(world.session, reserved.id, reason="不要了", merchant_id=world.shop.id)
    for reason in ("", "   ", "长" * 201):
        with pytest.raises(ReasonRequired):
            redemptions.refund(world.session, fulfilled.id, reason=reason,
                               merchant_id=world.shop.id)
    redemptions.refund(world.session, fulfilled.id, reason="退货", merchant_id=world.shop.id)
    with pytest.raises(RedemptionNotFulfilled):
        redemptions.refund(world.session, fulfilled.id, reason="退货", merchant_id=world.shop.id)

    assert world.points(volunteer).posted == 100


def test_state_changes_refuse_what_is_no_longer_reserved(world):
    volunteer, item = world.volunteer(100), world.item(price=10)
    cancelled = world.reserve(volunteer, item)
    redemptions.cancel(world.session, volunteer.id, cancelled.id)
    fulfilled = world.confirm(world.reserve(volunteer, item))

    with pytest.raises(RedemptionNotReserved):
        world.confirm(cancelled)
    with pytest.raises(RedemptionNotReserved):
        redemptions.cancel(world.session, volunteer.id, fulfilled.id)
    with pytest.raises(RedemptionNotReserved):
        redemptions.cancel(world.session, volunteer.id, cancelled.id)

    balance = world.points(volunteer)
    assert (balance.posted, balance.pending) == (90, 0)


def test_a_code_is_unknown_to_another_merchant_and_a_redemption_to_another_volunteer(world):
    volunteer, item = world.volunteer(100), world.item(price=10)
    redemption = world.reserve(volunteer, item)

    with pytest.raises(UnknownRedemption):
        redemptions.find_by_code(world.session, world.charity.id, redemption.code)
    with pytest.raises(UnknownRedemption):
        redemptions.confirm(world.session, world.charity.id, redemption.code, confirmed_by=1)
    with pytest.raises(UnknownRedemption):
        redemptions.cancel(world.session, volunteer.id + 1, redemption.id)

    assert redemption.status == "reserved"
    typed = redemptions.format_code(redemption.code).lower()
    assert redemptions.find_by_code(world.session, world.shop.id, f" {typed} ") is redemption


# Refusals write nothing


@pytest.mark.parametrize(("setup", "error"), [
    ({"item": {"price": 200}}, ledger.InsufficientFunds),
    ({"item": {"price": 200, "stock": None}}, ledger.InsufficientFunds),
    ({"item": {"stock": None, "monthly_limit": 2}, "quantity": 3}, OverPersonalLimit),
    ({"item": {"stock": 2}, "quantity": 3}, OutOfStock),
    ({"item": {"stock": 0}}, OutOfStock),
    ({"item": {"min_tier": "silver"}, "tier": "bronze"}, TierTooLow),
    ({"item": {"min_tier": "bronze"}, "tier": None}, TierTooLow),
    ({"item": {"valid_from": TODAY + timedelta(days=1)}}, ItemUnavailable),
    ({"item": {"valid_to": TODAY - timedelta(days=1)}}, ItemUnavailable),
    ({"item": {"active": False}}, ItemUnavailable),
    ({"quantity": 0}, InvalidQuantity),
    ({"quantity": -1}, InvalidQuantity),
    ({"quantity": 100}, InvalidQuantity),
    ({"quantity": 1.5}, InvalidQuantity),
    ({"quantity": True}, InvalidQuantity),
    ({"quantity": "2"}, InvalidQuantity),
    ({"quantity": None}, InvalidQuantity),
], ids=["over-balance", "over-balance-unlimited", "over-monthly-limit", "over-stock",
        "sold-out", "tier-too-low", "no-tier", "not-yet-valid",
        "no-longer-valid", "inactive", "qty-0", "qty-negative", "qty-100", "qty-1.5",
        "qty-True", "qty-str", "qty-None"])
def test_a_refused_redemption_writes_nothing(world, setup, error):
    volunteer = world.volunteer(100, tier=setup.get("tier"))
    item = world.item(**{"price": 10, **setup.get("item", {})})
    before = world.snapshot(volunteer, item)

    with pytest.raises(error):
        world.reserve(volunteer, item, setup.get("quantity", 1))

    assert world.snapshot(volunteer, item) == before


def test_the_monthly_limit_counts_live_redemptions_of_this_month_only(world):
    volunteer, item = world.volunteer(100), world.item(price=5, stock=None, monthly_limit=2)
    last_month = world.reserve(volunteer, item, 2, now=MONTH - timedelta(days=2))
    world.confirm(last_month, now=MONTH - timedelta(days=1))
    cancelled = world.reserve(volunteer, item, 2)
    redemptions.cancel(world.session, volunteer.id, cancelled.id)
    world.confirm(world.reserve(volunteer, item, 1))
    world.reserve(volunteer, item, 1)
    before = world.snapshot(volunteer, item)

    with pytest.raises(OverPersonalLimit) as refused:
        world.reserve(volunteer, item, 1)

    assert refused.value.details == {"item_id": item.id, "limit": 2, "taken": 2}
    assert world.snapshot(volunteer, item) == before
    assert world.reserve(world.volunteer(100), item, 2).status == "reserved"


def test_a_tier_at_or_above_the_minimum_may_redeem(world):
    item = world.item(price=10, min_tier="silver")

    for tier in ("silver", "gold"):
        assert world.reserve(world.volunteer(100, tier=tier), item).status == "reserved"


@pytest.mark.parametrize("what", ["proposed", "rejected", "merchant-inactive",
                                  "other-community", "unknown", "true-as-id"])
def test_an_item_the_volunteer_may_not_redeem_writes_nothing(world, what):
    volunteer = world.volunteer(100)
    item = world.item(price=10)
    error = ItemUnavailable
    if what in ("proposed", "rejected"):
        item.status = what
    elif what == "merchant-inactive":
        world.shop.active = False
        error = UnknownItem  # a merchant that left is not shown to anyone
    elif what in ("unknown", "true-as-id"):
        error = UnknownItem
    elif what == "other-community":
        volunteer = world.volunteer(100, community_id=create_community(
            world.session, f"别的社区{uuid.uuid4().hex[:8]}").id)
        error = UnknownItem
    world.session.flush()
    before = world.snapshot(volunteer, item)

    with pytest.raises(error):
        if what in ("unknown", "true-as-id"):
            redemptions.reserve(world.session, volunteer,
                                True if what == "true-as-id" else item.id + 10_000, 1,
                                key="k", now=T0)
        else:
            world.reserve(volunteer, item)

    assert world.snapshot(volunteer, item) == before


def test_a_merchant_serving_several_communities_is_open_to_each(world):
    other = create_community(world.session, f"锦华社区{uuid.uuid4().hex[:8]}")
    shared = create_merchant(world.session, world.community.id, name="共享面馆",
                             serves_also=[other.id])
    item = world.item(shared, price=10)

    redemption = world.reserve(world.volunteer(100, community_id=other.id), item)

    assert redemption.merchant_id == shared.id


# Idempotency


def test_the_same_key_answers_the_same_redemption_without_a_second_hold(world):
    volunteer, item = world.volunteer(100), world.item(price=30, stock=5)
    first = world.reserve(volunteer, item, 2, key="tap-1")
    before = world.snapshot(volunteer, item)

    again = world.reserve(volunteer, item, 2, key="tap-1")

    assert again.id == first.id and again.code == first.code
    assert world.snapshot(volunteer, item) == before
    assert world.points(volunteer).pending == 60


def test_the_same_key_with_another_request_is_a_conflict_that_writes_nothing(world):
    volunteer, item = world.volunteer(100), world.item(price=30, stock=5)
    world.reserve(volunteer, item, 1, key="tap-1")
    before = world.snapshot(volunteer, item)

    with pytest.raises(RedemptionConflict):
        world.reserve(volunteer, item, 2, key="tap-1")

    assert world.snapshot(volunteer, item) == before


@pytest.mark.parametrize("change", ["deactivated", "sold-out", "merchant-closed"])
def test_a_retry_is_answered_even_once_the_item_can_no_longer_be_redeemed(world, change):
    volunteer, item = world.volunteer(100), world.item(price=30, stock=1)
    first = world.reserve(volunteer, item, 1, key="tap-1")
    if change == "deactivated":
        item.active = False
    elif change == "merchant-closed":
        item.merchant.active = False
    world.session.flush()
    before = world.snapshot(volunteer, item)

    again = world.reserve(volunteer, item, 1, key="tap-1")

    assert (again.id, again.code, again.status) == (first.id, first.code, "reserved")
    assert world.snapshot(volunteer, item) == before


def test_a_key_reused_for_another_item_is_a_conflict_even_if_that_item_is_unknown(world):
    volunteer, item = world.volunteer(100), world.item(price=30, stock=5)
    other = world.item(price=10, stock=5)
    world.reserve(volunteer, item, 1, key="tap-1")
    before = world.snapshot(volunteer, item)

    with pytest.raises(RedemptionConflict):
        world.reserve(volunteer, other, 1, key="tap-1")
    with pytest.raises(RedemptionConflict):
        redemptions.reserve(world.session, volunteer, 10**9, 1, key="tap-1", now=T0,
                            today=T0.date(), month_start=MONTH)

    assert world.snapshot(volunteer, item) == before


def test_keys_belong_to_one_volunteer(world):
    item = world.item(price=10)
    first = world.reserve(world.volunteer(100), item, key="same")

    second = world.reserve(world.volunteer(100), item, key="same")

    assert second.id != first.id


# Statements and settlement


def jan(day: int, hour: int = 4) -> datetime:
    return datetime(2025, 1, day, hour)


JANUARY = (datetime(2024, 12, 31, 16), datetime(2025, 1, 31, 16))  # local month, in UTC
FEBRUARY = (datetime(2025, 1, 31, 16), datetime(2025, 2, 28, 16))


def test_a_refund_after_settlement_lands_in_the_next_statement_and_the_frozen_one_stays(world):
    volunteer, item = world.volunteer(100), world.item(price=30, stock=5)
    handed = world.confirm(world.reserve(volunteer, item, now=jan(5)), now=jan(6))
    statement = settlement.close_period(world.session, world.shop.id, *JANUARY,
                                        fen_per_point=10, closed_by=1)
    frozen = (statement.redeemed_points, statement.refunded_points, statement.net_points,
              statement.amount_fen)
    frozen_lines = [(line.redemption_id, line.kind, line.points)
                    for line in settlement.statement_lines(world.session, statement)]
    assert frozen == (30, 0, 30, 300)
    assert frozen_lines == [(handed.id, "fulfilled", 30)]
    assert world.points(world.shop.account()).posted == 0
    assert world.points(world.shop.settlement_account()).posted == 30

    redemptions.refund(world.session, handed.id, reason="退货", merchant_id=world.shop.id,
                       now=datetime(2025, 2, 3, 4))

    assert world.points(volunteer).posted == 100
    assert world.points(world.shop.account()).posted == -30  # owed back until next settlement
    assert world.stock(item) == 5
    world.session.expire_all()
    again = world.session.get(Statement, statement.id)
    assert (again.redeemed_points, again.refunded_points, again.net_points,
            again.amount_fen) == frozen
    assert [(line.redemption_id, line.kind, line.points)
            for line in settlement.statement_lines(world.session, again)] == frozen_lines

    february = settlement.close_period(world.session, world.shop.id, *FEBRUARY,
                                       fen_per_point=10, closed_by=1)

    assert (february.redeemed_points, february.refunded_points, february.net_points,
            february.amount_fen) == (0, 30, -30, -300)
    assert world.points(world.shop.account()).posted == 0
    assert world.points(world.shop.settlement_account()).posted == 0


def test_a_period_counts_earlier_unsettled_hand_overs_and_each_only_once(world):
    volunteer, item = world.volunteer(200), world.item(price=10, stock=None)
    world.confirm(world.reserve(volunteer, item, now=datetime(2024, 12, 20)),
                  now=datetime(2024, 12, 21))
    world.confirm(world.reserve(volunteer, item, 2, now=jan(3)), now=jan(4))
    world.reserve(volunteer, item, 5, now=jan(8))  # reserved only: not the merchant's yet

    january = settlement.close_period(world.session, world.shop.id, *JANUARY,
                                      fen_per_point=0, closed_by=1)
    february = settlement.close_period(world.session, world.shop.id, *FEBRUARY,
                                       fen_per_point=0, closed_by=1)

    assert (january.redeemed_points, january.net_points, january.amount_fen) == (30, 30, 0)
    assert (february.redeemed_points, february.net_points) == (0, 0)
    assert february.transaction_id is None


def test_a_charity_supermarket_settles_with_no_money_and_a_partner_at_the_rate(world):
    volunteer = world.volunteer(200)
    rice, noodles = world.item(world.charity, name="东北大米 5kg", price=60), world.item(price=40)
    for item in (rice, noodles):
        world.confirm(world.reserve(volunteer, item, now=jan(5)), now=jan(6))

    charity = settlement.close_period(world.session, world.charity.id, *JANUARY,
                                      fen_per_point=5, closed_by=1)
    partner = settlement.close_period(world.session, world.shop.id, *JANUARY,
                                      fen_per_point=5, closed_by=1)

    assert (charity.net_points, charity.fen_per_point, charity.amount_fen) == (60, 0, 0)
    assert (partner.net_points, partner.fen_per_point, partner.amount_fen) == (40, 5, 200)
    assert world.points(world.charity.settlement_account()).posted == 60


def test_an_overlapping_or_unfinished_or_backwards_period_is_refused(world):
    world.confirm(world.reserve(world.volunteer(100), world.item(price=10), now=jan(5)),
                  now=jan(6))
    settlement.close_period(world.session, world.shop.id, *JANUARY, fen_per_point=1,
                            closed_by=1)
    count = sa.select(sa.func.count()).select_from(Statement)
    statements, lines = world.session.scalar(count), world.session.scalar(
        sa.select(sa.func.count()).select_from(StatementLine))

    with pytest.raises(PeriodAlreadyClosed):
        settlement.close_period(world.session, world.shop.id, jan(15), FEBRUARY[1],
                                fen_per_point=1, closed_by=1)
    with pytest.raises(PeriodAlreadyClosed):
        settlement.close_period(world.session, world.shop.id, *JANUARY, fen_per_point=1,
                                closed_by=1)
    with pytest.raises(InvalidPeriod):
        settlement.close_period(world.session, world.shop.id, FEBRUARY[1],
                                utcnow() + timedelta(days=40), fen_per_point=1,
                                closed_by=1)
    with pytest.raises(InvalidPeriod):
        settlement.close_period(world.session, world.shop.id, *reversed(FEBRUARY),
                                fen_per_point=1, closed_by=1)
    for rate in (-1, 1.5, True, 100_001):
        with pytest.raises(InvalidPeriod):
            settlement.close_period(world.session, world.shop.id, *FEBRUARY,
                                    fen_per_point=rate, closed_by=1)

    assert world.session.scalar(count) == statements
    assert world.session.scalar(
        sa.select(sa.func.count()).select_from(StatementLine)) == lines


def test_period_lines_show_hand_overs_and_refunds_in_the_period(world):
    volunteer, item = world.volunteer(100), world.item(price=30)
    handed = world.confirm(world.reserve(volunteer, item, now=jan(5)), now=jan(6))
    redemptions.refund(world.session, handed.id, reason="退货", merchant_id=world.shop.id,
                       now=jan(7))

    lines = settlement.period_lines(world.session, world.shop.id, *JANUARY)

    assert [(line.kind, line.points) for line in lines] == [("fulfilled", 30), ("refund", -30)]
    assert settlement.period_lines(world.session, world.shop.id, *FEBRUARY) == []
    assert settlement.period_lines(world.session, world.charity.id, *JANUARY) == []

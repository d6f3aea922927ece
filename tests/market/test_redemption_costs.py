"""What a redemption costs: the tier is worked out only for tier-gated items.

A volunteer's tier costs queries (rules, MERIT in the window, years of service), so the
marketplace asks for it only when an item has a minimum tier.
"""

import uuid
from dataclasses import replace

import pytest

import ledger
from merchants import redemptions
from merchants.errors import TierTooLow
from merchants.items import create_item, create_merchant
from merchants.redemptions import Redeemer
from pointsmall.people.communities import create_community


@pytest.fixture
def shop(session):
    community = create_community(session, f"费用社区{uuid.uuid4().hex[:8]}")
    merchant = create_merchant(session, community.id, name="街角面馆")
    account = f"volunteer:{uuid.uuid4().int % 10**9 + 10**9}:points"
    ledger.open_account(session, account, "POINTS")
    ledger.move(session, community.account("POINTS"), account, 100, key=f"fund:{account}",
                kind="award")
    return community, merchant, account


def redeemer(community, account, asked: list, tier: str | None) -> Redeemer:
    def tier_of():
        asked.append(1)
        return tier

    return Redeemer(7, account, "张*", community.id, tier_of=tier_of)


def test_an_item_without_a_minimum_tier_never_asks_for_the_tier(session, shop):
    community, merchant, account = shop
    item = create_item(session, merchant.id, {"name": "阳春面", "price": 10, "stock": 3})
    asked = []
    redemptions.reserve(session, redeemer(community, account, asked, None), item.id, 1,
                        key="plain")
    assert asked == []


def test_a_tier_gated_item_asks_for_the_tier_and_judges_by_it(session, shop):
    community, merchant, account = shop
    item = create_item(session, merchant.id,
                       {"name": "金牌套餐", "price": 10, "stock": 3, "min_tier": "silver"})
    asked = []
    with pytest.raises(TierTooLow):
        redemptions.reserve(session, redeemer(community, account, asked, "bronze"), item.id,
                            1, key="low")
    assert asked == [1]
    found = redemptions.reserve(session, redeemer(community, account, asked, "gold"),
                                item.id, 1, key="high")
    assert found.status == "reserved" and asked == [1, 1]


def test_a_plain_tier_still_works_without_a_callable(session, shop):
    community, merchant, account = shop
    item = create_item(session, merchant.id,
                       {"name": "银牌套餐", "price": 10, "stock": 3, "min_tier": "silver"})
    plain = Redeemer(8, account, "李*", community.id, "silver")
    assert plain.current_tier() == "silver"
    assert replace(plain, tier=None).current_tier() is None
    assert redemptions.reserve(session, plain, item.id, 1, key="k").status == "reserved"

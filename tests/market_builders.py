"""Builders for the marketplace's app tests: shops with their staff, items, redemptions.

Import them next to the fixtures of builders.py; they write through db.session and commit
(a savepoint of the test's rolled-back transaction) so that requests see the rows.
"""

from dataclasses import dataclass
from datetime import datetime

import pytest
from builders import PASSWORD_HASH, serial

from merchants import items, redemptions
from merchants.models import Item, Merchant, Redemption
from pointsmall.auth.models import User
from pointsmall.core import clock
from pointsmall.extensions import db
from pointsmall.market.actions import redeemer_for
from pointsmall.people.models import Volunteer


@dataclass
class Shop:
    """A merchant and one of its staff users."""

    merchant: Merchant
    user: User

    @property
    def id(self) -> int:
        return self.merchant.id


@pytest.fixture
def make_shop(app):
    def build(place, *, kind: str = "partner", name: str | None = None) -> Shop:
        merchant = items.create_merchant(db.session, place.id, kind=kind,
                                         name=name or f"老街牛肉面{serial()}")
        user = User(username=f"shop{serial()}", name=merchant.name, role="merchant",
                    merchant_id=merchant.id, password_hash=PASSWORD_HASH)
        db.session.add(user)
        db.session.commit()
        return Shop(merchant, user)

    return build


@pytest.fixture
def make_item(app):
    def build(shop: Shop, **fields) -> Item:
        item = items.create_item(db.session, shop.id,
                                 {"name": f"招牌牛肉面{serial()}", "price": 30, "stock": 5,
                                  "category": "food", **fields})
        db.session.commit()
        return item

    return build


@pytest.fixture
def redeem(app):
    """Reserve through the service (optionally at another moment), as the mall would."""
    def build(volunteer: Volunteer, item: Item, quantity: int = 1, *,
              now: datetime | None = None) -> Redemption:
        now = now or clock.utcnow()
        today = clock.to_local(now).date()
        redemption = redemptions.reserve(
            db.session, redeemer_for(volunteer), item.id, quantity, key=f"test:{serial()}",
            now=now, today=today, month_start=clock.local_month_bounds(today)[0])
        db.session.commit()
        return redemption

    return build


# The world most market tests start from: a community, a noodle shop, a funded volunteer.
@pytest.fixture
def place(make_community):
    return make_community()


@pytest.fixture
def shop(place, make_shop):
    return make_shop(place, name="老街牛肉面")


@pytest.fixture
def volunteer(place, make_volunteer):
    return make_volunteer(place, name="张三", points=100)


@pytest.fixture
def noodles(shop, make_item):
    return make_item(shop, name="招牌牛肉面", price=30, stock=5)

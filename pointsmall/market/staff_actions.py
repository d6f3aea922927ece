"""What community staff do in the marketplace: merchants, items, the point's value, settlement.

One function per action, as in `actions`: it checks that the merchant or item is the
staff's community's, calls the marketplace, records the audit entry and commits; a refusal
rolls everything back and is raised.
"""

from datetime import date, timedelta
from typing import BinaryIO

import sqlalchemy.orm as so
from flask_babel import gettext as _

from merchants import items as item_service
from merchants import settlement
from merchants.models import Item, Merchant, Statement
from pointsmall.auth.models import User
from pointsmall.core import audit, clock
from pointsmall.core.errors import Forbidden, ValidationFailed
from pointsmall.core.photos import save_item_photo
from pointsmall.core.transactions import committed
from pointsmall.people.communities import Community

MAX_POINT_VALUE = 100_000  # fen (0.01 yuan) per point


def _community_id(actor: User | None) -> int:
    if actor is None or actor.role != "staff" or not actor.community_id:
        raise Forbidden()
    return actor.community_id


def create_merchant(session: so.Session, actor: User | None, *, name: str, kind: str,
                    address: str = "", opening_hours: str = "", contact: str = "") -> Merchant:
    """Add a merchant (a partner shop or the charity supermarket) to the staff's community."""
    community_id = _community_id(actor)
    with committed(session):
        merchant = item_service.create_merchant(
            session, community_id, name=name, kind=kind, address=address,
            opening_hours=opening_hours, contact=contact)
        audit.record(session, "merchant.create", f"merchant:{merchant.id}",
                     community_id=community_id, actor=actor, name=merchant.name)
    return merchant


def set_point_value(session: so.Session, actor: User | None, fen_per_point: int) -> Community:
    """Set what one point is worth in fen when the community's merchants settle."""
    community_id = _community_id(actor)
    if isinstance(fen_per_point, bool) or not isinstance(fen_per_point, int) or not (
            0 <= fen_per_point <= MAX_POINT_VALUE):
        raise ValidationFailed({"fen_per_point": [_("From 0 to 100000.")]})
    with committed(session):
        community = session.get(Community, community_id)
        audit.record(session, "community.point_value", f"community:{community_id}",
                     community_id=community_id, actor=actor, before=community.fen_per_point,
                     after=fen_per_point)
        community.fen_per_point = fen_per_point
    return community


def save_item(session: so.Session, actor: User | None, item_id: int | None, merchant_id: int,
              fields: dict, *, stock_seen=item_service.ABSOLUTE,
              photo: BinaryIO | None = None) -> Item:
    """Add an item (`item_id` None) or change one, of a merchant of the staff's community.

    `stock_seen` is the stock the editor's form showed (see `items.update_item`).
    """
    community_id = _community_id(actor)
    with committed(session):
        found = (item_service.managed_item(session, item_id, community_id)
                 if item_id is not None else None)
        item_service.managed_merchant(session, merchant_id, community_id)
        if found is None:
            found = item_service.create_item(session, merchant_id, fields)
            action = "item.create"
        else:
            found.merchant_id = merchant_id
            item_service.update_item(session, found, fields, stock_seen=stock_seen)
            action = "item.update"
        if photo is not None:
            found.photo = save_item_photo(photo, _("Not an image we can read."))
        audit.record(session, action, f"item:{found.id}", community_id=community_id,
                     actor=actor, name=found.name, price=found.price, stock=found.stock)
    return found


def review_item(session: so.Session, actor: User | None, item_id: int, *,
                approve: bool) -> Item:
    """Approve or reject an item a merchant proposed."""
    community_id = _community_id(actor)
    verdict = "approve" if approve else "reject"
    with committed(session):
        found = item_service.managed_item(session, item_id, community_id)
        item_service.review_item(session, found, approve)
        audit.record(session, f"item.{verdict}", f"item:{found.id}",
                     community_id=community_id, actor=actor)
    return found


def close_statement(session: so.Session, actor: User | None, merchant_id: int, start: date,
                    end: date) -> Statement:
    """Close a merchant's period from `start` to `end` (local days, inclusive): freeze its
    statement and move the points to settlement at the community's point value."""
    community_id = _community_id(actor)
    with committed(session):
        merchant = item_service.managed_merchant(session, merchant_id, community_id)
        statement = settlement.close_period(
            session, merchant.id, clock.utc_start_of(start),
            clock.utc_start_of(end + timedelta(days=1)),
            fen_per_point=session.get(Community, community_id).fen_per_point,
            closed_by=actor.id)
        audit.record(session, "statement.close", f"statement:{statement.id}",
                     community_id=community_id, actor=actor, merchant=merchant.name,
                     net_points=statement.net_points, amount_fen=statement.amount_fen)
    return statement

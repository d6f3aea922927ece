"""Merchants and their items: create, change, propose and approve; the mall's listing."""

from datetime import date

import sqlalchemy as sa
import sqlalchemy.orm as so

import ledger
from ledger import MAX_AMOUNT
from merchants.errors import InvalidItem, UnknownItem
from merchants.models import TIERS, Item, Merchant, merchant_communities, merchant_scope
from merchants.visibility import serves

CATEGORIES = ("food", "grocery", "education", "service", "daily", "other")
MAX_STOCK = 1_000_000


def create_merchant(session: so.Session, community_id: int, *, name: str, kind: str = "partner",
                    address: str = "", opening_hours: str = "", contact: str = "",
                    serves_also: list[int] | None = None) -> Merchant:
    """Create a merchant managed by `community_id` and open its points accounts."""
    errors = {}
    name = (name or "").strip()
    if not name or len(name) > 80:
        errors["name"] = ["required"]
    if kind not in ("partner", "charity"):
        errors["kind"] = ["unknown"]
    if errors:
        raise InvalidItem(errors)
    merchant = Merchant(name=name, kind=kind, community_id=community_id, address=address[:200],
                        opening_hours=opening_hours[:120], contact=contact[:80])
    session.add(merchant)
    session.flush()
    for other in set(serves_also or []) - {community_id}:
        session.execute(merchant_communities.insert().values(merchant_id=merchant.id,
                                                             community_id=other))
    # A merchant's account may dip below zero: a refund after settlement is owed back
    # and nets out in the next statement.
    ledger.open_account(session, merchant.account(), "POINTS", allow_negative=True,
                        scope=merchant_scope(merchant.id))
    ledger.open_account(session, merchant.settlement_account(), "POINTS", allow_negative=True)
    return merchant


def clean_item(raw: dict) -> dict:
    """Check an item's fields; return them cleaned or raise InvalidItem with errors by field."""
    errors: dict[str, list[str]] = {}
    out = {}
    name = str(raw.get("name") or "").strip()
    if not name or len(name) > 80:
        errors["name"] = ["required"]
    out["name"] = name
    out["description"] = str(raw.get("description") or "").strip()[:2000]
    category = raw.get("category") or "other"
    if category not in CATEGORIES:
        errors["category"] = ["unknown"]
    out["category"] = category
    price = raw.get("price")
    if isinstance(price, bool) or not isinstance(price, int) or not 1 <= price <= MAX_AMOUNT:
        errors["price"] = ["positive_whole"]
    out["price"] = price
    for field, upper in (("stock", MAX_STOCK), ("monthly_limit", 1000)):
        value = raw.get(field)
        if value in (None, ""):
            value = None
        elif isinstance(value, bool) or not isinstance(value, int) or not (
                (0 if field == "stock" else 1) <= value <= upper):
            errors[field] = ["whole_in_range"]
        out[field] = value
    tier = raw.get("min_tier") or None
    if tier is not None and tier not in TIERS:
        errors["min_tier"] = ["unknown"]
    out["min_tier"] = tier
    for field in ("valid_from", "valid_to"):
        value = raw.get(field) or None
        if value is not None and not isinstance(value, date):
            errors[field] = ["date"]
        out[field] = value
    if (isinstance(out["valid_from"], date) and isinstance(out["valid_to"], date)
            and out["valid_to"] < out["valid_from"]):
        errors["valid_to"] = ["before_start"]
    out["active"] = bool(raw.get("active", True))
    if errors:
        raise InvalidItem(errors)
    return out


def create_item(session: so.Session, merchant_id: int, raw: dict, *,
                proposed_by: int | None = None) -> Item:
    """Add an item; one proposed by merchant staff waits for community staff to approve it."""
    fields = clean_item(raw)
    item = Item(merchant_id=merchant_id, **fields,
                status="proposed" if proposed_by else "approved", proposed_by=proposed_by)
    session.add(item)
    session.flush()
    return item


ABSOLUTE = object()  # update_item(stock_seen=ABSOLUTE): set the stock as given


def update_item(session: so.Session, item: Item, raw: dict, *,
                stock_seen: int | None | object = ABSOLUTE) -> Item:
    """Change an item's fields.

    Stock moves under the editor's feet as volunteers redeem, so it is changed only when
    the editor changed it, and only if it is still what the editor saw (`stock_seen`);
    otherwise the form would put reserved units back on the shelf.
    """
    fields = clean_item(raw)
    session.execute(sa.select(Item.id).where(Item.id == item.id).with_for_update())
    session.refresh(item, ["stock"])
    wanted = fields.pop("stock")
    if stock_seen is ABSOLUTE:
        item.stock = wanted
    elif wanted != stock_seen:
        if item.stock != stock_seen:
            raise InvalidItem({"stock": ["changed"]})
        item.stock = wanted
    for field, value in fields.items():
        setattr(item, field, value)
    session.flush()
    return item


def review_item(session: so.Session, item: Item, approve: bool) -> Item:
    """Approve or reject an item merchant staff proposed."""
    if item.status != "proposed":
        raise InvalidItem({"status": ["not_proposed"]})
    item.status = "approved" if approve else "rejected"
    session.flush()
    return item


def managed_item(session: so.Session, item_id: int, community_id: int) -> Item:
    """Return an item of a merchant `community_id` manages, else UnknownItem."""
    item = session.get(Item, item_id) if isinstance(item_id, int) else None
    if item is None or item.merchant.community_id != community_id:
        raise UnknownItem(item_id)
    return item


def managed_merchant(session: so.Session, merchant_id: int, community_id: int) -> Merchant:
    merchant = session.get(Merchant, merchant_id) if isinstance(merchant_id, int) else None
    if merchant is None or merchant.community_id != community_id:
        raise UnknownItem(merchant_id)
    return merchant


def mall_items(community_id: int, today: date, *, merchant_id: int | None = None,
               category: str | None = None, max_price: int | None = None) -> sa.Select:
    """Return the query for items volunteers of `community_id` can redeem on `today`."""
    query = (sa.select(Item).join(Item.merchant)
             .where(serves(community_id), Item.active, Item.status == "approved",
                    sa.or_(Item.valid_from.is_(None), Item.valid_from <= today),
                    sa.or_(Item.valid_to.is_(None), Item.valid_to >= today))
             .order_by(Merchant.kind.desc(), Item.price, Item.id))
    if merchant_id:
        query = query.where(Item.merchant_id == merchant_id)
    if category:
        query = query.where(Item.category == category)
    if max_price is not None:
        query = query.where(Item.price <= max_price)
    return query


def get_mall_item(session: so.Session, item_id: int, community_id: int) -> Item:
    """Return an item a volunteer of `community_id` may look at, else UnknownItem."""
    item = session.scalar(
        sa.select(Item).join(Item.merchant)
        .where(Item.id == item_id, serves(community_id), Item.status == "approved"))
    if item is None:
        raise UnknownItem(item_id)
    return item


def community_items(session: so.Session, community_id: int) -> list[Item]:
    """Return every item of the merchants a community manages, proposals first."""
    return list(session.scalars(
        sa.select(Item).join(Item.merchant).where(Merchant.community_id == community_id)
        .order_by(sa.case((Item.status == "proposed", 0), else_=1), Merchant.name, Item.name)))

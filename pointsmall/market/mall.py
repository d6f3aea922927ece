"""The volunteer's points mall: browse, redeem, show the code, cancel."""

import uuid

import sqlalchemy as sa
from flask import Blueprint, flash, jsonify, redirect, render_template, request, session, url_for
from flask_babel import gettext as _
from flask_login import current_user

import ledger
from merchants import items as item_service
from merchants import redemptions
from merchants.items import CATEGORIES
from merchants.models import TIERS, Item, Merchant, Redemption
from pointsmall.auth.views import EmptyForm
from pointsmall.core import clock
from pointsmall.core.labels import TIER_LABELS
from pointsmall.core.qr import qr_data_uri
from pointsmall.core.shell import roles_required
from pointsmall.earning import tiers
from pointsmall.extensions import db
from pointsmall.market import actions
from pointsmall.people.models import Volunteer

bp = Blueprint("mall", __name__, url_prefix="/mall")


def current_volunteer() -> Volunteer | None:
    # Read with the user for a bearer token (pointsmall.auth.service); else asked now.
    return current_user.volunteer


@bp.get("/")
@roles_required("volunteer")
def index():
    """List what the volunteer can redeem, filtered by merchant, category or affordability."""
    volunteer = current_volunteer()
    balance = ledger.balance(db.session, volunteer.account("POINTS"))
    affordable = request.args.get("affordable") == "1"
    query = item_service.mall_items(
        volunteer.community_id, clock.local_today(),
        merchant_id=request.args.get("merchant", type=int),
        category=request.args.get("category") or None,
        max_price=balance.available if affordable else None)
    page = db.paginate(query, page=request.args.get("page", 1, type=int), per_page=20,
                       error_out=False)
    merchants = db.session.scalars(
        sa.select(Merchant).where(item_service.serves(volunteer.community_id))
        .order_by(Merchant.name)).all()
    return render_template("market/mall/index.html", page=page, balance=balance,
                           merchants=merchants, categories=CATEGORIES, affordable=affordable)


@bp.get("/items/<int:item_id>")
@roles_required("volunteer")
def item(item_id: int):
    """Show one item with the form that redeems it, or why it cannot be redeemed now."""
    volunteer = current_volunteer()
    found = item_service.get_mall_item(db.session, item_id, volunteer.community_id)
    balance = ledger.balance(db.session, volunteer.account("POINTS"))
    refusal, most = why_not(found, volunteer, balance.available)
    # After a refusal the form comes back with the quantity that was asked for.
    kept = session.pop(KEPT_QUANTITY, None)
    quantity = kept[1] if isinstance(kept, list) and kept[:1] == [item_id] else 1
    # A fresh key per rendered form: pressing the button twice redeems once.
    return render_template("market/mall/item.html", item=found, balance=balance, form=EmptyForm(),
                           key=uuid.uuid4().hex, refusal=refusal, most=most,
                           quantity=quantity)


KEPT_QUANTITY = "mall_quantity"


def why_not(item: Item, volunteer: Volunteer, available: int) -> tuple[str | None, int]:
    """Say why `volunteer` cannot redeem even one `item` now (None if they can), and the
    most they could take.

    A courtesy before the tap: `redemptions.reserve` still decides, and refuses whatever
    changed meanwhile.
    """
    most = min(redemptions.MAX_QUANTITY, available // item.price if item.price else 0)
    if item.stock is not None:
        most = min(most, item.stock)
    today = clock.local_today()
    if not item.active or not item.merchant.active or (
            item.valid_from and today < item.valid_from) or (
            item.valid_to and today > item.valid_to):
        return _("This item cannot be redeemed now."), 0
    if item.min_tier:
        tier = tiers.standing(db.session, volunteer, today=today).tier
        if tier is None or TIERS.index(tier) < TIERS.index(item.min_tier):
            needed = TIER_LABELS[item.min_tier]
            if tier is None:
                return _("This item is for %(needed)s volunteers and above; you are not "
                         "ranked yet.", needed=needed), 0
            return _("This item is for %(needed)s volunteers and above; you are %(tier)s.",
                     needed=needed, tier=TIER_LABELS[tier]), 0
    if item.stock is not None and item.stock < 1:
        return _("None left for now."), 0
    if item.monthly_limit:
        start, _end = clock.local_month_bounds(today)
        taken = db.session.scalar(
            sa.select(sa.func.coalesce(sa.func.sum(Redemption.quantity), 0))
            .where(Redemption.volunteer_id == volunteer.id, Redemption.item_id == item.id,
                   Redemption.status.in_(redemptions.LIVE), Redemption.created_at >= start))
        most = min(most, item.monthly_limit - int(taken))
        if most < 1 and taken >= item.monthly_limit:
            return _("You have redeemed this month's %(n)d already.",
                     n=item.monthly_limit), 0
    if available < item.price:
        return _("Not enough points: %(available)s available, %(needed)s needed.",
                 available=available, needed=item.price), 0
    return None, max(most, 1)


@bp.post("/items/<int:item_id>/redeem")
@roles_required("volunteer")
def redeem(item_id: int):
    """Hold the points, reserve the item and show the code."""
    if not EmptyForm().validate_on_submit():
        return redirect(url_for("mall.item", item_id=item_id))
    quantity = request.form.get("quantity", type=int) or 0
    session[KEPT_QUANTITY] = [item_id, quantity if 1 <= quantity <= 99 else 1]
    key = (request.form.get("key") or "")[:ledger.REQUEST_KEY_LEN] or uuid.uuid4().hex
    redemption = actions.redeem(db.session, current_user, item_id, quantity, key=key)
    session.pop(KEPT_QUANTITY, None)
    return redirect(url_for("mall.redemption", redemption_id=redemption.id))


@bp.get("/redemptions")
@roles_required("volunteer")
def my_redemptions():
    """List the volunteer's redemptions, newest first."""
    volunteer = current_volunteer()
    rows = redemptions.volunteer_redemptions(db.session, volunteer.id, limit=100)
    return render_template("market/mall/redemptions.html", rows=rows)


@bp.get("/redemptions/<int:redemption_id>")
@roles_required("volunteer")
def redemption(redemption_id: int):
    """Show a redemption: its code large with a QR code while it is reserved."""
    volunteer = current_volunteer()
    found = redemptions.get_for_volunteer(db.session, volunteer.id, redemption_id)
    balance = ledger.balance(db.session, volunteer.account("POINTS"))
    return render_template("market/mall/redemption.html", redemption=found, balance=balance,
                           code=redemptions.format_code(found.code), qr=qr_data_uri(found.code),
                           form=EmptyForm())


@bp.get("/redemptions/<int:redemption_id>/status")
@roles_required("volunteer")
def redemption_status(redemption_id: int):
    """Answer the code page's question "has the counter confirmed it yet?" in JSON."""
    volunteer = current_volunteer()
    found = redemptions.get_for_volunteer(db.session, volunteer.id, redemption_id)
    return jsonify(status=found.status)


@bp.post("/redemptions/<int:redemption_id>/cancel")
@roles_required("volunteer")
def cancel(redemption_id: int):
    """Cancel a reserved redemption: the points and the item return."""
    if EmptyForm().validate_on_submit():
        actions.cancel(db.session, current_user, redemption_id)
        flash(_("Cancelled. The points are back."), "success")
    return redirect(url_for("mall.redemption", redemption_id=redemption_id))



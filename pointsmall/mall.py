"""The volunteer's points mall: browse, redeem, show the code, cancel."""

import base64
import io
import uuid

import qrcode
import qrcode.image.svg
import sqlalchemy as sa
from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user

import ledger
from merchants import items as item_service
from merchants import redemptions
from merchants.items import CATEGORIES
from merchants.models import Merchant
from pointsmall import clock, tiers
from pointsmall.auth.views import EmptyForm
from pointsmall.extensions import db
from pointsmall.shell import roles_required
from pointsmall.volunteers.models import Volunteer

bp = Blueprint("mall", __name__, url_prefix="/mall")


def current_volunteer() -> Volunteer | None:
    # Read with the user for a bearer token (pointsmall.auth.service); else asked now.
    return current_user.volunteer


def mask_name(name: str) -> str:
    """Show a name as the counter sees it: the surname, then stars (张*, 欧***)."""
    name = (name or "").strip()
    return name[:1] + "*" * max(1, len(name) - 1) if name else "*"


def redeemer_for(volunteer: Volunteer) -> redemptions.Redeemer:
    """Describe a volunteer to the marketplace: id, account, masked name, tier.

    The tier is worked out only if the item asks for one: most items do not, and it
    costs three queries.
    """
    def tier() -> str | None:
        return tiers.standing(db.session, volunteer, today=clock.local_today()).tier

    return redemptions.Redeemer(volunteer.id, volunteer.account("POINTS"),
                                mask_name(volunteer.name), volunteer.community_id,
                                tier_of=tier)


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
    return render_template("mall/index.html", page=page, balance=balance, merchants=merchants,
                           categories=CATEGORIES, affordable=affordable)


@bp.get("/items/<int:item_id>")
@roles_required("volunteer")
def item(item_id: int):
    """Show one item with the form that redeems it."""
    volunteer = current_volunteer()
    found = item_service.get_mall_item(db.session, item_id, volunteer.community_id)
    balance = ledger.balance(db.session, volunteer.account("POINTS"))
    # A fresh key per rendered form: pressing the button twice redeems once.
    return render_template("mall/item.html", item=found, balance=balance, form=EmptyForm(),
                           key=uuid.uuid4().hex)


@bp.post("/items/<int:item_id>/redeem")
@roles_required("volunteer")
def redeem(item_id: int):
    """Hold the points, reserve the item and show the code."""
    if not EmptyForm().validate_on_submit():
        return redirect(url_for("mall.item", item_id=item_id))
    volunteer = current_volunteer()
    quantity = request.form.get("quantity", type=int) or 0
    key = (request.form.get("key") or "")[:64] or uuid.uuid4().hex
    start, _end = clock.local_month_bounds(clock.local_today())
    redemption = redemptions.reserve(
        db.session, redeemer_for(volunteer), item_id, quantity, key=key,
        hold_days=current_app_config("REDEMPTION_HOLD_DAYS"), today=clock.local_today(),
        month_start=start)
    db.session.commit()
    return redirect(url_for("mall.redemption", redemption_id=redemption.id))


@bp.get("/redemptions")
@roles_required("volunteer")
def my_redemptions():
    """List the volunteer's redemptions, newest first."""
    volunteer = current_volunteer()
    rows = redemptions.volunteer_redemptions(db.session, volunteer.id, limit=100)
    return render_template("mall/redemptions.html", rows=rows)


@bp.get("/redemptions/<int:redemption_id>")
@roles_required("volunteer")
def redemption(redemption_id: int):
    """Show a redemption: its code large with a QR code while it is reserved."""
    volunteer = current_volunteer()
    found = redemptions.get_for_volunteer(db.session, volunteer.id, redemption_id)
    balance = ledger.balance(db.session, volunteer.account("POINTS"))
    return render_template("mall/redemption.html", redemption=found, balance=balance,
                           code=redemptions.format_code(found.code), qr=qr_data_uri(found.code),
                           form=EmptyForm())


@bp.post("/redemptions/<int:redemption_id>/cancel")
@roles_required("volunteer")
def cancel(redemption_id: int):
    """Cancel a reserved redemption: the points and the item return."""
    if EmptyForm().validate_on_submit():
        volunteer = current_volunteer()
        redemptions.cancel(db.session, volunteer.id, redemption_id)
        db.session.commit()
        flash(_("Cancelled. The points are back."), "success")
    return redirect(url_for("mall.redemption", redemption_id=redemption_id))


def qr_data_uri(text: str) -> str:
    """Return an SVG QR code of `text` as a data: URI (allowed by our CSP's img-src)."""
    image = qrcode.make(text, image_factory=qrcode.image.svg.SvgPathImage, box_size=12,
                        border=2)
    buffer = io.BytesIO()
    image.save(buffer)
    return "data:image/svg+xml;base64," + base64.b64encode(buffer.getvalue()).decode()


def current_app_config(name: str):
    from flask import current_app

    return current_app.config[name]

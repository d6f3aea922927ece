"""Community staff pages for the marketplace: merchants, items, redemptions, settlement."""

from datetime import date, timedelta

import sqlalchemy as sa
from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from flask_wtf import FlaskForm
from flask_wtf.file import FileField
from wtforms import (
    BooleanField,
    DateField,
    HiddenField,
    IntegerField,
    SelectField,
    StringField,
    TextAreaField,
)
from wtforms.validators import Optional

from merchants import items as item_service
from merchants import settlement
from merchants.errors import InvalidItem
from merchants.models import Merchant, Redemption, Statement
from pointsmall.auth.views import EmptyForm
from pointsmall.core import clock
from pointsmall.core.errors import NotFound, ValidationFailed
from pointsmall.core.labels import CATEGORY_LABELS, TIER_LABELS
from pointsmall.core.shell import roles_required
from pointsmall.extensions import db
from pointsmall.market import actions, staff_actions
from pointsmall.people.communities import Community

bp = Blueprint("market", __name__, url_prefix="/staff/market")

FIELD_ERRORS = {
    "changed": _l("Volunteers redeemed meanwhile: the stock is now different. Reload the "
                  "page and set it again."),
    "required": _l("Required."),
    "unknown": _l("Choose one of the options."),
    "positive_whole": _l("A whole number of points greater than zero."),
    "whole_in_range": _l("A whole number, or empty for no limit."),
    "date": _l("A date like 2026-12-31."),
    "before_start": _l("The end is before the start."),
    "not_proposed": _l("Only proposed items can be approved or rejected."),
}


class MerchantForm(FlaskForm):
    name = StringField(_l("Merchant name"))
    kind = SelectField(_l("Kind"), choices=[("partner", _l("Partner merchant")),
                                            ("charity", _l("Charity supermarket"))])
    address = StringField(_l("Address"))
    opening_hours = StringField(_l("Opening hours"))
    contact = StringField(_l("Contact"))


class ItemForm(FlaskForm):
    merchant_id = SelectField(_l("Merchant"), coerce=int, validate_choice=False)
    name = StringField(_l("Item name"))
    description = TextAreaField(_l("Description"))
    category = SelectField(_l("Category"), choices=list(CATEGORY_LABELS.items()))
    price = IntegerField(_l("Price in points"), validators=[Optional()])
    stock = IntegerField(_l("Stock (empty: unlimited, e.g. a service)"),
                         validators=[Optional()])
    monthly_limit = IntegerField(_l("Limit per volunteer per month (empty: none)"),
                                 validators=[Optional()])
    min_tier = SelectField(_l("Minimum tier"),
                           choices=[("", _l("Anyone"))] + list(TIER_LABELS.items()))
    valid_from = DateField(_l("Valid from"), validators=[Optional()])
    valid_to = DateField(_l("Valid until"), validators=[Optional()])
    active = BooleanField(_l("On sale"), default=True)
    photo = FileField(_l("Photo"))
    stock_seen = HiddenField()


class SettleForm(FlaskForm):
    start = DateField(_l("From"))
    end = DateField(_l("To (inclusive)"))


class RateForm(FlaskForm):
    fen_per_point = IntegerField(_l("Value of one point in fen (0.01 yuan); 0 for none"),
                                 validators=[Optional()])


def _community() -> Community:
    return db.session.get(Community, current_user.community_id)


def _merchants() -> list[Merchant]:
    return list(db.session.scalars(
        sa.select(Merchant).where(Merchant.community_id == current_user.community_id)
        .order_by(Merchant.kind.desc(), Merchant.name)))


def _field_errors(form: FlaskForm, error: InvalidItem | ValidationFailed) -> None:
    for field, codes in error.errors.items():
        messages = [str(FIELD_ERRORS.get(c, c)) for c in codes]
        if hasattr(form, field):
            getattr(form, field).errors = messages
        else:
            flash(" ".join(messages), "error")


@bp.route("/", methods=["GET", "POST"])
@roles_required("staff")
def index():
    """List the community's merchants and items; add a merchant; set the point's value."""
    form, rate = MerchantForm(prefix="m"), RateForm(prefix="r")
    community = _community()
    if request.method == "POST" and "m-csrf_token" in request.form and form.validate():
        try:
            staff_actions.create_merchant(
                db.session, current_user, name=form.name.data, kind=form.kind.data,
                address=form.address.data or "", opening_hours=form.opening_hours.data or "",
                contact=form.contact.data or "")
        except InvalidItem as error:
            _field_errors(form, error)
        else:
            flash(_("Saved."), "success")
            return redirect(url_for("market.index"))
    if request.method == "POST" and "r-csrf_token" in request.form and rate.validate():
        try:
            staff_actions.set_point_value(db.session, current_user,
                                          rate.fen_per_point.data or 0)
        except ValidationFailed as error:
            _field_errors(rate, error)
        else:
            flash(_("Saved."), "success")
            return redirect(url_for("market.index"))
    if request.method == "GET":
        rate.fen_per_point.data = community.fen_per_point
    return render_template("market/staff/index.html", form=form, rate=rate, merchants=_merchants(),
                           items=item_service.community_items(db.session, community.id),
                           review_form=EmptyForm())


@bp.route("/items/new", methods=["GET", "POST"])
@bp.route("/items/<int:item_id>", methods=["GET", "POST"])
@roles_required("staff")
def item(item_id: int | None = None):
    """Add or change an item of one of the community's merchants."""
    found = item_service.managed_item(db.session, item_id, current_user.community_id) \
        if item_id is not None else None
    form = ItemForm(obj=found)
    form.merchant_id.choices = [(m.id, m.name) for m in _merchants()]
    if request.method == "GET" and found is None:
        form.merchant_id.data = request.args.get("merchant", type=int)
    if request.method == "GET" and found is not None:
        form.stock_seen.data = "" if found.stock is None else str(found.stock)
    if form.validate_on_submit():
        fields = {name: field.data for name, field in form._fields.items()
                  if name not in ("csrf_token", "photo", "merchant_id", "stock_seen")}
        seen = (_int_or_none(form.stock_seen.data) if "stock_seen" in request.form
                else item_service.ABSOLUTE)
        upload = form.photo.data
        try:
            staff_actions.save_item(
                db.session, current_user, item_id, form.merchant_id.data, fields,
                stock_seen=seen,
                photo=upload.stream if upload and getattr(upload, "filename", "") else None)
        except (InvalidItem, ValidationFailed) as error:
            _field_errors(form, error)
        else:
            flash(_("Saved."), "success")
            return redirect(url_for("market.index"))
    return render_template("market/staff/item.html", form=form, item=found), (
        422 if form.errors else 200)


@bp.post("/items/<int:item_id>/review/<verdict>")
@roles_required("staff")
def review(item_id: int, verdict: str):
    """Approve or reject an item a merchant proposed."""
    # Another community's item is not found, whatever the form says.
    item_service.managed_item(db.session, item_id, current_user.community_id)
    if EmptyForm().validate_on_submit() and verdict in ("approve", "reject"):
        staff_actions.review_item(db.session, current_user, item_id,
                                  approve=verdict == "approve")
        flash(_("Saved."), "success")
    return redirect(url_for("market.index"))


@bp.get("/redemptions")
@roles_required("staff")
def redemption_list():
    """List recent redemptions at the community's merchants."""
    status = request.args.get("status") or None
    query = (sa.select(Redemption).join(Merchant, Merchant.id == Redemption.merchant_id)
             .where(Merchant.community_id == current_user.community_id)
             .order_by(Redemption.id.desc()))
    if status:
        query = query.where(Redemption.status == status)
    page = db.paginate(query, page=request.args.get("page", 1, type=int), per_page=50,
                       error_out=False)
    return render_template("market/staff/redemptions.html", page=page, status=status,
                           form=EmptyForm())


@bp.post("/redemptions/<int:redemption_id>/refund")
@roles_required("staff")
def refund(redemption_id: int):
    """Refund a fulfilled redemption with a reason."""
    if not EmptyForm().validate_on_submit():
        return redirect(url_for("market.redemption_list"))
    actions.refund(db.session, current_user, redemption_id,
                   reason=request.form.get("reason", ""))
    flash(_("Refunded."), "success")
    return redirect(url_for("market.redemption_list"))


@bp.route("/merchants/<int:merchant_id>/settle", methods=["GET", "POST"])
@roles_required("staff")
def settle(merchant_id: int):
    """Preview and close a settlement period for a merchant."""
    merchant = item_service.managed_merchant(db.session, merchant_id, current_user.community_id)
    form = SettleForm()
    today = clock.local_today()
    if request.method == "GET":
        last = (today.replace(day=1) - timedelta(days=1))
        form.start.data = _date_arg("start") or last.replace(day=1)
        form.end.data = _date_arg("end") or last
    start, end = form.start.data or today.replace(day=1), form.end.data or today
    if form.validate_on_submit():
        statement = staff_actions.close_statement(db.session, current_user, merchant.id, start,
                                                  end)
        flash(_("Period closed."), "success")
        return redirect(url_for("market.statement", statement_id=statement.id))
    lines = settlement.unsettled_lines(db.session, merchant.id,
                                       clock.utc_start_of(end + timedelta(days=1)))
    return render_template("market/staff/settle.html", merchant=merchant, form=form, lines=lines,
                           total=sum(line.points for line in lines),
                           statements=settlement.merchant_statements(db.session, merchant.id),
                           rate=_community().fen_per_point)


@bp.get("/statements/<int:statement_id>")
@roles_required("staff")
def statement(statement_id: int):
    """Show a frozen statement, ready to print."""
    found = db.session.get(Statement, statement_id)
    if found is None or found.merchant.community_id != current_user.community_id:
        raise NotFound("statement")
    lines = settlement.statement_lines(db.session, found)
    by_id = {r.id: r for r in db.session.scalars(
        sa.select(Redemption).where(Redemption.id.in_([line.redemption_id for line in lines])))}
    return render_template("market/staff/statement.html", statement=found, lines=lines, by_id=by_id)




def _date_arg(name: str) -> date | None:
    try:
        return date.fromisoformat(request.args.get(name, ""))
    except ValueError:
        return None


def _int_or_none(raw: str | None) -> int | None:
    try:
        return int(raw) if raw not in (None, "") else None
    except ValueError:
        return None

"""The marketplace API: volunteers browse and redeem; merchant staff look up, confirm, refund.

Views parse, call one action of `pointsmall.market.actions` (or read from `merchants/`) and
serialise; refusals become HTTP answers
in pointsmall/core/errors.py (422 for what cannot be redeemed, 409 for a state already left,
404 for what is not the caller's).
"""

from datetime import timedelta

from flask import url_for
from flask.views import MethodView
from flask_login import current_user
from marshmallow import Schema, fields, validate

import ledger
from merchants import items as item_service
from merchants import redemptions, settlement
from merchants.items import CATEGORIES
from merchants.models import REDEMPTION_STATUSES, TIERS
from pointsmall.core import clock
from pointsmall.core.api_conventions import MAX_ROW_ID, NOT_BLANK, ROW_ID, ApiBlueprint
from pointsmall.core.errors import MARKET_MESSAGES, Forbidden
from pointsmall.core.shell import roles_required
from pointsmall.extensions import ErrorSchema, UtcDateTime, db
from pointsmall.market import actions
from pointsmall.market.mall import current_volunteer

bp = ApiBlueprint("api_market", __name__, url_prefix="/api/v1",
                  description="The points mall: items, redemptions, the merchant counter.")

BAD_QUANTITY = MARKET_MESSAGES["invalid_quantity"]
UNKNOWN_ITEM = MARKET_MESSAGES["unknown_item"]


ROLE_NAMES = {"volunteer": "The caller is not a volunteer.",
              "merchant": "The caller is not merchant staff."}


def as_role(role: str):
    """Let only `role` through (bearer token) and document the refusals."""
    def decorate(view):
        view = bp.alt_response(401, schema=ErrorSchema, description="No valid bearer token.")(view)
        view = bp.alt_response(403, schema=ErrorSchema, description=ROLE_NAMES[role])(view)
        return roles_required(role)(view)
    return decorate


class ItemSchema(Schema):
    id = fields.Integer()
    name = fields.String()
    description = fields.String()
    category = fields.String(metadata={"enum": list(CATEGORIES)})
    photo_url = fields.Method("_photo_url", allow_none=True)
    price = fields.Integer(metadata={"description": "POINTS per unit"})
    stock = fields.Integer(allow_none=True, metadata={"description": "None: unlimited"})
    monthly_limit = fields.Integer(allow_none=True,
                                   metadata={"description": "Per volunteer per month"})
    min_tier = fields.String(allow_none=True, metadata={"enum": list(TIERS)})
    valid_from = fields.Date(allow_none=True)
    valid_to = fields.Date(allow_none=True)
    merchant_id = fields.Integer()
    merchant = fields.String(attribute="merchant.name")
    merchant_kind = fields.String(attribute="merchant.kind",
                                  metadata={"enum": ["partner", "charity"]})

    def _photo_url(self, item):
        return url_for("media.item_photo", name=item.photo) if item.photo else None


class ItemPageSchema(Schema):
    items = fields.List(fields.Nested(ItemSchema))
    total = fields.Integer()
    page = fields.Integer()
    per_page = fields.Integer()
    pages = fields.Integer()


class ItemQuerySchema(Schema):
    merchant = fields.Integer(load_default=None, validate=ROW_ID,
                              metadata={"description": "A merchant id"})
    category = fields.String(load_default=None, validate=validate.OneOf(CATEGORIES))
    affordable = fields.Boolean(load_default=False,
                                metadata={"description": "Only items priced within the "
                                                         "caller's available POINTS"})
    page = fields.Integer(load_default=1, validate=validate.Range(min=1, max=MAX_ROW_ID))
    per_page = fields.Integer(load_default=20, validate=validate.Range(min=1, max=100))


class RedeemSchema(Schema):
    item_id = fields.Integer(required=True, strict=True,
                             validate=validate.Range(1, MAX_ROW_ID, error=UNKNOWN_ITEM),
                             error_messages={"required": UNKNOWN_ITEM, "invalid": UNKNOWN_ITEM})
    quantity = fields.Integer(
        load_default=1, strict=True, validate=validate.Range(1, redemptions.MAX_QUANTITY,
                                                             error=BAD_QUANTITY),
        error_messages={"invalid": BAD_QUANTITY, "null": BAD_QUANTITY})


class IdempotencyHeaderSchema(Schema):
    key = fields.String(required=True, data_key="Idempotency-Key",
                        validate=validate.Length(min=1, max=ledger.REQUEST_KEY_LEN),
                        metadata={"description": "The same key answers the same redemption",
                                  "pattern": NOT_BLANK})


class RedemptionSchema(Schema):
    id = fields.Integer()
    code = fields.String(metadata={"description": "Shown at the counter (and as a QR code)"})
    status = fields.String(metadata={"enum": list(REDEMPTION_STATUSES)})
    item_id = fields.Integer()
    item = fields.String(attribute="item.name")
    merchant_id = fields.Integer()
    merchant = fields.String(attribute="item.merchant.name")
    quantity = fields.Integer()
    points = fields.Integer()
    created_at = UtcDateTime()
    expires_at = UtcDateTime()
    fulfilled_at = UtcDateTime(allow_none=True)
    closed_at = UtcDateTime(allow_none=True)


class RedemptionListQuerySchema(Schema):
    limit = fields.Integer(load_default=50, validate=validate.Range(min=1, max=100))
    before = fields.Integer(load_default=None, validate=ROW_ID,
                            metadata={"description": "Only redemptions with a smaller id"})


class CounterRedemptionSchema(Schema):
    id = fields.Integer()
    code = fields.String()
    status = fields.String(metadata={"enum": list(REDEMPTION_STATUSES)})
    item_id = fields.Integer()
    item = fields.String(attribute="item.name")
    quantity = fields.Integer()
    points = fields.Integer()
    volunteer = fields.String(attribute="volunteer_label",
                              metadata={"description": "Masked name: 张*"})
    created_at = UtcDateTime()
    expires_at = UtcDateTime()
    fulfilled_at = UtcDateTime(allow_none=True)


class RefundSchema(Schema):
    reason = fields.String(required=True, validate=validate.Length(min=1, max=200),
                           metadata={"pattern": NOT_BLANK},
                           error_messages={"required": MARKET_MESSAGES["reason_required"]})


class StatementSchema(Schema):
    id = fields.Integer()
    period_start = UtcDateTime(metadata={"description": "UTC, inclusive"})
    period_end = UtcDateTime(metadata={"description": "UTC, exclusive"})
    redeemed_points = fields.Integer()
    refunded_points = fields.Integer()
    net_points = fields.Integer()
    fen_per_point = fields.Integer()
    amount_fen = fields.Integer(metadata={"description": "0 for donated goods"})
    closed_at = UtcDateTime()


class PeriodQuerySchema(Schema):
    start = fields.Date(load_default=None, metadata={"description": "Local date; default: "
                                                                    "the 1st of this month"})
    end = fields.Date(load_default=None, metadata={"description": "Local date, inclusive; "
                                                                  "default: today"})


class LineSchema(Schema):
    redemption_id = fields.Integer(attribute="redemption.id")
    code = fields.String(attribute="redemption.code")
    item = fields.String(attribute="redemption.item.name")
    quantity = fields.Integer(attribute="redemption.quantity")
    volunteer = fields.String(attribute="redemption.volunteer_label")
    kind = fields.String(metadata={"enum": ["fulfilled", "refund"]})
    points = fields.Integer(metadata={"description": "Negative for a refund"})
    at = UtcDateTime()


class PeriodSchema(Schema):
    start = fields.Date()
    end = fields.Date()
    total = fields.Integer()
    lines = fields.List(fields.Nested(LineSchema))


def _merchant_id() -> int:
    if not current_user.merchant_id:
        raise Forbidden()
    return current_user.merchant_id


@bp.route("/items")
class Items(MethodView):
    @as_role("volunteer")
    @bp.arguments(ItemQuerySchema, location="query")
    @bp.response(200, ItemPageSchema)
    def get(self, args):
        """List the items the caller can redeem today, by merchant, category or affordability."""
        volunteer = current_volunteer()
        available = None
        if args["affordable"]:
            available = ledger.balance(db.session, volunteer.account("POINTS")).available
        query = item_service.mall_items(volunteer.community_id, clock.local_today(),
                                        merchant_id=args["merchant"], category=args["category"],
                                        max_price=available)
        page = db.paginate(query, page=args["page"], per_page=args["per_page"],
                           error_out=False)
        return {"items": page.items, "total": page.total, "page": page.page,
                "per_page": page.per_page, "pages": page.pages}


@bp.route("/items/<id:item_id>")
class ItemDetail(MethodView):
    @as_role("volunteer")
    @bp.response(200, ItemSchema)
    @bp.alt_response(404, schema=ErrorSchema, description="No such item for the caller.")
    def get(self, item_id):
        """Show an item of a merchant serving the caller's community."""
        return item_service.get_mall_item(db.session, item_id, current_volunteer().community_id)


@bp.route("/redemptions")
class Redemptions(MethodView):
    @as_role("volunteer")
    @bp.arguments(RedemptionListQuerySchema, location="query")
    @bp.response(200, RedemptionSchema(many=True))
    def get(self, args):
        """List the caller's redemptions, newest first."""
        return redemptions.volunteer_redemptions(db.session, current_volunteer().id,
                                                 limit=args["limit"], before=args["before"])

    @as_role("volunteer")
    @bp.arguments(IdempotencyHeaderSchema, location="headers")
    @bp.arguments(RedeemSchema)
    @bp.response(201, RedemptionSchema)
    @bp.alt_response(404, schema=ErrorSchema, description="No such item for the caller.")
    @bp.alt_response(409, schema=ErrorSchema,
                     description="The Idempotency-Key was used for another request.")
    @bp.alt_response(422, schema=ErrorSchema,
                     description="Over balance, stock or the monthly limit; below the tier; "
                                 "outside validity; a bad quantity.")
    def post(self, headers, body):
        """Hold the points and reserve the item; the same Idempotency-Key answers it again."""
        return actions.redeem(db.session, current_user, body["item_id"], body["quantity"],
                              key=headers["key"])


@bp.route("/redemptions/<id:redemption_id>/cancel")
class RedemptionCancel(MethodView):
    @as_role("volunteer")
    @bp.response(200, RedemptionSchema)
    @bp.alt_response(404, schema=ErrorSchema, description="Not the caller's redemption.")
    @bp.alt_response(409, schema=ErrorSchema, description="No longer reserved.")
    def post(self, redemption_id):
        """Cancel a reserved redemption: the points and the item return."""
        return actions.cancel(db.session, current_user, redemption_id)


def _counter_errors(view):
    view = bp.alt_response(404, schema=ErrorSchema,
                           description="No such code at this merchant (counted).")(view)
    return bp.alt_response(429, schema=ErrorSchema,
                           description="Too many wrong codes: code entry locked.")(view)


@bp.route("/merchant/redemptions/<code>")
class CounterRedemption(MethodView):
    @as_role("merchant")
    @bp.response(200, CounterRedemptionSchema)
    @_counter_errors
    def get(self, code):
        """Show what a code is for: item, quantity, points, the volunteer's masked name."""
        return actions.look_up(db.session, current_user, code)


@bp.route("/merchant/redemptions/<code>/confirm")
class CounterConfirm(MethodView):
    @as_role("merchant")
    @bp.response(200, CounterRedemptionSchema)
    @_counter_errors
    @bp.alt_response(409, schema=ErrorSchema, description="Not reserved (any more).")
    def post(self, code):
        """Hand the item over: the held points post to this merchant, once."""
        return actions.confirm(db.session, current_user, code)


@bp.route("/merchant/redemptions/<code>/refund")
class CounterRefund(MethodView):
    @as_role("merchant")
    @bp.arguments(RefundSchema)
    @bp.response(200, CounterRedemptionSchema)
    @_counter_errors
    @bp.alt_response(409, schema=ErrorSchema, description="Not fulfilled.")
    def post(self, body, code):
        """Refund a fulfilled redemption with a reason: points and stock go back."""
        return actions.refund_by_code(db.session, current_user, code, reason=body["reason"])


@bp.route("/merchant/statements")
class Statements(MethodView):
    @as_role("merchant")
    @bp.response(200, StatementSchema(many=True))
    def get(self):
        """List the merchant's frozen statements, latest period first."""
        return settlement.merchant_statements(db.session, _merchant_id())


@bp.route("/merchant/statement")
class Period(MethodView):
    @as_role("merchant")
    @bp.arguments(PeriodQuerySchema, location="query")
    @bp.response(200, PeriodSchema)
    @bp.alt_response(422, schema=ErrorSchema, description="The period ends before it starts.")
    def get(self, args):
        """List what was handed over and refunded between two local dates (inclusive)."""
        today = clock.local_today()
        start, end = args["start"] or today.replace(day=1), args["end"] or today
        lines = settlement.period_lines(db.session, _merchant_id(), clock.utc_start_of(start),
                                        clock.utc_start_of(end + timedelta(days=1)))
        return {"start": start, "end": end, "total": sum(line.points for line in lines),
                "lines": lines}

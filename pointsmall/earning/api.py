"""The earning API: the volunteer's history, tier and activities; staff activities,
attendance, awards, approvals, reversals, adjustments, tiers, leaderboards, evaluations."""

from datetime import UTC, timedelta

import sqlalchemy as sa
from flask import request
from flask.views import MethodView
from flask_babel import gettext as _
from flask_login import current_user
from marshmallow import Schema, fields, validate

import ledger
from pointsmall.core import clock
from pointsmall.core.api_conventions import (
    MAX_ROW_ID,
    NOT_BLANK,
    ROW_ID,
    ApiBlueprint,
    JsonBoolean,
    role_guard,
)
from pointsmall.core.errors import NotFound
from pointsmall.earning import activities, awards, tiers, use_cases
from pointsmall.earning.errors import invalid
from pointsmall.earning.models import (
    Activity,
    Attendance,
    Award,
    AwardBatch,
    Evaluation,
    EvaluationEntry,
)
from pointsmall.earning.views import me
from pointsmall.extensions import ErrorSchema, UtcDateTime, db

bp = ApiBlueprint("api_earning", __name__, url_prefix="/api/v1",
                  description="Earning: activities, check-in, awards, tiers.")


volunteer_only = role_guard(bp, "volunteer")
staff_only = role_guard(bp, "staff")


IDEMPOTENCY_HEADER = {
    "in": "header", "name": "Idempotency-Key", "required": True,
    "schema": {"type": "string", "minLength": 1, "maxLength": ledger.REQUEST_KEY_LEN,
               "pattern": NOT_BLANK},
    "description": f"1-{ledger.REQUEST_KEY_LEN} characters; the same key with the same body "
                   "answers the first result"}


def _keyed(view):
    """Document the Idempotency-Key header and the refusals of a keyed write."""
    view = bp.doc(parameters=[IDEMPOTENCY_HEADER])(view)
    view = bp.alt_response(409, schema=ErrorSchema,
                           description="The key was used for another request.")(view)
    return bp.alt_response(422, schema=ErrorSchema, description="Invalid fields.")(view)


def _decides(view):
    """Document the refusals of approving or rejecting a batch."""
    view = bp.alt_response(404, schema=ErrorSchema,
                           description="No such batch in the caller's community.")(view)
    return bp.alt_response(409, schema=ErrorSchema,
                           description="The batch was already decided.")(view)


def _key() -> str:
    key = (request.headers.get("Idempotency-Key") or "").strip()
    if not key or len(key) > ledger.REQUEST_KEY_LEN:
        raise invalid("Idempotency-Key",
                      _("An Idempotency-Key header (1-%(n)d characters) is required.",
                        n=ledger.REQUEST_KEY_LEN))
    return key


# ---- schemas -------------------------------------------------------------------------------

# What the services check, said in the document (they answer 422 otherwise).
MAX_LEDGER_ID = 2**63 - 1
AMOUNT = {"minimum": 0, "maximum": activities.MAX_POINTS}
THRESHOLD = {"minimum": 0, "maximum": 10_000_000}  # tiers.check_thresholds


def volunteer_id() -> fields.Integer:
    return fields.Integer(strict=True, metadata={"minimum": 1, "maximum": MAX_ROW_ID})


def text(most: int) -> dict:
    """Document a text the service strips and then wants 1 to `most` characters of."""
    return {"minLength": 1, "maxLength": most, "pattern": NOT_BLANK}

class HistoryEntrySchema(Schema):
    id = fields.Integer(attribute="posting_id")
    kind = fields.String()
    memo = fields.String(metadata={"description": "The reason or activity name"})
    amount = fields.Integer()
    balance_after = fields.Integer()
    created_at = UtcDateTime()


class HistoryPageSchema(Schema):
    entries = fields.List(fields.Nested(HistoryEntrySchema))
    next_cursor = fields.Integer(allow_none=True, metadata={"description": "Pass as ?before="})


class HistoryQuerySchema(Schema):
    before = fields.Integer(load_default=None, validate=validate.Range(min=1, max=MAX_LEDGER_ID))
    limit = fields.Integer(load_default=30, validate=validate.Range(min=1, max=200))


class StandingSchema(Schema):
    tier = fields.String(allow_none=True)
    merit_in_window = fields.Integer()
    service_bonus = fields.Integer()
    score = fields.Integer()
    next_tier = fields.String(allow_none=True)
    missing = fields.Integer(metadata={"description": "Merit still needed for the next tier"})


class ActivitySchema(Schema):
    id = fields.Integer()
    title = fields.String()
    type = fields.String(attribute="type.code")
    type_name = fields.String(attribute="type.name")
    place = fields.String()
    starts_at = UtcDateTime()
    ends_at = UtcDateTime()
    capacity = fields.Integer(allow_none=True)
    points = fields.Integer()
    merit = fields.Integer()


class ActivityCreateSchema(Schema):
    type_id = fields.Integer(strict=True, required=True,
                             metadata={"minimum": 1, "maximum": MAX_ROW_ID})
    title = fields.String(required=True, metadata=text(100))
    place = fields.String(load_default="", metadata={"description": "Kept to 120 characters"})
    starts_at = fields.DateTime(required=True, metadata={"description": "UTC"})
    ends_at = fields.DateTime(required=True, metadata={"description": "UTC; after starts_at"})
    capacity = fields.Integer(strict=True, load_default=None, allow_none=True,
                              metadata={"minimum": 1, "maximum": 100_000})
    points = fields.Integer(strict=True, load_default=None, allow_none=True, metadata=AMOUNT)
    merit = fields.Integer(strict=True, load_default=None, allow_none=True, metadata=AMOUNT)


class CheckInSchema(Schema):
    token = fields.String(required=True, metadata={"description": "From the venue QR link"})


class AttendanceSchema(Schema):
    volunteer_id = fields.Integer()
    present = fields.Boolean()
    signed_up_at = UtcDateTime(allow_none=True)
    checked_in_at = UtcDateTime(allow_none=True)
    source = fields.String()


class MarkSchema(Schema):
    volunteer_ids = fields.List(volunteer_id(), required=True,
                                validate=validate.Length(min=1, max=5000))
    present = JsonBoolean(load_default=True)


class AwardRequestSchema(Schema):
    volunteer_ids = fields.List(volunteer_id(), load_default=None, allow_none=True,
                                metadata={"description": "Default: everyone present",
                                          "minItems": 1, "maxItems": awards.MAX_BATCH,
                                          "uniqueItems": True})


class AwardSchema(Schema):
    id = fields.Integer()
    volunteer_id = fields.Integer()
    activity_id = fields.Integer(allow_none=True)
    title = fields.String()
    requested_points = fields.Integer()
    points = fields.Integer()
    merit = fields.Integer()
    capped_by = fields.String(allow_none=True, metadata={"description": "daily or monthly"})
    reversed_points = fields.Integer()
    reversal_reason = fields.String()


class BatchSchema(Schema):
    id = fields.Integer()
    status = fields.String(metadata={"enum": ["pending", "posted", "rejected"]})
    people = fields.Integer()
    requested_points = fields.Integer()
    activity_id = fields.Integer(allow_none=True)
    created_by = fields.Integer(allow_none=True)
    approved_by = fields.Integer(allow_none=True)
    awards = fields.Method("batch_awards")

    def batch_awards(self, batch):
        # Plain rows: a batch may list thousands of awards.
        rows = db.session.execute(sa.select(*Award.__table__.c)
                                  .where(Award.batch_id == batch.id).order_by(Award.id))
        return AwardSchema(many=True).dump(rows)


class ReverseSchema(Schema):
    reason = fields.String(required=True, validate=validate.Length(min=1, max=200),
                           metadata={"pattern": NOT_BLANK})
    only_what_is_left = JsonBoolean(load_default=False)


class AdjustSchema(Schema):
    volunteer_id = fields.Integer(strict=True, required=True,
                                  metadata={"minimum": 1, "maximum": MAX_ROW_ID})
    points = fields.Integer(strict=True, required=True,
                            metadata={"description": "Negative to deduct; not 0",
                                      "minimum": -awards.MAX_AWARD, "maximum": awards.MAX_AWARD,
                                      "not": {"enum": [0]}})
    reason = fields.String(required=True, validate=validate.Length(min=1, max=200),
                           metadata={"pattern": NOT_BLANK})


class AdjustmentSchema(Schema):
    id = fields.Integer()
    kind = fields.Constant("adjustment")
    memo = fields.Function(lambda adjustment: adjustment.reason)
    status = fields.String(metadata={"enum": ["pending", "posted", "rejected"]})
    volunteer_id = fields.Integer()
    points = fields.Integer()
    reason = fields.String()
    created_by = fields.Integer(allow_none=True)
    approved_by = fields.Integer(allow_none=True)
    transaction_id = fields.Integer(allow_none=True)


class ThresholdsSchema(Schema):
    """Merit needed for each tier: bronze <= silver <= gold (422 otherwise)."""

    bronze = fields.Integer(strict=True, required=True, metadata=THRESHOLD)
    silver = fields.Integer(strict=True, required=True, metadata=THRESHOLD)
    gold = fields.Integer(strict=True, required=True, metadata=THRESHOLD)


class MoveSchema(Schema):
    volunteer_id = fields.Integer()
    name = fields.String()
    now = fields.String(allow_none=True)
    then = fields.String(allow_none=True)


class PeriodQuerySchema(Schema):
    start = fields.Date(required=True)
    end = fields.Date(required=True)
    grid_id = fields.Integer(load_default=None, validate=ROW_ID)


class BoardRowSchema(Schema):
    rank = fields.Integer()
    volunteer_id = fields.Integer()
    name = fields.String(metadata={"description": "Masked (张*) when the volunteer opted out"})
    grid = fields.String()
    merit = fields.Integer()


class EvaluationRequestSchema(Schema):
    name = fields.String(required=True, metadata=text(40))
    start = fields.Date(required=True)
    end = fields.Date(required=True, metadata={"description": "Not before start"})


class EvaluationEntrySchema(Schema):
    rank = fields.Integer()
    volunteer_id = fields.Integer()
    name = fields.String()
    grid = fields.String()
    merit = fields.Integer()
    service_bonus = fields.Integer()
    score = fields.Integer()
    tier = fields.String(allow_none=True)


class EvaluationSchema(Schema):
    id = fields.Integer()
    name = fields.String()
    period_start = UtcDateTime()
    period_end = UtcDateTime()
    entries = fields.Method("evaluation_entries")

    def evaluation_entries(self, evaluation):
        rows = db.session.scalars(sa.select(EvaluationEntry).where(
            EvaluationEntry.evaluation_id == evaluation.id).order_by(EvaluationEntry.rank,
                                                                     EvaluationEntry.id))
        return EvaluationEntrySchema(many=True).dump(rows)


# ---- volunteer -----------------------------------------------------------------------------

@bp.route("/me/history")
class MyHistory(MethodView):
    @volunteer_only
    @bp.arguments(HistoryQuerySchema, location="query")
    @bp.response(200, HistoryPageSchema)
    def get(self, query):
        """List changes to my POINTS, newest first (keyset pages)."""
        return ledger.history(db.session, me().account("POINTS"), limit=query["limit"],
                              before=query["before"])


@bp.route("/me/tier")
class MyTier(MethodView):
    @volunteer_only
    @bp.response(200, StandingSchema)
    def get(self):
        """Say my tier, the merit counted and what is missing for the next tier."""
        return tiers.standing(db.session, me())


@bp.route("/activities")
class Activities(MethodView):
    @volunteer_only
    @bp.response(200, ActivitySchema(many=True))
    def get(self):
        """List my community's coming activities."""
        return activities.upcoming(db.session, me().community_id)


@bp.route("/activities/<id:activity_id>/sign-up")
class SignUp(MethodView):
    @volunteer_only
    @bp.response(200, AttendanceSchema)
    @bp.alt_response(422, schema=ErrorSchema, description="The activity is over or full.")
    def post(self, activity_id):
        """Sign me up for an activity (capacity enforced; twice is once)."""
        row = use_cases.sign_up(db.session, me(), activity_id)
        return row


@bp.route("/check-ins")
class CheckIns(MethodView):
    @volunteer_only
    @bp.arguments(CheckInSchema)
    @bp.response(201, AttendanceSchema)
    def post(self, body):
        """Check me in with the token of the venue's QR link."""
        row = use_cases.check_in(db.session, me(), body["token"])
        return row


# ---- staff ---------------------------------------------------------------------------------

@bp.route("/staff/activities")
class StaffActivities(MethodView):
    @staff_only
    @bp.response(200, ActivitySchema(many=True))
    def get(self):
        """List the community's activities, newest first."""
        return db.session.scalars(sa.select(Activity).where(
            Activity.community_id == current_user.community_id)
            .order_by(Activity.starts_at.desc()).limit(200)).all()

    @staff_only
    @bp.doc(parameters=[{**IDEMPOTENCY_HEADER, "required": False, "description":
                         f"Optional, 1-{ledger.REQUEST_KEY_LEN} characters: the same key "
                         "answers the first activity"}])
    @bp.alt_response(409, schema=ErrorSchema,
                     description="The key was used for another activity.")
    @bp.arguments(ActivityCreateSchema)
    @bp.response(201, ActivitySchema)
    def post(self, body):
        """Create an activity; points and merit default to its type's rule."""
        for field in ("starts_at", "ends_at"):
            if body[field].tzinfo is not None:
                body[field] = body[field].astimezone(UTC).replace(tzinfo=None)
        key = _key() if "Idempotency-Key" in request.headers else None
        activity = use_cases.create_activity(db.session, current_user, body, key=key)
        return activity


@bp.route("/staff/activities/<id:activity_id>/attendance")
class StaffAttendance(MethodView):
    @staff_only
    @bp.response(200, AttendanceSchema(many=True))
    def get(self, activity_id):
        """List who signed up, checked in or was marked present."""
        activity = activities.get_activity(db.session, activity_id, current_user.community_id)
        return db.session.scalars(sa.select(Attendance).where(
            Attendance.activity_id == activity.id).order_by(Attendance.id)).all()

    @staff_only
    @bp.arguments(MarkSchema)
    @bp.response(200, AttendanceSchema(many=True))
    def post(self, body, activity_id):
        """Mark volunteers present (or not)."""
        use_cases.mark_attendance(db.session, current_user, activity_id, body["volunteer_ids"],
                                  present=body["present"])
        return db.session.scalars(sa.select(Attendance).where(
            Attendance.activity_id == activity_id).order_by(Attendance.id)).all()


@bp.route("/staff/activities/<id:activity_id>/award")
class StaffAward(MethodView):
    @staff_only
    @_keyed
    @bp.arguments(AwardRequestSchema, required=False)
    @bp.response(201, BatchSchema)
    def post(self, body, activity_id):
        """Award everyone present (or the listed ones): all or nothing, once each.

        Needs an Idempotency-Key header; a batch over the community's threshold waits
        for another staff member's approval (status pending).
        """
        # Another community's activity is not found, before the key is checked.
        activities.get_activity(db.session, activity_id, current_user.community_id)
        batch = use_cases.award_attendees(db.session, current_user, activity_id,
                                          body["volunteer_ids"], key=f"{current_user.id}:{_key()}")
        return batch


@bp.route("/staff/award-batches")
class StaffBatches(MethodView):
    @staff_only
    @bp.response(200, BatchSchema(many=True))
    def get(self):
        """List award batches, waiting ones first."""
        return db.session.scalars(sa.select(AwardBatch).where(
            AwardBatch.community_id == current_user.community_id)
            .order_by(sa.case((AwardBatch.status == "pending", 0), else_=1),
                      AwardBatch.id.desc()).limit(200)).all()


@bp.route("/staff/award-batches/<id:batch_id>/approve")
class StaffApprove(MethodView):
    @staff_only
    @_decides
    @bp.response(200, BatchSchema)
    def post(self, batch_id):
        """Approve and post a waiting batch; its maker cannot."""
        batch = use_cases.decide_batch(db.session, current_user, batch_id, "approve")
        return batch


@bp.route("/staff/award-batches/<id:batch_id>/reject")
class StaffReject(MethodView):
    @staff_only
    @_decides
    @bp.response(200, BatchSchema)
    def post(self, batch_id):
        """Reject a waiting batch; its volunteers may be awarded by a corrected one."""
        batch = use_cases.decide_batch(db.session, current_user, batch_id, "reject")
        return batch


@bp.route("/staff/awards/<id:award_id>/reverse")
class StaffReverse(MethodView):
    @staff_only
    @bp.arguments(ReverseSchema)
    @bp.response(200, AwardSchema)
    @bp.alt_response(409, schema=ErrorSchema, description="Already reversed.")
    def post(self, body, award_id):
        """Take an award back with a reason (only what is left, if asked)."""
        award = use_cases.reverse_award(db.session, current_user, award_id,
                                        reason=body["reason"],
                                        only_what_is_left=body["only_what_is_left"])
        return award


@bp.route("/staff/adjustments")
class StaffAdjust(MethodView):
    @staff_only
    @_keyed
    @bp.arguments(AdjustSchema)
    @bp.response(201, AdjustmentSchema)
    @bp.alt_response(202, schema=AdjustmentSchema,
                     description="Over the approval limit: waits for another staff member.")
    @bp.alt_response(404, schema=ErrorSchema,
                     description="No such volunteer in the caller's community.")
    def post(self, body):
        """Grant or deduct POINTS with a reason (needs an Idempotency-Key header).

        A grant over the community's approval limit waits for another staff member's
        approval (202, status pending); nothing moves until then.
        """
        found = use_cases.adjust_points(db.session, current_user, body["volunteer_id"],
                                        body["points"], reason=body["reason"],
                                        key=f"{current_user.id}:{_key()}")
        return found, 202 if found.status == "pending" else 201


@bp.route("/staff/adjustments/<id:adjustment_id>/approve")
class StaffApproveAdjustment(MethodView):
    @staff_only
    @_decides
    @bp.response(200, AdjustmentSchema)
    def post(self, adjustment_id):
        """Approve and post a waiting adjustment; its maker cannot."""
        found = use_cases.decide_adjustment(db.session, current_user, adjustment_id,
                                            "approve")
        return found


@bp.route("/staff/adjustments/<id:adjustment_id>/reject")
class StaffRejectAdjustment(MethodView):
    @staff_only
    @_decides
    @bp.response(200, AdjustmentSchema)
    def post(self, adjustment_id):
        """Reject a waiting adjustment: no points move."""
        found = use_cases.decide_adjustment(db.session, current_user, adjustment_id,
                                            "reject")
        return found


@bp.route("/staff/tiers/preview")
class StaffTierPreview(MethodView):
    @staff_only
    @bp.arguments(ThresholdsSchema)
    @bp.response(200, MoveSchema(many=True))
    def post(self, body):
        """Show who would move up or down under new thresholds (nothing is saved)."""
        return [{"volunteer_id": v.id, "name": v.name, "now": before, "then": after}
                for v, before, after in tiers.preview_thresholds(
                    db.session, current_user.community_id, body)]


@bp.route("/staff/tiers/thresholds")
class StaffThresholds(MethodView):
    @staff_only
    @bp.arguments(ThresholdsSchema)
    @bp.response(200, ThresholdsSchema)
    def put(self, body):
        """Save new tier thresholds."""
        use_cases.save_thresholds(db.session, current_user, body)
        return body


@bp.route("/staff/leaderboard")
class StaffLeaderboard(MethodView):
    @staff_only
    @bp.arguments(PeriodQuerySchema, location="query")
    @bp.response(200, BoardRowSchema(many=True))
    def get(self, query):
        """Rank the community (or a grid) by merit earned in a period."""
        return tiers.leaderboard(db.session, current_user.community_id,
                                 clock.utc_start_of(query["start"]),
                                 clock.utc_start_of(query["end"] + timedelta(days=1)),
                                 grid_id=query["grid_id"])


@bp.route("/staff/evaluations")
class StaffEvaluations(MethodView):
    @staff_only
    @bp.arguments(EvaluationRequestSchema)
    @bp.response(201, EvaluationSchema)
    def post(self, body):
        """Freeze the ranking for a period; it never changes afterwards."""
        # The API has always frozen any period it is sent, ended or not: the caller chose it.
        evaluation = use_cases.freeze_evaluation(db.session, current_user, body["name"],
                                                 body["start"], body["end"], early=True)
        return evaluation


@bp.route("/staff/evaluations/<id:evaluation_id>")
class StaffEvaluation(MethodView):
    @staff_only
    @bp.response(200, EvaluationSchema)
    def get(self, evaluation_id):
        """Show a frozen evaluation."""
        found = db.session.get(Evaluation, evaluation_id)
        if found is None or found.community_id != current_user.community_id:
            raise NotFound("evaluation")
        return found

"""The task board's API: volunteers' tasks and hours, staff tasks, checks and wishes, and
tasks the grid platform creates (signed as its completions are, once per its task id)."""

from datetime import UTC

from flask import request
from flask.views import MethodView
from flask_babel import gettext as _
from flask_login import current_user
from marshmallow import Schema, ValidationError, fields, validate

from ledger import REQUEST_KEY_LEN
from pointsmall.core.api_conventions import SIGNED_HEADERS, ApiBlueprint, role_guard
from pointsmall.core.errors import ValidationFailed
from pointsmall.earning import platform
from pointsmall.earning.views import me
from pointsmall.extensions import ErrorSchema, UtcDateTime, db
from pointsmall.tasks import board, checks, hours, use_cases, wishes
from pointsmall.tasks.models import Task

bp = ApiBlueprint("api_tasks", __name__, url_prefix="/api/v1",
               description="The task board: tasks, claims, checks, wishes, service hours.")
platform_bp = ApiBlueprint("api_platform_tasks", __name__, url_prefix="/api/v1/platform",
                        description="For the grid platform: tasks it hands out (signed).")


volunteer_only = role_guard(bp, "volunteer")
staff_only = role_guard(bp, "staff")


def _refusals(view):
    view = bp.alt_response(404, schema=ErrorSchema, description="Not in your community.")(view)
    view = bp.alt_response(409, schema=ErrorSchema, description="Not possible now.")(view)
    return bp.alt_response(422, schema=ErrorSchema, description="Invalid fields.")(view)


class TaskSchema(Schema):
    id = fields.Integer()
    title = fields.String()
    description = fields.String()
    place = fields.String()
    grid_id = fields.Integer()
    grid = fields.String(attribute="grid.path")
    points = fields.Integer()
    merit = fields.Integer()
    people = fields.Integer()
    places_left = fields.Integer()
    hours = fields.Float(metadata={"description": "Service hours per person"})
    deadline = UtcDateTime()
    photo_required = fields.Boolean()
    mode = fields.String(metadata={"enum": ["open", "dispatch"]})
    status = fields.String(metadata={"enum": ["open", "closed", "cancelled"]})
    source = fields.String(metadata={"enum": ["staff", "platform", "wish"]})


class TaskCreateSchema(Schema):
    title = fields.String(required=True)
    description = fields.String(load_default="")
    place = fields.String(load_default="")
    grid_id = fields.Integer(strict=True, required=True)
    points = fields.Integer(strict=True, required=True)
    merit = fields.Integer(strict=True, load_default=None)
    people = fields.Integer(strict=True, load_default=1)
    hours = fields.Decimal(load_default=0, metadata={"description": "Per person, 0 to 99.9"})
    deadline = fields.AwareDateTime(required=True, default_timezone=UTC)
    photo_required = fields.Boolean(load_default=False)
    mode = fields.String(load_default="open", validate=validate.OneOf(["open", "dispatch"]))
    start_within_hours = fields.Integer(strict=True, load_default=24)


class PlatformTaskSchema(TaskCreateSchema):
    community_id = fields.Integer(required=True)
    task_id = fields.String(required=True, metadata={"description": "Unique per community"})


class AssignmentSchema(Schema):
    id = fields.Integer()
    task_id = fields.Integer()
    volunteer_id = fields.Integer()
    state = fields.String(metadata={"enum": ["claimed", "started", "done", "accepted",
                                             "given_back", "lapsed"]})
    dispatched = fields.Boolean()
    claimed_at = UtcDateTime()
    started_at = UtcDateTime(allow_none=True)
    done_at = UtcDateTime(allow_none=True)
    note = fields.String()
    reason = fields.String()
    rating = fields.Integer(allow_none=True)
    comment = fields.String()
    award_id = fields.Integer(allow_none=True)


class DoneSchema(Schema):
    note = fields.String(load_default="", metadata={
        "description": "Tasks that need a photo are finished on the phone page"})


class ReasonSchema(Schema):
    reason = fields.String(required=True)


class CheckSchema(Schema):
    rating = fields.Integer(strict=True, required=True, validate=validate.Range(min=1, max=5))
    comment = fields.String(load_default="")


class HoursSchema(Schema):
    total = fields.Float()
    this_year = fields.Float()
    stars = fields.Integer(metadata={"description": "0 to 5 (星级志愿者)"})
    next_at = fields.Integer(allow_none=True, metadata={"description": "Hours for the next star"})


class WishSchema(Schema):
    id = fields.Integer()
    code = fields.String()
    kind = fields.String(metadata={"enum": ["wish", "report"]})
    name = fields.String()
    phone = fields.String(metadata={"description": "For staff to follow up; never public"})
    text = fields.String()
    grid_id = fields.Integer()
    status = fields.String(metadata={"enum": ["new", "published", "merged", "closed"]})
    task_id = fields.Integer(allow_none=True)
    close_reason = fields.String()
    created_at = UtcDateTime()


class DispatchSchema(Schema):
    volunteer_ids = fields.List(fields.Integer(strict=True), required=True,
                                validate=validate.Length(min=1, max=500))


class PublishWishSchema(Schema):
    title = fields.String(required=True)
    place = fields.String(load_default="")
    points = fields.Integer(strict=True, required=True)
    merit = fields.Integer(strict=True, load_default=None)
    people = fields.Integer(strict=True, load_default=1)
    hours = fields.Decimal(load_default=0)
    deadline = fields.AwareDateTime(required=True, default_timezone=UTC)
    photo_required = fields.Boolean(load_default=False)


class MergeSchema(Schema):
    into_id = fields.Integer(strict=True, required=True)


class WishQuerySchema(Schema):
    status = fields.String(load_default=None, validate=validate.OneOf(
        ["new", "published", "merged", "closed"]))


def _task_fields(body: dict) -> dict:
    fields_ = dict(body)
    if fields_.get("merit") is None:
        fields_["merit"] = fields_["points"]
    fields_["deadline"] = fields_["deadline"].astimezone(UTC).replace(tzinfo=None)
    return fields_


# ---- volunteers ----------------------------------------------------------------------------

@bp.route("/tasks")
class OpenTasks(MethodView):
    @volunteer_only
    @bp.response(200, TaskSchema(many=True))
    def get(self):
        """List the tasks I may claim, my own grid's first, soonest deadline first."""
        return board.open_tasks(db.session, me())


@bp.route("/tasks/<int:task_id>/claim")
class Claim(MethodView):
    @volunteer_only
    @_refusals
    @bp.response(200, AssignmentSchema)
    def post(self, task_id):
        """Claim a place on a task; claiming again answers the same claim."""
        row = use_cases.claim_task(db.session, me(), task_id)
        return row


@bp.route("/tasks/<int:task_id>/start")
class Start(MethodView):
    @volunteer_only
    @_refusals
    @bp.response(200, AssignmentSchema)
    def post(self, task_id):
        """Say I have started my task (it then stays mine)."""
        row = use_cases.start_task(db.session, me(), task_id)
        return row


@bp.route("/tasks/<int:task_id>/done")
class Done(MethodView):
    @volunteer_only
    @_refusals
    @bp.arguments(DoneSchema)
    @bp.response(200, AssignmentSchema)
    def post(self, body, task_id):
        """Mark my task done with a note."""
        row = use_cases.finish_task(db.session, me(), task_id, note=body["note"])
        return row


@bp.route("/tasks/<int:task_id>/give-back")
class GiveBack(MethodView):
    @volunteer_only
    @_refusals
    @bp.arguments(ReasonSchema)
    @bp.response(200, AssignmentSchema)
    def post(self, body, task_id):
        """Give my task back with a reason; its place returns to the pool."""
        row = use_cases.give_back(db.session, me(), task_id, reason=body["reason"])
        return row


@bp.route("/me/hours")
class MyHours(MethodView):
    @volunteer_only
    @bp.response(200, HoursSchema)
    def get(self):
        """Say my service hours, in total and this year, and my star level."""
        return hours.service_hours(db.session, me().id)


# ---- staff ---------------------------------------------------------------------------------

@bp.route("/staff/tasks")
class StaffTasks(MethodView):
    @staff_only
    @bp.response(200, TaskSchema(many=True))
    def get(self):
        """List the community's latest tasks."""
        return db.session.scalars(db.select(Task).where(
            Task.community_id == current_user.community_id).order_by(Task.id.desc())
            .limit(200)).all()

    @staff_only
    @_refusals
    @bp.arguments(TaskCreateSchema)
    @bp.response(201, TaskSchema)
    @bp.doc(parameters=[{
        "in": "header", "name": "Idempotency-Key", "required": False,
        "schema": {"type": "string"},
        "description": f"1-{REQUEST_KEY_LEN} characters; the same key with the same body "
                       "answers the first task, with another body 409"}])
    def post(self, body):
        """Publish a task for a grid of the community."""
        key = (request.headers.get("Idempotency-Key") or "").strip()
        if len(key) > REQUEST_KEY_LEN:
            raise ValidationFailed({"Idempotency-Key": [
                _("An Idempotency-Key header of at most %(n)d characters.", n=REQUEST_KEY_LEN)]})
        task = use_cases.publish_task(db.session, current_user, _task_fields(body), key=key)
        return task


@bp.route("/staff/tasks/<int:task_id>/assignments")
class TaskAssignments(MethodView):
    @staff_only
    @_refusals
    @bp.response(200, AssignmentSchema(many=True))
    def get(self, task_id):
        """List who took a task and where they are with it."""
        task = board.get_task(db.session, task_id, current_user.community_id)
        return checks.assignments_of(db.session, task.id)


@bp.route("/staff/tasks/<int:task_id>/dispatch")
class Dispatch(MethodView):
    @staff_only
    @_refusals
    @bp.arguments(DispatchSchema)
    @bp.response(200, AssignmentSchema(many=True))
    def post(self, body, task_id):
        """Hand a task to named volunteers of the community, a place each."""
        rows = use_cases.dispatch_task(db.session, current_user, task_id,
                                       body["volunteer_ids"])
        return rows


@bp.route("/staff/task-assignments/<int:assignment_id>/accept")
class Accept(MethodView):
    @staff_only
    @_refusals
    @bp.arguments(CheckSchema)
    @bp.response(200, AssignmentSchema)
    def post(self, body, assignment_id):
        """Accept a done task with a rating; its points and merit are awarded once."""
        row = use_cases.accept_task(db.session, current_user, assignment_id,
                                    rating=body["rating"], comment=body["comment"])
        return row


@bp.route("/staff/task-assignments/<int:assignment_id>/send-back")
class SendBack(MethodView):
    @staff_only
    @_refusals
    @bp.arguments(ReasonSchema)
    @bp.response(200, AssignmentSchema)
    def post(self, body, assignment_id):
        """Send a done task back to the volunteer with a reason."""
        row = use_cases.send_back(db.session, current_user, assignment_id,
                                  reason=body["reason"])
        return row


@bp.route("/staff/wishes")
class StaffWishes(MethodView):
    @staff_only
    @bp.arguments(WishQuerySchema, location="query")
    @bp.response(200, WishSchema(many=True))
    def get(self, query):
        """List the community's wishes and reports, those waiting for screening first."""
        return wishes.community_wishes(db.session, current_user.community_id,
                                       status=query["status"])


@bp.route("/staff/wishes/<int:wish_id>/publish")
class PublishWish(MethodView):
    @staff_only
    @_refusals
    @bp.arguments(PublishWishSchema)
    @bp.response(200, WishSchema)
    def post(self, body, wish_id):
        """Publish a wish as a task of its grid."""
        wish = use_cases.publish_wish(db.session, current_user, wish_id, _task_fields(body))
        return wish


@bp.route("/staff/wishes/<int:wish_id>/merge")
class MergeWish(MethodView):
    @staff_only
    @_refusals
    @bp.arguments(MergeSchema)
    @bp.response(200, WishSchema)
    def post(self, body, wish_id):
        """Merge a wish into another of the community."""
        wish = use_cases.merge_wish(db.session, current_user, wish_id, body["into_id"])
        return wish


@bp.route("/staff/wishes/<int:wish_id>/close")
class CloseWish(MethodView):
    @staff_only
    @_refusals
    @bp.arguments(ReasonSchema)
    @bp.response(200, WishSchema)
    def post(self, body, wish_id):
        """Close a wish with a reason the resident reads at their link."""
        wish = use_cases.close_wish(db.session, current_user, wish_id, reason=body["reason"])
        return wish


# ---- the grid platform ---------------------------------------------------------------------

@platform_bp.route("/tasks")
class PlatformTasks(MethodView):
    @platform_bp.doc(parameters=SIGNED_HEADERS, requestBody={"required": True, "content": {
        "application/json": {"schema": PlatformTaskSchema}}}, security=[])
    @platform_bp.response(201, TaskSchema)
    @platform_bp.alt_response(200, schema=TaskSchema, description="The same task again.")
    @platform_bp.alt_response(401, schema=ErrorSchema, description="Bad signature.")
    @platform_bp.alt_response(409, schema=ErrorSchema,
                              description="Task id reused with another body.")
    @platform_bp.alt_response(422, schema=ErrorSchema, description="Invalid fields.")
    def post(self):
        """Publish a task the grid platform hands out, once per its task id."""
        body = request.get_data(cache=True)
        data = platform.verify_request(db.session, body, request.headers.get("X-Timestamp", ""),
                                       request.headers.get("X-Signature", ""))
        task, new = create_platform_task(data)
        return task, 201 if new else 200


def create_platform_task(data: dict) -> tuple[Task, bool]:
    """Publish the platform's task, or answer the one its task id already made."""
    try:
        body = PlatformTaskSchema().load(data)
    except ValidationError as error:
        raise ValidationFailed({str(k): [str(m) for m in (v if isinstance(v, list) else [v])]
                                for k, v in error.normalized_messages().items()}) from None
    community_id, task_id = body.pop("community_id"), body.pop("task_id").strip()
    return use_cases.publish_platform_task(db.session, community_id, _task_fields(body),
                                           task_id=task_id)

"""The grid platform's endpoint: a signed task completion is awarded once per task id."""

from flask import request
from flask.views import MethodView
from marshmallow import Schema, fields

from pointsmall.core.api_conventions import MAX_ROW_ID, NOT_BLANK, SIGNED_HEADERS, ApiBlueprint
from pointsmall.earning import platform, use_cases
from pointsmall.earning.models import AwardBatch
from pointsmall.extensions import ErrorSchema, db

bp = ApiBlueprint("api_platform", __name__, url_prefix="/api/v1/platform",
                  description="For the grid platform: signed with HMAC-SHA256, no token.")


ID = {"minimum": 1, "maximum": MAX_ROW_ID}
AMOUNT = {"minimum": 0, "maximum": platform.MAX_POINTS}


class TaskCompletionSchema(Schema):
    """What earning/platform.py checks (422 otherwise), once the signature is good (401)."""

    community_id = fields.Integer(required=True, metadata=ID)
    task_id = fields.String(required=True, metadata={
        "description": "Unique per community", "minLength": 1, "maxLength": 64,
        "pattern": NOT_BLANK})
    volunteer_id = fields.Integer(required=True, metadata=ID)
    points = fields.Integer(required=True, metadata=AMOUNT)
    merit = fields.Integer(metadata={"description": "Defaults to points", **AMOUNT})
    title = fields.String(metadata={"description": "Kept to 100 characters"})


class TaskAwardSchema(Schema):
    award_id = fields.Integer()
    task_id = fields.String()
    volunteer_id = fields.Integer()
    points = fields.Integer(metadata={"description": "After the earning caps"})
    merit = fields.Integer()
    capped_by = fields.String(allow_none=True)
    status = fields.String(metadata={"description": "posted, or pending approval"})
    new = fields.Boolean(metadata={"description": "False when this repeats an earlier call"})


@bp.route("/task-completions")
class TaskCompletions(MethodView):
    @bp.doc(parameters=SIGNED_HEADERS, requestBody={"required": True, "content": {
        "application/json": {"schema": TaskCompletionSchema}}}, security=[])
    @bp.response(201, TaskAwardSchema)
    @bp.alt_response(200, schema=TaskAwardSchema, description="The same task again.")
    @bp.alt_response(401, schema=ErrorSchema, description="Bad signature or stale timestamp.")
    @bp.alt_response(409, schema=ErrorSchema, description="Task id reused with another body.")
    @bp.alt_response(422, schema=ErrorSchema, description="Invalid fields.")
    def post(self):
        """Award a verified task completion, once per task id."""
        body = request.get_data(cache=True)
        data = platform.verify_request(db.session, body, request.headers.get("X-Timestamp", ""),
                                       request.headers.get("X-Signature", ""))
        award, new = use_cases.award_platform_task(db.session, data, body)
        batch = db.session.get(AwardBatch, award.batch_id)
        answer = {"award_id": award.id, "task_id": data["task_id"],
                  "volunteer_id": award.volunteer_id, "points": award.points,
                  "merit": award.merit if batch.status == "posted" else 0,
                  "capped_by": award.capped_by, "status": batch.status, "new": new}
        return answer, 201 if new else 200

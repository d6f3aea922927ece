"""The volunteers and grids API for community staff, always inside the caller's community."""

from dataclasses import dataclass
from datetime import date

import sqlalchemy as sa
from flask.views import MethodView
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from marshmallow import Schema, fields, validate

import ledger
from pointsmall.auth.api import ALL_ROLES
from pointsmall.core.api_conventions import MAX_ROW_ID, NOT_BLANK, ROW_ID, ApiBlueprint, JsonBoolean
from pointsmall.core.shell import roles_required
from pointsmall.extensions import ErrorSchema, db
from pointsmall.people import communities, service, use_cases
from pointsmall.people.models import STATUSES, Volunteer

me_bp = ApiBlueprint("api_me", __name__, url_prefix="/api/v1", description="Who am I.")
bp = ApiBlueprint("api_volunteers", __name__, url_prefix="/api/v1",
                  description="Volunteers and grids of the caller's community (staff).")

# The service's own messages, so that type errors read as its checks do, translated.
NAME_REQUIRED = _l("A name is required.")
BAD_PHONE = _l("Not a mainland mobile number (11 digits starting with 1).")
UNKNOWN_GRID = _l("Unknown grid.")
BAD_DATE = _l("A date like 2024-03-01 is required.")
UNKNOWN_STATUS = _l("Unknown status.")
# What the service accepts (it drops spaces, dashes and +86 from a phone number first).
NAME_DOC = {"minLength": 1, "maxLength": service.NAME_MAX, "pattern": NOT_BLANK}
PHONE_DOC = {"pattern": r"^[\s-]*(?:\+[\s-]*8[\s-]*6[\s-]*)?1[\s-]*[3-9](?:[\s-]*\d){9}[\s-]*$",
             "description": "A mainland mobile number: 11 digits starting with 1 "
                            "(spaces, dashes and +86 allowed)"}


def staff_only(view):
    """Let only community staff through (bearer token), and document the refusals."""
    view = bp.alt_response(401, schema=ErrorSchema, description="No valid bearer token.")(view)
    view = bp.alt_response(403, schema=ErrorSchema, description="Not community staff.")(view)
    return roles_required("staff")(view)


def _community_id() -> int:
    return current_user.community_id


class BalanceSchema(Schema):
    balance = fields.Integer(attribute="posted")
    available = fields.Integer()
    held = fields.Integer(attribute="pending")


class VolunteerSchema(Schema):
    id = fields.Integer()
    username = fields.String(attribute="user.username")
    name = fields.String()
    phone = fields.String()
    community_id = fields.Integer()
    grid_id = fields.Integer()
    grid = fields.String(attribute="grid.path", metadata={"description": "Grid / micro-grid"})
    joined_on = fields.Date()
    status = fields.String(metadata={"enum": list(STATUSES)})
    show_on_leaderboard = fields.Boolean()
    points = fields.Nested(BalanceSchema)
    merit = fields.Integer(attribute="merit.posted")


class VolunteerPageSchema(Schema):
    items = fields.List(fields.Nested(VolunteerSchema))
    total = fields.Integer()
    page = fields.Integer()
    per_page = fields.Integer()
    pages = fields.Integer()


class VolunteerQuerySchema(Schema):
    q = fields.String(load_default="", validate=validate.Length(max=64),
                      metadata={"description": "Part of a name or phone number"})
    grid_id = fields.Integer(load_default=None, validate=ROW_ID,
                             metadata={"description": "Grid or micro-grid"})
    status = fields.String(load_default=None,
                           validate=validate.OneOf(STATUSES, error=UNKNOWN_STATUS))
    page = fields.Integer(load_default=1, validate=validate.Range(min=1, max=MAX_ROW_ID))
    per_page = fields.Integer(load_default=25, validate=validate.Range(min=1, max=100))


class VolunteerChangeSchema(Schema):
    name = fields.String(metadata=NAME_DOC,
                         error_messages={"invalid": NAME_REQUIRED, "required": NAME_REQUIRED})
    phone = fields.String(metadata=PHONE_DOC,
                          error_messages={"invalid": BAD_PHONE, "required": BAD_PHONE})
    grid_id = fields.Integer(strict=True, validate=validate.Range(1, MAX_ROW_ID,
                                                                  error=UNKNOWN_GRID),
                             metadata={"description": "A micro-grid"},
                             error_messages={"invalid": UNKNOWN_GRID, "required": UNKNOWN_GRID})
    joined_on = fields.Date(error_messages={"invalid": BAD_DATE})
    show_on_leaderboard = JsonBoolean()


class VolunteerCreateSchema(VolunteerChangeSchema):
    name = fields.String(required=True, metadata=NAME_DOC,
                         error_messages={"invalid": NAME_REQUIRED, "required": NAME_REQUIRED})
    phone = fields.String(required=True, metadata=PHONE_DOC,
                          error_messages={"invalid": BAD_PHONE, "required": BAD_PHONE})
    grid_id = fields.Integer(required=True, strict=True,
                             validate=validate.Range(1, MAX_ROW_ID, error=UNKNOWN_GRID),
                             metadata={"description": "A micro-grid"},
                             error_messages={"invalid": UNKNOWN_GRID, "required": UNKNOWN_GRID})
    joined_on = fields.Date(load_default=date.today, error_messages={"invalid": BAD_DATE})
    show_on_leaderboard = JsonBoolean(load_default=True)
    username = fields.String(validate=validate.Length(min=1, max=64),
                             metadata={"description": "Defaults to the phone number"})


class NewPasswordSchema(Schema):
    password = fields.String(metadata={"description": "Shown once; hand it to the volunteer."})


class NewVolunteerSchema(NewPasswordSchema):
    volunteer = fields.Nested(VolunteerSchema)


class StatusSchema(Schema):
    status = fields.String(required=True, validate=validate.OneOf(STATUSES, error=UNKNOWN_STATUS),
                           error_messages={"required": UNKNOWN_STATUS})


class GridSchema(Schema):
    id = fields.Integer()
    name = fields.String()
    level = fields.String(metadata={"enum": ["grid", "micro"]})
    parent_id = fields.Integer(allow_none=True)
    path = fields.String()


@dataclass(frozen=True)
class VolunteerWithBalances:
    """A volunteer as the API shows them: their record and their two balances."""

    volunteer: Volunteer
    points: ledger.AccountBalance
    merit: ledger.AccountBalance

    def __getattr__(self, name: str):
        return getattr(self.volunteer, name)


def with_balances(volunteers: list[Volunteer]) -> list[VolunteerWithBalances]:
    found = service.volunteer_balances(db.session, volunteers)
    return [VolunteerWithBalances(v, *found[v.id]) for v in volunteers]


@bp.route("/volunteers")
class Volunteers(MethodView):
    @staff_only
    @bp.arguments(VolunteerQuerySchema, location="query")
    @bp.response(200, VolunteerPageSchema)
    def get(self, args):
        """Find the community's volunteers, with their balances, a page at a time."""
        query = service.search_volunteers(db.session, _community_id(), q=args["q"],
                                          grid_id=args["grid_id"], status=args["status"])
        page = db.paginate(query, page=args["page"], per_page=args["per_page"],
                           error_out=False)
        return {"items": with_balances(page.items), "total": page.total, "page": page.page,
                "per_page": page.per_page, "pages": page.pages}

    @staff_only
    @bp.arguments(VolunteerCreateSchema)
    @bp.response(201, NewVolunteerSchema)
    def post(self, body):
        """Add a volunteer; the answer holds their initial password, shown only once."""
        volunteer, password = use_cases.add_volunteer(db.session, current_user, body,
                                                      username=body.get("username"))
        return {"volunteer": with_balances([volunteer])[0], "password": password}


@bp.route("/volunteers/<id:volunteer_id>")
class VolunteerItem(MethodView):
    @staff_only
    @bp.response(200, VolunteerSchema)
    @bp.alt_response(404, schema=ErrorSchema, description="No such volunteer here.")
    def get(self, volunteer_id):
        """Show a volunteer with their POINTS and MERIT."""
        volunteer = service.get_volunteer(db.session, volunteer_id, _community_id())
        return with_balances([volunteer])[0]

    @staff_only
    @bp.arguments(VolunteerChangeSchema)
    @bp.response(200, VolunteerSchema)
    @bp.alt_response(404, schema=ErrorSchema, description="No such volunteer here.")
    def patch(self, body, volunteer_id):
        """Change the given fields of a volunteer."""
        volunteer = use_cases.change_volunteer(db.session, current_user, volunteer_id, body)
        return with_balances([volunteer])[0]


@bp.route("/volunteers/<id:volunteer_id>/status")
class VolunteerStatus(MethodView):
    @staff_only
    @bp.arguments(StatusSchema)
    @bp.response(200, VolunteerSchema)
    @bp.alt_response(404, schema=ErrorSchema, description="No such volunteer here.")
    def post(self, body, volunteer_id):
        """Suspend, reactivate or mark a volunteer as having left."""
        volunteer = use_cases.set_status(db.session, current_user, volunteer_id, body["status"])
        return with_balances([volunteer])[0]


@bp.route("/volunteers/<id:volunteer_id>/reset-password")
class VolunteerPassword(MethodView):
    @staff_only
    @bp.response(200, NewPasswordSchema)
    @bp.alt_response(404, schema=ErrorSchema, description="No such volunteer here.")
    def post(self, volunteer_id):
        """Give a volunteer a new password (ending their sessions) and answer it once."""
        password = use_cases.reset_password(db.session, current_user, volunteer_id)
        return {"password": password}


@bp.route("/grids")
class Grids(MethodView):
    @staff_only
    @bp.response(200, GridSchema(many=True))
    def get(self):
        """List the community's grids, each followed by its micro-grids."""
        return communities.community_grids(db.session, _community_id())


class AssetBalanceSchema(Schema):
    balance = fields.Integer()
    available = fields.Integer()
    held = fields.Integer()


class MeSchema(Schema):
    id = fields.Integer()
    username = fields.String()
    name = fields.String()
    role = fields.String()
    community_id = fields.Integer(allow_none=True)
    merchant_id = fields.Integer(allow_none=True)
    volunteer_id = fields.Integer(allow_none=True)
    points = fields.Nested(AssetBalanceSchema, allow_none=True)
    merit = fields.Integer(allow_none=True)


@me_bp.route("/me")
class Me(MethodView):
    @roles_required(*ALL_ROLES)
    @me_bp.response(200, MeSchema)
    @me_bp.alt_response(401, schema=ErrorSchema, description="Not signed in.")
    def get(self):
        """Say who the caller is; for a volunteer also their POINTS and MERIT."""
        user = current_user
        answer = {"id": user.id, "username": user.username, "name": user.name,
                  "role": user.role, "community_id": user.community_id,
                  "merchant_id": user.merchant_id, "volunteer_id": None, "points": None,
                  "merit": None}
        if user.role == "volunteer":
            volunteer = db.session.scalar(sa.select(Volunteer).where(Volunteer.user_id == user.id))
            found = ledger.balances(db.session, [volunteer.account("POINTS"),
                                                 volunteer.account("MERIT")])
            points = found[volunteer.account("POINTS")]
            answer.update(volunteer_id=volunteer.id, merit=found[volunteer.account("MERIT")].posted,
                          points={"balance": points.posted, "available": points.available,
                                  "held": points.pending})
        return answer

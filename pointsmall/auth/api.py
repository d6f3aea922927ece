"""The JSON API under /api/v1: tokens, the caller, and (per feature) the rest.

Machines and the mobile client authenticate with `Authorization: Bearer <token>`; the API
takes no cookies' word for anything, so it needs no CSRF token.
"""

from flask import Flask
from flask.views import MethodView
from flask_login import current_user
from marshmallow import Schema, fields, validate

import ledger
from pointsmall.auth import service as auth_service
from pointsmall.core import api_conventions
from pointsmall.core.api_conventions import ApiBlueprint
from pointsmall.core.errors import AppError
from pointsmall.core.shell import roles_required
from pointsmall.extensions import ErrorSchema, api, csrf, db

ALL_ROLES = ("volunteer", "merchant", "staff", "admin")

auth_bp = ApiBlueprint("api_auth", __name__, url_prefix="/api/v1/auth",
                       description="Sign in as a machine or app: tokens.")
me_bp = ApiBlueprint("api_me", __name__, url_prefix="/api/v1", description="Who am I.")


class TokenRequestSchema(Schema):
    username = fields.String(required=True, validate=validate.Length(min=1, max=64))
    password = fields.String(required=True, validate=validate.Length(min=1, max=128))
    name = fields.String(load_default="", validate=validate.Length(max=80))


class TokenSchema(Schema):
    id = fields.Integer()
    token = fields.String(metadata={"description": "Shown once; send as Bearer token."})
    prefix = fields.String()
    name = fields.String()


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


@auth_bp.route("/tokens")
class Tokens(MethodView):
    @auth_bp.doc(security=[])
    @auth_bp.arguments(TokenRequestSchema)
    @auth_bp.response(201, TokenSchema)
    @auth_bp.alt_response(401, schema=ErrorSchema, description="Wrong credentials.")
    @auth_bp.alt_response(429, schema=ErrorSchema, description=(
        "Too many failed attempts from this address (too_many_attempts), or so many on the "
        "account that it signs in only on the sign-in page, with a picture to read "
        "(picture_required)."))
    def post(self, body):
        """Exchange a username (or phone) and password for a bearer token."""
        from flask import request

        try:
            user = auth_service.authenticate(db.session, body["username"], body["password"],
                                             request.remote_addr or "")
        except AppError:
            db.session.commit()  # the failure counts towards the limit
            raise
        token, raw = auth_service.create_token(db.session, user, body["name"])
        db.session.commit()
        return {"id": token.id, "token": raw, "prefix": token.prefix, "name": token.name}


@auth_bp.route("/tokens/<id:token_id>")
class TokenItem(MethodView):
    @roles_required(*ALL_ROLES)
    @auth_bp.response(204)
    def delete(self, token_id):
        """Revoke one of the caller's tokens."""
        auth_service.revoke_token(db.session, current_user, token_id)
        db.session.commit()


@me_bp.route("/me")
class Me(MethodView):
    @roles_required(*ALL_ROLES)
    @me_bp.response(200, MeSchema)
    @me_bp.alt_response(401, schema=ErrorSchema, description="Not signed in.")
    def get(self):
        """Say who the caller is; for a volunteer also their POINTS and MERIT."""
        import sqlalchemy as sa

        from pointsmall.people.models import Volunteer

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


def register_api(app: Flask) -> None:
    """Register the API blueprints with the OpenAPI document; exempt them from CSRF."""
    api_conventions.install(app, api)
    from pointsmall.earning.api import bp as earning_bp
    from pointsmall.earning.platform_api import bp as platform_bp
    from pointsmall.market.api import bp as market_bp
    from pointsmall.people.api import bp as volunteers_bp
    from pointsmall.tasks.api import bp as tasks_bp
    from pointsmall.tasks.api import platform_bp as platform_tasks_bp

    for blueprint in (auth_bp, me_bp, volunteers_bp, market_bp, platform_bp, earning_bp,
                      tasks_bp, platform_tasks_bp):
        api.register_blueprint(blueprint)
        csrf.exempt(blueprint)

"""The JSON API's sign-in: bearer tokens for machines and the mobile client.

Machines and the mobile client authenticate with `Authorization: Bearer <token>`; the API
takes no cookies' word for anything, so it needs no CSRF token.
"""

from flask import request
from flask.views import MethodView
from flask_login import current_user
from marshmallow import Schema, fields, validate

from pointsmall.auth import use_cases
from pointsmall.core.api_conventions import ApiBlueprint
from pointsmall.core.shell import roles_required
from pointsmall.extensions import ErrorSchema, db

ALL_ROLES = ("volunteer", "merchant", "staff", "admin")  # every signed-in user

auth_bp = ApiBlueprint("api_auth", __name__, url_prefix="/api/v1/auth",
                       description="Sign in as a machine or app: tokens.")


class TokenRequestSchema(Schema):
    username = fields.String(required=True, validate=validate.Length(min=1, max=64))
    password = fields.String(required=True, validate=validate.Length(min=1, max=128))
    name = fields.String(load_default="", validate=validate.Length(max=80))


class TokenSchema(Schema):
    id = fields.Integer()
    token = fields.String(metadata={"description": "Shown once; send as Bearer token."})
    prefix = fields.String()
    name = fields.String()


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
        token, raw = use_cases.issue_token(db.session, body["username"], body["password"],
                                           request.remote_addr or "", name=body["name"])
        return {"id": token.id, "token": raw, "prefix": token.prefix, "name": token.name}


@auth_bp.route("/tokens/<id:token_id>")
class TokenItem(MethodView):
    @roles_required(*ALL_ROLES)
    @auth_bp.response(204)
    def delete(self, token_id):
        """Revoke one of the caller's tokens."""
        use_cases.revoke_token(db.session, current_user, token_id)

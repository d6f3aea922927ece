"""What every API blueprint shares: strict bodies, bounded ids, the errors the document names.

The OpenAPI document promises each operation's answers; these pieces keep the promise for
the failures every operation shares (a missing body, an id no row can have, an over-long
address, a database that is briefly away) instead of each view documenting them again.
"""

from functools import wraps

from apispec import BasePlugin
from flask import Flask, abort, current_app, request
from flask_babel import lazy_gettext as _l
from flask_smorest import Blueprint
from marshmallow import fields, validate
from werkzeug.exceptions import BadRequest
from werkzeug.routing import IntegerConverter

from pointsmall.core.shell import roles_required
from pointsmall.extensions import ErrorSchema

# Row ids are PostgreSQL `integer`s: an id beyond this names no row (and would not bind).
MAX_ROW_ID = 2**31 - 1
ROW_ID = validate.Range(min=1, max=MAX_ROW_ID)
# Text the service strips before checking must hold something besides spaces.
NOT_BLANK = r"\S"

BODY_REQUIRED = _l("A JSON body is required.")


class JsonBoolean(fields.Boolean):
    """A JSON body's boolean: true or false, not 0, 1 or "yes" (those are for query strings)."""

    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, bool):
            raise self.make_error("invalid", input=value)
        return value


class RowIdConverter(IntegerConverter):
    """`<id:name>`: a row id from 1 to MAX_ROW_ID; anything else is no route (404)."""

    def __init__(self, url_map, *args, **kwargs):
        super().__init__(url_map, min=1, max=MAX_ROW_ID)


class ApiBlueprint(Blueprint):
    """A flask-smorest Blueprint whose required JSON bodies are required indeed.

    webargs reads a missing or non-JSON body as `{}`, so a PATCH without a body would
    change nothing and answer 200; here it answers 400 like a body that is no JSON.
    """

    def arguments(self, schema, *, location="json", required=True, **kwargs):
        parse = super().arguments(schema, location=location, required=required, **kwargs)
        if location != "json" or not required:
            return parse

        def decorate(view):
            parsed = parse(view)

            @wraps(parsed)
            def wrapper(*args, **kw):
                if not request.is_json or not request.get_data(cache=True).strip():
                    error = BadRequest()
                    error.data = {"messages": {"json": [str(BODY_REQUIRED)]}}
                    raise error
                return parsed(*args, **kw)
            return wrapper
        return decorate


def _error(description: str, *, retry_after: bool = False) -> dict:
    response = {"description": description,
                "content": {"application/json": {"schema": "Error"}}}
    if retry_after:
        response["headers"] = {"Retry-After": {
            "description": "Seconds to wait before trying again", "required": True,
            "schema": {"type": "integer", "minimum": 0}}}
    return response


class SharedErrorsPlugin(BasePlugin):
    """Document, on every operation, the failures every operation of its kind can meet."""

    def operation_helper(self, path=None, operations=None, **kwargs):
        for operation in (operations or {}).values():
            responses = operation.setdefault("responses", {})
            if operation.get("security", True) != []:
                responses.setdefault(401, _error("No valid bearer token."))
            if "{" in (path or ""):
                responses.setdefault(404, _error("Nothing of the caller's at this address."))
            if "requestBody" in operation:
                responses.setdefault(400, _error("The body is missing or is no JSON."))
                responses.setdefault(413, _error("The body is too large."))
            responses.setdefault(414, _error("The address (path and query) is too long."))
            for status in (429, "429"):
                if status in responses:
                    said = responses[status]
                    said = said.get("description") if isinstance(said, dict) else None
                    responses[status] = _error(said or "Too many attempts.", retry_after=True)
            responses.setdefault(503, _error(
                "The database is briefly unavailable: retry (with the same Idempotency-Key).",
                retry_after=True))


def refuse_long_urls():
    """Answer 414 (JSON under /api/) for an address longer than MAX_URL_LENGTH."""
    limit = current_app.config.get("MAX_URL_LENGTH")
    if not limit:
        return
    environ = request.environ
    raw = environ.get("RAW_URI") or environ.get("REQUEST_URI") or request.full_path
    if len(raw) > limit:
        abort(414)


DESCRIPTION = (
    "Every failure answers `{\"code\", \"message\", \"errors\": {field: [...]}}` with one "
    "of the statuses its operation lists. A method a path does not serve answers 405 with an "
    "`Allow` header naming those it does (no operation can list that: it is not one).")


def install(app: Flask, api) -> None:
    """Prepare `app` and the OpenAPI document for the API blueprints (before registering them)."""
    app.url_map.converters["id"] = RowIdConverter
    # No catch-all "default" answer: it would make every status a documented one.
    api.DEFAULT_ERROR_RESPONSE_NAME = None
    api.spec.options.setdefault("info", {})["description"] = DESCRIPTION
    plugin = SharedErrorsPlugin()
    plugin.init_spec(api.spec)
    api.spec.plugins.append(plugin)
    # First, so that an over-long address is refused before anything reads it.
    app.before_request_funcs.setdefault(None, []).insert(0, refuse_long_urls)


def role_guard(bp: Blueprint, role: str):
    """Return a decorator that lets only bearers of `role` in and documents 401 and 403."""
    def guard(view):
        view = bp.alt_response(401, schema=ErrorSchema, description="No valid bearer token.")(
            view)
        view = bp.alt_response(403, schema=ErrorSchema, description="Wrong role.")(view)
        return roles_required(role)(view)
    return guard


# The grid platform's signed calls: the headers every one of them carries.
SIGNED_HEADERS = [
    {"in": "header", "name": "X-Timestamp", "required": True, "schema": {"type": "string"},
     "description": "Unix seconds; refused when more than five minutes off"},
    {"in": "header", "name": "X-Signature", "required": True, "schema": {"type": "string"},
     "description": "hex HMAC-SHA256 of '<timestamp>.<raw body>' with the community's secret"},
]

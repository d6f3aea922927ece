"""Domain errors of the app and the one place that turns every error into an HTTP answer.

API requests (under /api/) get `{"code", "message", "errors": {field: [...]}}` with the
right status; pages get the error page inside the shell.
"""

from flask import Flask, jsonify, render_template, request
from flask_babel import gettext as _
from werkzeug.exceptions import HTTPException

import ledger


class AppError(Exception):
    """A refusal of the app; nothing was written when one is raised."""

    status = 400
    code = "bad_request"

    def __init__(self, message: str = "", errors: dict[str, list[str]] | None = None):
        super().__init__(message)
        self.message = message
        self.errors = errors or {}


class ValidationFailed(AppError):
    status = 422
    code = "validation_failed"

    def __init__(self, errors: dict[str, list[str]], message: str = ""):
        super().__init__(message or _("Please correct the marked fields."), errors)


class NotFound(AppError):
    status = 404
    code = "not_found"

    def __init__(self, what: str = ""):
        super().__init__(_("Not found."))
        self.what = what


class Forbidden(AppError):
    status = 403
    code = "forbidden"

    def __init__(self, message: str = ""):
        super().__init__(message or _("You may not do this."))


class Conflict(AppError):
    status = 409
    code = "conflict"


class TooManyAttempts(AppError):
    status = 429
    code = "too_many_attempts"

    def __init__(self, message: str, retry_after: int):
        super().__init__(message)
        self.retry_after = retry_after


LEDGER_STATUS = {
    ledger.UnknownAccount: 404,
    ledger.UnknownTransaction: 404,
    ledger.UnknownHold: 404,
    ledger.IdempotencyConflict: 409,
    ledger.AlreadyReversed: 409,
    ledger.CannotReverseReversal: 409,
    ledger.HoldNotOpen: 409,
    ledger.AccountConflict: 409,
}


def status_for(error: ledger.LedgerError) -> int:
    """Return the HTTP status that answers a ledger refusal (422 unless listed)."""
    for cls in type(error).__mro__:
        if cls in LEDGER_STATUS:
            return LEDGER_STATUS[cls]
    return 422


def wants_json() -> bool:
    return request.path.startswith("/api/")


def _answer(status: int, code: str, message: str, errors: dict | None = None,
            headers: dict | None = None):
    from pointsmall.extensions import db

    db.session.rollback()
    if wants_json():
        response = jsonify(code=code, message=message, errors=errors or {})
    else:
        response = render_template("errors/error.html", status=status, message=message,
                                   errors=errors or {})
    return response, status, headers or {}


def register(app: Flask) -> None:
    """Install the handlers that answer every failure in one shape."""

    @app.errorhandler(AppError)
    def app_error(error: AppError):
        headers = {}
        if isinstance(error, TooManyAttempts):
            headers["Retry-After"] = str(error.retry_after)
        return _answer(error.status, error.code, error.message, error.errors, headers)

    @app.errorhandler(ledger.LedgerError)
    def ledger_error(error: ledger.LedgerError):
        return _answer(status_for(error), error.code, error.message)

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException):
        messages = {
            400: _("The request could not be understood."),
            401: _("Please sign in."),
            403: _("You may not do this."),
            404: _("Not found."),
            405: _("This method is not allowed here."),
            413: _("The upload is too large."),
            429: _("Too many attempts; please wait and try again."),
        }
        errors = {}
        data = getattr(error, "data", None) or {}
        if isinstance(data.get("messages"), dict):
            # webargs/marshmallow: {"json": {"field": ["..."]}} -> {"field": [...]}
            for location in data["messages"].values():
                if isinstance(location, dict):
                    errors.update(location)
        message = messages.get(error.code, error.description or error.name)
        if error.code == 422:
            message = _("Please correct the marked fields.")
        code = (error.name or "error").lower().replace(" ", "_")
        return _answer(error.code or 500, code, message, errors)

    @app.errorhandler(500)
    def server_error(error):
        return _answer(500, "internal_error", _("Something went wrong on our side."))

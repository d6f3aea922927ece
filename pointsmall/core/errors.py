"""Domain errors of the app and the one place that turns every error into an HTTP answer.

API requests (under /api/) get `{"code", "message", "errors": {field: [...]}}` with the
right status; pages get the error page inside the shell.
"""

from flask import Flask, flash, jsonify, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy.exc import DataError, OperationalError
from werkzeug.exceptions import HTTPException

import ledger
from merchants.errors import MarketError
from pointsmall.core import attempts
from pointsmall.core.labels import MARKET_STATUS_LABELS
from pointsmall.extensions import db


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


MARKET_MESSAGES = {
    "unknown_item": _l("This item does not exist."),
    "item_unavailable": _l("This item cannot be redeemed now."),
    "out_of_stock": _l("Not enough left: %(left)s in stock."),
    "over_personal_limit": _l(
        "You may redeem at most %(limit)s of this a month; you have %(taken)s."),
    "tier_too_low": _l("This item is for volunteers of a higher tier."),
    "invalid_quantity": _l("Choose a quantity from 1 to 99."),
    "unknown_redemption": _l("No such redemption code."),
    "redemption_not_reserved": _l("This redemption is no longer waiting: it is %(current)s."),
    "redemption_not_fulfilled": _l("Only a handed-over redemption can be refunded."),
    "idempotency_conflict": _l("This request was already used for something else."),
    "invalid_period": _l("Choose a period that has ended and ends after it starts."),
    "period_already_closed": _l("This period overlaps one that is already settled."),
    "invalid_item": _l("Please correct the marked fields."),
    "reason_required": _l("A reason is required."),
    "invalid_key": _l("A request key is a text of 1 to %(limit)d characters."),
}
LEDGER_MESSAGES = {
    "insufficient_funds": _l("Not enough points: %(available)s available, %(needed)s needed."),
    "invalid_amount": _l("Points are whole numbers greater than zero."),
    "hold_expired": _l("This redemption has expired."),
}


def describe(error: Exception) -> str:
    """Return a refusal's message in the user's language."""
    code = getattr(error, "code", "")
    template = MARKET_MESSAGES.get(code) or LEDGER_MESSAGES.get(code)
    if template is None:
        return getattr(error, "message", str(error))
    details = dict(getattr(error, "details", {}))
    if code == "redemption_not_reserved":
        current = details.get("current")
        details["current"] = MARKET_STATUS_LABELS.get(current, current)
    try:
        return str(template) % details
    except (KeyError, TypeError, ValueError):
        return str(template) % {k: "" for k in ("left", "limit", "taken", "current",
                                                 "available", "needed")}


def wants_json() -> bool:
    return request.path.startswith("/api/")


def _answer(status: int, code: str, message: str, errors: dict | None = None,
            headers: dict | None = None):
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

    @app.errorhandler(attempts.AttemptsExceeded)
    def attempts_exceeded(error: attempts.AttemptsExceeded):
        # Pages that take codes answer this themselves (the counter); the API here.
        return _answer(429, TooManyAttempts.code,
                       _("Too many attempts; please wait and try again."),
                       headers={"Retry-After": str(error.retry_after)})

    @app.errorhandler(ledger.LedgerError)
    def ledger_error(error: ledger.LedgerError):
        return _refusal(status_for(error), error)

    @app.errorhandler(MarketError)
    def market_error(error: MarketError):
        return _refusal(error.status, error)

    def _refusal(status: int, error: Exception):
        if not wants_json() and request.method == "POST" and not (
                status == 404 and request.view_args):
            # A refused form: say why on the page it came from. But a URL that names
            # something not there, or not the caller's (another community's), is a 404.
            db.session.rollback()
            flash(describe(error), "error")
            target = request.referrer or ""
            if not target.startswith(request.host_url):
                target = url_for("home.index")
            return redirect(target, 303)
        errors = getattr(error, "errors", None) or {}
        return _answer(status, error.code, describe(error), errors)

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException):
        messages = {
            400: _("The request could not be understood."),
            401: _("Please sign in."),
            403: _("You may not do this."),
            404: _("Not found."),
            405: _("This method is not allowed here."),
            413: _("The file is too large: at most %(mb)d MB can be uploaded at once.",
                   mb=(app.config.get("MAX_CONTENT_LENGTH") or 0) // (1024 * 1024)),
            414: _("The address is too long."),
            429: _("Too many attempts; please wait and try again."),
        }
        errors = {}
        data = getattr(error, "data", None) or {}
        if isinstance(data.get("messages"), dict):
            # webargs/marshmallow: {"json": {"field": ["..."]}} -> {"field": [...]}; a body
            # that is no JSON at all: {"json": ["..."]}. Lazy messages come unlisted.
            for location, found in data["messages"].items():
                pairs = found.items() if isinstance(found, dict) else [(location, found)]
                for field, said in pairs:
                    said = said if isinstance(said, list | tuple) else [said]
                    errors[str(field)] = [str(m) for m in said]
        message = messages.get(error.code, error.description or error.name)
        code = (error.name or "error").lower().replace(" ", "_")
        if error.code == 422:  # the same code as the service's own ValidationFailed
            message, code = _("Please correct the marked fields."), ValidationFailed.code
        # Keep what the exception says besides its page: Allow on a 405 (RFC 9110).
        headers = {name: value for name, value in error.get_headers()
                   if name.lower() != "content-type"}
        return _answer(error.code or 500, code, message, errors, headers)

    @app.errorhandler(RecursionError)
    def nested_too_deep(error: RecursionError):
        # JSON nested thousands deep overflows the parser (Flask's and webargs' alike): it
        # is a body nobody can mean, not a failure of ours.
        return _answer(400, "bad_request", _("The request could not be understood."))

    @app.errorhandler(DataError)
    @app.errorhandler(OverflowError)
    def out_of_range(error: Exception):
        # An id or date beyond what the database (or Python's calendar) can hold.
        return _answer(422, "out_of_range", _("A value is out of range."))

    @app.errorhandler(OperationalError)
    def database_away(error: OperationalError):
        # The database refused, dropped or timed out the connection (a restart, a failover),
        # or a conflict outlived the request's retries: a retry with the same
        # Idempotency-Key is safe, so say "try again" (503) rather than "our bug" (500).
        said = str(error.orig or error)
        app.logger.warning("database unavailable: %s", said[:300])
        return _answer(503, "unavailable",
                       _("The service is briefly unavailable. Please try again in a moment."),
                       headers={"Retry-After": "1"})

    @app.errorhandler(500)
    def server_error(error):
        return _answer(500, "internal_error", _("Something went wrong on our side."))

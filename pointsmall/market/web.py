"""What the merchant portal needs from the web app it is mounted in, without importing it."""

from functools import wraps

import sqlalchemy.orm as so
from flask import abort, current_app
from flask_login import current_user

from pointsmall.core.cells import safe_cell


def db_session() -> so.Session:
    """Return the request's database session (the app's Flask-SQLAlchemy session)."""
    return current_app.extensions["sqlalchemy"].session


def merchant_required(view):
    """Let only signed-in merchant staff through; others are sent to sign in or refused."""
    @wraps(view)
    def wrapper(*args, **kwargs):
        if not current_user.is_authenticated:
            return current_app.login_manager.unauthorized()
        if current_user.role != "merchant" or not current_user.merchant_id:
            abort(403)
        return view(*args, **kwargs)
    return wrapper


def spreadsheet_cell(value):
    """Return `value` as a cell of a downloaded file: text never starts a formula."""
    return safe_cell(value)

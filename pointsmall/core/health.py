"""Liveness: does the app answer, and does its database?"""

import sqlalchemy as sa
from flask import Blueprint, jsonify

from pointsmall.extensions import db

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz():
    """Answer 200 when the database answers, 503 when it does not."""
    try:
        db.session.execute(sa.text("SELECT 1"))
    except sa.exc.SQLAlchemyError:
        db.session.rollback()
        return jsonify(status="unhealthy", database="unreachable"), 503
    return jsonify(status="ok", database="ok")


"""The landing page of each role."""

import sqlalchemy as sa
from flask import Blueprint, current_app, redirect, render_template, send_from_directory, url_for
from flask_login import current_user

from pointsmall.earning.views import volunteer_home
from pointsmall.extensions import db
from pointsmall.people.communities import Community
from pointsmall.people.models import Volunteer

bp = Blueprint("home", __name__)


@bp.get("/")
def index():
    """Show the signed-in user's start page, or the sign-in page."""
    if not current_user.is_authenticated:
        return redirect(url_for("auth.login"))
    if current_user.role == "merchant":
        return redirect(url_for("counter.index"))
    if current_user.role == "volunteer":
        return volunteer_home()
    community = (db.session.get(Community, current_user.community_id)
                 if current_user.community_id else None)
    counts = {}
    if current_user.role == "staff":
        counts = dict(db.session.execute(
            sa.select(Volunteer.status, sa.func.count())
            .where(Volunteer.community_id == current_user.community_id)
            .group_by(Volunteer.status)).all())
    return render_template("home/staff.html", community=community, counts=counts)


@bp.get("/favicon.ico")
def favicon():
    """Send the tab icon browsers ask for at the site's root."""
    return send_from_directory(current_app.static_folder, "favicon.ico",
                               mimetype="image/vnd.microsoft.icon", max_age=7 * 24 * 3600)

"""Admin pages: communities, staff accounts, the audit log."""

from datetime import date, timedelta

import sqlalchemy as sa
from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from flask_wtf import FlaskForm
from wtforms import PasswordField, SelectField, StringField

from pointsmall.admin import audit_text, use_cases
from pointsmall.auth.models import User
from pointsmall.core import audit, clock
from pointsmall.core.errors import ValidationFailed
from pointsmall.core.shell import roles_required
from pointsmall.extensions import db
from pointsmall.people import communities

bp = Blueprint("admin", __name__, url_prefix="/admin")
staff_bp = Blueprint("staff_audit", __name__, url_prefix="/staff")


class CommunityForm(FlaskForm):
    name = StringField(_l("Community name"))
    district = StringField(_l("District or street"))


class StaffForm(FlaskForm):
    community_id = SelectField(_l("Community"), coerce=int, validate_choice=False)
    username = StringField(_l("Username"))
    name = StringField(_l("Name"))
    password = PasswordField(_l("Password"))


@bp.route("/communities", methods=["GET", "POST"])
@roles_required("admin")
def communities_page():
    """List communities with their staff; add a community or a staff account."""
    form, staff_form = CommunityForm(prefix="c"), StaffForm(prefix="s")
    all_communities = db.session.scalars(
        sa.select(communities.Community).order_by(communities.Community.id)).all()
    staff_form.community_id.choices = [(c.id, c.name) for c in all_communities]
    if submitted(form):
        try:
            use_cases.create_community(db.session, current_user, form.name.data,
                                       form.district.data or "")
        except ValidationFailed as error:
            form.name.errors = list(error.errors.get("name", []))
        else:
            flash(_("Saved."), "success")
            return redirect(url_for("admin.communities_page"))
    if submitted(staff_form):
        try:
            user = use_cases.create_staff(
                db.session, current_user, staff_form.community_id.data,
                username=staff_form.username.data, name=staff_form.name.data,
                password=staff_form.password.data)
        except ValidationFailed as error:
            for field, messages in error.errors.items():
                getattr(staff_form, field).errors = list(messages)
        else:
            flash(_("Staff account %(name)s created.", name=user.username), "success")
            return redirect(url_for("admin.communities_page"))
    staff = db.session.scalars(sa.select(User).where(User.role == "staff")
                               .order_by(User.community_id, User.username)).all()
    return render_template("admin/communities.html", form=form, staff_form=staff_form,
                           communities=all_communities, staff=staff)


def submitted(form: FlaskForm) -> bool:
    """Tell whether this prefixed form, of several on the page, was submitted and is valid."""
    return (request.method == "POST" and f"{form._prefix}csrf_token" in request.form
            and form.validate_on_submit())


@bp.get("/audit")
@roles_required("admin")
def audit_page():
    """Show the audit log in plain words and local time, newest first, filtered by action,
    person, community and dates."""
    return _audit(request.args.get("community", type=int), "admin.audit_page")


@staff_bp.get("/audit")
@roles_required("staff")
def staff_audit_page():
    """Show the audit log of the staff member's own community, as the admin reads it."""
    return _audit(current_user.community_id, "staff_audit.staff_audit_page")


def _audit(community_id: int | None, endpoint: str):
    start, end = _day_arg("from"), _day_arg("to")
    page = audit.search(db.session, action=request.args.get("action") or None,
                        actor=(request.args.get("actor") or "").strip() or None,
                        community_id=community_id,
                        page=request.args.get("page", 1, type=int),
                        since=clock.utc_start_of(start) if start else None,
                        until=clock.utc_start_of(end + timedelta(days=1)) if end else None)
    actions = db.session.scalars(sa.select(audit.AuditEntry.action).distinct()).all()
    choices = sorted(((code, audit_text.action_label(code)) for code in actions),
                     key=lambda pair: pair[1])
    all_communities = (db.session.scalars(sa.select(communities.Community)).all()
                       if endpoint == "admin.audit_page" else [])
    return render_template("admin/audit.html", page=page, actions=choices,
                           rows=audit_text.readable(db.session, page.items),
                           communities=all_communities, start=start, end=end,
                           zone=clock.zone().key, endpoint=endpoint)


def _day_arg(name: str) -> date | None:
    try:
        return date.fromisoformat(request.args.get(name, ""))
    except ValueError:
        return None

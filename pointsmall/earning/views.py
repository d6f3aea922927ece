"""Volunteer pages of the earning half: my points and tier, history, activities, check-in."""

import sqlalchemy as sa
from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user

import ledger
from ledger import utcnow
from merchants.models import Redemption
from pointsmall.auth.views import EmptyForm
from pointsmall.core.shell import roles_required
from pointsmall.earning import activities, expiry, tiers, use_cases
from pointsmall.earning.errors import CheckInRefused
from pointsmall.earning.models import DEFAULT_TYPES, Attendance
from pointsmall.extensions import db
from pointsmall.people.models import Volunteer

bp = Blueprint("earning", __name__)

# The default activity types (models.DEFAULT_TYPES) by code, in words Babel translates:
# a community's own types, or renamed ones, show the name staff gave them.
TYPE_LABELS = {
    "task": _l("Platform task"), "training": _l("Training"), "meeting": _l("Meeting"),
    "party": _l("Party and community event"), "service": _l("Volunteer service"),
    "wish": _l("Micro-wish"),
}
DEFAULT_TYPE_NAMES = {code: name for code, name, _points, _merit in DEFAULT_TYPES}


@bp.context_processor
def type_labels():
    def type_label(activity_type) -> str:
        if DEFAULT_TYPE_NAMES.get(activity_type.code) == activity_type.name:
            return str(TYPE_LABELS[activity_type.code])
        return activity_type.name

    return {"type_label": type_label}


def me() -> Volunteer:
    return db.session.scalar(sa.select(Volunteer).where(Volunteer.user_id == current_user.id))


def volunteer_home():
    """Render the volunteer's start page: points, merit, tier and what is missing, expiry."""
    volunteer = me()
    accounts = ledger.balances(db.session, [volunteer.account("POINTS"),
                                            volunteer.account("MERIT")])
    standing = tiers.standing(db.session, volunteer)
    history = ledger.history(db.session, volunteer.account("POINTS"), limit=5)
    return render_template(
        "home/volunteer.html", volunteer=volunteer,
        points=accounts[volunteer.account("POINTS")],
        merit=accounts[volunteer.account("MERIT")], standing=standing,
        expiring=expiry.upcoming_expiry(db.session, volunteer),
        recent=history.entries,
        upcoming=activities.upcoming(db.session, volunteer.community_id, limit=3))


@bp.get("/history")
@roles_required("volunteer")
def history():
    """List every change to my points, newest first, after the points held for codes."""
    volunteer = me()
    page = ledger.history(db.session, volunteer.account("POINTS"), limit=30,
                          before=request.args.get("before", type=int))
    # The balance after each posting counts held points as still mine; the holds are
    # listed with it, so that 余额 minus the holds is the 可用积分 of the start page.
    points = ledger.balance(db.session, volunteer.account("POINTS"))
    holds = db.session.scalars(
        sa.select(Redemption).where(Redemption.volunteer_id == volunteer.id,
                                    Redemption.status == "reserved")
        .order_by(Redemption.id.desc())).all()
    return render_template("earning/history.html", page=page, points=points, holds=holds)


@bp.get("/activities")
@roles_required("volunteer")
def activity_list():
    """List my community's coming activities and whether I signed up."""
    volunteer = me()
    coming = activities.upcoming(db.session, volunteer.community_id)
    mine = {a.activity_id: a for a in db.session.scalars(sa.select(Attendance).where(
        Attendance.volunteer_id == volunteer.id,
        Attendance.activity_id.in_([a.id for a in coming])))}
    counts = dict(db.session.execute(
        sa.select(Attendance.activity_id, sa.func.count())
        .where(Attendance.activity_id.in_([a.id for a in coming]))
        .group_by(Attendance.activity_id)).all())
    return render_template("earning/activities.html", activities=coming, mine=mine,
                           counts=counts, form=EmptyForm())


@bp.post("/activities/<int:activity_id>/sign-up")
@roles_required("volunteer")
def sign_up(activity_id: int):
    """Sign me up for an activity."""
    volunteer = me()
    activity = activities.get_activity(db.session, activity_id, volunteer.community_id)
    if EmptyForm().validate_on_submit():
        use_cases.sign_up(db.session, volunteer, activity.id)
        flash(_("You are signed up for %(title)s.", title=activity.title), "success")
    return redirect(url_for("earning.activity_list"))


@bp.route("/check-in/<token>", methods=["GET", "POST"])
@roles_required("volunteer")
def check_in(token: str):
    """Check me in at the venue: the page the activity's QR code opens."""
    activity = activities.activity_for_token(db.session, token)
    volunteer = me()
    form = EmptyForm()
    if form.validate_on_submit():
        use_cases.check_in(db.session, volunteer, token)
        flash(_("Checked in at %(title)s. Points follow once staff confirm.",
                title=activity.title), "success")
        return redirect(url_for("home.index"))
    # The button is offered only when a tap would work; otherwise the page says why.
    mine = db.session.scalar(sa.select(Attendance).where(
        Attendance.activity_id == activity.id, Attendance.volunteer_id == volunteer.id))
    refusal = activities.check_in_refusal(activity, volunteer, utcnow(), mine)
    if activity.community_id != volunteer.community_id:
        raise CheckInRefused(refusal)
    return render_template("earning/check_in.html", activity=activity, form=form,
                           refusal=refusal)


@bp.errorhandler(CheckInRefused)
def check_in_refused(error: CheckInRefused):
    """Answer a refused check-in on the check-in page, headed in words, not a number."""
    db.session.rollback()
    return render_template("earning/check_in.html", activity=None, form=EmptyForm(),
                           refusal=error.message), error.status

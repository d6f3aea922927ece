"""Staff pages of the earning half: activities, attendance, awards, approvals, adjustments,
reversals, tiers, leaderboards and evaluations."""

import uuid
from datetime import UTC, date, datetime, time, timedelta

import sqlalchemy as sa
from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_babel import ngettext
from flask_login import current_user
from flask_wtf import FlaskForm
from flask_wtf.file import FileField
from wtforms import BooleanField, DateField, IntegerField, SelectField, StringField, TimeField
from wtforms.validators import Optional

import ledger
from pointsmall.auth.models import User
from pointsmall.auth.views import EmptyForm
from pointsmall.core import clock
from pointsmall.core.errors import NotFound, ValidationFailed, describe
from pointsmall.core.qr import qr_data_uri
from pointsmall.core.shell import roles_required
from pointsmall.earning import activities, awards, sheets, tiers, use_cases
from pointsmall.earning.errors import invalid
from pointsmall.earning.models import (
    Activity,
    Adjustment,
    Award,
    AwardBatch,
    Evaluation,
    EvaluationEntry,
)
from pointsmall.earning.rules import activity_types, ensure_rules
from pointsmall.extensions import db
from pointsmall.people import service, table
from pointsmall.people.communities import community_grids, get_community
from pointsmall.people.models import Volunteer

bp = Blueprint("staff_earning", __name__, url_prefix="/staff")


class ActivityForm(FlaskForm):
    type_id = SelectField(_l("Type"), coerce=int, validate_choice=False)
    title = StringField(_l("Title"))
    place = StringField(_l("Place"))
    day = DateField(_l("Date"))
    start = TimeField(_l("Starts"))
    end = TimeField(_l("Ends"))
    capacity = IntegerField(_l("Places (empty: no limit)"), validators=[Optional()])
    points = IntegerField(_l("Points per attendee (empty: the type's rule)"),
                          validators=[Optional()])
    merit = IntegerField(_l("Merit per attendee (empty: the type's rule)"),
                         validators=[Optional()])


class AdjustForm(FlaskForm):
    phone = StringField(_l("Volunteer's mobile number"))
    points = IntegerField(_l("Points (negative to deduct)"), validators=[Optional()])
    reason = StringField(_l("Reason"))


class ThresholdForm(FlaskForm):
    bronze = IntegerField(_l("Bronze from"), validators=[Optional()])
    silver = IntegerField(_l("Silver from"), validators=[Optional()])
    gold = IntegerField(_l("Gold from"), validators=[Optional()])


class EvaluationForm(FlaskForm):
    name = StringField(_l("Name, e.g. 2026 H1"))
    start = DateField(_l("From"))
    end = DateField(_l("To (inclusive)"))
    early = BooleanField(_l("Freeze it now, although the period has not ended"))


class SheetForm(FlaskForm):
    file = FileField(_l("Sign-in sheet (CSV or XLSX with a phone column)"))


def _community_id() -> int:
    return current_user.community_id


# The service names some fields differently from the form that collects them.
FORM_FIELDS = {"starts_at": "start", "ends_at": "end"}


def _apply(form: FlaskForm, error: ValidationFailed) -> None:
    for field, messages in error.errors.items():
        field = FORM_FIELDS.get(field, field)
        if hasattr(form, field):
            getattr(form, field).errors = list(messages)
        else:
            flash(" ".join(messages), "error")


@bp.route("/activities", methods=["GET", "POST"], endpoint="activities")
@roles_required("staff")
def activities_page():
    """List the community's activities; create one."""
    form, refused = ActivityForm(), False
    form.type_id.choices = [(t.id, f"{t.name} (+{t.points})")
                            for t in activity_types(db.session, _community_id()) if t.active]
    if form.validate_on_submit():
        starts = _utc(form.day.data, form.start.data)
        ends = _utc(form.day.data, form.end.data)
        try:
            activity = use_cases.create_activity(db.session, current_user, {
                "type_id": form.type_id.data, "title": form.title.data,
                "place": form.place.data, "starts_at": starts, "ends_at": ends,
                "capacity": form.capacity.data, "points": form.points.data,
                "merit": form.merit.data})
        except ValidationFailed as error:
            _apply(form, error)
            refused = True
        else:
            return redirect(url_for("staff_earning.activity", activity_id=activity.id))
    listed = db.session.scalars(sa.select(Activity).where(
        Activity.community_id == _community_id()).order_by(Activity.starts_at.desc())
        .limit(100)).all()
    return render_template("earning/staff_activities.html", form=form, activities=listed), (
        422 if refused or form.errors else 200)


def _utc(day, moment: time) -> datetime | None:
    if day is None or moment is None:
        return None
    return datetime.combine(day, moment, clock.zone()).astimezone(UTC).replace(tzinfo=None)


@bp.get("/activities/<int:activity_id>")
@roles_required("staff")
def activity(activity_id: int):
    """Show an activity: its venue QR code, the attendance list and the award button."""
    found = activities.get_activity(db.session, activity_id, _community_id())
    return _activity_page(found)


def _activity_page(found: Activity, *, phones: str = "", ticked: frozenset[int] = frozenset(),
                   errors: dict[str, list[str]] | None = None, status: int = 200):
    link = url_for("earning.check_in", token=activities.check_in_token(found), _external=True)
    rows = activities.attendance(db.session, found.id)
    listed = {v.id for _, v in rows}
    awarded = {a.volunteer_id: a for a in db.session.scalars(
        sa.select(Award).where(Award.activity_id == found.id))}
    others = sorted((v for v in db.session.scalars(service.search_volunteers(
        db.session, _community_id(), status="active")) if v.id not in listed),
        key=lambda v: table.name_key(v.name))
    return render_template("earning/staff_activity.html", activity=found, link=link,
                           qr=qr_data_uri(link), rows=rows, awarded=awarded, form=EmptyForm(),
                           sheet_form=SheetForm(), key=uuid.uuid4().hex, others=others,
                           phones=phones, ticked=ticked, errors=errors or {}), status


@bp.post("/activities/<int:activity_id>/attendance")
@roles_required("staff")
def mark(activity_id: int):
    """Mark the ticked volunteers present (or, with present=0, not present)."""
    found = activities.get_activity(db.session, activity_id, _community_id())
    if EmptyForm().validate_on_submit():
        ids = [int(v) for v in request.form.getlist("volunteer_id") if v.isdigit()]
        typed = request.form.get("phones", "")
        phones = [p.strip() for p in typed.split() if p.strip()]
        try:
            if phones:
                ids += sheets.volunteers_by_phone(db.session, _community_id(), phones)
            if not ids:
                raise invalid("volunteer_id", _("Choose at least one volunteer."))
            use_cases.mark_attendance(db.session, current_user, found.id, ids,
                                      present=request.form.get("present", "1") == "1")
        except ValidationFailed as error:
            # Draw the page again with what was typed and ticked, the reason beside it.
            return _activity_page(found, phones=typed, ticked=frozenset(ids),
                                  errors=error.errors, status=422)
        flash(_("Attendance saved."), "success")
    return redirect(url_for("staff_earning.activity", activity_id=found.id))


@bp.post("/activities/<int:activity_id>/sheet")
@roles_required("staff")
def sheet(activity_id: int):
    """Mark present everyone on an uploaded sign-in sheet (CSV or XLSX with phone numbers)."""
    found = activities.get_activity(db.session, activity_id, _community_id())
    form = SheetForm()
    if form.validate_on_submit():
        if form.file.data:
            count = use_cases.mark_sheet_present(db.session, current_user, found.id,
                                                 form.file.data)
            flash(ngettext("%(num)d volunteer marked present from the sheet.",
                           "%(num)d volunteers marked present from the sheet.", count),
                  "success")
        else:
            flash(_("Choose a file."), "error")
    return redirect(url_for("staff_earning.activity", activity_id=found.id))


@bp.post("/activities/<int:activity_id>/award")
@roles_required("staff")
def award(activity_id: int):
    """Award everyone present (or the ticked ones): one request, all or nothing, once each."""
    # Another community's activity is not found, even behind a form that fails its check.
    found = activities.get_activity(db.session, activity_id, _community_id())
    if not EmptyForm().validate_on_submit():
        return redirect(url_for("staff_earning.activity", activity_id=found.id))
    ids = [int(v) for v in request.form.getlist("volunteer_id") if v.isdigit()] or None
    key = (request.form.get('key') or uuid.uuid4().hex)[:ledger.REQUEST_KEY_LEN]
    batch = use_cases.award_attendees(db.session, current_user, found.id, ids, key=key)
    if batch.status == "pending":
        flash(_("This batch needs a second staff member's approval before it posts."), "info")
    else:
        capped = awards.capped_in(db.session, batch)
        flash(ngettext("Awarded %(num)d volunteer.", "Awarded %(num)d volunteers.",
                       batch.people), "success")
        if capped:
            flash(ngettext("%(num)d award was cut by the earning caps; see the list.",
                           "%(num)d awards were cut by the earning caps; see the list.",
                           capped), "info")
    return redirect(url_for("staff_earning.activity", activity_id=found.id))


@bp.get("/awards")
@roles_required("staff")
def batches():
    """List award batches and adjustments: those waiting for approval first."""
    form = AdjustForm(prefix="adj")
    form.phone.data = request.args.get("phone", "")[:20]  # from a volunteer's page
    return _awards_page(form)


def _awards_page(adjust_form: AdjustForm, status: int = 200):
    rows = db.session.execute(
        sa.select(AwardBatch, Activity.title).outerjoin(Activity,
                                                       Activity.id == AwardBatch.activity_id)
        .where(AwardBatch.community_id == _community_id())
        .order_by(sa.case((AwardBatch.status == "pending", 0), else_=1),
                  AwardBatch.id.desc()).limit(100)).all()
    waiting = db.session.execute(
        sa.select(Adjustment, Volunteer).join(Volunteer, Volunteer.id == Adjustment.volunteer_id)
        .where(Adjustment.community_id == _community_id(), Adjustment.status == "pending")
        .order_by(Adjustment.id.desc())).all()
    names = _user_names({b.created_by for b, _ in rows} | {a.created_by for a, _ in waiting})
    # The key makes a second press of the adjustment's Save button a replay, not a second
    # grant; a form drawn again after an error keeps its key.
    key = (request.form.get("key") or "")[:ledger.REQUEST_KEY_LEN] or uuid.uuid4().hex
    return render_template("earning/batches.html", batches=rows, waiting=waiting, names=names,
                           adjust_form=adjust_form, key=key), status


def _user_names(ids: set[int | None]) -> dict[int, str]:
    ids = {i for i in ids if i}
    if not ids:
        return {}
    return dict(db.session.execute(sa.select(User.id, User.name).where(User.id.in_(ids))).all())


@bp.get("/awards/<int:batch_id>")
@roles_required("staff")
def batch(batch_id: int):
    """Show a batch: its activity, its maker, the people and what each gets; approve or
    reject it here, after a confirmation."""
    found = db.session.get(AwardBatch, batch_id)
    if found is None or found.community_id != _community_id():
        raise NotFound("batch")
    rows = db.session.execute(
        sa.select(Award, Volunteer).join(Volunteer, Volunteer.id == Award.volunteer_id)
        .where(Award.batch_id == found.id).order_by(Award.id)).all()
    activity = db.session.get(Activity, found.activity_id) if found.activity_id else None
    return render_template("earning/batch.html", batch=found, rows=rows, form=EmptyForm(),
                           activity=activity,
                           names=_user_names({found.created_by, found.approved_by}))


@bp.post("/awards/<int:batch_id>/<verdict>")
@roles_required("staff")
def decide(batch_id: int, verdict: str):
    """Approve or reject a batch someone else made."""
    if EmptyForm().validate_on_submit() and verdict in ("approve", "reject"):
        use_cases.decide_batch(db.session, current_user, batch_id, verdict)
        flash(_("Approved and posted.") if verdict == "approve" else _("Rejected."), "success")
    return redirect(url_for("staff_earning.batch", batch_id=batch_id))


@bp.post("/award-items/<int:award_id>/reverse")
@roles_required("staff")
def reverse(award_id: int):
    """Take an award back, with a reason; optionally only the points that are left."""
    if EmptyForm().validate_on_submit():
        found = use_cases.reverse_award(
            db.session, current_user, award_id, reason=request.form.get("reason", ""),
            only_what_is_left=request.form.get("partial") == "1")
        flash(_("Reversed %(points)d points and %(merit)d merit.",
                points=found.reversed_points, merit=found.reversed_merit), "success")
        return redirect(url_for("staff_earning.batch", batch_id=found.batch_id))
    return redirect(url_for("staff_earning.batches"))


@bp.post("/adjustments")
@roles_required("staff")
def adjust():
    """Grant or deduct points for a volunteer, with a mandatory reason; a grant over the
    approval limit waits for a second staff member."""
    form = AdjustForm(prefix="adj")
    if not form.validate_on_submit():
        return _awards_page(form, 422)
    try:
        # The form names the volunteer by phone: read it as the volunteer's id.
        ids = sheets.volunteers_by_phone(db.session, _community_id(), [form.phone.data or ""])
        found = use_cases.adjust_points(
            db.session, current_user, ids[0], form.points.data or 0, reason=form.reason.data,
            key=(request.form.get("key") or uuid.uuid4().hex)[:ledger.REQUEST_KEY_LEN])
    except ValidationFailed as error:
        _apply(form, error)
        return _awards_page(form, 422)
    except ledger.InsufficientFunds as error:
        form.points.errors = [describe(error)]
        return _awards_page(form, 422)
    if found.status == "pending":
        flash(_("Over the approval limit: this adjustment waits for a second staff member's "
                "approval. No points have moved yet."), "info")
        return redirect(url_for("staff_earning.adjustment", adjustment_id=found.id))
    flash(_("Adjusted."), "success")
    return redirect(url_for("staff_earning.batches"))


@bp.get("/adjustments/<int:adjustment_id>")
@roles_required("staff")
def adjustment(adjustment_id: int):
    """Show an adjustment: who gets it, how much, why, who asked; approve or reject it."""
    found = db.session.get(Adjustment, adjustment_id)
    if found is None or found.community_id != _community_id():
        raise NotFound("adjustment")
    volunteer = db.session.get(Volunteer, found.volunteer_id)
    return render_template("earning/adjustment.html", adjustment=found, volunteer=volunteer,
                           form=EmptyForm(),
                           names=_user_names({found.created_by, found.approved_by}))


@bp.post("/adjustments/<int:adjustment_id>/<verdict>")
@roles_required("staff")
def decide_adjustment(adjustment_id: int, verdict: str):
    """Approve (and post) or reject an adjustment someone else asked for."""
    if EmptyForm().validate_on_submit() and verdict in ("approve", "reject"):
        use_cases.decide_adjustment(db.session, current_user, adjustment_id, verdict)
        flash(_("Approved and posted.") if verdict == "approve" else _("Rejected."), "success")
    return redirect(url_for("staff_earning.adjustment", adjustment_id=adjustment_id))


@bp.route("/tiers", methods=["GET", "POST"])
@roles_required("staff")
def tier_page():
    """Thresholds with a preview of who moves, leaderboards, and evaluations."""
    rules = ensure_rules(db.session, _community_id())
    form = ThresholdForm(prefix="t")
    moves, scores, refused = None, {}, False
    if request.method == "GET":
        form.bronze.data, form.silver.data, form.gold.data = (
            rules.bronze_at, rules.silver_at, rules.gold_at)
    elif "t-csrf_token" in request.form and form.validate():
        wanted = {"bronze": form.bronze.data, "silver": form.silver.data,
                  "gold": form.gold.data}
        try:
            if request.form.get("confirm") == "1":
                use_cases.save_thresholds(db.session, current_user, wanted)
                flash(_("Thresholds saved."), "success")
                return redirect(url_for("staff_earning.tier_page"))
            moves = tiers.preview_thresholds(db.session, _community_id(), wanted)
            scores = {s.volunteer_id: s.score for s in tiers.standings(
                db.session, _community_id(), volunteer_ids=[v.id for v, _, _ in moves]).values()}
        except ValidationFailed as error:
            flash(" ".join(error.errors.get("thresholds", [])), "error")
            refused = True
    return _tiers(form, EvaluationForm(prefix="e", formdata=None), moves,
                  422 if refused or form.errors else 200, scores=scores)


def _tiers(form: ThresholdForm, evaluation_form: EvaluationForm, moves, status: int,
           scores: dict[int, int] | None = None):
    today = clock.local_today()
    start = _date_arg("start") or today.replace(month=1, day=1)
    end = _date_arg("end") or today
    grid_id = request.args.get("grid", type=int)
    board = tiers.leaderboard(db.session, _community_id(), clock.utc_start_of(start),
                              clock.utc_start_of(end + timedelta(days=1)), grid_id=grid_id)
    counts = {}
    for standing in tiers.standings(db.session, _community_id(), today=today).values():
        counts[standing.tier] = counts.get(standing.tier, 0) + 1
    evaluations = db.session.scalars(sa.select(Evaluation).where(
        Evaluation.community_id == _community_id()).order_by(Evaluation.id.desc())).all()
    return render_template("earning/tiers.html", form=form, moves=moves, board=board,
                           start=start, end=end, grid_id=grid_id, counts=counts,
                           grids=community_grids(db.session, _community_id()),
                           evaluations=evaluations, evaluation_form=evaluation_form,
                           scores=scores or {}), status


@bp.post("/evaluations")
@roles_required("staff")
def evaluate():
    """Freeze the ranking for a period."""
    form = EvaluationForm(prefix="e")
    if form.validate_on_submit():
        try:
            found = use_cases.freeze_evaluation(
                db.session, current_user, form.name.data, form.start.data, form.end.data,
                early=form.early.data)
        except ValidationFailed as error:
            _apply(form, error)
        else:
            return redirect(url_for("staff_earning.evaluation", evaluation_id=found.id))
    rules = ensure_rules(db.session, _community_id())
    thresholds = ThresholdForm(prefix="t", formdata=None)
    thresholds.bronze.data, thresholds.silver.data, thresholds.gold.data = (
        rules.bronze_at, rules.silver_at, rules.gold_at)
    return _tiers(thresholds, form, None, 422)


@bp.get("/evaluations/<int:evaluation_id>")
@roles_required("staff")
def evaluation(evaluation_id: int):
    """Show (and print) a frozen evaluation."""
    found = db.session.get(Evaluation, evaluation_id)
    if found is None or found.community_id != _community_id():
        raise NotFound("evaluation")
    entries = db.session.scalars(sa.select(EvaluationEntry).where(
        EvaluationEntry.evaluation_id == found.id).order_by(EvaluationEntry.rank,
                                                             EvaluationEntry.id)).all()
    return render_template("earning/evaluation.html", evaluation=found, entries=entries,
                           community=get_community(db.session, found.community_id),
                           # The period is stored up to the start of the day after its end.
                           last_day=clock.to_local(found.period_end - timedelta(days=1)))


def _date_arg(name: str):
    try:
        return date.fromisoformat(request.args.get(name, ""))
    except ValueError:
        return None



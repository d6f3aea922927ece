"""Volunteer pages of the task board (the phone): tasks open to me, mine, my hours; and
the residents' public wish pages, reached from the grid station's QR poster."""

import sqlalchemy as sa
from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _

from pointsmall.auth.views import EmptyForm
from pointsmall.core import clock
from pointsmall.core.errors import NotFound, ValidationFailed
from pointsmall.core.shell import roles_required
from pointsmall.earning.views import me
from pointsmall.extensions import db
from pointsmall.tasks import board, figures, hours, labels, use_cases, wishes
from pointsmall.tasks.forms import (
    DoneForm,
    FollowForm,
    RateForm,
    ReasonForm,
    WishForm,
    apply_errors,
)
from pointsmall.tasks.models import Assignment

bp = Blueprint("tasks", __name__)


@bp.get("/tasks")
@roles_required("volunteer")
def board_page():
    """List the tasks I have in hand and those open to me, nearest grid first; my hours."""
    volunteer = me()
    return render_template(
        "tasks/board.html", volunteer=volunteer,
        mine=board.my_assignments(db.session, volunteer),
        open_tasks=board.open_tasks(db.session, volunteer),
        hours=hours.service_hours(db.session, volunteer.id), form=EmptyForm())


@bp.post("/tasks/<int:task_id>/claim")
@roles_required("volunteer")
def claim(task_id: int):
    """Claim a place on a task."""
    volunteer = me()
    if EmptyForm().validate_on_submit():
        row = use_cases.claim_task(db.session, volunteer, task_id)
        flash(_("You have claimed %(title)s. Start it within %(n)d hours.",
                title=row.task.title, n=row.task.start_within_hours), "success")
    return redirect(url_for("tasks.task_page", task_id=task_id))


def _render_task(volunteer, task_id: int, done_form=None, back_form=None, status: int = 200):
    task = board.get_task(db.session, task_id, volunteer.community_id)
    row = db.session.scalar(sa.select(Assignment).where(
        Assignment.task_id == task.id, Assignment.volunteer_id == volunteer.id))
    if row is None and task.grid_id not in board.grids_near(volunteer):
        raise NotFound("task")
    return render_template("tasks/task.html", task=task, row=row, form=EmptyForm(),
                           done_form=done_form or DoneForm(prefix="done"),
                           back_form=back_form or ReasonForm(prefix="back")), status


@bp.get("/tasks/<int:task_id>")
@roles_required("volunteer")
def task_page(task_id: int):
    """Show a task: what, where, by when; claim, start, finish or give it back."""
    return _render_task(me(), task_id)


@bp.post("/tasks/<int:task_id>/start")
@roles_required("volunteer")
def start(task_id: int):
    """Say I have started my task."""
    volunteer = me()
    if EmptyForm().validate_on_submit():
        use_cases.start_task(db.session, volunteer, task_id)
        flash(_("Started. Mark it done when you have finished."), "success")
    return redirect(url_for("tasks.task_page", task_id=task_id))


@bp.post("/tasks/<int:task_id>/done")
@roles_required("volunteer")
def done(task_id: int):
    """Mark my task done with a note and photos."""
    volunteer = me()
    form = DoneForm(prefix="done")
    if not form.validate_on_submit():
        return _render_task(volunteer, task_id, done_form=form, status=422)
    try:
        use_cases.finish_task(
            db.session, volunteer, task_id, note=form.note.data or "",
            photos=[f for f in request.files.getlist("done-photos") if f.filename])
    except ValidationFailed as error:
        for message in apply_errors(form, error):
            flash(message, "error")
        return _render_task(volunteer, task_id, done_form=form, status=422)
    flash(_("Marked done. Staff will check it and award the points."), "success")
    return redirect(url_for("tasks.task_page", task_id=task_id))


@bp.post("/tasks/<int:task_id>/give-back")
@roles_required("volunteer")
def give_back(task_id: int):
    """Give my task back, with a reason."""
    volunteer = me()
    form = ReasonForm(prefix="back")
    if not form.validate_on_submit():
        return _render_task(volunteer, task_id, back_form=form, status=422)
    try:
        use_cases.give_back(db.session, volunteer, task_id, reason=form.reason.data or "")
    except ValidationFailed as error:
        apply_errors(form, error)
        return _render_task(volunteer, task_id, back_form=form, status=422)
    flash(_("Given back. Thank you for saying why."), "success")
    return redirect(url_for("tasks.board_page"))


# ---- the residents' public pages (no account) ----------------------------------------------

@bp.route("/wish/<int:grid_id>", methods=["GET", "POST"])
def post_wish(grid_id: int):
    """Post a micro-wish or report a problem, from the grid station's QR poster."""
    grid = wishes.grid_for_poster(db.session, grid_id)
    form, status = WishForm(), 200
    if form.validate_on_submit():
        try:
            wish = use_cases.post_wish(db.session, grid.id, {
                "kind": form.kind.data, "name": form.name.data, "phone": form.phone.data,
                "text": form.text.data}, address=request.remote_addr or "",
                photo=form.photo.data or None)
        except ValidationFailed as error:
            for message in apply_errors(form, error):
                flash(message, "error")
            status = 422
        else:
            flash(_("Thank you. Keep this page's link or your code %(code)s to follow it.",
                    code=wish.code), "success")
            return redirect(url_for("tasks.follow", code=wish.code))
    elif request.method == "POST":
        status = 400 if "csrf_token" in form.errors else 422
    return render_template("tasks/wish_form.html", form=form, grid=grid), status


@bp.route("/wish/follow", methods=["GET", "POST"])
def follow_lookup():
    """Find my wish by the code I was given."""
    form = FollowForm()
    if form.validate_on_submit():
        try:
            wish = wishes.wish_by_code(db.session, form.code.data)
        except NotFound:
            form.code.errors = [_("No wish has this code.")]
        else:
            return redirect(url_for("tasks.follow", code=wish.code))
    return render_template("tasks/follow_lookup.html", form=form), 422 if form.errors else 200


@bp.get("/wish/follow/<code>")
def follow(code: str):
    """Follow my wish: screened, published, taken, done, checked; rate the result."""
    return _render_follow(wishes.wish_by_code(db.session, code))


def _render_follow(wish, form=None, status: int = 200):
    shown = wishes.followed(db.session, wish)
    progress = wishes.task_progress(db.session, shown)
    can_rate = wish.resident_rating is None and any(a.state == "accepted" for a in progress)
    return render_template("tasks/follow.html", wish=wish, shown=shown, progress=progress,
                           can_rate=can_rate, form=form or RateForm(),
                           phone=wishes.masked_phone(wish.phone)), status


@bp.post("/wish/follow/<code>/rate")
def rate(code: str):
    """Rate the result of my wish, once."""
    wish = wishes.wish_by_code(db.session, code)
    form = RateForm()
    if not form.validate_on_submit():
        return _render_follow(wish, form, 422)
    use_cases.rate_result(db.session, wish.code, rating=form.rating.data,
                          comment=form.comment.data or "")
    flash(_("Thank you for your rating."), "success")
    return redirect(url_for("tasks.follow", code=wish.code))


@bp.app_context_processor
def task_labels():
    """Name the board's states on every page, in the reader's language."""
    def say(table):
        return lambda value: str(table.get(value, value))

    return {"task_state": say(labels.STATE_LABELS),
            "task_status": say(labels.TASK_STATUS_LABELS),
            "wish_status": say(labels.WISH_STATUS_LABELS),
            "wish_kind": say(labels.WISH_KIND_LABELS),
            "task_mode": say(labels.MODE_LABELS),
            "star_label": say(labels.STAR_LABELS)}


@bp.app_context_processor
def task_figures():
    """Let the dashboards' templates ask for the task board's figures."""
    def for_community(community_id, months):
        start = clock.utc_start_of(months[0])
        end = clock.utc_start_of(clock.next_month(months[-1]))
        return {"months": figures.by_month(db.session, community_id, months),
                "summary": figures.summary(db.session, community_id, start, end),
                "overdue": figures.overdue_by_grid(db.session, community_id)}

    def for_district(community_ids, month):
        start = clock.utc_start_of(month.replace(month=1))
        end = clock.utc_start_of(clock.next_month(month))
        return {c: figures.summary(db.session, c, start, end) for c in community_ids}

    return {"task_figures": for_community, "district_task_figures": for_district}

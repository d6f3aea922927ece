"""Staff pages of the task board: publish and dispatch tasks, check and rate what is done,
screen residents' wishes, print a grid station's QR poster."""

import uuid
from datetime import UTC, timedelta
from decimal import Decimal

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user

from ledger import REQUEST_KEY_LEN
from pointsmall.auth.views import EmptyForm
from pointsmall.core import clock
from pointsmall.core.errors import NotFound, ValidationFailed
from pointsmall.core.qr import qr_data_uri
from pointsmall.core.shell import roles_required
from pointsmall.earning import sheets
from pointsmall.earning.rules import activity_type
from pointsmall.extensions import db
from pointsmall.people.communities import community_grids
from pointsmall.tasks import board, checks, use_cases, wishes
from pointsmall.tasks.forms import (
    CheckForm,
    DispatchForm,
    MergeForm,
    PublishForm,
    ReasonForm,
    TaskForm,
    apply_errors,
)
from pointsmall.tasks.models import Task
from pointsmall.tasks.wishes import wishes_grids

bp = Blueprint("staff_tasks", __name__, url_prefix="/staff")


def to_utc(moment):
    """Read a local date and time typed on a form as the stored naive UTC."""
    if moment is None:
        return None
    return moment.replace(tzinfo=clock.zone()).astimezone(UTC).replace(tzinfo=None)


def task_fields(form) -> dict:
    fields = {"title": form.title.data, "place": form.place.data,
              "points": form.points.data if form.points.data is not None else 0,
              "merit": form.merit.data if form.merit.data is not None else 0,
              "people": form.people.data, "hours": form.hours.data,
              "deadline": to_utc(form.deadline.data),
              "photo_required": form.photo_required.data}
    for name in ("description", "grid_id", "mode", "start_within_hours"):
        if hasattr(form, name):
            fields[name] = getattr(form, name).data
    return fields


def _grid_choices():
    return [(g.id, g.path) for g in community_grids(db.session, current_user.community_id)]


@bp.route("/tasks", methods=["GET", "POST"])
@roles_required("staff")
def tasks_page():
    """List the community's tasks and those waiting for a check; publish a task."""
    form, status = TaskForm(), 200
    form.grid_id.choices = _grid_choices()
    if form.validate_on_submit():
        try:
            # A second press of Publish replays the first (the form's key), not a twin task.
            task = use_cases.publish_task(db.session, current_user, task_fields(form),
                                          key=(request.form.get("key") or "")[:REQUEST_KEY_LEN])
        except ValidationFailed as error:
            for message in apply_errors(form, error):
                flash(message, "error")
            status = 422
        else:
            flash(_("Task published."), "success")
            return redirect(url_for("staff_tasks.task", task_id=task.id))
    elif form.errors:
        status = 422
    listed = db.session.scalars(db.select(Task).where(
        Task.community_id == current_user.community_id)
        .order_by(Task.id.desc()).limit(100)).all()
    return render_template(
        "tasks/staff_tasks.html", form=form, tasks=listed,
        key=request.form.get("key") or uuid.uuid4().hex,
        waiting=checks.waiting_for_check(db.session, current_user.community_id)), status


def _render_task(task_id: int, status: int = 200, **forms):
    task = board.get_task(db.session, task_id, current_user.community_id)
    return render_template(
        "tasks/staff_task.html", task=task, rows=checks.assignments_of(db.session, task.id),
        check_form=forms.get("check_form") or CheckForm(prefix="check"),
        back_form=forms.get("back_form") or ReasonForm(prefix="back"),
        dispatch_form=forms.get("dispatch_form") or DispatchForm(prefix="d"),
        checked=forms.get("checked")), status


@bp.get("/tasks/<int:task_id>")
@roles_required("staff")
def task(task_id: int):
    """Show a task: who took it, what they did; accept with a rating or send back."""
    return _render_task(task_id)


@bp.post("/tasks/<int:task_id>/dispatch")
@roles_required("staff")
def dispatch(task_id: int):
    """Hand the task to named volunteers (by mobile number)."""
    board.get_task(db.session, task_id, current_user.community_id)
    form = DispatchForm(prefix="d")
    if form.validate_on_submit():
        phones = [p for p in (form.phones.data or "").split() if p]
        if not phones:
            form.phones.errors = [_("Type at least one mobile number.")]
            return _render_task(task_id, 422, dispatch_form=form)
        ids = sheets.volunteers_by_phone(db.session, current_user.community_id, phones)
        try:
            use_cases.dispatch_task(db.session, current_user, task_id, ids)
        except ValidationFailed as error:
            form.phones.errors = [m for ms in error.errors.values() for m in ms]
            return _render_task(task_id, 422, dispatch_form=form)
        flash(_("Dispatched."), "success")
    return redirect(url_for("staff_tasks.task", task_id=task_id))


@bp.post("/task-assignments/<int:assignment_id>/accept")
@roles_required("staff")
def accept(assignment_id: int):
    """Accept a done task with a rating; its points and merit are awarded once."""
    form = CheckForm(prefix="check")
    if not form.validate_on_submit():
        return redirect(url_for("staff_tasks.tasks_page"))
    row = use_cases.accept_task(db.session, current_user, assignment_id,
                                rating=form.rating.data, comment=form.comment.data or "")
    flash(_("Accepted with %(n)d stars; the points are awarded.", n=row.rating), "success")
    return redirect(url_for("staff_tasks.task", task_id=row.task_id))


@bp.post("/task-assignments/<int:assignment_id>/send-back")
@roles_required("staff")
def send_back(assignment_id: int):
    """Send a done task back to the volunteer with a reason."""
    form = ReasonForm(prefix="back")
    if not form.validate_on_submit():
        return redirect(url_for("staff_tasks.tasks_page"))
    row = use_cases.send_back(db.session, current_user, assignment_id,
                              reason=form.reason.data or "")
    flash(_("Sent back to the volunteer."), "success")
    return redirect(url_for("staff_tasks.task", task_id=row.task_id))


@bp.get("/wishes")
@roles_required("staff")
def wishes_page():
    """List residents' wishes and reports, those waiting for screening first."""
    status = request.args.get("status") or None
    return render_template(
        "tasks/staff_wishes.html", status=status,
        wishes=wishes.community_wishes(db.session, current_user.community_id, status=status),
        grids=wishes_grids(db.session, current_user.community_id))


def _render_wish(wish_id: int, status: int = 200, **forms):
    wish = wishes.get_wish(db.session, wish_id, current_user.community_id)
    publish_form = forms.get("publish_form") or PublishForm(prefix="p")
    if request.method == "GET":
        # A wish's task earns what the community's "wish" activity type gives, by default,
        # and is due within the 48 hours the districts aim for.
        kind = activity_type(db.session, wish.community_id, "wish")
        publish_form.title.data = wish.text[:40]
        publish_form.points.data = kind.points if kind else None
        publish_form.merit.data = kind.merit if kind else None
        publish_form.hours.data = Decimal("1")
        publish_form.deadline.data = (clock.local_now() + timedelta(hours=48)).replace(
            tzinfo=None, second=0, microsecond=0)
    return render_template(
        "tasks/staff_wish.html", wish=wish, publish_form=publish_form,
        merge_form=forms.get("merge_form") or MergeForm(prefix="m"),
        close_form=forms.get("close_form") or ReasonForm(prefix="c"),
        progress=wishes.task_progress(db.session, wish)), status


@bp.get("/wishes/<int:wish_id>")
@roles_required("staff")
def wish(wish_id: int):
    """Show a wish with the resident's phone; publish it as a task, merge it, or close it."""
    return _render_wish(wish_id)


@bp.post("/wishes/<int:wish_id>/publish")
@roles_required("staff")
def publish(wish_id: int):
    """Publish a wish as a task of its grid."""
    form = PublishForm(prefix="p")
    if form.validate_on_submit():
        try:
            found = use_cases.publish_wish(db.session, current_user, wish_id, task_fields(form))
        except ValidationFailed as error:
            for message in apply_errors(form, error):
                flash(message, "error")
            return _render_wish(wish_id, 422, publish_form=form)
        flash(_("Published as a task."), "success")
        return redirect(url_for("staff_tasks.task", task_id=found.task_id))
    return _render_wish(wish_id, 422, publish_form=form)


@bp.post("/wishes/<int:wish_id>/merge")
@roles_required("staff")
def merge(wish_id: int):
    """Merge a wish into another one."""
    form = MergeForm(prefix="m")
    if form.validate_on_submit():
        try:
            use_cases.merge_wish(db.session, current_user, wish_id, form.into_id.data)
        except ValidationFailed as error:
            apply_errors(form, error)
            return _render_wish(wish_id, 422, merge_form=form)
        flash(_("Merged."), "success")
    return redirect(url_for("staff_tasks.wish", wish_id=wish_id))


@bp.post("/wishes/<int:wish_id>/close")
@roles_required("staff")
def close(wish_id: int):
    """Close a wish with a reason the resident reads."""
    form = ReasonForm(prefix="c")
    if form.validate_on_submit():
        try:
            use_cases.close_wish(db.session, current_user, wish_id,
                                 reason=form.reason.data or "")
        except ValidationFailed as error:
            apply_errors(form, error)
            return _render_wish(wish_id, 422, close_form=form)
        flash(_("Closed; the resident sees the reason."), "success")
    return redirect(url_for("staff_tasks.wish", wish_id=wish_id))


@bp.get("/wishes/poster/<int:grid_id>")
@roles_required("staff")
def poster(grid_id: int):
    """Print the QR poster of a grid station: residents scan it to post a wish."""
    grid = wishes.grid_for_poster(db.session, grid_id)
    if grid.community_id != current_user.community_id:
        raise NotFound("grid")
    link = url_for("tasks.post_wish", grid_id=grid.id, _external=True)
    return render_template("tasks/poster.html", grid=grid, link=link, qr=qr_data_uri(link),
                           form=EmptyForm())

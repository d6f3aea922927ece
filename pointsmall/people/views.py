"""Staff pages for the volunteers and grids of their own community."""

from datetime import date

from flask import (
    Blueprint,
    Response,
    flash,
    redirect,
    render_template,
    request,
    stream_with_context,
    url_for,
)
from flask_babel import get_locale, ngettext
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from flask_wtf import FlaskForm
from flask_wtf.file import FileAllowed, FileField, FileRequired
from wtforms import BooleanField, DateField, SelectField, StringField
from wtforms.validators import Optional

from pointsmall.auth.views import EmptyForm
from pointsmall.core.clock import local_today
from pointsmall.core.errors import ValidationFailed
from pointsmall.core.labels import VOLUNTEER_STATUS_LABELS
from pointsmall.core.shell import roles_required
from pointsmall.extensions import db
from pointsmall.jobs import service as jobs
from pointsmall.jobs import views as job_views
from pointsmall.jobs import work
from pointsmall.people import (
    communities,
    export,
    figures,
    importer,
    service,
    table,
    use_cases,
)
from pointsmall.people.models import STATUSES

bp = Blueprint("volunteers", __name__, url_prefix="/staff")


class VolunteerForm(FlaskForm):
    name = StringField(_l("Name"))
    phone = StringField(_l("Mobile number"))
    grid_id = SelectField(_l("Micro-grid"), coerce=int, validate_choice=False)
    joined_on = DateField(_l("Joined the volunteer team on"), validators=[Optional()],
                          default=date.today)
    show_on_leaderboard = BooleanField(_l("Show my name on leaderboards"), default=True)


class ImportForm(FlaskForm):
    file = FileField(_l("CSV or XLSX file"), validators=[
        FileRequired(_l("Choose a file.")),
        FileAllowed(["csv", "xlsx"], _l("Only CSV and XLSX files can be imported."))])
    codes = BooleanField(_l("Make a first sign-in code for each volunteer, to print or send"),
                         default=True)


class GridForm(FlaskForm):
    name = StringField(_l("Grid name"))
    parent_id = SelectField(_l("Under grid"), coerce=int, validate_choice=False)


def _community_id() -> int:
    return current_user.community_id


def _grid_choices(micro_only: bool = True) -> list[tuple[int, str]]:
    grids = communities.community_grids(db.session, _community_id())
    return [(g.id, g.path) for g in grids if g.level == "micro" or not micro_only]


def _apply_errors(form: FlaskForm, error: ValidationFailed) -> None:
    for field, messages in error.errors.items():
        if hasattr(form, field):
            getattr(form, field).errors = list(messages)
        else:
            flash(" ".join(messages), "error")


@bp.get("/volunteers")
@roles_required("staff")
def index():
    """Show the community's volunteers as a table to sort and filter, a page at a time."""
    filters = table.Filters.from_args(request.args)
    page = table.page(db.session, _community_id(), filters,
                      request.args.get("page", 1, type=int))
    return render_template("people/index.html", page=page, filters=filters,
                           q=filters.q, grid_id=filters.grid_id, status=filters.status,
                           grids=_grid_choices(micro_only=False), statuses=VOLUNTEER_STATUS_LABELS,
                           tiers=table.TIERS)


@bp.route("/volunteers/new", methods=["GET", "POST"])
@roles_required("staff")
def create():
    """Add a volunteer to the community and hand out their first password."""
    form = VolunteerForm()
    form.grid_id.choices = _grid_choices()
    if form.validate_on_submit():
        try:
            volunteer, password = use_cases.add_volunteer(db.session, current_user, form.data)
        except ValidationFailed as error:
            _apply_errors(form, error)
        else:
            return render_template("people/password.html", volunteer=volunteer,
                                   password=password)
    return render_template("people/form.html", form=form, volunteer=None), (
        422 if form.errors else 200)


@bp.route("/volunteers/<int:volunteer_id>", methods=["GET", "POST"])
@roles_required("staff")
def edit(volunteer_id: int):
    """Change a volunteer's details."""
    volunteer = service.get_volunteer(db.session, volunteer_id, _community_id())
    form = VolunteerForm(obj=volunteer)
    form.grid_id.choices = _grid_choices()
    if request.method == "GET":
        form.name.data, form.phone.data = volunteer.name, volunteer.phone
    if form.validate_on_submit():
        try:
            use_cases.update_volunteer(db.session, current_user, volunteer.id, form.data)
        except ValidationFailed as error:
            _apply_errors(form, error)
        else:
            flash(_("Saved."), "success")
            return redirect(url_for("volunteers.edit", volunteer_id=volunteer.id))
    return render_template("people/form.html", form=form, volunteer=volunteer,
                           action_form=EmptyForm(), statuses=VOLUNTEER_STATUS_LABELS,
                           overview=figures.card(
                               db.session, volunteer, before=request.args.get("before", type=int))
                           ), (422 if form.errors else 200)


@bp.post("/volunteers/<int:volunteer_id>/status/<status>")
@roles_required("staff")
def set_status(volunteer_id: int, status: str):
    """Suspend, reactivate or mark a volunteer as having left."""
    volunteer = service.get_volunteer(db.session, volunteer_id, _community_id())
    if EmptyForm().validate_on_submit() and status in STATUSES:
        use_cases.set_status(db.session, current_user, volunteer.id, status)
        flash(_("Status changed to %(status)s.", status=VOLUNTEER_STATUS_LABELS[status]), "success")
    return redirect(url_for("volunteers.edit", volunteer_id=volunteer.id))


@bp.post("/volunteers/<int:volunteer_id>/reset-password")
@roles_required("staff")
def reset_password(volunteer_id: int):
    """Give a volunteer a new password to read out to them."""
    volunteer = service.get_volunteer(db.session, volunteer_id, _community_id())
    if not EmptyForm().validate_on_submit():
        return redirect(url_for("volunteers.edit", volunteer_id=volunteer.id))
    password = use_cases.reset_password(db.session, current_user, volunteer.id)
    return render_template("people/password.html", volunteer=volunteer, password=password)


@bp.route("/volunteers/import", methods=["GET", "POST"])
@roles_required("staff")
def import_volunteers():
    """Import volunteers from a CSV or XLSX file: every row, or none while one is wrong."""
    form = ImportForm()
    if form.validate_on_submit():
        upload = form.file.data
        data = upload.read()
        try:
            importer.check_upload(upload.filename or "", data)
        except importer.ImportRefused as refusal:
            return render_template("people/import.html", form=form, refusal=refusal,
                                   max_rows=importer.MAX_ROWS), 422
        if jobs.runs_as_job(db.session, "IMPORT_JOB_BYTES", len(data)):
            # A large file is checked and imported by a worker; its page shows the result.
            job = use_cases.start_import(db.session, current_user, upload.filename or "", data)
            return job_views.started(job)
        try:
            created, codes = use_cases.import_volunteers(
                db.session, current_user, upload.filename or "", data,
                with_codes=bool(form.codes.data))
        except importer.ImportRefused as refusal:
            return render_template("people/import.html", form=form, refusal=refusal,
                                   max_rows=importer.MAX_ROWS), 422
        flash(ngettext("%(num)d volunteer imported.", "%(num)d volunteers imported.",
                       len(created)), "success")
        left_out = importer.unknown_columns(upload.filename or "", data)
        if left_out:
            flash(_("Not imported: the column(s) %(columns)s. Points Mall keeps no such "
                    "field; keep that list elsewhere.", columns="、".join(left_out)), "info")
        if codes:
            return render_template("people/codes.html", codes=codes)
        return redirect(url_for("volunteers.index"))
    return render_template("people/import.html", form=form, refusal=None,
                           max_rows=importer.MAX_ROWS), 422 if form.errors else 200


@work.runner("import")
def run_import_job(job, progress) -> str | None:
    """Import a large roster file in a worker: every row, or none and the problems."""
    asked = job.params
    try:
        with db.session.begin_nested():
            created = importer.import_volunteers(db.session, asked["community_id"],
                                                 asked["filename"], job.upload)
    except importer.ImportRefused as refusal:
        job.result = {"refused": str(refusal.message), "rows": [
            {"line": r.line, "column": str(r.column), "message": str(r.message)}
            for r in refusal.rows]}
        return "failed"
    job.result = {"imported": len(created)}
    return None


@bp.get("/volunteers/import/template.csv")
@roles_required("staff")
def import_template():
    """Download the blank import file with its Chinese headers."""
    return Response(export.template_csv(), mimetype="text/csv", headers={
        "Content-Disposition": "attachment; filename=volunteers-template.csv"})


@bp.get("/volunteers/export.csv")
@roles_required("staff")
def export_volunteers():
    """Download the volunteers the list page shows (same filters) as CSV for Excel."""
    query = table.export_query(db.session, _community_id(),
                               table.Filters.from_args(request.args))
    language = "zh" if str(get_locale() or "zh").startswith("zh") else "en"
    lines = export.volunteer_lines(db.session, _community_id(), query, language,
                                   {k: str(v) for k, v in VOLUNTEER_STATUS_LABELS.items()})
    return Response(stream_with_context(lines), mimetype="text/csv", headers={
        "Content-Disposition": f"attachment; filename=volunteers-{local_today():%Y%m%d}.csv"})


@bp.route("/grids", methods=["GET", "POST"])
@roles_required("staff")
def grids():
    """List the community's grids and micro-grids; add one."""
    form = GridForm()
    form.parent_id.choices = [(0, _("(a top-level grid)"))] + _grid_choices_top()
    if form.validate_on_submit():
        try:
            use_cases.add_grid(db.session, current_user, form.name.data,
                               form.parent_id.data or None)
        except ValidationFailed as error:
            _apply_errors(form, error)
        else:
            flash(_("Saved."), "success")
            return redirect(url_for("volunteers.grids"))
    return render_template("people/grids.html", form=form,
                           grids=communities.community_grids(db.session, _community_id())), (
        422 if form.errors else 200)


def _grid_choices_top() -> list[tuple[int, str]]:
    return [(g.id, g.name) for g in communities.community_grids(db.session, _community_id())
            if g.level == "grid"]

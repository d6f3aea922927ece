"""A job's page (progress, then the download or the result), its status as JSON, its file.

Only the job's owner sees any of it: anyone else, staff of the same community included,
gets 404, as for a job that never was.
"""

from flask import Blueprint, Response, jsonify, redirect, render_template, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user

from pointsmall.core.shell import roles_required
from pointsmall.extensions import db
from pointsmall.jobs import service
from pointsmall.jobs.models import BackgroundJob

bp = Blueprint("jobs", __name__)
ROLES = ("staff", "admin", "merchant")
# Seconds between two refreshes of an unfinished job's page.
REFRESH = 2
JOB_STATUS_LABELS = {"queued": _l("Waiting for a worker"), "running": _l("Running"),
                     "done": _l("Ready"), "failed": _l("Failed")}


def started(job: BackgroundJob) -> Response:
    """Answer a request whose work became a job: go to the job's page."""
    return redirect(url_for("jobs.show", job_id=job.id), 303)


@bp.get("/jobs")
@roles_required(*ROLES)
def index():
    """List my jobs whose files are still kept."""
    return render_template("jobs/index.html", jobs=service.own_jobs(db.session, current_user.id),
                           labels=JOB_STATUS_LABELS)


@bp.get("/jobs/<int:job_id>")
@roles_required(*ROLES)
def show(job_id: int):
    """Show my job's progress (the page refreshes itself), then its download or result."""
    job = service.own_job(db.session, job_id, current_user.id)
    return render_template("jobs/show.html", job=job, labels=JOB_STATUS_LABELS,
                           refresh=None if job.finished else REFRESH)


@bp.get("/jobs/<int:job_id>.json")
@roles_required(*ROLES)
def status(job_id: int):
    """Tell how far my job is, and where its file is once it is ready."""
    job = service.own_job(db.session, job_id, current_user.id)
    answer = jsonify({
        "id": job.id, "status": job.status, "label": str(JOB_STATUS_LABELS[job.status]),
        "done": job.done, "total": job.total, "percent": job.percent,
        "download": url_for("jobs.download", job_id=job.id) if job.size else None,
        "result": job.result})
    answer.headers["Cache-Control"] = "no-store"
    return answer


@bp.get("/jobs/<int:job_id>/file")
@roles_required(*ROLES)
def download(job_id: int):
    """Download my job's file."""
    job = service.own_job(db.session, job_id, current_user.id)
    if job.status != "done" or not job.size:
        return render_template("jobs/show.html", job=job, labels=JOB_STATUS_LABELS,
                               refresh=None if job.finished else REFRESH,
                               not_ready=_("The file is not ready yet.")), 409
    disposition = "inline" if job.content_type == "application/pdf" else "attachment"
    return Response(service.file_of(db.session, job), mimetype=job.content_type, headers={
        "Content-Disposition": f'{disposition}; filename="{job.filename}"',
        "Cache-Control": "no-store"})

"""Download routes: staff their community's tables, admins any community's, merchants their own.

`?start=YYYY-MM-DD&end=YYYY-MM-DD` picks the period in local days, the end day included.
CSV streams; XLSX is built in a temporary file first (see pointsmall.core.files).
Past EXPORT_JOB_ROWS rows either becomes a background job (pointsmall.jobs): the user is
sent to the job's page, which shows its progress and then the download.
"""

from datetime import date, timedelta
from itertools import chain, islice

from flask import (
    Blueprint,
    Response,
    abort,
    render_template,
    request,
    send_file,
    stream_with_context,
)
from flask_babel import gettext as _
from flask_login import current_user

from pointsmall.core import clock
from pointsmall.core.errors import ValidationFailed
from pointsmall.core.export_query import Period, Scope
from pointsmall.core.files import csv_stream, xlsx_file
from pointsmall.core.shell import roles_required
from pointsmall.exports.tables import ALL_TABLES, COMMUNITY_TABLES, MERCHANT_TABLES, Table
from pointsmall.extensions import db
from pointsmall.jobs import service as jobs
from pointsmall.jobs import views as job_views
from pointsmall.jobs import work
from pointsmall.people.communities import get_community

bp = Blueprint("exports", __name__)

FORMATS = "<any(csv, xlsx):fmt>"
XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def _day(name: str) -> date | None:
    raw = request.args.get(name, "").strip()
    if not raw:
        return None
    try:
        return date.fromisoformat(raw)
    except ValueError:
        raise ValidationFailed({name: [_("A date like 2026-12-31.")]}) from None


def period_days() -> tuple[date | None, date | None]:
    """Return the first and last local day the request asks for (either may be open)."""
    start, end = _day("start"), _day("end")
    if start and end and end < start:
        raise ValidationFailed({"end": [_("The end is before the start.")]})
    return start, end


def _period(start: date | None, end: date | None) -> Period:
    return Period(clock.utc_start_of(start) if start else None,
                  clock.utc_start_of(end + timedelta(days=1)) if end else None)


def _file_name(table: Table, start: date | None, end: date | None, fmt: str) -> str:
    days = "-".join(f"{d:%Y%m%d}" for d in (start, end) if d) or f"{clock.local_today():%Y%m%d}"
    return f"{table.name}-{days}.{fmt}"


def _send(table: Table, scope: Scope, fmt: str) -> Response:
    start, end = period_days() if table.periodic else (None, None)
    headers = table.header_texts()
    rows = table.rows(db.session, scope, _period(start, end))
    name = _file_name(table, start, end, fmt)
    most = jobs.limit("EXPORT_JOB_ROWS")
    if most is not None:
        # Past the size, the file is made by a worker and the page shows its progress.
        first = list(islice(rows, most + 1))
        if jobs.runs_as_job(db.session, "EXPORT_JOB_ROWS", len(first)):
            return _export_job(table, scope, fmt, start, end, name)
        rows = chain(first, rows)
    if fmt == "csv":
        return Response(stream_with_context(csv_stream(headers, rows)),
                        mimetype="text/csv", headers={
                            "Content-Disposition": f'attachment; filename="{name}"',
                            "Cache-Control": "no-store"})
    answer = send_file(xlsx_file(str(table.title), headers, rows), mimetype=XLSX_TYPE,
                       as_attachment=True, download_name=name, max_age=0)
    answer.headers["Cache-Control"] = "no-store"
    return answer


def _export_job(table: Table, scope: Scope, fmt: str, start: date | None, end: date | None,
                name: str) -> Response:
    params = jobs.request_params(
        table=table.name, fmt=fmt, community_id=scope.community_id,
        merchant_id=scope.merchant_id, start=start.isoformat() if start else None,
        end=end.isoformat() if end else None, args=request.args.to_dict(), name=name)
    days = " – ".join(d.isoformat() for d in (start, end) if d)
    title = " · ".join(part for part in (str(table.title), fmt.upper(), days) if part)
    job = jobs.start_job(db.session, current_user.id, "export", params, title)
    db.session.commit()
    return job_views.started(job)


@work.runner("export")
def run_export_job(job, progress) -> None:
    """Write the file a background export asked for into the job (in a worker)."""
    asked = job.params
    table = ALL_TABLES[asked["table"]]
    start, end = (date.fromisoformat(d) if d else None for d in (asked["start"], asked["end"]))
    scope = Scope(community_id=asked["community_id"], merchant_id=asked["merchant_id"])
    period = _period(start, end)
    if table.count is not None:
        progress.set_total(table.count(db.session, scope, period))
    headers = table.header_texts()
    rows = progress.counting(table.rows(db.session, scope, period))
    if asked["fmt"] == "csv":
        out = work.spooled()
        for text in csv_stream(headers, rows):
            out.write(text.encode())
        mimetype = "text/csv"
    else:
        out = xlsx_file(str(table.title), headers, rows)
        mimetype = XLSX_TYPE
    with out:
        out.seek(0)
        work.keep_file(job, asked["name"], mimetype, out.read())


def _page(tables: dict[str, Table], endpoint: str, **url_args):
    start, end = period_days()
    return render_template("exports/index.html", tables=tables.values(), endpoint=endpoint,
                           url_args=url_args, start=start, end=end)


@bp.get("/staff/exports")
@roles_required("staff")
def staff_page():
    """List the community's tables to download, for a period."""
    return _page(COMMUNITY_TABLES, "exports.staff_export")


def staff_export(table: str, fmt: str):
    """Download one of the community's tables as CSV or XLSX."""
    return _send(COMMUNITY_TABLES[table], Scope(community_id=current_user.community_id), fmt)


@bp.get("/admin/communities/<int:community_id>/exports")
@roles_required("admin")
def admin_page(community_id: int):
    """List a community's tables to download, for a period."""
    community = get_community(db.session, community_id)
    return _page(COMMUNITY_TABLES, "exports.admin_export", community_id=community.id)


def admin_export(community_id: int, table: str, fmt: str):
    """Download one of a community's tables as CSV or XLSX."""
    community = get_community(db.session, community_id)
    return _send(COMMUNITY_TABLES[table], Scope(community_id=community.id), fmt)


def _merchant_id() -> int:
    if not current_user.merchant_id:
        abort(403)
    return current_user.merchant_id


@bp.get("/counter/exports")
@roles_required("merchant")
def counter_page():
    """List the merchant's tables to download, for a period."""
    _merchant_id()
    return _page(MERCHANT_TABLES, "exports.counter_export")


def counter_export(table: str, fmt: str):
    """Download the merchant's redemptions or statements as CSV or XLSX."""
    return _send(MERCHANT_TABLES[table], Scope(merchant_id=_merchant_id()), fmt)


# One rule per table (so each is a route of its own, with its own scoping test), one
# endpoint per audience: url_for("exports.staff_export", table="awards", fmt="csv").
_VIEWS = {"staff": roles_required("staff")(staff_export),
          "admin": roles_required("admin")(admin_export),
          "counter": roles_required("merchant")(counter_export)}
for _name in COMMUNITY_TABLES:
    bp.add_url_rule(f"/staff/exports/{_name}.{FORMATS}", "staff_export", _VIEWS["staff"],
                    defaults={"table": _name})
    bp.add_url_rule(f"/admin/communities/<int:community_id>/exports/{_name}.{FORMATS}",
                    "admin_export", _VIEWS["admin"], defaults={"table": _name})
for _name in MERCHANT_TABLES:
    bp.add_url_rule(f"/counter/exports/{_name}.{FORMATS}", "counter_export", _VIEWS["counter"],
                    defaults={"table": _name})

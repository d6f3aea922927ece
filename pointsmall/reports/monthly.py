"""The printable monthly report of a community: an A4 page and a PDF of the same figures.

Points come from the ledger's daily flows (reports.figures), so a month is the local
calendar month to the minute. Volunteers active "in the 30 / 90 days" are counted up to
the month's end (or now, for the month under way), which figures.people does not offer.
"""

import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta

import sqlalchemy as sa
import sqlalchemy.orm as so
from flask import Blueprint, Response, render_template, request
from flask_babel import gettext as _
from flask_login import current_user

from pointsmall.core import clock
from pointsmall.core.errors import ValidationFailed
from pointsmall.core.shell import roles_required
from pointsmall.earning.models import Award
from pointsmall.extensions import db
from pointsmall.jobs import service as jobs
from pointsmall.jobs import views as job_views
from pointsmall.jobs import work
from pointsmall.people.communities import Community, get_community
from pointsmall.people.models import Volunteer
from pointsmall.reports import charts, figures

bp = Blueprint("monthly_report", __name__)
HISTORY = 12
MONTH = re.compile(r"([0-9]{4})-([0-9]{2})")  # \\d would take full-width digits


@dataclass(frozen=True)
class Period:
    """What moved on the volunteers' accounts in a period, and what they held around it."""

    issued: int
    redeemed: int
    expired: int
    other: int
    opening: int
    closing: int

    @property
    def change(self) -> int:
        return self.closing - self.opening


@dataclass(frozen=True)
class Volunteers:
    total: int
    joined: int
    active_30: int
    active_90: int


@dataclass(frozen=True)
class MonthlyReport:
    community: Community
    month: date
    generated_at: datetime
    this_month: Period
    year_to_date: Period
    history: list[figures.MonthPoints]
    reconciled: figures.Reconciliation
    volunteers: Volunteers
    activities: figures.MonthActivities
    by_merchant: list[figures.Share]
    by_category: list[figures.Share]
    tiers: figures.Tiers
    waiting: figures.Waiting


def _period(rows: list[figures.MonthPoints]) -> Period:
    issued, redeemed = sum(r.issued for r in rows), sum(r.redeemed for r in rows)
    expired, other = sum(r.expired for r in rows), sum(r.other for r in rows)
    closing = rows[-1].outstanding
    return Period(issued, redeemed, expired, other,
                  closing - (issued - redeemed - expired + other), closing)


def active_earners(session: so.Session, community_id: int, end: datetime, days: int) -> int:
    """Count the volunteers who were awarded points in the `days` days before `end`."""
    return session.scalar(
        sa.select(sa.func.count(sa.distinct(Award.volunteer_id)))
        .where(Award.community_id == community_id, Award.points > 0,
               Award.awarded_at >= end - timedelta(days=days), Award.awarded_at < end)) or 0


def monthly_report(session: so.Session, community: Community, month: date) -> MonthlyReport:
    """Gather a community's figures for the local month starting on `month`."""
    history = figures.points_by_month(session, [community.id],
                                      figures.months_ending(month, HISTORY))[community.id]
    start, end = clock.local_month_bounds(month)
    until = min(end, clock.utcnow())
    people = figures.people(session, community.id, [month])
    by_merchant, by_category = figures.redemptions_by(session, community.id, start, end)
    return MonthlyReport(
        community=community, month=month, generated_at=clock.local_now(),
        this_month=_period(history[-1:]),
        year_to_date=_period([r for r in history if r.month.year == month.year]),
        history=history,
        reconciled=figures.reconciliation(session, [community.id])[community.id],
        volunteers=Volunteers(people.total, people.new_by_month[0],
                              active_earners(session, community.id, until, 30),
                              active_earners(session, community.id, until, 90)),
        activities=figures.activities_by_month(session, community.id, [month])[0],
        by_merchant=by_merchant, by_category=by_category,
        tiers=figures.tiers(session, community.id), waiting=figures.waiting(session, community.id))


def previous_month(today: date) -> date:
    """Return the first day of the last complete month before `today`'s."""
    return clock.month_start(clock.month_start(today) - timedelta(days=1))


def month_asked() -> date:
    """Read ?month=YYYY-MM (the last complete local month when absent); 422 for anything else."""
    raw = request.args.get("month")
    today = clock.local_today()
    if raw is None or raw == "":
        return previous_month(today)
    found = MONTH.fullmatch(raw.strip())
    if found and int(found[1]) >= 2000 and 1 <= int(found[2]) <= 12:
        month = date(int(found[1]), int(found[2]), 1)
        if month <= clock.month_start(today):
            return month
    raise ValidationFailed({"month": [_("A month like 2026-03, no later than this one.")]})


def chart(report: MonthlyReport):
    """The last twelve months' points as bars, outstanding as a line."""
    rows = report.history
    return charts.bars(
        _("Points by month"), [f"{r.month.month}" for r in rows],
        [charts.Series(_("Issued"), [r.issued for r in rows], "s-issued"),
         charts.Series(_("Redeemed"), [r.redeemed for r in rows], "s-redeemed"),
         charts.Series(_("Expired"), [r.expired for r in rows], "s-expired")],
        line=charts.Series(_("Outstanding"), [r.outstanding for r in rows], "s-outstanding"))


def _page(community: Community, pdf_endpoint: str, page_endpoint: str, **url_args):
    month = month_asked()
    report = monthly_report(db.session, community, month)
    today = clock.month_start(clock.local_today())
    earlier = clock.month_start(month - timedelta(days=1))
    later = clock.next_month(month) if clock.next_month(month) <= today else None
    return render_template("reports/monthly.html", report=report, chart=chart(report),
                           pdf_endpoint=pdf_endpoint, page_endpoint=page_endpoint,
                           url_args=url_args, earlier=earlier, later=later)


def _pdf(community: Community) -> Response:
    from pointsmall.reports.monthly_pdf import render_pdf  # fpdf2 loads only for PDFs

    month = month_asked()
    if jobs.runs_as_job(db.session, "REPORT_JOB_VOLUNTEERS", _volunteers(community)):
        # A big community's report is drawn by a worker; its page shows the download.
        job = jobs.start_job(
            db.session, current_user.id, "monthly_pdf",
            jobs.request_params(community_id=community.id, month=month.isoformat()),
            f"{_('Monthly report')} · {community.name} · {month:%Y-%m} · PDF")
        db.session.commit()
        return job_views.started(job)
    report = monthly_report(db.session, community, month)
    return Response(render_pdf(report), mimetype="application/pdf", headers={
        "Content-Disposition": f'inline; filename="{_pdf_name(report)}"',
        "Cache-Control": "no-store"})


def _pdf_name(report: MonthlyReport) -> str:
    return f"monthly-report-{report.community.id}-{report.month:%Y-%m}.pdf"


def _volunteers(community: Community) -> int:
    return db.session.scalar(sa.select(sa.func.count()).select_from(Volunteer).where(
        Volunteer.community_id == community.id))


@work.runner("monthly_pdf")
def run_pdf_job(job, progress) -> None:
    """Draw the monthly report PDF a background job asked for (in a worker)."""
    from pointsmall.reports.monthly_pdf import render_pdf  # fpdf2 loads only for PDFs

    asked = job.params
    community = get_community(db.session, asked["community_id"])
    report = monthly_report(db.session, community, date.fromisoformat(asked["month"]))
    work.keep_file(job, _pdf_name(report), "application/pdf", render_pdf(report))


@bp.get("/staff/reports/monthly")
@roles_required("staff")
def staff_page():
    """Show my community's report for a month, ready to print on A4."""
    return _page(db.get_or_404(Community, current_user.community_id),
                 "monthly_report.staff_pdf", "monthly_report.staff_page")


@bp.get("/staff/reports/monthly.pdf")
@roles_required("staff")
def staff_pdf():
    """Download my community's report for a month as a PDF."""
    return _pdf(db.get_or_404(Community, current_user.community_id))


@bp.get("/admin/communities/<int:community_id>/reports/monthly")
@roles_required("admin")
def admin_page(community_id: int):
    """Show a community's report for a month, ready to print on A4."""
    return _page(get_community(db.session, community_id), "monthly_report.admin_pdf",
                 "monthly_report.admin_page", community_id=community_id)


@bp.get("/admin/communities/<int:community_id>/reports/monthly.pdf")
@roles_required("admin")
def admin_pdf(community_id: int):
    """Download a community's report for a month as a PDF."""
    return _pdf(get_community(db.session, community_id))

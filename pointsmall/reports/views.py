"""Dashboards: a community's (staff, admin), the district's (admin), a merchant's, and a
volunteer's year in review."""

from datetime import date, timedelta

from flask import Blueprint, abort, render_template, request
from flask_babel import format_date
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user

from merchants.models import Merchant
from pointsmall.core import clock
from pointsmall.core.labels import CATEGORY_LABELS, TIER_LABELS
from pointsmall.core.shell import roles_required
from pointsmall.earning.views import me
from pointsmall.extensions import db
from pointsmall.people.communities import Community
from pointsmall.reports import charts, figures
from pointsmall.reports.models import latest_check

bp = Blueprint("reports", __name__)
MONTHS = 12
NO_TIER = _l("No tier")


def _month_arg() -> date:
    """The month a page is about: ?month=YYYY-MM, this month by default; 400 for nonsense."""
    raw = request.args.get("month", "")
    if not raw:
        return clock.month_start(clock.local_today())
    try:
        year, month = (int(part) for part in raw.split("-"))
        return date(year, month, 1)
    except ValueError:
        abort(400, description=_("A month is written YYYY-MM."))


def _following(month: date) -> date | None:
    """The next month to step to, or None: the dashboards do not step into the future."""
    following = clock.next_month(month)
    return following if following <= clock.month_start(clock.local_today()) else None


def _month_label(month: date) -> str:
    return format_date(month, "yyyy-MM")


def _check_banner() -> dict:
    check = latest_check(db.session)
    return {"check": check, "checked_at": clock.to_local(check.ran_at) if check else None}


@bp.get("/staff/dashboard")
@roles_required("staff")
def staff_dashboard():
    """My community's dashboard."""
    return _community_dashboard(db.get_or_404(Community, current_user.community_id))


@bp.get("/admin/communities/<int:community_id>/dashboard")
@roles_required("admin")
def community_dashboard(community_id: int):
    """Any community's dashboard, for the district."""
    return _community_dashboard(db.get_or_404(Community, community_id))


def _community_dashboard(community: Community):
    month = _month_arg()
    months = figures.months_ending(month, MONTHS)
    points = figures.points_by_month(db.session, [community.id], months)[community.id]
    reconciled = figures.reconciliation(db.session, [community.id])[community.id]
    people = figures.people(db.session, community.id, months)
    held = figures.activities_by_month(db.session, community.id, months)
    start, end = clock.local_month_bounds(month)
    by_merchant, by_category = figures.redemptions_by(db.session, community.id, start, end)
    tiers = figures.tiers(db.session, community.id)
    waiting = figures.waiting(db.session, community.id)
    labels = [_month_short(m) for m in months]
    points_chart = charts.bars(
        _("Points by month"), labels,
        [charts.Series(_("Issued"), [p.issued for p in points], "s-issued"),
         charts.Series(_("Redeemed"), [p.redeemed for p in points], "s-redeemed"),
         charts.Series(_("Expired"), [p.expired for p in points], "s-expired")],
        line=charts.Series(_("Outstanding"), [p.outstanding for p in points], "s-outstanding"))
    activity_chart = charts.bars(
        _("Activities and attendance"), labels,
        [charts.Series(_("Activities"), [a.held for a in held], "s-issued"),
         charts.Series(_("Attendance"), [a.attended for a in held], "s-redeemed")])
    category_names = [str(CATEGORY_LABELS.get(s.key, s.key)) for s in by_category]
    tier_names = [str(TIER_LABELS.get(t, NO_TIER)) for t in tiers.counts]
    return render_template(
        "reports/community.html", community=community, month=month, months=months,
        month_label=_month_label(month), points=points, reconciled=reconciled,
        people=people, held=held, by_merchant=by_merchant, by_category=by_category,
        category_names=category_names, tiers=tiers,
        tier_rows=list(zip(tier_names, tiers.counts.values(), strict=True)), waiting=waiting,
        points_chart=points_chart, activity_chart=activity_chart,
        merchant_chart=charts.hbars(_("Redemptions by merchant"),
                                    [s.label for s in by_merchant],
                                    [charts.Series(_("Points"), [s.points for s in by_merchant],
                                                   "s-redeemed")]),
        category_chart=charts.hbars(_("Redemptions by category"), category_names,
                                    [charts.Series(_("Points"), [s.points for s in by_category],
                                                   "s-redeemed")]),
        tier_chart=charts.hbars(_("Tier distribution"), tier_names,
                                [charts.Series(_("Volunteers"), list(tiers.counts.values()),
                                               "s-issued")]),
        previous=clock.month_start(month - timedelta(days=1)), following=_following(month),
        **_check_banner())


def _month_short(month: date) -> str:
    return format_date(month, "M") if month.month != 1 else format_date(month, "yy/M")


@bp.get("/admin/dashboard")
@roles_required("admin")
def district_dashboard():
    """Every community side by side, with totals: this month, the year so far, outstanding."""
    month = _month_arg()
    places = figures.communities(db.session)
    ids = [c.id for c in places]
    year_months = [date(month.year, m, 1) for m in range(1, month.month + 1)]
    points = figures.points_by_month(db.session, ids, year_months) if ids else {}
    reconciled = figures.reconciliation(db.session, ids) if ids else {}
    people_of = figures.people_of(db.session, ids, year_months) if ids else {}
    held_of = figures.activities_of(db.session, ids, [month]) if ids else {}
    rows = []
    for community in places:
        months = points[community.id]
        this = months[-1]
        people, held = people_of[community.id], held_of[community.id][0]
        rows.append({
            "community": community, "this": this,
            "year_issued": sum(m.issued for m in months),
            "year_redeemed": sum(m.redeemed for m in months),
            "year_expired": sum(m.expired for m in months),
            "outstanding": this.outstanding, "people": people, "held": held,
            "reconciled": reconciled[community.id],
        })
    totals = {key: sum(r[key] for r in rows)
              for key in ("year_issued", "year_redeemed", "year_expired", "outstanding")}
    totals.update({
        "issued": sum(r["this"].issued for r in rows),
        "redeemed": sum(r["this"].redeemed for r in rows),
        "expired": sum(r["this"].expired for r in rows),
        "volunteers": sum(r["people"].total for r in rows),
        "active_30": sum(r["people"].active_30 for r in rows),
        "activities": sum(r["held"].held for r in rows),
        "attended": sum(r["held"].attended for r in rows),
    })
    names = [r["community"].name for r in rows]
    chart = charts.hbars(_("Points this year by community"), names, [
        charts.Series(_("Issued"), [r["year_issued"] for r in rows], "s-issued"),
        charts.Series(_("Redeemed"), [r["year_redeemed"] for r in rows], "s-redeemed")])
    outstanding_chart = charts.hbars(_("Outstanding points by community"), names, [
        charts.Series(_("Outstanding"), [r["outstanding"] for r in rows], "s-outstanding")])
    return render_template(
        "reports/district.html", rows=rows, totals=totals, month=month,
        month_label=_month_label(month), chart=chart, outstanding_chart=outstanding_chart,
        all_reconciled=all(r["reconciled"].ok for r in rows),
        previous=clock.month_start(month - timedelta(days=1)), following=_following(month),
        **_check_banner())


@bp.get("/counter/report")
@roles_required("merchant")
def merchant_report():
    """My shop's last 30 days: redemptions per day, most redeemed items, points received,
    settled and waiting for settlement."""
    merchant = db.get_or_404(Merchant, current_user.merchant_id)
    found = figures.merchant_figures(db.session, merchant.id)
    labels = [format_date(d.day, "d") for d in found.days]
    chart = charts.bars(_("Redemptions per day"), labels, [
        charts.Series(_("Redemptions"), [d.redemptions for d in found.days], "s-redeemed")])
    points_chart = charts.bars(_("Points per day"), labels, [
        charts.Series(_("Points received"), [d.points for d in found.days], "s-issued")])
    return render_template("reports/merchant.html", merchant=merchant, found=found,
                           chart=chart, points_chart=points_chart)


@bp.get("/me/year")
@roles_required("volunteer")
def year_in_review():
    """My year: points by activity type, what I redeemed, my tiers."""
    volunteer = me()
    this_year = clock.local_today().year
    year = request.args.get("year", this_year, type=int)
    if not 2000 <= year <= this_year:
        abort(404)
    review = figures.year_in_review(db.session, volunteer, year)
    chart = charts.hbars(_("Points by activity type"), [e.name for e in review.earned], [
        charts.Series(_("Points"), [e.points for e in review.earned], "s-issued")])
    return render_template("reports/year.html", volunteer=volunteer, review=review,
                           chart=chart, this_year=this_year)

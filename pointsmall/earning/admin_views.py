"""Admin pages for a community's earning rules: activity types, caps, approvals, expiry."""

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from flask_wtf import FlaskForm
from wtforms import IntegerField, SelectField
from wtforms.validators import NumberRange, Optional

from pointsmall.auth.views import EmptyForm
from pointsmall.core.shell import roles_required
from pointsmall.earning import use_cases
from pointsmall.earning.rules import activity_types, ensure_rules
from pointsmall.extensions import db
from pointsmall.people.communities import get_community

bp = Blueprint("rules", __name__, url_prefix="/admin/communities")


class RulesForm(FlaskForm):
    daily_cap = IntegerField(_l("Points a volunteer may earn per day (empty: no cap)"),
                             validators=[Optional(), NumberRange(min=0, max=1_000_000)])
    monthly_cap = IntegerField(_l("Points a volunteer may earn per month (empty: no cap)"),
                               validators=[Optional(), NumberRange(min=0, max=10_000_000)])
    approval_points = IntegerField(_l("Award batches and point adjustments above this many "
                                      "points need a second approver"),
                                   validators=[NumberRange(min=0, max=100_000_000)])
    approval_people = IntegerField(_l("Batches above this many people need a second approver"),
                                   validators=[NumberRange(min=0, max=100_000)])
    expiry_mode = SelectField(_l("Points expire"), choices=[
        ("never", _l("Never")), ("rolling", _l("N months after they were earned")),
        ("annual", _l("All points of a year on a fixed date of the next year"))])
    expiry_months = IntegerField(_l("Months (for N months after earning)"),
                                 validators=[NumberRange(min=1, max=120)])
    expiry_month = IntegerField(_l("Month of the yearly expiry date"),
                                validators=[NumberRange(min=1, max=12)])
    expiry_day = IntegerField(_l("Day of the yearly expiry date"),
                              validators=[NumberRange(min=1, max=31)])
    tier_window_days = IntegerField(_l("Days of merit that count for tiers"),
                                    validators=[NumberRange(min=30, max=3650)])
    merit_per_year = IntegerField(_l("Merit bonus per year of service"),
                                  validators=[NumberRange(min=0, max=100_000)])

    FIELDS = ("daily_cap", "monthly_cap", "approval_points", "approval_people", "expiry_mode",
              "expiry_months", "expiry_month", "expiry_day", "tier_window_days",
              "merit_per_year")


@bp.route("/<int:community_id>/rules", methods=["GET", "POST"])
@roles_required("admin")
def rules(community_id: int):
    """Set a community's earning rules and the points and merit of each activity type."""
    community = get_community(db.session, community_id)
    found = ensure_rules(db.session, community.id)
    types = activity_types(db.session, community.id)
    form = RulesForm(obj=found)
    if form.validate_on_submit():
        use_cases.update_rules(db.session, current_user, community.id,
                               {name: getattr(form, name).data for name in RulesForm.FIELDS},
                               _typed_types(types))
        flash(_("Saved."), "success")
        return redirect(url_for("rules.rules", community_id=community.id))
    return render_template("earning/rules.html", community=community, form=form, types=types,
                           rules=found, rotate_form=EmptyForm()), (422 if form.errors else 200)


def _typed_types(types) -> dict[int, tuple[int, int, bool]]:
    """Read each type's points, merit and offered box; a type typed as no number is left."""
    typed = {}
    for kind in types:
        try:
            points = int(request.form.get(f"type-{kind.id}-points", kind.points))
            merit = int(request.form.get(f"type-{kind.id}-merit", kind.merit))
        except ValueError:
            continue
        typed[kind.id] = (points, merit, request.form.get(f"type-{kind.id}-active") == "1")
    return typed


@bp.post("/<int:community_id>/rules/rotate-secret")
@roles_required("admin")
def rotate_secret(community_id: int):
    """Give the grid platform a new signing secret (the old one stops working)."""
    community = get_community(db.session, community_id)
    if EmptyForm().validate_on_submit():
        use_cases.rotate_platform_secret(db.session, current_user, community.id)
        flash(_("A new platform secret was made. Give it to the grid platform."), "success")
    return redirect(url_for("rules.rules", community_id=community.id))

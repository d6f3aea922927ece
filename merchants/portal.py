"""The merchant portal at the counter: look up a code, confirm once, see the day and month.

Codes travel in POST bodies, never in URLs, so they do not end up in logs or history.
"""

import csv
import io
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from flask import (
    Blueprint,
    Response,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_babel import ngettext
from flask_login import current_user
from flask_wtf import FlaskForm
from wtforms import StringField
from wtforms.validators import DataRequired, Length

import ledger
from merchants import attempts, redemptions, settlement
from merchants.errors import MarketError, UnknownRedemption
from merchants.models import Merchant, Redemption, merchant_address
from merchants.web import db_session, merchant_required, spreadsheet_cell

bp = Blueprint("counter", __name__, url_prefix="/counter")

CODE_LIMIT = 10
CODE_WINDOW = timedelta(minutes=10)


class CodeForm(FlaskForm):
    code = StringField(_l("Redemption code"), validators=[DataRequired(), Length(max=32)])


class RefundForm(FlaskForm):
    reason = StringField(_l("Reason for the refund"), validators=[DataRequired(),
                                                                  Length(max=200)])


def _zone() -> ZoneInfo:
    return ZoneInfo(current_app.config.get("BABEL_DEFAULT_TIMEZONE", "Asia/Shanghai"))


def _local_today() -> date:
    return datetime.now(_zone()).date()


def _utc(day: date) -> datetime:
    """Return the naive-UTC moment the local `day` begins."""
    local = datetime(day.year, day.month, day.day, tzinfo=_zone())
    return local.astimezone(ZoneInfo("UTC")).replace(tzinfo=None)


def _merchant() -> Merchant:
    return db_session().get(Merchant, current_user.merchant_id)


def _fulfilled_between(start: datetime, end: datetime) -> list[Redemption]:
    return list(db_session().scalars(
        sa.select(Redemption).where(Redemption.merchant_id == current_user.merchant_id,
                                    Redemption.fulfilled_at >= start,
                                    Redemption.fulfilled_at < end)
        .order_by(Redemption.fulfilled_at.desc())))


@bp.get("/")
@merchant_required
def index():
    """Show the code entry, today's confirmations and the points not yet settled."""
    today = _local_today()
    todays = _fulfilled_between(_utc(today), _utc(today + timedelta(days=1)))
    unsettled = ledger.balance(db_session(), merchant_address(current_user.merchant_id))
    return render_template("counter/index.html", form=CodeForm(), merchant=_merchant(),
                           todays=todays, today_points=sum(r.points for r in todays),
                           unsettled=unsettled.posted)


def find_counted(session, merchant_id: int, user_id: int, code: str, *,
                 lock: bool = False) -> Redemption:
    """Find the merchant's redemption by code, counting wrong codes against the user.

    Shared by the counter page and the API, so both count towards one lock. With `lock`,
    as `redemptions.find_by_code`. A wrong code is counted by `attempts.reserve` before it
    is answered, so parallel guesses get exactly CODE_LIMIT answers; a right code costs
    nothing but is refused while the user is locked out.
    """
    key = str(user_id)
    # The code and the user's counted wrong codes in one round trip; the lock is checked
    # (and its end worked out) in a second only when it may apply.
    row = session.execute(redemptions.by_code(code, lock=lock).add_columns(
        attempts.counted("code", key, CODE_WINDOW))).first()
    if row is not None and row[0].merchant_id == merchant_id:
        if row[1] >= CODE_LIMIT:
            attempts.check(session, "code", key, CODE_LIMIT, CODE_WINDOW)
        return row[0]
    attempts.reserve(session, "code", key, CODE_LIMIT, CODE_WINDOW)
    session.commit()  # the wrong code counts even though the request fails
    raise UnknownRedemption()


def _find(code: str, *, lock: bool = False) -> Redemption:
    return find_counted(db_session(), current_user.merchant_id, current_user.id, code,
                        lock=lock)


@bp.post("/lookup")
@merchant_required
def lookup():
    """Show what a typed or scanned code is for, with the button that confirms it."""
    form = CodeForm()
    if not form.validate_on_submit():
        flash(_("Type or scan a redemption code."), "error")
        return redirect(url_for("counter.index"))
    found = _find(form.code.data)
    return render_template("counter/lookup.html", redemption=found, form=CodeForm(),
                           refund_form=RefundForm(),
                           code=redemptions.format_code(found.code))


@bp.post("/confirm")
@merchant_required
def confirm():
    """Hand the item over: post the held points to this merchant, once."""
    form = CodeForm()
    if not form.validate_on_submit():
        return redirect(url_for("counter.index"))
    found = _find(form.code.data, lock=True)
    redemptions.confirm_found(db_session(), found, confirmed_by=current_user.id)
    db_session().commit()
    flash(_("Confirmed: %(qty)d × %(item)s for %(name)s, %(points)d points.",
            qty=found.quantity, item=found.item.name, name=found.volunteer_label,
            points=found.points), "success")
    return redirect(url_for("counter.index"))


@bp.post("/redemptions/<int:redemption_id>/refund")
@merchant_required
def refund(redemption_id: int):
    """Refund a fulfilled redemption with a reason: points go back to the volunteer."""
    form = RefundForm()
    if not form.validate_on_submit():
        flash(_("A reason is required for a refund."), "error")
        return redirect(url_for("counter.month"))
    redemptions.refund(db_session(), redemption_id, reason=form.reason.data,
                       merchant_id=current_user.merchant_id)
    db_session().commit()
    flash(_("Refunded."), "success")
    return redirect(url_for("counter.month"))


@bp.get("/month")
@merchant_required
def month():
    """List this month's confirmed redemptions (or another month's: ?month=2026-10)."""
    first = _parse_month(request.args.get("month")) or _local_today().replace(day=1)
    after = (first + timedelta(days=32)).replace(day=1)
    rows = _fulfilled_between(_utc(first), _utc(after))
    return render_template("counter/month.html", rows=rows, first=first,
                           previous=(first - timedelta(days=1)).replace(day=1), after=after,
                           last=after - timedelta(days=1),
                           total=sum(r.points for r in rows if r.status == "fulfilled"),
                           refund_form=RefundForm())


@bp.get("/statement")
@merchant_required
def statement():
    """Show (or download as CSV) what was handed over and refunded in a period."""
    today = _local_today()
    start = _parse_date(request.args.get("start")) or today.replace(day=1)
    end = _parse_date(request.args.get("end")) or today
    if end < start:
        start, end = end, start
    lines = settlement.period_lines(db_session(), current_user.merchant_id, _utc(start),
                                    _utc(end + timedelta(days=1)))
    if request.args.get("format") == "csv":
        return _statement_csv(lines, start, end)
    return render_template("counter/statement.html", lines=lines, start=start, end=end,
                           merchant=_merchant(), total=sum(line.points for line in lines),
                           frozen=settlement.merchant_statements(db_session(),
                                                                 current_user.merchant_id))


def _statement_csv(lines, start: date, end: date) -> Response:
    out = io.StringIO()
    out.write("\ufeff")  # Excel reads UTF-8 Chinese only with a BOM
    writer = csv.writer(out)
    writer.writerow([_("Time"), _("Code"), _("Item"), _("Quantity"), _("Volunteer"),
                     _("Kind"), _("Points")])
    zone = _zone()
    for line in lines:
        r = line.redemption
        writer.writerow([spreadsheet_cell(cell) for cell in (
            line.at.replace(tzinfo=ZoneInfo("UTC")).astimezone(zone).strftime("%Y-%m-%d %H:%M"),
            redemptions.format_code(r.code), r.item.name, r.quantity, r.volunteer_label,
            _("Handed over") if line.kind == "fulfilled" else _("Refund"), line.points)])
    name = f"statement-{start:%Y%m%d}-{end:%Y%m%d}.csv"
    return Response(out.getvalue(), mimetype="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="{name}"'})


def _parse_date(raw: str | None) -> date | None:
    try:
        return date.fromisoformat(raw) if raw else None
    except ValueError:
        return None


def _parse_month(raw: str | None) -> date | None:
    return _parse_date(f"{raw}-01") if raw else None


@bp.errorhandler(attempts.AttemptsExceeded)
def locked(error: attempts.AttemptsExceeded):
    db_session().rollback()
    flash(ngettext("Too many wrong codes. Code entry is locked for %(num)d minute.",
                   "Too many wrong codes. Code entry is locked for %(num)d minutes.",
                   error.minutes), "error")
    return render_template("counter/index.html", form=CodeForm(), merchant=_merchant(),
                           todays=[], today_points=0, unsettled=None, locked=True), 429, {
                               "Retry-After": str(error.retry_after)}


@bp.errorhandler(MarketError)
def refused(error: MarketError):
    """Answer a refusal at the counter with a message on the counter page."""
    from flask import current_app as app

    db_session().rollback()
    describe = app.extensions.get("describe_market_error", lambda e: e.message)
    flash(describe(error), "error")
    today = _local_today()
    todays = _fulfilled_between(_utc(today), _utc(today + timedelta(days=1)))
    return render_template("counter/index.html", form=CodeForm(), merchant=_merchant(),
                           todays=todays, today_points=sum(r.points for r in todays),
                           unsettled=None), error.status

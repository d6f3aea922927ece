"""The merchant portal at the counter: look up a code, confirm once, see the day and month.

Codes travel in POST bodies, never in URLs, so they do not end up in logs or history.
"""

import csv
import gzip
import hashlib
import io
import unicodedata
from datetime import date, datetime, timedelta
from functools import wraps

import sqlalchemy as sa
from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from flask_wtf import FlaskForm
from wtforms import StringField
from wtforms.validators import DataRequired, Length

import ledger
from merchants import redemptions, settlement
from merchants.errors import MarketError, UnknownRedemption
from merchants.models import Merchant, Redemption, merchant_address
from pointsmall.core import attempts, clock
from pointsmall.core.cells import safe_cell
from pointsmall.core.errors import describe
from pointsmall.core.shell import roles_required
from pointsmall.extensions import db
from pointsmall.market import actions
from pointsmall.market.actions import CODE_LIMIT, CODE_WINDOW

bp = Blueprint("counter", __name__, url_prefix="/counter")

class CodeForm(FlaskForm):
    code = StringField(_l("Redemption code"), validators=[DataRequired(), Length(max=32)])


class RefundForm(FlaskForm):
    reason = StringField(_l("Reason for the refund"), validators=[DataRequired(),
                                                                  Length(max=200)])


def merchant_required(view):
    """Let only signed-in merchant staff of a merchant through; others sign in or 403."""
    @roles_required("merchant")
    @wraps(view)
    def wrapper(*args, **kwargs):
        if not current_user.merchant_id:
            abort(403)
        return view(*args, **kwargs)
    return wrapper


def _merchant() -> Merchant:
    return db.session.get(Merchant, current_user.merchant_id)


def _fulfilled_between(start: datetime, end: datetime) -> list[Redemption]:
    return list(db.session.scalars(
        sa.select(Redemption).where(Redemption.merchant_id == current_user.merchant_id,
                                    Redemption.fulfilled_at >= start,
                                    Redemption.fulfilled_at < end)
        .order_by(Redemption.fulfilled_at.desc())))


@bp.get("/")
@merchant_required
def index():
    """Show the code entry, today's confirmations and the points not yet settled."""
    try:
        attempts.check(db.session, "code", str(current_user.id), CODE_LIMIT, CODE_WINDOW)
    except attempts.AttemptsExceeded as error:
        return _counter_page(CodeForm(), locked_for=error.retry_after)
    return _counter_page(CodeForm())


def _counter_page(form: CodeForm, status: int = 200, *, locked_for: int | None = None,
                  tries_left: int | None = None):
    """Draw the counter: the code field (kept as typed, or shut while locked), the day."""
    today = clock.local_today()
    todays = _fulfilled_between(clock.utc_start_of(today),
                                clock.utc_start_of(today + timedelta(days=1)))
    unsettled = ledger.balance(db.session, merchant_address(current_user.merchant_id))
    unlock_at = (clock.local_now() + timedelta(seconds=locked_for)
                 if locked_for is not None else None)
    return render_template("market/counter/index.html", form=form, merchant=_merchant(),
                           todays=todays, today_points=sum(r.points for r in todays),
                           unsettled=unsettled.posted, locked=unlock_at is not None,
                           unlock_at=unlock_at, tries_left=tries_left,
                           typed=_shown_code(form.code.data), scanner=_scanner_version()), status


def _typed(code: str) -> str:
    # A Chinese keyboard types full-width letters (ＷＡＨＢＤ－…): read them as the code
    # they are before the lookup, so that they never count as a wrong guess.
    return unicodedata.normalize("NFKC", code)


def _shown_code(typed: str | None) -> str:
    """Return a typed code as the clerk should see it again: half-width, grouped if whole."""
    typed = unicodedata.normalize("NFKC", typed or "").strip()
    code = redemptions.normalise_code(typed)
    return redemptions.format_code(code) if len(code) == redemptions.CODE_LENGTH else typed


def _tries_left() -> int:
    """Return how many more wrong codes this user may type before entry locks."""
    used = db.session.scalar(sa.select(attempts.counted("code", str(current_user.id),
                                                         CODE_WINDOW)))
    return max(0, CODE_LIMIT - (used or 0))


@bp.post("/lookup")
@merchant_required
def lookup():
    """Show what a typed or scanned code is for, with the button that confirms it."""
    form = CodeForm()
    if not form.validate_on_submit():
        flash(_("Type or scan a redemption code."), "error")
        return redirect(url_for("counter.index"))
    found = actions.look_up(db.session, current_user, _typed(form.code.data))
    return render_template("market/counter/lookup.html", redemption=found, form=CodeForm(),
                           refund_form=RefundForm(),
                           code=redemptions.format_code(found.code))


@bp.post("/confirm")
@merchant_required
def confirm():
    """Hand the item over: post the held points to this merchant, once."""
    form = CodeForm()
    if not form.validate_on_submit():
        return redirect(url_for("counter.index"))
    found = actions.confirm(db.session, current_user, _typed(form.code.data))
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
    actions.refund(db.session, current_user, redemption_id, reason=form.reason.data)
    flash(_("Refunded."), "success")
    return redirect(url_for("counter.month"))


@bp.get("/month")
@merchant_required
def month():
    """List this month's confirmed redemptions (or another month's: ?month=2026-10)."""
    first = _parse_month(request.args.get("month")) or clock.local_today().replace(day=1)
    after = (first + timedelta(days=32)).replace(day=1)
    rows = _fulfilled_between(clock.utc_start_of(first), clock.utc_start_of(after))
    return render_template("market/counter/month.html", rows=rows, first=first,
                           previous=(first - timedelta(days=1)).replace(day=1), after=after,
                           last=after - timedelta(days=1),
                           has_next=after <= clock.local_today(),
                           total=sum(r.points for r in rows if r.status == "fulfilled"),
                           refund_form=RefundForm())


@bp.get("/statement")
@merchant_required
def statement():
    """Show (or download as CSV) what was handed over and refunded in a period."""
    today = clock.local_today()
    start = _parse_date(request.args.get("start")) or today.replace(day=1)
    end = _parse_date(request.args.get("end")) or today
    if end < start:
        start, end = end, start
    lines = settlement.period_lines(db.session, current_user.merchant_id, clock.utc_start_of(start),
                                    clock.utc_start_of(end + timedelta(days=1)))
    if request.args.get("format") == "csv":
        return _statement_csv(lines, start, end)
    return render_template("market/counter/statement.html", lines=lines, start=start, end=end,
                           merchant=_merchant(), total=sum(line.points for line in lines),
                           frozen=settlement.merchant_statements(db.session,
                                                                 current_user.merchant_id))


def _statement_csv(lines, start: date, end: date) -> Response:
    out = io.StringIO()
    out.write("\ufeff")  # Excel reads UTF-8 Chinese only with a BOM
    writer = csv.writer(out)
    writer.writerow([_("Time"), _("Code"), _("Item"), _("Quantity"), _("Volunteer"),
                     _("Kind"), _("Points")])
    for line in lines:
        r = line.redemption
        writer.writerow([safe_cell(cell) for cell in (
            clock.to_local(line.at).strftime("%Y-%m-%d %H:%M"),
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
    """Shut the code field and say until when, keeping what was typed in sight."""
    db.session.rollback()
    response, status = _counter_page(CodeForm(), 429, locked_for=error.retry_after)
    return response, status, {"Retry-After": str(error.retry_after)}


@bp.errorhandler(MarketError)
def refused(error: MarketError):
    """Answer a refusal at the counter with a message on the counter page."""
    db.session.rollback()
    if isinstance(error, UnknownRedemption):
        # The same words for a code that does not exist and another shop's code: the
        # counter never learns which codes other shops hold.
        flash(_("No such redemption code here. Check the code, and that it was redeemed "
                "at this shop."), "error")
        left = _tries_left()
        if left == 0:  # that was the last try: the field shuts now, not on the next one
            try:
                attempts.check(db.session, "code", str(current_user.id), CODE_LIMIT,
                               CODE_WINDOW)
            except attempts.AttemptsExceeded as lock:
                return _counter_page(CodeForm(), error.status, locked_for=lock.retry_after)
        return _counter_page(CodeForm(), error.status, tries_left=left)
    flash(describe(error), "error")
    return _counter_page(CodeForm(), error.status)


@bp.get("/scanner.js")
@merchant_required
def scanner_js():
    """Send the QR reader (jsQR), compressed when the browser takes gzip, cached for good.

    The counter page loads it only once the camera is on; its URL carries the file's
    hash, so a new version is a new URL and the old one may be kept for a year.
    """
    raw, packed, _version = _scanner()
    gzipped = request.accept_encodings.quality("gzip") > 0
    response = Response(packed if gzipped else raw, mimetype="text/javascript")
    if gzipped:
        response.headers["Content-Encoding"] = "gzip"
    response.headers["Vary"] = "Accept-Encoding"
    response.headers["Cache-Control"] = "public, max-age=31536000, immutable"
    return response


_SCANNER: dict[str, tuple[bytes, bytes, str]] = {}


def _scanner() -> tuple[bytes, bytes, str]:
    """Return jsQR as read, gzipped, and its version (read once per process)."""
    if "jsqr" not in _SCANNER:
        with current_app.open_resource("static/vendor/jsqr/jsQR.js") as file:
            raw = file.read()
        _SCANNER["jsqr"] = (raw, gzip.compress(raw, 9, mtime=0),
                            hashlib.sha256(raw).hexdigest()[:12])
    return _SCANNER["jsqr"]


def _scanner_version() -> str:
    return _scanner()[2]

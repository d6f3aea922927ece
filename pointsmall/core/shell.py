"""The app shell: language, security headers, role checks, navigation, template labels."""

from functools import wraps

from flask import Flask, abort, g, has_request_context, redirect, request, session, url_for
from flask_babel import lazy_gettext as _l
from flask_babel import refresh as forget_locale
from flask_login import current_user

from pointsmall.core.clock import to_local
from pointsmall.core.labels import (
    BATCH_LABELS,
    CATEGORY_LABELS,
    KIND_LABELS,
    MARKET_STATUS_LABELS,
    TIER_LABELS,
)
from pointsmall.extensions import login_manager

LANGUAGES = {"zh_CN": "中文", "en": "English"}
DEFAULT_LANGUAGE = "zh_CN"
LANG_COOKIE = "lang"

CSP = "; ".join([
    "default-src 'self'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self' data:",
    "font-src 'self'",
    "connect-src 'self'",
    "object-src 'none'",
    "base-uri 'self'",
    "form-action 'self'",
    "frame-ancestors 'none'",
])

NAV = {
    "volunteer": [("home.index", _l("My points")), ("tasks.board_page", _l("Tasks")),
                  ("earning.activity_list", _l("Activities")),
                  ("mall.index", _l("Points mall")),
                  ("mall.my_redemptions", _l("My redemptions"))],
    "merchant": [("counter.index", _l("Counter")), ("counter.month", _l("This month")),
                 ("counter.statement", _l("Statement")), ("reports.merchant_report", _l("Report")),
                 ("exports.counter_page", _l("Exports"))],
    "staff": [("home.index", _l("Overview")), ("reports.staff_dashboard", _l("Dashboard")),
              ("volunteers.index", _l("Volunteers")),
              ("staff_tasks.tasks_page", _l("Tasks")), ("staff_tasks.wishes_page", _l("Wishes")),
              ("staff_earning.activities", _l("Activities")),
              ("staff_earning.batches", _l("Awards")), ("staff_earning.tier_page", _l("Tiers")),
              ("volunteers.grids", _l("Grids")), ("market.index", _l("Merchants and items")),
              ("exports.staff_page", _l("Exports")),
              ("staff_audit.staff_audit_page", _l("Audit log"))],
    "admin": [("home.index", _l("Overview")), ("reports.district_dashboard", _l("District")),
              ("admin.communities_page", _l("Communities")),
              ("admin.audit_page", _l("Audit log"))],
}


def select_locale() -> str:
    """Pick the page language: the remembered choice, else Chinese."""
    if not has_request_context():
        return DEFAULT_LANGUAGE  # the CLI and background work speak the default language
    chosen = request.cookies.get(LANG_COOKIE) or session.get(LANG_COOKIE)
    return chosen if chosen in LANGUAGES else DEFAULT_LANGUAGE


def is_local_path(target: str | None) -> bool:
    """Tell whether `target` is a path on this site, safe to redirect to after a form."""
    # Browsers read a backslash as a slash and drop tabs and newlines: "/\\evil.example"
    # and "/\t/evil.example" would leave the site as "//evil.example" does.
    return bool(target) and target.startswith("/") and not target.startswith("//") and not (
        "\\" in target or any(ord(c) < 32 or c == "\x7f" for c in target))


def roles_required(*roles: str):
    """Let only signed-in users with one of `roles` through: others 401/403."""
    def decorate(view):
        @wraps(view)
        def wrapper(*args, **kwargs):
            if request.path.startswith("/api/"):
                # The API trusts bearer tokens only, never a browser's session cookie, so
                # it needs no CSRF token.
                if not current_user.is_authenticated or not g.get("token_auth"):
                    abort(401)
            elif not current_user.is_authenticated:
                return login_manager.unauthorized()
            if current_user.role not in roles:
                abort(403)
            return view(*args, **kwargs)
        return wrapper
    return decorate


def register(app: Flask) -> None:
    """Install the loaders, headers and template globals of the shell."""
    # Flask-Babel remembers the language on `g`, which outlives a request whenever an app
    # context is kept open around several (tests, scripts): each request picks its own.
    app.before_request(forget_locale)

    @app.after_request
    def security_headers(response):
        response.headers.setdefault("Content-Security-Policy", CSP)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        response.headers.setdefault("Permissions-Policy", "camera=(self), microphone=()")
        if app.config.get("PRODUCTION"):
            response.headers.setdefault("Strict-Transport-Security", "max-age=31536000")
        return response

    @app.template_filter("localtime")
    def localtime(moment, fmt: str = "%Y-%m-%d %H:%M") -> str:
        """Show a stored UTC moment in the deployment's time zone."""
        return to_local(moment).strftime(fmt) if moment else ""

    @app.context_processor
    def labels():
        return {"status_label": lambda s: str(MARKET_STATUS_LABELS.get(s, s)),
                "category_label": lambda c: str(CATEGORY_LABELS.get(c, c)),
                "tier_label": lambda t: str(TIER_LABELS.get(t, t or "")),
                "kind_label": lambda k: str(KIND_LABELS.get(k, k)),
                "batch_label": lambda b: str(BATCH_LABELS.get(b, b))}

    @app.context_processor
    def shell_globals():
        role = current_user.role if current_user.is_authenticated else None
        return {"nav": NAV.get(role, []), "languages": LANGUAGES, "locale": select_locale()}

    @app.get("/lang/<code>")
    def set_language(code: str):
        """Remember the chosen page language and go back."""
        if code not in LANGUAGES:
            abort(404)
        target = request.args.get("next")
        if not is_local_path(target):
            target = url_for("home.index")
        response = redirect(target)
        response.set_cookie(LANG_COOKIE, code, max_age=365 * 24 * 3600, samesite="Lax",
                            httponly=True, secure=app.config.get("PRODUCTION", False))
        return response

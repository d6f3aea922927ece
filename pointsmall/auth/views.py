"""Sign in and out, change the password, see and revoke API tokens."""

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user, login_required, login_user, logout_user
from flask_wtf import FlaskForm
from wtforms import HiddenField, PasswordField, StringField
from wtforms.validators import DataRequired, Length

from pointsmall.auth import picture, service, use_cases
from pointsmall.core.errors import TooManyAttempts, ValidationFailed
from pointsmall.core.shell import is_local_path
from pointsmall.extensions import db

bp = Blueprint("auth", __name__)


class SignInForm(FlaskForm):
    login = StringField(_l("Username or phone number"), validators=[DataRequired(),
                                                                    Length(max=64)])
    password = PasswordField(_l("Password"), validators=[DataRequired(), Length(max=128)])
    # Shown only while the account is being guessed from many places (auth.limits).
    picture_token = HiddenField()
    picture_answer = StringField(_l("Characters in the picture"), validators=[Length(max=16)])


class PasswordForm(FlaskForm):
    current = PasswordField(_l("Current password"), validators=[DataRequired()])
    new = PasswordField(_l("New password"), validators=[DataRequired(), Length(max=128)])


class EmptyForm(FlaskForm):
    """A form with only the CSRF token, for buttons that change something."""


@bp.route("/login", methods=["GET", "POST"])
def login():
    """Sign in with a username or phone number and a password."""
    if current_user.is_authenticated:
        return redirect(url_for("home.index"))
    form = SignInForm()
    if form.validate_on_submit():
        try:
            user = use_cases.sign_in(db.session, form.login.data, form.password.data,
                                     request.remote_addr or "",
                                     picture_token=form.picture_token.data,
                                     picture_answer=form.picture_answer.data)
        except service.PictureRequired:
            asked_before = bool(form.picture_token.data)
            flash(_("The characters did not match the picture. Please try this one.")
                  if asked_before else
                  _("Many failed sign-ins for this account. To sign in, also type the "
                    "characters in the picture."), "error")
            return _login_page(form, picture.new_challenge()), 401
        except (service.SignInFailed, TooManyAttempts) as error:
            flash(error.message, "error")
            status = 429 if isinstance(error, TooManyAttempts) else 401
            return _login_page(form), status
        login_user(user)
        return redirect(_safe_next(request.args.get("next")))
    return _login_page(form)


def _login_page(form: SignInForm, challenge: picture.Challenge | None = None):
    form.picture_token.data = challenge.token if challenge else ""
    form.picture_answer.data = ""
    return render_template("auth/login.html", form=form, picture=challenge)


@bp.post("/logout")
@login_required
def logout():
    """Sign out."""
    logout_user()
    flash(_("You have signed out."), "info")
    return redirect(url_for("auth.login"))


@bp.route("/account", methods=["GET", "POST"])
@login_required
def account():
    """Change the password; list and revoke API tokens."""
    form = PasswordForm()
    if form.validate_on_submit():
        try:
            use_cases.change_password(db.session, current_user, form.current.data,
                                      form.new.data, request.remote_addr or "")
        except ValidationFailed as error:
            for field, messages in error.errors.items():
                getattr(form, field).errors = list(messages)
        else:
            login_user(current_user)  # the session id changed with the password
            flash(_("Your password has been changed."), "success")
            return redirect(url_for("auth.account"))
    tokens = service.user_tokens(db.session, current_user)
    return render_template("auth/account.html", form=form, tokens=tokens,
                           revoke_form=EmptyForm())


@bp.post("/account/tokens/<int:token_id>/revoke")
@login_required
def revoke_token(token_id: int):
    """Revoke one of my API tokens."""
    form = EmptyForm()
    if form.validate_on_submit():
        use_cases.revoke_token(db.session, current_user, token_id)
        flash(_("The token has been revoked."), "success")
    return redirect(url_for("auth.account"))


def _safe_next(target: str | None) -> str:
    if is_local_path(target):
        return target
    return url_for("home.index")

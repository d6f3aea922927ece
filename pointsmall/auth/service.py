"""Sign-in with attempt limits, password changes and API tokens."""

import hashlib
import secrets
from collections.abc import Callable
from datetime import timedelta
from functools import cache

import sqlalchemy as sa
import sqlalchemy.orm as so
from flask_babel import gettext as _
from flask_babel import ngettext

from ledger import utcnow
from merchants import attempts
from pointsmall import audit
from pointsmall.auth.models import ApiToken, User
from pointsmall.errors import NotFound, TooManyAttempts, ValidationFailed

WINDOW = timedelta(minutes=15)
PER_ACCOUNT = 5
PER_ADDRESS = 20
PASSWORD_MIN = 8
# A token lasts this long; the app asks for a new one by signing in again.
TOKEN_LIFETIME = timedelta(days=90)


class SignInFailed(ValidationFailed):
    code = "sign_in_failed"
    status = 401

    def __init__(self):
        super().__init__({}, _("Wrong username, phone number or password."))


def too_many_sign_ins(minutes: int) -> str:
    """Word the refusal of a sign-in after too many failures."""
    return ngettext("Too many failed sign-ins. Please try again in %(num)d minute.",
                    "Too many failed sign-ins. Please try again in %(num)d minutes.", minutes)


def check_throttle(session: so.Session, scope: str, key: str, limit: int,
                   window: timedelta, message: Callable[[int], str]) -> None:
    """Refuse, worded by `message(minutes)`, after `limit` recent failures."""
    try:
        attempts.check(session, scope, key, limit, window)
    except attempts.AttemptsExceeded as exceeded:
        raise TooManyAttempts(message(exceeded.minutes), exceeded.retry_after) from None


def record_failure(session: so.Session, scope: str, key: str) -> None:
    """Count one failed attempt against `key`."""
    attempts.record_failure(session, scope, key)


def find_user(session: so.Session, login: str) -> User | None:
    """Return the user whose username or phone number is `login`."""
    login = (login or "").strip()
    if not login:
        return None
    return session.scalar(
        sa.select(User).where(sa.or_(User.username == login, User.phone == login))
    )


def authenticate(session: so.Session, login: str, password: str, address: str) -> User:
    """Return the user for these credentials, or raise; failures are counted and limited.

    The caller commits in both cases, so that failures are remembered.
    """
    login = (login or "").strip()[:64]
    user = find_user(session, login)
    # One count per account, whether it is named by its username or its phone number.
    account_key = f"user:{user.id}" if user is not None else login.lower()
    check_throttle(session, "login-account", account_key, PER_ACCOUNT, WINDOW,
                   too_many_sign_ins)
    check_throttle(session, "login-address", address, PER_ADDRESS, WINDOW,
                   too_many_sign_ins)
    if user is None or not user.check_password(password or "") or not user.active:
        record_failure(session, "login-account", account_key)
        record_failure(session, "login-address", address)
        raise SignInFailed()
    return user


def change_password(session: so.Session, user: User, current: str, new: str) -> None:
    """Change `user`'s password after checking the current one.

    Wrong current passwords count against the account's sign-in limit, so a borrowed
    session cannot guess the password here either. The caller commits in both cases.
    """
    account_key = f"user:{user.id}"
    check_throttle(session, "login-account", account_key, PER_ACCOUNT, WINDOW,
                   too_many_sign_ins)
    if not user.check_password(current or ""):
        record_failure(session, "login-account", account_key)
        raise ValidationFailed({"current": [_("The current password is wrong.")]})
    check_new_password(new)
    user.set_password(new)
    revoke_all_tokens(session, user)
    session.flush()
    audit.record(session, "user.change_password", f"user:{user.id}",
                 community_id=user.community_id, actor=user)


def check_new_password(new: str) -> None:
    if not new or len(new) < PASSWORD_MIN:
        raise ValidationFailed(
            {"new": [_("A password has at least %(n)d characters.", n=PASSWORD_MIN)]})


def create_token(session: so.Session, user: User, name: str = "") -> tuple[ApiToken, str]:
    """Issue a bearer token for `user`; return the row and the token text (shown once)."""
    raw = "pm_" + secrets.token_urlsafe(32)
    token = ApiToken(user_id=user.id, name=(name or "")[:80], prefix=raw[:10],
                     token_hash=_hash(raw))
    session.add(token)
    session.flush()
    audit.record(session, "token.create", f"token:{token.id}", community_id=user.community_id,
                 actor=user)
    return token, raw


@cache
def _token_lookup() -> sa.Select:
    """The user, the volunteer they are (if any: most API callers are), and what decides
    whether the token lets them in, in one round trip. (Built on first use, once every
    model is mapped.)"""
    return (
        sa.select(User, ApiToken.id, ApiToken.created_at, ApiToken.last_used_at,
                  ApiToken.revoked_at)
        .join(ApiToken, ApiToken.user_id == User.id)
        .options(so.joinedload(User.volunteer).lazyload("*"))
        .where(ApiToken.token_hash == sa.bindparam("token_hash")))


def user_for_token(session: so.Session, raw: str) -> User | None:
    """Return the active user a live token belongs to, or None.

    The token's last use is recorded at most every five minutes (the session is then
    dirty: the caller commits it).
    """
    if not raw or not raw.startswith("pm_") or len(raw) > 100:
        return None
    row = session.execute(_token_lookup(), {"token_hash": _hash(raw)}).first()
    now = utcnow()
    if row is None:
        return None
    user, token_id, created_at, last_used_at, revoked_at = row
    if revoked_at is not None or not user.active or created_at < now - TOKEN_LIFETIME:
        return None
    if last_used_at is None or now - last_used_at > timedelta(minutes=5):
        session.get(ApiToken, token_id).last_used_at = now
    return user


def revoke_token(session: so.Session, user: User, token_id: int) -> ApiToken:
    """Revoke one of `user`'s tokens."""
    token = session.get(ApiToken, token_id)
    if token is None or token.user_id != user.id:
        raise NotFound("token")
    if token.revoked_at is None:
        token.revoked_at = utcnow()
        audit.record(session, "token.revoke", f"token:{token.id}",
                     community_id=user.community_id, actor=user)
    session.flush()
    return token


def revoke_all_tokens(session: so.Session, user: User) -> int:
    """Revoke every live token of `user` (a new password ends every old way in)."""
    now = utcnow()
    tokens = list(session.scalars(sa.select(ApiToken).where(
        ApiToken.user_id == user.id, ApiToken.revoked_at.is_(None))))
    for token in tokens:
        token.revoked_at = now
    return len(tokens)


def user_tokens(session: so.Session, user: User) -> list[ApiToken]:
    return list(session.scalars(
        sa.select(ApiToken).where(ApiToken.user_id == user.id).order_by(ApiToken.id.desc())
    ))


def _hash(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()

"""Sign-in with attempt limits, password changes and API tokens."""

import hashlib
import secrets
import threading
from datetime import timedelta
from functools import cache

import sqlalchemy as sa
import sqlalchemy.orm as so
from flask_babel import gettext as _
from werkzeug.security import generate_password_hash

from ledger import utcnow
from pointsmall.auth import limits
from pointsmall.auth.limits import PictureRequired, too_many_sign_ins  # noqa: F401  (re-exported)
from pointsmall.auth.models import UNUSABLE, ApiToken, SignInName, User, password_matches
from pointsmall.core import audit
from pointsmall.core.errors import NotFound, ValidationFailed

PASSWORD_MIN = 8
# A token lasts this long; the app asks for a new one by signing in again.
TOKEN_LIFETIME = timedelta(days=90)


class SignInFailed(ValidationFailed):
    code = "sign_in_failed"
    status = 401

    def __init__(self):
        super().__init__({}, _("Wrong username, phone number or password."))


def find_user(session: so.Session, login: str) -> User | None:
    """Return the user whose username or phone number is `login` (one at most)."""
    login = (login or "").strip()
    if not login:
        return None
    return session.scalar(sa.select(User).join(SignInName, SignInName.user_id == User.id)
                          .where(SignInName.name == login))


_unknown_user_hash: list[str] = []
_unknown_user_hash_made = threading.Lock()


def unknown_user_hash() -> str:
    """A hash of the app's own kind and cost, that no password matches, for unknown names.

    Checking it costs what checking a real user's password costs, so the time of the
    answer does not tell whether a name exists. Made once per process (under a lock, so a
    burst of first requests does not make it once each).
    """
    with _unknown_user_hash_made:
        if not _unknown_user_hash:
            _unknown_user_hash.append(generate_password_hash(secrets.token_urlsafe(24)))
    return _unknown_user_hash[0]


def authenticate(session: so.Session, login: str, password: str, address: str, *,
                 picture_token: str | None = None, picture_answer: str | None = None) -> User:
    """Return the user for these credentials, or raise; attempts are counted and limited.

    The attempt is counted and committed before the password is checked, so parallel
    guesses meet the limit exactly and do not wait on each other's hashing; a right password
    gives its count back. `use_cases` commits in every case.
    """
    login = (login or "").strip()[:64]
    user = find_user(session, login)
    # One count per account, whether it is named by its username or its phone number.
    account = f"user:{user.id}" if user is not None else f"name:{login.lower()}"
    may_enter = user is not None and user.active and not user.password_hash.startswith(UNUSABLE)
    # Whoever cannot enter (unknown, suspended, imported without a password yet) costs the
    # same check as whoever can.
    stored = user.password_hash if may_enter else unknown_user_hash()
    reserved = limits.reserve_sign_in(session, account, address, picture_token=picture_token,
                                      picture_answer=picture_answer)
    session.commit()
    if not password_matches(stored, password or "") or not may_enter:
        raise SignInFailed()
    reserved.give_back(session)
    return user


def change_password(session: so.Session, user: User, current: str, new: str,
                    address: str = "") -> None:
    """Change `user`'s password after checking the current one.

    Wrong current passwords count against the account's sign-in limit from this address, so
    a borrowed session cannot guess the password here either. `use_cases` commits in both
    cases.
    """
    reserved = limits.reserve_sign_in(session, f"user:{user.id}", address, ceiling=False)
    session.commit()
    if not user.check_password(current or ""):
        raise ValidationFailed({"current": [_("The current password is wrong.")]})
    reserved.give_back(session)
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

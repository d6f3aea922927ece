"""What a person does with their own account, one function per action: the sign-in page and
the API's token exchange, the account page and the API call the same one.

Each owns its transaction (`committed`). A refused sign-in or a wrong current password is
the exception: its attempt was counted before the check and stays counted, so the refusal
commits that count before it is raised.
"""

import sqlalchemy.orm as so

from pointsmall.auth import service
from pointsmall.auth.models import ApiToken, User
from pointsmall.core.errors import AppError, ValidationFailed
from pointsmall.core.transactions import committed


def _checked(session: so.Session, login: str, password: str, address: str, *,
             picture_token: str | None = None, picture_answer: str | None = None) -> User:
    try:
        return service.authenticate(session, login, password, address,
                                    picture_token=picture_token, picture_answer=picture_answer)
    except AppError:
        session.commit()  # a refused attempt counts towards the limit: keep it, then refuse
        raise


def sign_in(session: so.Session, login: str, password: str, address: str, *,
            picture_token: str | None = None, picture_answer: str | None = None) -> User:
    """Check a username (or phone) and password; return the user, or raise with the failed
    attempt counted."""
    with committed(session):
        return _checked(session, login, password, address, picture_token=picture_token,
                        picture_answer=picture_answer)


def issue_token(session: so.Session, login: str, password: str, address: str, *,
                name: str = "") -> tuple[ApiToken, str]:
    """Exchange a username (or phone) and password for a bearer token (its text shown once)."""
    with committed(session):
        user = _checked(session, login, password, address)
        return service.create_token(session, user, name)


def change_password(session: so.Session, user: User, current: str, new: str,
                    address: str = "") -> None:
    """Change my password after checking the current one; every token of mine ends."""
    with committed(session):
        try:
            service.change_password(session, user, current, new, address)
        except ValidationFailed:
            # A wrong current password counts as a failed sign-in (a right one gave its
            # count back): keep the count, then refuse.
            session.commit()
            raise


def revoke_token(session: so.Session, user: User, token_id: int) -> ApiToken:
    """Revoke one of my API tokens."""
    with committed(session):
        return service.revoke_token(session, user, token_id)

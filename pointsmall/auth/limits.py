"""How many sign-in attempts get a password checked: slow the guesser, never lock the owner.

Three counters, each counted before the password is checked (`pointsmall.core.attempts`):

- an account from one address (PER_PAIR in WINDOW): the guesser's address is refused
  for the rest of the window, and the owner elsewhere signs in as usual;
- one address across accounts (PER_ADDRESS in WINDOW): one address cannot try a few
  passwords on each of many accounts;
- an account from everywhere (ACCOUNT_CEILING in CEILING_WINDOW): past it, a guesser with
  many addresses meets a step-up, not a lock: every sign-in to the account, the owner's
  too, must read a picture (`picture`). Signed-in sessions and API tokens go on working.

An unknown name is counted as an account is, so the answers do not tell who exists.
"""

from dataclasses import dataclass
from datetime import timedelta

import sqlalchemy.orm as so
from flask_babel import gettext as _
from flask_babel import ngettext

from pointsmall.auth import picture
from pointsmall.core import attempts
from pointsmall.core.errors import AppError, TooManyAttempts

WINDOW = timedelta(minutes=15)
PER_PAIR = 5
PER_ADDRESS = 20
ACCOUNT_CEILING = 50
CEILING_WINDOW = timedelta(hours=24)


class PictureRequired(AppError):
    """The account is being guessed from many places: read the picture to sign in."""

    status = 429
    code = "picture_required"

    def __init__(self):
        super().__init__(_("Too many failed sign-ins for this account. Please sign in on the "
                           "sign-in page, where you will be asked to type the characters "
                           "of a picture."))


def too_many_sign_ins(minutes: int) -> str:
    """Word the refusal of a sign-in after too many failures."""
    return ngettext("Too many failed sign-ins. Please try again in %(num)d minute.",
                    "Too many failed sign-ins. Please try again in %(num)d minutes.", minutes)


@dataclass(frozen=True)
class Reserved:
    """The counts one sign-in attempt took; a right password gives them back."""

    counts: tuple[tuple[str, str], ...]

    def give_back(self, session: so.Session) -> None:
        for scope, key in self.counts:
            attempts.release(session, scope, key)


def reserve_sign_in(session: so.Session, account: str, address: str, *,
                    picture_token: str | None = None, picture_answer: str | None = None,
                    ceiling: bool = True) -> Reserved:
    """Count a sign-in attempt on `account` from `address` before its password is checked.

    Raise TooManyAttempts (nothing counted) when the address is refused, or PictureRequired
    when the account is past its ceiling and no unused picture was read right. Without
    `ceiling` only the pair and the address are counted (a signed-in user's own checks).
    """
    taken: list[tuple[str, str]] = []
    try:
        for scope, key, limit in (("sign-in-pair", f"{account}@{address}", PER_PAIR),
                                  ("sign-in-address", address, PER_ADDRESS)):
            attempts.reserve(session, scope, key, limit, WINDOW)
            taken.append((scope, key))
    except attempts.AttemptsExceeded as exceeded:
        Reserved(tuple(taken)).give_back(session)
        raise TooManyAttempts(too_many_sign_ins(exceeded.minutes),
                              exceeded.retry_after) from None
    if not ceiling:
        return Reserved(tuple(taken))
    try:
        attempts.reserve(session, "sign-in-account", account, ACCOUNT_CEILING, CEILING_WINDOW)
        taken.append(("sign-in-account", account))
    except attempts.AttemptsExceeded:
        if not picture.solved(session, picture_token, picture_answer):
            Reserved(tuple(taken)).give_back(session)
            raise PictureRequired() from None
    return Reserved(tuple(taken))

"""One namespace of sign-in names: a username or phone number reaches exactly one person.

Every way of creating or renaming a user asks here first, so that a refusal is a clear
error beside the field; the `sign_in_names` primary key refuses whatever slips past (two
requests at once).
"""

import re
from collections.abc import Iterable

import sqlalchemy as sa
import sqlalchemy.orm as so
from flask_babel import gettext as _

from pointsmall.auth.models import SignInName

PHONE = re.compile(r"^1[3-9]\d{9}$")
USERNAME_MAX = 64
IN_CHUNK = 500


def normalise_phone(raw) -> str:
    """Return a phone number without spaces, dashes or the +86 prefix."""
    phone = re.sub(r"[\s-]", "", str(raw or ""))
    return phone[3:] if phone.startswith("+86") else phone


def owners(session: so.Session, names: Iterable[str]) -> dict[str, tuple[int, str]]:
    """Return {name: (user id, kind)} for those of `names` someone signs in with."""
    names = sorted(set(names))
    found = {}
    for start in range(0, len(names), IN_CHUNK):
        found |= {name: (user_id, kind) for name, user_id, kind in session.execute(
            sa.select(SignInName.name, SignInName.user_id, SignInName.kind)
            .where(SignInName.name.in_(names[start:start + IN_CHUNK])))}
    return found


def phone_problem(owner: tuple[int, str] | None, user_id: int | None = None) -> str | None:
    """Say why a phone number whose sign-in name belongs to `owner` cannot be `user_id`'s."""
    if owner is None or owner[0] == user_id:
        return None
    if owner[1] == "phone":
        return _("This phone number is already registered.")
    return _("This phone number is already the sign-in name of another account.")


def username_problem(session: so.Session, username: str, *,
                     own_phone: str | None = None) -> str | None:
    """Say why `username` cannot name a new account (with phone `own_phone`), or None."""
    if not username or len(username) > USERNAME_MAX:
        return _("A username is required.")
    if PHONE.match(normalise_phone(username)) and normalise_phone(username) != own_phone:
        # Else anyone could take a phone number before its owner is registered.
        return _("A username cannot be a mobile number other than the account's own.")
    if owners(session, [username]):
        return _("This username is taken.")
    return None


def is_name_clash(error: sa.exc.IntegrityError) -> bool:
    """Tell whether a failed flush was a second claim of a sign-in name."""
    text = str(error.orig)
    return any(mark in text for mark in ("sign_in_names", "users_username", "users.username",
                                         "users_phone", "users.phone"))

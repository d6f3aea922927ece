"""What the admin does with communities and staff accounts, one function per action: each
checks the rules, writes and records the audit entry inside `committed`, so it commits with
its audit entry, or a refusal rolls everything back and is raised.
"""

import sqlalchemy as sa
import sqlalchemy.orm as so
from flask_babel import gettext as _

from pointsmall.auth import names
from pointsmall.auth.models import User
from pointsmall.auth.service import check_new_password
from pointsmall.core import audit
from pointsmall.core.errors import ValidationFailed
from pointsmall.core.transactions import committed
from pointsmall.people import communities


def create_community(session: so.Session, actor: User, name: str,
                     district: str = "") -> communities.Community:
    """Add a community (its ledger accounts come with it)."""
    with committed(session):
        community = communities.create_community(session, name, district)
        audit.record(session, "community.create", f"community:{community.id}",
                     community_id=community.id, actor=actor, name=community.name)
        return community


def create_staff(session: so.Session, actor: User, community_id: int | None, *,
                 username: str | None, name: str | None, password: str | None) -> User:
    """Create a community staff account.

    Its username must be a free sign-in name across the deployment, and no phone number.
    """
    errors = {}
    username = (username or "").strip()
    with committed(session):
        problem = names.username_problem(session, username)
        if problem:
            errors["username"] = [problem]
        if not (name or "").strip():
            errors["name"] = [_("A name is required.")]
        if session.get(communities.Community, community_id or 0) is None:
            errors["community_id"] = [_("Unknown community.")]
        try:
            check_new_password(password)
        except ValidationFailed as error:
            errors["password"] = error.errors["new"]
        if errors:
            raise ValidationFailed(errors)
        user = User(username=username, name=name.strip(), role="staff",
                    community_id=community_id)
        user.set_password(password)
        session.add(user)
        try:
            session.flush()
        except sa.exc.IntegrityError as error:
            if not names.is_name_clash(error):
                raise
            raise ValidationFailed({"username": [_("This username is taken.")]}) from None
        audit.record(session, "staff.create", f"user:{user.id}",
                     community_id=user.community_id, actor=actor)
        return user

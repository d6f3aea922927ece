"""What community staff do with their people, one function per action: the office pages and
the API call the same one. Each finds the volunteer in the actor's community, runs the
action of `service`, `importer` or `communities` (which check the rules, write and record the
audit entry) inside `committed`: it commits with its audit entry, or a refusal rolls
everything back and is raised.
"""

import sqlalchemy.orm as so
from flask_babel import gettext as _

from pointsmall.auth.models import User
from pointsmall.core import audit
from pointsmall.core.transactions import committed
from pointsmall.jobs import service as jobs
from pointsmall.jobs.models import BackgroundJob
from pointsmall.people import communities, importer, service
from pointsmall.people.communities import Grid
from pointsmall.people.models import Volunteer


def add_volunteer(session: so.Session, actor: User, raw: dict, *,
                  username: str | None = None) -> tuple[Volunteer, str]:
    """Add a volunteer to the staff's community; return them and their first password."""
    with committed(session):
        return service.create_volunteer(session, actor.community_id, raw, username=username)


def update_volunteer(session: so.Session, actor: User, volunteer_id: int,
                     raw: dict) -> Volunteer:
    """Change a volunteer's details as the staff's form has them all."""
    with committed(session):
        volunteer = service.get_volunteer(session, volunteer_id, actor.community_id)
        return service.update_volunteer(session, volunteer, raw)


def change_volunteer(session: so.Session, actor: User, volunteer_id: int,
                     changes: dict) -> Volunteer:
    """Change only the given fields of a volunteer."""
    with committed(session):
        volunteer = service.get_volunteer(session, volunteer_id, actor.community_id)
        return service.change_volunteer(session, volunteer, changes)


def set_status(session: so.Session, actor: User, volunteer_id: int, status: str) -> Volunteer:
    """Suspend, reactivate or mark a volunteer as having left."""
    with committed(session):
        volunteer = service.get_volunteer(session, volunteer_id, actor.community_id)
        return service.set_status(session, volunteer, status)


def reset_password(session: so.Session, actor: User, volunteer_id: int) -> str:
    """Give a volunteer a new password (ending their sessions); return it, to be shown once."""
    with committed(session):
        volunteer = service.get_volunteer(session, volunteer_id, actor.community_id)
        return service.reset_password(session, volunteer)


def import_volunteers(session: so.Session, actor: User, filename: str, data: bytes, *,
                      with_codes: bool = False) -> tuple[list[Volunteer], list]:
    """Import a roster file, every row or none; with their first sign-in codes, if asked."""
    with committed(session):
        created = importer.import_volunteers(session, actor.community_id, filename, data)
        codes = (service.first_sign_in_codes(session, actor.community_id, created)
                 if with_codes else [])
        return created, codes


def start_import(session: so.Session, actor: User, filename: str,
                 data: bytes) -> BackgroundJob:
    """Queue a large roster file for a worker to check and import."""
    with committed(session):
        return jobs.start_job(
            session, actor.id, "import",
            jobs.request_params(community_id=actor.community_id, filename=filename),
            _("Import volunteers") + f" · {filename}", upload=data)


def add_grid(session: so.Session, actor: User, name: str, parent_id: int | None) -> Grid:
    """Add a grid, or a micro-grid under one, to the staff's community."""
    with committed(session):
        grid = communities.create_grid(session, actor.community_id, name, parent_id)
        audit.record(session, "grid.create", name, community_id=actor.community_id,
                     actor=actor)
        return grid

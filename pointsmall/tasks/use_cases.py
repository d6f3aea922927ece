"""What people do on the task board, one function per action, whichever way it comes in.

The volunteer's and the staff's pages, the API and the grid platform call these: each runs
one action of `board`, `checks` or `wishes` (which check the rules, write and record the
audit entry) inside `committed`, so the action commits with its audit entry, or a refusal
rolls everything back (the counted wish posts too) and is raised.
"""

import sqlalchemy.orm as so

from pointsmall.auth.models import User
from pointsmall.core.transactions import committed
from pointsmall.people.models import Volunteer
from pointsmall.tasks import board, checks, wishes
from pointsmall.tasks.models import Assignment, Task, Wish

# ---- volunteers ----------------------------------------------------------------------------

def claim_task(session: so.Session, volunteer: Volunteer, task_id: int) -> Assignment:
    """Claim a place on a task; claiming again answers the same claim."""
    with committed(session):
        return board.claim_task(session, volunteer, task_id)


def start_task(session: so.Session, volunteer: Volunteer, task_id: int) -> Assignment:
    """Say I have started my task (it then stays mine)."""
    with committed(session):
        return board.start_task(session, volunteer, task_id)


def finish_task(session: so.Session, volunteer: Volunteer, task_id: int, *, note: str,
                photos: list | None = None) -> Assignment:
    """Mark my task done with a note and photos."""
    with committed(session):
        return board.finish_task(session, volunteer, task_id, note=note, photos=photos)


def give_back(session: so.Session, volunteer: Volunteer, task_id: int, *,
              reason: str) -> Assignment:
    """Give my task back with a reason; its place returns to the pool."""
    with committed(session):
        return board.give_back(session, volunteer, task_id, reason=reason)


# ---- residents -----------------------------------------------------------------------------

def post_wish(session: so.Session, grid_id: int, raw: dict, *, address: str,
              photo=None) -> Wish:
    """Take a resident's wish or report; nothing is kept (nor counted) when it is refused."""
    with committed(session):
        return wishes.post_wish(session, grid_id, raw, address=address, photo=photo)


def rate_result(session: so.Session, code: str, *, rating: int, comment: str = "") -> Wish:
    """Rate the result of a wish, once."""
    with committed(session):
        return wishes.rate_result(session, code, rating=rating, comment=comment)


# ---- staff ---------------------------------------------------------------------------------

def publish_task(session: so.Session, actor: User, raw: dict, *, key: str = "") -> Task:
    """Publish a task for a grid of the staff's community; a retry with `key` answers it."""
    with committed(session):
        return board.publish_for_staff(session, actor, raw, key=key)


def dispatch_task(session: so.Session, actor: User, task_id: int,
                  volunteer_ids: list[int]) -> list[Assignment]:
    """Hand a task to named volunteers of the community, a place each."""
    with committed(session):
        return board.dispatch_task(session, actor, task_id, volunteer_ids)


def accept_task(session: so.Session, actor: User, assignment_id: int, *, rating: int,
                comment: str = "") -> Assignment:
    """Accept a done task with a rating; its points and merit are awarded once."""
    with committed(session):
        return checks.accept_task(session, actor, assignment_id, rating=rating,
                                  comment=comment)


def send_back(session: so.Session, actor: User, assignment_id: int, *,
              reason: str) -> Assignment:
    """Send a done task back to the volunteer with a reason."""
    with committed(session):
        return checks.send_back(session, actor, assignment_id, reason=reason)


def publish_wish(session: so.Session, actor: User, wish_id: int, raw: dict) -> Wish:
    """Publish a wish as a task of its grid."""
    with committed(session):
        return wishes.publish_wish(session, actor, wish_id, raw)


def merge_wish(session: so.Session, actor: User, wish_id: int, into_id: int) -> Wish:
    """Merge a wish into another of the community."""
    with committed(session):
        return wishes.merge_wish(session, actor, wish_id, into_id)


def close_wish(session: so.Session, actor: User, wish_id: int, *, reason: str) -> Wish:
    """Close a wish with a reason the resident reads at their link."""
    with committed(session):
        return wishes.close_wish(session, actor, wish_id, reason=reason)


# ---- the grid platform ---------------------------------------------------------------------

def publish_platform_task(session: so.Session, community_id: int, raw: dict, *,
                          task_id: str) -> tuple[Task, bool]:
    """Publish the platform's task once per its task id; return it and whether it is new."""
    with committed(session):
        return board.publish_once(session, community_id, raw, external_id=task_id[:64],
                                  source="platform")


def release_lapsed_claims(session: so.Session) -> int:
    """Return to the pool every claim not started in time; say how many (the command line)."""
    with committed(session):
        return board.release_lapsed_claims(session)

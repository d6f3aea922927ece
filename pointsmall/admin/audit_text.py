"""The audit log in plain words: what each action means, who or what it touched, and its
details, in the reader's language (the stored rows keep their codes)."""

import re
from dataclasses import dataclass

import sqlalchemy as sa
import sqlalchemy.orm as so
from flask_babel import lazy_gettext as _l

from pointsmall.auth.models import User
from pointsmall.core.audit import AuditEntry
from pointsmall.people.communities import Community
from pointsmall.people.models import Volunteer

ACTIONS = {
    "activity.create": _l("Created an activity"),
    "attendance.mark": _l("Marked attendance"),
    "award.batch": _l("Made an award batch"),
    "award.approve": _l("Approved an award batch"),
    "award.reject": _l("Rejected an award batch"),
    "award.reverse": _l("Reversed an award"),
    "points.adjust": _l("Adjusted points"),
    "points.adjust_request": _l("Asked for an adjustment over the approval limit"),
    "points.adjust_approve": _l("Approved an adjustment"),
    "points.adjust_reject": _l("Rejected an adjustment"),
    "points.expire": _l("Expired unspent old points"),
    "tiers.evaluate": _l("Froze an evaluation"),
    "tiers.thresholds": _l("Changed the tier thresholds"),
    "rules.update": _l("Changed the earning rules"),
    "rules.rotate_secret": _l("Gave the grid platform a new secret"),
    "community.create": _l("Created a community"),
    "community.point_value": _l("Changed the value of a point"),
    "staff.create": _l("Created a staff account"),
    "grid.create": _l("Created a grid"),
    "volunteer.create": _l("Added a volunteer"),
    "volunteer.update": _l("Changed a volunteer's details"),
    "volunteer.status": _l("Changed a volunteer's status"),
    "volunteer.reset_password": _l("Reset a volunteer's password"),
    "volunteer.import": _l("Imported volunteers"),
    "volunteer.first_codes": _l("Issued first sign-in codes"),
    "merchant.create": _l("Added a merchant"),
    "item.create": _l("Added an item"),
    "item.update": _l("Changed an item"),
    "item.approve": _l("Approved an item"),
    "item.reject": _l("Rejected an item"),
    "redemption.reserve": _l("Redeemed an item"),
    "redemption.cancel": _l("Cancelled a redemption"),
    "redemption.confirm": _l("Handed over a redemption at the counter"),
    "redemption.refund": _l("Refunded a redemption"),
    "redemption.expire": _l("Unclaimed redemptions expired"),
    "ledger.expire_holds": _l("Held points past their deadline released"),
    "statement.close": _l("Closed a settlement period"),
    "user.change_password": _l("Changed their password"),
    "token.create": _l("Created an app token"),
    "token.revoke": _l("Revoked an app token"),
    "user.rename": _l("Renamed a sign-in name that was another person's phone"),
    "task.publish": _l("Published a task"),
    "task.dispatch": _l("Dispatched a task"),
    "task.claim": _l("Claimed a task"),
    "task.done": _l("Marked a task done"),
    "task.give_back": _l("Gave a task back"),
    "task.lapse": _l("A claim lapsed back to the pool"),
    "task.accept": _l("Accepted a task"),
    "task.send_back": _l("Sent a task back"),
    "wish.post": _l("A resident posted a wish or report"),
    "wish.publish": _l("Published a wish as a task"),
    "wish.merge": _l("Merged a wish into another"),
    "wish.close": _l("Closed a wish"),
    "wish.rate": _l("A resident rated the result"),
}
DETAILS = {
    "points": _l("Points"), "merit": _l("Merit"), "reason": _l("Reason"),
    "people": _l("People"), "count": _l("Count"), "name": _l("Name"), "title": _l("Title"),
    "before": _l("Before"), "after": _l("After"), "present": _l("Present"),
    "price": _l("Price"), "stock": _l("Stock"), "merchant": _l("Merchant"),
    "amount_fen": _l("Amount (fen)"), "net_points": _l("Net points"),
    "activity_id": _l("Activity"), "adjustment_id": _l("Adjustment"), "types": _l("Types"),
    "rating": _l("Rating"), "volunteer_id": _l("Volunteer"), "task_id": _l("Task"),
    "photos": _l("Photos"), "kind": _l("Kind"), "source": _l("Source"), "into": _l("Into"),
    "comment": _l("Comment"), "quantity": _l("Quantity"), "cutoff": _l("Earned before"),
}
KINDS = {
    "batch": _l("Award batch #%(id)s"), "award": _l("Award #%(id)s"),
    "activity": _l("Activity #%(id)s"), "evaluation": _l("Evaluation #%(id)s"),
    "merchant": _l("Merchant #%(id)s"), "item": _l("Item #%(id)s"),
    "redemption": _l("Redemption #%(id)s"), "statement": _l("Statement #%(id)s"),
    "token": _l("Token #%(id)s"), "task": _l("Task #%(id)s"), "wish": _l("Wish #%(id)s"),
}
TARGET = re.compile(r"^([a-z_]+):(\d+)$")


@dataclass
class ReadableEntry:
    entry: AuditEntry
    action: str
    who: str
    target: str
    details: list[tuple[str, str]]


def action_label(code: str) -> str:
    return str(ACTIONS.get(code, code))


def readable(session: so.Session, entries: list[AuditEntry]) -> list[ReadableEntry]:
    """Return the entries with names for the people and things they name."""
    wanted: dict[str, set[int]] = {}
    for entry in entries:
        found = TARGET.match(entry.target or "")
        if found:
            wanted.setdefault(found[1], set()).add(int(found[2]))
    names: dict[tuple[str, int], str] = {}
    if wanted.get("volunteer"):
        for vid, name, phone in session.execute(
                sa.select(Volunteer.id, User.name, User.phone).join(
                    User, User.id == Volunteer.user_id)
                .where(Volunteer.id.in_(wanted["volunteer"]))):
            names[("volunteer", vid)] = f"{name} ({phone})" if phone else name
    if wanted.get("user"):
        for uid, name, username in session.execute(
                sa.select(User.id, User.name, User.username).where(
                    User.id.in_(wanted["user"]))):
            names[("user", uid)] = f"{name} ({username})"
    if wanted.get("community"):
        for cid, name in session.execute(sa.select(Community.id, Community.name).where(
                Community.id.in_(wanted["community"]))):
            names[("community", cid)] = name
    return [ReadableEntry(entry, action_label(entry.action), _who(entry),
                          _target(entry.target or "", names), _details(entry.detail or {}))
            for entry in entries]


def _who(entry: AuditEntry) -> str:
    if entry.actor_name:
        return entry.actor_name
    # No one signed in: the command line (the demo, imports by the operator) or the system.
    return str(_l("System (command line)") if entry.address == "cli" else _l("System"))


def _target(target: str, names: dict[tuple[str, int], str]) -> str:
    found = TARGET.match(target)
    if not found:
        return target
    kind, number = found[1], int(found[2])
    if (kind, number) in names:
        return names[(kind, number)]
    if kind in KINDS:
        return str(KINDS[kind]) % {"id": number}
    return target


def _details(detail: dict) -> list[tuple[str, str]]:
    return [(str(DETAILS.get(key, key)),
             f"#{value}" if key.endswith("_id") else _value(value))
            for key, value in detail.items() if value not in (None, "", {}, [])]


def _value(value) -> str:
    if isinstance(value, bool):
        return "✓" if value else "✗"
    if isinstance(value, dict):
        return ", ".join(f"{DETAILS.get(k, k)} {_value(v)}" for k, v in value.items())
    if isinstance(value, list):
        return " / ".join(_value(v) for v in value)
    return str(value)

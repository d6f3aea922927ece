"""Task completions posted by the grid platform, signed with HMAC-SHA256, awarded once.

The platform sends the JSON body with two headers:
  X-Timestamp: seconds since 1970 (UTC)
  X-Signature: hex HMAC-SHA256 of "<timestamp>.<raw body>" under the community's secret
"""

import hashlib
import hmac
import json
import time

import sqlalchemy as sa
import sqlalchemy.orm as so
from flask_babel import gettext as _
from sqlalchemy.exc import IntegrityError

from pointsmall.core.errors import Conflict, ValidationFailed
from pointsmall.earning import awards
from pointsmall.earning.errors import SignatureRefused
from pointsmall.earning.models import Award, EarningRules, PlatformTask

MAX_SKEW = 300
MAX_POINTS = 10_000


def signature(secret: str, timestamp: str, body: bytes) -> str:
    """Return the hex HMAC-SHA256 the platform sends for `body` at `timestamp`."""
    return hmac.new(secret.encode(), timestamp.encode() + b"." + body,
                    hashlib.sha256).hexdigest()


def verify_request(session: so.Session, body: bytes, timestamp: str, signed: str, *,
                   now: float | None = None) -> dict:
    """Check the signature and freshness of a platform request; return its parsed body."""
    now = time.time() if now is None else now
    try:
        data = json.loads(body)
        community_id = int(data["community_id"])
    except (ValueError, TypeError, KeyError):
        raise ValidationFailed({"community_id": [_("A community id is required.")]}) from None
    rules = session.get(EarningRules, community_id)
    if rules is None:
        raise SignatureRefused(_("Unknown community or bad signature."))
    expected = signature(rules.platform_secret, timestamp or "", body)
    if not signed or not hmac.compare_digest(expected, signed.lower()):
        raise SignatureRefused(_("Unknown community or bad signature."))
    try:
        age = now - int(timestamp)
    except ValueError:
        raise SignatureRefused(_("The timestamp is not a number of seconds.")) from None
    if abs(age) > MAX_SKEW:
        raise SignatureRefused(_("The request is older than five minutes (or from the future)."))
    return data


def award_task(session: so.Session, data: dict, body: bytes, *,
               retried: bool = False) -> tuple[Award, bool]:
    """Award a verified task once per task id; return the award and whether it is new."""
    community_id = int(data["community_id"])
    errors = {}
    task_id = str(data.get("task_id") or "").strip()
    if not task_id or len(task_id) > 64:
        errors["task_id"] = [_("A task id of at most 64 characters is required.")]
    volunteer_id, points = data.get("volunteer_id"), data.get("points")
    if isinstance(volunteer_id, bool) or not isinstance(volunteer_id, int):
        errors["volunteer_id"] = [_("A volunteer id is required.")]
    merit = data.get("merit", points)
    for field, value in (("points", points), ("merit", merit)):
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_POINTS:
            errors[field] = [_("A whole number from 0 to %(n)d.", n=MAX_POINTS)]
    if errors:
        raise ValidationFailed(errors)
    body_hash = hashlib.sha256(_canonical(data)).hexdigest()
    earlier = session.scalar(sa.select(PlatformTask).where(
        PlatformTask.community_id == community_id, PlatformTask.task_id == task_id))
    if earlier is not None:
        if earlier.body_hash != body_hash:
            raise Conflict(_("This task id was already awarded with different details."))
        return session.get(Award, earlier.award_id), False
    title = str(data.get("title") or _("Platform task"))[:100]
    try:
        with session.begin_nested():
            batch = awards.create_batch(
                session, community_id, [awards.Line(volunteer_id, points, merit)],
                key=f"task:{community_id}:{task_id}", by=None, title=title, type_code="task",
                audit_detail={"source": "platform", "task_id": task_id})
            award = session.scalar(sa.select(Award).where(Award.batch_id == batch.id))
            session.add(PlatformTask(community_id=community_id, task_id=task_id,
                                     body_hash=body_hash, award_id=award.id))
            session.flush()
    except IntegrityError:
        # The same task arrived twice at once and the other copy won: answer as a retry.
        if retried:
            raise
        return award_task(session, data, body, retried=True)
    return award, True


def _canonical(data: dict) -> bytes:
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()

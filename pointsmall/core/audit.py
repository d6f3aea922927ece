"""The audit log: who did what, when, from where; every staff and admin action."""

from datetime import datetime
from typing import Any

import sqlalchemy as sa
import sqlalchemy.orm as so
from flask import has_request_context, request
from flask_login import current_user

from ledger import utcnow
from pointsmall.extensions import db


class AuditEntry(db.Model):
    __tablename__ = "audit_log"
    __table_args__ = (sa.Index("ix_audit_log_community_at", "community_id", "at"),)

    id: so.Mapped[int] = so.mapped_column(primary_key=True)
    at: so.Mapped[datetime] = so.mapped_column(default=utcnow, index=True)
    actor_id: so.Mapped[int | None] = so.mapped_column(sa.ForeignKey("users.id"), index=True)
    actor_name: so.Mapped[str] = so.mapped_column(sa.String(64), default="")
    community_id: so.Mapped[int | None] = so.mapped_column(sa.ForeignKey("communities.id"))
    action: so.Mapped[str] = so.mapped_column(sa.String(60), index=True)
    target: so.Mapped[str] = so.mapped_column(sa.String(120), default="")
    detail: so.Mapped[dict[str, Any]] = so.mapped_column(sa.JSON, default=dict)
    address: so.Mapped[str] = so.mapped_column(sa.String(64), default="")


def record(session: so.Session, action: str, target: str = "", *,
           community_id: int | None = None, actor=None, **detail: Any) -> None:
    """Append an audit entry for the signed-in user (or `actor`) in the same transaction.

    One INSERT statement rather than an object for the unit of work: the entry is never
    read back where it is written, and the mall writes one per redemption and per
    confirmation.
    """
    actor = actor if actor is not None else (current_user if has_request_context() else None)
    signed_in = actor is not None and getattr(actor, "is_authenticated", False)
    session.execute(sa.insert(AuditEntry).values(
        at=utcnow(),
        actor_id=actor.id if signed_in else None,
        actor_name=actor.username if signed_in else "",
        community_id=community_id,
        action=action,
        target=target,
        detail=detail,
        address=(request.remote_addr or "") if has_request_context() else "cli",
    ))


def search(session: so.Session, *, action: str | None = None, actor: str | None = None,
           community_id: int | None = None, page: int = 1, per_page: int = 50,
           since: datetime | None = None, until: datetime | None = None):
    """Return a page of audit entries, newest first, filtered as given ([since, until))."""
    query = sa.select(AuditEntry).order_by(AuditEntry.id.desc())
    if since is not None:
        query = query.where(AuditEntry.at >= since)
    if until is not None:
        query = query.where(AuditEntry.at < until)
    if action:
        query = query.where(AuditEntry.action == action)
    if actor:
        query = query.where(AuditEntry.actor_name == actor)
    if community_id:
        query = query.where(AuditEntry.community_id == community_id)
    return db.paginate(query, page=page, per_page=per_page, error_out=False)

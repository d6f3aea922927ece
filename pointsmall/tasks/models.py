"""Tables of the task board: tasks, who took them (assignments), and residents' wishes."""

from datetime import datetime
from decimal import Decimal

import sqlalchemy as sa
import sqlalchemy.orm as so

from ledger import utcnow
from pointsmall.extensions import db
from pointsmall.people.communities import Grid
from pointsmall.people.models import Volunteer

TASK_STATUSES = ("open", "closed", "cancelled")
MODES = ("open", "dispatch")
SOURCES = ("staff", "platform", "wish")
# An assignment's life: claimed (or dispatched) -> started -> done -> accepted; it may be
# given back, lapse when not started in time, or be sent back from done to started.
STATES = ("claimed", "started", "done", "accepted", "given_back", "lapsed")
LIVE_STATES = ("claimed", "started", "done", "accepted")
WISH_STATUSES = ("new", "published", "merged", "closed")
WISH_KINDS = ("wish", "report")


class Task(db.Model):
    """A task for a grid: published by staff, the grid platform, or from a resident's wish."""

    __tablename__ = "tasks"
    __table_args__ = (
        sa.CheckConstraint("status IN ('open', 'closed', 'cancelled')", name="status_known"),
        sa.CheckConstraint("mode IN ('open', 'dispatch')", name="mode_known"),
        sa.CheckConstraint("points >= 0 AND merit >= 0", name="amounts_not_negative"),
        sa.CheckConstraint("people >= 1", name="people_positive"),
        # The database keeps the places: a claim takes one only while one is free.
        sa.CheckConstraint("taken >= 0 AND taken <= people", name="places_kept"),
        sa.CheckConstraint("hours >= 0", name="hours_not_negative"),
        sa.UniqueConstraint("community_id", "external_id"),
        # The volunteer's board: open tasks of a grid, soonest deadline first.
        sa.Index("ix_tasks_board", "grid_id", "deadline",
                 postgresql_where=sa.text("status = 'open' AND mode = 'open'")),
        sa.Index("ix_tasks_community_created", "community_id", "created_at"),
    )

    id: so.Mapped[int] = so.mapped_column(primary_key=True)
    community_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("communities.id"))
    grid_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("grids.id"))
    title: so.Mapped[str] = so.mapped_column(sa.String(100))
    description: so.Mapped[str] = so.mapped_column(sa.String(1000), default="")
    place: so.Mapped[str] = so.mapped_column(sa.String(120), default="")
    points: so.Mapped[int]
    merit: so.Mapped[int]
    people: so.Mapped[int] = so.mapped_column(default=1)
    taken: so.Mapped[int] = so.mapped_column(default=0)
    hours: so.Mapped[Decimal] = so.mapped_column(sa.Numeric(5, 1), default=Decimal("0"))
    deadline: so.Mapped[datetime]
    photo_required: so.Mapped[bool] = so.mapped_column(default=False)
    mode: so.Mapped[str] = so.mapped_column(sa.String(10), default="open")
    status: so.Mapped[str] = so.mapped_column(sa.String(10), default="open")
    # Hours a claim may wait before it is started; then its place goes back to the pool.
    start_within_hours: so.Mapped[int] = so.mapped_column(default=24)
    source: so.Mapped[str] = so.mapped_column(sa.String(10), default="staff")
    external_id: so.Mapped[str | None] = so.mapped_column(sa.String(64))
    body_hash: so.Mapped[str | None] = so.mapped_column(sa.String(64))
    created_by: so.Mapped[int | None] = so.mapped_column(sa.ForeignKey("users.id"))
    created_at: so.Mapped[datetime] = so.mapped_column(default=utcnow)
    first_claimed_at: so.Mapped[datetime | None]
    closed_at: so.Mapped[datetime | None]

    grid: so.Mapped[Grid] = so.relationship(lazy="joined", innerjoin=True)

    @property
    def places_left(self) -> int:
        return self.people - self.taken


class Assignment(db.Model):
    """One volunteer on one task: claimed or dispatched, started, done, checked and rated."""

    __tablename__ = "task_assignments"
    __table_args__ = (
        sa.UniqueConstraint("task_id", "volunteer_id"),
        sa.CheckConstraint(
            "state IN ('claimed', 'started', 'done', 'accepted', 'given_back', 'lapsed')",
            name="state_known"),
        sa.CheckConstraint("rating IS NULL OR rating BETWEEN 1 AND 5", name="rating_range"),
        sa.Index("ix_task_assignments_volunteer_state", "volunteer_id", "state"),
        sa.Index("ix_task_assignments_community_state", "community_id", "state"),
    )

    id: so.Mapped[int] = so.mapped_column(primary_key=True)
    task_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("tasks.id"), index=True)
    community_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("communities.id"))
    volunteer_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("volunteers.id"))
    state: so.Mapped[str] = so.mapped_column(sa.String(12), default="claimed")
    dispatched: so.Mapped[bool] = so.mapped_column(default=False)
    claimed_at: so.Mapped[datetime] = so.mapped_column(default=utcnow)
    started_at: so.Mapped[datetime | None]
    done_at: so.Mapped[datetime | None]
    note: so.Mapped[str] = so.mapped_column(sa.String(500), default="")
    photos: so.Mapped[list] = so.mapped_column(sa.JSON, default=list)
    reason: so.Mapped[str] = so.mapped_column(sa.String(200), default="")
    checked_at: so.Mapped[datetime | None]
    checked_by: so.Mapped[int | None] = so.mapped_column(sa.ForeignKey("users.id"))
    rating: so.Mapped[int | None]
    comment: so.Mapped[str] = so.mapped_column(sa.String(200), default="")
    award_id: so.Mapped[int | None] = so.mapped_column(sa.ForeignKey("awards.id"))

    task: so.Mapped[Task] = so.relationship(lazy="joined", innerjoin=True)
    volunteer: so.Mapped[Volunteer] = so.relationship()


class Wish(db.Model):
    """A resident's micro-wish or problem report, posted without an account."""

    __tablename__ = "wishes"
    __table_args__ = (
        sa.CheckConstraint("status IN ('new', 'published', 'merged', 'closed')",
                           name="status_known"),
        sa.CheckConstraint("kind IN ('wish', 'report')", name="kind_known"),
        sa.CheckConstraint("resident_rating IS NULL OR resident_rating BETWEEN 1 AND 5",
                           name="rating_range"),
        sa.Index("ix_wishes_community_status", "community_id", "status"),
    )

    id: so.Mapped[int] = so.mapped_column(primary_key=True)
    community_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("communities.id"))
    grid_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("grids.id"))
    # The resident follows the wish by this unguessable code (and the link that holds it).
    code: so.Mapped[str] = so.mapped_column(sa.String(16), unique=True)
    kind: so.Mapped[str] = so.mapped_column(sa.String(8), default="wish")
    name: so.Mapped[str] = so.mapped_column(sa.String(40))
    phone: so.Mapped[str] = so.mapped_column(sa.String(11))
    text: so.Mapped[str] = so.mapped_column(sa.String(500))
    photo: so.Mapped[str | None] = so.mapped_column(sa.String(40))
    status: so.Mapped[str] = so.mapped_column(sa.String(10), default="new")
    task_id: so.Mapped[int | None] = so.mapped_column(sa.ForeignKey("tasks.id"))
    merged_into_id: so.Mapped[int | None] = so.mapped_column(sa.ForeignKey("wishes.id"))
    close_reason: so.Mapped[str] = so.mapped_column(sa.String(200), default="")
    created_at: so.Mapped[datetime] = so.mapped_column(default=utcnow)
    screened_at: so.Mapped[datetime | None]
    screened_by: so.Mapped[int | None] = so.mapped_column(sa.ForeignKey("users.id"))
    resident_rating: so.Mapped[int | None]
    resident_comment: so.Mapped[str] = so.mapped_column(sa.String(200), default="")

    grid: so.Mapped[Grid] = so.relationship(lazy="joined", innerjoin=True)
    task: so.Mapped[Task | None] = so.relationship()

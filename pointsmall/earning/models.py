"""Tables of the earning half: rules, activity types, activities, attendance, awards, tasks."""

from datetime import datetime

import sqlalchemy as sa
import sqlalchemy.orm as so

from ledger import utcnow
from pointsmall.extensions import db

DEFAULT_TYPES = (
    # code, Chinese name, POINTS, MERIT
    ("task", "平台任务", 10, 10),
    ("training", "培训", 15, 15),
    ("meeting", "会议", 10, 10),
    ("party", "党群活动", 20, 20),
    ("service", "志愿服务", 20, 20),
    ("wish", "微心愿", 30, 30),
)
EXPIRY_MODES = ("never", "rolling", "annual")


class EarningRules(db.Model):
    """A community's rules: caps, approval thresholds, expiry, tiers, the platform's secret."""

    __tablename__ = "earning_rules"
    __table_args__ = (
        sa.CheckConstraint("expiry_mode IN ('never', 'rolling', 'annual')", name="expiry_known"),
        sa.CheckConstraint("bronze_at <= silver_at AND silver_at <= gold_at", name="tiers_ordered"),
    )

    community_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("communities.id"),
                                                    primary_key=True)
    daily_cap: so.Mapped[int | None]
    monthly_cap: so.Mapped[int | None]
    approval_points: so.Mapped[int] = so.mapped_column(default=5000)
    approval_people: so.Mapped[int] = so.mapped_column(default=200)
    expiry_mode: so.Mapped[str] = so.mapped_column(sa.String(8), default="never")
    expiry_months: so.Mapped[int] = so.mapped_column(default=24)
    expiry_month: so.Mapped[int] = so.mapped_column(default=3)
    expiry_day: so.Mapped[int] = so.mapped_column(default=31)
    tier_window_days: so.Mapped[int] = so.mapped_column(default=365)
    merit_per_year: so.Mapped[int] = so.mapped_column(default=20)
    bronze_at: so.Mapped[int] = so.mapped_column(default=100)
    silver_at: so.Mapped[int] = so.mapped_column(default=300)
    gold_at: so.Mapped[int] = so.mapped_column(default=600)
    platform_secret: so.Mapped[str] = so.mapped_column(sa.String(80))

    @property
    def thresholds(self) -> dict[str, int]:
        return {"bronze": self.bronze_at, "silver": self.silver_at, "gold": self.gold_at}


class ActivityType(db.Model):
    __tablename__ = "activity_types"
    __table_args__ = (
        sa.UniqueConstraint("community_id", "code"),
        sa.CheckConstraint("points >= 0 AND merit >= 0", name="amounts_not_negative"),
    )

    id: so.Mapped[int] = so.mapped_column(primary_key=True)
    community_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("communities.id"))
    code: so.Mapped[str] = so.mapped_column(sa.String(20))
    name: so.Mapped[str] = so.mapped_column(sa.String(40))
    points: so.Mapped[int]
    merit: so.Mapped[int]
    active: so.Mapped[bool] = so.mapped_column(default=True)


class Activity(db.Model):
    __tablename__ = "activities"
    __table_args__ = (
        sa.CheckConstraint("ends_at > starts_at", name="ends_after_start"),
        sa.CheckConstraint("capacity IS NULL OR capacity > 0", name="capacity_positive"),
        sa.CheckConstraint("points >= 0 AND merit >= 0", name="amounts_not_negative"),
        sa.Index("ix_activities_community_start", "community_id", "starts_at"),
        # A client's retry of a create answers the first activity (Idempotency-Key).
        sa.UniqueConstraint("community_id", "idempotency_key"),
    )

    id: so.Mapped[int] = so.mapped_column(primary_key=True)
    community_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("communities.id"))
    type_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("activity_types.id"))
    title: so.Mapped[str] = so.mapped_column(sa.String(100))
    place: so.Mapped[str] = so.mapped_column(sa.String(120), default="")
    starts_at: so.Mapped[datetime]
    ends_at: so.Mapped[datetime]
    capacity: so.Mapped[int | None]
    points: so.Mapped[int]
    merit: so.Mapped[int]
    cancelled: so.Mapped[bool] = so.mapped_column(default=False)
    created_by: so.Mapped[int | None] = so.mapped_column(sa.ForeignKey("users.id"))
    created_at: so.Mapped[datetime] = so.mapped_column(default=utcnow)
    idempotency_key: so.Mapped[str | None] = so.mapped_column(sa.String(120))

    type: so.Mapped[ActivityType] = so.relationship(lazy="joined", innerjoin=True)


class Attendance(db.Model):
    """A volunteer at an activity: signed up, checked in, or marked present by staff."""

    __tablename__ = "attendance"
    __table_args__ = (
        sa.UniqueConstraint("activity_id", "volunteer_id"),
        # Dashboards count those present at a community's activities from the index alone.
        sa.Index("ix_attendance_activity_present", "activity_id", "present"),
    )

    id: so.Mapped[int] = so.mapped_column(primary_key=True)
    activity_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("activities.id"))
    volunteer_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("volunteers.id"), index=True)
    signed_up_at: so.Mapped[datetime | None]
    present: so.Mapped[bool] = so.mapped_column(default=False)
    checked_in_at: so.Mapped[datetime | None]
    source: so.Mapped[str] = so.mapped_column(sa.String(10), default="signup")


class AwardBatch(db.Model):
    """One award request: posted at once, or waiting for a second staff member (maker-checker)."""

    __tablename__ = "award_batches"
    __table_args__ = (
        sa.CheckConstraint("status IN ('pending', 'posted', 'rejected')", name="status_known"),
        sa.CheckConstraint("approved_by IS NULL OR approved_by <> created_by",
                           name="checker_is_not_maker"),
    )

    id: so.Mapped[int] = so.mapped_column(primary_key=True)
    community_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("communities.id"), index=True)
    activity_id: so.Mapped[int | None] = so.mapped_column(sa.ForeignKey("activities.id"))
    idempotency_key: so.Mapped[str] = so.mapped_column(sa.String(120), unique=True)
    status: so.Mapped[str] = so.mapped_column(sa.String(10), default="pending")
    people: so.Mapped[int]
    requested_points: so.Mapped[int] = so.mapped_column(sa.BigInteger)
    created_by: so.Mapped[int | None] = so.mapped_column(sa.ForeignKey("users.id"))
    approved_by: so.Mapped[int | None] = so.mapped_column(sa.ForeignKey("users.id"))
    created_at: so.Mapped[datetime] = so.mapped_column(default=utcnow)
    decided_at: so.Mapped[datetime | None]


class Adjustment(db.Model):
    """A staff grant or deduction of POINTS: posted at once, or (a credit over the
    community's approval limit) waiting for a second staff member, as batches do."""

    __tablename__ = "adjustments"
    __table_args__ = (
        sa.CheckConstraint("status IN ('pending', 'posted', 'rejected')", name="status_known"),
        sa.CheckConstraint("approved_by IS NULL OR approved_by <> created_by",
                           name="checker_is_not_maker"),
        sa.UniqueConstraint("community_id", "idempotency_key"),
    )

    id: so.Mapped[int] = so.mapped_column(primary_key=True)
    community_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("communities.id"), index=True)
    volunteer_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("volunteers.id"), index=True)
    points: so.Mapped[int] = so.mapped_column(sa.BigInteger)
    reason: so.Mapped[str] = so.mapped_column(sa.String(200))
    idempotency_key: so.Mapped[str] = so.mapped_column(sa.String(160))
    status: so.Mapped[str] = so.mapped_column(sa.String(10), default="pending")
    created_by: so.Mapped[int | None] = so.mapped_column(sa.ForeignKey("users.id"))
    approved_by: so.Mapped[int | None] = so.mapped_column(sa.ForeignKey("users.id"))
    created_at: so.Mapped[datetime] = so.mapped_column(default=utcnow)
    decided_at: so.Mapped[datetime | None]
    transaction_id: so.Mapped[int | None] = so.mapped_column(
        sa.ForeignKey("ledger_transactions.id"))


class Award(db.Model):
    """What one volunteer gets from one batch; at most one per (activity, volunteer)."""

    __tablename__ = "awards"
    __table_args__ = (
        sa.UniqueConstraint("activity_id", "volunteer_id"),
        sa.CheckConstraint("points >= 0 AND merit >= 0 AND requested_points >= 0",
                           name="amounts_not_negative"),
        sa.Index("ix_awards_volunteer_at", "volunteer_id", "awarded_at"),
        sa.Index("ix_awards_community_at", "community_id", "awarded_at"),
    )

    id: so.Mapped[int] = so.mapped_column(primary_key=True)
    batch_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("award_batches.id"), index=True)
    community_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("communities.id"))
    activity_id: so.Mapped[int | None] = so.mapped_column(sa.ForeignKey("activities.id"))
    volunteer_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("volunteers.id"))
    title: so.Mapped[str] = so.mapped_column(sa.String(100), default="")
    type_code: so.Mapped[str] = so.mapped_column(sa.String(20), default="")
    requested_points: so.Mapped[int] = so.mapped_column(sa.BigInteger)
    points: so.Mapped[int] = so.mapped_column(sa.BigInteger, default=0)
    merit: so.Mapped[int] = so.mapped_column(sa.BigInteger, default=0)
    capped_by: so.Mapped[str | None] = so.mapped_column(sa.String(10))
    transaction_id: so.Mapped[int | None] = so.mapped_column(
        sa.ForeignKey("ledger_transactions.id"))
    awarded_at: so.Mapped[datetime | None]
    reversed_points: so.Mapped[int] = so.mapped_column(sa.BigInteger, default=0)
    reversed_merit: so.Mapped[int] = so.mapped_column(sa.BigInteger, default=0)
    reversal_transaction_id: so.Mapped[int | None] = so.mapped_column(
        sa.ForeignKey("ledger_transactions.id"))
    reversal_reason: so.Mapped[str] = so.mapped_column(sa.String(200), default="")


class PlatformTask(db.Model):
    """A task completion the grid platform reported; one award per (community, task id)."""

    __tablename__ = "platform_tasks"
    __table_args__ = (sa.UniqueConstraint("community_id", "task_id"),)

    id: so.Mapped[int] = so.mapped_column(primary_key=True)
    community_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("communities.id"))
    task_id: so.Mapped[str] = so.mapped_column(sa.String(64))
    body_hash: so.Mapped[str] = so.mapped_column(sa.String(64))
    award_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("awards.id"))
    received_at: so.Mapped[datetime] = so.mapped_column(default=utcnow)


class Evaluation(db.Model):
    """A frozen ranking for a period (e.g. 2026 H1); its entries never change."""

    __tablename__ = "evaluations"
    __table_args__ = (sa.UniqueConstraint("community_id", "name"),)

    id: so.Mapped[int] = so.mapped_column(primary_key=True)
    community_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("communities.id"))
    name: so.Mapped[str] = so.mapped_column(sa.String(40))
    period_start: so.Mapped[datetime]
    period_end: so.Mapped[datetime]
    thresholds: so.Mapped[dict] = so.mapped_column(sa.JSON)
    created_by: so.Mapped[int | None] = so.mapped_column(sa.ForeignKey("users.id"))
    created_at: so.Mapped[datetime] = so.mapped_column(default=utcnow)


class EvaluationEntry(db.Model):
    __tablename__ = "evaluation_entries"
    __table_args__ = (sa.UniqueConstraint("evaluation_id", "volunteer_id"),)

    id: so.Mapped[int] = so.mapped_column(primary_key=True)
    evaluation_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("evaluations.id"), index=True)
    volunteer_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("volunteers.id"))
    name: so.Mapped[str] = so.mapped_column(sa.String(40))
    grid: so.Mapped[str] = so.mapped_column(sa.String(170))
    merit: so.Mapped[int] = so.mapped_column(sa.BigInteger)
    service_bonus: so.Mapped[int]
    score: so.Mapped[int] = so.mapped_column(sa.BigInteger)
    tier: so.Mapped[str | None] = so.mapped_column(sa.String(10))
    rank: so.Mapped[int]

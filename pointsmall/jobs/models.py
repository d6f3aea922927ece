"""A background job as its owner sees it: what it does, how far it got, its file or result.

The queue itself (procrastinate's tables) only says which worker runs what; this row is
what pages read. The finished file lives here too (bytea): every app server reads the
same database, so any of them can hand the file over.
"""

from datetime import datetime

import sqlalchemy as sa
import sqlalchemy.orm as so

from ledger import utcnow
from pointsmall.extensions import db

KINDS = ("export", "import", "monthly_pdf")
STATUSES = ("queued", "running", "done", "failed")
UNFINISHED = ("queued", "running")


class BackgroundJob(db.Model):
    """One export, roster import or report PDF that runs outside the request."""

    __tablename__ = "background_jobs"
    __table_args__ = (
        sa.CheckConstraint("kind IN ('export', 'import', 'monthly_pdf')", name="kind_known"),
        sa.CheckConstraint("status IN ('queued', 'running', 'done', 'failed')",
                           name="status_known"),
        # The same request again while the first is unfinished answers the first job.
        sa.Index("ix_background_jobs_unfinished_twin", "owner_id", "twin_key", unique=True,
                 postgresql_where=sa.text("status IN ('queued', 'running')")),
    )

    id: so.Mapped[int] = so.mapped_column(primary_key=True)
    owner_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("users.id"), index=True)
    kind: so.Mapped[str] = so.mapped_column(sa.String(20))
    # What to do, in plain values (ids, days, the page language): see pointsmall.jobs.work.
    params: so.Mapped[dict] = so.mapped_column(sa.JSON)
    twin_key: so.Mapped[str] = so.mapped_column(sa.String(64))
    status: so.Mapped[str] = so.mapped_column(sa.String(10), default="queued")
    attempts: so.Mapped[int] = so.mapped_column(default=0)
    done: so.Mapped[int] = so.mapped_column(sa.BigInteger, default=0)
    # None while the size is unknown (the page then shows an open-ended bar).
    total: so.Mapped[int | None] = so.mapped_column(sa.BigInteger)
    title: so.Mapped[str] = so.mapped_column(sa.String(200), default="")
    # A roster import's file, kept until the import has run.
    upload: so.Mapped[bytes | None] = so.mapped_column(sa.LargeBinary, deferred=True)
    # What came out: a summary (an import's count or refusal), a file, or an error.
    result: so.Mapped[dict | None] = so.mapped_column(sa.JSON)
    filename: so.Mapped[str] = so.mapped_column(sa.String(200), default="")
    content_type: so.Mapped[str] = so.mapped_column(sa.String(100), default="")
    content: so.Mapped[bytes | None] = so.mapped_column(sa.LargeBinary, deferred=True)
    size: so.Mapped[int] = so.mapped_column(sa.BigInteger, default=0)
    created_at: so.Mapped[datetime] = so.mapped_column(default=utcnow)
    started_at: so.Mapped[datetime | None]
    finished_at: so.Mapped[datetime | None]
    # When the cleanup deletes the row and its file.
    expires_at: so.Mapped[datetime | None] = so.mapped_column(index=True)

    @property
    def finished(self) -> bool:
        return self.status not in UNFINISHED

    @property
    def percent(self) -> int | None:
        if self.status == "done":
            return 100
        if not self.total:
            return None
        return min(99, self.done * 100 // self.total)

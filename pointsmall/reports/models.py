"""What the last runs of `ledger verify` found: dashboards warn unless the latest was clean."""

from datetime import datetime

import sqlalchemy as sa
import sqlalchemy.orm as so

from ledger import utcnow
from pointsmall.extensions import db


class LedgerCheck(db.Model):
    """One run of `flask ledger verify`: when, what it counted, and whether it was clean."""

    __tablename__ = "ledger_checks"

    id: so.Mapped[int] = so.mapped_column(primary_key=True)
    ran_at: so.Mapped[datetime] = so.mapped_column(default=utcnow, index=True)
    ok: so.Mapped[bool]
    violations: so.Mapped[int] = so.mapped_column(default=0)
    postings: so.Mapped[int] = so.mapped_column(sa.BigInteger, default=0)
    seal: so.Mapped[str] = so.mapped_column(sa.String(64), default="")
    # The first violations, for whoever reads the warning.
    detail: so.Mapped[str] = so.mapped_column(sa.Text, default="")


def latest_check(session: so.Session) -> LedgerCheck | None:
    return session.scalar(sa.select(LedgerCheck).order_by(LedgerCheck.id.desc()).limit(1))


def record_check(session: so.Session, report) -> LedgerCheck:
    """Keep what a verify report found (the caller commits)."""
    check = LedgerCheck(ok=report.ok, violations=len(report.violations),
                        postings=report.counts.get("postings", 0), seal=report.seal or "",
                        detail="\n".join(str(v) for v in report.violations[:20]))
    session.add(check)
    session.flush()
    return check

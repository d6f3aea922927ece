"""Communities (社区) and their tree of grids (网格) and micro-grids (微网格)."""

from collections.abc import Callable
from datetime import datetime

import sqlalchemy as sa
import sqlalchemy.orm as so
from flask_babel import gettext as _

import ledger
from ledger import utcnow
from pointsmall.core.errors import NotFound, ValidationFailed
from pointsmall.extensions import db

ISSUANCE_STRIPES = 16
GRID_LEVELS = ("grid", "micro")


class Community(db.Model):
    __tablename__ = "communities"

    id: so.Mapped[int] = so.mapped_column(primary_key=True)
    name: so.Mapped[str] = so.mapped_column(sa.String(80), unique=True)
    district: so.Mapped[str] = so.mapped_column(sa.String(80), default="")
    # What one point is worth when partner merchants settle, in fen (0.01 yuan); 0: no money.
    fen_per_point: so.Mapped[int] = so.mapped_column(default=0, server_default="0")
    created_at: so.Mapped[datetime] = so.mapped_column(default=utcnow)

    def account(self, asset: str) -> str:
        """Return the address of this community's issuance account for `asset`."""
        return issuance_address(self.id, asset)


class Grid(db.Model):
    """A grid or a micro-grid of a community; micro-grids hang under a grid."""

    __tablename__ = "grids"
    __table_args__ = (
        sa.UniqueConstraint("community_id", "name"),
        sa.CheckConstraint("level IN ('grid', 'micro')", name="level_known"),
    )

    id: so.Mapped[int] = so.mapped_column(primary_key=True)
    community_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("communities.id"), index=True)
    parent_id: so.Mapped[int | None] = so.mapped_column(sa.ForeignKey("grids.id"))
    level: so.Mapped[str] = so.mapped_column(sa.String(8))
    name: so.Mapped[str] = so.mapped_column(sa.String(80))

    parent: so.Mapped["Grid | None"] = so.relationship(remote_side=[id])

    @property
    def path(self) -> str:
        return f"{self.parent.name} / {self.name}" if self.parent else self.name


def issuance_address(community_id: int, asset: str) -> str:
    return f"community:{community_id}:issuance:{asset.lower()}"


def community_scope(community_id: int) -> str:
    """Return the ledger scope of a community's volunteers' accounts (see ledger.flows)."""
    return f"community:{community_id}"


def expired_address(community_id: int) -> str:
    """Return the account expired POINTS move to."""
    return f"community:{community_id}:expired:points"


# What other features set up for a new community, in its creating transaction: earning
# registers its default rules and activity types here (people may not import earning,
# which builds on it).
WHEN_CREATED: list[Callable[[so.Session, int], object]] = []


def create_community(session: so.Session, name: str, district: str = "") -> Community:
    """Create a community and open its POINTS and MERIT issuance accounts."""
    name = (name or "").strip()
    if not name or len(name) > 80:
        raise ValidationFailed({"name": [_("A name of at most 80 characters is required.")]})
    if session.scalar(sa.select(Community.id).where(Community.name == name)):
        raise ValidationFailed({"name": [_("This name is taken.")]})
    community = Community(name=name, district=district.strip())
    session.add(community)
    session.flush()
    for asset in ("POINTS", "MERIT"):
        ledger.open_account(session, community.account(asset), asset, allow_negative=True,
                            stripes=ISSUANCE_STRIPES)
    ledger.open_account(session, expired_address(community.id), "POINTS")
    for prepare in WHEN_CREATED:
        prepare(session, community.id)
    return community


def create_grid(session: so.Session, community_id: int, name: str,
                parent_id: int | None = None) -> Grid:
    """Create a grid, or a micro-grid under `parent_id`, in a community."""
    name = (name or "").strip()
    if not name or len(name) > 80:
        raise ValidationFailed({"name": [_("A name of at most 80 characters is required.")]})
    parent = None
    if parent_id is not None:
        parent = session.get(Grid, parent_id)
        if parent is None or parent.community_id != community_id or parent.level != "grid":
            raise ValidationFailed({"parent_id": [_("Unknown grid.")]})
    if session.scalar(sa.select(Grid.id).where(Grid.community_id == community_id,
                                               Grid.name == name)):
        raise ValidationFailed({"name": [_("This name is taken.")]})
    grid = Grid(community_id=community_id, name=name, parent=parent,
                level="micro" if parent else "grid")
    session.add(grid)
    session.flush()
    return grid


def community_grids(session: so.Session, community_id: int) -> list[Grid]:
    """Return a community's grids, each grid followed by its micro-grids."""
    grids = session.scalars(
        sa.select(Grid).where(Grid.community_id == community_id).order_by(Grid.id)
    ).all()
    ordered = []
    for grid in (g for g in grids if g.parent_id is None):
        ordered.append(grid)
        ordered.extend(g for g in grids if g.parent_id == grid.id)
    return ordered


def get_community(session: so.Session, community_id: int) -> Community:
    community = session.get(Community, community_id)
    if community is None:
        raise NotFound("community")
    return community

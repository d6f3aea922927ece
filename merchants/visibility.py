"""Which merchants serve which communities."""

import sqlalchemy as sa
import sqlalchemy.orm as so

from merchants.models import Merchant, merchant_communities


def serves(community_id: int) -> sa.ColumnElement[bool]:
    """A condition on Merchant: it is active and serves `community_id`."""
    return sa.and_(Merchant.active, sa.or_(
        Merchant.community_id == community_id,
        Merchant.id.in_(sa.select(merchant_communities.c.merchant_id)
                        .where(merchant_communities.c.community_id == community_id))))


def visible_to(session: so.Session, merchant_id: int, community_id: int) -> bool:
    """Tell whether volunteers of `community_id` may see and redeem at this merchant."""
    return session.scalar(
        sa.select(Merchant.id).where(Merchant.id == merchant_id, serves(community_id))
    ) is not None

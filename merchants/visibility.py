"""Which merchants serve which communities."""

import sqlalchemy as sa

from merchants.models import Merchant, merchant_communities


def serves(community_id: int | sa.BindParameter) -> sa.ColumnElement[bool]:
    """A condition on Merchant: it is active and serves `community_id` (a value, or a bound
    parameter for a statement built once)."""
    return sa.and_(Merchant.active, sa.or_(
        Merchant.community_id == community_id,
        Merchant.id.in_(sa.select(merchant_communities.c.merchant_id)
                        .where(merchant_communities.c.community_id == community_id))))


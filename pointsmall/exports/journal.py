"""The ledger journal of a community: its accounts' postings, transaction by transaction."""

from collections.abc import Iterator

import sqlalchemy as sa
import sqlalchemy.orm as so

from ledger import Account, Posting, Transaction
from merchants.models import Merchant
from pointsmall.core.export_query import LocalTime, Period, Scope, keyset
from pointsmall.core.labels import KIND_LABELS
from pointsmall.people.models import Volunteer


def _address(prefix: str, column, suffix: str) -> sa.ColumnElement[str]:
    return sa.literal(prefix, sa.String) + sa.cast(column, sa.String) + sa.literal(suffix)


def community_accounts(community_id: int) -> sa.Select:
    """Select the ids of a community's accounts: its own (issuance, expired, ...), its
    volunteers' POINTS and MERIT and its merchants' takings and settlement accounts."""
    owned = sa.union_all(
        *(sa.select(_address("volunteer:", Volunteer.id, f":{asset}"))
          .where(Volunteer.community_id == community_id) for asset in ("points", "merit")),
        *(sa.select(_address("merchant:", Merchant.id, f":{kind}"))
          .where(Merchant.community_id == community_id) for kind in ("points", "settled")))
    return sa.select(Account.id).where(sa.or_(
        Account.address.like(f"community:{int(community_id)}:%"),
        Account.address.in_(owned)))


def _postings(scope: Scope, period: Period, *columns) -> sa.Select:
    return (sa.select(*columns)
            .join(Transaction, Transaction.id == Posting.transaction_id)
            .where(Posting.account_id.in_(community_accounts(scope.community_id)),
                   period.holds(Transaction.created_at)))


def count(session: so.Session, scope: Scope, period: Period) -> int:
    """Return how many rows `journal` yields (a background export's progress counts to it)."""
    return session.scalar(_postings(scope, period, sa.func.count()).select_from(Posting))


def journal(session: so.Session, scope: Scope, period: Period) -> Iterator[list]:
    """Yield one row per posting on the community's accounts by transactions of the period."""
    accounts = {id_: (address, stripes) for id_, address, stripes in session.execute(
        sa.select(Account.id, Account.address, Account.stripes).where(
            Account.id.in_(community_accounts(scope.community_id))))}
    query = _postings(scope, period, Posting.id, Posting.transaction_id,
                      Transaction.created_at, Transaction.kind, Transaction.memo,
                      Posting.account_id, Posting.asset_code, Posting.amount,
                      Posting.balance_after)
    local = LocalTime()
    kinds = {kind: str(label) for kind, label in KIND_LABELS.items()}
    last_moment, last_local = None, None
    for (_id, tx_id, moment, kind, memo, account_id, asset, amount,
         balance_after) in keyset(session, query):
        if moment != last_moment:  # a transaction's postings share its moment
            last_moment, last_local = moment, local(moment)
        address, stripes = accounts.get(account_id, ("", 1))
        # A striped (issuance) account keeps one balance per stripe: a posting knows only
        # its stripe's, which is not the account's, so the cell stays empty.
        yield [tx_id, last_local, kinds.get(kind, kind), memo, address, asset, amount,
               balance_after if stripes == 1 else None]

"""Assets and accounts: define them, open them, look them up."""

import sqlalchemy as sa
import sqlalchemy.orm as so

from ledger import chain
from ledger.errors import AccountConflict, InvalidTransaction, UnknownAccount, UnknownAsset
from ledger.models import Account, Asset, Balance

MAX_STRIPES = 64


def define_asset(session: so.Session, code: str, name: str) -> Asset:
    """Create the asset `code` if it is new; return it."""
    asset = session.get(Asset, code)
    if asset is None:
        asset = Asset(code=code, name=name)
        session.add(asset)
        session.flush()
    return asset


def open_account(session: so.Session, address: str, asset: str, *, allow_negative: bool = False,
                 stripes: int = 1) -> Account:
    """Open the account at `address` (idempotent); refuse one that exists with other settings."""
    if not isinstance(address, str) or not address or len(address) > 200:
        raise InvalidTransaction("an account address is a non-empty text of at most 200 chars")
    if not isinstance(stripes, int) or isinstance(stripes, bool) or not 1 <= stripes <= MAX_STRIPES:
        raise InvalidTransaction(f"stripes must be a whole number from 1 to {MAX_STRIPES}")
    if stripes > 1 and not allow_negative:
        raise InvalidTransaction("only accounts that may go negative can be striped")
    existing = session.scalar(sa.select(Account).where(Account.address == address))
    if existing is not None:
        if (existing.asset_code, existing.allow_negative, existing.stripes) != (
            asset, allow_negative, stripes
        ):
            raise AccountConflict(address)
        return existing
    if session.get(Asset, asset) is None:
        raise UnknownAsset(asset)
    account = Account(address=address, asset_code=asset, allow_negative=allow_negative,
                      stripes=stripes)
    session.add(account)
    session.flush()
    for stripe in range(stripes):
        balance = Balance(account_id=account.id, stripe=stripe, allow_negative=allow_negative,
                          posted=0, pending=0, seq=0, head_hash="")
        session.add(balance)
    session.flush()
    for balance in session.scalars(sa.select(Balance).where(Balance.account_id == account.id)):
        balance.head_hash = chain.genesis_hash(balance.id)
    session.flush()
    return account


def get_account(session: so.Session, address: str) -> Account:
    """Return the account at `address` or raise UnknownAccount."""
    account = session.scalar(sa.select(Account).where(Account.address == address))
    if account is None:
        raise UnknownAccount(address)
    return account


def get_accounts(session: so.Session, addresses: list[str]) -> dict[str, Account]:
    """Return the accounts at `addresses` by address, or raise UnknownAccount for a missing one."""
    found = {
        a.address: a
        for a in session.scalars(sa.select(Account).where(Account.address.in_(set(addresses))))
    }
    for address in addresses:
        if address not in found:
            raise UnknownAccount(address)
    return found

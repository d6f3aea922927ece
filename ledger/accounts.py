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
                 stripes: int = 1, scope: str | None = None) -> Account:
    """Open the account at `address` (idempotent); refuse one that exists with other settings.

    `scope` labels the account for the daily flows reports sum (see ledger.flows).
    """
    if not isinstance(address, str) or not address or len(address) > 200:
        raise InvalidTransaction("an account address is a non-empty text of at most 200 chars")
    if not isinstance(stripes, int) or isinstance(stripes, bool) or not 1 <= stripes <= MAX_STRIPES:
        raise InvalidTransaction(f"stripes must be a whole number from 1 to {MAX_STRIPES}")
    if stripes > 1 and not allow_negative:
        raise InvalidTransaction("only accounts that may go negative can be striped")
    _check_scope(scope)
    existing = session.scalar(sa.select(Account).where(Account.address == address))
    if existing is not None:
        if (existing.asset_code, existing.allow_negative, existing.stripes, existing.scope) != (
            asset, allow_negative, stripes, scope
        ):
            raise AccountConflict(address)
        return existing
    if session.get(Asset, asset) is None:
        raise UnknownAsset(asset)
    account = Account(address=address, asset_code=asset, allow_negative=allow_negative,
                      stripes=stripes, scope=scope)
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


def open_accounts(session: so.Session, wanted: list[tuple[str, str]], *,
                  scope: str | None = None) -> dict[str, int]:
    """Open many plain accounts, given as (address, asset), in a few statements (bulk imports).

    Like `open_account` with its defaults (one stripe, no overdraft) and `scope` for each;
    return the account id of every address.
    """
    _check_scope(scope)
    for address, _asset in wanted:
        if not isinstance(address, str) or not address or len(address) > 200:
            raise InvalidTransaction("an account address is a non-empty text of at most 200 chars")
    for asset in {asset for _address, asset in wanted}:
        if session.get(Asset, asset) is None:
            raise UnknownAsset(asset)
    wanted_assets = dict(wanted)
    addresses = list(wanted_assets)
    ids: dict[str, int] = {}
    for address, account in _rows_where_in(session, Account.address, Account, addresses):
        if (account.asset_code, account.allow_negative, account.stripes, account.scope) != (
            wanted_assets[address], False, 1, scope
        ):
            raise AccountConflict(address)
        ids[address] = account.id
    new = [address for address in addresses if address not in ids]
    if not new:
        return ids
    session.flush()
    # Plain executemany statements, then one read of the new ids: the unit of work, or
    # inserts with RETURNING, take seconds for thousands of rows.
    session.execute(sa.insert(Account), [
        {"address": a, "asset_code": wanted_assets[a], "allow_negative": False, "stripes": 1,
         "scope": scope}
        for a in new])
    created = dict(_rows_where_in(session, Account.address, Account.id, new))
    session.execute(sa.insert(Balance), [
        {"account_id": account_id, "stripe": 0, "allow_negative": False, "posted": 0,
         "pending": 0, "seq": 0, "head_hash": ""} for account_id in created.values()])
    balance_ids = [balance_id for _account_id, balance_id in
                   _rows_where_in(session, Balance.account_id, Balance.id, created.values())]
    session.execute(sa.update(Balance), [
        {"id": balance_id, "head_hash": chain.genesis_hash(balance_id)}
        for balance_id in balance_ids])
    ids.update(created)
    return ids


def _check_scope(scope: object) -> None:
    if scope is not None and (not isinstance(scope, str) or not scope or len(scope) > 60):
        raise InvalidTransaction("a scope is a non-empty text of at most 60 chars, or None")


def _rows_where_in(session: so.Session, key, value, keys, chunk: int = 500) -> list[tuple]:
    """Return (key, value) of the rows whose `key` is one of `keys`, a chunk at a time."""
    keys = list(keys)
    return [tuple(row) for start in range(0, len(keys), chunk)
            for row in session.execute(sa.select(key, value)
                                       .where(key.in_(keys[start:start + chunk])))]


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


def lock_account(session: so.Session, address: str) -> Account:
    """Lock every balance row of an account, in id order, until the transaction ends.

    For callers that must read a balance and then write on the strength of it (expiry:
    what is old and unspent) without anyone spending in between.
    """
    account = get_account(session, address)
    session.execute(
        sa.select(Balance.id).where(Balance.account_id == account.id).order_by(Balance.id)
        .with_for_update(key_share=True))
    return account

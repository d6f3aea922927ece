"""Opening many accounts at once (bulk imports) gives what opening each one gives."""

import pytest
import sqlalchemy as sa

import ledger
from ledger.models import Balance


def test_bulk_opened_accounts_hold_nothing_and_verify(session):
    wanted = [(f"volunteer:bulk{n}:{asset.lower()}", asset)
              for n in range(3) for asset in ("POINTS", "MERIT")]

    ids = ledger.open_accounts(session, wanted)

    assert sorted(ids) == sorted(address for address, _ in wanted)
    for address, asset in wanted:
        account = ledger.get_account(session, address)
        assert (account.id, account.asset_code, account.allow_negative, account.stripes) == (
            ids[address], asset, False, 1)
        assert ledger.balance(session, address).posted == 0
    assert ledger.verify(session).ok


def test_bulk_opened_accounts_can_receive_and_spend(session, make_account):
    issuer = make_account(allow_negative=True)
    [address] = ledger.open_accounts(session, [("volunteer:bulk9:points", "POINTS")])

    ledger.move(session, issuer, address, 30, key="bulk:award", kind="award")
    ledger.move(session, address, issuer, 10, key="bulk:spend", kind="spend")

    assert ledger.balance(session, address).posted == 20
    assert ledger.verify(session).ok


def test_opening_again_returns_the_same_accounts(session):
    first = ledger.open_accounts(session, [("volunteer:bulk7:points", "POINTS")])
    single = ledger.open_account(session, "volunteer:bulk8:points", "POINTS")

    again = ledger.open_accounts(session, [("volunteer:bulk7:points", "POINTS"),
                                           ("volunteer:bulk8:points", "POINTS")])

    assert again == {**first, "volunteer:bulk8:points": single.id}
    assert session.scalar(sa.select(sa.func.count()).select_from(Balance)
                          .where(Balance.account_id.in_(again.values()))) == 2


def test_an_existing_account_of_another_asset_is_a_conflict(session):
    ledger.open_account(session, "volunteer:bulk6:points", "POINTS")

    with pytest.raises(ledger.AccountConflict):
        ledger.open_accounts(session, [("volunteer:bulk6:points", "MERIT")])


def test_an_unknown_asset_is_refused(session):
    with pytest.raises(ledger.UnknownAsset):
        ledger.open_accounts(session, [("volunteer:bulk5:gold", "GOLD")])

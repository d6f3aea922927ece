import ledger


def test_a_funded_account_shows_its_balance_and_verify_is_clean(session, make_account):
    volunteer = make_account(points=500)
    assert ledger.balance(session, volunteer).available == 500
    assert ledger.verify(session).ok

"""Reads: balances and an account's history, newest first, page by page."""

import uuid

import pytest

import ledger


def key():
    return f"test:{uuid.uuid4().hex}"


def all_history(session, address, limit):
    """Walk every page of an account's history; return the pages' entries."""
    pages, cursor = [], None
    while True:
        page = ledger.history(session, address, limit=limit, before=cursor)
        pages.append(page.entries)
        if page.next_cursor is None:
            return pages
        assert page.next_cursor == page.entries[-1].posting_id
        cursor = page.next_cursor


def test_the_balance_shows_posted_pending_and_available(session, make_account):
    volunteer, merchant = make_account(points=100), make_account()
    ledger.hold(session, volunteer, merchant, 30, key=key(), kind="redemption")

    b = ledger.balance(session, volunteer)

    assert (b.address, b.asset, b.posted, b.pending, b.available) == (
        volunteer, "POINTS", 100, 30, 70)


def test_a_new_account_has_nothing(session, make_account):
    volunteer = make_account()
    assert ledger.balance(session, volunteer) == ledger.AccountBalance(volunteer, "POINTS", 0, 0)


def test_the_balance_of_an_unknown_account_is_refused(session):
    with pytest.raises(ledger.UnknownAccount):
        ledger.balance(session, "volunteer:nobody:points")


def test_the_balance_of_a_striped_account_adds_up_its_stripes(session, make_account):
    issuance = make_account(f"community:{uuid.uuid4().hex[:6]}:issuance:points",
                            allow_negative=True, stripes=8)
    volunteers = [make_account() for _ in range(12)]
    for n, volunteer in enumerate(volunteers, start=1):
        ledger.move(session, issuance, volunteer, n, key=key(), kind="award")

    assert ledger.balance(session, issuance).posted == -sum(range(1, 13))


def test_balances_of_several_accounts_leave_unknown_ones_out(session, make_account):
    a, b = make_account(points=10), make_account(points=20, asset="MERIT")

    found = ledger.balances(session, [a, b, "volunteer:nobody:points"])

    assert found == {a: ledger.AccountBalance(a, "POINTS", 10, 0),
                     b: ledger.AccountBalance(b, "MERIT", 20, 0)}


def test_history_lists_postings_newest_first_with_the_balance_after_each(session,
                                                                         make_account):
    volunteer, merchant = make_account(points=100), make_account()
    ledger.move(session, volunteer, merchant, 30, key=key(), kind="redemption", memo="面条")
    held = ledger.hold(session, volunteer, merchant, 20, key=key(), kind="redemption")
    ledger.post_hold(session, held.id, key=key(), amount=15)
    refund = ledger.move(session, merchant, volunteer, 5, key=key(), kind="refund")

    page = ledger.history(session, volunteer)

    assert [(e.kind, e.amount, e.balance_after) for e in page.entries] == [
        ("refund", 5, 60), ("redemption", -15, 55), ("redemption", -30, 70), ("award", 100, 100),
    ]
    assert page.entries[0].transaction_id == refund.id
    assert page.entries[2].memo == "面条"
    assert page.next_cursor is None


def test_history_shows_a_reversal_pointing_at_what_it_reversed(session, make_account):
    volunteer, merchant = make_account(points=100), make_account()
    original = ledger.move(session, volunteer, merchant, 30, key=key(), kind="redemption")
    ledger.reverse(session, original.id, key=key())

    newest = ledger.history(session, volunteer, limit=1).entries[0]

    assert (newest.kind, newest.amount, newest.balance_after, newest.reverses_id) == (
        "reversal", 30, 100, original.id)


def test_history_pages_through_every_posting_once_without_gaps(session, make_account):
    volunteer, merchant = make_account(points=1000), make_account()
    for n in range(1, 24):
        ledger.move(session, volunteer, merchant, n, key=key(), kind="redemption")

    pages = all_history(session, volunteer, limit=5)

    assert [len(p) for p in pages] == [5, 5, 5, 5, 4]
    entries = [e for page in pages for e in page]
    ids = [e.posting_id for e in entries]
    assert ids == sorted(ids, reverse=True)
    assert len(set(ids)) == 24
    assert [e.amount for e in entries] == [-n for n in range(23, 0, -1)] + [1000]
    for newer, older in zip(entries, entries[1:], strict=False):
        assert newer.balance_after - newer.amount == older.balance_after
    assert entries[0].balance_after == ledger.balance(session, volunteer).posted == 1000 - 276


def test_a_history_page_that_ends_exactly_at_the_oldest_posting_has_no_next_cursor(
        session, make_account):
    volunteer, merchant = make_account(points=100), make_account()
    for _ in range(3):
        ledger.move(session, volunteer, merchant, 1, key=key(), kind="redemption")

    pages = all_history(session, volunteer, limit=2)

    assert [len(p) for p in pages] == [2, 2]


def test_the_history_of_an_account_without_postings_is_empty(session, make_account):
    page = ledger.history(session, make_account())
    assert (page.entries, page.next_cursor) == ([], None)


def test_the_history_of_one_account_shows_none_of_anothers(session, make_account):
    a, b, c = make_account(points=50), make_account(points=60), make_account()
    ledger.move(session, b, c, 10, key=key(), kind="transfer")

    assert [e.amount for e in ledger.history(session, a).entries] == [50]


def test_the_history_of_a_striped_account_carries_the_accounts_running_total(session,
                                                                             make_account):
    issuance = make_account(f"test:{uuid.uuid4().hex[:8]}:issuance:points", allow_negative=True,
                            stripes=4)
    volunteers = [make_account() for _ in range(5)]
    for round_ in range(4):
        for n, volunteer in enumerate(volunteers, start=1):
            ledger.move(session, issuance, volunteer, n + round_, key=key(), kind="award")
        # Some points come back to the issuance account.
        ledger.move(session, volunteers[round_], issuance, 1, key=key(), kind="expiry")

    entries = [e for page in all_history(session, issuance, limit=7) for e in page]

    assert len(entries) == 24
    assert entries[0].balance_after == ledger.balance(session, issuance).posted
    for newer, older in zip(entries, entries[1:], strict=False):
        assert newer.balance_after - newer.amount == older.balance_after
    assert entries[-1].balance_after == entries[-1].amount
    assert ledger.verify(session).ok


@pytest.mark.parametrize("before", ["x", "12", 2.5, True])
def test_history_refuses_a_cursor_that_is_not_a_posting_id(session, make_account, before):
    volunteer = make_account(points=1)

    with pytest.raises(ValueError):
        ledger.history(session, volunteer, before=before)

    assert [e.amount for e in ledger.history(session, volunteer).entries] == [1]


@pytest.mark.parametrize("limit", [0, 501, -1, 2.5, "10", True])
def test_history_refuses_a_page_size_out_of_range(session, make_account, limit):
    with pytest.raises(ValueError):
        ledger.history(session, make_account(points=1), limit=limit)


def test_the_history_of_an_unknown_account_is_refused(session):
    with pytest.raises(ledger.UnknownAccount):
        ledger.history(session, "volunteer:nobody:points")

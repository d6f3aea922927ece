"""Tampering: the database refuses edits of ledger rows, and verify names any edit made anyway.

To tamper, a test switches off the append-only triggers inside its own transaction (ALTER
TABLE ... DISABLE TRIGGER), which is rolled back with the test, as everything else is.
"""

import secrets
import uuid

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import DBAPIError

import ledger
from ledger import Balance, Hold, Posting, Transaction


def key():
    return f"test:{uuid.uuid4().hex}"


def remove_guards(session, table):
    """Switch off the append-only triggers of `table` for the rest of the test's transaction."""
    session.execute(sa.text(f"ALTER TABLE {table} DISABLE TRIGGER USER"))


def violations(session):
    session.expire_all()
    return {(v.table, v.row_id) for v in ledger.verify(session).violations}


def run_verify(app):
    return app.test_cli_runner().invoke(args=["ledger", "verify"])


@pytest.fixture
def history(session, make_account):
    """A volunteer who earned, spent twice and holds points; verify is clean."""
    volunteer, merchant = make_account(points=100), make_account()
    spends = [ledger.move(session, volunteer, merchant, n, key=key(), kind="redemption")
              for n in (10, 20)]
    ledger.hold(session, volunteer, merchant, 5, key=key(), kind="redemption")
    assert ledger.verify(session).ok
    return volunteer, merchant, spends


def postings_of(session, tx, address):
    account = ledger.get_account(session, address)
    return session.scalars(
        sa.select(Posting).where(Posting.transaction_id == tx.id,
                                 Posting.account_id == account.id)
    ).one()


def balance_row(session, address):
    account = ledger.get_account(session, address)
    return session.scalars(sa.select(Balance).where(Balance.account_id == account.id)).one()


# The database refuses edits.

@pytest.mark.parametrize("statement", [
    "UPDATE ledger_postings SET amount = amount + 1",
    "DELETE FROM ledger_postings",
    "UPDATE ledger_transactions SET memo = 'edited'",
    "DELETE FROM ledger_transactions",
    "UPDATE ledger_accounts SET allow_negative = true",
    "DELETE FROM ledger_accounts",
    "DELETE FROM ledger_balances",
    "UPDATE ledger_balances SET seq = seq - 1",
    "UPDATE ledger_balances SET allow_negative = true",
])
def test_the_database_refuses_to_update_or_delete_ledger_rows(session, history, statement):
    counts_before = (session.scalar(sa.select(sa.func.count(Posting.id))),
                     session.scalar(sa.select(sa.func.count(Transaction.id))))

    with pytest.raises(DBAPIError, match="append-only|keeps its account"), \
            session.begin_nested():
        session.execute(sa.text(statement))

    assert (session.scalar(sa.select(sa.func.count(Posting.id))),
            session.scalar(sa.select(sa.func.count(Transaction.id)))) == counts_before
    assert ledger.verify(session).ok


def test_the_database_refuses_to_change_a_resolved_hold(session, history):
    volunteer, merchant, _ = history
    held = ledger.hold(session, volunteer, merchant, 5, key=key(), kind="redemption")
    ledger.void_hold(session, held.id, key=key())

    with pytest.raises(DBAPIError, match="from open to resolved"), session.begin_nested():
        session.execute(sa.update(Hold).where(Hold.id == held.id).values(status="open"))

    session.expire_all()
    assert ledger.get_hold(session, held.id).status == "voided"


@pytest.mark.parametrize("table", ["ledger_postings", "ledger_transactions", "ledger_balances"])
def test_postgresql_refuses_to_truncate_ledger_tables(session, table):
    with pytest.raises(DBAPIError, match="append-only"), session.begin_nested():
        session.execute(sa.text(f"TRUNCATE {table} CASCADE"))


# Verify names every edit made anyway.

def test_a_changed_posting_amount_is_named_by_verify_and_the_cli(session, app, history):
    volunteer, _, (spend, _) = history
    posting = postings_of(session, spend, volunteer)
    remove_guards(session, "ledger_postings")

    session.execute(sa.update(Posting).where(Posting.id == posting.id)
                    .values(amount=posting.amount - 5))

    assert ("ledger_postings", posting.id) in violations(session)
    assert ("ledger_transactions", spend.id) in violations(session)
    result = run_verify(app)
    assert result.exit_code == 1
    assert f"ledger_postings id={posting.id}" in result.output


def test_a_changed_amount_with_its_twin_and_cached_totals_patched_is_still_found(
        session, app, history):
    volunteer, merchant, (spend, _) = history
    # A careful forger keeps the transaction balanced and the cached totals right.
    taken = postings_of(session, spend, volunteer)
    given = postings_of(session, spend, merchant)
    remove_guards(session, "ledger_postings")
    session.execute(sa.update(Posting).where(Posting.id == taken.id).values(amount=-1))
    session.execute(sa.update(Posting).where(Posting.id == given.id).values(amount=1))
    for address, delta in ((volunteer, 9), (merchant, -9)):
        row = balance_row(session, address)
        session.execute(sa.update(Balance).where(Balance.id == row.id)
                        .values(posted=row.posted + delta))

    found = violations(session)

    assert ("ledger_postings", taken.id) in found
    assert ("ledger_postings", given.id) in found
    result = run_verify(app)
    assert result.exit_code == 1
    assert f"ledger_postings id={taken.id}" in result.output


def test_a_deleted_posting_is_named_by_verify_and_the_cli(session, app, history):
    volunteer, _, (spend, later) = history
    posting = postings_of(session, spend, volunteer)
    next_posting = postings_of(session, later, volunteer)
    remove_guards(session, "ledger_postings")

    session.execute(sa.delete(Posting).where(Posting.id == posting.id))

    found = violations(session)
    assert ("ledger_transactions", spend.id) in found  # now one-sided
    assert ("ledger_postings", next_posting.id) in found  # its chain has a gap
    assert ("ledger_balances", balance_row(session, volunteer).id) in found
    result = run_verify(app)
    assert result.exit_code == 1
    assert f"ledger_transactions id={spend.id}" in result.output
    assert f"ledger_postings id={next_posting.id}" in result.output


def test_a_deleted_whole_transaction_is_found_from_the_chain(session, app, history):
    volunteer, merchant, (spend, _) = history
    remove_guards(session, "ledger_postings")
    remove_guards(session, "ledger_transactions")
    # The forger also patches the cached totals so the sums still agree.
    for address, delta in ((volunteer, -10), (merchant, 10)):
        row = balance_row(session, address)
        session.execute(sa.update(Balance).where(Balance.id == row.id)
                        .values(posted=row.posted + delta, seq=row.seq))
    session.execute(sa.delete(Posting).where(Posting.transaction_id == spend.id))
    session.execute(sa.delete(Transaction).where(Transaction.id == spend.id))

    found = violations(session)

    assert any(table == "ledger_postings" for table, _ in found)
    assert run_verify(app).exit_code == 1


@pytest.mark.parametrize("column", ["posted", "pending"])
def test_an_edited_cached_balance_is_named_by_verify_and_the_cli(session, app, history,
                                                                   column):
    volunteer, _, _ = history
    row = balance_row(session, volunteer)
    # The triggers allow the cached amounts to change (every write does); verify must not.
    session.execute(sa.update(Balance).where(Balance.id == row.id)
                    .values({column: getattr(row, column) + 7}))

    assert ("ledger_balances", row.id) in violations(session)
    result = run_verify(app)
    assert result.exit_code == 1
    assert f"ledger_balances id={row.id}" in result.output


def test_an_edited_transaction_memo_is_named_by_verify_and_the_cli(session, app, history):
    _, _, (spend, _) = history
    remove_guards(session, "ledger_transactions")

    session.execute(sa.update(Transaction).where(Transaction.id == spend.id)
                    .values(memo="兑换 大米 x100"))

    assert violations(session) == {("ledger_transactions", spend.id)}
    result = run_verify(app)
    assert result.exit_code == 1
    assert f"ledger_transactions id={spend.id}" in result.output


def test_edited_transaction_metadata_is_named_by_verify(session, history):
    _, _, (spend, _) = history
    remove_guards(session, "ledger_transactions")

    session.execute(sa.update(Transaction).where(Transaction.id == spend.id)
                    .values(meta={"redemption_id": 999}))

    assert violations(session) == {("ledger_transactions", spend.id)}


def test_a_forged_balanced_transaction_with_consistent_totals_is_named_by_its_hashes(
        session, app, history, make_account):
    volunteer, _, _ = history
    issuance = ledger.get_account(session, "community:test:issuance:points")
    account = ledger.get_account(session, volunteer)
    victim_row = balance_row(session, volunteer)
    source_row = session.scalars(sa.select(Balance).where(
        Balance.account_id == issuance.id, Balance.stripe == 0)).one()
    # Inserting rows needs no trigger to be switched off: the chain alone must catch it.
    forged = Transaction(idempotency_key=key(), request_hash="0" * 64, kind="award", memo="",
                         meta={}, hash=secrets.token_hex(32))
    session.add(forged)
    session.flush()
    ids = []
    for row, account_id, amount in ((source_row, issuance.id, -1000),
                                    (victim_row, account.id, 1000)):
        posting = Posting(transaction_id=forged.id, account_id=account_id, balance_id=row.id,
                          asset_code="POINTS", amount=amount, seq=row.seq + 1,
                          balance_after=row.posted + amount, hash=secrets.token_hex(32))
        session.add(posting)
        session.flush()
        ids.append(posting.id)
        session.execute(sa.update(Balance).where(Balance.id == row.id).values(
            posted=row.posted + amount, seq=row.seq + 1, head_hash=posting.hash))

    found = violations(session)

    assert ("ledger_transactions", forged.id) in found
    assert {("ledger_postings", i) for i in ids} <= found
    assert ledger.balance(session, volunteer).posted == 1070  # the forgery "worked" ...
    result = run_verify(app)  # ... and verify says so
    assert result.exit_code == 1
    assert f"ledger_postings id={ids[1]}" in result.output


def test_a_hold_released_without_giving_back_its_pending_amount_is_named(session, history):
    volunteer, merchant, _ = history
    held = ledger.hold(session, volunteer, merchant, 5, key=key(), kind="redemption")

    session.execute(sa.update(Hold).where(Hold.id == held.id).values(status="voided"))

    assert ("ledger_balances", balance_row(session, volunteer).id) in violations(session)


def test_a_clean_ledger_passes_the_cli_with_the_counts(session, app, history):
    result = run_verify(app)

    assert result.exit_code == 0, result.output
    transactions = session.scalar(sa.select(sa.func.count(Transaction.id)))
    postings = session.scalar(sa.select(sa.func.count(Posting.id)))
    assert f"{transactions} transactions" in result.output
    assert f"{postings} postings" in result.output
    assert "no violations" in result.output
    assert "VIOLATION" not in result.output

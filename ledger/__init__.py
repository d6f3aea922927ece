"""Double-entry points ledger: accounts, balanced transactions, holds, reversals, verify.

SQLAlchemy 2.x only; every function takes a session, flushes and never commits.
"""

from ledger.accounts import (
    define_asset,
    get_account,
    lock_account,
    open_account,
    open_accounts,
)
from ledger.batch import TransferRequest, transfer_many
from ledger.db import configure_engine, is_retryable, run_in_transaction
from ledger.errors import *  # noqa: F403
from ledger.flows import DayFlow
from ledger.holds import expire_holds, find_hold, get_hold, hold, post_hold, void_hold
from ledger.models import (
    MAX_AMOUNT,
    Account,
    Balance,
    Base,
    Flow,
    Hold,
    Posting,
    Transaction,
)
from ledger.reads import AccountBalance, HistoryEntry, HistoryPage, balance, balances, history
from ledger.transfers import move, reverse, transfer
from ledger.verify import Report, Violation, verify
from ledger.writes import Leg

__all__ = [
    "MAX_AMOUNT", "Account", "AccountBalance", "Balance", "Base", "DayFlow", "Flow",
    "HistoryEntry", "HistoryPage",
    "Hold", "Leg", "Posting", "Report", "Transaction", "TransferRequest", "Violation",
    "balance", "balances", "transfer_many",
    "configure_engine", "define_asset", "expire_holds", "find_hold", "get_account", "get_hold",
    "history", "hold", "is_retryable", "lock_account", "move", "open_account", "open_accounts",
    "post_hold", "reverse", "run_in_transaction", "transfer", "verify", "void_hold",
]

"""Double-entry points ledger: accounts, balanced transactions, holds, reversals, verify.

SQLAlchemy 2.x on PostgreSQL; every function takes a session, flushes and never commits.
This module is the ledger's whole public API: nothing outside the package imports its
modules (an import-linter contract checks it).
"""

from ledger.accounts import (
    define_asset,
    get_account,
    lock_account,
    open_account,
    open_accounts,
)
from ledger.batch import TransferRequest, transfer_many
from ledger.chain import request_hash
from ledger.clock import utcnow
from ledger.db import is_retryable, run_in_transaction
from ledger.errors import *  # noqa: F403
from ledger.flows import DEFAULT_ZONE, DayFlow, period_index
from ledger.flows import daily as daily_flows
from ledger.flows import periods as period_flows
from ledger.flows import rebuild as rebuild_flows
from ledger.flows import set_zone as set_flow_zone
from ledger.flows import zone as flow_zone
from ledger.holds import (
    expire_holds,
    find_hold,
    get_hold,
    hold,
    post_hold,
    void_hold,
    void_holds,
)
from ledger.models import (
    KEY_LEN,
    MAX_AMOUNT,
    REQUEST_KEY_LEN,
    Account,
    Asset,
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
from ledger.writes import Leg, attach, check_key

__all__ = [
    "DEFAULT_ZONE", "KEY_LEN", "MAX_AMOUNT", "REQUEST_KEY_LEN",
    "Account", "AccountBalance", "Asset", "Balance", "Base", "DayFlow", "Flow", "HistoryEntry",
    "HistoryPage", "Hold", "Leg", "Posting", "Report", "Transaction",
    "TransferRequest", "Violation", "attach", "balance", "balances", "check_key", "daily_flows",
    "define_asset", "expire_holds", "find_hold", "flow_zone", "get_account", "get_hold", "history",
    "hold", "is_retryable", "lock_account", "move", "open_account", "open_accounts",
    "period_flows", "period_index", "post_hold", "rebuild_flows", "request_hash", "reverse",
    "run_in_transaction", "set_flow_zone", "transfer", "transfer_many", "utcnow", "verify",
    "void_hold", "void_holds",
]

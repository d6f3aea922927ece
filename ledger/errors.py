"""Domain errors of the ledger; each carries the keys it concerns."""


class LedgerError(Exception):
    """Base of every refusal the ledger makes; nothing was written when one is raised."""

    code = "ledger_error"

    def __init__(self, message: str, **details):
        super().__init__(message)
        self.message = message
        self.details = details


class InvalidAmount(LedgerError):
    code = "invalid_amount"

    def __init__(self, amount, reason: str):
        super().__init__(f"invalid amount {amount!r}: {reason}", amount=repr(amount), reason=reason)


class UnknownAccount(LedgerError):
    code = "unknown_account"

    def __init__(self, address: str):
        super().__init__(f"no ledger account {address!r}", address=address)
        self.address = address


class UnknownAsset(LedgerError):
    code = "unknown_asset"

    def __init__(self, asset: str):
        super().__init__(f"no asset {asset!r}", asset=asset)


class AccountConflict(LedgerError):
    code = "account_conflict"

    def __init__(self, address: str):
        super().__init__(f"account {address!r} exists with other settings", address=address)


class AssetMismatch(LedgerError):
    code = "asset_mismatch"

    def __init__(self, address: str, account_asset: str, asset: str):
        super().__init__(
            f"account {address!r} holds {account_asset}, not {asset}",
            address=address, account_asset=account_asset, asset=asset,
        )


class UnbalancedTransaction(LedgerError):
    code = "unbalanced"

    def __init__(self, asset: str, total: int):
        super().__init__(f"postings of {asset} sum to {total}, not 0", asset=asset, total=total)


class InvalidTransaction(LedgerError):
    code = "invalid_transaction"


class InsufficientFunds(LedgerError):
    code = "insufficient_funds"

    def __init__(self, address: str, needed: int, available: int):
        super().__init__(
            f"account {address!r} has {available} available, {needed} needed",
            address=address, needed=needed, available=available,
        )
        self.address = address
        self.needed = needed
        self.available = available


class IdempotencyConflict(LedgerError):
    code = "idempotency_conflict"

    def __init__(self, key: str):
        super().__init__(f"idempotency key {key!r} was used for another request", key=key)
        self.key = key


class UnknownTransaction(LedgerError):
    code = "unknown_transaction"

    def __init__(self, transaction_id):
        super().__init__(f"no transaction {transaction_id!r}", transaction_id=transaction_id)


class AlreadyReversed(LedgerError):
    code = "already_reversed"

    def __init__(self, transaction_id: int, reversal_id: int):
        super().__init__(
            f"transaction {transaction_id} was already reversed by {reversal_id}",
            transaction_id=transaction_id, reversal_id=reversal_id,
        )


class CannotReverseReversal(LedgerError):
    code = "cannot_reverse_reversal"

    def __init__(self, transaction_id: int):
        super().__init__(
            f"transaction {transaction_id} is a reversal; post a new transaction instead",
            transaction_id=transaction_id,
        )


class UnknownHold(LedgerError):
    code = "unknown_hold"

    def __init__(self, hold_id):
        super().__init__(f"no hold {hold_id!r}", hold_id=hold_id)


class HoldNotOpen(LedgerError):
    """The hold was already resolved; subclasses say how."""

    code = "hold_not_open"
    status = ""

    def __init__(self, hold_id: int):
        super().__init__(f"hold {hold_id} is already {self.status}", hold_id=hold_id)
        self.hold_id = hold_id


class HoldAlreadyPosted(HoldNotOpen):
    code = "hold_already_posted"
    status = "posted"


class HoldAlreadyVoided(HoldNotOpen):
    code = "hold_already_voided"
    status = "voided"


class HoldExpired(HoldNotOpen):
    code = "hold_expired"
    status = "expired"


class HoldAmountExceeded(LedgerError):
    code = "hold_amount_exceeded"

    def __init__(self, hold_id: int, held: int, requested: int):
        super().__init__(
            f"hold {hold_id} reserves {held}; cannot post {requested}",
            hold_id=hold_id, held=held, requested=requested,
        )

"""Refusals of the marketplace; each carries a stable code the app turns into a message."""

from ledger import REQUEST_KEY_LEN


class MarketError(Exception):
    """Base of every marketplace refusal; nothing was written when one is raised."""

    code = "market_error"
    status = 422

    def __init__(self, message: str, **details):
        super().__init__(message)
        self.message = message
        self.details = details


class UnknownItem(MarketError):
    code = "unknown_item"
    status = 404

    def __init__(self, item_id):
        super().__init__(f"no item {item_id!r}", item_id=item_id)


class ItemUnavailable(MarketError):
    """Inactive, not approved, not yet valid or no longer valid."""

    code = "item_unavailable"

    def __init__(self, item_id: int, reason: str):
        super().__init__(f"item {item_id} cannot be redeemed: {reason}", item_id=item_id,
                         reason=reason)
        self.reason = reason


class OutOfStock(MarketError):
    code = "out_of_stock"

    def __init__(self, item_id: int, wanted: int, left: int):
        super().__init__(f"item {item_id} has {left} left, {wanted} wanted", item_id=item_id,
                         wanted=wanted, left=left)


class OverPersonalLimit(MarketError):
    code = "over_personal_limit"

    def __init__(self, item_id: int, limit: int, taken: int):
        super().__init__(f"at most {limit} of item {item_id} a month; {taken} taken already",
                         item_id=item_id, limit=limit, taken=taken)


class TierTooLow(MarketError):
    code = "tier_too_low"

    def __init__(self, item_id: int, needed: str, tier: str | None):
        super().__init__(f"item {item_id} needs tier {needed}, volunteer is {tier or 'none'}",
                         item_id=item_id, needed=needed, tier=tier)


class InvalidQuantity(MarketError):
    code = "invalid_quantity"

    def __init__(self, quantity):
        super().__init__(f"quantity {quantity!r} is not a whole number from 1 to 99",
                         quantity=repr(quantity))


class UnknownRedemption(MarketError):
    """No such code or id, or it belongs to someone else: never say which."""

    code = "unknown_redemption"
    status = 404

    def __init__(self):
        super().__init__("no such redemption")


class RedemptionNotReserved(MarketError):
    code = "redemption_not_reserved"
    status = 409

    def __init__(self, redemption_id: int, status: str):
        super().__init__(f"redemption {redemption_id} is {status}, not reserved",
                         redemption_id=redemption_id, current=status)
        self.current = status


class RedemptionNotFulfilled(MarketError):
    code = "redemption_not_fulfilled"
    status = 409

    def __init__(self, redemption_id: int, status: str):
        super().__init__(f"redemption {redemption_id} is {status}; only fulfilled ones refund",
                         redemption_id=redemption_id, current=status)
        self.current = status


class RedemptionConflict(MarketError):
    """An idempotency key reused for a different redemption request."""

    code = "idempotency_conflict"
    status = 409

    def __init__(self, key: str):
        super().__init__(f"idempotency key {key!r} was used for another request", key=key)


class InvalidPeriod(MarketError):
    code = "invalid_period"

    def __init__(self, reason: str):
        super().__init__(reason)


class PeriodAlreadyClosed(MarketError):
    code = "period_already_closed"
    status = 409

    def __init__(self, merchant_id: int, statement_id: int):
        super().__init__(f"merchant {merchant_id} has a statement {statement_id} overlapping",
                         merchant_id=merchant_id, statement_id=statement_id)


class InvalidItem(MarketError):
    """An item's fields do not hold together; `errors` says which, by field."""

    code = "invalid_item"

    def __init__(self, errors: dict[str, list[str]]):
        super().__init__("item fields are invalid", errors=errors)
        self.errors = errors


class ReasonRequired(MarketError):
    code = "reason_required"

    def __init__(self):
        super().__init__("a reason of at most 200 characters is required")


class InvalidKey(MarketError):
    code = "invalid_key"

    def __init__(self):
        super().__init__(f"a request key is a text of 1 to {REQUEST_KEY_LEN} characters",
                         limit=REQUEST_KEY_LEN)

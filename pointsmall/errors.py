"""One place that turns domain errors into HTTP answers."""

from flask import Flask, jsonify

import ledger

STATUS = {
    ledger.InvalidAmount: 422,
    ledger.InvalidTransaction: 422,
    ledger.UnbalancedTransaction: 422,
    ledger.AssetMismatch: 422,
    ledger.InsufficientFunds: 422,
    ledger.UnknownAccount: 404,
    ledger.UnknownTransaction: 404,
    ledger.UnknownHold: 404,
    ledger.IdempotencyConflict: 409,
    ledger.AlreadyReversed: 409,
    ledger.CannotReverseReversal: 409,
    ledger.HoldNotOpen: 409,
    ledger.HoldAmountExceeded: 422,
}


def status_for(error: ledger.LedgerError) -> int:
    """Return the HTTP status that answers `error`."""
    for cls in type(error).__mro__:
        if cls in STATUS:
            return STATUS[cls]
    return 400


def register(app: Flask) -> None:
    """Install the handler that answers every ledger refusal in one JSON shape."""

    @app.errorhandler(ledger.LedgerError)
    def ledger_error(error: ledger.LedgerError):
        from pointsmall.extensions import db

        db.session.rollback()
        body = {"code": error.code, "message": error.message, "errors": {}}
        return jsonify(body), status_for(error)

"""The marketplace: merchants, items and stock, redemptions and settlement (built on `ledger`)."""

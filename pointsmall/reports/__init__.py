"""Dashboards and reports: figures from the ledger, charts drawn on the server."""

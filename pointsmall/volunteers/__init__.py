"""Volunteers (微网格员): their records, accounts, staff pages, import and export."""

"""Admin: communities, staff accounts, the audit log."""

"""The marketplace's pages and API: the volunteer mall, the counter, staff market pages."""

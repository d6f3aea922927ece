"""The landing page of each role."""

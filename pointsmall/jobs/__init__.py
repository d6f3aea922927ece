"""Background jobs: large exports, roster imports and report PDFs, run by queue workers."""

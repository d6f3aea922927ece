"""Core: what every feature builds on; imports no feature."""

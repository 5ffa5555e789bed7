"""Helpers that start Portico's processes for tests: `from support.x import ...`."""

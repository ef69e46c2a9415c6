"""Reusable test helpers (tests import them as ``support.*``; ``tests/`` is on sys.path via conftest)."""

"""Fixtures for the fault tests: the tiny test stack of tests/integration/backends."""

from tests._support.tiny import stack, ts

__all__ = ["stack", "ts"]

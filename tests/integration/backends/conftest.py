"""Fixtures for the local backend tests: the tiny test stack."""

from tests._support.tiny import stack, ts

__all__ = ["stack", "ts"]

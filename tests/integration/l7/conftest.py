"""Fixtures for the L7 proxy tests: the perpdex stack (tests/integration/perpdex) and
shipped scenario runs on both profiles (tests/integration/scenarios)."""

from tests.integration.perpdex.conftest import perpdex
from tests.integration.scenarios.conftest import run_profiles

__all__ = ["perpdex", "run_profiles"]

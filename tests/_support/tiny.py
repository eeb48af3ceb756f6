"""The fixtures of the tests that run on the tiny local test stack
(tests/integration/backends/tinystack.py): `ts` is the module, `stack` a running stack
for the whole test module. A conftest imports them to offer them to its folder."""

from __future__ import annotations

from collections.abc import Iterator
from types import ModuleType

import pytest
from l2chaos.backends.local import LocalStack

from tests.integration.backends import tinystack


@pytest.fixture(scope="module")
def ts() -> ModuleType:
    return tinystack


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    with tinystack.up_stack(tmp_path_factory.mktemp("stack"), stop_timeout_s=5.0) as st:
        yield st

"""A stack's accounts, read from the admin endpoint its stack file declares
(``accounts: {service, path}``) at the service's direct address, with the run's admin
token: the runner hands them to the load and to trader faults; tools and tests that bring
a stack up read them the same way.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import httpx

from .backends.base import RunningStack
from .errors import StackError

__all__ = ["read_accounts"]


def read_accounts(
    stack: RunningStack, admin_token: str, timeout_s: float = 30.0
) -> list[dict[str, Any]]:
    """The accounts the stack declares (an empty list when it declares none); a StackError
    says which URL failed and how. An answer ``{"accounts": [...]}`` is unwrapped."""
    declared = stack.spec.accounts
    if declared is None:
        return []
    url = stack.direct_url(declared["service"], declared["path"])
    try:
        resp = httpx.get(url, headers={"Authorization": f"Bearer {admin_token}"}, timeout=timeout_s)
        resp.raise_for_status()
        data = resp.json()
    except (httpx.HTTPError, ValueError) as exc:
        raise StackError(f"could not read the stack's accounts from {url}: {exc}") from exc
    if isinstance(data, Mapping):
        data = data.get("accounts", [])
    if not isinstance(data, list):
        raise StackError(f"{url} did not return a list of accounts")
    return [dict(a) for a in data if isinstance(a, Mapping)]

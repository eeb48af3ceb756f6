"""`LinkControl` over the stack's Toxiproxy proxies, with reasons for a disabled link.

A proxy is enabled only while nothing holds it disabled. Faults hold it (``fault``, by
`set_enabled`); the orchestrator holds every link leading to a service while that
service is down (``down:<service>``: its clients get connection refused at once, on
every platform, instead of a connect that hangs until the container comes back) and,
on a platform without network isolation, every link of a disconnected service
(``disconnect:<service>``). `reset` clears the faults' holds and toxics only.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping

from l2chaos.errors import FaultError

from .base import Toxic
from .platform import ProxyApi

__all__ = ["FAULT", "StackLinks"]

FAULT = "fault"


class StackLinks:
    """Link names (``a->b``) mapped onto proxies; thread-safe."""

    def __init__(self, client: ProxyApi, proxies: Mapping[str, str]) -> None:
        self.client = client
        self._proxies = dict(proxies)
        self._holds: dict[str, set[str]] = {lk: set() for lk in self._proxies}
        self._lock = threading.Lock()

    def _proxy(self, link: str) -> str:
        key = link.replace(" ", "")
        try:
            return self._proxies[key]
        except KeyError:
            raise FaultError(
                f"unknown link {link!r}; links: {', '.join(self._proxies) or 'none'}"
            ) from None

    def links(self) -> list[str]:
        return list(self._proxies)

    def proxy_of(self, link: str) -> str:
        return self._proxy(link)

    def add_toxic(self, link: str, toxic: Toxic) -> None:
        self.client.add_toxic(self._proxy(link), toxic)

    def remove_toxic(self, link: str, name: str) -> None:
        self.client.remove_toxic(self._proxy(link), name, missing_ok=True)

    def toxics(self, link: str) -> list[Toxic]:
        return self.client.toxics(self._proxy(link))

    def set_enabled(self, link: str, enabled: bool) -> None:
        """A fault's hold on the link (the orchestrator's own holds stay)."""
        self.hold(link, FAULT, not enabled)

    def is_enabled(self, link: str) -> bool:
        return self.client.is_enabled(self._proxy(link))

    def holds(self, link: str) -> set[str]:
        with self._lock:
            return set(self._holds[link.replace(" ", "")])

    def hold(self, link: str, reason: str, held: bool) -> None:
        """Add (`held`) or drop a reason to keep `link` disabled; applies the result."""
        proxy = self._proxy(link)
        key = link.replace(" ", "")
        with self._lock:
            reasons = self._holds[key]
            was = not reasons
            if held:
                reasons.add(reason)
            else:
                reasons.discard(reason)
            if was != (not reasons) or reason == FAULT:
                self.client.set_enabled(proxy, not reasons)

    def reset(self) -> None:
        """Remove every toxic and every fault's hold; the orchestrator's holds stay."""
        with self._lock:
            self.client.reset()  # enables every proxy
            for link, reasons in self._holds.items():
                reasons.discard(FAULT)
                if reasons:
                    self.client.set_enabled(self._proxies[link], False)

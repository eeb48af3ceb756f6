"""Running the L7 proxy for a stack, whatever the platform: its command line, waiting
for its control API, and creating one proxy link per ``layer: http`` link.

The chain on such a link is client -> Toxiproxy -> L7 proxy -> service: Toxiproxy's
proxy for the link forwards to the L7 proxy's listener for it, so a network fault acts
on the client's own connections exactly as on any other link (a refused connection
stays a refused connection, per-connection toxicity draws per client connection), and
the message-level rules act on what passes.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping

from l2chaos.errors import StackError

from .client import L7Client, L7Links

__all__ = [
    "DECISIONS_FILE",
    "L7PROXY",
    "TOKEN_ENV",
    "command",
    "connect",
    "listen_unit",
    "proxy_name",
]

L7PROXY = "l7proxy"
TOKEN_ENV = "L2CHAOS_L7_TOKEN"
DECISIONS_FILE = "l7.jsonl"
_READY_S = 30.0
_POLL_S = 0.05


def listen_unit(link: str) -> str:
    """The name a link's L7 listener has among a run's reserved ports."""
    return f"{L7PROXY}:{link}"


def proxy_name(link: str) -> str:
    """The link's name in the proxy, as in Toxiproxy: ``a->b`` -> ``a.b``."""
    return link.replace(" ", "").replace("->", ".")


def command(python: str, control: str, decisions: str) -> list[str]:
    """The proxy's argv; its token goes in the environment as `TOKEN_ENV`."""
    return [python, "-m", "l2chaos.l7proxy", "--control", control, "--decisions", decisions]


def connect(
    client: L7Client,
    routes: Mapping[str, tuple[str, str]],
    alive: Callable[[], bool],
    log_tail: Callable[[], str],
) -> L7Links:
    """Wait for the control API, then create a proxy link per entry of `routes`
    (link -> (listen, upstream), as the proxy's process sees them)."""
    deadline = time.monotonic() + _READY_S
    while not client.ping():
        if not alive():
            raise StackError("the L7 proxy exited", service=L7PROXY, log_tail=log_tail())
        if time.monotonic() > deadline:
            raise StackError(
                f"the L7 proxy's control API did not answer at {client.api} within {_READY_S:g}s",
                service=L7PROXY,
                log_tail=log_tail(),
            )
        time.sleep(_POLL_S)
    names: dict[str, str] = {}
    for link, (listen, upstream) in routes.items():
        names[link] = proxy_name(link)
        client.add_link(names[link], listen, upstream)
    return L7Links(client, names)

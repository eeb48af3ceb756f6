"""Network faults on the stack's links, through Toxiproxy (`LinkControl`).

Every link ``client->server`` has a proxy; a fault adds toxics to it (named after the
fault, so two faults on one link never step on each other) or disables it. Each toxic
fault takes `stream` (upstream = client to server, downstream = server to client, or
both) and `toxicity` (the share of connections it applies to, 0-1: Toxiproxy draws per
connection). Healing removes exactly the toxics this fault added, by name, and is safe
after a partial inject (a toxic that is not there is fine).

`down` disables one link's proxy (connections refused, open ones cut); `partition`
disables several at once (a list of links, or a service: all of its links).
"""

from __future__ import annotations

import itertools
from typing import Any, ClassVar

from l2chaos.backends.base import Toxic
from l2chaos.params import Param

from .base import Fault, FaultContext, Target, TargetKind, Window

__all__ = [
    "Bandwidth",
    "Down",
    "Latency",
    "LimitData",
    "Partition",
    "ResetPeer",
    "Slicer",
    "SlowClose",
    "Timeout",
]

MS = 1_000_000
_names = itertools.count(1)

STREAM_CHOICES = ("upstream", "downstream", "both")


def _stream(default: str) -> Param:
    return Param(
        "stream",
        "enum",
        default=default,
        choices=STREAM_CHOICES,
        help="direction: upstream (client to server), downstream (server to client) or both",
    )


TOXICITY = Param(
    "toxicity",
    "ratio",
    default=1.0,
    help="share of connections the toxic applies to (Toxiproxy draws per connection)",
)


def _touches(link: str, services: tuple[str, ...]) -> bool:
    client, _, server = link.replace(" ", "").partition("->")
    return client in services or server in services


def _ms(ns: int) -> int:
    return round(ns / MS)


class ToxicFault(Fault):
    """A fault that adds one Toxiproxy toxic per stream to one link."""

    target_kind = TargetKind.LINK
    window = Window.REQUIRED
    toxic_type: ClassVar[str]

    def __init__(self, target: Target, params: Any, duration_ns: int | None) -> None:
        super().__init__(target, params, duration_ns)
        self.base_name = f"l2c-{self.name.split('.', 1)[1]}-{next(_names)}"

    @property
    def link(self) -> str:
        return self.target.links[0]

    def streams(self) -> list[str]:
        s = str(self.p.get("stream", "downstream"))
        return ["upstream", "downstream"] if s == "both" else [s]

    def toxic_names(self) -> list[str]:
        return [f"{self.base_name}-{s[:2]}" for s in self.streams()]

    def attributes(self) -> dict[str, int]:
        raise NotImplementedError

    def toxics(self) -> list[Toxic]:
        attrs = self.attributes()
        return [
            Toxic(
                name=name,
                type=self.toxic_type,
                stream=stream,
                toxicity=float(self.p.get("toxicity", 1.0)),
                attributes=attrs,
            )
            for name, stream in zip(self.toxic_names(), self.streams(), strict=True)
        ]

    def inject(self, ctx: FaultContext) -> dict[str, Any]:
        added: list[dict[str, Any]] = []
        for t in self.toxics():
            ctx.links.add_toxic(self.link, t)
            added.append(
                {"name": t.name, "type": t.type, "stream": t.stream, "toxicity": t.toxicity}
            )
        return {"link": self.link, "toxics": added, "attributes": self.attributes()}

    def heal(self, ctx: FaultContext) -> dict[str, Any]:
        for name in self.toxic_names():
            ctx.links.remove_toxic(self.link, name)
        return {"link": self.link, "removed": self.toxic_names()}


class Latency(ToxicFault):
    name = "network.latency"
    summary = "Adds latency (± jitter) to every chunk of data on a link."
    toxic_type = "latency"
    params = (
        Param("latency", "duration", default=500 * MS, min=0, help="delay added to each chunk"),
        Param("jitter", "duration", default=0, min=0, help="random ± spread around the latency"),
        _stream("downstream"),
        TOXICITY,
    )

    def attributes(self) -> dict[str, int]:
        return {"latency": _ms(self.p["latency"]), "jitter": _ms(self.p["jitter"])}


class Bandwidth(ToxicFault):
    name = "network.bandwidth"
    summary = "Limits a link to `rate` KB/s."
    toxic_type = "bandwidth"
    params = (
        Param("rate", "int", default=100, min=0, help="KB per second that may pass"),
        _stream("downstream"),
        TOXICITY,
    )

    def attributes(self) -> dict[str, int]:
        return {"rate": int(self.p["rate"])}


class Timeout(ToxicFault):
    name = "network.timeout"
    summary = (
        "Stops all data on a link and closes the connection after `timeout`; with timeout 0 "
        "it is a black hole: nothing passes and nothing closes until healed."
    )
    toxic_type = "timeout"
    params = (
        Param("timeout", "duration", default=0, min=0, help="when to close; 0 = never"),
        _stream("both"),
        TOXICITY,
    )

    def attributes(self) -> dict[str, int]:
        return {"timeout": _ms(self.p["timeout"])}


class ResetPeer(ToxicFault):
    name = "network.reset_peer"
    summary = "Resets connections on a link (TCP RST, 'connection reset by peer') after `timeout`."
    toxic_type = "reset_peer"
    params = (
        Param(
            "timeout", "duration", default=0, min=0, help="how long a connection lives; 0 = at once"
        ),
        _stream("upstream"),
        TOXICITY,
    )

    def attributes(self) -> dict[str, int]:
        return {"timeout": _ms(self.p["timeout"])}


class Slicer(ToxicFault):
    name = "network.slicer"
    summary = "Slices data on a link into small packets with a delay between them."
    toxic_type = "slicer"
    params = (
        Param("average_size", "int", default=64, min=1, help="average packet size in bytes"),
        Param("size_variation", "int", default=32, min=0, help="± variation of the size in bytes"),
        Param("delay", "duration", default=10 * MS, min=0, help="delay between packets"),
        _stream("downstream"),
        TOXICITY,
    )

    def validate(self, services: set[str], links: set[str]) -> str | None:
        if self.p["size_variation"] >= self.p["average_size"]:
            return (
                f"size_variation ({self.p['size_variation']}) must be smaller than "
                f"average_size ({self.p['average_size']})"
            )
        return None

    def attributes(self) -> dict[str, int]:
        return {
            "average_size": int(self.p["average_size"]),
            "size_variation": int(self.p["size_variation"]),
            "delay": round(self.p["delay"] / 1000),  # microseconds
        }


class LimitData(ToxicFault):
    name = "network.limit_data"
    summary = "Closes each connection on a link once `bytes` have passed."
    toxic_type = "limit_data"
    params = (
        Param("bytes", "int", default=1024, min=0, help="bytes a connection may carry"),
        _stream("downstream"),
        TOXICITY,
    )

    def attributes(self) -> dict[str, int]:
        return {"bytes": int(self.p["bytes"])}


class SlowClose(ToxicFault):
    name = "network.slow_close"
    summary = "Delays the closing of connections on a link by `delay`."
    toxic_type = "slow_close"
    params = (
        Param("delay", "duration", default=5000 * MS, min=0, help="how long a close is held back"),
        _stream("downstream"),
        TOXICITY,
    )

    def attributes(self) -> dict[str, int]:
        return {"delay": _ms(self.p["delay"])}


class Down(Fault):
    name = "network.down"
    summary = "Takes a link down: its proxy refuses connections and cuts open ones."
    target_kind = TargetKind.LINK
    window = Window.REQUIRED

    def resources(self) -> set[str]:
        return {f"link:{lk}" for lk in self.target.links}

    def _links(self, ctx: FaultContext) -> list[str]:
        if self.target.links:
            return list(self.target.links)
        # a service target built without the stack at hand: all of its links
        return [lk for lk in ctx.links.links() if _touches(lk, self.target.services)]

    def inject(self, ctx: FaultContext) -> dict[str, Any]:
        links = self._links(ctx)
        for lk in links:
            ctx.links.set_enabled(lk, False)
        return {"disabled": links}

    def heal(self, ctx: FaultContext) -> dict[str, Any]:
        links = self._links(ctx)
        for lk in links:
            ctx.links.set_enabled(lk, True)
        return {"enabled": links}


class Partition(Down):
    name = "network.partition"
    summary = (
        "Takes several links down at once: a list of links, or a service (all of its links, "
        "as client and as server). Every other link keeps working."
    )
    target_kind = TargetKind.SERVICE_OR_LINKS

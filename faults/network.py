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
from abc import abstractmethod
from typing import ClassVar, Literal, TypeVar

from l2chaos.backends.base import Toxic
from l2chaos.params import Duration, JsonValue, NoParams, Ratio, param, params

from .base import Details, Fault, FaultContext, LinkFault, Target, TargetKind, Window

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

_names = itertools.count(1)

Stream = Literal["upstream", "downstream", "both"]
STREAM_HELP = "direction: upstream (client to server), downstream (server to client) or both"
TOXICITY_HELP = "share of connections the toxic applies to (Toxiproxy draws per connection)"


@params
class ToxicParams:
    """What every toxic takes: its direction and how many connections it applies to."""

    stream: Stream = param("downstream", STREAM_HELP)
    toxicity: Ratio = param(1.0, TOXICITY_HELP)


def _touches(link: str, services: tuple[str, ...]) -> bool:
    client, _, server = link.replace(" ", "").partition("->")
    return client in services or server in services


def _ms(d: Duration) -> int:
    return round(d.millis)


TP = TypeVar("TP", bound=ToxicParams)


class ToxicFault(LinkFault[TP]):
    """A fault that adds one Toxiproxy toxic per stream to one link."""

    toxic_type: ClassVar[str]

    def __init__(self, target: Target, params: TP, duration: Duration | None) -> None:
        super().__init__(target, params, duration)
        self.base_name = f"l2c-{self.name.split('.', 1)[1]}-{next(_names)}"

    def streams(self) -> list[str]:
        s = self.p.stream
        return ["upstream", "downstream"] if s == "both" else [s]

    def toxic_names(self) -> list[str]:
        return [f"{self.base_name}-{s[:2]}" for s in self.streams()]

    @abstractmethod
    def attributes(self) -> dict[str, int]:
        """The toxic's Toxiproxy attributes (times in ms)."""

    def toxics(self) -> list[Toxic]:
        attrs = self.attributes()
        return [
            Toxic(
                name=name,
                type=self.toxic_type,
                stream=stream,
                toxicity=self.p.toxicity,
                attributes=attrs,
            )
            for name, stream in zip(self.toxic_names(), self.streams(), strict=True)
        ]

    def inject(self, ctx: FaultContext) -> Details:
        added: list[JsonValue] = []
        for t in self.toxics():
            ctx.links.add_toxic(self.link, t)
            added.append(
                {"name": t.name, "type": t.type, "stream": t.stream, "toxicity": t.toxicity}
            )
        return {"link": self.link, "toxics": added, "attributes": dict(self.attributes())}

    def heal(self, ctx: FaultContext) -> Details:
        for name in self.toxic_names():
            ctx.links.remove_toxic(self.link, name)
        return {"link": self.link, "removed": list(self.toxic_names())}


@params
class LatencyParams(ToxicParams):
    latency: Duration = param(Duration.of(ms=500), "delay added to each chunk", min=Duration(0))
    jitter: Duration = param(Duration(0), "random ± spread around the latency", min=Duration(0))


class Latency(ToxicFault[LatencyParams]):
    name = "network.latency"
    summary = "Adds latency (± jitter) to every chunk of data on a link."
    toxic_type = "latency"

    def attributes(self) -> dict[str, int]:
        return {"latency": _ms(self.p.latency), "jitter": _ms(self.p.jitter)}


@params
class BandwidthParams(ToxicParams):
    rate: int = param(100, "KB per second that may pass", min=0)


class Bandwidth(ToxicFault[BandwidthParams]):
    name = "network.bandwidth"
    summary = "Limits a link to `rate` KB/s."
    toxic_type = "bandwidth"

    def attributes(self) -> dict[str, int]:
        return {"rate": self.p.rate}


@params
class TimeoutParams(ToxicParams):
    timeout: Duration = param(Duration(0), "when to close; 0 = never", min=Duration(0))
    stream: Stream = param("both", STREAM_HELP)


class Timeout(ToxicFault[TimeoutParams]):
    name = "network.timeout"
    summary = (
        "Stops all data on a link and closes the connection after `timeout`; with timeout 0 "
        "it is a black hole: nothing passes and nothing closes until healed."
    )
    toxic_type = "timeout"

    def attributes(self) -> dict[str, int]:
        return {"timeout": _ms(self.p.timeout)}


@params
class ResetPeerParams(ToxicParams):
    timeout: Duration = param(
        Duration(0), "how long a connection lives; 0 = at once", min=Duration(0)
    )
    stream: Stream = param("upstream", STREAM_HELP)


class ResetPeer(ToxicFault[ResetPeerParams]):
    name = "network.reset_peer"
    summary = "Resets connections on a link (TCP RST, 'connection reset by peer') after `timeout`."
    toxic_type = "reset_peer"

    def attributes(self) -> dict[str, int]:
        return {"timeout": _ms(self.p.timeout)}


@params
class SlicerParams(ToxicParams):
    average_size: int = param(64, "average packet size in bytes", min=1)
    size_variation: int = param(32, "± variation of the size in bytes", min=0)
    delay: Duration = param(Duration.of(ms=10), "delay between packets", min=Duration(0))


class Slicer(ToxicFault[SlicerParams]):
    name = "network.slicer"
    summary = "Slices data on a link into small packets with a delay between them."
    toxic_type = "slicer"

    def validate(self, services: set[str], links: set[str]) -> str | None:
        if self.p.size_variation >= self.p.average_size:
            return (
                f"size_variation ({self.p.size_variation}) must be smaller than "
                f"average_size ({self.p.average_size})"
            )
        return None

    def attributes(self) -> dict[str, int]:
        return {
            "average_size": self.p.average_size,
            "size_variation": self.p.size_variation,
            "delay": round(self.p.delay.ns / 1000),  # microseconds
        }


@params
class LimitDataParams(ToxicParams):
    bytes: int = param(1024, "bytes a connection may carry", min=0)


class LimitData(ToxicFault[LimitDataParams]):
    name = "network.limit_data"
    summary = "Closes each connection on a link once `bytes` have passed."
    toxic_type = "limit_data"

    def attributes(self) -> dict[str, int]:
        return {"bytes": self.p.bytes}


@params
class SlowCloseParams(ToxicParams):
    delay: Duration = param(Duration.of(s=5), "how long a close is held back", min=Duration(0))


class SlowClose(ToxicFault[SlowCloseParams]):
    name = "network.slow_close"
    summary = "Delays the closing of connections on a link by `delay`."
    toxic_type = "slow_close"

    def attributes(self) -> dict[str, int]:
        return {"delay": _ms(self.p.delay)}


class Down(Fault[NoParams]):
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

    def inject(self, ctx: FaultContext) -> Details:
        links = self._links(ctx)
        for lk in links:
            ctx.links.set_enabled(lk, False)
        return {"disabled": list(links)}

    def heal(self, ctx: FaultContext) -> Details:
        links = self._links(ctx)
        for lk in links:
            ctx.links.set_enabled(lk, True)
        return {"enabled": list(links)}


class Partition(Down):
    name = "network.partition"
    summary = (
        "Takes several links down at once: a list of links, or a service (all of its links, "
        "as client and as server). Every other link keeps working."
    )
    target_kind = TargetKind.SERVICE_OR_LINKS

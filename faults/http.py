"""Plain-HTTP faults on a ``layer: http`` link, through the L7 proxy: a gateway answers
429/502/503, matching requests are slow, an answer never comes back, a JSON body
carries a wrong field. Every fault takes `paths` (shell globs), `verbs` and
`probability`. (`http.call`, a direct call of a service's endpoint, is in generic.py.)
"""

from __future__ import annotations

from typing import TypeVar

from l2chaos.l7proxy.rules import Action, Status
from l2chaos.params import Duration, param, params

from ._message import CorruptFields, DelayFields, DropFields, HttpMatch, MessageFault

__all__ = ["HttpCorrupt", "HttpDelay", "HttpDropResponse", "HttpStatus"]

HP = TypeVar("HP", bound=HttpMatch)


class _HttpFault(MessageFault[HP]):
    family_name = "http"


@params
class StatusParams(HttpMatch):
    status: int = param(503, "the status answered", min=100, max=599)
    retry_after: Duration = param(Duration(0), "Retry-After header (0: none)", min=Duration(0))
    body: str = param("", "the answer's body")


class HttpStatus(_HttpFault[StatusParams]):
    name = "http.status"
    summary = (
        "Answers matching requests with an HTTP status (429, 502, 503...) without "
        "forwarding them, optionally with Retry-After."
    )

    def action(self) -> Action:
        retry = self.p.retry_after
        return Status(
            status=self.p.status,
            retry_after_s=round(retry.seconds) if retry else None,
            body=self.p.body,
        )


@params
class HttpDelayParams(DelayFields, HttpMatch):
    pass


class HttpDelay(_HttpFault[HttpDelayParams]):
    name = "http.delay"
    summary = "Delays matching HTTP requests only (latency ± jitter), before or after forwarding."

    def action(self) -> Action:
        return self.p.delay()


@params
class HttpDropParams(DropFields, HttpMatch):
    pass


class HttpDropResponse(_HttpFault[HttpDropParams]):
    name = "http.drop_response"
    summary = (
        "Forwards matching requests, then drops or cuts the answer (the server acted; the "
        "client cannot know)."
    )

    def action(self) -> Action:
        return self.p.drop()


@params
class HttpCorruptParams(CorruptFields, HttpMatch):
    pass


class HttpCorrupt(_HttpFault[HttpCorruptParams]):
    name = "http.corrupt"
    summary = (
        "Rewrites fields of matching JSON bodies through JSON paths from the body's root: "
        "in answers, or in requests before they are forwarded (e.g. a pushed price to 0)."
    )

    def action(self) -> Action:
        return self.p.corrupt()

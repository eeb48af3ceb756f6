"""Plain-HTTP faults on a ``layer: http`` link, through the L7 proxy: a gateway answers
429/502/503, matching requests are slow, an answer never comes back, a JSON body
carries a wrong field. Every fault takes `paths` (shell globs), `verbs` and
`probability`. (`http.call`, a direct call of a service's endpoint, is in generic.py.)
"""

from __future__ import annotations

from l2chaos.l7proxy.rules import Action, Status
from l2chaos.params import Param

from ._message import (
    DELAY_PARAMS,
    DROP_MODE,
    PROBABILITY,
    MessageFault,
    corrupt_action,
    corrupt_params,
    delay_action,
    drop_action,
    paths_params,
)

__all__ = ["HttpCorrupt", "HttpDelay", "HttpDropResponse", "HttpStatus"]


class _HttpFault(MessageFault):
    family_name = "http"


class HttpStatus(_HttpFault):
    name = "http.status"
    summary = (
        "Answers matching requests with an HTTP status (429, 502, 503...) without "
        "forwarding them, optionally with Retry-After."
    )
    params = (
        *paths_params(),
        Param("status", "int", default=503, min=100, max=599, help="the status answered"),
        Param("retry_after", "duration", default=0, min=0, help="Retry-After header (0: none)"),
        Param("body", "str", default="", help="the answer's body"),
        PROBABILITY,
    )

    def action(self) -> Action:
        retry = self.p["retry_after"]
        return Status(
            status=int(self.p["status"]),
            retry_after_s=round(retry / 1e9) if retry else None,
            body=self.p["body"],
        )


class HttpDelay(_HttpFault):
    name = "http.delay"
    summary = "Delays matching HTTP requests only (latency ± jitter), before or after forwarding."
    params = (*paths_params(), *DELAY_PARAMS, PROBABILITY)

    def action(self) -> Action:
        return delay_action(self.p)


class HttpDropResponse(_HttpFault):
    name = "http.drop_response"
    summary = (
        "Forwards matching requests, then drops or cuts the answer (the server acted; the "
        "client cannot know)."
    )
    params = (*paths_params(), DROP_MODE, PROBABILITY)

    def action(self) -> Action:
        return drop_action(self.p)


class HttpCorrupt(_HttpFault):
    name = "http.corrupt"
    summary = (
        "Rewrites fields of matching JSON bodies through JSON paths from the body's root: "
        "in answers, or in requests before they are forwarded (e.g. a pushed price to 0)."
    )
    params = (*paths_params(), *corrupt_params('"prices[*].price"'), PROBABILITY)

    def action(self) -> Action:
        return corrupt_action(self.p)

"""A small JSON path for the corrupt rules: ``result.prices[*].price``, ``$.status``.

Segments are keys (``a.b``, or ``["a.b"]`` for a key with dots), indices (``[0]``,
``[-1]``) and the wildcard ``[*]`` (every element of a list, every value of a mapping).
A leading ``$`` or ``$.`` is allowed. `assign` sets every place the path reaches and
returns how many it set; a path that reaches nothing sets nothing (it never creates
keys: a corrupt rule rewrites what an answer carries, it does not invent fields).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

__all__ = ["JsonPath", "JsonPathError"]

_TOKEN = re.compile(r"""\.?([A-Za-z_][A-Za-z0-9_-]*)|\[(\*|-?\d+|"[^"]*"|'[^']*')\]""")
WILDCARD = "*"


class JsonPathError(ValueError):
    """A path that does not parse."""


@dataclass(frozen=True)
class JsonPath:
    text: str
    segments: tuple[str | int, ...]

    @classmethod
    def parse(cls, text: str) -> JsonPath:
        rest = text.strip()
        if rest.startswith("$"):
            rest = rest[1:]
        segments: list[str | int] = []
        pos = 0
        while pos < len(rest):
            m = _TOKEN.match(rest, pos)
            if m is None:
                raise JsonPathError(
                    f'cannot read {text!r} at {rest[pos:]!r}: expected key, .key, [n], [*] or ["key"]'
                )
            key, bracket = m.group(1), m.group(2)
            if key is not None:
                segments.append(key)
            elif bracket == WILDCARD:
                segments.append(WILDCARD)
            elif bracket[0] in "\"'":
                segments.append(bracket[1:-1])
            else:
                segments.append(int(bracket))
            pos = m.end()
        if not segments:
            raise JsonPathError(f"empty path {text!r}: name at least one key")
        return cls(text, tuple(segments))

    def assign(self, doc: Any, value: Any) -> int:
        """Set every place the path reaches in `doc` (in place) to `value`."""
        return _assign(doc, self.segments, value)

    def find(self, doc: Any) -> list[Any]:
        """Every value the path reaches."""
        return list(_find(doc, self.segments))


def _children(node: Any, seg: str | int) -> list[tuple[Any, str | int]]:
    """(container, key) pairs the segment addresses in `node`."""
    if seg == WILDCARD:
        if isinstance(node, list):
            return [(node, i) for i in range(len(node))]
        if isinstance(node, dict):
            return [(node, k) for k in node]
        return []
    if isinstance(seg, int):
        if isinstance(node, list) and -len(node) <= seg < len(node):
            return [(node, seg)]
        return []
    if isinstance(node, dict) and seg in node:
        return [(node, seg)]
    return []


def _assign(node: Any, segments: tuple[str | int, ...], value: Any) -> int:
    head, rest = segments[0], segments[1:]
    n = 0
    for container, key in _children(node, head):
        if rest:
            n += _assign(container[key], rest, value)
        else:
            container[key] = value
            n += 1
    return n


def _find(node: Any, segments: tuple[str | int, ...]) -> list[Any]:
    head, rest = segments[0], segments[1:]
    out: list[Any] = []
    for container, key in _children(node, head):
        out.extend(_find(container[key], rest) if rest else [container[key]])
    return out

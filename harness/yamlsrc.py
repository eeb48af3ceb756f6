"""YAML that remembers where each value came from.

`load_yaml` returns plain-looking dicts and lists (`Node` subclasses) that also know
the file and the line of every key and item, so validators can say
``scenario.yaml:14: timeline[2].target: ...`` without threading marks around.
Duplicate keys are an error (PyYAML silently keeps the last one).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from .errors import InputError

__all__ = ["LocDict", "LocList", "Source", "line_of", "load_yaml", "load_yaml_text"]


class Source:
    """Where a document came from: a file path (or `<string>`)."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return f"Source({self.name!r})"


class LocDict(dict[str, Any]):
    """A mapping that knows its own line and the line of each key."""

    source: Source
    line: int
    key_lines: dict[str, int]

    def line_of(self, key: str) -> int:
        return self.key_lines.get(key, self.line)


class LocList(list[Any]):
    """A sequence that knows its own line and the line of each item."""

    source: Source
    line: int
    item_lines: list[int]

    def line_of(self, index: int) -> int:
        if 0 <= index < len(self.item_lines):
            return self.item_lines[index]
        return self.line


def line_of(container: object, key: str | int | None = None) -> int | None:
    """The line of `container[key]` (or of the container), if it was loaded from YAML."""
    if isinstance(container, LocDict):
        return container.line if key is None else container.line_of(str(key))
    if isinstance(container, LocList):
        return container.line if key is None or not isinstance(key, int) else container.line_of(key)
    return None


def _convert(node: yaml.Node, source: Source, loader: yaml.SafeLoader) -> Any:
    if isinstance(node, yaml.MappingNode):
        out = LocDict()
        out.source = source
        out.line = node.start_mark.line + 1
        out.key_lines = {}
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            if not isinstance(key, str):
                raise InputError(f"keys must be strings, got {key!r}", file=source.name, line=line)
            if key in out:
                raise InputError(
                    f"duplicate key {key!r} (first on line {out.key_lines[key]})",
                    file=source.name,
                    line=line,
                )
            out[key] = _convert(value_node, source, loader)
            out.key_lines[key] = line
        return out
    if isinstance(node, yaml.SequenceNode):
        items = LocList()
        items.source = source
        items.line = node.start_mark.line + 1
        items.item_lines = []
        for item in node.value:
            items.append(_convert(item, source, loader))
            items.item_lines.append(item.start_mark.line + 1)
        return items
    return loader.construct_object(node, deep=True)


def load_yaml_text(text: str, name: str = "<string>") -> Any:
    """Parse one YAML document from text, keeping lines. Raises InputError on bad YAML."""
    source = Source(name)
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        return _convert(node, source, loader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        problem = exc.problem or exc.context or "invalid YAML"
        raise InputError(f"invalid YAML: {problem}", file=name, line=line) from None
    except yaml.YAMLError as exc:
        raise InputError(f"invalid YAML: {exc}", file=name) from None
    finally:
        loader.dispose()


def load_yaml(path: str | Path) -> Any:
    """Read and parse a YAML file, keeping lines. Raises InputError if unreadable."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError("file not found", file=str(path)) from None
    except IsADirectoryError:
        raise InputError("is a directory, expected a YAML file", file=str(path)) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read: {exc}", file=str(path)) from None
    return load_yaml_text(text, str(path))

"""YAML that remembers where each value came from, read within fixed limits.

`load_yaml` returns plain-looking dicts and lists (`Node` subclasses) that also know
the file and the line of every key and item, so validators can say
``scenario.yaml:14: timeline[2].target: ...`` without threading marks around.
Duplicate keys are an error (PyYAML silently keeps the last one).

Scenarios and stack files may come from others (a pull request), so reading one is
bounded: only regular files (a FIFO or a device would block or never end), at most
`MAX_BYTES`, nesting at most `MAX_DEPTH` deep, at most `MAX_NODES` values after aliases
are expanded (a "billion laughs" document is refused after a few thousand steps, not
after gigabytes), integers within 64 bits and finite numbers. Every refusal is one
`InputError` naming the file, the line and, where known, the field.
"""

from __future__ import annotations

import math
import os
import stat
from pathlib import Path
from typing import Any

import yaml

from .errors import InputError

__all__ = [
    "MAX_BYTES",
    "MAX_DEPTH",
    "MAX_NODES",
    "LocDict",
    "LocList",
    "PlusInt",
    "Source",
    "line_of",
    "load_yaml",
    "load_yaml_text",
    "read_text_file",
]

MAX_BYTES = 1 << 20  # 1 MiB; the largest scenario shipped is about 4 KiB
MAX_DEPTH = 64
MAX_NODES = 100_000
_INT_LIMIT = 1 << 63
_PLAIN = ("tag:yaml.org,2002:map", "tag:yaml.org,2002:seq")


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


class PlusInt(int):
    """An integer written with an explicit ``+`` (``{block: +50}``: relative to a base).

    YAML reads ``+50`` as plain 50; a field where the sign means something checks for
    this type. Everywhere else it is an ordinary int."""


def line_of(container: object, key: str | int | None = None) -> int | None:
    """The line of `container[key]` (or of the container), if it was loaded from YAML."""
    if isinstance(container, LocDict):
        return container.line if key is None else container.line_of(str(key))
    if isinstance(container, LocList):
        return container.line if key is None or not isinstance(key, int) else container.line_of(key)
    return None


class _BoundedLoader(yaml.SafeLoader):
    """SafeLoader whose composer refuses nesting deeper than MAX_DEPTH (PyYAML composes
    recursively: 50,000 brackets would otherwise end in a RecursionError)."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                mark = self.peek_event().start_mark  # type: ignore[no-untyped-call]
                raise _Refused(f"nested deeper than {MAX_DEPTH} levels", mark.line + 1)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


class _Refused(Exception):
    def __init__(self, problem: str, line: int | None, field: str | None = None) -> None:
        super().__init__(problem)
        if field is not None and len(field) > 60:  # deep in a bomb: the start says where
            field = field[:57] + "..."
        self.problem, self.line, self.field = problem, line, field


class _Converter:
    """Nodes → LocDict/LocList/scalars, counting every value it produces (aliases
    included) and the depth (a recursive alias would otherwise never end)."""

    def __init__(self, source: Source, loader: yaml.SafeLoader) -> None:
        self.source = source
        self.loader = loader
        self.count = 0

    def convert(self, node: yaml.Node, path: str, depth: int) -> Any:
        line = node.start_mark.line + 1
        self.count += 1
        if self.count > MAX_NODES:
            raise _Refused(
                f"more than {MAX_NODES} values once aliases are expanded (an alias bomb?)",
                line,
                path or None,
            )
        if depth > MAX_DEPTH:
            raise _Refused(
                f"nested deeper than {MAX_DEPTH} levels (a recursive alias?)", line, path or None
            )
        if isinstance(node, (yaml.MappingNode, yaml.SequenceNode)) and node.tag not in _PLAIN:
            raise _Refused(f"invalid YAML: the tag {node.tag!r} is not allowed", line, path or None)
        if isinstance(node, yaml.MappingNode):
            return self._mapping(node, path, depth)
        if isinstance(node, yaml.SequenceNode):
            items = LocList()
            items.source, items.line, items.item_lines = self.source, line, []
            for i, item in enumerate(node.value):
                items.append(self.convert(item, f"{path}[{i}]", depth + 1))
                items.item_lines.append(item.start_mark.line + 1)
            return items
        return self._scalar(node, path)

    def _mapping(self, node: yaml.MappingNode, path: str, depth: int) -> LocDict:
        out = LocDict()
        out.source, out.line, out.key_lines = self.source, node.start_mark.line + 1, {}
        for key_node, value_node in node.value:
            line = key_node.start_mark.line + 1
            key = self._scalar(key_node, path) if isinstance(key_node, yaml.ScalarNode) else None
            if not isinstance(key, str):
                shown = f"{key!r}" if isinstance(key_node, yaml.ScalarNode) else "a collection"
                raise _Refused(f"keys must be strings, got {shown}", line, path or None)
            if key in out:
                raise _Refused(
                    f"duplicate key {key!r} (first on line {out.key_lines[key]})",
                    line,
                    path or None,
                )
            child = f"{path}.{key}" if path else key
            out[key] = self.convert(value_node, child, depth + 1)
            out.key_lines[key] = line
        return out

    def _scalar(self, node: yaml.Node, path: str) -> Any:
        line = node.start_mark.line + 1
        try:
            value = self.loader.construct_object(node, deep=True)
        except (ValueError, OverflowError) as exc:  # e.g. an int of 5,000 digits
            reason = str(exc).split(":", 1)[0]
            raise _Refused(f"not a usable value ({reason})", line, path or None) from None
        if isinstance(value, int) and not isinstance(value, bool):
            if not -_INT_LIMIT <= value < _INT_LIMIT:
                raise _Refused("integer out of range (at most 2^63-1 in size)", line, path or None)
        elif isinstance(value, float) and not math.isfinite(value):
            raise _Refused(f"expected a finite number, got {value!r}", line, path or None)
        plain = isinstance(node, yaml.ScalarNode) and node.style is None
        if plain and str(node.value).startswith("+") and type(value) is int:
            return PlusInt(value)
        return value


def _reader_problem(text: str, name: str, exc: yaml.reader.ReaderError) -> InputError:
    position = exc.position if isinstance(exc.position, int) else 0
    line = text.count("\n", 0, position) + 1
    char = exc.character
    code = ord(char) if isinstance(char, str) else int(char)
    what = "a NUL byte" if code == 0 else "a control character"
    return InputError(
        f"invalid YAML: {what} (U+{code:04X}) is not allowed; expected UTF-8 text",
        file=name,
        line=line,
    )


def load_yaml_text(text: str, name: str = "<string>") -> Any:
    """Parse one YAML document from text, keeping lines. Raises InputError on bad YAML."""
    if len(text) > MAX_BYTES:
        raise InputError(f"larger than {MAX_BYTES // 1024} KiB; expected a scenario", file=name)
    source = Source(name)
    try:
        loader = _BoundedLoader(text)
    except yaml.reader.ReaderError as exc:
        raise _reader_problem(text, name, exc) from None
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        return _Converter(source, loader).convert(node, "", 0)
    except _Refused as exc:
        raise InputError(exc.problem, file=name, line=exc.line, field=exc.field) from None
    except yaml.reader.ReaderError as exc:
        raise _reader_problem(text, name, exc) from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        problem = exc.problem or exc.context or "invalid YAML"
        raise InputError(f"invalid YAML: {problem}", file=name, line=line) from None
    except yaml.YAMLError as exc:
        raise InputError(f"invalid YAML: {exc}", file=name) from None
    except RecursionError:  # a last line of defence; the depth caps come first
        raise InputError("invalid YAML: nested too deeply", file=name) from None
    finally:
        loader.dispose()


def read_text_file(path: str | Path, *, what: str = "a YAML file", limit: int = MAX_BYTES) -> str:
    """Read a regular UTF-8 file of at most `limit` bytes. Raises InputError naming the
    file and what was expected; never blocks on a FIFO and never echoes the content."""
    name = str(path)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise InputError("file not found", file=name) from None
    except IsADirectoryError:
        raise InputError(f"is a directory, expected {what}", file=name) from None
    except OSError as exc:
        raise InputError(f"cannot read it ({exc.strerror}); expected {what}", file=name) from None
    try:
        info = os.fstat(fd)
        if stat.S_ISDIR(info.st_mode):
            raise InputError(f"is a directory, expected {what}", file=name)
        if not stat.S_ISREG(info.st_mode):
            raise InputError(
                f"not a regular file (a FIFO, socket or device); expected {what}", file=name
            )
        if info.st_size > limit:
            raise InputError(
                f"{info.st_size} bytes, larger than the {limit // 1024} KiB allowed; expected {what}",
                file=name,
            )
        with os.fdopen(fd, "rb", closefd=True) as fh:
            fd = -1
            data = fh.read(limit + 1)
    except OSError as exc:
        raise InputError(f"cannot read it ({exc.strerror}); expected {what}", file=name) from None
    finally:
        if fd >= 0:
            os.close(fd)
    if len(data) > limit:  # it grew, or /proc-like files that report size 0
        raise InputError(f"larger than the {limit // 1024} KiB allowed; expected {what}", file=name)
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise InputError(
            f"not UTF-8 text (byte 0x{data[exc.start]:02x}); expected {what}", file=name, line=line
        ) from None


def load_yaml(path: str | Path, *, what: str = "a YAML file") -> Any:
    """Read and parse a YAML file, keeping lines. Raises InputError if unreadable."""
    return load_yaml_text(read_text_file(path, what=what), str(path))

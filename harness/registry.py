"""Finds faults, invariants, platforms and stacks: built-in ones and plugins.

Built-ins are every `Fault` subclass in the modules of `l2chaos.faults`, every
`Checker` subclass in the modules of `l2chaos.invariants`, every `TraderProtocol`
subclass in the modules of `l2chaos.load.protocols` and the `Platform` subclasses of
`l2chaos.backends.local` and `.docker`. Plugins come from the entry point groups
``l2chaos.faults``, ``l2chaos.invariants``, ``l2chaos.protocols``,
``l2chaos.platforms`` (each entry a module or a class), ``l2chaos.stacks`` (each
entry a path to a stack.yaml, or an object with a `STACK_FILE` attribute) and
``l2chaos.listeners`` (each entry a callable given every run's `l2chaos.events.Events`).
``L2CHAOS_NO_PLUGINS=1`` loads built-ins only.

A concrete, public class (its name does not start with ``_``) must set `name`, and its
parameter model must be one `l2chaos.params` understands: a plug-in that gets either
wrong is a UsageError at registration naming the class and its module, not a fault
that silently never appears. A name is provided once, in every group: a second
provider (a stack entry naming another file than the shipped stack of its name
included) is a UsageError too.
"""

from __future__ import annotations

import importlib
import inspect
import os
import pkgutil
from collections.abc import Callable, Iterable, Mapping
from functools import cache
from importlib.metadata import entry_points
from pathlib import Path
from types import ModuleType
from typing import Any, Protocol, TypeVar, cast

from l2chaos.faults.base import Fault
from l2chaos.invariants.base import Checker

from .errors import UsageError
from .params import ModelError, fields_of

__all__ = ["checkers", "faults", "listeners", "platforms", "protocols", "stack_files"]


class _Parameterised(Protocol):
    @classmethod
    def params_model(cls) -> type[Any]: ...


T = TypeVar("T")

_BUILTIN_STACKS = "l2chaos.stacks"
_BUILTIN_PLATFORMS = ("l2chaos.backends.local", "l2chaos.backends.docker")


def _plugins_enabled() -> bool:
    return os.environ.get("L2CHAOS_NO_PLUGINS", "") not in ("1", "true", "yes")


def _classes_in(module: ModuleType, base: type[T]) -> Iterable[type[T]]:
    for name, obj in inspect.getmembers(module, inspect.isclass):
        concrete = issubclass(obj, base) and obj is not base and not inspect.isabstract(obj)
        if concrete and obj.__module__ == module.__name__ and not name.startswith("_"):
            yield cast("type[T]", obj)


def _walk(package: str) -> Iterable[ModuleType]:
    pkg = importlib.import_module(package)
    for info in pkgutil.iter_modules(pkg.__path__, prefix=f"{package}."):
        if info.name.rsplit(".", 1)[-1].startswith("_"):
            continue
        yield importlib.import_module(info.name)


def _where(cls: type[object], origin: str) -> str:
    return f"{origin}: {cls.__module__}.{cls.__qualname__}"


def _name_of(cls: type[object], origin: str) -> str:
    """The class's name; UsageError when it has none."""
    name = getattr(cls, "name", None)
    if not isinstance(name, str) or not name:
        raise UsageError(
            f'{_where(cls, origin)} sets no `name` (a class attribute such as name = "family.kind"); '
            "make it abstract or prefix its name with _ if it is a base for others"
        )
    return name


def _check_params(cls: type[_Parameterised], origin: str) -> None:
    """UsageError when a fault's or a checker's parameter model is wrong."""
    where = _where(cls, origin)
    if getattr(cls, "params", None) is not None:
        raise UsageError(
            f"{where} sets `params`, which is no longer read: declare a model with "
            "@params and name it as the type argument, e.g. class X(Fault[XParams]) "
            "(see l2chaos.params)"
        )
    try:
        fields_of(cls.params_model())
    except ModelError as exc:
        raise UsageError(f"{where}: its parameters: {exc}") from None


def _collect(
    package: str,
    group: str,
    base: type[T],
    check: Callable[[type[T], str], None] = lambda cls, origin: None,
    modules: Iterable[ModuleType] | None = None,
) -> dict[str, type[T]]:
    found: dict[str, type[T]] = {}

    def add(cls: type[T], origin: str) -> None:
        name = _name_of(cls, origin)
        check(cls, origin)
        if name in found and found[name] is not cls:
            raise UsageError(
                f"{origin}: {name!r} is already provided by {found[name].__module__}.{found[name].__qualname__}"
            )
        found[name] = cls

    for module in _walk(package) if modules is None else modules:
        for cls in _classes_in(module, base):
            add(cls, module.__name__)
    if _plugins_enabled():
        for ep in entry_points(group=group):
            try:
                obj: Any = ep.load()
            except Exception as exc:  # a broken plugin is reported, never ignored
                raise UsageError(
                    f"plugin {ep.name!r} ({ep.value}) in {group} failed to load: {exc}"
                ) from exc
            if inspect.ismodule(obj):
                for cls in _classes_in(obj, base):
                    add(cls, f"plugin {ep.name}")
            elif inspect.isclass(obj) and issubclass(obj, base):
                add(obj, f"plugin {ep.name}")
            else:
                raise UsageError(
                    f"plugin {ep.name!r} in {group} is neither a module nor a {base.__name__} class"
                )
    return dict(sorted(found.items()))


@cache
def faults() -> Mapping[str, type[Fault[Any]]]:
    """Every fault class by `family.kind` name."""
    base: type[Fault[Any]] = Fault  # type: ignore[type-abstract]
    return _collect("l2chaos.faults", "l2chaos.faults", base, _check_params)


@cache
def checkers() -> Mapping[str, type[Checker[Any]]]:
    """Every invariant checker class by name."""
    base: type[Checker[Any]] = Checker  # type: ignore[type-abstract]
    return _collect("l2chaos.invariants", "l2chaos.invariants", base, _check_params)


@cache
def protocols() -> dict[str, type[Any]]:
    """Every trader protocol class (load.protocol) by name."""
    from l2chaos.load.protocols.base import TraderProtocol

    return _collect("l2chaos.load.protocols", "l2chaos.protocols", TraderProtocol)


@cache
def platforms() -> dict[str, type[Any]]:
    """Every platform class (local processes, docker, plug-ins) by name."""
    from l2chaos.backends.platform import Platform

    builtins = [importlib.import_module(m) for m in _BUILTIN_PLATFORMS]
    return _collect("l2chaos.backends", "l2chaos.platforms", Platform, modules=builtins)


@cache
def stack_files() -> dict[str, Path]:
    """Registered stacks by name → path of their stack.yaml. A plug-in entry may name the
    file of a shipped stack of the same name (l2chaos's own entries do); one whose file
    is missing, or whose name another stack already has, is a UsageError naming it."""
    out: dict[str, Path] = {}
    pkg = importlib.import_module(_BUILTIN_STACKS)
    for root in pkg.__path__:
        for sub in sorted(Path(root).iterdir()):
            if (sub / "stack.yaml").is_file():
                out[sub.name] = sub / "stack.yaml"
    if _plugins_enabled():
        for ep in entry_points(group="l2chaos.stacks"):
            where = f"plugin {ep.name!r} ({ep.value}) in l2chaos.stacks"
            try:
                obj: Any = ep.load()
            except Exception as exc:
                raise UsageError(f"{where} failed to load: {exc}") from exc
            path = Path(getattr(obj, "STACK_FILE", obj))
            if not path.is_file():
                raise UsageError(f"{where}: {path} is not a file")
            known = out.setdefault(ep.name, path)
            if known.resolve() != path.resolve():
                raise UsageError(f"{where}: stack {ep.name!r} is already provided by {known}")
    return out


@cache
def listeners() -> dict[str, Callable[[Any], object]]:
    """Plug-in listeners by entry point name: `register(events)` adds its listeners to
    a run's lifecycle events (l2chaos.events)."""
    out: dict[str, Callable[[Any], object]] = {}
    for ep in entry_points(group="l2chaos.listeners") if _plugins_enabled() else ():
        try:
            obj: Any = ep.load()
        except Exception as exc:
            raise UsageError(f"plugin {ep.name!r} ({ep.value}) failed to load: {exc}") from exc
        if not callable(obj):
            raise UsageError(f"plugin {ep.name!r} in l2chaos.listeners is not callable")
        out[ep.name] = obj
    return dict(sorted(out.items()))

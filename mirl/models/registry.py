"""A name -> item registry filled by a decorator, one file per item (BasicSR's pattern).

The things a researcher swaps each have one: networks (:mod:`mirl.models.networks`), optimizers,
losses, learning-rate schedules (:mod:`mirl.study.optimizers`, ``losses``, ``schedules``) and the
main chain's pruning rules (:mod:`mirl.study.pruners`). A registry belongs to a package; the first
lookup imports every module of that package, so a new item is one new file there whose function
carries ``@<registry>.register("name")``. The study setting of the same name lists the names.
This module lives in the network layer, the highest concept layer, so every layer can import it.

Example:
    >>> colours = Registry("colour")
    >>> @colours.register("red")
    ... def red() -> str:
    ...     return "#f00"
    >>> colours.names(), colours.get("red")()
    (('red',), '#f00')
    >>> colours.get("blue")
    Traceback (most recent call last):
    mirl.errors.MirlError: unknown colour 'blue'; valid: red
"""

from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass
from typing import Any, Callable, Iterator

from mirl.errors import MirlError


@dataclass(frozen=True)
class Entry:
    """One registered item: its name, the item, whether a CUDA graph may capture it, and its
    one-line summary (the first line of its docstring)."""

    name: str
    item: Any
    capturable: bool = True
    summary: str = ""


class Registry:
    """Items by name; ``package`` (a dotted name) holds one module per item, imported on first use.

    ``register(name, capturable=False)`` marks an item a CUDA graph cannot replay (the training
    step then runs eagerly and says so).
    """

    def __init__(self, kind: str, package: str | None = None) -> None:
        self.kind, self.package = kind, package
        self._entries: dict[str, Entry] = {}
        self._loaded = package is None

    def register(self, name: str, *, capturable: bool = True) -> Callable[[Any], Any]:
        """Decorator: register the decorated function or class as ``name`` and return it unchanged."""

        def add(item: Any) -> Any:
            if name in self._entries and self._entries[name].item is not item:
                raise MirlError(f"{self.kind} {name!r} is registered twice; rename one of them")
            summary = ((getattr(item, "__doc__", None) or "").strip().splitlines() or [""])[0]
            self._entries[name] = Entry(name, item, capturable, summary)
            return item

        return add

    def unregister(self, name: str) -> None:
        """Forget ``name`` (tests that register an item of their own clean up with it)."""
        self._entries.pop(name, None)

    def _load(self) -> None:
        if self._loaded:
            return
        self._loaded = True
        module = importlib.import_module(self.package)  # type: ignore[arg-type]
        for info in pkgutil.iter_modules(module.__path__):
            importlib.import_module(f"{self.package}.{info.name}")

    def entry(self, name: str) -> Entry:
        """The entry called ``name``, or a :class:`MirlError` that lists the valid names."""
        self._load()
        if name not in self._entries:
            raise MirlError(f"unknown {self.kind} {name!r}; valid: {', '.join(self.names())}")
        return self._entries[name]

    def get(self, name: str) -> Any:
        """The item called ``name`` (see :meth:`entry`)."""
        return self.entry(name).item

    def names(self) -> tuple[str, ...]:
        """Every registered name, alphabetically."""
        self._load()
        return tuple(sorted(self._entries))

    def __contains__(self, name: object) -> bool:
        self._load()
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())


__all__ = ["Entry", "Registry"]

"""Branches: experiments that start from the ticket's saved level k and differ from it in one thing.

A study's ``main`` chain is the lottery ticket (prune by magnitude, reset, train). A branch of
level k reads main's mask and starting weights at level k and changes exactly one of: the mask
(``random_prune``, ``one_shot``, ``refill``), the starting weights (``random_reinit``), both
(``refill_scratch``), the network itself (``dense_same_size``, a narrower dense network) or the SGD
noise (``stability``). Each branch is one module of this package that defines one :class:`Branch`
subclass; the registry finds them all, so a new branch is one new file.

Branches of one level are independent of each other and of later levels: their inputs are main's
files of that level (and of level 0 for ``one_shot``), and their random draws come from a seed
derived from (replicate seed, level, branch folder name) alone (:func:`branch_seed`). Main's mask
and starting weights of level k exist as soon as main's level k - 1 is trained (the mask is saved
into main's level-k folder by whichever of them starts first), so a branch of level k trains
beside main's level k; a branch that reads main's *trained* level k (``needs_trained_level``:
``stability``) waits for it.

A branch declares its options (:class:`Option`, with a default and a help line, like a study
setting) and a code ``version``; ``--set 'branches=[{name: random_prune, scope: global}]'`` runs
a variant, whose folder is named by the branch and its non-default options
(``random_prune-scope_global``). A finished node records its branch's version and options, and a
node made by another version is stale (:mod:`mirl.study.stale`). docs/extending.md, "Writing a
branch", says how to write one.

Example:
    >>> {"random_reinit", "random_prune", "stability"} <= set(registry())
    True
    >>> registry()["random_reinit"].label
    'random re-init'
    >>> variant = get_branch("random_prune-scope_global")
    >>> variant.folder, variant.settings, branch_label(variant.folder)
    ('random_prune-scope_global', {'scope': 'global'}, 'random pruning (scope=global)')
    >>> branch_seed(0, 2, "random_reinit") == branch_seed(0, 2, "random_reinit") != branch_seed(0, 1, "random_reinit")
    True
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import importlib
import pkgutil
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, ClassVar, Mapping

import torch

from mirl.errors import MirlError


# The code version of the main chain (mirl.study.lottery: its mask, reset and training): raise it
# when a change there changes main's results; every finished node of an older one is then stale.
MAIN_VERSION = 1

_VALUE_TEXT = re.compile(r"^[A-Za-z0-9_.+]+$")  # what an option value may be in a folder name


@dataclass(frozen=True)
class BranchContext:
    """What a branch of one level may read: main's mask and starting weights of that level
    (``main_start``: theta_0 under ``reset=init``, the rewind point theta_t under ``reset=rewind``,
    for the reset tensors), theta_0 of the replicate (``theta0``, ``init.pt``), the replicate's
    folder and seed, the study's settings, and the branch's own seed."""

    cfg: Any  # mirl.study.config.StudyConfig
    replicate: Path
    replicate_seed: int
    level: int
    seed: int
    main_mask: Mapping[str, torch.Tensor]
    main_start: Mapping[str, torch.Tensor]
    unused: frozenset[str]
    theta0: Mapping[str, torch.Tensor] = dataclasses.field(default_factory=dict)


@dataclass(frozen=True)
class Option:
    """One option of a branch: its default, its meaning (``--list-settings`` shows both) and, for
    a word, the allowed values. The default's type (bool, int, float, str) is the option's type.

    Example:
        >>> Option("layerwise", "where the kept count is drawn", ("layerwise", "global")).parse("global")
        'global'
    """

    default: Any
    help: str
    choices: tuple[Any, ...] = ()

    def parse(self, raw: Any) -> Any:
        """``raw`` (a value or its text) as the option's type; a bad one raises ``ValueError``."""
        kind = type(self.default)
        if kind is bool:
            text = str(raw).lower()
            if isinstance(raw, bool) or text in ("true", "false"):
                value: Any = raw if isinstance(raw, bool) else text == "true"
            else:
                raise ValueError("true or false")
        elif kind is int:
            if isinstance(raw, bool) or (isinstance(raw, float) and not raw.is_integer()):
                raise ValueError("a whole number")
            value = int(raw)
        else:
            value = kind(raw)
        if self.choices and value not in self.choices:
            raise ValueError(", ".join(map(str, self.choices)))
        if not _VALUE_TEXT.match(_text(value)):
            raise ValueError("letters, digits, '_', '.' or '+' (it becomes part of a folder name)")
        return value


def _text(value: Any) -> str:
    """An option value as it appears in a folder name."""
    if isinstance(value, bool):
        return str(value).lower()
    return f"{value:g}" if isinstance(value, float) else str(value)


Evaluate = Callable[[torch.nn.Module, int], dict[str, Any]]  # (network, image limit or 0) -> scores


class Branch:
    """One branch: by default it is main itself (same mask, same start, same data order).

    Subclasses override what they change and say it in ``changes`` (shown in docs and reports).
    """

    name: ClassVar[str] = ""
    label: ClassVar[str] = ""
    changes: ClassVar[str] = ""
    runs_at_level_zero: ClassVar[bool] = False
    needs_trained_level: ClassVar[bool] = False  # reads main's trained level k: starts once it is done
    is_control: ClassVar[bool] = True  # a control is plotted and paired against the ticket
    scratch: ClassVar[bool] = False  # trains from step 0 with a fresh optimiser, even in a rewinding study
    version: ClassVar[int] = 1  # raise it when a change of this file changes the branch's results
    options: ClassVar[Mapping[str, Option]] = {}

    def __init__(self, settings: Mapping[str, Any] | None = None) -> None:
        given = dict(settings or {})
        unknown = sorted(set(given) - set(self.options))
        if unknown:
            valid = ", ".join(self.options) or "none"
            raise MirlError(f"branch {self.name!r} has no option {unknown[0]!r}; its options: {valid}")
        self.settings: dict[str, Any] = {}
        for key, option in self.options.items():
            try:
                self.settings[key] = option.parse(given[key]) if key in given else option.default
            except (TypeError, ValueError) as exc:
                raise MirlError(f"bad value {given[key]!r} for option {key} of branch {self.name}; valid: {exc}") from None

    @property
    def non_default(self) -> dict[str, Any]:
        """The options that differ from their defaults, by name."""
        return {k: v for k, v in sorted(self.settings.items()) if v != self.options[k].default}

    @property
    def folder(self) -> str:
        """The node folder's name: the branch's name, then ``-<option>_<value>`` per non-default option."""
        return self.name + "".join(f"-{k}_{_text(v)}" for k, v in self.non_default.items())

    @property
    def title(self) -> str:
        """The label with the non-default options, e.g. ``random pruning (scope=global)``."""
        extra = ", ".join(f"{k}={_text(v)}" for k, v in self.non_default.items())
        return f"{self.label} ({extra})" if extra else self.label

    def runs_at(self, level: int) -> bool:
        """Whether this branch has a node at ``level`` (every pruned level; level 0 if declared)."""
        return level >= 1 or self.runs_at_level_zero

    def mask(self, ctx: BranchContext) -> dict[str, torch.Tensor]:
        """The branch's mask at ``ctx.level`` (default: main's)."""
        return {n: m.clone() for n, m in ctx.main_mask.items()}

    def starting_weights(self, ctx: BranchContext) -> dict[str, torch.Tensor]:
        """The weights the branch trains from (default: main's, before masking)."""
        return {n: t.clone() for n, t in ctx.main_start.items()}

    def network_config(self, ctx: BranchContext) -> Any:
        """The configuration (:class:`mirl.models.config.ModelConfig`) of another network that the
        branch trains instead of the study's, from a fresh draw and with its full mask; ``None``
        (the default): the study's network under :meth:`mask`."""
        return None

    def data_seed(self, ctx: BranchContext) -> int:
        """Seed of the training data order and degradation draws (default: main's)."""
        return ctx.replicate_seed

    def after_training(self, ctx: BranchContext, trained: torch.nn.Module, evaluate: Evaluate) -> dict[str, Any]:
        """Extra entries for the branch's ``metrics.json`` once it is trained and scored."""
        return {}

    def is_current(self, cfg: Any, metrics: Mapping[str, Any]) -> bool:
        """Whether a finished node's extra entries were made with ``cfg``'s branch settings."""
        return True


def branch_seed(replicate_seed: int, level: int, branch: str) -> int:
    """A seed for one branch of one level of one replicate, independent of everything else.

    Example:
        >>> branch_seed(0, 1, "stability")
        1936822810
    """
    digest = hashlib.sha256(f"mirl-branch/{int(replicate_seed)}/{int(level)}/{branch}".encode()).digest()
    return int.from_bytes(digest[:4], "little") & 0x7FFFFFFF


@functools.cache
def registry() -> dict[str, Branch]:
    """``{name: branch}`` for every module of this package that defines a :class:`Branch`."""
    found: dict[str, Branch] = {}
    for info in pkgutil.iter_modules(__path__):
        module = importlib.import_module(f"{__name__}.{info.name}")
        for value in vars(module).values():
            if isinstance(value, type) and issubclass(value, Branch) and value is not Branch and value.name:
                found[value.name] = value()
    return dict(sorted(found.items()))


def get_branch(name: str) -> Branch:
    """The branch of a node folder name (``random_prune``, ``random_prune-scope_global``), or an
    error that lists the valid names or options."""
    return branch_variant(name)


def branch_variant(spec: str | Mapping[str, Any]) -> Branch:
    """A branch with its options, from a folder name or a mapping ``{name: ..., <option>: value}``.

    Example:
        >>> branch_variant({"name": "random_prune", "scope": "global"}).folder
        'random_prune-scope_global'
        >>> branch_variant({"name": "random_prune", "scope": "layerwise"}) is registry()["random_prune"]
        True
    """
    branches = registry()
    if isinstance(spec, Mapping):
        settings = {str(k): v for k, v in spec.items() if k != "name"}
        name = spec.get("name")
        if not isinstance(name, str):
            raise MirlError(f"a branch with options needs its name, e.g. {{name: random_prune, scope: global}}; got {dict(spec)!r}")
    else:
        name, *parts = str(spec).split("-")
        settings = {}
        for part in parts:
            options = branches[name].options if name in branches else {}
            key = max((k for k in options if part.startswith(k + "_")), key=len, default=None)
            if key is None:
                raise MirlError(f"{spec!r}: {part!r} is not <option>_<value> of branch {name!r} (its options: "
                                f"{', '.join(options) or 'none'})")
            settings[key] = part[len(key) + 1:]
    if name not in branches:
        raise MirlError(f"unknown branch {name!r}; valid: {', '.join(branches)}")
    branch = type(branches[name])(settings)
    return branches[name] if branch.folder == name else branch


def node_code(folder: str) -> dict[str, Any]:
    """What a finished node records of the code that made it: the version of its branch (main:
    :data:`MAIN_VERSION`) and the branch's options.

    Example:
        >>> node_code("main"), node_code("random_prune-scope_global")
        ({'version': 1, 'options': {}}, {'version': 1, 'options': {'scope': 'global'}})
    """
    if folder == "main":
        return {"version": MAIN_VERSION, "options": {}}
    branch = get_branch(folder)
    return {"version": int(branch.version), "options": dict(branch.settings)}


def trained_main_levels(folder: str, level: int) -> int:
    """How many of main's levels (0, 1, ...) a node must find trained before it starts: main's
    level k starts from levels below k, and so does a branch of level k, unless it reads main's
    trained level k itself (:attr:`Branch.needs_trained_level`).

    Example:
        >>> trained_main_levels("main", 2), trained_main_levels("random_reinit", 2), trained_main_levels("stability", 2)
        (2, 2, 3)
    """
    return level if folder == "main" else level + int(get_branch(folder).needs_trained_level)


def branch_label(name: str) -> str:
    """``main`` -> ``ticket``; a branch's label, with its non-default options; an unknown name as it is.

    Example:
        >>> branch_label("main"), branch_label("random_prune")
        ('ticket', 'random pruning')
    """
    if name == "main":
        return "ticket"
    try:
        return get_branch(name).title
    except MirlError:
        return name


def options_help() -> list[str]:
    """One line per option of every branch: ``<branch>.<option>  <default>  <help>``.

    Example:
        >>> any(line.startswith("random_prune.scope") for line in options_help())
        True
    """
    return [f"{name}.{key:<12} {option.default!r:12} {option.help}" + (f" ({', '.join(map(str, option.choices))})" if option.choices else "")
            for name, branch in registry().items() for key, option in branch.options.items()]


def branches_help() -> str:
    """The help of the ``branches`` setting, from the registry."""
    names = ", ".join(registry())
    return (f"branches of every pruned level of the ticket: {names}; a branch with options as "
            "{name: random_prune, scope: global} (docs/lottery.md)")


__all__ = ["MAIN_VERSION", "Branch", "BranchContext", "Option", "branch_label", "branch_seed", "branch_variant", "branches_help",
           "get_branch", "node_code", "options_help", "registry", "trained_main_levels"]

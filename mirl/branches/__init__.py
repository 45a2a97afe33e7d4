"""Branches: experiments that start from the ticket's saved level k and differ from it in one thing.

A study's ``main`` chain is the lottery ticket (prune by magnitude, reset, train). A branch of
level k reads main's mask and starting weights at level k and changes exactly one of: the mask
(``random_prune``, ``one_shot``, ``refill``), the starting weights (``random_reinit``) or the SGD noise
(``stability``). Each branch is one module of this package that defines one :class:`Branch`
subclass; the registry finds them all, so a new branch is one new file.

Branches of one level are independent of each other and of later levels: their inputs are main's
files of that level (and of level 0 for ``one_shot``), and their random draws come from a seed
derived from (replicate seed, level, branch name) alone (:func:`branch_seed`).

Example:
    >>> sorted(registry())
    ['one_shot', 'random_prune', 'random_reinit', 'refill', 'stability']
    >>> registry()["random_reinit"].label
    'random re-init'
    >>> branch_seed(0, 2, "random_reinit") == branch_seed(0, 2, "random_reinit") != branch_seed(0, 1, "random_reinit")
    True
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import pkgutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, ClassVar, Mapping

import torch

from mirl.errors import MirlError


@dataclass(frozen=True)
class BranchContext:
    """What a branch of one level may read: main's mask and starting weights of that level, the
    replicate's folder and seed, the study's settings, and the branch's own seed."""

    cfg: Any  # mirl.study.config.StudyConfig
    replicate: Path
    replicate_seed: int
    level: int
    seed: int
    main_mask: Mapping[str, torch.Tensor]
    main_start: Mapping[str, torch.Tensor]
    unused: frozenset[str]


Evaluate = Callable[[torch.nn.Module, int], dict[str, Any]]  # (network, image limit or 0) -> scores


class Branch:
    """One branch: by default it is main itself (same mask, same start, same data order).

    Subclasses override what they change and say it in ``changes`` (shown in docs and reports).
    """

    name: ClassVar[str] = ""
    label: ClassVar[str] = ""
    changes: ClassVar[str] = ""
    runs_at_level_zero: ClassVar[bool] = False
    is_control: ClassVar[bool] = True  # a control is plotted and paired against the ticket

    def runs_at(self, level: int) -> bool:
        """Whether this branch has a node at ``level`` (every pruned level; level 0 if declared)."""
        return level >= 1 or self.runs_at_level_zero

    def mask(self, ctx: BranchContext) -> dict[str, torch.Tensor]:
        """The branch's mask at ``ctx.level`` (default: main's)."""
        return {n: m.clone() for n, m in ctx.main_mask.items()}

    def starting_weights(self, ctx: BranchContext) -> dict[str, torch.Tensor]:
        """The weights the branch trains from (default: main's, before masking)."""
        return {n: t.clone() for n, t in ctx.main_start.items()}

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
    """The branch called ``name``, or an error that lists the valid names."""
    branches = registry()
    if name not in branches:
        raise MirlError(f"unknown branch {name!r}; valid: {', '.join(branches)}")
    return branches[name]


def branch_label(name: str) -> str:
    """``main`` -> ``ticket``; a branch's label; an unknown name as it is.

    Example:
        >>> branch_label("main"), branch_label("random_prune")
        ('ticket', 'random pruning')
    """
    if name == "main":
        return "ticket"
    return registry()[name].label if name in registry() else name


__all__ = ["Branch", "BranchContext", "branch_label", "branch_seed", "get_branch", "registry"]

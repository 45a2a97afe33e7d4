"""The networks a study can train (``--set model=<name>``), one file per network family.

An entry is a builder ``(impl) -> nn.Module``; ``impl`` is the study's ``impl`` setting
(``fast`` or ``reference``). Today every entry is a PromptIR preset (:mod:`.promptir`): the rest
of the study (checkpoints, the prunable rule's unused weights, narrowing) reads PromptIR's
configuration, so another all-in-one network registers here and must also be taught to
:mod:`mirl.models.checkpoints`.

Example:
    >>> networks.names()
    ('paper', 'small', 'tiny')
    >>> type(build_network("tiny")).__name__
    'PromptIR'
"""

from __future__ import annotations

from torch import nn

from mirl.models.registry import Registry

networks = Registry("network", __name__)


def build_network(name: str, impl: str = "fast") -> nn.Module:
    """A fresh network of the registered ``name`` (its random initial weights).

    Example:
        >>> build_network("tiny", impl="reference").impl
        'reference'
    """
    return networks.get(name)(impl)


__all__ = ["build_network", "networks"]

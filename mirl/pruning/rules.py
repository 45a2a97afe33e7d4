"""Which parameters are prunable, and density figures over a state dict.

* ``upstream``: every parameter whose name contains ``weight`` (convolutions, LayerNorm scales,
  the prompt linear layers, and six convolutions the forward pass never uses), as MIR-L does;
* ``conv``: only convolution and linear weights that the forward pass uses; the network declares
  the ones it never uses (``PromptIR.unused_in_forward``), and the caller passes them as ``unused``.
  Normalisation scales, biases, prompts and temperatures are never pruned (open_lth's rule).

A study's ``rule=auto`` (its default, :func:`mirl.study.config.effective_rule`) is ``conv`` under
layer-wise scope and ``upstream`` under global scope.

Example:
    >>> from mirl.models import build_model
    >>> net = build_model("tiny")
    >>> names = prunable_names(net.state_dict(), rule="conv", unused=net.unused_in_forward)
    >>> "output.weight" in names, "prompt1.prompt_param" in names, "chnl_reduce1.weight" in names
    (True, False, False)
"""

from __future__ import annotations

from typing import Collection, Mapping

import torch

RULES: tuple[str, ...] = ("upstream", "conv")


def is_prunable(name: str, tensor: torch.Tensor, rule: str = "upstream", unused: Collection[str] | None = None) -> bool:
    """Whether parameter ``name`` is prunable under ``rule``; ``unused``: the weights the network's
    forward pass never uses (required by ``conv``)."""
    if rule == "upstream":
        return "weight" in name
    if rule == "conv":
        if unused is None:
            raise ValueError("the conv rule needs the network's unused weights: pass unused=model.unused_in_forward")
        return name.endswith(".weight") and tensor.dim() >= 2 and name not in unused
    raise ValueError(f"unknown prunable rule {rule!r}; valid: {list(RULES)}")


def prunable_names(weights: Mapping[str, torch.Tensor], rule: str = "upstream", unused: Collection[str] | None = None) -> list[str]:
    """Names of the prunable tensors in ``weights``, in the mapping's order (see :func:`is_prunable`)."""
    return [name for name, tensor in weights.items() if is_prunable(name, tensor, rule, unused)]


def density_summary(weights: Mapping[str, torch.Tensor], rule: str = "upstream",
                    unused: Collection[str] | None = None) -> dict[str, float | int]:
    """Non-zero counts and densities of a (possibly pruned) state dict.

    ``density_prunable`` is non-zero prunable weights over all prunable weights;
    ``density_trainable`` counts every non-prunable parameter as alive (the paper's "10%"
    denominator: all trainable parameters).
    """
    names = set(prunable_names(weights, rule, unused))
    prunable = sum(weights[n].numel() for n in names)
    alive = sum(int(torch.count_nonzero(weights[n])) for n in names)
    total = sum(t.numel() for t in weights.values())
    return {
        "parameters": total,
        "prunable": prunable,
        "nonzero_prunable": alive,
        "nonzero_all": sum(int(torch.count_nonzero(t)) for t in weights.values()),
        "density_prunable": alive / prunable if prunable else 1.0,
        "density_trainable": (alive + total - prunable) / total if total else 1.0,
    }

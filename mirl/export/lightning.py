"""The published checkpoint format: a PyTorch Lightning ``.ckpt`` that MIR-L's code loads.

MIR-L's ``test.py`` evaluates a checkpoint with
``MIRLModel(opt).load_state_dict(torch.load(path)["state_dict"])`` (strict), where ``MIRLModel``
holds the network as ``self.net``; so every key carries the prefix ``net.``. Lightning's own
``MIRLModel.load_from_checkpoint(path, opt=opt)`` also reads ``pytorch-lightning_version`` (for
its checkpoint migration), ``epoch`` and ``global_step``; those are written too. Nothing else is:
no optimizer state, so ``Trainer.fit(ckpt_path=...)`` cannot resume training from the file.

Example:
    >>> from mirl.models import build_model
    >>> payload = lightning_payload(build_model("paper").state_dict(), "paper")
    >>> sorted(payload)
    ['epoch', 'global_step', 'pytorch-lightning_version', 'state_dict']
    >>> next(iter(payload["state_dict"]))
    'net.patch_embed.proj.weight'
"""

from __future__ import annotations

import os
from typing import Any, Mapping

import torch

from mirl.errors import MirlError
from mirl.fileio import atomic_torch_save

PUBLISHED_PRESET = "paper"
PREFIX = "net."
# The Lightning release recorded in the file. Lightning migrates checkpoints written by older
# releases; 2.1.0 is past every migration that touches the keys written here.
LIGHTNING_VERSION = "2.1.0"
EXTRA_KEYS: dict[str, Any] = {"epoch": 0, "global_step": 0, "pytorch-lightning_version": LIGHTNING_VERSION}


def lightning_payload(state: Mapping[str, torch.Tensor], preset: str, source: str = "the network",
                      epoch: int = 0, global_step: int = 0) -> dict[str, Any]:
    """``{"state_dict": {"net." + name: tensor}, "epoch", "global_step", "pytorch-lightning_version"}``.

    Only the published architecture (``preset == "paper"``) fits MIR-L's ``MIRLModel``; any
    other preset raises :class:`MirlError` naming it.
    """
    if preset != PUBLISHED_PRESET:
        raise MirlError(
            f"{source}: network preset {preset!r} is not the published architecture ({PUBLISHED_PRESET!r}); "
            "MIR-L's code builds PromptIR with fixed widths, so only a paper-preset network can be written "
            "as a Lightning checkpoint. Use --format sparse or --format onnx for this network."
        )
    tensors = {PREFIX + name: t.detach().cpu().contiguous().clone() for name, t in state.items()}
    return {**EXTRA_KEYS, "epoch": int(epoch), "global_step": int(global_step), "state_dict": tensors}


def export_lightning(path: str | os.PathLike, state: Mapping[str, torch.Tensor], preset: str,
                     source: str = "the network") -> int:
    """Write the Lightning checkpoint atomically (loads with ``weights_only=True``); return its size.

    Example:
        >>> export_lightning("mirl_ticket.ckpt", ticket.state_dict(), ticket.preset)  # doctest: +SKIP
    """
    atomic_torch_save(lightning_payload(state, preset, source), path)
    return os.path.getsize(path)


__all__ = ["EXTRA_KEYS", "LIGHTNING_VERSION", "PUBLISHED_PRESET", "export_lightning", "lightning_payload"]

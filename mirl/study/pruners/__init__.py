"""How the main chain picks the weights it prunes each round (``--set pruner=<name>``), one file
per rule.

An entry is ``prune(ctx: PruneContext) -> Mask``: from main's mask of the previous level
(``ctx.previous``), remove ``ctx.cfg.fraction`` of the surviving prunable weights (``ctx.cfg.rule``
says which tensors are prunable, ``ctx.cfg.scope`` whether one ranking spans all of them or each
tensor has its own), and return the new mask; a weight pruned before stays pruned. The rule may
read main's trained weights of the previous level (``ctx.trained``), the level's starting weights
(``ctx.start``, theta_0 or the rewind point, not yet masked) and the gradient of the study's loss on
a few training batches (:meth:`PruneContext.loss_gradients`).

Example:
    >>> pruners.names()
    ('magnitude', 'snip')
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import torch

from mirl.models.registry import Registry
from mirl.pruning.mask import Mask

pruners = Registry("pruner", __name__)


@dataclass(frozen=True)
class PruneContext:
    """What a pruning rule of main's ``level`` may read (see the package's docstring).

    ``dataset`` yields ``(degraded, clean, task)`` training pairs; ``seed`` is the replicate's
    data seed; ``device`` where gradients are computed.
    """

    cfg: Any  # mirl.study.config.StudyConfig
    level: int
    previous: Mask
    trained: Mapping[str, torch.Tensor]
    start: Mapping[str, torch.Tensor]
    unused: frozenset[str]
    dataset: Any = None
    seed: int = 0
    device: torch.device = torch.device("cpu")

    def loss_gradients(self, weights: Mapping[str, torch.Tensor], batches: int) -> dict[str, torch.Tensor]:
        """Gradient of the study's loss (averaged over ``batches`` training batches of the
        study's batch size, in the order level ``self.level``'s first epoch draws them) at
        ``weights`` with ``self.previous`` applied; name -> tensor on the CPU, zeros where no
        gradient flows.

        Example:
            >>> grads = ctx.loss_gradients(ctx.start, batches=2)  # doctest: +SKIP
        """
        from mirl.models.networks import build_network
        from mirl.pruning.mask import apply_mask
        from mirl.study.distributed import DistInfo
        from mirl.study.losses import losses
        from mirl.study.train import epoch_batches

        if self.dataset is None:
            raise ValueError("loss_gradients needs the training set: give PruneContext a dataset")
        net = build_network(self.cfg.model, self.cfg.impl)
        net.load_state_dict(dict(weights))
        apply_mask(net, self.previous)
        net.to(self.device).train()
        loss_fn = losses.get(self.cfg.loss)
        if hasattr(self.dataset, "seed"):
            self.dataset.seed = self.seed
        if hasattr(self.dataset, "set_epoch"):
            self.dataset.set_epoch(self.level * 100_000)  # as train_level's first epoch of this level
        order = epoch_batches(len(self.dataset), self.cfg.batch_size, self.seed, self.level, 0, DistInfo(), batches)
        for degraded, clean, _task in torch.utils.data.DataLoader(self.dataset, batch_sampler=order):
            loss = loss_fn(net(degraded.to(self.device)).float(), clean.to(self.device)) / len(order)
            loss.backward()
        return {n: (p.grad.detach().cpu() if p.grad is not None else torch.zeros_like(p, device="cpu"))
                for n, p in net.named_parameters()}


def prune_main(name: str, ctx: PruneContext) -> Mask:
    """Main's new mask by the rule called ``name``.

    Example:
        >>> mask = prune_main("magnitude", ctx)  # doctest: +SKIP
    """
    return pruners.get(name)(ctx)


__all__ = ["PruneContext", "prune_main", "pruners"]

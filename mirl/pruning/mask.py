"""Name-keyed masks: ``{parameter name: bool tensor}``, never lists aligned to parameter order.

Example:
    >>> from mirl.models import build_model
    >>> model = build_model("tiny")
    >>> mask = full_mask(model.state_dict())
    >>> report = sparsity_report(mask, model.state_dict())
    >>> report["prunable"]["density"]
    1.0
"""

from __future__ import annotations

import os
from typing import Any, Collection, Iterable, Mapping, Sequence

import torch
from torch import nn

from mirl.errors import MirlError
from mirl.fileio import atomic_torch_save, atomic_write_json


from .rules import prunable_names

Mask = dict[str, torch.Tensor]


def full_mask(weights: Mapping[str, torch.Tensor], rule: str = "upstream", unused: Collection[str] | None = None) -> Mask:
    """A mask that keeps every prunable weight (``rule`` and ``unused`` as in :func:`prunable_names`)."""
    return {n: torch.ones_like(weights[n], dtype=torch.bool) for n in prunable_names(weights, rule, unused)}


class MaskApplier:
    """Applies one mask to a model's weights and gradients with fused multiplies.

    The float masks are prepared once (on the parameters' device and dtype), so a training step
    pays two ``torch._foreach_mul_`` calls, not a per-tensor Python loop with conversions.

    Example:
        >>> from mirl.models import build_model
        >>> net = build_model("tiny")
        >>> applier = MaskApplier(net, {"output.weight": net.output.weight.abs() > 0.01})
        >>> applier.weights()
    """

    def __init__(self, model: nn.Module, mask: Mapping[str, torch.Tensor]) -> None:
        params = dict(model.named_parameters())
        missing = [n for n in mask if n not in params]
        if missing:
            raise KeyError(f"mask names {missing[:4]} are not parameters of the model")
        self._prepare([params[n] for n in mask], [mask[n] for n in mask])

    @classmethod
    def for_tensors(cls, params: Sequence[torch.Tensor], masks: Sequence[torch.Tensor]) -> MaskApplier:
        """An applier of ``masks[i]`` to ``params[i]``, tensors that are not one model's parameters
        (the stacked weights of nodes trained as one, :mod:`mirl.study.batched`).

        Example:
            >>> w = torch.nn.Parameter(torch.ones(2, 3))
            >>> MaskApplier.for_tensors([w], [torch.tensor([[True, False, True]] * 2)]).weights()
            >>> w.sum().item()
            4.0
        """
        applier = cls.__new__(cls)
        applier._prepare(params, masks)
        return applier

    def _prepare(self, params: Sequence[torch.Tensor], masks: Sequence[torch.Tensor]) -> None:
        self.params = list(params)
        # same device, dtype and memory format (channels-last weights) as the parameter
        self.masks = [torch.empty_like(p, requires_grad=False).copy_(m) for p, m in zip(self.params, masks)]

    @torch.no_grad()
    def weights(self) -> None:
        """Zero the pruned weights in place."""
        if self.params:
            torch._foreach_mul_(self.params, self.masks)

    @torch.no_grad()
    def grads(self) -> None:
        """Zero the gradients of pruned weights in place (parameters without a gradient are skipped)."""
        pairs = [(p.grad, m) for p, m in zip(self.params, self.masks) if p.grad is not None]
        if pairs:  # a gradient has its parameter's dtype, as the prepared masks do
            torch._foreach_mul_([g for g, _ in pairs], [m for _, m in pairs])


def apply_mask(model: nn.Module, mask: Mapping[str, torch.Tensor]) -> None:
    """Zero the pruned weights of ``model`` in place."""
    MaskApplier(model, mask).weights()


def mask_gradients(model: nn.Module, mask: Mapping[str, torch.Tensor]) -> None:
    """Zero the gradients of pruned weights in place."""
    MaskApplier(model, mask).grads()


def sparsity_report(mask: Mapping[str, torch.Tensor], weights: Mapping[str, torch.Tensor], unused: Collection[str] = (),
                    **extra: Any) -> dict[str, Any]:
    """Kept/total per tensor, totals over prunable weights and over all trainable parameters.

    The trainable denominator counts every non-prunable parameter as kept: that is how the
    paper's "10% of the parameters" is counted. ``empty_tensors`` lists tensors that the forward
    pass uses and the mask removes entirely (layer collapse: an empty ``output.weight`` turns
    PromptIR into the identity, through its global residual); ``unused`` names the weights the
    network's forward pass never uses (``model.unused_in_forward``), which may be empty harmlessly.
    """
    tensors = {n: {"kept": int(m.sum()), "total": m.numel()} for n, m in mask.items()}
    empty = [n for n, t in tensors.items() if t["kept"] == 0 and n not in unused]
    kept = sum(t["kept"] for t in tensors.values())
    total = sum(t["total"] for t in tensors.values())
    all_params = sum(w.numel() for w in weights.values())
    kept_all = kept + all_params - total
    return {
        **extra,
        "prunable": {"kept": kept, "total": total, "density": kept / total if total else 1.0},
        "trainable": {"kept": kept_all, "total": all_params, "density": kept_all / all_params if all_params else 1.0},
        "empty_tensors": empty,
        "tensors": tensors,
    }


def save_mask(path: str | os.PathLike, mask: Mapping[str, torch.Tensor], *, exclusive: bool = False) -> None:
    """Save a mask atomically (a dict of bool tensors; loads with ``weights_only=True``);
    ``exclusive``: never over another process's mask (``FileExistsError``, see
    :func:`mirl.fileio.atomic_open`)."""
    atomic_torch_save({n: m.detach().to("cpu", torch.bool) for n, m in mask.items()}, path, exclusive=exclusive)


def load_mask(path: str | os.PathLike, map_location: str | torch.device = "cpu",
              expected: Mapping[str, torch.Tensor] | None = None) -> Mask:
    """Load a mask written by :func:`save_mask`; with ``expected`` (a mask or weights), its names
    and shapes must be exactly those (:func:`check_mask_fits`).

    Example:
        >>> import tempfile, torch
        >>> path = tempfile.mkdtemp() + "/mask.pt"
        >>> save_mask(path, {"w": torch.tensor([True, False])})
        >>> load_mask(path, expected={"w": torch.zeros(2)})["w"].tolist()
        [True, False]
    """
    try:
        mask = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # damaged or foreign file
        raise MirlError(f"{path}: not a readable mask file ({str(exc).splitlines()[0][:120]})") from None
    if not isinstance(mask, dict) or not all(isinstance(v, torch.Tensor) and v.dtype == torch.bool for v in mask.values()):
        raise MirlError(f"{path}: not a mask (expected a dict of bool tensors)")
    if expected is not None:
        check_mask_fits(mask, expected, path)
    return mask


def check_mask_fits(mask: Mapping[str, torch.Tensor], expected: Mapping[str, torch.Tensor], source: str | os.PathLike) -> None:
    """Refuse a mask whose tensor names or shapes differ from ``expected``'s (a mask of the same
    rule, or the network's weights restricted to the mask's names): a wrong shape would be
    broadcast by ``copy_`` and leave the tensor unpruned.

    Example:
        >>> check_mask_fits({"w": torch.ones(3, 3, dtype=torch.bool)}, {"w": torch.ones(4)}, "mask.pt")
        Traceback (most recent call last):
        ...
        mirl.errors.MirlError: mask.pt: the mask does not fit the network: w has shape (3, 3), the network's is (4,); remove the file to compute the mask again
    """
    missing = [n for n in expected if n not in mask]
    extra = [n for n in mask if n not in expected]
    shapes = [n for n in mask if n in expected and tuple(mask[n].shape) != tuple(expected[n].shape)]
    if shapes:
        n = shapes[0]
        problem = f"{n} has shape {tuple(mask[n].shape)}, the network's is {tuple(expected[n].shape)}" + (
            f" (and {len(shapes) - 1} more)" if len(shapes) > 1 else "")
    elif missing or extra:
        problem = (f"it lacks {len(missing)} tensor(s) (e.g. {missing[0]})" if missing else "") + (
            "; " if missing and extra else "") + (f"it names {len(extra)} unknown tensor(s) (e.g. {extra[0]})" if extra else "")
    else:
        return
    raise MirlError(f"{source}: the mask does not fit the network: {problem}; remove the file to compute the mask again")


def write_sparsity_report(path: str | os.PathLike, mask: Mapping[str, torch.Tensor], weights: Mapping[str, torch.Tensor],
                          unused: Collection[str] = (), **extra: Any) -> dict[str, Any]:
    """Compute :func:`sparsity_report` and write it as JSON atomically."""
    report = sparsity_report(mask, weights, unused, **extra)
    atomic_write_json(path, report)
    return report


def masks_equal(a: Mapping[str, torch.Tensor], b: Mapping[str, torch.Tensor]) -> bool:
    """Same names and the same bits."""
    return a.keys() == b.keys() and all(torch.equal(a[n].cpu(), b[n].cpu()) for n in a)


def count_kept(mask: Mapping[str, torch.Tensor], names: Iterable[str] | None = None) -> int:
    """Number of kept weights (over ``names`` or the whole mask)."""
    return sum(int(mask[n].sum()) for n in (names if names is not None else mask))

"""Compact export of a pruned network: a packed bit mask plus only the surviving values.

The file is a plain dict of tensors (``weights_only=True`` loads it) with ``format: mirl.sparse``;
:func:`mirl.models.load_checkpoint` reads it back to the same network. The format belongs to the
checkpoint I/O; :mod:`mirl.pruning` re-exports :func:`export_sparse` and :func:`densify`.

Example:
    >>> import torch
    >>> bits = pack_bits(torch.tensor([True, False, True]))
    >>> unpack_bits(bits, 3).tolist()
    [True, False, True]
"""

from __future__ import annotations

import os
from typing import Any, Mapping

import torch

from mirl.errors import MirlError
from mirl.fileio import atomic_torch_save

SPARSE_FORMAT = "mirl.sparse"
VALUE_DTYPES: dict[str, torch.dtype] = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
_SHIFTS = torch.tensor([7, 6, 5, 4, 3, 2, 1, 0], dtype=torch.uint8)


def pack_bits(mask: torch.Tensor) -> torch.Tensor:
    """Pack a bool tensor (flattened) into uint8, eight positions per byte, most significant first."""
    flat = mask.reshape(-1).to(torch.uint8).cpu()
    pad = (-flat.numel()) % 8
    if pad:
        flat = torch.cat([flat, flat.new_zeros(pad)])
    return (flat.view(-1, 8) << _SHIFTS).sum(dim=1, dtype=torch.uint8)


def unpack_bits(bits: torch.Tensor, count: int) -> torch.Tensor:
    """Inverse of :func:`pack_bits`: the first ``count`` positions as a flat bool tensor."""
    return ((bits.reshape(-1, 1) >> _SHIFTS) & 1).reshape(-1)[:count].bool()


def sparse_payload(
    state: Mapping[str, torch.Tensor],
    mask: Mapping[str, torch.Tensor],
    config: Mapping[str, Any],
    dtype: str = "float32",
    metadata: Mapping[str, Any] | None = None,
    narrow: Mapping[str, int] | None = None,
) -> dict[str, Any]:
    """Build the export: masked tensors become (bits, surviving values); the rest is stored dense.

    ``narrow`` (a narrowed network's ``narrow_widths``) is recorded as in a mirl checkpoint, so that
    :func:`mirl.models.load_checkpoint` rebuilds the narrowed network the tensors belong to.
    """
    if dtype not in VALUE_DTYPES:
        raise MirlError(f"unknown value dtype {dtype!r}; valid: {list(VALUE_DTYPES)}")
    torch_dtype = VALUE_DTYPES[dtype]
    sparse: dict[str, Any] = {}
    dense: dict[str, torch.Tensor] = {}
    for name, tensor in state.items():
        tensor = tensor.detach().cpu()
        if name in mask:
            keep = mask[name].cpu().reshape(-1)
            sparse[name] = {
                "shape": list(tensor.shape),
                "bits": pack_bits(keep),
                "values": tensor.reshape(-1)[keep].to(torch_dtype),
            }
        else:
            dense[name] = tensor.to(torch_dtype) if tensor.is_floating_point() else tensor
    payload = {
        "format": SPARSE_FORMAT,
        "version": 1,
        "value_dtype": dtype,
        "config": dict(config),
        "metadata": dict(metadata or {}),
        "sparse": sparse,
        "dense": dense,
    }
    if narrow is not None:
        payload["narrow"] = {str(k): int(v) for k, v in narrow.items()}
    return payload


def densify(payload: Mapping[str, Any], source: str = "sparse export") -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """Rebuild ``(float32 state dict, mask)`` from a sparse export; ``source`` names the file in errors.

    Every recorded shape is checked against the bits and values present before anything is
    allocated: a damaged or hostile file cannot ask for more memory than its own bits describe.
    """
    state: dict[str, torch.Tensor] = {}
    mask: dict[str, torch.Tensor] = {}
    try:
        for name, entry in payload["sparse"].items():
            shape, bits, values = entry["shape"], entry["bits"], entry["values"]
            if not isinstance(bits, torch.Tensor) or bits.dtype != torch.uint8 or not isinstance(values, torch.Tensor) \
                    or not values.is_floating_point():
                raise MirlError(f"{source}: sparse tensor {name} is not packed bits (uint8) and floating-point values; "
                                "the file is damaged: re-export it with `mirl export`")
            if not isinstance(shape, (list, tuple)) or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in shape):
                raise MirlError(f"{source}: sparse tensor {name} records the shape {shape!r}, not a list of whole numbers; "
                                "the file is damaged: re-export it with `mirl export`")
            count = 1
            for s in shape:
                count *= s
            if not count <= 8 * bits.numel() < count + 8:
                raise MirlError(f"{source}: sparse tensor {name} records the shape {list(shape)} ({count:,} positions) but "
                                f"holds {8 * bits.numel():,} mask bits; the file is damaged: re-export it with `mirl export`")
            keep = unpack_bits(bits, count)
            if int(keep.sum()) != values.numel():
                raise MirlError(f"{source}: sparse export is inconsistent: {name} has {values.numel()} values for "
                                f"{int(keep.sum())} kept positions; re-export it with `mirl export`")
            flat = torch.zeros(count, dtype=torch.float32)
            flat[keep] = values.reshape(-1).to(torch.float32)
            state[name] = flat.view(shape)
            mask[name] = keep.view(shape)
        for name, tensor in payload["dense"].items():
            state[name] = tensor.to(torch.float32) if tensor.is_floating_point() else tensor
    except (KeyError, TypeError, AttributeError) as exc:
        raise MirlError(f"{source}: sparse export is malformed (missing {exc}); re-export it with `mirl export`") from None
    return state, mask


def export_sparse(
    path: str | os.PathLike,
    state: Mapping[str, torch.Tensor],
    mask: Mapping[str, torch.Tensor],
    config: Mapping[str, Any],
    dtype: str = "float32",
    metadata: Mapping[str, Any] | None = None,
    narrow: Mapping[str, int] | None = None,
) -> int:
    """Write a sparse export atomically (``narrow``: the narrowed widths, see :func:`sparse_payload`); return its size in bytes."""
    atomic_torch_save(sparse_payload(state, mask, config, dtype, metadata, narrow), path)
    return os.path.getsize(path)

"""``mirl export``: write only what survived pruning (packed bit mask + surviving values)."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("source", help="a level folder (runs/<run>/level_<k>) or a checkpoint")
    parser.add_argument("--out", required=True, help="output file, e.g. level_15.sparse.pt")
    parser.add_argument("--dtype", default="float32", choices=["float32", "float16", "bfloat16"], help="storage type of the surviving values")
    parser.add_argument("--mask", help="mask file (default: mask.pt in the level folder; else the non-zero weights)")
    parser.add_argument("--rule", default="upstream", choices=["upstream", "conv"], help="prunable tensors when the mask comes from non-zeros")
    parser.add_argument("--allow-pickle", action="store_true", help="allow arbitrary unpickling (trusted files only)")


def run(args: argparse.Namespace) -> int:
    import os
    from pathlib import Path

    from mirl.models import load_checkpoint
    from mirl.pruning.mask import load_mask
    from mirl.pruning.rules import prunable_names
    from mirl.pruning.sparse import export_sparse

    source = Path(args.source)
    checkpoint = source / "model.pt" if source.is_dir() else source
    model, meta = load_checkpoint(checkpoint, allow_pickle=args.allow_pickle)
    state = model.state_dict()
    mask_path = Path(args.mask) if args.mask else (source / "mask.pt" if source.is_dir() else None)
    if mask_path is not None and mask_path.exists():
        mask = load_mask(mask_path)
    else:
        mask = {n: state[n] != 0 for n in prunable_names(state, args.rule)}
    size = export_sparse(args.out, state, mask, meta["config"], args.dtype, {"source": str(checkpoint), **meta["metadata"]})
    dense = os.path.getsize(checkpoint)
    print(f"wrote {args.out}: {size:,} bytes ({size / dense:.1%} of {checkpoint.name}, {dense:,} bytes)")
    return 0

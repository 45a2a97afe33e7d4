"""``mirl info CHECKPOINT`` (a file, or a folder of a study): preset, parameter count, non-zero weights and density."""

from __future__ import annotations

import argparse
import json

from mirl.commands import add_checkpoint_arguments, checkpoint_file


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoint", help="a Lightning .ckpt, a state dict, a mirl checkpoint/export, or a study, replicate, level or branch folder")
    parser.add_argument("--rule", default="upstream", choices=["upstream", "conv"], help="which weights count as prunable")
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")
    add_checkpoint_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from mirl.models import load_checkpoint
    from mirl.pruning.rules import density_summary

    model, meta = load_checkpoint(checkpoint_file(args.checkpoint), allow_pickle=args.allow_pickle, config=args.model)
    summary = density_summary(model.state_dict(), rule=args.rule, unused=model.unused_in_forward)
    record = {"checkpoint": args.checkpoint, "format": meta["format"], "preset": meta["preset"], "rule": args.rule,
              "narrowed": bool(meta.get("narrow")), **summary}
    if args.json:
        print(json.dumps(record, indent=2))
        return 0
    print(f"checkpoint          {args.checkpoint}  ({meta['format']})")
    print(f"preset              {meta['preset']}" + ("  (narrowed: dead channels removed; densities are of the narrowed tensors)"
                                                        if meta.get("narrow") else ""))
    print(f"parameters          {summary['parameters']:,}")
    print(f"prunable ({args.rule:8s}) {summary['prunable']:,}")
    print(f"non-zero prunable   {summary['nonzero_prunable']:,}")
    print(f"density (prunable)  {summary['density_prunable']:.2%}")
    print(f"density (trainable) {summary['density_trainable']:.2%}   non-prunable parameters counted as alive")
    return 0

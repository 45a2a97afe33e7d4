"""``mirl lottery``: run (or resume) an iterative magnitude pruning study."""

from __future__ import annotations

import argparse
import os
from typing import Sequence


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from mirl.config import STUDY_PRESETS

    parser.add_argument("--preset", default="quickstart", choices=sorted(STUDY_PRESETS), help="starting configuration (default: quickstart)")
    parser.add_argument("--config", help="YAML/JSON file of settings, applied after the preset")
    parser.add_argument("--set", nargs="+", default=[], metavar="KEY=VALUE", help="override settings, e.g. --set rounds=3 fraction=0.2 scope=layerwise")
    parser.add_argument("--out", help="folder that holds the runs (default: <project>/runs)")
    parser.add_argument("--seed", type=int, help="shorthand for --set seed=N")
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], help="shorthand for --set device=...")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.add_argument("--list-settings", action="store_true", help="print every setting with its value for this preset and exit")


def run(args: argparse.Namespace) -> int:
    from mirl.config import HELP, parse_assignments, study_preset
    from mirl.lottery import run_replicates

    overrides = parse_assignments(args.set)
    if args.seed is not None:
        overrides["seed"] = args.seed
    if args.device is not None:
        overrides["device"] = args.device
    if args.list_settings:
        cfg = study_preset(args.preset, overrides, args.config)
        settings = cfg.to_dict()
        width = max(map(len, settings))
        for key, value in settings.items():
            print(f"{key:{width}s} {value!r:28s} {HELP.get(key, '')}")
        return 0
    run_dirs = run_replicates(args.preset, overrides, args.config, out=args.out, progress=not args.no_progress)
    if os.environ.get("RANK", "0") == "0":
        print_summary(run_dirs)
        for run_dir in run_dirs:
            print(f"run: {run_dir}")
    return 0


def print_summary(run_dirs: Sequence[str | os.PathLike]) -> None:
    """One line per level finished by every replicate: remaining weights (both denominators), the
    mean PSNR over tasks against the degraded input's, and the gain with its 95% interval and n;
    then a warning for every task and level where the network makes images worse than its input."""
    from mirl.evidence import MEAN, curve_table, harm_warnings, scores_table, variant_label
    from mirl.results import load_config

    label = variant_label({"control": load_config(run_dirs[0]).get("control", "none")})
    scores = scores_table({label: list(run_dirs)})
    if scores.empty:
        return
    psnr, gain = (c[c["task"] == MEAN].set_index("level") for c in (curve_table(scores, m) for m in ("psnr", "gain")))
    convention = ", ".join(sorted(set(scores["convention"])))
    print(f"level  prunable  trainable  mean PSNR  input PSNR  gain over the input [95% interval]  n"
          f"   (metric convention: {convention}; {gain['method'].iloc[0]})")
    for level, row in gain.iterrows():
        interval = f"{row['mean']:+6.2f} dB [{row['low']:+.2f}, {row['high']:+.2f}]"
        print(f"{level:>5}  {100 * row['remaining_prunable']:7.2f}%  {100 * row['remaining_trainable']:8.2f}%"
              f"  {psnr.loc[level, 'mean']:9.2f}  {psnr.loc[level, 'mean'] - row['mean']:10.2f}"
              f"  {interval:<34}  {row['images']} img x {row['replicates']} rep")
    for line in harm_warnings(scores):
        print(f"warning: {line}")

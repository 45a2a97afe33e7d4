"""``mirl lottery``: run (or resume) an iterative magnitude pruning study."""

from __future__ import annotations

import argparse
import os


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from mirl.config import PRESETS

    parser.add_argument("--preset", default="quickstart", choices=sorted(PRESETS), help="starting configuration (default: quickstart)")
    parser.add_argument("--config", help="YAML/JSON file of settings, applied after the preset")
    parser.add_argument("--set", nargs="+", default=[], metavar="KEY=VALUE", help="override settings, e.g. --set rounds=3 fraction=0.2 scope=layerwise")
    parser.add_argument("--out", help="folder that holds the runs (default: <project>/runs)")
    parser.add_argument("--seed", type=int, help="shorthand for --set seed=N")
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], help="shorthand for --set device=...")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.add_argument("--list-settings", action="store_true", help="print every setting with its value for this preset and exit")


def run(args: argparse.Namespace) -> int:
    from mirl.config import HELP, parse_assignments, study_preset
    from mirl.lottery import run_study

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
    run_dir = run_study(args.preset, overrides, args.config, out=args.out, progress=not args.no_progress)
    if os.environ.get("RANK", "0") == "0":
        print_summary(run_dir)
        print(f"run: {run_dir}")
    return 0


def print_summary(run_dir: str | os.PathLike) -> None:
    """One line per finished level: remaining weights (both denominators) and mean scores."""
    from mirl.results import summary_table

    table = summary_table(run_dir)
    if table.empty:
        return
    convention = table["convention"].iloc[0]
    print(f"level  prunable  trainable  mean PSNR  mean SSIM   (metric convention: {convention})")
    for row in table.itertuples():
        print(f"{row.level:>5}  {100 * row.remaining_prunable:7.2f}%  {100 * row.remaining_trainable:8.2f}%"
              f"  {row.mean_psnr:9.2f}  {row.mean_ssim:9.4f}")

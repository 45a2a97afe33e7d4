"""``mirl evaluate RUN_OR_CHECKPOINT --data DIR --tasks ...``: PSNR/SSIM tables, convention named."""

from __future__ import annotations

import argparse

from mirl.commands import add_checkpoint_arguments

# literal copies (kept in sync by tests) so that building the parser does not import torch
DEVICE_CHOICES = ("auto", "cpu", "cuda")
CONVENTION_CHOICES = ("upstream", "y")


def add_arguments(parser: argparse.ArgumentParser) -> None:

    parser.add_argument("target", metavar="RUN_OR_CHECKPOINT", help="a study folder runs/<name> (replicate 0: every level_<k>/main/model.pt), a replicate folder, a level or branch folder, or a checkpoint file")
    parser.add_argument("--data", default=None, help="dataset root holding test/ (published layout or 'mirl make-dataset' output); "
                        "default: the study's own data set, for a checkpoint of a study")
    parser.add_argument("--tasks", nargs="+", default=None, help="tasks or aliases (all_in_one, denoise); default: the tasks "
                        "the checkpoint was trained on (a study's tasks; all_in_one outside a study). Others are shown apart")
    parser.add_argument("--out", default=None, help="folder for results.csv and results.json")
    parser.add_argument("--convention", default="upstream", choices=CONVENTION_CHOICES, help="metric convention (default upstream)")
    parser.add_argument("--device", default="auto", choices=DEVICE_CHOICES)
    parser.add_argument("--precision", default="fp32", choices=["fp32", "bf16"], help="bf16 autocast: faster on recent GPUs; see docs/benchmarks.md for its PSNR cost")
    parser.add_argument("--pad", action="store_true", help="pad test images to a multiple of 16 instead of centre-cropping")
    parser.add_argument("--tile", type=int, default=None, help="tile size for large test images")
    parser.add_argument("--limit", type=int, default=None, help="at most this many images per task (default and 0: all, as the study's eval_limit)")
    parser.add_argument("--seed", type=int, default=0, help="test-noise seed (default 0)")
    parser.add_argument("--split", default="test", choices=["test", "val"], help="score the test images (default) or the "
                        "validation images (val/: choose a recipe on these, never on test)")
    parser.add_argument("--save-images", action="store_true", help="also write restored PNGs under --out/images/<model>/")
    parser.add_argument("--skip-bad", action="store_true", help="skip bad test files with a warning instead of stopping")
    add_checkpoint_arguments(parser)
    parser.add_argument("--no-progress", action="store_true", help="hide progress bars")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from mirl.data import expand_tasks
    from mirl.device import resolve_device
    from mirl.errors import MirlError
    from mirl.scoring.evaluate import EvalSettings, check_limit, evaluate_model, find_checkpoints, format_table, write_results_table
    from mirl.models import load_checkpoint
    from mirl.analysis.results import checkpoint_origin

    from mirl.scoring.restore import DEFAULT_OVERLAP, check_tiling

    check_tiling(args.tile, DEFAULT_OVERLAP)  # evaluation tiles overlap as restore's do
    check_limit(args.limit)
    origin = checkpoint_origin(args.target)
    data = args.data or origin.data_root()
    if data is None:
        raise MirlError(f"{args.target} is not inside a study folder, so there is no study data set to default to; give --data DIR")
    tasks = expand_tasks(args.tasks or list(origin.trained_tasks))
    device = resolve_device(args.device)
    if args.save_images and not args.out:
        raise MirlError("--save-images needs --out DIR")
    settings = EvalSettings(convention=args.convention, pad=args.pad, tile=args.tile, limit=args.limit, seed=args.seed,
                            precision=args.precision, skip_bad=args.skip_bad, split=args.split)
    results = {}
    for name, path in find_checkpoints(args.target):
        model, _ = load_checkpoint(path, map_location=device, allow_pickle=args.allow_pickle, config=args.model)
        save_dir = Path(args.out) / "images" / name if args.save_images else None
        results[name] = evaluate_model(model, data, tasks, settings, device=device, save_dir=save_dir, progress=not args.no_progress)
        results[name]["checkpoint"] = str(path)
        results[name]["trained_tasks"] = list(origin.trained_tasks)
    print(format_table(results))
    if args.out:
        csv_path, json_path = write_results_table(args.out, results)
        print(f"wrote {csv_path} and {json_path}")
    return 0

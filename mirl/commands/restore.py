"""``mirl restore CHECKPOINT INPUT... --out DIR``: restore files or folders of images of any size."""

from __future__ import annotations

import argparse

from mirl.commands import add_checkpoint_arguments, checkpoint_file

# literal copies (kept in sync by tests) so that building the parser does not import torch
DEVICE_CHOICES = ("auto", "cpu", "cuda")
MAX_PIXELS = 89_478_485  # mirl.data.imageio.MAX_PIXELS


def add_arguments(parser: argparse.ArgumentParser) -> None:

    parser.add_argument("checkpoint", help="a checkpoint or a study, replicate, level or branch folder, as 'mirl info' reads it")
    parser.add_argument("inputs", nargs="+", metavar="INPUT", help="image files or folders (searched recursively)")
    parser.add_argument("--out", required=True, help="output folder (PNG files); must not hold or be inside an input")
    parser.add_argument("--tile", type=int, default=None, help="tile size in px (at least 8) for large images (default: whole image)")
    parser.add_argument("--overlap", type=int, default=32, help="tile overlap in px, smaller than --tile (default 32)")
    parser.add_argument("--device", default="auto", choices=DEVICE_CHOICES)
    parser.add_argument("--precision", default="fp32", choices=["fp32", "bf16"], help="bf16 autocast: faster on recent GPUs; see docs/benchmarks.md for its PSNR cost")
    parser.add_argument("--skip-bad", action="store_true", help="skip unreadable or non-image files (listed at the end) instead of stopping")
    parser.add_argument("--overwrite", action="store_true", help="replace restored PNGs that already exist in --out (refused otherwise)")
    parser.add_argument("--max-pixels", type=int, default=None, metavar="N",
                        help=f"largest image accepted, in pixels (default {MAX_PIXELS:,}, Pillow's decompression-bomb limit; 0: no limit)")
    add_checkpoint_arguments(parser)
    parser.add_argument("--no-progress", action="store_true", help="hide progress bars")


def run(args: argparse.Namespace) -> int:
    from mirl.device import resolve_device
    from mirl.errors import MirlError
    from mirl.models import load_checkpoint
    from mirl.scoring.restore import plan_restore, restore_files

    # every setting and path is checked before the checkpoint is loaded; outputs never touch inputs
    if args.max_pixels is not None and args.max_pixels < 0:
        raise MirlError(f"--max-pixels must be 0 (no limit) or more, got {args.max_pixels}")
    plan_restore(args.inputs, args.out, tile=args.tile, overlap=args.overlap, skip_bad=args.skip_bad, overwrite=args.overwrite)
    device = resolve_device(args.device)
    model, meta = load_checkpoint(checkpoint_file(args.checkpoint), map_location=device, allow_pickle=args.allow_pickle, config=args.model)
    model.eval()
    summary = restore_files(model, args.inputs, args.out, tile=args.tile, overlap=args.overlap, skip_bad=args.skip_bad,
                            progress=not args.no_progress, precision=args.precision, warn_skipped=False,
                            overwrite=args.overwrite, max_pixels=args.max_pixels)
    print(f"restored {len(summary.written)} image(s) into {args.out} with {meta['preset']} on {device}")
    if summary.skipped:
        print(f"skipped {len(summary.skipped)} bad input(s):")
        for path, reason in summary.skipped:
            print(f"  {path}: {reason}")
    return 0

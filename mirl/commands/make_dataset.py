"""``mirl make-dataset --out DIR``: the built-in corpus, degraded, in the published layout."""

from __future__ import annotations

import argparse
import time


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", required=True, help="folder to create (holds train/, val/ and test/)")
    parser.add_argument("--seed", type=int, default=0, help="seed of every degradation (default 0)")
    parser.add_argument("--max-test-side", type=int, default=None, help="centre-crop test photos to at most this many px per side")
    parser.add_argument("--photos", nargs="+", default=None, help="only these corpus photos (quick demos); default all fifteen")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def run(args: argparse.Namespace) -> int:
    from mirl.data.make_dataset import make_dataset

    start = time.perf_counter()
    manifest = make_dataset(args.out, seed=args.seed, max_test_side=args.max_test_side, progress=not args.no_progress, photos=args.photos)
    took = time.perf_counter() - start
    if manifest.get("reused"):
        print(f"{args.out}: already complete with these settings; nothing to do")
        return 0
    for split, counts in manifest["counts"].items():
        if not manifest["split"][split]:
            continue  # e.g. --photos without a validation photo
        print(f"{split:5s} " + ", ".join(f"{task} {n}" for task, n in counts.items()) + f"   photos: {', '.join(manifest['split'][split])}")
    if manifest["unavailable"]:
        print("unavailable photos: " + ", ".join(f"{k} ({v})" for k, v in manifest["unavailable"].items()))
    print(f"wrote {args.out} in {took:.1f} s (built-in demo corpus: not a benchmark)")
    return 0

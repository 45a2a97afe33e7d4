"""Training-data throughput: samples/s of the study's ``TrainDataset`` through a ``DataLoader``
with 0 and more worker processes (patches cut, augmented and degraded on the fly).

Compare with a training step's time: on a GPU the study loop does not wait for the device
between steps, so loading overlaps the step as long as a batch loads faster than a step runs.

Example:
    python -m benchmarks.data_loading --data datasets/builtin --patch 64 --batch 8 --workers 0 2
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any, Sequence

import torch

from benchmarks.common import format_table, write_json
from mirl.data.datasets import TrainDataset
from mirl.data.resolve import parse_repeats


def run(data: str | Path, patch: int = 64, batch: int = 8, workers: Sequence[int] = (0, 2), batches: int = 40,
        repeats: str = "published") -> list[dict[str, Any]]:
    """One row per worker count: samples/s and ms per batch over ``batches`` batches (after the first)."""
    dataset = TrainDataset(Path(data), ["all_in_one"], patch_size=patch, repeats=parse_repeats(repeats), seed=0)
    rows = []
    for n in workers:
        loader = torch.utils.data.DataLoader(dataset, batch_size=batch, shuffle=True, num_workers=n)
        iterator = iter(loader)
        next(iterator)  # worker start-up is not throughput
        start, samples = time.perf_counter(), 0
        for _ in range(batches):
            samples += next(iterator)[0].shape[0]
        elapsed = time.perf_counter() - start
        rows.append({"workers": n, "samples_per_s": samples / elapsed, "ms_per_batch": elapsed / batches * 1e3,
                     "patch": patch, "batch": batch})
    return rows


def main(argv: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """Command line entry point; prints a table."""
    p = argparse.ArgumentParser(prog="python -m benchmarks.data_loading", description=__doc__.split("\n\n")[0])
    p.add_argument("--data", required=True, help="a dataset folder in the published layout (e.g. datasets/builtin)")
    p.add_argument("--patch", type=int, default=64)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--workers", type=int, nargs="+", default=[0, 2])
    p.add_argument("--batches", type=int, default=40)
    p.add_argument("--json", default=None, help="write the rows as JSON to this path")
    args = p.parse_args(argv)
    rows = run(args.data, args.patch, args.batch, args.workers, args.batches)
    print(format_table(rows, ["workers", "samples_per_s", "ms_per_batch", "patch", "batch"]))
    write_json(args.json, rows)
    return rows


if __name__ == "__main__":
    main()

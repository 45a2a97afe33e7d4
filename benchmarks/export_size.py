"""Size of the sparse export against the dense checkpoint, at several densities.

The paper-size network is pruned one-shot to the density of k rounds of 20% (k = 5, 10, 15;
15 rounds = 10% of all trainable parameters) and written both ways.

Example:
    python -m benchmarks.export_size --preset paper
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path
from typing import Sequence

import torch

from benchmarks.common import format_table
from mirl.models import build_model, save_checkpoint
from mirl.pruning.controls import one_shot_fraction
from mirl.pruning.magnitude import magnitude_prune
from mirl.pruning.mask import apply_mask
from mirl.pruning.rules import density_summary
from mirl.models.sparse import VALUE_DTYPES, export_sparse


def run(preset: str = "paper", rounds: Sequence[int] = (5, 10, 15)) -> list[dict[str, object]]:
    """One row per (rounds, value dtype): densities, file sizes and the sparse/dense ratio."""
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for k in rounds:
            torch.manual_seed(0)
            model = build_model(preset)
            mask = magnitude_prune(model.state_dict(), None, one_shot_fraction(0.2, k))
            apply_mask(model, mask)
            dense_path = Path(tmp) / "dense.pt"
            save_checkpoint(dense_path, model)
            dense = dense_path.stat().st_size
            summary = density_summary(model.state_dict())
            for dtype in VALUE_DTYPES:
                size = export_sparse(Path(tmp) / "sparse.pt", model.state_dict(), mask, model.config.to_dict(), dtype)
                rows.append({"rounds": k, "density_trainable": round(summary["density_trainable"], 4),
                             "density_prunable": round(summary["density_prunable"], 4), "dtype": dtype,
                             "dense_MB": round(dense / 2**20, 1), "sparse_MB": round(size / 2**20, 1),
                             "ratio": round(size / dense, 3)})
    return rows


def main(argv: Sequence[str] | None = None) -> list[dict[str, object]]:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.export_size", description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="paper", choices=("tiny", "small", "paper"))
    args = parser.parse_args(argv)
    rows = run(args.preset)
    print(format_table(rows))
    return rows


if __name__ == "__main__":
    main()

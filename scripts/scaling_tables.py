"""Print the tables of docs/findings.md's "Where the claim holds" from the scaling grid's studies,
and refill - refill_scratch and refill - dense_same_size from a study that trained them.

Every number comes from :mod:`mirl.analysis.scaling` and :mod:`mirl.analysis.evidence` on the
per-image scores of the study trees, so the section can be regenerated from the runs.

Usage:
    python scripts/scaling_tables.py --cell "tiny 1x=runs/scaling_9ce0c5e9" --cell "tiny 4x=runs/scaling_..." \
        --cell "small 1x=runs/scaling_..." [--refill-study runs/quickstart_6bcc40d6] [--figure docs/findings/scaling.png] \
        [--curve-figure docs/findings/scaling_dense_curves.png]

The first cell is the base: every other cell's share of the dense gain is compared with it.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd


def markdown(table: pd.DataFrame) -> str:
    """A plain markdown table (no index), floats to 3 digits."""
    head = "| " + " | ".join(map(str, table.columns)) + " |"
    rule = "|" + "---|" * len(table.columns)
    cell = lambda v: f"{v:.3f}" if isinstance(v, float) else str(v)  # noqa: E731
    rows = ["| " + " | ".join(cell(v) for v in row) + " |" for row in table.itertuples(index=False)]
    return "\n".join([head, rule, *rows])


REFILL_CONTROLS = {"refill_scratch": "scratch", "dense_same_size": "dense same size"}


def refill_against(study: Path, control: str = "refill_scratch") -> pd.DataFrame:
    """refill - ``control`` per pruned level (mean over tasks), paired on seeds and test images:
    the structured ticket against its own shapes trained from fresh weights (``refill_scratch``,
    Liu et al. 2019), or against a dense network of main's remaining count (``dense_same_size``)."""
    from mirl import paths
    from mirl.analysis.evidence import MEAN, paired_differences, primary_endpoints, scores_table
    from mirl.analysis.stats import TOO_FEW

    name = REFILL_CONTROLS[control]
    replicates = [paths.replicate_dir(study, r) for r in paths.replicate_numbers(study)]
    scores = scores_table({"refill": [(r, "refill") for r in replicates], name: [(r, control) for r in replicates]})
    per_level = paired_differences(scores, "refill")
    per_level = per_level[per_level["task"] == MEAN]
    primary = primary_endpoints(scores, "refill")
    column = f"refill - {name} (dB)"
    rows = [{"level": int(r.level), "remaining_prunable": f"{100 * r.remaining_prunable:.1f}%", column: f"{r.mean:+.2f}",
             "interval": f"[{r.low:+.2f}, {r.high:+.2f}]", "interval over": r.method, "verdict": r.verdict} for r in per_level.itertuples()]
    for r in primary.itertuples():
        rows.append({"level": f"primary: levels {r.levels}", "remaining_prunable": "", column: f"{r.mean:+.2f}",
                     "interval": f"[{r.low:+.2f}, {r.high:+.2f}]" if r.df else "none (1 seed)", "interval over": r.n,
                     "verdict": r.verdict if r.df else TOO_FEW})
    return pd.DataFrame(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cell", action="append", default=[], metavar="LABEL=STUDY", help="a cell of the grid; the first is the base")
    parser.add_argument("--refill-study", type=Path, default=None, help="a study with refill, refill_scratch and dense_same_size branches")
    parser.add_argument("--figure", type=Path, default=None, help="write notebook 06's figure of the grid here (PNG)")
    parser.add_argument("--curve-figure", type=Path, default=None, help="write notebook 06's dense validation curves here (PNG)")
    args = parser.parse_args(argv)
    cells = [(label, Path(folder)) for label, folder in (c.split("=", 1) for c in args.cell)]
    if cells:
        print_grid(cells, args.figure, args.curve_figure)
    for control in REFILL_CONTROLS if args.refill_study else ():
        print(f"\n## refill - {control} on {args.refill_study.name}\n")
        print(markdown(refill_against(args.refill_study, control)))
    return 0


def print_grid(cells: list[tuple[str, Path]], figure: Path | None = None, curve_figure: Path | None = None) -> None:
    """The grid's gains and shares, ticket - control per cell, each cell's share against the
    first's, and whether each dense network had flattened; ``figure`` and ``curve_figure``:
    notebook 06's figures of the grid and of the dense validation curves, as PNGs."""
    from mirl.analysis import scaling
    from mirl.reports import viz

    gains = scaling.gain_table(cells)
    print("## Gains and the ticket's share of the dense gain\n")
    print(markdown(gains[["cell", "steps", "quantity", "level", "remaining_trainable", "mean", "low", "high", "seeds", "n"]]))
    differences = scaling.difference_table(cells)
    print("\n## Ticket - control (primary endpoints: mean over the pruned levels per seed)\n")
    print(markdown(differences[["cell", "control", "levels", "mean", "low", "high", "df", "seeds", "verdict"]]))
    changes = pd.concat([scaling.share_change(cells[0], other) for other in cells[1:]], ignore_index=True) if len(cells) > 1 else pd.DataFrame()
    print(f"\n## Does the share grow? Each cell against {cells[0][0]}, per seed on shared seeds\n")
    print(markdown(changes) if not changes.empty else "(one cell: nothing to compare)")
    curves = scaling.dense_curves(cells)
    print("\n## Has the dense network flattened? Validation gain (dB), last point minus 2 of 8 intervals earlier\n")
    print(markdown(scaling.late_rise(curves)) if not curves.empty else "(no dense level recorded a validation curve)")
    for path, draw in ((figure, lambda: viz.scaling_figure(gains, differences)), (curve_figure, lambda: viz.dense_curve_figure(curves))):
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            draw().savefig(path, dpi=90, bbox_inches="tight")


if __name__ == "__main__":
    raise SystemExit(main())

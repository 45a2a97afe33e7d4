"""Print the tables of docs/findings.md from a study's runs, and write its figures.

Every number comes from :mod:`mirl.evidence` on the per-image scores of the study tree, so the
page can be regenerated from the runs (only levels every replicate finished are shown).

Usage:
    python scripts/findings_tables.py runs/evidence_<hash> [--figures docs/findings]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd


def markdown(table: pd.DataFrame) -> str:
    """A plain markdown table (no index), cells as they are."""
    head = "| " + " | ".join(map(str, table.columns)) + " |"
    rule = "|" + "---|" * len(table.columns)
    rows = ["| " + " | ".join(str(v) for v in row) + " |" for row in table.itertuples(index=False)]
    return "\n".join([head, rule, *rows])


def seed_table(scores: pd.DataFrame) -> pd.DataFrame:
    """Mean gain over tasks for each variant, level and seed (what the intervals rest on)."""
    per_task = scores.groupby(["label", "level", "seed", "task"], sort=False)["gain"].mean()
    per_seed = per_task.groupby(["label", "level", "seed"], sort=False).mean().unstack("seed")
    return per_seed.round(2).reset_index()


def main(argv: list[str] | None = None) -> int:
    from mirl import evidence, viz

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("study", type=Path)
    parser.add_argument("--figures", type=Path, default=None, help="folder for evidence_gain.png and evidence_barrier.png")
    args = parser.parse_args(argv)

    variants = evidence.study_variants(args.study)
    scores = evidence.scores_table(variants)
    curves = evidence.curve_table(scores, "gain")
    print(f"## Gain over the degraded input (dB) [{evidence.interval_method(curves)}]\n")
    print(markdown(evidence.wide_table(curves, "trainable")))
    print("\n## Mean gain over tasks per seed (dB)\n")
    print(markdown(seed_table(scores)))
    differences = evidence.paired_differences(scores, "ticket", "psnr")
    verdicts = evidence.verdict_table(differences, ticket="ticket")
    print(f"\n## Ticket - control, PSNR, mean over tasks [{evidence.interval_method(differences)}]\n")
    print(markdown(verdicts.drop(columns="sentence")))
    per_task = differences[differences["level"] == differences["level"].max()]
    print("\n## Ticket - control at the last level, per task\n")
    print(markdown(pd.DataFrame({
        "control": per_task["control"], "task": per_task["task"],
        "ticket - control (dB)": [f"{m:+.2f} [{lo:+.2f}, {hi:+.2f}]" for m, lo, hi in zip(per_task["mean"], per_task["low"], per_task["high"])],
        "verdict": per_task["verdict"]})))
    barriers = evidence.barrier_table({"reset to theta_0": args.study})
    print("\n## Stability barrier (dB)\n")
    print(markdown(barriers.drop(columns=["mean", "low", "high"])))
    print("\n## Harm (restored below the degraded input)\n")
    print("\n".join(f"* {w}" for w in evidence.harm_warnings(scores)) or "none")
    print(f"\ncompute: {evidence.compute_seconds([args.study]) / 3600:.2f} h of finished nodes")
    if args.figures is not None:
        args.figures.mkdir(parents=True, exist_ok=True)
        fig = viz.interval_curves(curves, denominator="trainable", demo=True)
        fig.savefig(args.figures / "evidence_gain.png", dpi=90, bbox_inches="tight")
        if not barriers.empty:
            viz.barrier_figure(barriers, "trainable").savefig(args.figures / "evidence_barrier.png", dpi=90, bbox_inches="tight")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

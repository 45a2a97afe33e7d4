"""Print the tables of docs/findings.md from a study's runs, and write its figures.

Every number comes from :mod:`mirl.analysis.evidence` on the per-image scores of the study tree, so the
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


def path_shape(study: Path) -> pd.DataFrame:
    """Per level, means over replicates of what the barrier is made of: half the gap between the
    end points, |P(1) - P(0)| / 2 (a lower bound of the barrier), and the largest dip below the
    straight line between them, max over alpha of [(1 - alpha) P(0) + alpha P(1) - P(alpha)]."""
    from mirl import paths
    from mirl.analysis.results import load_metrics

    rows = []
    replicates = [paths.replicate_dir(study, r) for r in paths.replicate_numbers(study)]
    done = [set(paths.level_numbers(rep, branch="stability")) for rep in replicates]
    for level in sorted(set.intersection(*done) if done else set()):
        gaps, dips, ends = [], [], []
        for rep in replicates:
            path = {float(p["alpha"]): float(p["psnr"]) for p in load_metrics(rep, level, "stability")["path"]}
            p0, p1 = path[0.0], path[1.0]
            gaps.append(abs(p1 - p0) / 2)
            dips.append(max((1 - a) * p0 + a * p1 - v for a, v in path.items()))
            ends.append((p0, p1))
        rows.append({"level": level, "half end-point gap (dB)": f"{sum(gaps) / len(gaps):.2f}",
                     "largest dip below the straight line (dB)": f"{sum(dips) / len(dips):.2f}",
                     "P(0) / P(1) per replicate (dB)": "; ".join(f"{a:.2f} / {b:.2f}" for a, b in ends)})
    return pd.DataFrame(rows)


def main(argv: list[str] | None = None) -> int:
    from mirl.analysis import evidence
    from mirl.analysis.kept_by_kind import kept_by_kind
    from mirl.reports import viz

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("study", type=Path)
    parser.add_argument("--figures", type=Path, default=None,
                        help="folder for evidence_gain.png, evidence_barrier.png and evidence_kept_by_kind.png")
    parser.add_argument("--global-run", type=Path, default=None, metavar="STUDY",
                        help="a run of the same recipe under the paper's global scope: its ticket as its own rows, and its "
                             "kept weights per kind of tensor beside the study's")
    args = parser.parse_args(argv)

    variants = evidence.study_variants(args.study)
    scores = evidence.scores_table(variants)
    primary = evidence.primary_endpoints(scores, "ticket")
    print("## Primary endpoints (docs/lottery.md, 'Analysis plan')\n")
    print(markdown(pd.DataFrame({
        "control": primary["control"], "pruned levels": primary["levels"],
        "ticket - control (dB)": [f"{m:+.2f} [{lo:+.2f}, {hi:+.2f}]" if lo == lo else f"{m:+.2f} (no interval)"
                                  for m, lo, hi in zip(primary["mean"], primary["low"], primary["high"])],
        "df": [df or "-" for df in primary["df"]], "p (two-sided)": [f"{p:.3f}" if p == p else "-" for p in primary["p"]],
        "n": primary["n"], "verdict": primary["verdict"]})))
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
    print("\n## What the barrier is made of (means over replicates)\n")
    print(markdown(path_shape(args.study)))
    print("\n## Harm (restored below the degraded input)\n")
    print("\n".join(f"* {w}" for w in evidence.harm_warnings(scores)) or "none")
    kept = {"layer-wise (this study)": kept_by_kind(args.study)}
    if args.global_run is not None:
        global_scores = evidence.scores_table(evidence.study_variants(args.global_run, branches=[]))
        global_curves = evidence.curve_table(global_scores, "gain")
        print(f"\n## The paper's global recipe, one replicate ({args.global_run.name}) [{evidence.interval_method(global_curves)}]\n")
        print(markdown(evidence.wide_table(global_curves, "trainable")))
        kept["global (the paper's recipe)"] = kept_by_kind(args.global_run)
    for label, table in kept.items():
        print(f"\n## Weights kept per kind of tensor: {label}\n")
        print(markdown(table))
        emptied = table[table["emptied"] > 0]
        print("\nemptied tensors: " + ("none" if emptied.empty else "; ".join(
            f"level {r.level}: {r.emptied} {r.kind}" for r in emptied.itertuples())))
    print(f"\ncompute: {evidence.compute_seconds([args.study]) / 3600:.2f} h of finished nodes")
    if args.figures is not None:
        args.figures.mkdir(parents=True, exist_ok=True)
        viz.kept_by_kind_figure(kept).savefig(args.figures / "evidence_kept_by_kind.png", dpi=90, bbox_inches="tight")
        fig = viz.interval_curves(curves, denominator="trainable", demo=True)
        fig.savefig(args.figures / "evidence_gain.png", dpi=90, bbox_inches="tight")
        if not barriers.empty:
            viz.barrier_figure(barriers, "trainable").savefig(args.figures / "evidence_barrier.png", dpi=90, bbox_inches="tight")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

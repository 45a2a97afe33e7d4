"""``mirl status RUN``: which levels and branches of a study are done, stale (made by other code or
options), running (with their SLURM job), started, missing, or held by a stale lock (its SLURM job
ended), with the fix."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("study", metavar="RUN", help="a study folder, runs/<preset>_<hash>")
    parser.add_argument("--json", action="store_true", help="one JSON object per node instead of the table")


def run(args: argparse.Namespace) -> int:
    import json
    from collections import Counter

    from mirl.study.launch import STALE, STALE_LOCK, node_states, rerun_stale_command, stale_lock_fix
    from mirl.study.stale import describe

    rows = node_states(args.study)
    if args.json:
        for row in rows:
            print(json.dumps(row))
        return 0
    width = max([14, *(len(row["branch"]) for row in rows)])
    print(f"{'replicate':>9} {'level':>5}  {'branch':<{width}} {'state':<10} {'SLURM job':<22} SLURM state")
    for row in rows:
        job = f"{row['job_id']} ({row['job']})" if row["job_id"] else "-"
        print(f"{row['replicate']:>9} {row['level']:>5}  {row['branch']:<{width}} {row['state']:<10} {job:<22} {row['slurm_state'] or '-'}")
    counts = Counter(row["state"] for row in rows)
    print(", ".join(f"{n} {state}" for state, n in counts.items()) + f" of {len(rows)} nodes")
    stale = {(row["replicate"], row["level"], row["branch"]): row["stale"] for row in rows if row["state"] == STALE}
    if stale:
        print(f"stale: {len(stale)} node(s) made by other code or options than this mirl's: {describe(stale)}; "
              f"train them again with: {rerun_stale_command(args.study)}")
    for row in rows:
        if row["state"] == STALE_LOCK:
            print(f"stale lock: {stale_lock_fix(args.study, row)}")
    return 0

"""Study throughput on the CPU: nodes per hour of the evidence recipe, as ratios against today's
serial 2-thread path, quiet and beside one competing CPU-bound process, in one run.

Each configuration starts worker processes (the thread count and OpenMP's wait policy are fixed
when a process starts), lets them build the evidence recipe's training step (tiny PromptIR, batch
8 of 64x64 crops drawn and degraded by the study's own ``TrainDataset``, fused AdamW, the study's
``build_train_step``) and take 2 warm-up steps, then starts them together and times ``--steps``
steps each (or ``--max-seconds``, whichever comes first). Configurations:

* ``serial 2 threads``: one process, 2 threads: the study before issue 35 (the baseline, ratio 1);
* ``2 processes x 1 thread``: what ``--launcher auto`` runs on 2 free cores (nodes side by side);
* ``vmap 3 replicates``: one process, 2 threads, 3 replicates trained as one with stacked weights
  (``torch.func.stack_module_state`` + ``vmap(functional_call)``): the study's ``batch_nodes=3``
  (:class:`mirl.study.batched.BatchedStep`);
* ``serial 2 threads`` with ``OMP_WAIT_POLICY=PASSIVE`` (a waiting thread sleeps at once) and with
  ``GOMP_SPINCOUNT=10000`` (it spins briefly, then sleeps): what a shared machine costs them when quiet;
* beside a competitor (``python -c "while True: pass"``, one core): ``serial 2 threads`` with
  OpenMP's default (spinning) wait policy, with each of the two above, and what ``--launcher auto``
  chooses then (1 process x 1 thread);
* a competitor that starts when the timing does (the study already runs, so the plan made at its
  start did not see it): ``serial 2 threads`` as it was, and following the load watch
  (:class:`mirl.study.cpu_plan.LoadWatch`, a sample every 5 s, applied between steps as
  :func:`mirl.device.follow_threads` does in a study), which goes to 1 thread once it sees the competitor.
  Its timed steps include the seconds before the watch sees it.

Nodes per hour = steps per second x 3600 / 375 (the evidence recipe's steps per node; training
only, evaluation not included). Per-node slowdown = seconds per node against the baseline's.

Example:
    python -m benchmarks.study_throughput --json /tmp/throughput.json
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Sequence

from benchmarks.common import format_table, write_json

STEPS_PER_NODE = 375  # the evidence recipe: 25 epochs of 15 steps


@dataclass(frozen=True)
class Config:
    """Worker processes to start together, each with this many threads and this environment."""

    name: str
    processes: int
    threads: int
    mode: str = "serial"  # serial: one network; vmap: --replicates networks as one
    env: dict[str, str] = field(default_factory=dict)
    competitor: bool = False
    late: bool = False  # the competitor starts when the timing does (the study already runs), not before
    watch: bool = False  # each step follows the free cores a LoadWatch measures, as a study does (mirl.device.follow_threads)


CONFIGS = (
    Config("serial 2 threads", 1, 2),
    Config("serial 2 threads, OMP_WAIT_POLICY=PASSIVE", 1, 2, env={"OMP_WAIT_POLICY": "PASSIVE"}),
    Config("serial 2 threads, GOMP_SPINCOUNT=10000", 1, 2, env={"GOMP_SPINCOUNT": "10000"}),
    Config("2 processes x 1 thread", 2, 1),
    Config("vmap 3 replicates, 2 threads", 1, 2, mode="vmap"),
    Config("serial 2 threads beside a competitor", 1, 2, competitor=True),
    Config("serial 2 threads, OMP_WAIT_POLICY=PASSIVE, beside a competitor", 1, 2, env={"OMP_WAIT_POLICY": "PASSIVE"},
           competitor=True),
    Config("serial 2 threads, GOMP_SPINCOUNT=10000, beside a competitor", 1, 2, env={"GOMP_SPINCOUNT": "10000"},
           competitor=True),
    Config("1 process x 1 thread beside a competitor (auto's choice)", 1, 1, competitor=True),
    Config("serial 2 threads, a competitor starts with the timing", 1, 2, competitor=True, late=True),
    Config("serial 2 threads following the load watch, a competitor starts with the timing", 1, 2, competitor=True,
           late=True, watch=True),
)


def _worker(threads: int, mode: str, replicates: int, steps: int, max_seconds: float, watch: bool = False) -> None:
    """Build the evidence recipe's step, warm up, print "ready", wait for a line on stdin, time the steps."""
    import torch

    torch.set_num_threads(threads)
    from mirl.data.datasets import TrainDataset
    from mirl.data.resolve import parse_repeats
    from mirl.models import build_model
    from mirl.study.config import study_preset
    from mirl.study.lottery import dataset_root
    from mirl.study.step import StepOptions, build_train_step

    cfg = study_preset("evidence")
    root = dataset_root(cfg.data, cfg.max_test_side, build=True)
    data = TrainDataset(root, list(cfg.tasks), patch_size=cfg.patch_size, repeats=parse_repeats(cfg.repeats), seed=cfg.seed)
    data.set_epoch(0)
    batches = iter(torch.utils.data.DataLoader(data, batch_size=cfg.batch_size, shuffle=True, drop_last=True,
                                               generator=torch.Generator().manual_seed(os.getpid())))

    def batch() -> tuple[torch.Tensor, torch.Tensor]:
        nonlocal batches
        try:
            degraded, clean, _ = next(batches)
        except StopIteration:
            batches = iter(torch.utils.data.DataLoader(data, batch_size=cfg.batch_size, shuffle=True, drop_last=True))
            degraded, clean, _ = next(batches)
        return degraded, clean

    if mode == "serial":
        torch.manual_seed(0)
        train_step = build_train_step(build_model(cfg.model), {}, torch.device("cpu"), StepOptions(fused=True), lr=cfg.lr,
                                      weight_decay=cfg.weight_decay)

        def step() -> None:
            train_step(*batch())
        per_call = 1
    else:  # the study's own batched step (batch_nodes), no masks, as the serial step above
        from mirl.study.batched import BatchedStep
        from mirl.study.train import TrainSettings

        nets = [build_model(cfg.model) for _ in range(replicates)]
        batched = BatchedStep(nets, [{}] * replicates, TrainSettings.from_study(cfg), torch.device("cpu"))

        def step() -> None:
            pairs = [batch() for _ in range(replicates)]
            batched(torch.stack([p[0] for p in pairs]), torch.stack([p[1] for p in pairs]))
        per_call = replicates
    for _ in range(2):
        step()
    print("ready", flush=True)
    sys.stdin.readline()
    from mirl.device import follow_threads, watching_load
    from mirl.study.cpu_plan import LoadWatch

    # as mirl lottery does for a study in one process: a load sample every 5 s, applied between steps
    with watching_load(LoadWatch(planned=threads)) if watch else contextlib.nullcontext():
        started, done = time.perf_counter(), 0
        while done < steps and time.perf_counter() - started < max_seconds:
            follow_threads()
            step()
            done += 1
    print(json.dumps({"seconds": time.perf_counter() - started, "steps": done * per_call, "calls": done}), flush=True)


def _run_config(config: Config, steps: int, max_seconds: float, replicates: int) -> dict[str, Any]:
    """Start the config's workers (and competitor), release them together, collect their timings."""
    competitor = None
    if config.competitor and not config.late:
        competitor = subprocess.Popen([sys.executable, "-c", "while True: pass"])
        time.sleep(1.0)
    env = {**os.environ, **config.env, "OMP_NUM_THREADS": str(config.threads)}
    command = [sys.executable, "-m", "benchmarks.study_throughput", "--worker", "--threads", str(config.threads),
               "--mode", config.mode, "--replicates", str(replicates), "--steps", str(steps), "--max-seconds", str(max_seconds),
               *(["--watch"] if config.watch else [])]
    workers = [subprocess.Popen(command, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
               for _ in range(config.processes)]
    try:
        for worker in workers:
            line = worker.stdout.readline()
            if line.strip() != "ready":
                raise RuntimeError(f"{config.name}: a worker did not start (said {line!r}); run it alone to see why")
        for worker in workers:
            worker.stdin.write("go\n")
            worker.stdin.flush()
        if config.competitor and config.late:
            competitor = subprocess.Popen([sys.executable, "-c", "while True: pass"])
        results = [json.loads(worker.stdout.readline()) for worker in workers]
    finally:
        for worker in workers:
            worker.wait(timeout=600)
        if competitor is not None:
            competitor.kill()
            competitor.wait()
    steps_done = sum(r["steps"] for r in results)  # network steps (a vmap call takes one of each replicate)
    wall = max(r["seconds"] for r in results)
    slowest = max(r["seconds"] / max(r["calls"], 1) for r in results)  # seconds per step of one network
    return {"config": config.name, "processes": config.processes, "threads": config.threads, "steps_per_s": steps_done / wall,
            "node_s": STEPS_PER_NODE * slowest, "steps": steps_done, "seconds": wall}


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=20, help="steps each worker times (default 20)")
    parser.add_argument("--max-seconds", type=float, default=60.0, help="stop a worker's timing after this long (default 60)")
    parser.add_argument("--replicates", type=int, default=3, help="replicates of the vmap configuration (default 3)")
    parser.add_argument("--only", nargs="+", metavar="NAME", help="run only these configurations: a whole name selects that one, a shorter text every one whose name starts with it")
    parser.add_argument("--json", help="write the rows here")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--threads", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--mode", default="serial", help=argparse.SUPPRESS)
    parser.add_argument("--watch", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        _worker(args.threads, args.mode, args.replicates, args.steps, args.max_seconds, args.watch)
        return
    names = {c.name for c in CONFIGS}  # a whole name selects that configuration alone, a shorter text every one it starts
    chosen = [c for c in CONFIGS if not args.only or any(c.name == o or (o not in names and c.name.startswith(o)) for o in args.only)]
    rows = [_run_config(config, args.steps, args.max_seconds, args.replicates) for config in chosen]
    base = next((r for r in rows if r["config"] == CONFIGS[0].name), None)
    for row in rows:
        row["nodes_per_h"] = row["steps_per_s"] * 3600 / STEPS_PER_NODE
        if base is not None:
            row["throughput_ratio"] = row["steps_per_s"] / base["steps_per_s"]
            row["node_time_ratio"] = row["node_s"] / base["node_s"]
    print(format_table([{k: (round(v, 3) if isinstance(v, float) else v) for k, v in row.items()} for row in rows],
                       ["config", "steps_per_s", "nodes_per_h", "throughput_ratio", "node_s", "node_time_ratio"]))
    print(f"cpu: {os.cpu_count()} cores; nodes per hour: training only, {STEPS_PER_NODE} steps per node; node_s: seconds "
          "one network takes per node; node_time_ratio: that against the serial 2-thread baseline's (beside a competitor: the slowdown)")
    write_json(args.json, {"rows": rows, "steps": args.steps, "cpu_count": os.cpu_count()})


if __name__ == "__main__":
    main()

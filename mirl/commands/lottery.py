"""``mirl lottery``: run (or resume) an iterative magnitude pruning study."""

from __future__ import annotations

import argparse
import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mirl.study.cpu_plan import CpuPlan
    from mirl.study.plan import StudyPlan


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from mirl.study.config import STUDY_PRESETS

    parser.add_argument("--preset", default="quickstart", choices=sorted(STUDY_PRESETS), help="starting configuration (default: quickstart)")
    parser.add_argument("--config", help="YAML/JSON file of settings, applied after the preset")
    parser.add_argument("--set", nargs="+", action="extend", default=[], metavar="KEY=VALUE",
                        help="override settings, e.g. --set rounds=3 fraction=0.2 scope=layerwise (repeatable)")
    parser.add_argument("--out", help="folder that holds the runs (default: <project>/runs)")
    parser.add_argument("--seed", type=int, help="shorthand for --set seed=N")
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], help="shorthand for --set device=...")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.add_argument("--list-settings", action="store_true",
                        help="print every setting with its value for this preset (and its choices), and every branch's options, and exit")
    parser.add_argument("--rerun-stale", action="store_true",
                        help="train again the finished nodes made by other code or options than this mirl's (mirl status "
                             "lists them), and what depends on them; without it such a study is refused")
    parser.add_argument("--dry-run", action="store_true",
                        help="print the plan (replicates, levels, branches, job graph, data, steps) and the estimated compute, "
                             "timed from a few training steps on this device; write nothing")
    parser.add_argument("--no-timing", action="store_true", help="with --dry-run: do not time steps; use --seconds-per-step")
    jobs = parser.add_argument_group("running as a job graph (a job per level of main, one per branch of a level)")
    jobs.add_argument("--launcher", choices=("auto", "inline", "local", "slurm"), default="auto",
                      help="auto (default): on the CPU, nodes side by side in processes here when the free cores and the job "
                           "graph allow, else this process (logged); on a GPU, this process. inline: this process; local: "
                           "--jobs processes here; slurm: submit with submitit")
    jobs.add_argument("--jobs", type=int, default=None, metavar="N",
                      help="local: processes at once (default: on the CPU the free cores, at most the nodes that can run at "
                           "once; on GPUs 2, each its own GPU when there are several)")
    jobs.add_argument("--threads", type=int, default=None, metavar="T",
                      help="CPU: torch threads per process (default: OMP_NUM_THREADS when set, else the free cores shared "
                           "among the processes, never more, measured again every 5 s while the study runs: cores go back "
                           "to work that starts later and are taken again when it ends)")
    jobs.add_argument("--partition", help="slurm: partition")
    jobs.add_argument("--gpus-per-job", type=int, default=0, metavar="G", help="slurm: GPUs per job (more than one: one task per GPU, as torchrun)")
    jobs.add_argument("--cpus-per-job", type=int, default=None, metavar="C", help="slurm: CPUs per task")
    jobs.add_argument("--time", type=int, default=24 * 60, metavar="MIN", help="slurm: time limit per job in minutes; a job that hits it is requeued and resumes")
    jobs.add_argument("--account", help="slurm: account to charge")
    jobs.add_argument("--sbatch", nargs="+", action="extend", default=[], metavar="KEY=VALUE", help="slurm: extra sbatch options, e.g. qos=high")
    jobs.add_argument("--submitit-folder", default=None, metavar="DIR", help="slurm: submitit's logs and pickles (default: <out>/submitit)")
    jobs.add_argument("--wait", action="store_true", help="slurm: wait until every job has ended, then print the summary")
    parser.add_argument("--seconds-per-step", type=float, default=None, metavar="S",
                        help="with --dry-run: seconds one training step takes, instead of timing it")


def run(args: argparse.Namespace) -> int:
    from mirl.branches import options_help
    from mirl.study.config import choices, parse_assignments, setting_help, study_preset
    from mirl.errors import MirlError
    from mirl.study.lottery import run_study
    from mirl.study.plan import plan_study

    overrides = parse_assignments(args.set)
    if args.seed is not None:
        overrides["seed"] = args.seed
    if args.device is not None:
        overrides["device"] = args.device
    if args.list_settings:
        cfg = study_preset(args.preset, overrides, args.config)
        settings = cfg.to_dict()
        width, allowed = max(map(len, settings)), choices()
        for key, value in settings.items():
            listed = f" [{', '.join(allowed[key])}]" if key in allowed and key != "branches" else ""
            print(f"{key:{width}s} {value!r:28s} {setting_help(key)}{listed}")
        print("branch options (--set 'branches=[random_prune, {name: random_prune, scope: global}]'):")
        for line in options_help():
            print(f"  {line}")
        return 0
    _check_launcher_options(args)  # a dry run refuses what the run would refuse
    if args.dry_run:
        return _dry_run(args, overrides)
    if args.no_timing or args.seconds_per_step is not None:
        raise MirlError("--no-timing and --seconds-per-step go with --dry-run")
    plan = plan_study(args.preset, overrides, args.config, out=args.out)
    batch, why = _batch_nodes(plan)
    overrides["batch_nodes"] = str(batch)  # decided once here (auto may measure), not again in each job
    launcher, cpu = _cpu_launch(args, plan, batch)
    if launcher != "inline":
        study = _run_graph(args, overrides, plan, launcher, cpu, batch, why)
        if study is None:
            return 0
    else:
        import contextlib

        from mirl.device import watching_load
        from mirl.study.cpu_plan import LoadWatch

        # give cores back to work that starts after the study, and take them again once it ends
        watch = watching_load(LoadWatch(planned=cpu.threads)) if cpu is not None and not cpu.threads_given else contextlib.nullcontext()
        with watch:
            study = run_study(args.preset, overrides, args.config, out=args.out, progress=not args.no_progress,
                              rerun_stale=args.rerun_stale, note=_cpu_note(cpu, launcher, why))
    if os.environ.get("RANK", "0") == "0":
        print_summary(study)
        print(f"study: {study}")
    return 0


def _check_launcher_options(args: argparse.Namespace) -> None:
    """Refuse launcher options that do not fit together, naming the value."""
    from mirl.errors import MirlError

    if args.launcher != "slurm":
        given = [flag for flag, value in (("--partition", args.partition), ("--gpus-per-job", args.gpus_per_job or None),
                                          ("--cpus-per-job", args.cpus_per_job), ("--account", args.account),
                                          ("--sbatch", args.sbatch or None), ("--submitit-folder", args.submitit_folder),
                                          ("--wait", args.wait or None)) if value is not None]
        given += ["--time"] if args.time != 24 * 60 else []
        if given:
            raise MirlError(f"{', '.join(given)} {'is' if len(given) == 1 else 'are'} for --launcher slurm, not --launcher "
                            f"{args.launcher}; add --launcher slurm or leave {'it' if len(given) == 1 else 'them'} out")
    if args.jobs is not None and args.jobs < 1:
        raise MirlError(f"--jobs must be at least 1, got {args.jobs}")
    if args.threads is not None and args.threads < 1:
        raise MirlError(f"--threads must be at least 1, got {args.threads}")
    if args.launcher == "inline" and args.jobs is not None:
        raise MirlError(f"--jobs {args.jobs} is for --launcher local or auto (inline runs one node at a time); leave it out "
                        "or add --launcher local")
    if args.gpus_per_job < 0:
        raise MirlError(f"--gpus-per-job must be 0 (CPU jobs) or more, got {args.gpus_per_job}")
    if args.cpus_per_job is not None and args.cpus_per_job < 1:
        raise MirlError(f"--cpus-per-job must be at least 1, got {args.cpus_per_job}")
    if args.time < 1:
        raise MirlError(f"--time is a job's limit in minutes and must be at least 1, got {args.time}")
    if args.launcher == "slurm":  # each becomes a line of the batch script
        from mirl.study.launch import check_script_values, sbatch_options

        check_script_values(partition=args.partition, account=args.account, submitit_folder=args.submitit_folder)
        sbatch_options(args.sbatch)


def _batch_nodes(plan: "StudyPlan") -> tuple[int, str]:
    """How many nodes train as one (:func:`mirl.study.batched.resolve_batch_nodes`), and why; one
    per process of a torchrun group, which trains one network over its processes."""
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        return 1, "batch_nodes 1 under torchrun"
    from mirl.device import resolve_device
    from mirl.study.batched import resolve_batch_nodes

    return resolve_batch_nodes(plan.cfg, resolve_device(plan.cfg.device))


def _cpu_launch(args: argparse.Namespace, plan: "StudyPlan", batch: int = 1) -> tuple[str, "CpuPlan | None"]:
    """The launcher to run with (``auto`` resolved) and, on the CPU, the processes and threads per
    process chosen from the free cores and the job graph (:func:`mirl.study.cpu_plan.plan_cpu`);
    this process then runs torch on that many threads. No plan on a GPU, with SLURM, or in a
    process of a torchrun group (``WORLD_SIZE`` above 1: auto is inline there)."""
    from mirl.device import resolve_device

    if args.launcher == "slurm" or resolve_device(plan.cfg.device).type != "cpu" or int(os.environ.get("WORLD_SIZE", "1")) > 1:
        return ("inline" if args.launcher == "auto" else args.launcher), None
    from mirl.study.cpu_plan import busy_cores, plan_cpu, threads_from_env, usable_cores, use_threads
    from mirl.study.launch import graph_shape, job_graph

    width = graph_shape(job_graph(plan.cfg, batch))[1]
    processes = 1 if args.launcher == "inline" else args.jobs
    cpu = plan_cpu(usable_cores(), busy_cores(), width, plan.steps_per_node, processes=processes, threads=args.threads or threads_from_env())
    launcher = "local" if args.launcher == "local" or cpu.processes > 1 else "inline"
    use_threads(cpu.threads)
    return launcher, cpu


def _cpu_note(cpu: "CpuPlan | None", launcher: str, batch: str = "") -> str | None:
    """The line the study logs (and writes to log.txt) about the processes and threads it runs on
    and the nodes it trains as one (``batch``: why that many)."""
    parts = []
    if cpu is not None:
        shared = "; a job that runs alone gets every thread" if launcher == "local" and not cpu.threads_given and cpu.processes > 1 else ""
        parts.append(f"cpu: {cpu.reason}{shared} (--launcher {launcher})")
    if batch:
        parts.append(batch)
    return "; ".join(parts) or None


def _run_graph(args: argparse.Namespace, overrides: dict, plan: "StudyPlan", launcher: str, cpu: "CpuPlan | None" = None,
               batch: int = 1, why: str = "") -> "os.PathLike | None":
    """Run the study as a job graph (``launcher`` local or slurm; ``cpu``: the local processes and
    their threads; ``batch``: nodes trained as one per job, ``why`` that many); the study folder
    once it is finished (None: submitted, not waited for)."""
    from pathlib import Path

    from mirl.study import launch
    from mirl.paths import runs_dir

    spec = launch.StudySpec(args.preset, overrides, args.config, str(Path(args.out or runs_dir()).resolve()), args.rerun_stale)
    graph = launch.job_graph(plan.cfg, batch)
    if launcher == "local":
        from mirl.study.plan import plan_study

        spec.run(note=_cpu_note(cpu, launcher, why))  # the setup: with --rerun-stale it deletes the stale nodes, so look again
        finished = plan_study(args.preset, overrides, args.config, out=args.out).finished
        options = {"finished": finished, "progress": not args.no_progress and plan.cfg.progress}
        if cpu is None:
            launch.run_local(spec, graph, args.jobs or 2, launch.local_devices(), **options)
        elif cpu.threads_given:  # --threads or OMP_NUM_THREADS: each job gets them
            launch.run_local(spec, graph, cpu.processes, threads=cpu.threads, **options)
        else:  # the free cores, shared among the jobs that run at once, and measured again while they run (--jobs: not)
            from mirl.study.cpu_plan import LoadWatch

            cores = cpu.processes * cpu.threads
            watch = LoadWatch(planned=cores) if args.jobs is None else None
            launch.run_local(spec, graph, cpu.processes, cores=cores, watch=watch, **options)
        return spec.run()
    options = launch.SlurmOptions(folder=args.submitit_folder or str(Path(spec.out) / "submitit"), partition=args.partition,
                                  gpus_per_job=args.gpus_per_job, time_min=args.time, account=args.account,
                                  cpus_per_job=args.cpus_per_job, sbatch=launch.sbatch_options(args.sbatch))
    submission = launch.submit_slurm(spec, graph, options)
    study = submission.study
    done = len(graph) - len(submission.new) - len(submission.queued)
    print(f"submitted {len(submission.new)} SLURM job(s) for {study.name} ({len(submission.queued)} still queued from before, "
          f"{done} already done); watch with: mirl status {study}")
    if not args.wait:
        return None
    failed = {job: state for job, state in launch.wait_for_slurm(submission.job_ids).items() if state != "COMPLETED"}
    if failed:
        from mirl.errors import MirlError

        raise MirlError(f"SLURM job(s) did not complete: {failed}; see {options.folder}, then run the same command again to resume")
    return spec.run()


def _dry_run(args: argparse.Namespace, overrides: dict) -> int:
    """Print the plan and the bill of the study; nothing is written."""
    from mirl.errors import MirlError
    from mirl.study.plan import format_plan, plan_study, seconds_per_step

    if args.seconds_per_step is not None and not args.seconds_per_step > 0:
        raise MirlError(f"--seconds-per-step must be a positive number, got {args.seconds_per_step}")
    plan = plan_study(args.preset, overrides, args.config, out=args.out)
    if args.seconds_per_step is not None:
        step, where = args.seconds_per_step, "given time"
    elif args.no_timing:
        step, where = None, ""
    else:
        step, where = seconds_per_step(plan.cfg)
    print(format_plan(plan, step, where))
    from mirl.study.launch import graph_summary, job_graph

    batch, why = _batch_nodes(plan)
    launcher, cpu = _cpu_launch(args, plan, batch)
    if cpu is not None:
        print(f"  cpu now: {cpu.reason}")
    print(f"  {why}")
    for line in graph_summary(job_graph(plan.cfg, batch), launcher, cpu.processes if cpu else (args.jobs or 2), plan.finished):
        print(f"  {line}")
    return 0


def print_summary(study: str | os.PathLike) -> None:
    """Per variant (the ticket, then each control branch), one line per level finished by every
    replicate: remaining weights (both denominators), the mean PSNR over tasks against the degraded
    input's, and the gain with its 95% interval and n; then each control's primary endpoint, each
    stability barrier, and a warning for every task and level where a network makes images worse
    than its input, and for every node whose mask empties a tensor or cuts a normalisation scale by
    more than half."""
    from mirl.analysis.evidence import barrier_table, primary_lines, scores_table, study_variants

    from mirl.pruning.health import study_mask_warnings

    scores = scores_table(study_variants(study))
    if scores.empty:
        return
    for label, group in scores.groupby("label", sort=False):
        _print_variant(label, group)
    primary = primary_lines(scores)
    if primary:
        print("primary endpoint of each control (named before the run: docs/lottery.md, Analysis plan), "
              "PSNR difference ticket - control, 95% t-interval across seeds:")
        for line in primary:
            print(f"  {line}")
        print("  (per-level and per-task differences are secondary rows, Holm-adjusted: notebook 02)")
    for line in study_mask_warnings(study):
        print(f"warning: {line}")
    barriers = barrier_table({"": study})
    if not barriers.empty:
        print(f"stability barrier (dB; 0 = linearly connected), {barriers['method'].iloc[0]}:")
        for _, row in barriers.iterrows():
            print(f"  level {row['level']}  {row['remaining trainable (%)']:7.2f}% trainable  {row['barrier (dB)']} dB"
                  f"  beside a gain over the input of {row['gain over the input at the ends (dB)']} dB"
                  f"  |A - B| / |A - start| {row['|A - B| / |A - start|']}  n = {row['n']}; {row['crops per photo']}")


def _print_variant(label: str, scores: "pd.DataFrame") -> None:  # noqa: F821
    from mirl.analysis.evidence import MEAN, curve_table, harm_warnings

    psnr, gain = (c[c["task"] == MEAN].set_index("level") for c in (curve_table(scores, m) for m in ("psnr", "gain")))
    convention = ", ".join(sorted(set(scores["convention"])))
    print(f"{label}:")
    print(f"level  prunable  trainable  mean PSNR  input PSNR  gain over the input [95% interval]  n"
          f"   (metric convention: {convention}; {gain['method'].iloc[0]})")
    for level, row in gain.iterrows():
        interval = f"{row['mean']:+6.2f} dB [{row['low']:+.2f}, {row['high']:+.2f}]"
        print(f"{level:>5}  {100 * row['remaining_prunable']:7.2f}%  {100 * row['remaining_trainable']:8.2f}%"
              f"  {psnr.loc[level, 'mean']:9.2f}  {psnr.loc[level, 'mean'] - row['mean']:10.2f}"
              f"  {interval:<34}  {row['images']} img x {row['replicates']} rep")
    for line in harm_warnings(scores):
        print(f"warning: {line}")

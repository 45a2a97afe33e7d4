"""A study as a job graph: one job per level of each replicate's main chain, one per branch of a
level (started once that level's main job is done), replicates side by side; run by N local
processes or submitted to SLURM through submitit.

Jobs are safe to repeat: a job whose nodes are finished does nothing, an interrupted one resumes
from its last checkpoint, and jobs of one study lock only the node they run
(``run_study(..., shared=True)``). Submitted job ids go to ``<study>/jobs.json`` for ``mirl status``.

Example:
    >>> from mirl.config import study_preset
    >>> [(j.name, j.after) for j in job_graph(study_preset("smoke", {"rounds": 1, "branches": "random_reinit"}))]
    [('r0-L0-main', ()), ('r0-L1-main', ('r0-L0-main',)), ('r0-L1-random_reinit', ('r0-L1-main',))]
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

from mirl.errors import MirlError
from mirl.fileio import atomic_write_json, read_json

log = logging.getLogger(__name__)

JOBS_FILE = "jobs.json"
LAUNCHERS = ("inline", "local", "slurm")

Node = tuple[int, int, str]


@dataclass(frozen=True)
class Job:
    """Nodes run by one process, after the jobs it depends on."""

    name: str
    nodes: tuple[Node, ...]
    after: tuple[str, ...] = ()


@dataclass(frozen=True)
class StudySpec:
    """What ``run_study`` needs to find a study again in another process (picklable)."""

    preset: str
    overrides: Mapping[str, Any] = field(default_factory=dict)
    config_file: str | None = None
    out: str | None = None

    def run(self, nodes: Sequence[Node] = ()) -> Path:
        """Run ``nodes`` of the study (none: only set up its folder) beside other jobs; its folder."""
        from mirl.lottery import run_study

        return run_study(self.preset, {**self.overrides, "progress": False}, self.config_file, out=self.out,
                         nodes=[tuple(n) for n in nodes], shared=True)


def job_graph(cfg: Any) -> list[Job]:
    """The jobs of a study (a :class:`mirl.config.StudyConfig`), in an order that respects ``after``."""
    from mirl.lottery import study_nodes

    jobs = []
    for r, level, branch in study_nodes(cfg):
        main = f"r{r}-L{level}-main"
        if branch == "main":
            jobs.append(Job(main, ((r, level, branch),), (f"r{r}-L{level - 1}-main",) if level else ()))
        else:
            jobs.append(Job(f"r{r}-L{level}-{branch}", ((r, level, branch),), (main,)))
    return jobs


def _run_job_in_child(spec: StudySpec, nodes: Sequence[Node], device: str | None) -> None:
    if device is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = device
    spec.run(nodes)


def run_local(spec: StudySpec, jobs: Sequence[Job], processes: int, devices: Sequence[str] | None = None) -> None:
    """Run the graph in up to ``processes`` local processes, each job once its ``after`` jobs are
    done; with ``devices`` (e.g. the GPUs' indices), each process sees only its own.

    Example:
        >>> run_local(StudySpec("smoke"), job_graph(study_preset("smoke")), processes=2)  # doctest: +SKIP
    """
    import multiprocessing

    if processes < 1:
        raise MirlError(f"--jobs must be at least 1, got {processes}")
    context = multiprocessing.get_context("spawn")
    pending, running, done = list(jobs), {}, set()
    free = list(devices) if devices else [None] * processes
    slots = min(processes, len(free))
    while pending or running:
        for job in [j for j in pending if set(j.after) <= done][: slots - len(running)]:
            device = free.pop(0)
            process = context.Process(target=_run_job_in_child, args=(spec, job.nodes, device), name=job.name)
            process.start()
            running[job.name] = (process, device, job)
            pending.remove(job)
            log.info("job %s started (process %d%s)", job.name, process.pid, f", device {device}" if device else "")
        time.sleep(0.2)
        for name, (process, device, job) in list(running.items()):
            if process.exitcode is None:
                continue
            del running[name]
            free.append(device)
            if process.exitcode != 0:
                for other, _, _ in running.values():
                    other.join()
                raise MirlError(f"job {name} (nodes {list(job.nodes)}) failed with exit code {process.exitcode}; "
                                "run the same command again to resume (finished nodes are kept)")
            done.add(name)
            log.info("job %s done", name)


@dataclass(frozen=True)
class SlurmOptions:
    """What each SLURM job asks for."""

    folder: str
    partition: str | None = None
    gpus_per_job: int = 0
    time_min: int = 24 * 60
    account: str | None = None
    cpus_per_job: int | None = None
    sbatch: Mapping[str, str] = field(default_factory=dict)


def _job_call():  # a submitit Checkpointable, made on first use (submitit is imported lazily)
    import submitit

    class NodeJob(submitit.helpers.Checkpointable):
        """One job of the graph; on timeout or preemption submitit requeues it, and the study
        resumes from the node's last checkpoint."""

        def __call__(self, spec: StudySpec, nodes: Sequence[Node], gpus: int) -> str:
            if gpus > 1:  # one task per GPU, joined as torchrun would
                submitit.helpers.TorchDistributedEnvironment().export(set_cuda_visible_devices=False)
            return str(spec.run(nodes))

    return NodeJob()


def submit_slurm(spec: StudySpec, jobs: Sequence[Job], options: SlurmOptions) -> dict[str, str]:
    """Submit the graph with ``afterok`` dependencies; write the job ids to ``<study>/jobs.json``
    and return them (job name -> SLURM job id). Jobs whose nodes are all finished are not submitted.
    """
    import submitit

    study = spec.run()  # the study folder and its data set exist before any job starts
    from mirl import paths

    def finished(job: Job) -> bool:
        return all(paths.is_finished(paths.level_dir(paths.replicate_dir(study, r), k, b)) for r, k, b in job.nodes)

    executor = submitit.AutoExecutor(folder=options.folder, cluster="slurm")
    gpus = options.gpus_per_job
    base: dict[str, Any] = {"timeout_min": options.time_min, "nodes": 1, "tasks_per_node": max(gpus, 1),
                            "slurm_signal_delay_s": 120}
    if gpus:
        base["gpus_per_node"] = gpus
    if options.partition:
        base["slurm_partition"] = options.partition
    if options.account:
        base["slurm_account"] = options.account
    if options.cpus_per_job:
        base["cpus_per_task"] = options.cpus_per_job
    ids: dict[str, str] = {}
    record = {}
    call = _job_call()
    for job in jobs:
        if finished(job):
            continue
        extra = {"kill-on-invalid-dep": "yes", **options.sbatch}  # a failed level cancels what waits on it
        waits = [ids[a] for a in job.after if a in ids]
        if waits:
            extra["dependency"] = "afterok:" + ":".join(waits)
        executor.update_parameters(name=f"mirl-{study.name}-{job.name}", slurm_additional_parameters=extra, **base)
        submitted = executor.submit(call, spec, job.nodes, gpus)
        ids[job.name] = str(submitted.job_id)
        record[job.name] = {"job_id": ids[job.name], "nodes": [list(n) for n in job.nodes], "after": list(job.after),
                            "submitted": time.strftime("%Y-%m-%dT%H:%M:%S")}
        log.info("submitted %s as SLURM job %s%s", job.name, ids[job.name], f" (after {', '.join(waits)})" if waits else "")
    jobs_file = study / JOBS_FILE
    previous = read_json(jobs_file) if jobs_file.is_file() else {}
    atomic_write_json(jobs_file, {**previous, **record})
    return ids


ENDED = ("COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "OUT_OF_MEMORY", "NODE_FAIL", "DEADLINE", "BOOT_FAIL")


def wait_for_slurm(job_ids: Sequence[str], poll_s: float = 3.0) -> dict[str, str]:
    """Wait until every job has ended (a requeued one is waited for again); their final states."""
    while True:
        states = slurm_states(job_ids)
        if len(states) == len(set(job_ids)) and all(s in ENDED for s in states.values()):
            return states
        time.sleep(poll_s)


def submitted_jobs(study: str | os.PathLike) -> dict[str, dict[str, Any]]:
    """The jobs ``submit_slurm`` recorded for a study (empty when none were)."""
    path = Path(study) / JOBS_FILE
    return read_json(path) if path.is_file() else {}


def slurm_states(job_ids: Sequence[str]) -> dict[str, str]:
    """SLURM's state of each job (``sacct``); empty when SLURM's tools are not here."""
    import shutil
    import subprocess

    if not job_ids or shutil.which("sacct") is None:
        return {}
    out = subprocess.run(["sacct", "-n", "-P", "-X", "-j", ",".join(job_ids), "--format=JobID,State"],
                         capture_output=True, text=True, check=False).stdout
    states = {}
    for line in out.splitlines():
        job, _, state = line.partition("|")
        states[job.split("_")[0]] = state.split()[0] if state else ""
    return states


def node_states(study: str | os.PathLike) -> list[dict[str, Any]]:
    """Every node of a study (from its ``config.json``): done, running (a job of it is PENDING or
    RUNNING, or a local process holds its lock), started (files but no ``done.json``) or missing,
    with its SLURM job and that job's state when it was submitted.

    Example:
        >>> [row["state"] for row in node_states("runs/smoke_de4d1844")][:2]  # doctest: +SKIP
        ['done', 'done']
    """
    from mirl import paths
    from mirl.config import study_preset
    from mirl.lottery import study_nodes
    from mirl.runlock import LOCK_FILE

    study = Path(study)
    if not paths.is_run_dir(study):
        raise MirlError(f"{study} is not a study folder (no {paths.run_config('.').name}); give runs/<preset>_<hash>")
    config = read_json(paths.run_config(study))
    settings = {k: config[k] for k in ("rounds", "replicates", "branches") if k in config}
    cfg = study_preset(config.get("preset", "smoke"), settings)
    jobs = submitted_jobs(study)
    by_node = {tuple(n): (name, job["job_id"]) for name, job in jobs.items() for n in job["nodes"]}
    states = slurm_states(sorted({job_id for _, job_id in by_node.values()}))
    rows = []
    for node in study_nodes(cfg):
        folder = paths.level_dir(paths.replicate_dir(study, node[0]), node[1], node[2])
        job_name, job_id = by_node.get(node, (None, None))
        slurm = states.get(job_id or "", "")
        if paths.is_finished(folder):
            state = "done"
        elif slurm in ("PENDING", "RUNNING", "REQUEUED") or (folder / LOCK_FILE).exists():
            state = "running" if slurm != "PENDING" else "pending"
        elif folder.is_dir() and any(folder.iterdir()):
            state = "started"
        else:
            state = "missing"
        rows.append({"replicate": node[0], "level": node[1], "branch": node[2], "state": state,
                     "job": job_name, "job_id": job_id, "slurm_state": slurm or None})
    return rows


__all__ = ["JOBS_FILE", "LAUNCHERS", "Job", "SlurmOptions", "StudySpec", "job_graph", "node_states", "run_local",
           "slurm_states", "submit_slurm", "submitted_jobs", "wait_for_slurm"]

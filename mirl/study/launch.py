"""A study as a job graph: one job per level of each replicate's main chain, one per branch of a
level (started beside that level's main job, once main's level before is done; the stability
copy, which reads main's trained level, once that level's main job is done), replicates side by
side; run by N local processes or submitted to SLURM through submitit.

Jobs are safe to repeat: a job whose nodes are finished does nothing, an interrupted one resumes
from its last checkpoint, and jobs of one study lock only the node they run
(``run_study(..., shared=True)``). Submitted job ids go to ``<study>/jobs.json`` for ``mirl status``.

Example:
    >>> from mirl.study.config import study_preset
    >>> for job in job_graph(study_preset("smoke", {"rounds": 1, "branches": "random_reinit,stability"})):
    ...     print(job.name, job.after)
    r0-L0-main ()
    r0-L0-stability ('r0-L0-main',)
    r0-L1-main ('r0-L0-main',)
    r0-L1-random_reinit ('r0-L0-main',)
    r0-L1-stability ('r0-L1-main',)
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
    rerun_stale: bool = False  # the setup (no nodes) deletes the stale nodes, so that the jobs train them again

    def run(self, nodes: Sequence[Node] = (), note: str | None = None) -> Path:
        """Run ``nodes`` of the study (none: only set up its folder) beside other jobs; its folder.
        ``note`` is logged once the study runs (:func:`mirl.study.lottery.run_study`)."""
        from mirl.study.lottery import run_study

        return run_study(self.preset, {**self.overrides, "progress": False}, self.config_file, out=self.out,
                         nodes=[tuple(n) for n in nodes], shared=True, rerun_stale=self.rerun_stale and not nodes, note=note)


def job_graph(cfg: Any, batch: int = 1) -> list[Job]:
    """The jobs of a study (a :class:`mirl.study.config.StudyConfig`), in an order that respects
    ``after``; with ``batch`` > 1, a job per group of nodes trained as one
    (:func:`mirl.study.batched.batch_groups`), after the jobs of the nodes they start from.

    Example:
        >>> from mirl.study.config import study_preset
        >>> [(j.name, j.after) for j in job_graph(study_preset("smoke", {"rounds": 1, "replicates": 2}), batch=2)]
        [('r0+r1-L0-main', ()), ('r0+r1-L1-main', ('r0+r1-L0-main',))]
    """
    from mirl.branches import trained_main_levels
    from mirl.study.batched import batch_groups
    from mirl.study.lottery import study_nodes

    jobs, job_of = [], {}
    for group in batch_groups(study_nodes(cfg), batch):
        replicates, branches = dict.fromkeys(str(n[0]) for n in group), dict.fromkeys(n[2] for n in group)
        name = f"r{'+r'.join(replicates)}-L{group[0][1]}-{'+'.join(branches)}"
        starts_from = [(r, trained - 1, "main") for r, level, branch in group if (trained := trained_main_levels(branch, level))]
        after = tuple(dict.fromkeys(job_of[n] for n in starts_from))
        jobs.append(Job(name, tuple(group), after))
        job_of.update({n: name for n in group})
    return jobs


def graph_shape(jobs: Sequence[Job]) -> tuple[int, int]:
    """(longest chain of jobs that wait for each other, most jobs at one depth of the graph).

    Example:
        >>> from mirl.study.config import study_preset
        >>> graph_shape(job_graph(study_preset("smoke", {"rounds": 1, "replicates": 2, "branches": "stability"})))
        (3, 4)
    """
    from collections import Counter

    depth: dict[str, int] = {}
    for job in jobs:  # listed after what they wait for
        depth[job.name] = 1 + max((depth[a] for a in job.after), default=0)
    return max(depth.values(), default=0), max(Counter(depth.values()).values(), default=0)


def graph_summary(jobs: Sequence[Job], launcher: str = "inline", processes: int = 1,
                  finished: Sequence[Node] = ()) -> list[str]:
    """What ``launcher`` would run, in lines for the dry run: jobs to run, the longest chain of
    jobs that wait for each other, and how many can run at once.

    Example:
        >>> from mirl.study.config import study_preset
        >>> graph_summary(job_graph(study_preset("smoke", {"rounds": 1, "branches": "random_reinit"})), "slurm")
        ['launcher slurm: 3 of 3 jobs to submit, a job per node (afterok on the jobs it starts from); longest chain 2 jobs, up to 2 at once']
    """
    done = set(finished)
    todo = [j for j in jobs if not set(j.nodes) <= done]
    chain, widest = graph_shape(jobs)
    shape = f"longest chain {chain} jobs, up to {widest} at once"
    if launcher == "slurm":
        per = "node" if all(len(j.nodes) == 1 for j in jobs) else "group of nodes trained as one"
        return [f"launcher slurm: {len(todo)} of {len(jobs)} jobs to submit, a job per {per} (afterok on the jobs it starts "
                f"from); {shape}"]
    if launcher == "local":
        return [f"launcher local: {len(todo)} of {len(jobs)} jobs to run in {processes} process(es) here; {shape}"]
    return [f"launcher inline: {len(todo)} of {len(jobs)} nodes to run one after another in this process "
            f"(--launcher local or slurm: {shape})"]


def local_devices() -> list[str] | None:
    """The GPUs a local job may be given (``CUDA_VISIBLE_DEVICES`` entries as set, else the indices of
    the GPUs torch sees); ``None`` without one."""
    import torch

    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if not count:
        return None
    visible = [d.strip() for d in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if d.strip()]
    return visible[:count] if len(visible) >= count else [str(i) for i in range(count)]


def _run_job_in_child(spec: StudySpec, nodes: Sequence[Node], device: str | None, threads: int | None = None,
                      share: Any = None) -> None:
    if device is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = device
    if threads is not None:
        from mirl.study.cpu_plan import use_threads

        use_threads(threads)
    if share is not None:  # the launcher may change the count while the job runs
        from mirl.device import listen_for_threads

        listen_for_threads(share)
    spec.run(nodes)


def split_cores(cores: int, jobs: int) -> list[int]:
    """Threads for each of ``jobs`` jobs that share ``cores`` (at least 1 each; the first jobs
    take what does not divide evenly).

    Example:
        >>> split_cores(2, 1), split_cores(2, 2), split_cores(16, 3)
        ([2], [1, 1], [6, 5, 5])
    """
    if jobs < 1:
        return []
    each, extra = divmod(cores, jobs)
    return [max(1, each + (i < extra)) for i in range(jobs)]


def _waiting_on(jobs: Sequence[Job]) -> dict[str, int]:
    """How many jobs wait, directly or not, for each job.

    Example:
        >>> _waiting_on([Job("a", ()), Job("b", (), ("a",)), Job("c", (), ("b",)), Job("d", (), ("a",))])
        {'a': 3, 'b': 1, 'c': 0, 'd': 0}
    """
    below: dict[str, set[str]] = {job.name: set() for job in jobs}
    for job in reversed(jobs):  # listed after what they wait for: a job's waiters are complete when it is reached
        for name in job.after:
            below[name] |= below[job.name] | {job.name}
    return {name: len(waiters) for name, waiters in below.items()}


def run_local(spec: StudySpec, jobs: Sequence[Job], processes: int, devices: Sequence[str] | None = None,
              threads: int | None = None, finished: Sequence[Node] = (), progress: bool = False,
              cores: int | None = None, watch: Any = None) -> None:
    """Run the graph in up to ``processes`` local processes, each job once its ``after`` jobs are
    done; with ``devices`` (e.g. :func:`local_devices`), each process sees only one of them
    (``CUDA_VISIBLE_DEVICES``), handed out in turn; with ``threads``, each runs torch on that many
    threads. With ``cores`` instead (the free cores, :func:`mirl.study.cpu_plan.plan_cpu`), the
    jobs that run at once split that many threads (:func:`split_cores`), and keep splitting them
    while they run (:func:`mirl.device.follow_threads`): a job left running alone takes the cores of the jobs
    that ended, and gives them back when new jobs become ready. No more jobs run than free cores,
    so a study never holds more threads than free cores for longer than a training step, and
    neither a chain of levels nor the last branch of a study runs on one core while the other idles.
    ``watch`` (a :class:`mirl.study.cpu_plan.LoadWatch`, with ``cores``) keeps measuring the cores
    that other work leaves free, so that the jobs give cores back to work that starts after the
    study (OpenMP's spinning threads would otherwise slow a 2-thread job 5x or more beside it) and
    take them again once it ends.
    Jobs whose nodes are all in ``finished`` start no process. ``progress``: a bar of nodes done, with
    the jobs running (their starts and ends are then logged at debug level).

    Example:
        >>> run_local(StudySpec("smoke"), job_graph(study_preset("smoke")), processes=2)  # doctest: +SKIP
    """
    import multiprocessing

    if processes < 1:
        raise MirlError(f"--jobs must be at least 1, got {processes}")
    context = multiprocessing.get_context("spawn")
    skip = set(map(tuple, finished))
    done = {j.name for j in jobs if set(j.nodes) <= skip}
    pending, running = [j for j in jobs if j.name not in done], {}
    unlocks = _waiting_on(jobs)  # the jobs that unlock most start first (a level's main before its branches)
    free: list[str | None] = [devices[i % len(devices)] for i in range(processes)] if devices else [None] * processes
    bar = None
    if progress and pending:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(pending), desc=f"{processes} process{'es' if processes != 1 else ''}", unit="node", dynamic_ncols=True)
    note = log.debug if bar is not None else log.info
    try:
        while pending or running:
            ready = sorted((j for j in pending if set(j.after) <= done), key=lambda j: -unlocks[j.name])
            starting = ready[: processes - len(running)]
            counts = [threads] * len(starting)
            if cores is not None:  # the free threads, split among the jobs that run (more to those that unlock more)
                budget = cores if watch is None else watch.free([process.pid for process, *_ in running.values()])
                starting = starting[: max(min(processes, budget) - len(running), 0)]
                names = sorted([*running, *(j.name for j in starting)], key=lambda name: -unlocks[name])
                given = dict(zip(names, split_cores(budget, len(names))))
                for name, (*_, share) in running.items():
                    if share.value != given[name]:
                        note("job %s now on %d thread%s", name, given[name], "s" if given[name] != 1 else "")
                        share.value = given[name]
                counts = [given[j.name] for j in starting]
            for job, each in zip(starting, counts):
                device = free.pop(0)
                share = context.RawValue("i", each) if cores is not None else None
                process = context.Process(target=_run_job_in_child, args=(spec, job.nodes, device, each, share), name=job.name)
                process.start()
                running[job.name] = (process, device, job, share)
                pending.remove(job)
                note("job %s started (process %d%s%s)", job.name, process.pid, f", device {device}" if device else "",
                     f", {each} thread{'s' if each != 1 else ''}" if each else "")
                if bar is not None:
                    bar.set_postfix_str(f"running {', '.join(running)}")
            time.sleep(0.2)
            for name, (process, device, job, _) in list(running.items()):
                if process.exitcode is None:
                    continue
                del running[name]
                free.append(device)
                if process.exitcode != 0:
                    for other, *_ in running.values():
                        other.join()
                    raise MirlError(f"job {name} (nodes {list(job.nodes)}) failed with exit code {process.exitcode}; "
                                    "run the same command again to resume (finished nodes are kept)")
                done.add(name)
                note("job %s done", name)
                if bar is not None:
                    bar.set_postfix_str(f"running {', '.join(running)}" if running else "", refresh=False)
                    bar.update(1)
    finally:
        if bar is not None:
            bar.close()


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


def _one_script_line(flag: str, value: str) -> None:
    """Refuse a value with a line break or other control character: each option becomes one
    ``#SBATCH`` line, and a shell line among them makes sbatch ignore every later directive."""
    if any(ord(c) < 32 or c == "\x7f" for c in value):
        raise MirlError(f"{flag} {value!r} holds a line break or control character; each option is one #SBATCH line "
                        "of the batch script: give it on one line")


def sbatch_options(items: Sequence[str]) -> dict[str, str]:
    """``--sbatch`` values (``["qos=high", ...]``) as sbatch options (``{"qos": "high"}``), refused
    in one line when one would not be a single ``#SBATCH --key=value`` line.

    Example:
        >>> sbatch_options(["qos=high", "mail-type=END"])
        {'qos': 'high', 'mail-type': 'END'}
    """
    import re

    out: dict[str, str] = {}
    for item in items:
        _one_script_line("--sbatch", item)
        key, _, value = item.partition("=")
        if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_-]*", key.strip()) or not _:
            raise MirlError(f"--sbatch {item!r} is not KEY=VALUE with an sbatch option name as KEY, e.g. --sbatch qos=high")
        key, value = key.strip(), value.strip()
        if key in out and out[key] != value:
            raise MirlError(f"--sbatch {key} is given twice ({out[key]!r} and {value!r}); give it once")
        out[key] = value
    return out


def check_script_values(**values: str | None) -> None:
    """Refuse option values (``partition="debug"``, ...) that would not fit on one ``#SBATCH`` line."""
    for name, value in values.items():
        if value is not None:
            _one_script_line(f"--{name.replace('_', '-')}", value)


def _last_line(text: str) -> str:
    """The last non-empty line of a tool's message (where SLURM's tools put the reason), shortened."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return (lines[-1] if lines else "no message")[:200]


def check_slurm_reachable() -> None:
    """Refuse in one line when SLURM's tools are not on PATH or its controller does not answer
    ``sinfo``, before anything is made or submitted."""
    import shutil
    import subprocess

    missing = [tool for tool in ("sbatch", "sinfo") if shutil.which(tool) is None]
    if missing:
        raise MirlError(f"--launcher slurm needs SLURM's {', '.join(missing)} on PATH, and {'it is' if len(missing) == 1 else 'they are'} "
                        "not here; run from a SLURM login node, or use --launcher local")
    try:
        proc = subprocess.run(["sinfo", "-h", "-o", "%P"], capture_output=True, text=True, check=False, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise MirlError(f"SLURM's controller did not answer sinfo ({exc}); check that slurmctld runs (scontrol ping), "
                        "then run the same command again (nothing was made or submitted)") from None
    if proc.returncode != 0:
        raise MirlError(f"SLURM's controller cannot be reached (sinfo: {_last_line(proc.stderr or proc.stdout)}); check SLURM_CONF "
                        "and that slurmctld runs (scontrol ping), then run the same command again (nothing was made or submitted)")


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


@dataclass(frozen=True)
class Submission:
    """What :func:`submit_slurm` did: job name -> SLURM job id of the jobs it submitted, and of the
    jobs of an earlier submission still queued or running (not submitted again)."""

    study: Path
    new: Mapping[str, str]
    queued: Mapping[str, str]

    @property
    def job_ids(self) -> list[str]:
        """Every job the study now waits for."""
        return [*self.queued.values(), *self.new.values()]


def submit_slurm(spec: StudySpec, jobs: Sequence[Job], options: SlurmOptions) -> Submission:
    """Submit the graph with ``afterok`` dependencies and record the job ids in ``<study>/jobs.json``.
    Jobs whose nodes are all finished are not submitted, nor are jobs of an earlier submission that
    are still pending or running (new jobs wait for those).

    Example:
        >>> submit_slurm(StudySpec("smoke"), job_graph(study_preset("smoke")), SlurmOptions("runs/submitit")).new  # doctest: +SKIP
        {'r0-L0-main': '1041', 'r0-L1-main': '1042', 'r0-L1-random_reinit': '1043', ...}
    """
    import submitit

    check_script_values(partition=options.partition, account=options.account, submitit_folder=options.folder)
    sbatch_options([f"{k}={v}" for k, v in options.sbatch.items()])
    check_slurm_reachable()  # before the study folder is made
    study = spec.run()  # the study folder and its data set exist before any job starts
    from mirl import paths
    def finished(job: Job) -> bool:
        return all(paths.is_finished(paths.level_dir(paths.replicate_dir(study, r), k, b)) for r, k, b in job.nodes)

    executor = submitit.AutoExecutor(folder=options.folder, cluster="slurm")
    gpus = options.gpus_per_job
    base: dict[str, Any] = {"timeout_min": options.time_min, "nodes": 1, "tasks_per_node": max(gpus, 1),
                            # the requeue signal comes this long before the limit (a quarter of a short limit)
                            "slurm_signal_delay_s": min(120, max(15, options.time_min * 15))}
    if gpus:
        base["gpus_per_node"] = gpus
    if options.partition:
        base["slurm_partition"] = options.partition
    if options.account:
        base["slurm_account"] = options.account
    if options.cpus_per_job:
        base["cpus_per_task"] = options.cpus_per_job
    previous = submitted_jobs(study)
    states = slurm_states([job["job_id"] for job in previous.values()])
    wanted = {job.name for job in jobs}
    queued = {name: job["job_id"] for name, job in previous.items() if name in wanted and states.get(job["job_id"]) in ACTIVE}
    ids: dict[str, str] = {}
    kept: dict[str, str] = {}
    record: dict[str, Any] = {}
    call = _job_call()
    try:
        for job in jobs:
            if finished(job):
                continue
            if job.name in queued:
                log.info("%s is still queued as SLURM job %s; not submitted again", job.name, queued[job.name])
                kept[job.name] = queued[job.name]
                continue
            extra = {"kill-on-invalid-dep": "yes", **options.sbatch}  # a failed level cancels what waits on it
            waits = [ids.get(a) or queued[a] for a in job.after if a in ids or a in queued]
            if waits:
                extra["dependency"] = "afterok:" + ":".join(waits)
            executor.update_parameters(name=f"mirl-{study.name}-{job.name}", slurm_additional_parameters=extra, **base)
            try:
                submitted = executor.submit(call, spec, job.nodes, gpus)
            except submitit.core.utils.FailedJobError as exc:
                raise MirlError(f"sbatch refused job {job.name} ({_last_line(str(exc))}); fix that, then run the same command "
                                f"again (the {len(record)} job(s) submitted before it are in {study / JOBS_FILE})") from None
            ids[job.name] = str(submitted.job_id)
            record[job.name] = {"job_id": ids[job.name], "nodes": [list(n) for n in job.nodes], "after": list(job.after),
                                "submitted": time.strftime("%Y-%m-%dT%H:%M:%S")}
            log.info("submitted %s as SLURM job %s%s", job.name, ids[job.name], f" (after {', '.join(waits)})" if waits else "")
    finally:  # what was submitted is recorded, also when a later submission fails
        if record:
            atomic_write_json(study / JOBS_FILE, {**submitted_jobs(study), **record})
    return Submission(study, ids, kept)


ACTIVE = ("PENDING", "RUNNING", "REQUEUED", "CONFIGURING", "COMPLETING", "SUSPENDED", "RESIZING", "REQUEUE_HOLD",
          "REQUEUE_FED", "SIGNALING", "STAGE_OUT")
STALE_LOCK = "stale lock"
STALE = "stale"  # finished by other code or options (mirl.study.stale)
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
    data = read_json(path, advice="it lists the submitted SLURM jobs; remove it (mirl status then shows no job ids)") if path.is_file() else {}
    if not isinstance(data, dict):
        raise MirlError(f"{path} is not a JSON object; remove it (mirl status then shows no job ids)")
    return {name: _job_record(path, name, job) for name, job in data.items()}


def _job_record(path: Path, name: str, job: Any) -> dict[str, Any]:
    """One entry of ``jobs.json``, its ``job_id`` as text (a number is taken as that id), or a
    :class:`MirlError` naming the file and the entry."""
    def node(n: Any) -> bool:
        return (isinstance(n, list) and len(n) == 3 and all(isinstance(x, int) and not isinstance(x, bool) for x in n[:2])
                and isinstance(n[2], str))

    job_id = job.get("job_id") if isinstance(job, dict) else None
    if isinstance(job_id, int) and not isinstance(job_id, bool):
        job_id = str(job_id)
    if not isinstance(job_id, str) or not job_id.strip() or not isinstance(job.get("nodes"), list) \
            or not all(node(n) for n in job["nodes"]):
        raise MirlError(f"{path} entry {name!r} is not a job record ({{\"job_id\": \"1041\", \"nodes\": [[0, 1, \"main\"]], ...}}); "
                        "remove it (mirl status then shows no job ids)")
    return {**job, "job_id": job_id.strip()}


def slurm_states(job_ids: Sequence[str]) -> dict[str, str]:
    """SLURM's state of each job (``sacct``, else ``squeue`` for queued jobs where accounting is
    off); empty when SLURM's tools are not here."""
    import shutil
    import subprocess

    states: dict[str, str] = {}
    for tool, args in (("sacct", ["-n", "-P", "-X", "--format=JobID,State", "-j"]), ("squeue", ["-h", "-o", "%i|%T", "-j"])):
        wanted = [j for j in job_ids if j not in states]
        if not wanted or shutil.which(tool) is None:
            continue
        try:
            out = subprocess.run([tool, *args, ",".join(wanted)], capture_output=True, text=True, check=False, timeout=60).stdout
        except (OSError, subprocess.TimeoutExpired) as exc:
            log.warning("%s did not answer (%s); job states unknown", tool, exc)
            continue
        for line in out.splitlines():
            job, _, state = line.partition("|")
            if state.strip():
                states[job.split("_")[0].strip()] = state.split()[0]
    return states


def _study_settings(study: Path) -> tuple[dict[str, Any], Any]:
    """A study's ``config.json`` and its settings (replicates and branches as last run)."""
    from mirl import paths
    from mirl.study.config import recorded_config

    if not paths.is_run_dir(study):
        raise MirlError(f"{study} is not a study folder (no {paths.run_config('.').name}); give runs/<preset>_<hash>")
    config = read_json(paths.run_config(study))
    if not isinstance(config, dict) or not isinstance(config.get("non_default"), dict):
        raise MirlError(f"{paths.run_config(study)} is not a study's settings (no 'non_default'); restore it or give another folder")
    grown = {k: config[k] for k in ("replicates", "branches") if k in config}  # not part of the hash: as last run
    try:
        cfg = recorded_config(config, grown)
    except MirlError as exc:
        raise MirlError(f"{paths.run_config(study)} holds a bad setting ({exc}); restore it or give another folder") from None
    return config, cfg


def rerun_stale_command(study: str | os.PathLike) -> str:
    """The ``mirl lottery`` command that trains a study's stale nodes again (its preset, the
    settings that differ from the preset's, its folder, and ``--rerun-stale``).

    Example:
        >>> rerun_stale_command("runs/smoke_de4d1844")   # doctest: +SKIP
        'mirl lottery --preset smoke --out runs --rerun-stale'
    """
    from mirl.study.config import lottery_command

    study = Path(study)
    config, cfg = _study_settings(study)
    return lottery_command(str(config.get("preset", "paper")), cfg, study.parent, "--rerun-stale")


def node_states(study: str | os.PathLike) -> list[dict[str, Any]]:
    """Every node of a study (from its ``config.json``): done, stale (finished by other code or
    options: ``stale`` says why, :mod:`mirl.study.stale`), running (a job of it is PENDING or
    RUNNING, or a local process holds its lock), started (files but no ``done.json``) or missing,
    with its SLURM job and that job's state when it was submitted.

    Example:
        >>> [row["state"] for row in node_states("runs/smoke_de4d1844")][:2]  # doctest: +SKIP
        ['done', 'done']
    """
    from mirl import paths
    from mirl.study.lottery import study_nodes
    from mirl.study.stale import stale_nodes
    from mirl.runlock import lock_holder

    study = Path(study)
    cfg = _study_settings(study)[1]
    jobs = submitted_jobs(study)
    by_node = {tuple(n): (name, job["job_id"]) for name, job in jobs.items() for n in job["nodes"]}
    folders = {node: paths.level_dir(paths.replicate_dir(study, node[0]), node[1], node[2]) for node in study_nodes(cfg)}
    finished = {node for node, folder in folders.items() if paths.is_finished(folder)}
    stale = stale_nodes(study, folders)
    holders = {node: lock_holder(folder) for node, folder in folders.items() if node not in finished and folder.is_dir()}
    lock_jobs = {h["slurm_job"] for h in holders.values() if h is not None and h["slurm_job"]}
    states = slurm_states(sorted({job_id for _, job_id in by_node.values()} | lock_jobs))
    rows = []
    for node, folder in folders.items():
        job_name, job_id = by_node.get(node, (None, None))
        slurm = states.get(job_id or "", "")
        holder = holders.get(node)
        if node in stale:
            state = STALE
        elif node in finished:
            state = "done"
        elif slurm in ACTIVE:
            state = "pending" if slurm == "PENDING" else "running"
        elif holder is not None:  # a lock whose SLURM job ended was left by a killed job (scancel, SIGKILL on its host)
            state = STALE_LOCK if states.get(holder["slurm_job"] or "") in ENDED else "running"
        elif folder.is_dir() and any(folder.iterdir()):
            state = "started"
        else:
            state = "missing"
        lock_job = holder["slurm_job"] if holder is not None else None
        rows.append({"replicate": node[0], "level": node[1], "branch": node[2], "state": state, "stale": stale.get(node),
                     "job": job_name, "job_id": job_id, "slurm_state": slurm or None,
                     "lock_job": lock_job, "lock_job_state": states.get(lock_job) if lock_job else None})
    return rows


def stale_lock_fix(study: str | os.PathLike, row: Mapping[str, Any]) -> str:
    """What to do about a node of :func:`node_states` in state ``stale lock``, in one line."""
    from mirl import paths
    from mirl.runlock import LOCK_FILE

    lock = paths.level_dir(paths.replicate_dir(Path(study), row["replicate"]), row["level"], row["branch"]) / LOCK_FILE
    return (f"{lock} names SLURM job {row['lock_job']}, which ended ({row['lock_job_state']}); no process runs this node: "
            "run the study again to resume it, or remove the file")


__all__ = ["JOBS_FILE", "LAUNCHERS", "Job", "SlurmOptions", "StudySpec", "Submission", "check_script_values", "check_slurm_reachable", "graph_summary",
           "job_graph", "local_devices", "node_states", "rerun_stale_command", "run_local", "sbatch_options", "slurm_states", "stale_lock_fix", "submit_slurm",
           "submitted_jobs", "wait_for_slurm"]

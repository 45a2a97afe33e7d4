"""How a CPU study uses the machine: processes and intra-op threads chosen from the free cores.

PromptIR at the kit's CPU widths (8 channels at its first level) is bound by per-operator
overhead, not arithmetic, so two 1-thread processes training two nodes do more per second than one
2-thread process training one (``benchmarks/study_throughput.py``). And OpenMP threads wait for each
other by spinning: a process with more threads than there are free cores slows 18-50x when another
job takes a core. So a study never asks for more threads than cores left free by the other work on
the machine (measured from ``/proc/stat`` when it starts), and it runs nodes side by side, one thread
each, when its job graph has nodes that can run at once and each is long enough to pay for starting
a process.

Example:
    >>> plan_cpu(cores=2, busy=0.1, width=3, steps_per_node=375)
    CpuPlan(processes=2, threads=1, cores=2, busy=0.1, reason='2 free of 2 cores, up to 3 nodes at once: 2 processes x 1 thread', threads_given=False)
    >>> plan_cpu(cores=2, busy=1.0, width=3, steps_per_node=375).threads   # one core taken by other work
    1
"""

from __future__ import annotations

import logging
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

log = logging.getLogger(__name__)

# A node shorter than this many steps does not pay for a new process (importing torch, indexing the
# data: about 3-5 s, against about 0.25 s per step of the tiny network on one core).
MIN_STEPS_FOR_PROCESSES = 100
THREADS_ENV = "OMP_NUM_THREADS"
RAISE_MARGIN = 0.25  # cores of other work: a study gives a core back above 0.5 busy, takes it again below 0.25


@dataclass(frozen=True)
class CpuPlan:
    """Processes (nodes trained at once) and intra-op threads per process, and why."""

    processes: int
    threads: int
    cores: int
    busy: float
    reason: str
    threads_given: bool = False  # by --threads or OMP_NUM_THREADS: every process gets them


def usable_cores() -> int:
    """The cores this process may run on (its affinity mask; the CPU count where there is none).

    Example:
        >>> usable_cores() >= 1
        True
    """
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def _cpu_times(stat: Path) -> tuple[int, int]:
    """(busy, total) jiffies of all CPUs from the first line of ``/proc/stat``."""
    fields = [int(v) for v in stat.read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    total = sum(fields[:8])  # guest time is already counted in user time
    return total - idle, total


def busy_cores(seconds: float = 0.5, stat: str | os.PathLike = "/proc/stat", cores: int | None = None) -> float:
    """How many cores other work keeps busy, sampled over ``seconds`` (this process sleeps meanwhile);
    the 1-minute load average where ``/proc/stat`` is unreadable.

    Example:
        >>> 0.0 <= busy_cores(0.1) <= os.cpu_count()
        True
    """
    cpus = os.cpu_count() or 1
    try:
        busy0, total0 = _cpu_times(Path(stat))
        time.sleep(seconds)
        busy1, total1 = _cpu_times(Path(stat))
    except (OSError, ValueError, IndexError):
        return min(float(cores or cpus), os.getloadavg()[0]) if hasattr(os, "getloadavg") else 0.0
    share = (busy1 - busy0) / (total1 - total0) if total1 > total0 else 0.0
    return round(min(max(share, 0.0), 1.0) * cpus, 2)


def free_cores(cores: int, busy: float) -> int:
    """The cores left to a study when other work keeps ``busy`` of its ``cores`` busy (at least 1).

    Example:
        >>> free_cores(2, 0.1), free_cores(2, 0.9), free_cores(2, 2.0)
        (2, 1, 1)
    """
    return max(1, min(cores, math.floor(cores - busy + 0.5)))


def _own_jiffies(pids: Sequence[int], proc: Path) -> dict[int, int]:
    """User + system jiffies (all threads) of each process in ``pids`` and of every process
    below them (a job's data-loader workers), from ``/proc/<pid>/stat``; processes that are gone are left out."""
    table: dict[int, tuple[int, int]] = {}  # pid -> (parent pid, jiffies)
    for entry in proc.iterdir() if pids else ():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            table[int(entry.name)] = (int(fields[1]), int(fields[11]) + int(fields[12]))  # ppid; utime + stime
        except (OSError, IndexError, ValueError):
            continue
    own = {pid for pid in pids if pid in table}
    grew = True
    while grew:
        below = {pid for pid, (parent, _) in table.items() if parent in own and pid not in own}
        own |= below
        grew = bool(below)
    return {pid: table[pid][1] for pid in own}


class LoadWatch:
    """The free cores while a study runs, so that its jobs can give cores back to work that started
    after it and take them again once it ends (also cores that were busy when the study planned):
    from ``planned`` (the plan's cores) on, every ``every`` seconds, the machine's ``cores`` less
    what other work keeps busy, i.e. the busy time (``/proc/stat``) less that of the study's own job
    processes and their children, as in :func:`busy_cores`. A core is taken again only when it is
    free by :data:`RAISE_MARGIN` more than it took to give it back. A sample in which one of those
    processes ended is skipped (its last CPU time cannot be read); one that started is counted from
    its start. Without ``/proc`` it keeps ``planned``.

    Example:
        >>> watch = LoadWatch(planned=2, cores=2)
        >>> watch.free([])      # the first call starts the first sample
        2
    """

    def __init__(self, planned: int, cores: int | None = None, every: float = 5.0, proc: str | os.PathLike = "/proc") -> None:
        self.cores, self.every, self.proc = cores or usable_cores(), every, Path(proc)
        self.current, self.busy = planned, 0.0
        self._last: tuple[float, int, int, dict[int, int]] | None = None

    def free(self, pids: Sequence[int]) -> int:
        """The cores the study may use now (``pids``: its running job processes)."""
        now = time.monotonic()
        if self._last is not None and now - self._last[0] < self.every:
            return self.current
        try:
            busy, total = _cpu_times(self.proc / "stat")
            own = _own_jiffies(pids, self.proc)
        except (OSError, ValueError, IndexError):
            return self.current
        last, self._last = self._last, (now, busy, total, own)
        if last is None or not set(last[3]) <= set(own) or total <= last[2]:
            return self.current
        others = (busy - last[1] - sum(jiffies - last[3].get(pid, 0) for pid, jiffies in own.items())) / (total - last[2])
        self.busy = round(min(max(others, 0.0), 1.0) * (os.cpu_count() or 1), 2)
        free = free_cores(self.cores, self.busy)
        if free > self.current:  # take cores again only with a margin, so that work near half a core does not flip it
            free = max(self.current, free_cores(self.cores, self.busy + RAISE_MARGIN))
        if free != self.current:
            log.info("cpu: other work now keeps %.1f core(s) busy: the study uses %d core%s", self.busy, free,
                     "s" if free != 1 else "")
        self.current = free
        return self.current


def plan_cpu(cores: int, busy: float, width: int, steps_per_node: int | None, processes: int | None = None,
             threads: int | None = None) -> CpuPlan:
    """Processes and threads for a study whose job graph runs up to ``width`` nodes at once, on
    ``cores`` cores of which ``busy`` are kept busy by other work. ``processes`` or ``threads``
    given (``--jobs``, ``--threads``, ``OMP_NUM_THREADS``) are kept; the rest is chosen so that
    processes x threads never exceeds the free cores (at least 1). Side by side, one thread each,
    when the graph has 2 or more nodes at once of at least :data:`MIN_STEPS_FOR_PROCESSES` steps
    (``None``: not known yet, taken as long enough).

    Example:
        >>> plan_cpu(cores=2, busy=0.0, width=1, steps_per_node=375).threads     # a chain: one process, both cores
        2
        >>> plan_cpu(cores=2, busy=0.0, width=3, steps_per_node=8).processes    # nodes too short for a process each
        1
        >>> plan_cpu(cores=16, busy=2.2, width=4, steps_per_node=375, processes=2).threads
        7
    """
    if cores < 1:
        raise ValueError(f"cores must be at least 1, got {cores}")
    free = free_cores(cores, busy)
    side_by_side = width >= 2 and free >= 2 and (steps_per_node is None or steps_per_node >= MIN_STEPS_FOR_PROCESSES)
    chosen_processes = processes if processes is not None else (min(width, free) if side_by_side else 1)
    chosen_threads = threads if threads is not None else max(1, free // chosen_processes)
    why = f"{free} free of {cores} cores"
    if busy >= 0.5:
        why += f" ({busy:.1f} busy with other work)"
    why += f", up to {width} node{'s' if width != 1 else ''} at once"
    if processes is None and width >= 2 and free >= 2 and not side_by_side:
        why += f" of {steps_per_node} steps (too short to start a process each)"
    given = [f"{name} given" for name, value in (("processes", processes), ("threads", threads)) if value is not None]
    why += f": {chosen_processes} process{'es' if chosen_processes != 1 else ''} x {chosen_threads} thread{'s' if chosen_threads != 1 else ''}"
    if given:
        why += f" ({', '.join(given)})"
    if chosen_processes * chosen_threads > free:
        why += "; more threads than free cores: expect each to wait for the others"
    return CpuPlan(chosen_processes, chosen_threads, cores, busy, why, threads_given=threads is not None)


def threads_from_env(environ: Mapping[str, str] = os.environ) -> int | None:
    """The thread count set with ``OMP_NUM_THREADS`` (a positive whole number), else ``None``.

    Example:
        >>> threads_from_env({"OMP_NUM_THREADS": "3"}), threads_from_env({})
        (3, None)
    """
    value = environ.get(THREADS_ENV, "").strip()
    return int(value) if value.isdigit() and int(value) > 0 else None


def use_threads(threads: int) -> None:
    """Run this process's torch operations on ``threads`` threads, and give child processes the same
    (``OMP_NUM_THREADS``, read when their OpenMP starts).

    Example:
        >>> use_threads(1)  # doctest: +SKIP
    """
    import torch

    os.environ[THREADS_ENV] = str(threads)
    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)

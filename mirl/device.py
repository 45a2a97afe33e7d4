"""Pick the compute device: CUDA when present, the CPU otherwise. Never hard-code ``.cuda()``.
On the CPU, also the intra-op threads a study's process computes on, changed while it runs.

Threads: the local launcher (:func:`mirl.study.launch.run_local`) splits the free cores among the
jobs that run at once. When a job ends and nothing is ready to take its core, the jobs still running
take it; when new jobs become ready, or work that started after the study takes a core, they give
cores back. Each job process holds a shared integer that the launcher writes
(:func:`listen_for_threads`); a study that runs in one process (``--launcher inline``, or ``auto``
on a chain of levels) measures the free cores itself (:func:`watching_load` with a
:class:`mirl.study.cpu_plan.LoadWatch`). Training steps and evaluated images call
:func:`follow_threads`, which applies a changed count there: OpenMP's thread count belongs to the
thread that sets it, so it is changed from the loop that computes, never from a helper thread.
Elsewhere :func:`follow_threads` does nothing.

Example:
    >>> resolve_device("cpu")
    device(type='cpu')
"""

from __future__ import annotations

import contextlib
import logging
import os
from typing import Any, Iterator

import torch

from mirl.errors import MirlError

DEVICE_CHOICES: tuple[str, ...] = ("auto", "cpu", "cuda")

log = logging.getLogger(__name__)

_share: Any = None  # a multiprocessing RawValue("i") written by the local launcher; None outside a launched job
_watch: Any = None  # a LoadWatch of this process's own study (a study in one process); None elsewhere


def resolve_device(name: str | torch.device = "auto") -> torch.device:
    """``auto`` -> ``cuda`` if available else ``cpu``; ``cuda`` without a GPU is an error."""
    if isinstance(name, torch.device):
        return name
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise MirlError(f"device {name!r} asked for, but no CUDA GPU is available; use --device cpu or auto")
    try:
        return torch.device(name)
    except RuntimeError:
        raise MirlError(f"unknown device {name!r}; valid: {list(DEVICE_CHOICES)}") from None


def listen_for_threads(share: Any) -> None:
    """Run this process on the thread count held in ``share`` (a ``multiprocessing`` integer that
    the launcher writes), now and at each :func:`follow_threads`."""
    global _share
    _share = share
    follow_threads()


@contextlib.contextmanager
def watching_load(watch: Any) -> Iterator[None]:
    """Within the block, run this process on the cores that ``watch`` (a
    :class:`mirl.study.cpu_plan.LoadWatch`) finds free, this process and its children counted as the
    study's own work, at each :func:`follow_threads`; the thread count before it is restored after it.

    Example:
        >>> from mirl.study.cpu_plan import LoadWatch
        >>> with watching_load(LoadWatch(planned=2)):
        ...     follow_threads() in (1, 2)
        True
    """
    global _watch
    before, _watch = torch.get_num_threads(), watch
    try:
        yield
    finally:
        _watch = None
        torch.set_num_threads(before)


def follow_threads() -> int | None:
    """Apply the launcher's (or the load watch's) thread count if it changed since the last call;
    the count now in use, or ``None`` when neither is set. Costs a shared-memory read (a clock
    read with a load watch, a ``/proc`` sample every few seconds) when nothing changed."""
    if _share is not None:
        wanted = int(_share.value)
    elif _watch is not None:
        wanted = _watch.free([os.getpid()])
    else:
        return None
    if wanted >= 1 and torch.get_num_threads() != wanted:
        log.info("now on %d thread(s)%s", wanted, ": the local launcher shares the cores" if _share is not None else "")
        torch.set_num_threads(wanted)
    return torch.get_num_threads()

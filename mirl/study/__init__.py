"""The engine: a study's settings, its plan and bill, and the run that trains it.

``config`` (the study's settings and presets, read from YAML by ``yamlio``), ``plan`` (what a run
would do and cost), ``lottery`` (the study: levels of iterative magnitude pruning with reset, and
the branches of :mod:`mirl.branches`), ``train`` and ``step`` (one level's training and its
optimizer step), ``batched`` (nodes of a level trained as one network), ``distributed`` (torchrun), ``launch`` (the study as a job graph: local processes
or SLURM through submitit), ``log`` (log.txt and TensorBoard) and ``stale`` (finished nodes made by
other code, which readers check too). Readers of finished runs
(:mod:`mirl.analysis`, :mod:`mirl.reports`) never import this package's engine modules.

Example:
    >>> from mirl.study.lottery import run_study
    >>> run_study("smoke")                      # doctest: +SKIP
"""

__all__ = ["batched", "config", "distributed", "launch", "log", "lottery", "plan", "stale", "step", "train", "yamlio"]

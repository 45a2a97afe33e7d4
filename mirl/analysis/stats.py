"""95% intervals for study results, and the verdict they allow.

Scores come as ``values[replicate][task]``: for each replicate (an independent training seed) and
each task, a 1-D array of per-image values (PSNR, PSNR gain over the input, or a paired difference
ticket - control on the same images). The statistic is the mean over tasks of the mean over
images, so every task weighs the same whatever its image count. The interval depends on how many
replicates there are:

* **two or more**: a t-interval across replicates of each replicate's statistic, with
  ``replicates - 1`` degrees of freedom (``scipy.stats.ttest_1samp(...).confidence_interval``), and
  the test's two-sided p. It covers training-seed noise, for this fixed set of test images: its n
  is the number of seeds, not of images (:attr:`Interval.sample_size` says so).
* **one**: a bootstrap over test images, resampled within each task (``scipy.stats.bootstrap``,
  percentile, 9,999 resamples, fixed seed; BCa's jackknife over several tasks costs 100x more).
  It describes the choice of test images only: training-seed noise is not in it, and
  :attr:`Interval.method` says so.

A verdict needs at least 2 seeds and 2 images in every task; with fewer it is :data:`TOO_FEW`
("too few to tell"), never "resolved". Several verdicts of one family are Holm-adjusted
(:func:`holm`; Holm 1979). The analysis plan is in ``docs/lottery.md`` ("Analysis plan").

Example:
    >>> import numpy as np
    >>> iv = interval([[np.array([1.0, 1.2, 0.9])], [np.array([1.1, 1.0, 1.3])], [np.array([0.8, 1.0, 1.1])]])
    >>> iv.replicates, iv.images, iv.df, round(iv.mean, 3), iv.low > 0
    (3, 3, 2, 1.044, True)
    >>> iv.sample_size
    '3 seeds (each the mean over 3 test images)'
    >>> verdict(iv)
    'resolved'
    >>> verdict(interval([[np.array([1.0])], [np.array([1.2])], [np.array([0.9])]]))  # one image per task
    'too few to tell'
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

CONFIDENCE = 0.95
RESAMPLES = 9999
SEED = 0  # the bootstrap's own seed: the same results give the same interval
TOO_FEW = "too few to tell"  # the verdict with fewer than 2 seeds or fewer than 2 images in a task

Values = Sequence[Sequence[np.ndarray]]  # [replicate][task] -> per-image values


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'s' if count != 1 else ''}"


@dataclass(frozen=True)
class Interval:
    """A mean with its 95% interval, what it rests on, and the method.

    ``images``: test images behind each replicate's value (summed over tasks); ``replicates``: the
    seeds, the interval's real n; ``task_images``: the fewest images of one task (``None``: not
    known, taken as ``images``); ``p``: the two-sided p of the t-test of mean 0 across replicates
    (NaN with one); ``levels``: pruned levels each replicate's value averages (a primary endpoint).
    """

    mean: float
    low: float
    high: float
    images: int
    replicates: int
    method: str
    task_images: int | None = None
    p: float = math.nan
    levels: int = 1

    @property
    def df(self) -> int | None:
        """Degrees of freedom of the t-interval (replicates - 1); ``None`` with one replicate."""
        return self.replicates - 1 if self.replicates >= 2 else None

    @property
    def sample_size(self) -> str:
        """``"3 seeds (each the mean over 16 test images)"``: what the interval rests on.

        Example:
            >>> Interval(0.4, 0.1, 0.7, images=40, replicates=3, method="", levels=5).sample_size
            '3 seeds (each the mean over 5 pruned levels x 40 test images)'
            >>> Interval(0.4, 0.1, 0.7, images=1, replicates=1, method="").sample_size
            '1 seed (the mean over 1 test image)'
        """
        over = _plural(self.images, "test image")
        if self.levels != 1:
            over = f"{_plural(self.levels, 'pruned level')} x {over}"
        if self.replicates == 1:
            return f"1 seed (the mean over {over})"
        return f"{_plural(self.replicates, 'seed')} (each the mean over {over})"

    @property
    def has_spread(self) -> bool:
        """Whether anything estimates a spread: 2 or more seeds, or one seed with 2 or more images in
        every task (a bootstrap over them); else the "interval" would be the mean twice."""
        return self.replicates >= 2 or (self.task_images if self.task_images is not None else self.images) >= 2

    def format(self, unit: str = "dB", signed: bool = False, digits: int = 2) -> str:
        """``"+0.40 dB [+0.10, +0.70]"`` (``signed`` for differences); ``"+0.40 dB (no interval)"``
        when nothing estimates a spread (one seed and one image per task).

        Example:
            >>> Interval(0.39, 0.39, 0.39, images=2, replicates=1, method="", task_images=1).format(signed=True)
            '+0.39 dB (no interval: 1 seed, 1 image per task)'
        """
        fmt = f"{{:{'+' if signed else ''}.{digits}f}}"
        unit = f" {unit}" if unit else ""
        if not self.has_spread:
            return f"{fmt.format(self.mean)}{unit} (no interval: 1 seed, 1 image per task)"
        return f"{fmt.format(self.mean)}{unit} [{fmt.format(self.low)}, {fmt.format(self.high)}]"


def method_name(replicates: int) -> str:
    """How :func:`interval` computes its interval for ``replicates`` replicates (for captions).

    Example:
        >>> method_name(3)
        '95% t-interval across 3 seeds (df = 2); test images fixed'
    """
    if replicates >= 2:
        return f"95% t-interval across {replicates} seeds (df = {replicates - 1}); test images fixed"
    return ("95% bootstrap over test images, descriptive only: one seed, so training-seed noise is not included "
            f"and every verdict is '{TOO_FEW}'")


def _statistic(tasks: Sequence[np.ndarray]) -> float:
    return float(np.mean([np.mean(t) for t in tasks]))


def _bootstrap(tasks: Sequence[np.ndarray], confidence: float) -> tuple[float, float]:
    """Resample images within each task (a stratified bootstrap) and take the mean of task means."""
    from scipy import stats

    def mean_of_task_means(*samples: np.ndarray, axis: int = -1) -> np.ndarray:
        return np.mean([np.mean(x, axis=axis) for x in samples], axis=0)

    res = stats.bootstrap(tuple(tasks), mean_of_task_means, paired=False, vectorized=True, confidence_level=confidence,
                          n_resamples=RESAMPLES, method="percentile", random_state=np.random.default_rng(SEED))
    return float(res.confidence_interval.low), float(res.confidence_interval.high)


def _t_interval(values: np.ndarray, confidence: float) -> tuple[float, float, float]:
    """``(low, high, p)`` of the t-test of mean 0 across ``values`` (at least 2); identical values
    give a zero-width interval and p = 0 (or 1 when they are all 0)."""
    from scipy import stats

    mean = float(values.mean())
    if np.ptp(values) == 0:
        return mean, mean, 0.0 if mean != 0 else 1.0
    res = stats.ttest_1samp(values, 0.0)
    ci = res.confidence_interval(confidence)
    return float(ci.low), float(ci.high), float(res.pvalue)


def interval(values: Values, confidence: float = CONFIDENCE) -> Interval:
    """Mean and ``confidence`` interval of the mean over tasks of the mean over images.

    ``values[r][t]`` holds replicate ``r``'s per-image values for task ``t``; every replicate has
    the same tasks. See the module docstring for the two methods.
    """
    reps = [[np.asarray(t, dtype=np.float64).ravel() for t in rep] for rep in values]
    if not reps or not reps[0] or any(len(rep) != len(reps[0]) for rep in reps) or any(t.size == 0 for rep in reps for t in rep):
        raise ValueError("interval needs at least one replicate, the same tasks in each, and at least one image per task")
    if any(not np.isfinite(t).all() for rep in reps for t in rep):
        raise ValueError("interval got NaN or infinite values; score only finite images")
    per_replicate = np.array([_statistic(rep) for rep in reps])
    mean = float(per_replicate.mean())
    images = sum(t.size for t in reps[0])
    task_images = min(t.size for rep in reps for t in rep)
    p = math.nan
    if len(reps) >= 2:
        low, high, p = _t_interval(per_replicate, confidence)
    else:
        tasks = reps[0]
        if all(np.ptp(t) == 0 for t in tasks) or images < 3:
            low = high = mean
        else:
            low, high = _bootstrap(tasks, confidence)
    return Interval(mean=mean, low=low, high=high, images=images, replicates=len(reps), method=method_name(len(reps)),
                    task_images=task_images, p=p)


def replicate_interval(per_replicate: Sequence[float], images: int, confidence: float = CONFIDENCE) -> Interval:
    """Mean and t-interval of one number per replicate (e.g. a stability barrier), each computed
    from ``images`` test images; one replicate gives no interval (low = high = the value).

    Example:
        >>> iv = replicate_interval([0.1, 0.3, 0.2], images=40)
        >>> round(iv.mean, 2), iv.sample_size, iv.low < 0.2 < iv.high
        (0.2, '3 seeds (each the mean over 40 test images)', True)
    """
    values = np.asarray(per_replicate, dtype=np.float64)
    if values.size == 0 or not np.isfinite(values).all():
        raise ValueError("replicate_interval needs at least one finite value")
    mean = float(values.mean())
    p = math.nan
    if values.size >= 2:
        low, high, p = _t_interval(values, confidence)
    else:
        low = high = mean
    method = method_name(values.size) if values.size >= 2 else "one seed: no interval"
    return Interval(mean=mean, low=low, high=high, images=int(images), replicates=int(values.size), method=method, p=p)


def with_levels(iv: Interval, levels: int, images: int) -> Interval:
    """``iv`` as a primary endpoint: each replicate's value averages ``levels`` pruned levels of
    ``images`` test images each (for :attr:`Interval.sample_size`).

    Example:
        >>> with_levels(Interval(0.4, 0.1, 0.7, images=80, replicates=3, method=""), 2, 40).sample_size
        '3 seeds (each the mean over 2 pruned levels x 40 test images)'
    """
    return dataclasses.replace(iv, levels=int(levels), images=int(images))


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values (Holm 1979, "A simple sequentially rejective multiple test
    procedure", Scand. J. Statist. 6:65-70): the i-th smallest of m is multiplied by m - i + 1, made
    non-decreasing and capped at 1. Rejecting where the adjusted p < 0.05 keeps the chance of any
    false "resolved" in the family at 5%. NaN p-values (too few to tell) are left out of the family.

    Example:
        >>> holm([0.01, 0.04, 0.03, float("nan")])[:3]
        [0.03, 0.06, 0.06]
    """
    p = np.asarray(pvalues, dtype=np.float64)
    out = np.full(p.shape, np.nan)
    finite = np.flatnonzero(np.isfinite(p))
    if finite.size:
        order = finite[np.argsort(p[finite], kind="stable")]
        m = order.size
        out[order] = np.minimum(np.maximum.accumulate((m - np.arange(m)) * p[order]), 1.0)
    return [float(v) for v in out]


def enough(iv: Interval) -> bool:
    """Whether ``iv`` may carry a verdict: at least 2 seeds and 2 images in every task."""
    return iv.replicates >= 2 and (iv.task_images if iv.task_images is not None else iv.images) >= 2


def verdict(difference: Interval, p_adjusted: float | None = None) -> str:
    """``"resolved"`` when the interval of a difference excludes 0 (or, given a Holm-adjusted
    ``p_adjusted``, when that is below 5%), else ``"not resolved"``; :data:`TOO_FEW` with fewer
    than 2 seeds or fewer than 2 images in a task, whatever the interval.

    Example:
        >>> verdict(Interval(0.4, 0.1, 0.7, images=16, replicates=1, method=method_name(1)))
        'too few to tell'
        >>> verdict(Interval(0.4, 0.1, 0.7, images=16, replicates=3, method=method_name(3), p=0.02), p_adjusted=0.08)
        'not resolved'
    """
    if not enough(difference):
        return TOO_FEW
    if p_adjusted is not None:
        return "resolved" if p_adjusted < 1 - CONFIDENCE else "not resolved"
    return "resolved" if difference.low > 0 or difference.high < 0 else "not resolved"


__all__ = ["CONFIDENCE", "TOO_FEW", "Interval", "enough", "holm", "interval", "method_name", "replicate_interval", "verdict",
           "with_levels"]

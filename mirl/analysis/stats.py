"""95% intervals for study results, and the verdict they allow.

Scores come as ``values[replicate][task]``: for each replicate (an independent training seed) and
each task, a 1-D array of per-image values (PSNR, PSNR gain over the input, or a paired difference
ticket - control on the same images). The statistic is the mean over tasks of the mean over
images, so every task weighs the same whatever its image count. The interval depends on how many
replicates there are:

* **two or more**: a t-interval across replicates of each replicate's statistic
  (``scipy.stats.ttest_1samp(...).confidence_interval``). It covers training-seed noise, for this
  fixed set of test images.
* **one**: a bootstrap over test images, resampled within each task (``scipy.stats.bootstrap``,
  percentile, 9,999 resamples, fixed seed; BCa's jackknife over several tasks costs 100x more).
  It covers the choice of test images only: training-seed noise
  is not in it, and :attr:`Interval.method` says so.

Example:
    >>> import numpy as np
    >>> iv = interval([[np.array([1.0, 1.2, 0.9])], [np.array([1.1, 1.0, 1.3])], [np.array([0.8, 1.0, 1.1])]])
    >>> iv.replicates, iv.images, round(iv.mean, 3), iv.low > 0
    (3, 3, 1.044, True)
    >>> verdict(iv)
    'resolved'
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

CONFIDENCE = 0.95
RESAMPLES = 9999
SEED = 0  # the bootstrap's own seed: the same results give the same interval

Values = Sequence[Sequence[np.ndarray]]  # [replicate][task] -> per-image values


@dataclass(frozen=True)
class Interval:
    """A mean with its 95% interval, how many images and replicates it rests on, and the method."""

    mean: float
    low: float
    high: float
    images: int
    replicates: int
    method: str

    @property
    def sample_size(self) -> str:
        """``"16 images x 3 replicates"``: what the interval rests on."""
        return f"{self.images} image{'s' if self.images != 1 else ''} x {self.replicates} replicate{'s' if self.replicates != 1 else ''}"

    def format(self, unit: str = "dB", signed: bool = False, digits: int = 2) -> str:
        """``"+0.40 dB [+0.10, +0.70]"`` (``signed`` for differences)."""
        fmt = f"{{:{'+' if signed else ''}.{digits}f}}"
        unit = f" {unit}" if unit else ""
        return f"{fmt.format(self.mean)}{unit} [{fmt.format(self.low)}, {fmt.format(self.high)}]"


def method_name(replicates: int) -> str:
    """How :func:`interval` computes its interval for ``replicates`` replicates (for captions)."""
    if replicates >= 2:
        return f"95% t-interval across {replicates} replicates (seeds); test images fixed"
    return "95% bootstrap over test images; one replicate, so training-seed noise is not included"


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


def interval(values: Values, confidence: float = CONFIDENCE) -> Interval:
    """Mean and ``confidence`` interval of the mean over tasks of the mean over images.

    ``values[r][t]`` holds replicate ``r``'s per-image values for task ``t``; every replicate has
    the same tasks. See the module docstring for the two methods.
    """
    from scipy import stats

    reps = [[np.asarray(t, dtype=np.float64).ravel() for t in rep] for rep in values]
    if not reps or not reps[0] or any(len(rep) != len(reps[0]) for rep in reps) or any(t.size == 0 for rep in reps for t in rep):
        raise ValueError("interval needs at least one replicate, the same tasks in each, and at least one image per task")
    if any(not np.isfinite(t).all() for rep in reps for t in rep):
        raise ValueError("interval got NaN or infinite values; score only finite images")
    per_replicate = np.array([_statistic(rep) for rep in reps])
    mean = float(per_replicate.mean())
    images = sum(t.size for t in reps[0])
    if len(reps) >= 2:
        if np.ptp(per_replicate) == 0:
            low = high = mean
        else:
            ci = stats.ttest_1samp(per_replicate, 0.0).confidence_interval(confidence)
            low, high = float(ci.low), float(ci.high)
    else:
        tasks = reps[0]
        if all(np.ptp(t) == 0 for t in tasks) or images < 3:
            low = high = mean
        else:
            low, high = _bootstrap(tasks, confidence)
    return Interval(mean=mean, low=low, high=high, images=images, replicates=len(reps), method=method_name(len(reps)))


def replicate_interval(per_replicate: Sequence[float], images: int, confidence: float = CONFIDENCE) -> Interval:
    """Mean and t-interval of one number per replicate (e.g. a stability barrier), each computed
    from ``images`` test images; one replicate gives no interval (low = high = the value).

    Example:
        >>> iv = replicate_interval([0.1, 0.3, 0.2], images=40)
        >>> round(iv.mean, 2), iv.sample_size, iv.low < 0.2 < iv.high
        (0.2, '40 images x 3 replicates', True)
    """
    from scipy import stats

    values = np.asarray(per_replicate, dtype=np.float64)
    if values.size == 0 or not np.isfinite(values).all():
        raise ValueError("replicate_interval needs at least one finite value")
    mean = float(values.mean())
    if values.size >= 2 and np.ptp(values) > 0:
        ci = stats.ttest_1samp(values, 0.0).confidence_interval(confidence)
        low, high = float(ci.low), float(ci.high)
    else:
        low = high = mean
    method = method_name(values.size) if values.size >= 2 else "one replicate: no interval"
    return Interval(mean=mean, low=low, high=high, images=int(images), replicates=int(values.size), method=method)


RESOLVED_ONE_SEED = "resolved over these test images (1 replicate: seed noise not covered)"


def verdict(difference: Interval) -> str:
    """``"resolved"`` when the interval of a difference excludes 0, else ``"not resolved"``. With one
    replicate the interval covers only the choice of test images, and the verdict says so
    (:data:`RESOLVED_ONE_SEED`).

    Example:
        >>> verdict(Interval(0.4, 0.1, 0.7, images=16, replicates=1, method=method_name(1)))
        'resolved over these test images (1 replicate: seed noise not covered)'
    """
    if not (difference.low > 0 or difference.high < 0):
        return "not resolved"
    return "resolved" if difference.replicates > 1 else RESOLVED_ONE_SEED


__all__ = ["CONFIDENCE", "RESOLVED_ONE_SEED", "Interval", "interval", "method_name", "replicate_interval", "verdict"]

"""Intervals and verdicts on synthetic studies: a planted difference is found, none is not invented."""

from __future__ import annotations

import numpy as np
import pytest

from mirl.analysis.stats import RESOLVED_ONE_SEED, interval, method_name, verdict


def _study(rng, difference: float, replicates: int, tasks: int = 5, images: int = 16, noise: float = 0.3, seed_noise: float = 0.1):
    """Per-image paired differences ticket - control: a true ``difference`` plus image and seed noise."""
    return [[difference + rng.normal(0, seed_noise) + rng.normal(0, noise, images) for _ in range(tasks)]
            for _ in range(replicates)]


@pytest.mark.parametrize("replicates", [1, 3])
def test_a_planted_one_db_difference_is_resolved(replicates):
    rng = np.random.default_rng(7)
    iv = interval(_study(rng, 1.0, replicates))
    assert verdict(iv) == ("resolved" if replicates > 1 else RESOLVED_ONE_SEED) and iv.low > 0
    assert iv.low < 1.0 + 0.15 and iv.high > 1.0 - 0.15  # covers the truth (up to the planted seed offsets)
    assert (iv.images, iv.replicates) == (80, replicates)
    assert iv.method == method_name(replicates)


@pytest.mark.parametrize("replicates", [1, 3])
def test_no_difference_is_not_resolved_in_most_studies(replicates):
    """At 95%, a zero difference should be 'resolved' in about 5% of studies; allow up to 15 of 100."""
    rng = np.random.default_rng(11)
    resolved = sum(verdict(interval(_study(rng, 0.0, replicates, seed_noise=0.0))).startswith("resolved") for _ in range(100))
    assert resolved <= 15


def test_t_interval_across_replicates_matches_the_textbook():
    from scipy import stats

    means = np.array([1.0, 1.5, 0.7])
    iv = interval([[np.array([m])] for m in means])
    half = stats.t.ppf(0.975, df=2) * means.std(ddof=1) / np.sqrt(3)
    assert iv.mean == pytest.approx(means.mean())
    assert (iv.low, iv.high) == pytest.approx((means.mean() - half, means.mean() + half))


def test_tasks_weigh_the_same_whatever_their_image_count():
    iv = interval([[np.zeros(2), np.ones(30)]])
    assert iv.mean == pytest.approx(0.5)


def test_identical_values_give_a_zero_width_interval_and_bad_input_is_refused():
    iv = interval([[np.full(8, 2.0)]])
    assert (iv.low, iv.mean, iv.high) == (2.0, 2.0, 2.0)
    with pytest.raises(ValueError, match="NaN or infinite"):
        interval([[np.array([1.0, np.inf])]])
    with pytest.raises(ValueError, match="same tasks"):
        interval([[np.ones(3)], [np.ones(3), np.ones(3)]])
    assert interval([[np.array([0.5])], [np.array([0.7])]]).format(signed=True).startswith("+0.60 dB [")

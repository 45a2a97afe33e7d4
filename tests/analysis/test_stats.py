"""Intervals and verdicts on synthetic studies: a planted difference is found, none is not invented."""

from __future__ import annotations

import numpy as np
import pytest

from mirl.analysis.stats import TOO_FEW, holm, interval, method_name, verdict


def _study(rng, difference: float, replicates: int, tasks: int = 5, images: int = 16, noise: float = 0.3, seed_noise: float = 0.1):
    """Per-image paired differences ticket - control: a true ``difference`` plus image and seed noise."""
    return [[difference + rng.normal(0, seed_noise) + rng.normal(0, noise, images) for _ in range(tasks)]
            for _ in range(replicates)]


@pytest.mark.parametrize("replicates", [1, 3])
def test_a_planted_one_db_difference_is_resolved(replicates):
    rng = np.random.default_rng(7)
    iv = interval(_study(rng, 1.0, replicates))
    assert verdict(iv) == ("resolved" if replicates > 1 else TOO_FEW) and iv.low > 0
    assert iv.low < 1.0 + 0.15 and iv.high > 1.0 - 0.15  # covers the truth (up to the planted seed offsets)
    assert (iv.images, iv.replicates) == (80, replicates)
    assert iv.method == method_name(replicates)


@pytest.mark.parametrize("replicates", [2, 3])
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


@pytest.mark.parametrize("replicates, images", [(1, 16), (3, 1), (5, 1)])
def test_one_seed_or_one_image_per_task_is_too_few_to_tell(replicates, images):
    """Issue 31: a 1-seed or 1-image interval never says 'resolved', however large the difference."""
    rng = np.random.default_rng(3)
    iv = interval(_study(rng, 5.0, replicates, tasks=2, images=images))
    assert iv.low > 0 and verdict(iv) == TOO_FEW and verdict(iv, p_adjusted=0.0) == TOO_FEW
    assert iv.task_images == images


def test_the_interval_states_its_real_n_df_and_the_t_tests_p():
    from scipy import stats

    per_seed = [np.array([0.2, 0.5]), np.array([0.9, 1.1]), np.array([0.4, 0.6])]
    iv = interval([[x] for x in per_seed])
    means = [x.mean() for x in per_seed]
    assert iv.df == 2 and "df = 2" in iv.method
    assert iv.p == pytest.approx(stats.ttest_1samp(means, 0.0).pvalue)
    assert iv.sample_size == "3 seeds (each the mean over 2 test images)"
    assert interval([[x] for x in per_seed[:1]]).df is None


def test_holm_matches_the_step_down_definition():
    """Holm 1979: the i-th smallest of m p-values times (m - i + 1), running maximum, capped at 1."""
    rng = np.random.default_rng(5)
    for _ in range(20):
        p = rng.uniform(0, 0.2, size=int(rng.integers(1, 9)))
        ranked = sorted(range(len(p)), key=lambda i: p[i])
        expected, running = [0.0] * len(p), 0.0
        for rank, i in enumerate(ranked):
            running = max(running, min(1.0, (len(p) - rank) * p[i]))
            expected[i] = running
        assert holm(p) == pytest.approx(expected)
    adjusted = holm([0.01, float("nan"), 0.04])
    assert adjusted[0] == pytest.approx(0.02) and np.isnan(adjusted[1]) and adjusted[2] == pytest.approx(0.04)


def test_a_holm_adjusted_p_decides_the_verdict_of_a_secondary_row():
    iv = interval([[np.array([0.9, 1.0])], [np.array([1.1, 1.2])], [np.array([1.0, 0.8])]])
    assert verdict(iv) == "resolved" and verdict(iv, p_adjusted=0.2) == "not resolved"

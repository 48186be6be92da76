"""Tests of parity.tost: the paired TOST against SciPy and hand computations, its degenerate
cases (fewer than 2 seeds, zero spread, non-finite metrics), and its messages."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy import stats

from parity.tost import paired_tost

#: Agreement of our p-values and interval with SciPy's / the hand computation: both evaluate
#: the same t distribution in float64; 1e-12 leaves room for a different evaluation order only.
P_TOL = 1e-12

# --------------------------------------------------------------------------- paired_tost


def test_hand_case_matches_hand_computation_and_scipy():
    # d = [0.004, -0.002, 0.006, 0.001]: mean 0.00225, sd exactly 0.0035, se 0.00175, df 3
    base = np.array([0.800, 0.810, 0.790, 0.805])
    ours = base + np.array([0.004, -0.002, 0.006, 0.001])
    result = paired_tost(base, ours, margin=0.015, alpha=0.05)
    diffs = ours - base
    assert result.n == 4
    assert result.mean == pytest.approx(0.00225, abs=1e-15)
    assert result.sd == pytest.approx(0.0035, rel=1e-12)
    t_crit = stats.t.ppf(0.95, 3)  # 2.3533634...
    assert t_crit == pytest.approx(2.3533634348, abs=1e-9)
    assert result.ci_low == pytest.approx(0.00225 - t_crit * 0.00175, abs=P_TOL)
    assert result.ci_high == pytest.approx(0.00225 + t_crit * 0.00175, abs=P_TOL)
    lower = stats.ttest_1samp(diffs, popmean=-0.015, alternative="greater")
    upper = stats.ttest_1samp(diffs, popmean=0.015, alternative="less")
    assert lower.statistic == pytest.approx((0.00225 + 0.015) / 0.00175, rel=1e-9)
    assert result.p_lower == pytest.approx(lower.pvalue, abs=P_TOL)
    assert result.p_upper == pytest.approx(upper.pvalue, abs=P_TOL)
    assert result.verdict == "equivalent" and result.equivalent
    assert result.p_value == max(result.p_lower, result.p_upper)
    assert "inside" in result.message and "90 % CI" in result.message


def test_mean_outside_margin_is_not_equivalent():
    base = np.array([0.70, 0.72, 0.71, 0.69, 0.70])
    ours = base + np.array([0.031, 0.029, 0.030, 0.032, 0.028])
    result = paired_tost(base, ours, margin=0.015)
    assert result.verdict == "not_equivalent"
    assert result.ci_low > 0.015  # the whole interval lies above the margin
    assert result.p_upper > 0.95 and result.p_lower < 1e-6


def test_mean_inside_margin_but_too_noisy_is_not_equivalent():
    diffs = np.array([0.05, -0.04, 0.03, -0.03])
    result = paired_tost(np.zeros(4), diffs, margin=0.015)
    assert abs(result.mean) < 0.015  # the point estimate alone would "pass"
    assert result.verdict == "not_equivalent"
    assert result.ci_low < -0.015 and result.ci_high > 0.015
    assert result.p_lower >= 0.05 and result.p_upper >= 0.05


@pytest.mark.parametrize("n", [0, 1])
def test_fewer_than_two_seeds_cannot_be_tested(n):
    result = paired_tost([0.5] * n, [0.501] * n, margin=0.015, seeds=list(range(7, 7 + n)))
    assert result.verdict == "insufficient" and not result.equivalent
    assert result.n == n
    assert math.isnan(result.ci_low) and math.isnan(result.p_lower) and math.isnan(result.p_value)
    assert "cannot test" in result.message and f"n={n}" in result.message
    record = result.to_dict()
    assert record["verdict"] == "insufficient" and record["ci_low"] is None
    json.dumps(record, allow_nan=False)


def test_nan_metric_is_an_error_naming_the_seed():
    with pytest.raises(ValueError, match=r"tested metric is not finite for seed\(s\) \[7\]"):
        paired_tost([0.5, 0.6, 0.7], [0.5, float("nan"), 0.7], margin=0.015, seeds=[3, 7, 11])
    with pytest.raises(ValueError, match=r"baseline metric is not finite for seed\(s\) \[3\]"):
        paired_tost([float("inf"), 0.6, 0.7], [0.5, 0.6, 0.7], margin=0.015, seeds=[3, 7, 11])


def test_zero_variance_collapses_the_interval_to_the_mean():
    equal = paired_tost([0.0, 0.0, 0.0], [0.01, 0.01, 0.01], margin=0.015)
    assert equal.sd == 0.0 and equal.ci_low == equal.ci_high == equal.mean == 0.01
    assert equal.verdict == "equivalent" and equal.p_lower == 0.0 and equal.p_upper == 0.0
    outside = paired_tost([0.0, 0.0], [0.02, 0.02], margin=0.015)
    assert outside.verdict == "not_equivalent" and outside.p_upper == 1.0
    on_bound = paired_tost([0.0, 0.0], [-0.015, -0.015], margin=0.015)
    assert on_bound.verdict == "not_equivalent" and on_bound.p_lower == 1.0
    # 0.21 - 0.2, 0.41 - 0.4, ... differ in their last bits: a tiny sd, the same conclusion
    nearly = paired_tost([0.2, 0.4, 0.6], [0.21, 0.41, 0.61], margin=0.015)
    assert nearly.verdict == "equivalent" and nearly.sd < 1e-15


def test_verdict_is_the_interval_inside_the_margin():
    rng = np.random.default_rng(20240131)
    for _ in range(300):
        n = int(rng.integers(2, 9))
        diffs = rng.normal(rng.normal(0, 0.01), rng.uniform(1e-4, 0.02), n)
        margin = float(rng.uniform(0.005, 0.03))
        result = paired_tost(np.zeros(n), diffs, margin=margin, alpha=0.05)
        inside = result.ci_low > -margin and result.ci_high < margin
        assert result.equivalent == inside, (diffs, margin, result)


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"expected": [1.0, 2.0], "actual": [1.0], "margin": 0.1}, "2 baseline values but 1"),
        ({"expected": [1.0, 2.0], "actual": [1.0, 2.0], "margin": 0.0}, "margin=0.0"),
        ({"expected": [1.0, 2.0], "actual": [1.0, 2.0], "margin": 0.1, "alpha": 0.5}, "alpha"),
        ({"expected": [1.0, 2.0], "actual": [1.0, 2.0], "margin": 0.1, "seeds": [1]}, "1 seeds"),
    ],
)
def test_bad_arguments_are_rejected(kwargs, needle):
    with pytest.raises(ValueError, match=needle):
        paired_tost(**kwargs)


def test_failed_tost_says_whether_the_backends_differ_or_seeds_are_too_few() -> None:
    """Not shown equivalent is not shown different: the message tells them apart, and estimates
    the seeds an inconclusive test needs (checked against the interval formula)."""
    differ = paired_tost([0.5, 0.52, 0.51], [0.6, 0.62, 0.615], margin=0.025)
    assert differ.outside_margin and "the backends differ by more than the margin" in \
        differ.message
    few = paired_tost([0.50, 0.52, 0.51], [0.51, 0.50, 0.53], margin=0.025)
    assert not few.equivalent and not few.outside_margin
    needed = few.seeds_needed
    assert needed is not None and f"about {needed} paired seeds" in few.message
    half = lambda n: stats.t.ppf(0.95, n - 1) * few.sd / n ** 0.5  # noqa: E731
    assert abs(few.mean) + half(needed) < 0.025 <= abs(few.mean) + half(needed - 1)
    assert few.to_dict()["seeds_needed"] == needed
    far = paired_tost([0.5, 0.52], [0.53, 0.57], margin=0.025)  # mean 0.04 past the margin
    assert far.seeds_needed is None and "more seeds cannot bring" in far.message

"""Paired equivalence test (Schuirmann's TOST) of one metric over seeds: pure statistics.

:func:`paired_tost` tests the paired differences ``d_i = actual_i - expected_i`` against a
margin ``delta``: equivalence is declared only when both one-sided tests reject, i.e. the
``1 - 2 alpha`` confidence interval of the mean difference lies inside ``(-delta, +delta)``.
A non-significant difference test is not evidence of equivalence; this is
(``research/parity_anchors.md`` §0 item 10 and §8). :mod:`parity.equivalence` applies it to the
per-seed metrics of the L5 multi-seed mode.

NumPy and SciPy only.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats

from parity.results import jsonable

__all__ = [
    "MAX_SEEDS_ESTIMATE",
    "TOST_VERDICTS",
    "TostResult",
    "paired_tost",
]

#: Outcomes of :func:`paired_tost`.
TOST_VERDICTS: tuple[str, ...] = ("equivalent", "not_equivalent", "insufficient")


@dataclass(frozen=True)
class TostResult:
    """Outcome of a paired TOST.

    Attributes
    ----------
    n : int
        Number of paired seeds.
    mean : float
        Mean difference ``actual - expected`` (metric units); NaN when ``n == 0``.
    sd : float
        Sample standard deviation of the differences (``ddof=1``); NaN when ``n < 2``.
    ci_low, ci_high : float
        The ``1 - 2 alpha`` confidence interval of the mean difference (t distribution,
        ``n - 1`` degrees of freedom); equal to ``mean`` when every difference is the same;
        NaN when ``n < 2``.
    p_lower : float
        p-value of H0 ``mean <= -margin`` (NaN when ``n < 2``).
    p_upper : float
        p-value of H0 ``mean >= +margin`` (NaN when ``n < 2``).
    margin : float
        The pre-registered equivalence margin ``delta`` (> 0, metric units).
    alpha : float
        Level of each one-sided test.
    verdict : str
        One of :data:`TOST_VERDICTS`.
    differences : tuple[float, ...]
        The paired differences, in seed order.
    seeds : tuple[int, ...]
        The seed of each difference.
    """

    n: int
    mean: float
    sd: float
    ci_low: float
    ci_high: float
    p_lower: float
    p_upper: float
    margin: float
    alpha: float
    verdict: str
    differences: tuple[float, ...] = ()
    seeds: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        if self.verdict not in TOST_VERDICTS:
            raise ValueError(f"TOST verdict {self.verdict!r}; expected one of {TOST_VERDICTS}")
        if len(self.differences) != self.n or len(self.seeds) != self.n:
            raise ValueError(f"TOST n={self.n} but {len(self.differences)} differences and "
                             f"{len(self.seeds)} seeds")

    @property
    def equivalent(self) -> bool:
        """True when the verdict is ``equivalent``."""
        return self.verdict == "equivalent"

    @property
    def confidence(self) -> float:
        """Level of the reported interval, ``1 - 2 alpha``."""
        return 1.0 - 2.0 * self.alpha

    @property
    def p_value(self) -> float:
        """The TOST p-value, ``max(p_lower, p_upper)`` (NaN when ``n < 2``)."""
        return max(self.p_lower, self.p_upper) if self.n >= 2 else math.nan

    @property
    def outside_margin(self) -> bool:
        """The whole interval lies beyond the margin: the backends differ (not only unproven)."""
        return self.n >= 2 and (self.ci_low >= self.margin or self.ci_high <= -self.margin)

    @property
    def seeds_needed(self) -> int | None:
        """Paired seeds for this interval to fit inside the margin if the mean difference and
        its spread stay as observed; None when the observed mean is itself at or past the margin
        (more seeds cannot help) or fewer than 2 seeds were given."""
        if self.n < 2 or not abs(self.mean) < self.margin:
            return None
        if self.sd == 0.0:
            return 2
        for n in range(2, MAX_SEEDS_ESTIMATE + 1):
            half = float(stats.t.ppf(1.0 - self.alpha, n - 1)) * self.sd / math.sqrt(n)
            if abs(self.mean) + half < self.margin:
                return n
        return None

    @property
    def message(self) -> str:
        """One line for a reviewer; a failed test says whether the backends differ (the interval
        is beyond the margin) or the run had too few seeds to tell (and about how many it needs)."""
        level = f"{100 * self.confidence:g} % CI"
        if self.verdict == "insufficient":
            return (f"INSUFFICIENT: cannot test equivalence with n={self.n} paired seed(s); "
                    "a TOST needs at least 2")
        interval = f"[{self.ci_low:.4g}, {self.ci_high:.4g}]"
        inside = "inside" if self.equivalent else "not inside"
        line = (f"{self.verdict.upper().replace('_', ' ')}: mean difference {self.mean:.4g} "
                f"(sd {self.sd:.3g}, n={self.n}); {level} {interval} {inside} "
                f"+-{self.margin:g}; p_lower={self.p_lower:.3g}, p_upper={self.p_upper:.3g} "
                f"(alpha {self.alpha:g})")
        if self.equivalent:
            return line
        if self.outside_margin:
            return line + "; the backends differ by more than the margin"
        needed = self.seeds_needed
        advice = (f"about {needed} paired seeds would be needed at this spread and mean"
                  if needed is not None else "more seeds cannot bring the interval inside the "
                  "margin at this mean difference" if abs(self.mean) >= self.margin
                  else f"more than {MAX_SEEDS_ESTIMATE} seeds would be needed at this spread")
        return line + f"; inconclusive, not shown to differ: {advice}"

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (NaN becomes None)."""
        return jsonable({
            "n": self.n, "mean_diff": self.mean, "sd": self.sd, "ci_low": self.ci_low,
            "ci_high": self.ci_high, "confidence": self.confidence, "p_lower": self.p_lower,
            "p_upper": self.p_upper, "p_value": self.p_value, "margin": self.margin,
            "alpha": self.alpha, "verdict": self.verdict,
            "outside_margin": self.outside_margin, "seeds_needed": self.seeds_needed,
            "differences": list(self.differences), "seeds": list(self.seeds),
        })


#: Largest seed count :attr:`TostResult.seeds_needed` estimates.
MAX_SEEDS_ESTIMATE = 10_000


def _check_options(margin: float, alpha: float) -> None:
    if isinstance(margin, bool) or not isinstance(margin, int | float | np.floating) \
            or not (math.isfinite(margin) and margin > 0):
        raise ValueError(f"equivalence margin={margin!r}; expected a finite number > 0")
    if isinstance(alpha, bool) or not isinstance(alpha, int | float | np.floating) \
            or not 0 < alpha < 0.5:
        raise ValueError(f"alpha={alpha!r}; expected a number in (0, 0.5)")


def paired_tost(expected: Sequence[float], actual: Sequence[float], *, margin: float,
                alpha: float = 0.05, seeds: Sequence[int] | None = None) -> TostResult:
    """Paired two one-sided t-tests (Schuirmann's TOST) of ``actual`` against ``expected``.

    Parameters
    ----------
    expected : sequence of float
        The baseline's metric, one value per seed.
    actual : sequence of float
        The tested backend's metric, same seeds in the same order.
    margin : float
        Equivalence margin ``delta`` (> 0, metric units), fixed before the run.
    alpha : float
        Level of each one-sided test, in ``(0, 0.5)``; the interval reported is ``1 - 2 alpha``.
    seeds : sequence of int, optional
        The seed of each pair (named in errors and recorded); default ``0 .. n-1``.

    Returns
    -------
    TostResult
        ``equivalent`` when both one-sided p-values are < ``alpha``; ``not_equivalent``
        otherwise; ``insufficient`` when fewer than 2 pairs were given (nothing is tested).

    Raises
    ------
    ValueError
        ``expected`` and ``actual`` (or ``seeds``) of different lengths, a NaN or infinite
        value (the message names the seed and the side), a margin that is not > 0, an alpha
        outside ``(0, 0.5)``.

    Notes
    -----
    With ``d_i = actual_i - expected_i``, ``m = mean(d)``, ``s = sd(d)``, ``se = s / sqrt(n)``
    and ``T`` the t distribution with ``n - 1`` degrees of freedom:
    ``p_lower = P(T >= (m + delta) / se)``, ``p_upper = P(T <= (m - delta) / se)``, and the
    interval is ``m -+ t_{1-alpha} se``. Both p-values are < alpha exactly when that interval
    lies strictly inside ``(-delta, delta)``. When all differences are equal (``s = 0``) the
    interval collapses to ``m`` and each p-value is 0 or 1 (its limit): equivalent iff
    ``|m| < delta``.

    References
    ----------
    .. [1] D. J. Schuirmann, "A comparison of the two one-sided tests procedure and the power
       approach for assessing the equivalence of average bioavailability", J. Pharmacokinet.
       Biopharm. 15, 657-680 (1987), doi:10.1007/BF01068419.

    Examples
    --------
    >>> r = paired_tost([0.80, 0.82, 0.81], [0.801, 0.818, 0.812], margin=0.015)
    >>> r.verdict, r.n
    ('equivalent', 3)
    """
    _check_options(margin, alpha)
    base = np.asarray(expected, dtype=np.float64).reshape(-1)
    ours = np.asarray(actual, dtype=np.float64).reshape(-1)
    if base.shape != ours.shape:
        raise ValueError(f"paired TOST: {base.size} baseline values but {ours.size} tested "
                         "values; expected one of each per seed")
    labels = tuple(range(base.size)) if seeds is None else tuple(int(s) for s in seeds)
    if len(labels) != base.size:
        raise ValueError(f"paired TOST: {len(labels)} seeds for {base.size} value pairs")
    for side, values in (("baseline", base), ("tested", ours)):
        bad = [labels[i] for i in np.flatnonzero(~np.isfinite(values))]
        if bad:
            raise ValueError(f"paired TOST: {side} metric is not finite for seed(s) {bad} "
                             f"(values {values[~np.isfinite(values)].tolist()})")
    diffs = ours - base
    n = int(diffs.size)
    margin, alpha = float(margin), float(alpha)
    if n < 2:
        mean = float(diffs[0]) if n == 1 else math.nan
        return TostResult(n, mean, math.nan, math.nan, math.nan, math.nan, math.nan, margin,
                          alpha, "insufficient", tuple(diffs.tolist()), labels)
    mean = float(np.mean(diffs))
    if np.ptp(diffs) == 0.0:
        # Identical differences: no spread, the interval is the mean itself and each one-sided
        # test rejects with certainty exactly when the mean is strictly inside its bound.
        mean = float(diffs[0])
        sd = 0.0
        ci_low = ci_high = mean
        p_lower = 0.0 if mean > -margin else 1.0
        p_upper = 0.0 if mean < margin else 1.0
    else:
        sd = float(np.std(diffs, ddof=1))
        se = sd / math.sqrt(n)
        df = n - 1
        p_lower = float(stats.t.sf((mean + margin) / se, df))
        p_upper = float(stats.t.cdf((mean - margin) / se, df))
        half = float(stats.t.ppf(1.0 - alpha, df)) * se
        ci_low, ci_high = mean - half, mean + half
    verdict = "equivalent" if p_lower < alpha and p_upper < alpha else "not_equivalent"
    return TostResult(n, mean, sd, ci_low, ci_high, p_lower, p_upper, margin, alpha, verdict,
                      tuple(diffs.tolist()), labels)

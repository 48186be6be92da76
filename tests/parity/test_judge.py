"""The judge (parity/judge.py): it keeps the arrays of every failed comparison, so the run can
put those of its first divergence into the bundle's evidence."""

from __future__ import annotations

import numpy as np

from parity.divergences import load_registry
from parity.judge import Judge
from parity.results import FIRST_DIVERGENCE_EVIDENCE
from parity.tolerances import load_table


def _judge() -> Judge:
    return Judge(load_table(), load_registry(), device="cpu")


def test_a_failed_comparison_keeps_its_arrays_and_a_passed_one_does_not() -> None:
    judge = _judge()
    expected = np.linspace(0.5, 1.5, 64, dtype=np.float32).reshape(8, 8)
    same = judge.compare(level="L1", stage="farfield_amplitude", quantity="amplitude",
                         backend="torch", reference="oracle", expected=expected,
                         actual=expected.copy())
    moved = expected.copy()
    moved[3, 4] += 0.25  # far beyond the L1 tolerance (rtol 1e-4)
    failed = judge.compare(level="L1", stage="farfield_amplitude", quantity="amplitude",
                           backend="tensorflow", reference="oracle", expected=expected,
                           actual=moved)
    assert (same.verdict, failed.verdict) == ("pass", "fail")
    assert judge.evidence_of(same) == {}
    assert judge.evidence_of(None) == {}
    kept = judge.evidence_of(failed)
    assert list(kept) == list(FIRST_DIVERGENCE_EVIDENCE)
    np.testing.assert_array_equal(kept[FIRST_DIVERGENCE_EVIDENCE[0]], expected)
    np.testing.assert_array_equal(kept[FIRST_DIVERGENCE_EVIDENCE[1]], moved)

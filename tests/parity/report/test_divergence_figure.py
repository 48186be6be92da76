"""Tests of parity.report.divergence_figure: the arrays of the first divergence, drawn where they
differ."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from parity.report.divergence_figure import MIN_IMAGE_SIDE, worst_plane
from parity.report.figures import render_figures
from parity.results import FIRST_DIVERGENCE_EVIDENCE, BackendRun, Check, RunResult

EXPECTED, ACTUAL = FIRST_DIVERGENCE_EVIDENCE


def _result(*checks: Check) -> RunResult:
    return RunResult("default", "20261129T120000Z", ("L1", "L2"), ("tensorflow", "torch"),
                     checks, (BackendRun("tensorflow", "ok"), BackendRun("torch", "ok")))


def _failed(level: str = "L2", stage: str = "decoded_amp", verdict: str = "fail") -> Check:
    return Check(level, stage, "amp", "torch", "tensorflow", verdict,
                 message="FAIL: max_abs_error=0.5 (tolerance rtol=1e-05, atol=1e-06)")


def _png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    return struct.unpack(">II", data[16:24])


def test_a_channels_last_batch_is_drawn_at_the_plane_of_its_worst_element(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    expected = (rng.standard_normal((4, 16, 16, 2))
                + 1j * rng.standard_normal((4, 16, 16, 2))).astype(np.complex64)
    actual = expected.copy()
    actual[2, 5, 9, 1] += 0.5
    index, worst = worst_plane(expected, actual)
    assert worst == (2, 5, 9, 1)
    assert index == (2, slice(None), slice(None), 1)
    result = render_figures(_result(_failed()), {EXPECTED: expected, ACTUAL: actual}, tmp_path)
    assert [p.name for p in result.written] == ["divergence.png"]
    width, height = _png_size(result.written[0])
    assert width <= 1400 and height <= 1400


def test_curves_for_scalars_and_thin_arrays(tmp_path: Path) -> None:
    for expected, actual in ((np.array(1.0), np.array(1.5)),
                             (np.linspace(3.0, 1.0, 8), np.linspace(3.0, 1.2, 8)),
                             (np.ones((200, 3)), np.full((200, 3), 1.1))):
        assert worst_plane(expected, actual)[0] is None
        result = render_figures(_result(_failed("L4", "loss_curve")),
                                {EXPECTED: expected, ACTUAL: actual}, tmp_path)
        assert [p.name for p in result.written] == ["divergence.png"], result.skipped


def test_nan_on_one_side_is_the_worst_element() -> None:
    expected = np.zeros((8, 8))
    actual = np.zeros((8, 8))
    actual[1, 1] = 1e6
    actual[6, 2] = np.nan
    assert worst_plane(expected, actual)[1] == (6, 2)
    both = expected.copy()
    both[6, 2] = np.nan
    actual_both = actual.copy()
    assert worst_plane(both, actual_both)[1] == (1, 1)  # NaN on both sides agrees


def test_the_judges_worst_element_is_shown_when_it_is_a_valid_index() -> None:
    """The summary lists first the element furthest beyond its bound; the figure shows that one,
    and falls back to the largest error for an index that does not fit the arrays."""
    expected = np.ones((3, 8, 8))
    actual = expected.copy()
    actual[0, 1, 1] = 9.0  # the largest error
    actual[2, 6, 5] = 1.5  # the judge's choice (e.g. a small value far beyond its bound)
    assert worst_plane(expected, actual, worst=(2, 6, 5)) == ((2, slice(None), slice(None)),
                                                               (2, 6, 5))
    for bad in ((3, 0, 0), (0, 1), (-1, 0, 0)):
        assert worst_plane(expected, actual, worst=bad)[1] == (0, 1, 1)


@settings(max_examples=40, deadline=None)
@given(shape=st.lists(st.integers(1, 7), min_size=1, max_size=4), seed=st.integers(0, 2**16))
def test_the_plane_always_holds_the_worst_element(shape: list[int], seed: int) -> None:
    rng = np.random.default_rng(seed)
    expected = rng.standard_normal(shape)
    actual = expected + rng.standard_normal(shape)
    index, worst = worst_plane(expected, actual)
    error = np.abs(actual - expected)
    assert error[worst] == pytest.approx(error.max(), rel=0, abs=0)
    if index is not None:
        sides = [expected.shape[a] for a, i in enumerate(index) if isinstance(i, slice)]
        assert len(sides) == 2 and min(sides) >= MIN_IMAGE_SIDE
        assert all(i == w for i, w in zip(index, worst, strict=True) if not isinstance(i, slice))


def test_a_passing_run_has_no_divergence_figure_and_no_note(tmp_path: Path) -> None:
    passed = Check("L1", "translated", "amp", "torch", "oracle", "pass")
    result = render_figures(_result(passed), {}, tmp_path)
    assert "divergence.png" not in [p.name for p in result.written]
    assert not any(note.startswith("divergence") for note in result.skipped)


@pytest.mark.parametrize(("evidence", "needle"), [
    ({}, "has no arrays in the evidence"),
    ({EXPECTED: np.zeros((4, 4)), ACTUAL: np.zeros((4, 5))}, "expected has shape (4, 4), actual (4, 5)"),
    ({EXPECTED: np.array(["a"]), ACTUAL: np.array(["b"])}, "expected non-empty numbers"),
])
def test_unusable_arrays_are_noted_not_raised(tmp_path: Path, evidence: dict,
                                              needle: str) -> None:
    result = render_figures(_result(_failed()), evidence, tmp_path)
    assert "divergence.png" not in [p.name for p in result.written]
    notes = [n for n in result.skipped if n.startswith("divergence: ")]
    assert len(notes) == 1 and needle in notes[0], result.skipped
